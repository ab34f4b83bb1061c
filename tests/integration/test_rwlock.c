/* The read/write lock against a real server: shared readers, a writer
 * that waits for earlier readers and holds back later ones, no herd, and
 * downgrade. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "common/testutil.h"
#include "internal.h"
#include "queue.h"
#include "lock_suites.h"

enum { NR = 5 };

static void test_readers_share(void)
{
    zkc_session *s = NULL;
    zkc_rwlock *rw[NR] = {NULL};
    zkc_lock_info *info = NULL;
    int i, held = 0;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    for (i = 0; i < NR; i++)
        TU_CHECK(zkc_rwlock_new(&rw[i], s, "/rw/share", NULL) == 0, out);
    for (i = 0; i < NR; i++)
        if (zkc_lock_acquire(zkc_rwlock_read(rw[i]), 5000, NULL) == 0)
            held++;
    CU_ASSERT_EQUAL(held, NR);
    TU_CHECK(zkc_lock_inspect(s, "/rw/share", 5000, &info) == 0, out);
    CU_ASSERT_EQUAL(info->count, NR);
    for (i = 0; i < info->count; i++) {
        CU_ASSERT_EQUAL(info->entries[i].kind, ZKC_LOCK_ENTRY_READ);
        CU_ASSERT_EQUAL(info->entries[i].holds, 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(info->entries[i].name, "-__READ__"));
    }
    /* a writer cannot get in */
    CU_ASSERT_EQUAL(zkc_lock_acquire(zkc_rwlock_write(rw[0]), 0, NULL), ZKC_EBUSY);
    for (i = 0; i < NR; i++)
        CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_read(rw[i])), 0);
out:
    zkc_lock_info_free(info);
    for (i = 0; i < NR; i++)
        zkc_rwlock_free(rw[i]);
    zkc_session_close(s);
}

/* R1..R3 hold; W queues behind them; R4, R5 queue behind W. */
static void test_writer_order_no_herd(void)
{
    zkc_session *s[6] = {NULL};
    zkc_rwlock *rw[6] = {NULL};
    lt_rec w, r4, r5;
    unsigned long base;
    int i, opened = 0;

    lt_rec_init(&w);
    lt_rec_init(&r4);
    lt_rec_init(&r5);
    for (i = 0; i < 6; i++, opened++)
        TU_CHECK(tu_session(&s[i], NULL, 4000, NULL) == 0, out);
    for (i = 0; i < 6; i++)
        TU_CHECK(zkc_rwlock_new(&rw[i], s[i], "/rw/order", NULL) == 0, out);
    for (i = 0; i < 3; i++)
        TU_CHECK(zkc_lock_acquire(zkc_rwlock_read(rw[i]), 5000, NULL) == 0, out);
    TU_CHECK(zkc_lock_acquire_async(zkc_rwlock_write(rw[3]), lt_on_acquired, &w) == 0, out);
    TU_CHECK(lt_wait_children(s[0], "/rw/order", 4, 5000) == 0, out);
    TU_CHECK(zkc_lock_acquire_async(zkc_rwlock_read(rw[4]), lt_on_acquired, &r4) == 0, out);
    TU_CHECK(zkc_lock_acquire_async(zkc_rwlock_read(rw[5]), lt_on_acquired, &r5) == 0, out);
    TU_CHECK(lt_wait_children(s[0], "/rw/order", 6, 5000) == 0, out);
    /* Every waiter has its watch set once its getData answered: a session's
     * later request is answered after it. */
    for (i = 3; i < 6; i++)
        lt_children(s[i], "/rw/order");
    /* later readers are blocked by the queued writer */
    CU_ASSERT_EQUAL(lt_wait_acquired(&r4, 1, 300), -1);
    base = zkc__lock_watch_wakeups();
    /* R1 and R2 leave: nobody watches them (W watches R3). */
    CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_read(rw[0])), 0);
    CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_read(rw[1])), 0);
    CU_ASSERT_EQUAL(lt_wait_children(s[0], "/rw/order", 4, 5000), 0);
    CU_ASSERT_EQUAL(w.acquired, 0);
    /* R3 leaves: exactly W wakes, and is granted. */
    CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_read(rw[2])), 0);
    CU_ASSERT_EQUAL(lt_wait_acquired(&w, 1, 5000), 0);
    CU_ASSERT_EQUAL(w.rc, 0);
    CU_ASSERT_EQUAL(zkc__lock_watch_wakeups() - base, 1);
    CU_ASSERT_EQUAL(r4.acquired + r5.acquired, 0);
    /* W leaves: both readers behind it wake (that is the recipe). */
    CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_write(rw[3])), 0);
    CU_ASSERT_EQUAL(lt_wait_acquired(&r4, 1, 5000), 0);
    CU_ASSERT_EQUAL(lt_wait_acquired(&r5, 1, 5000), 0);
    CU_ASSERT_EQUAL(r4.rc, 0);
    CU_ASSERT_EQUAL(r5.rc, 0);
    CU_ASSERT_EQUAL(zkc__lock_watch_wakeups() - base, 3);
    CU_ASSERT(r4.token > w.token);
    CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_read(rw[4])), 0);
    CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_read(rw[5])), 0);
    CU_ASSERT_EQUAL(lt_children(s[0], "/rw/order"), 0);
out:
    for (i = 0; i < 6; i++)
        zkc_rwlock_free(rw[i]);
    for (i = 0; i < opened; i++)
        zkc_session_close(s[i]);
    lt_rec_destroy(&w);
    lt_rec_destroy(&r4);
    lt_rec_destroy(&r5);
}

static void test_downgrade(void)
{
    zkc_session *s = NULL, *o = NULL;
    zkc_rwlock *rw = NULL, *other = NULL;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&o, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc_rwlock_new(&rw, s, "/rw/down", NULL) == 0, out);
    TU_CHECK(zkc_rwlock_new(&other, o, "/rw/down", NULL) == 0, out);
    TU_CHECK(zkc_lock_acquire(zkc_rwlock_write(rw), 5000, NULL) == 0, out);
    /* another reader is held back by the writer */
    CU_ASSERT_EQUAL(zkc_lock_acquire(zkc_rwlock_read(other), 0, NULL), ZKC_EBUSY);
    /* our own read side gets in at once: downgrade */
    CU_ASSERT_EQUAL(zkc_lock_acquire(zkc_rwlock_read(rw), 5000, NULL), 0);
    CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_write(rw)), 0);
    CU_ASSERT_EQUAL(zkc_lock_is_held(zkc_rwlock_read(rw)), 1);
    /* now a reader: other readers share, writers wait */
    CU_ASSERT_EQUAL(zkc_lock_acquire(zkc_rwlock_read(other), 0, NULL), 0);
    CU_ASSERT_EQUAL(zkc_lock_acquire(zkc_rwlock_write(other), 0, NULL), ZKC_EBUSY);
    CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_read(other)), 0);
    CU_ASSERT_EQUAL(zkc_lock_release(zkc_rwlock_read(rw)), 0);
    CU_ASSERT_EQUAL(lt_children(s, "/rw/down"), 0);
out:
    zkc_rwlock_free(rw);
    zkc_rwlock_free(other);
    zkc_session_close(s);
    zkc_session_close(o);
}

int register_rwlock_suite(void)
{
    CU_pSuite s = CU_add_suite("rwlock", NULL, NULL);

    if (!s || !CU_add_test(s, "readers hold at once", test_readers_share) ||
        !CU_add_test(s, "writer order, no herd", test_writer_order_no_herd) ||
        !CU_add_test(s, "downgrade write -> read", test_downgrade))
        return -1;
    return 0;
}
