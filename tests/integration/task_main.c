/* Integration tests of the task queue, against a ZooKeeper this program
 * starts and stops. */
#include "common/itest_main.h"

int register_task_suite(void);

int main(void)
{
    return tu_integration_main("task_tests", 1, register_task_suite);
}
