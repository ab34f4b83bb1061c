/* Integration tests of work assignment, against a ZooKeeper this program
 * starts and stops. */
#include "common/itest_main.h"

int register_work_suite(void);

int main(void)
{
    return tu_integration_main("work_tests", 1, register_work_suite);
}
