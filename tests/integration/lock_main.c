/* Integration tests of the lock recipes (mutex, read/write lock,
 * semaphore), against a ZooKeeper this program starts and stops. */
#include "common/itest_main.h"
#include "lock_suites.h"

static int register_all(void)
{
    if (register_lock_suite() || register_rwlock_suite() || register_semaphore_suite())
        return -1;
    return 0;
}

int main(void)
{
    return tu_integration_main("lock_tests", 1, register_all);
}
