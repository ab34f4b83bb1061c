/* Integration tests of leader election and protected create, against a real
 * ZooKeeper that this program starts through the harness and always stops. */
#include "common/itest_main.h"
#include "election_suites.h"

static int register_all(void)
{
    if (register_orphan_suite() != 0)
        return -1;
    return register_election_suite();
}

int main(void)
{
    return tu_integration_main("election", 1, register_all);
}
