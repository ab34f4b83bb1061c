/* Unit tests of the counter's pure logic: Curator's byte format, Java-style
 * wrapping arithmetic, and the write plan across the znode version wrap
 * (CURATOR-688), which no server test can reach (2^32 writes). No server. */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <string.h>

#include "counter_logic.h"
#include "zkcoord/zkcoord.h"

static void test_encode_matches_java(void)
{
    char b[8];

    /* ByteBuffer.putInt(1) / putInt(-2) / putLong(0x0102030405060708) */
    zkc__counter_encode(1, 4, b);
    CU_ASSERT_EQUAL(memcmp(b, "\x00\x00\x00\x01", 4), 0);
    zkc__counter_encode(-2, 4, b);
    CU_ASSERT_EQUAL(memcmp(b, "\xff\xff\xff\xfe", 4), 0);
    zkc__counter_encode(0x0102030405060708LL, 8, b);
    CU_ASSERT_EQUAL(memcmp(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8), 0);
    zkc__counter_encode(INT64_MIN, 8, b);
    CU_ASSERT_EQUAL(memcmp(b, "\x80\x00\x00\x00\x00\x00\x00\x00", 8), 0);
}

static void test_decode(void)
{
    int64_t v = 42;

    CU_ASSERT_EQUAL(zkc__counter_decode("\xff\xff\xff\xfe", 4, 4, &v), 0);
    CU_ASSERT_EQUAL(v, -2);
    CU_ASSERT_EQUAL(zkc__counter_decode("\x7f\xff\xff\xff", 4, 4, &v), 0);
    CU_ASSERT_EQUAL(v, INT32_MAX);
    CU_ASSERT_EQUAL(zkc__counter_decode("\x00\x00\x00\x00\x00\x00\x01\x00", 8, 8, &v), 0);
    CU_ASSERT_EQUAL(v, 256);
    CU_ASSERT_EQUAL(zkc__counter_decode("\xff\xff\xff\xff\xff\xff\xff\xff", 8, 8, &v), 0);
    CU_ASSERT_EQUAL(v, -1);
    /* empty data is 0 (DistributedAtomicLong.bytesToValue) */
    v = 42;
    CU_ASSERT_EQUAL(zkc__counter_decode("", 0, 8, &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(zkc__counter_decode(NULL, 0, 4, &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    /* the other width, or garbage, is malformed */
    CU_ASSERT_EQUAL(zkc__counter_decode("\x00\x00\x00\x01", 4, 8, &v), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(zkc__counter_decode("\x00\x00\x00\x00\x00\x00\x00\x01", 8, 4, &v),
                    ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__counter_decode("abc", 3, 4, &v), ZKC_EBADDATA);
}

static void test_wrap_add(void)
{
    CU_ASSERT_EQUAL(zkc__counter_wrap_add(INT32_MAX, 1, 4), INT32_MIN);
    CU_ASSERT_EQUAL(zkc__counter_wrap_add(INT32_MIN, -1, 4), INT32_MAX);
    CU_ASSERT_EQUAL(zkc__counter_wrap_add(5, -7, 4), -2);
    CU_ASSERT_EQUAL(zkc__counter_wrap_add(INT64_MAX, 1, 8), INT64_MIN);
    CU_ASSERT_EQUAL(zkc__counter_wrap_add(100, 23, 8), 123);
    CU_ASSERT_EQUAL(zkc__counter_fits(INT32_MAX, 4), 1);
    CU_ASSERT_EQUAL(zkc__counter_fits((int64_t)INT32_MAX + 1, 4), 0);
    CU_ASSERT_EQUAL(zkc__counter_fits((int64_t)INT32_MIN - 1, 4), 0);
    CU_ASSERT_EQUAL(zkc__counter_fits(INT64_MIN, 8), 1);
}

/* CURATOR-688: Curator 5.4's SharedValue.updateValue() keeps its cached
 * value unless the new version is greater, so after the wrap it never
 * updates. Ours: versions compared with == only, the next version wraps. */
static void test_version_wrap(void)
{
    CU_ASSERT_EQUAL(zkc__version_next(0), 1);
    CU_ASSERT_EQUAL(zkc__version_next(INT32_MAX), INT32_MIN);
    CU_ASSERT_EQUAL(zkc__version_next(-3), -2);
    CU_ASSERT_EQUAL(zkc__version_next(-2), -1);
    CU_ASSERT_EQUAL(zkc__version_next(-1), 0);
}

static void test_cas_plan(void)
{
    CU_ASSERT_EQUAL(zkc__counter_cas_plan(0, 0), ZKC__CAS_CREATE);
    CU_ASSERT_EQUAL(zkc__counter_cas_plan(1, 0), ZKC__CAS_SET);
    CU_ASSERT_EQUAL(zkc__counter_cas_plan(1, 7), ZKC__CAS_SET);
    /* across the wrap: plain conditional sets, the server compares ints */
    CU_ASSERT_EQUAL(zkc__counter_cas_plan(1, INT32_MAX), ZKC__CAS_SET);
    CU_ASSERT_EQUAL(zkc__counter_cas_plan(1, INT32_MIN), ZKC__CAS_SET);
    CU_ASSERT_EQUAL(zkc__counter_cas_plan(1, -3), ZKC__CAS_SET);
    /* the write from -2 would land at -1, where "expected -1" means any
     * version: skip it inside one multi */
    CU_ASSERT_EQUAL(zkc__counter_cas_plan(1, -2), ZKC__CAS_SET_SKIP);
    /* a node someone else left at -1 cannot be compared-and-set */
    CU_ASSERT_EQUAL(zkc__counter_cas_plan(1, -1), ZKC__CAS_IMPOSSIBLE);
}

static void test_changed_uses_mzxid(void)
{
    /* first read is always reported */
    CU_ASSERT_EQUAL(zkc__counter_changed(0, 0, 0, 0, 0), 1);
    /* same write seen twice: not reported again */
    CU_ASSERT_EQUAL(zkc__counter_changed(1, 1, 77, 1, 77), 0);
    /* a write: reported, whatever the versions did (no ordering used) */
    CU_ASSERT_EQUAL(zkc__counter_changed(1, 1, 77, 1, 78), 1);
    /* deleted, created */
    CU_ASSERT_EQUAL(zkc__counter_changed(1, 1, 77, 0, 0), 1);
    CU_ASSERT_EQUAL(zkc__counter_changed(1, 0, 0, 1, 80), 1);
    CU_ASSERT_EQUAL(zkc__counter_changed(1, 0, 0, 0, 0), 0);
}

int main(void)
{
    CU_pSuite s;
    int failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("counter logic", NULL, NULL);
    if (!s || !CU_add_test(s, "encode as Java ByteBuffer", test_encode_matches_java) ||
        !CU_add_test(s, "decode, empty is 0, wrong width malformed", test_decode) ||
        !CU_add_test(s, "wrapping arithmetic at the width", test_wrap_add) ||
        !CU_add_test(s, "znode version wraps", test_version_wrap) ||
        !CU_add_test(s, "CAS plan across the version wrap", test_cas_plan) ||
        !CU_add_test(s, "change detection by mzxid", test_changed_uses_mzxid)) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
