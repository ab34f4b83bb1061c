/* zkcoordctl against a real ZooKeeper that this program starts. */
#include "common/itest_main.h"

int register_cli_suite(void);

int main(void)
{
    return tu_integration_main("cli", 1, register_cli_suite);
}
