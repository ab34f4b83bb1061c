/* Integration tests of group membership, against a real ZooKeeper that
 * this program starts through the harness and always stops. */
#include "common/itest_main.h"

int register_group_suite(void);

int main(void)
{
    return tu_integration_main("group", 1, register_group_suite);
}
