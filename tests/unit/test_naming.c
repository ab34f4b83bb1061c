#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "naming.h"
#include "suites.h"

static void test_guid(void)
{
    char a[ZKC_GUID_LEN + 1], b[ZKC_GUID_LEN + 1], prefix[ZKC_PROTECTED_PREFIX_LEN + 1];
    char back[ZKC_GUID_LEN + 1];
    char name[128];

    CU_ASSERT_EQUAL(zkc__guid(a), 0);
    CU_ASSERT_EQUAL(zkc__guid(b), 0);
    CU_ASSERT_EQUAL(strlen(a), 36);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    CU_ASSERT_EQUAL(a[8], '-');
    CU_ASSERT_EQUAL(a[14], '4'); /* version 4 */
    zkc__protected_prefix(prefix, a);
    CU_ASSERT_EQUAL(strlen(prefix), ZKC_PROTECTED_PREFIX_LEN);
    CU_ASSERT_EQUAL(strncmp(prefix, "_c_", 3), 0);
    CU_ASSERT_EQUAL(prefix[ZKC_PROTECTED_PREFIX_LEN - 1], '-');
    /* The Curator shape: _c_<guid>-lock-0000000007 */
    snprintf(name, sizeof(name), "%slock-0000000007", prefix);
    CU_ASSERT_EQUAL(zkc__protected_guid(name, back), 0);
    CU_ASSERT_STRING_EQUAL(back, a);
}

