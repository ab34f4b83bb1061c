/* The zkcoord agent end to end: real agents (the built binary) against a
 * real ZooKeeper that this program starts. */
#include "common/itest_main.h"

int register_agent_suite(void);

int main(void)
{
    return tu_integration_main("agent", 1, register_agent_suite);
}
