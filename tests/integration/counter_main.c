/* Integration tests of shared counters, against a ZooKeeper this program
 * starts and stops. */
#include "common/itest_main.h"

int register_counter_suite(void);

int main(void)
{
    return tu_integration_main("counter_tests", 1, register_counter_suite);
}
