/* Integration tests of the recipes against a reply out of order (the client
 * drops the connection with ZRUNTIMEINCONSISTENCY) and against the server's
 * UNKNOWNSESSION (-12) in reply to a create, against a ZooKeeper this
 * program starts and stops. */
#include "common/itest_main.h"

int register_connloss_suite(void);

int main(void)
{
    return tu_integration_main("connloss_tests", 1, register_connloss_suite);
}
