/* The counting semaphore against a real server: never more than N holders
 * under churn; timeout leaves nothing behind. */
#include <CUnit/CUnit.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "common/testutil.h"
#include "internal.h"
#include "lock_suites.h"

enum { SEM_N = 3, SEM_THREADS = 8, SEM_ROUNDS = 5 };

struct churn {
    int inside;
    int max_inside;
    int grants;
    int errors;
};

struct churn_arg {
    struct churn *c;
    zkc_session *s;
};

static void *churn_thread(void *p)
{
    struct churn_arg *a = p;
    zkc_semaphore *m = NULL;
    int r, in, seen;

    if (zkc_semaphore_new(&m, a->s, "/sem/churn", SEM_N, NULL) != 0) {
        __atomic_add_fetch(&a->c->errors, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    for (r = 0; r < SEM_ROUNDS; r++) {
        if (zkc_semaphore_acquire(m, 30000, NULL) != 0) {
            __atomic_add_fetch(&a->c->errors, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        in = __atomic_add_fetch(&a->c->inside, 1, __ATOMIC_SEQ_CST);
        seen = __atomic_load_n(&a->c->max_inside, __ATOMIC_SEQ_CST);
        while (in > seen && !__atomic_compare_exchange_n(&a->c->max_inside, &seen, in, 0,
                                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            ;
        __atomic_add_fetch(&a->c->grants, 1, __ATOMIC_SEQ_CST);
        sched_yield();
        __atomic_sub_fetch(&a->c->inside, 1, __ATOMIC_SEQ_CST);
        if (zkc_semaphore_release(m) != 0)
            __atomic_add_fetch(&a->c->errors, 1, __ATOMIC_SEQ_CST);
    }
    zkc_semaphore_free(m);
    return NULL;
}

static void test_never_more_than_n(void)
{
    struct churn c;
    struct churn_arg a[SEM_THREADS];
    pthread_t t[SEM_THREADS];
    zkc_session *s[SEM_THREADS];
    int i, opened = 0;

    memset(&c, 0, sizeof(c));
    for (i = 0; i < SEM_THREADS; i++, opened++)
        TU_CHECK(tu_session(&s[i], NULL, 10000, NULL) == 0, out);
    for (i = 0; i < SEM_THREADS; i++) {
        a[i].c = &c;
        a[i].s = s[i];
        pthread_create(&t[i], NULL, churn_thread, &a[i]);
    }
    for (i = 0; i < SEM_THREADS; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(c.errors, 0);
    CU_ASSERT_EQUAL(c.grants, SEM_THREADS * SEM_ROUNDS);
    CU_ASSERT(c.max_inside >= 1);
    CU_ASSERT(c.max_inside <= SEM_N);
    CU_ASSERT_EQUAL(lt_children(s[0], "/sem/churn/leases"), 0);
    CU_ASSERT_EQUAL(lt_children(s[0], "/sem/churn/locks"), 0);
out:
    for (i = 0; i < opened; i++)
        zkc_session_close(s[i]);
}

static void test_semaphore_timeout(void)
{
    zkc_session *sa = NULL, *sb = NULL;
    zkc_semaphore *a = NULL, *b = NULL, *bad = NULL;
    zkc_lock_info *info = NULL;
    int64_t tok = 0;

    CU_ASSERT_EQUAL_FATAL(tu_session(&sa, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sb, NULL, 4000, NULL) == 0, out);
    CU_ASSERT_EQUAL(zkc_semaphore_new(&bad, sa, "/sem/one", 0, NULL), ZKC_EINVAL);
    TU_CHECK(zkc_semaphore_new(&a, sa, "/sem/one", 1, NULL) == 0, out);
    TU_CHECK(zkc_semaphore_new(&b, sb, "/sem/one", 1, NULL) == 0, out);
    TU_CHECK(zkc_semaphore_acquire(a, 5000, &tok) == 0, out);
    CU_ASSERT(tok > 0);
    CU_ASSERT_EQUAL(zkc_semaphore_acquire(a, 5000, NULL), ZKC_EBUSY);
    CU_ASSERT_EQUAL(zkc_semaphore_acquire(b, 0, NULL), ZKC_ETIMEDOUT);
    CU_ASSERT_EQUAL(zkc_semaphore_acquire(b, 300, NULL), ZKC_ETIMEDOUT);
    CU_ASSERT_EQUAL(lt_children(sb, "/sem/one/leases"), 1);
    CU_ASSERT_EQUAL(lt_children(sb, "/sem/one/locks"), 0);
    TU_CHECK(zkc_lock_inspect(sb, "/sem/one/leases", 5000, &info) == 0, out);
    CU_ASSERT_EQUAL(info->count, 1);
    if (info->count == 1) {
        CU_ASSERT_EQUAL(info->entries[0].kind, ZKC_LOCK_ENTRY_LEASE);
        CU_ASSERT_EQUAL(info->entries[0].token, tok);
        CU_ASSERT_PTR_NOT_NULL(strstr(info->entries[0].name, "-lease-"));
    }
    CU_ASSERT_EQUAL(zkc_semaphore_release(a), 0);
    CU_ASSERT_EQUAL(zkc_semaphore_release(a), ZKC_ENOTHELD);
    CU_ASSERT_EQUAL(zkc_semaphore_acquire(b, 5000, NULL), 0);
    CU_ASSERT_EQUAL(zkc_semaphore_is_held(b), 1);
    CU_ASSERT_EQUAL(zkc_semaphore_release(b), 0);
out:
    zkc_lock_info_free(info);
    zkc_semaphore_free(a);
    zkc_semaphore_free(b);
    zkc_session_close(sa);
    zkc_session_close(sb);
}

int register_semaphore_suite(void)
{
    CU_pSuite s = CU_add_suite("semaphore", NULL, NULL);

    if (!s || !CU_add_test(s, "never more than N holders under churn", test_never_more_than_n) ||
        !CU_add_test(s, "timeout and try leave nothing", test_semaphore_timeout))
        return -1;
    return 0;
}
