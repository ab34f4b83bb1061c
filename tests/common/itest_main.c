#include <CUnit/Basic.h>
#include <stdio.h>

#include "common/itest_main.h"
#include "common/testutil.h"

int tu_integration_main(const char *name, int nservers, int (*register_suites)(void))
{
    unsigned failed;
    zkh_opts o;

    zkh_opts_init(&o);
    o.tick_time_ms = 100; /* session timeouts from 200 ms: expiry tests stay fast */
    if (zkh_start(&tu_zk, nservers, &o) != 0) {
        fprintf(stderr, "%s: cannot start a local ZooKeeper (see above)\n", name);
        return 1;
    }
    printf("%s: ZooKeeper at %s\n", name, zkh_connect_string(tu_zk));
    if (CU_initialize_registry() != CUE_SUCCESS) {
        zkh_destroy(tu_zk);
        return 1;
    }
    if (register_suites() != 0) {
        fprintf(stderr, "%s: cannot register suites: %s\n", name, CU_get_error_msg());
        CU_cleanup_registry();
        zkh_destroy(tu_zk);
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    zkh_destroy(tu_zk);
    tu_zk = NULL;
    return failed ? 1 : 0;
}
