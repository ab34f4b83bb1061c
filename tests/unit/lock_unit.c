/* Unit tests of the queue order (queue.h, the one rule of every recipe,
 * observer and inspection): crafted node names across the 2^31 sequence
 * wrap sort in creation order, for the mutex ("lock-"), the read/write lock
 * ("__READ__"/"__WRIT__") and the election ("latch-") alike; before the
 * wrap the order is Curator's (string compare of the suffix); foreign names
 * are left out; the near-wrap warning threshold. No server. */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "naming.h"
#include "queue.h"

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

/* The suffix after the kind's body, as Curator's
 * StandardLockInternalsDriver.fixForSorting keeps it. */
static const char *suffix(const char *name, const char *body)
{
    const char *p = strstr(name, body);

    return p ? p + strlen(body) : name;
}

static int curator_cmp(const void *a, const void *b)
{
    return strcmp(suffix(*(char *const *)a, "lock-"), suffix(*(char *const *)b, "lock-"));
}

/* Before the wrap, ours is exactly Curator's order: 2000 random lines of
 * positive sequence numbers sort the same way under both. */
static void test_same_as_curator_before_wrap(void)
{
    enum { N = 12 };
    char buf[N][96], *ours[N], *theirs[N];
    struct String_vector v;
    char **line = NULL;
    int round, i, n, same = 1;

    srand(42);
    for (round = 0; round < 2000; round++) {
        for (i = 0; i < N; i++) {
            long seq = ((long)rand() << 8 ^ rand()) % 2147483647L;
            snprintf(buf[i], sizeof(buf[i]), G "lock-%010ld", seq);
            ours[i] = theirs[i] = buf[i];
        }
        v.count = N;
        v.data = ours;
        n = zkc__q_line(&v, ZKC__Q_BIT(ZKC__Q_MUTEX), NULL, &line);
        qsort(theirs, N, sizeof(theirs[0]), curator_cmp);
        CU_ASSERT_EQUAL(n, N);
        for (i = 0; i < n && same; i++)
            same = strcmp(suffix(line[i], "lock-"), suffix(theirs[i], "lock-")) == 0;
        free(line);
        line = NULL;
    }
    CU_ASSERT_EQUAL(same, 1);
}

/* Across the wrap: creation (FIFO) order for us; Curator's string order
 * would put the newest node, -2147483648, ahead of the holder 2147483647
 * (the reason Curator is unsafe past the wrap on its own). */
static void test_line_across_wrap(void)
{
    char *kids[] = {
        G "latch--2147483647", "other-node",          G "latch-2147483647",
        G "lock-0000000001",   G "latch--2147483648",
    };
    struct String_vector v = {5, kids};
    char **line = NULL;

    CU_ASSERT_EQUAL(zkc__q_line(&v, ZKC__Q_BIT(ZKC__Q_LATCH), NULL, &line), 3);
    CU_ASSERT_STRING_EQUAL(line[0], G "latch-2147483647");
    CU_ASSERT_STRING_EQUAL(line[1], G "latch--2147483648");
    CU_ASSERT_STRING_EQUAL(line[2], G "latch--2147483647");
    CU_ASSERT(strcmp(suffix(line[1], "latch-"), suffix(line[0], "latch-")) < 0);
    free(line);
}

/* Foreign names (found not ephemeral) are not in the line, whatever their
 * sequence; kinds pick the recipe's entries. */
static void test_line_foreign_and_kinds(void)
{
    char *kids[] = {
        G "__WRIT__0000000005", "_c_00000000-0000-4000-8000-000000000000-__WRIT__-000000001",
        G "__READ__0000000004", G "lock-0000000001",
        G "lease-0000000002",
    };
    struct String_vector v = {5, kids};
    zkc__q_foreign f = {NULL, 0};
    char **line = NULL;

    CU_ASSERT_EQUAL(zkc__q_line(&v, ZKC__Q_BIT(ZKC__Q_READ) | ZKC__Q_BIT(ZKC__Q_WRITE), &f, &line),
                    3);
    CU_ASSERT_STRING_EQUAL(line[0], kids[1]); /* -1 sorts first ... */
    free(line);
    CU_ASSERT_EQUAL(zkc__q_foreign_add(&f, kids[1]), 0);
    CU_ASSERT_EQUAL(zkc__q_foreign_add(&f, kids[1]), 0);
    CU_ASSERT_EQUAL(f.n, 1);
    CU_ASSERT_EQUAL(zkc__q_line(&v, ZKC__Q_BIT(ZKC__Q_READ) | ZKC__Q_BIT(ZKC__Q_WRITE), &f, &line),
                    2);
    CU_ASSERT_STRING_EQUAL(line[0], kids[2]); /* ... until known foreign */
    CU_ASSERT_STRING_EQUAL(line[1], kids[0]);
    free(line);
    CU_ASSERT_EQUAL(zkc__q_kind(kids[3]), ZKC__Q_MUTEX);
    CU_ASSERT_EQUAL(zkc__q_kind(kids[4]), ZKC__Q_LEASE);
    CU_ASSERT_EQUAL(zkc__q_kind("member_x_0000000001"), -1);
    zkc__q_foreign_clear(&f);
    CU_ASSERT_EQUAL(f.n, 0);
}

static void test_near_wrap(void)
{
    struct Stat st;

    CU_ASSERT_EQUAL(zkc__q_near_wrap(0), 0);
    CU_ASSERT_EQUAL(zkc__q_near_wrap(INT32_MAX - (1 << 24) - 1), 0);
    CU_ASSERT_EQUAL(zkc__q_near_wrap(INT32_MAX - (1 << 24)), 1);
    CU_ASSERT_EQUAL(zkc__q_near_wrap(INT32_MAX), 1);
    CU_ASSERT_EQUAL(zkc__q_near_wrap(INT32_MIN), 1);
    CU_ASSERT_EQUAL(zkc__q_near_wrap(-1), 1);
    memset(&st, 0, sizeof(st));
    CU_ASSERT_EQUAL(zkc__q_eligible(&st), 0);
    st.ephemeralOwner = 0x10000abcdLL;
    CU_ASSERT_EQUAL(zkc__q_eligible(&st), 1);
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
        !CU_add_test(s, "numeric, not string, order", test_plain_order) ||
        !CU_add_test(s, "same as Curator's before the wrap", test_same_as_curator_before_wrap) ||
        !CU_add_test(s, "line across the wrap: FIFO, not Curator's", test_line_across_wrap) ||
        !CU_add_test(s, "line: kinds, foreign nodes left out", test_line_foreign_and_kinds) ||
        !CU_add_test(s, "near-wrap threshold, eligibility", test_near_wrap)) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
