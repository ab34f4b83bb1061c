/* Integration tests of the session layer, against a real ZooKeeper that
 * this program starts through the harness and always stops. */
#include "common/itest_main.h"
#include "suites.h"

static int register_all(void)
{
    return register_session_suite();
}

int main(void)
{
    return tu_integration_main("integration", 1, register_all);
}