static void test_protected_guid_malformed(void)
{
    char out[ZKC_GUID_LEN + 1];

    CU_ASSERT_EQUAL(zkc__protected_guid("lock-0000000001", out), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__protected_guid("_c_", out), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(
        zkc__protected_guid("_c_zzzzzzzz-1111-4111-8111-111111111111-lock-0000000001", out),
        ZKC_EBADDATA);
    CU_ASSERT_EQUAL(
        zkc__protected_guid("_c_1234567801111-4111-8111-111111111111-lock-0000000001", out),
        ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__protected_guid("_c_12345678-1111-4111-8111-111111111111xlock", out),
                    ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__protected_guid("_c_12345678-1111-4111-8111-111111111111-lock", out), 0);
    CU_ASSERT_STRING_EQUAL(out, "12345678-1111-4111-8111-111111111111");
}

static void test_seq_parse(void)
{
    int32_t v = 42;

    CU_ASSERT_EQUAL(zkc__seq_parse("lock-0000000001", &v), 0);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(zkc__seq_parse("0000000000", &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(zkc__seq_parse("member_abc_2147483647", &v), 0);
    CU_ASSERT_EQUAL(v, INT32_MAX);
    /* After the wrap the server prints "%010d" of a negative int. */
    CU_ASSERT_EQUAL(zkc__seq_parse("latch--2147483648", &v), 0);
    CU_ASSERT_EQUAL(v, INT32_MIN);
    CU_ASSERT_EQUAL(zkc__seq_parse("latch--2147483647", &v), 0);
    CU_ASSERT_EQUAL(v, -2147483647);
    CU_ASSERT_EQUAL(zkc__seq_parse("lock--000000005", &v), 0);
    CU_ASSERT_EQUAL(v, -5);
    CU_ASSERT_EQUAL(zkc__seq_parse("_c_g-__READ__-1000000000", &v), 0);
    CU_ASSERT_EQUAL(v, -1000000000);
    CU_ASSERT_EQUAL(zkc__seq_parse("member_g_-2000000000", &v), 0);
    CU_ASSERT_EQUAL(v, -2000000000);
    /* A positive ten-digit number after a single separator stays positive. */
    CU_ASSERT_EQUAL(zkc__seq_parse("lock-1000000000", &v), 0);
    CU_ASSERT_EQUAL(v, 1000000000);
    /* Ten digits with a leading 0 after "--": the sign would make a number
     * "%010d" prints in ten characters, so the '-' is the prefix's
     * (found by tests/fuzz/fuzz_naming). */
    CU_ASSERT_EQUAL(zkc__seq_parse("orders--0803742851", &v), 0);
    CU_ASSERT_EQUAL(v, 803742851);
    CU_ASSERT_EQUAL(zkc__seq_parse("lock--0000000005", &v), 0);
    CU_ASSERT_EQUAL(v, 5);
}

static void test_seq_parse_malformed(void)
{
    int32_t v = 42;

    CU_ASSERT_EQUAL(zkc__seq_parse("", &v), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__seq_parse("123456789", &v), ZKC_EBADDATA); /* 9 chars */
    CU_ASSERT_EQUAL(zkc__seq_parse("lock-00000x0001", &v), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__seq_parse("lock-0000000001 ", &v), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__seq_parse("lock-9999999999", &v), ZKC_EBADDATA); /* > 2^31 */
    CU_ASSERT_EQUAL(zkc__seq_parse("lock-2147483649", &v), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__seq_parse("lock-2147483648", &v), ZKC_EBADDATA); /* no sign */
    CU_ASSERT_EQUAL(zkc__seq_parse("lock-+000000001", &v), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__seq_parse("lock------------", &v), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__seq_parse("lock--000000000", &v), ZKC_EBADDATA); /* no "-0" */
    CU_ASSERT_EQUAL(v, 42);                                               /* untouched on error */
}

static void test_seq_cmp_wrap(void)
{
    CU_ASSERT(zkc__seq_cmp(1, 2) < 0);
    CU_ASSERT(zkc__seq_cmp(2, 1) > 0);
    CU_ASSERT_EQUAL(zkc__seq_cmp(7, 7), 0);
    /* 2147483647 was created before -2147483648 (the counter wrapped). */
    CU_ASSERT(zkc__seq_cmp(INT32_MAX, INT32_MIN) < 0);
    CU_ASSERT(zkc__seq_cmp(INT32_MIN, INT32_MAX) > 0);
    CU_ASSERT(zkc__seq_cmp(INT32_MAX - 5, INT32_MIN + 3) < 0);
    CU_ASSERT(zkc__seq_cmp(INT32_MIN + 3, INT32_MAX - 5) > 0);
    CU_ASSERT(zkc__seq_cmp(-1, 0) < 0);
}

static void test_sort_across_wrap(void)
{
    char *names[] = {
        "_c_x-lock--2147483647", "garbage", "_c_y-lock-2147483646", "_c_z-lock--2147483648",
        "_c_w-lock-2147483647",  "short",   "_c_v-lock--000000005",
    };
    int n = (int)(sizeof(names) / sizeof(names[0]));
    int valid = zkc__sort_by_seq(names, n);

    CU_ASSERT_EQUAL(valid, 5);
    CU_ASSERT_STRING_EQUAL(names[0], "_c_y-lock-2147483646");
    CU_ASSERT_STRING_EQUAL(names[1], "_c_w-lock-2147483647");
    CU_ASSERT_STRING_EQUAL(names[2], "_c_z-lock--2147483648");
    CU_ASSERT_STRING_EQUAL(names[3], "_c_x-lock--2147483647");
    CU_ASSERT_STRING_EQUAL(names[4], "_c_v-lock--000000005");
    /* Malformed names go last, in their original order. */
    CU_ASSERT_STRING_EQUAL(names[5], "garbage");
    CU_ASSERT_STRING_EQUAL(names[6], "short");
}

static void test_sort_plain(void)
{
    char *names[] = {"member_b_0000000010", "member_a_0000000002", "member_c_0000000001"};

    CU_ASSERT_EQUAL(zkc__sort_by_seq(names, 3), 3);
    CU_ASSERT_STRING_EQUAL(names[0], "member_c_0000000001");
    CU_ASSERT_STRING_EQUAL(names[1], "member_a_0000000002");
    CU_ASSERT_STRING_EQUAL(names[2], "member_b_0000000010");
    CU_ASSERT_EQUAL(zkc__sort_by_seq(names, 0), 0);
    CU_ASSERT_EQUAL(zkc__find_containing(names, 3, "_a_"), 1);
    CU_ASSERT_EQUAL(zkc__find_containing(names, 3, "_q_"), -1);
}

static void test_paths(void)
{
    char *p = zkc__path_join("/zkcoord/orders", "members");

    CU_ASSERT_STRING_EQUAL(p, "/zkcoord/orders/members");
    free(p);
    p = zkc__path_join("/", "x");
    CU_ASSERT_STRING_EQUAL(p, "/x");
    free(p);
    CU_ASSERT_EQUAL(zkc__path_check("/"), 0);
    CU_ASSERT_EQUAL(zkc__path_check("/a/b_c-1"), 0);
    CU_ASSERT_EQUAL(zkc__path_check(""), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__path_check("a/b"), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__path_check("/a/"), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__path_check("/a//b"), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__path_check("/a/./b"), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__path_check("/a/.."), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__path_check("/a\nb"), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__path_check(NULL), ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(zkc__path_base("/a/b/lock-1"), "lock-1");
    CU_ASSERT_STRING_EQUAL(zkc__path_base("plain"), "plain");
}

int register_naming_suite(void)
{
    CU_pSuite s = CU_add_suite("naming", NULL, NULL);

    if (!s || !CU_add_test(s, "guid and protected prefix", test_guid) ||
        !CU_add_test(s, "protected guid malformed", test_protected_guid_malformed) ||
        !CU_add_test(s, "sequence parse", test_seq_parse) ||
        !CU_add_test(s, "sequence parse malformed", test_seq_parse_malformed) ||
        !CU_add_test(s, "sequence compare across 2^31 wrap", test_seq_cmp_wrap) ||
        !CU_add_test(s, "sort across 2^31 wrap", test_sort_across_wrap) ||
        !CU_add_test(s, "sort and find", test_sort_plain) || !CU_add_test(s, "paths", test_paths))
        return -1;
    return 0;
}
