/* Unit tests of the lock queue order: crafted node names across the 2^31
 * sequence wrap sort in creation order, for the mutex ("lock-") and the
 * read/write lock ("__READ__"/"__WRIT__") alike. No server. */
#include <CUnit/Basic.h>
#include <string.h>

#include "naming.h"

#define G "_c_0b9c1f56-0f4e-4e3a-9b7c-2f3c7c1d9e01-"

static void test_mutex_wrap_order(void)
{
    /* creation order: ..., 2^31-2, 2^31-1, then the counter wraps */
    const char *created[] = {
        G "lock-2147483646",  G "lock-2147483647",  G "lock--2147483648",
        G "lock--2147483647", G "lock--2147483640",
    };
    char *names[5];
    int i;

    /* shuffled: server order is not creation order */
    names[0] = (char *)created[3];
    names[1] = (char *)created[0];
    names[2] = (char *)created[4];
    names[3] = (char *)created[2];
    names[4] = (char *)created[1];
    CU_ASSERT_EQUAL(zkc__sort_by_seq(names, 5), 5);
    for (i = 0; i < 5; i++)
        CU_ASSERT_STRING_EQUAL(names[i], created[i]);
}

static void test_rw_wrap_order(void)
{
    const char *created[] = {
        G "__WRIT__2147483647",
        G "__READ__-2147483648",
        G "__WRIT__-2147483647",
        G "__READ__-2147483646",
    };
    char *names[5];
    int i;

    names[0] = (char *)created[2];
    names[1] = (char *)created[3];
    names[2] = (char *)created[0];
    names[3] = (char *)created[1];
    names[4] = "not-a-lock-node";
    CU_ASSERT_EQUAL(zkc__sort_by_seq(names, 5), 4);
    for (i = 0; i < 4; i++)
        CU_ASSERT_STRING_EQUAL(names[i], created[i]);
    CU_ASSERT_STRING_EQUAL(names[4], "not-a-lock-node");
}

static void test_plain_order(void)
{
    char *names[3] = {G "lock-0000000010", G "lock-0000000002", G "lock-0000000100"};

    CU_ASSERT_EQUAL(zkc__sort_by_seq(names, 3), 3);
    CU_ASSERT_STRING_EQUAL(names[0], G "lock-0000000002");
    CU_ASSERT_STRING_EQUAL(names[1], G "lock-0000000010");
    CU_ASSERT_STRING_EQUAL(names[2], G "lock-0000000100");
}

int main(void)
{
    CU_pSuite s;
    unsigned failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("lock order", NULL, NULL);
    if (!s || !CU_add_test(s, "mutex queue across the 2^31 wrap", test_mutex_wrap_order) ||
        !CU_add_test(s, "read/write queue across the wrap", test_rw_wrap_order) ||
        !CU_add_test(s, "numeric, not string, order", test_plain_order)) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
