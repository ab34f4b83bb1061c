/* The agent's work section end to end: real agents (the built binary) and
 * zkcoordctl against a real ZooKeeper that this program starts. */
#include "common/itest_main.h"

int register_agent_work_suite(void);

int main(void)
{
    return tu_integration_main("agent_work", 1, register_agent_work_suite);
}
