/* Integration tests: CUnit against a real ZooKeeper that this program starts
 * through the harness and always stops. A missing server is a failure. */
#include <CUnit/Basic.h>
#include <stdio.h>

#include "common/testutil.h"
#include "suites.h"

int main(void)
{
    unsigned failed;
    zkh_opts o;

    zkh_opts_init(&o);
    o.tick_time_ms = 100; /* session timeouts from 200 ms: expiry tests stay fast */
    if (zkh_start(&tu_zk, 1, &o) != 0) {
        fprintf(stderr, "integration: cannot start a local ZooKeeper (see above)\n");
        return 1;
    }
    printf("integration: ZooKeeper at %s\n", zkh_connect_string(tu_zk));
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    if (register_session_suite()) {
        fprintf(stderr, "cannot register suites: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        zkh_destroy(tu_zk);
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    zkh_destroy(tu_zk);
    return failed ? 1 : 0;
}
