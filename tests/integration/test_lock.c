/* The fair mutex against a real server: exclusion and FIFO order under
 * contention, loss of the holder's session, connection loss during an
 * acquire, cancel and timeout, fencing, inspection, requests per cycle. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proxy.h"
#include "common/testutil.h"
#include "internal.h"
#include "queue.h"
#include "naming.h"
#include "lock_suites.h"

/* ------------------------------------------------------------ helpers */

int lt_children(zkc_session *s, const char *path)
{
    zkc__call *c = zkc__call_new();
    zhandle_t *zh;
    int n = -1;

    if (!c)
        return -1;
    zh = zkc__zh_lock(s, NULL);
    if (zh) {
        zkc__call_ref(c);
        if (zoo_aget_children(zh, path, 0, zkc__call_strings_done, c) != ZOK)
            zkc__call_unref(c);
        zkc__zh_unlock(s);
        if (zkc__call_wait(c, 10000) == 0 && c->rc == ZOK)
            n = c->children.count;
        else if (c->done && c->rc == ZNONODE)
            n = 0;
    }
    zkc__call_unref(c);
    return n;
}

/* A waiter on a folder's children. Its watches (per request, zkc__qwatch)
 * may outlive the wait, so it is on the heap: one reference for the
 * waiter, one per watch set. */
struct cw {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    unsigned changes;
    int refs; /* atomic */
};

static void cw_unref(struct cw *w)
{
    if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_SEQ_CST) != 0)
        return;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void cw_fn(zkc__qwatch *q, int type)
{
    struct cw *w = q->owner;

    if (type) {
        pthread_mutex_lock(&w->mu);
        w->changes++;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
    }
    cw_unref(w);
}

struct cw_req {
    zkc__call *c;
    zkc__qwatch *q;
};

static void cw_listed(int rc, const struct String_vector *v, const void *data)
{
    struct cw_req *r = (struct cw_req *)data;

    zkc__qwatch_reply(r->q, rc == ZOK);
    zkc__call_strings_done(rc, v, r->c);
    free(r);
}

/* getChildren of `path` with a watch of its own that bumps w->changes when
 * it fires; the count of children, 0 for a missing folder, -1 when it could
 * not be asked. */
static int cw_list(zkc_session *s, struct cw *w, const char *path, int timeout_ms)
{
    struct cw_req *r = calloc(1, sizeof(*r));
    zkc__call *c;
    zhandle_t *zh;
    unsigned gen;
    int n = -1;

    if (!r || !(r->c = zkc__call_new())) {
        free(r);
        return -1;
    }
    __atomic_add_fetch(&w->refs, 1, __ATOMIC_SEQ_CST);
    if (!(r->q = zkc__qwatch_new(s, path, cw_fn, w))) {
        cw_unref(w);
        zkc__call_unref(r->c);
        free(r);
        return -1;
    }
    c = r->c;
    zkc__call_ref(c); /* the completion's; r is the completion's once sent */
    if ((zh = zkc__zh_lock(s, &gen))) {
        zkc__qwatch_sent(r->q, gen);
        if (zoo_awget_children(zh, path, zkc__qwatch_watcher, r->q, cw_listed, r) != ZOK)
            zh = NULL;
        zkc__zh_unlock(s);
    }
    if (!zh) { /* not sent: end the watch and the request here */
        cw_listed(ZCONNECTIONLOSS, NULL, r);
        zkc__call_unref(c);
        return -1;
    }
    if (zkc__call_wait(c, timeout_ms) == 0)
        n = c->rc == ZOK ? c->children.count : c->rc == ZNONODE ? 0 : -1;
    zkc__call_unref(c);
    return n;
}

int lt_wait_children(zkc_session *s, const char *path, int expect, int timeout_ms)
{
    struct cw *w = calloc(1, sizeof(*w));
    long long end = tu_now_ms() + timeout_ms;
    int rc = -1;

    if (!w)
        return -1;
    pthread_mutex_init(&w->mu, NULL);
    zkc__cond_init(&w->cond);
    w->refs = 1;
    while (tu_now_ms() < end) {
        unsigned snap;
        int n;
        pthread_mutex_lock(&w->mu);
        snap = w->changes;
        pthread_mutex_unlock(&w->mu);
        n = cw_list(s, w, path, (int)(end - tu_now_ms()));
        if (n == expect) {
            rc = 0;
            break;
        }
        /* Wait for the children watch to fire (or ask again in 100 ms when
         * not connected). */
        pthread_mutex_lock(&w->mu);
        while (w->changes == snap && tu_now_ms() < end) {
            struct timespec ts;
            zkc__deadline(&ts, n < 0 ? 100 : (int)(end - tu_now_ms()));
            if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) == ETIMEDOUT && n < 0)
                break; /* not connected: ask again */
        }
        pthread_mutex_unlock(&w->mu);
    }
    cw_unref(w);
    return rc;
}

void lt_rec_init(lt_rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    zkc__cond_init(&r->cond);
}

void lt_rec_destroy(lt_rec *r)
{
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
}

void lt_on_event(zkc_lock *l, zkc_lock_event ev, int64_t token, void *user_data)
{
    lt_rec *r = user_data;

    (void)l;
    (void)token;
    pthread_mutex_lock(&r->mu);
    if (r->nevents < 64)
        r->events[r->nevents++] = (int)ev;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

void lt_on_acquired(zkc_lock *l, int rc, int64_t token, void *user_data)
{
    lt_rec *r = user_data;

    (void)l;
    pthread_mutex_lock(&r->mu);
    r->acquired++;
    r->rc = rc;
    r->token = token;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

int lt_wait_event(lt_rec *r, int from, int ev, int timeout_ms)
{
    struct timespec ts;
    int i, found = -1;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        for (i = from; i < r->nevents && found < 0; i++)
            if (r->events[i] == ev)
                found = i;
        if (found >= 0 || pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

int lt_wait_acquired(lt_rec *r, int n, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (r->acquired < n)
        if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT) {
            rc = r->acquired >= n ? 0 : -1;
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static zkc_lock *new_lock(zkc_session *s, const char *path, const char *owner, lt_rec *rec)
{
    zkc_lock_opts o;
    zkc_lock *l = NULL;

    zkc_lock_opts_init(&o);
    o.owner_id = owner;
    if (rec) {
        o.on_event = lt_on_event;
        o.user_data = rec;
    }
    if (zkc_lock_new(&l, s, path, &o) != 0)
        return NULL;
    return l;
}

/* -------------------------------------------------------------- tests */

static void test_basic_reentrant(void)
{
    zkc_session *s = NULL;
    zkc_lock *l = NULL, *bad = NULL;
    zkc_lock_info *info = NULL;
    int64_t t1 = 0, t2 = 0;
    char path[256];
    int32_t seq;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    CU_ASSERT_EQUAL(zkc_lock_new(&bad, s, "no/slash", NULL), ZKC_EINVAL);
    CU_ASSERT_PTR_NULL(bad);
    l = new_lock(s, "/locks/basic", "owner-1", NULL);
    TU_CHECK(l != NULL, out);
    CU_ASSERT_EQUAL(zkc_lock_release(l), ZKC_ENOTHELD);
    CU_ASSERT_EQUAL(zkc_lock_fenced_multi(l, NULL, 0, 1000), ZKC_ENOTHELD);
    TU_CHECK(zkc_lock_acquire(l, 5000, &t1) == 0, out);
    CU_ASSERT(t1 > 0);
    CU_ASSERT_EQUAL(zkc_lock_is_held(l), 1);
    CU_ASSERT_EQUAL(zkc_lock_acquire(l, 5000, &t2), 0); /* reentrant */
    CU_ASSERT_EQUAL(t2, t1);
    CU_ASSERT_EQUAL(zkc_lock_token(l), t1);
    CU_ASSERT_EQUAL(zkc_lock_node_path(l, path, sizeof(path)), 0);
    /* Curator's InterProcessMutex layout: _c_<uuid>-lock-<10 digits> */
    CU_ASSERT_EQUAL(strncmp(path, "/locks/basic/_c_", 16), 0);
    CU_ASSERT_EQUAL(strncmp(path + 16 + ZKC_GUID_LEN, "-lock-", 6), 0);
    CU_ASSERT_EQUAL(strlen(path), 16 + ZKC_GUID_LEN + 6 + 10);
    CU_ASSERT_EQUAL(zkc__seq_parse(zkc__path_base(path), &seq), 0);
    TU_CHECK(zkc_lock_inspect(s, "/locks/basic", 5000, &info) == 0, out);
    CU_ASSERT_EQUAL(info->count, 1);
    if (info->count == 1) {
        CU_ASSERT_STRING_EQUAL(info->entries[0].owner_id, "owner-1");
        CU_ASSERT_EQUAL(info->entries[0].token, t1);
        CU_ASSERT_EQUAL(info->entries[0].session_id, zkc_session_id(s));
        CU_ASSERT_EQUAL(info->entries[0].holds, 1);
        CU_ASSERT_EQUAL(info->entries[0].kind, ZKC_LOCK_ENTRY_MUTEX);
        CU_ASSERT_STRING_EQUAL(info->entries[0].name, zkc__path_base(path));
    }
    CU_ASSERT_EQUAL(zkc_lock_release(l), 0);
    CU_ASSERT_EQUAL(zkc_lock_is_held(l), 1); /* count 2 -> 1 */
    CU_ASSERT_EQUAL(zkc_lock_release(l), 0);
    CU_ASSERT_EQUAL(zkc_lock_is_held(l), 0);
    CU_ASSERT_EQUAL(zkc_lock_release(l), ZKC_ENOTHELD);
    CU_ASSERT_EQUAL(lt_children(s, "/locks/basic"), 0);
    CU_ASSERT_EQUAL(zkc_lock_inspect(s, "/locks/none", 5000, &info), ZKC_ENONODE);
out:
    zkc_lock_info_free(info);
    zkc_lock_free(l);
    zkc_session_close(s);
}

/* ---- mutual exclusion under contention */

enum { MX_THREADS = 8, MX_ROUNDS = 12 };

struct mx_shared {
    pthread_mutex_t mu; /* guards the grant log only, not the counter */
    volatile long counter;
    int32_t grants[MX_THREADS * MX_ROUNDS];
    int64_t tokens[MX_THREADS * MX_ROUNDS];
    int ngrants;
    int inside; /* holders at once, as seen under the lock */
    int max_inside;
    int errors;
};

struct mx_arg {
    struct mx_shared *sh;
    zkc_session *s;
    int id;
};

static void *mx_thread(void *p)
{
    struct mx_arg *a = p;
    struct mx_shared *sh = a->sh;
    char owner[32];
    zkc_lock *l;
    int r;

    snprintf(owner, sizeof(owner), "worker-%d", a->id);
    l = new_lock(a->s, "/locks/mx", owner, NULL);
    if (!l) {
        __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    for (r = 0; r < MX_ROUNDS; r++) {
        int64_t tok;
        char path[256];
        int32_t seq = 0;
        long v;
        int in;
        if (zkc_lock_acquire(l, 30000, &tok) != 0) {
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        in = __atomic_add_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
        zkc_lock_node_path(l, path, sizeof(path));
        zkc__seq_parse(zkc__path_base(path), &seq);
        pthread_mutex_lock(&sh->mu);
        if (in > sh->max_inside)
            sh->max_inside = in;
        sh->grants[sh->ngrants] = seq;
        sh->tokens[sh->ngrants++] = tok;
        pthread_mutex_unlock(&sh->mu);
        /* A read-modify-write with a window: loses updates without the lock. */
        v = sh->counter;
        sched_yield();
        sh->counter = v + 1;
        __atomic_sub_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
        if (zkc_lock_release(l) != 0)
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
    }
    zkc_lock_free(l);
    return NULL;
}

static void test_mutual_exclusion(void)
{
    static struct mx_shared sh;
    struct mx_arg a[MX_THREADS];
    pthread_t t[MX_THREADS];
    zkc_session *s[MX_THREADS];
    int i, opened = 0, fifo = 1, tokens_up = 1;

    memset(&sh, 0, sizeof(sh));
    pthread_mutex_init(&sh.mu, NULL);
    for (i = 0; i < MX_THREADS; i++, opened++)
        TU_CHECK(tu_session(&s[i], NULL, 10000, NULL) == 0, out);
    for (i = 0; i < MX_THREADS; i++) {
        a[i].sh = &sh;
        a[i].s = s[i];
        a[i].id = i;
        pthread_create(&t[i], NULL, mx_thread, &a[i]);
    }
    for (i = 0; i < MX_THREADS; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(sh.errors, 0);
    CU_ASSERT_EQUAL(sh.counter, MX_THREADS * MX_ROUNDS);
    CU_ASSERT_EQUAL(sh.ngrants, MX_THREADS * MX_ROUNDS);
    CU_ASSERT_EQUAL(sh.max_inside, 1);
    /* FIFO: the lock went to queue entries in sequence order, and every
     * holder's fencing token is above its predecessor's. */
    for (i = 1; i < sh.ngrants; i++) {
        if (zkc__seq_cmp(sh.grants[i - 1], sh.grants[i]) >= 0)
            fifo = 0;
        if (sh.tokens[i - 1] >= sh.tokens[i])
            tokens_up = 0;
    }
    CU_ASSERT_EQUAL(fifo, 1);
    CU_ASSERT_EQUAL(tokens_up, 1);
    CU_ASSERT_EQUAL(lt_children(s[0], "/locks/mx"), 0);
out:
    for (i = 0; i < opened; i++)
        zkc_session_close(s[i]);
    pthread_mutex_destroy(&sh.mu);
}

/* ---- try, timeout, cancel */

static void test_try_timeout_cancel(void)
{
    zkc_session *sa = NULL, *sb = NULL;
    zkc_lock *a = NULL, *b = NULL;
    lt_rec rb;
    long long t0;
    int rc;

    lt_rec_init(&rb);
    CU_ASSERT_EQUAL_FATAL(tu_session(&sa, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sb, NULL, 4000, NULL) == 0, out);
    a = new_lock(sa, "/locks/ttc", "a", NULL);
    b = new_lock(sb, "/locks/ttc", "b", NULL);
    TU_CHECK(a && b, out);
    TU_CHECK(zkc_lock_acquire(a, 5000, NULL) == 0, out);
    /* try: busy, nothing left (the session's later read sees its delete) */
    CU_ASSERT_EQUAL(zkc_lock_acquire(b, 0, NULL), ZKC_EBUSY);
    CU_ASSERT_EQUAL(lt_children(sb, "/locks/ttc"), 1);
    /* timeout: the deadline is kept, nothing left */
    t0 = tu_now_ms();
    CU_ASSERT_EQUAL(zkc_lock_acquire(b, 300, NULL), ZKC_ETIMEDOUT);
    CU_ASSERT(tu_now_ms() - t0 >= 290);
    CU_ASSERT_EQUAL(lt_wait_children(sb, "/locks/ttc", 1, 5000), 0);
    CU_ASSERT_EQUAL(zkc_lock_is_held(b), 0);
    /* cancel of a queued async acquire */
    CU_ASSERT_EQUAL(zkc_lock_cancel(b), ZKC_ENONODE);
    TU_CHECK(zkc_lock_acquire_async(b, lt_on_acquired, &rb) == 0, out);
    CU_ASSERT_EQUAL(zkc_lock_acquire_async(b, lt_on_acquired, &rb), ZKC_EBUSY);
    CU_ASSERT_EQUAL(zkc_lock_acquire(b, 100, NULL), ZKC_EBUSY);
    CU_ASSERT_EQUAL(lt_wait_children(sb, "/locks/ttc", 2, 5000), 0);
    CU_ASSERT_EQUAL(zkc_lock_cancel(b), 0);
    CU_ASSERT_EQUAL(lt_wait_acquired(&rb, 1, 5000), 0);
    CU_ASSERT_EQUAL(rb.rc, ZKC_ECANCELED);
    CU_ASSERT_EQUAL(lt_wait_children(sb, "/locks/ttc", 1, 5000), 0);
    /* cancel while the create is still in flight: its node is deleted
     * when the reply comes */
    for (rc = 0; rc < 5; rc++) {
        TU_CHECK(zkc_lock_acquire_async(b, lt_on_acquired, &rb) == 0, out);
        CU_ASSERT_EQUAL(zkc_lock_cancel(b), 0);
    }
    CU_ASSERT_EQUAL(lt_wait_acquired(&rb, 6, 5000), 0);
    CU_ASSERT_EQUAL(rb.rc, ZKC_ECANCELED);
    CU_ASSERT_EQUAL(lt_wait_children(sb, "/locks/ttc", 1, 5000), 0);
    /* async grant after the holder releases */
    TU_CHECK(zkc_lock_acquire_async(b, lt_on_acquired, &rb) == 0, out);
    CU_ASSERT_EQUAL(lt_wait_children(sb, "/locks/ttc", 2, 5000), 0);
    CU_ASSERT_EQUAL(zkc_lock_release(a), 0);
    CU_ASSERT_EQUAL(lt_wait_acquired(&rb, 7, 5000), 0);
    CU_ASSERT_EQUAL(rb.rc, 0);
    CU_ASSERT(rb.token > zkc_lock_token(a));
    CU_ASSERT_EQUAL(zkc_lock_is_held(b), 1);
    /* a try on a free lock succeeds */
    CU_ASSERT_EQUAL(zkc_lock_release(b), 0);
    CU_ASSERT_EQUAL(zkc_lock_acquire(b, 0, NULL), 0);
    CU_ASSERT_EQUAL(zkc_lock_release(b), 0);
    CU_ASSERT_EQUAL(lt_children(sb, "/locks/ttc"), 0);
out:
    zkc_lock_free(a);
    zkc_lock_free(b);
    zkc_session_close(sa);
    zkc_session_close(sb);
    lt_rec_destroy(&rb);
}

/* ---- per-request watches (issue 9, item 4)
 *
 * A waiter's watch on the node ahead is a context of its own holding the
 * waiter's engine. Freeing the waiter leaves that watch set: it must end
 * when it fires (the holder lets go) and when its handle is closed (the
 * session closes first), without a callback to the freed lock, and free
 * everything (ASan checks the last part). */
static int wait_pending(zkc_session *s, int n, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;

    while (zkc__test_pending_count(s) != n && tu_now_ms() < deadline)
        sched_yield();
    return zkc__test_pending_count(s) == n ? 0 : -1;
}

static int acquired(lt_rec *r)
{
    int n;

    pthread_mutex_lock(&r->mu);
    n = r->acquired;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void test_freed_waiter_watch(void)
{
    zkc_session *sa = NULL, *sb = NULL;
    zkc_lock *a = NULL, *b = NULL;
    lt_rec rb;

    lt_rec_init(&rb);
    CU_ASSERT_EQUAL_FATAL(tu_session(&sa, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sb, NULL, 4000, NULL) == 0, out);
    a = new_lock(sa, "/locks/fw", "a", NULL);
    b = new_lock(sb, "/locks/fw", "b", NULL);
    TU_CHECK(a && b, out);
    TU_CHECK(zkc_lock_acquire(a, 5000, NULL) == 0, out);
    /* b waits: once its reads are answered, only its watch is pending (the
     * queue is watched from sa: lt_wait_children's own watch would count) */
    TU_CHECK(zkc_lock_acquire_async(b, lt_on_acquired, &rb) == 0, out);
    CU_ASSERT_EQUAL(lt_wait_children(sa, "/locks/fw", 2, 5000), 0);
    CU_ASSERT_EQUAL(wait_pending(sb, 1, 5000), 0);
    zkc_lock_free(b);
    b = NULL;
    CU_ASSERT_EQUAL(lt_wait_children(sa, "/locks/fw", 1, 5000), 0);
    CU_ASSERT_EQUAL(wait_pending(sb, 1, 5000), 0); /* the watch outlives its lock */
    /* the holder lets go: the watch fires into the freed engine */
    CU_ASSERT_EQUAL(zkc_lock_release(a), 0);
    CU_ASSERT_EQUAL(wait_pending(sb, 0, 5000), 0);
    CU_ASSERT_EQUAL(acquired(&rb), 0); /* no callback after the free */
    /* again, and this time the session closes before the watch fires */
    TU_CHECK(zkc_lock_acquire(a, 5000, NULL) == 0, out);
    b = new_lock(sb, "/locks/fw", "b", NULL);
    TU_CHECK(b != NULL, out);
    TU_CHECK(zkc_lock_acquire_async(b, lt_on_acquired, &rb) == 0, out);
    CU_ASSERT_EQUAL(lt_wait_children(sa, "/locks/fw", 2, 5000), 0);
    CU_ASSERT_EQUAL(wait_pending(sb, 1, 5000), 0);
    zkc_lock_free(b);
    b = NULL;
    zkc_session_close(sb);
    sb = NULL;
    CU_ASSERT_EQUAL(acquired(&rb), 0);
    CU_ASSERT_EQUAL(lt_wait_children(sa, "/locks/fw", 1, 5000), 0);
    CU_ASSERT_EQUAL(zkc_lock_release(a), 0);
out:
    zkc_lock_free(a);
    zkc_lock_free(b);
    zkc_session_close(sa);
    zkc_session_close(sb);
    lt_rec_destroy(&rb);
}

/* ---- holder session expiry */

static void test_holder_expiry(void)
{
    zkc_session *sa = NULL, *sb = NULL;
    zkc_lock *a = NULL, *b = NULL;
    lt_rec ra, rb;
    int64_t ta = 0;
    zkc_op op;

    lt_rec_init(&ra);
    lt_rec_init(&rb);
    CU_ASSERT_EQUAL_FATAL(tu_session(&sa, NULL, 2000, NULL), 0);
    TU_CHECK(tu_session(&sb, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(sb, "/fenced/data", 5000) == 0, out);
    a = new_lock(sa, "/locks/exp", "a", &ra);
    b = new_lock(sb, "/locks/exp", "b", &rb);
    TU_CHECK(a && b, out);
    TU_CHECK(zkc_lock_acquire(a, 5000, &ta) == 0, out);
    memset(&op, 0, sizeof(op));
    op.type = ZKC_OP_SET;
    op.path = "/fenced/data";
    op.data = "from-a";
    op.len = 6;
    op.version = -1;
    CU_ASSERT_EQUAL(zkc_lock_fenced_multi(a, &op, 1, 5000), 0);
    TU_CHECK(zkc_lock_acquire_async(b, lt_on_acquired, &rb) == 0, out);
    CU_ASSERT_EQUAL(lt_wait_children(sb, "/locks/exp", 2, 5000), 0);
    TU_CHECK(tu_expire(sa) == 0, out);
    CU_ASSERT(lt_wait_event(&ra, 0, ZKC_LOCK_LOST, 10000) >= 0);
    CU_ASSERT_EQUAL(zkc_lock_is_held(a), 0);
    CU_ASSERT_EQUAL(lt_wait_acquired(&rb, 1, 10000), 0);
    CU_ASSERT_EQUAL(rb.rc, 0);
    CU_ASSERT(rb.token > ta);
    /* The paused-past-its-session holder cannot clobber b's work. */
    TU_CHECK(zkc_session_wait_connected(sa, 10000) == 0, out);
    op.data = "stale-a";
    op.len = 7;
    CU_ASSERT_EQUAL(zkc_lock_fenced_multi(a, &op, 1, 5000), ZKC_ENOTHELD);
    op.data = "from-b";
    op.len = 6;
    CU_ASSERT_EQUAL(zkc_lock_fenced_multi(b, &op, 1, 5000), 0);
    /* Release after loss: quiet, nothing left. */
    CU_ASSERT_EQUAL(zkc_lock_release(a), 0);
    CU_ASSERT_EQUAL(zkc_lock_release(b), 0);
    CU_ASSERT_EQUAL(lt_children(sb, "/locks/exp"), 0);
out:
    zkc_lock_free(a);
    zkc_lock_free(b);
    zkc_session_close(sa);
    zkc_session_close(sb);
    lt_rec_destroy(&ra);
    lt_rec_destroy(&rb);
}

/* ---- issue 9, bug 6: a persistent node planted ahead of the line */

/* Create `path` (persistent, not sequential) through `s`'s raw handle, as
 * a foreign client would. 0 or a ZooKeeper code. */
static int plant(zkc_session *s, const char *path, const char *data)
{
    zhandle_t *zh = zkc__zh_lock(s, NULL);

    if (!zh)
        return ZINVALIDSTATE;
    zkc__zh_unlock(s);
    return zoo_create(zh, path, data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
}

/* A foreign client plants "..-lock--000000001" (sequence -1, which sorts
 * ahead of every real node) as a persistent node. It is nobody's lock: the
 * holder is granted, a waiter queues behind the real holder only, and
 * zkc_lock_inspect reports the planted node as foreign and the real holder
 * as the one who holds. */
static void test_foreign_node(void)
{
    zkc_session *sa = NULL, *sb = NULL;
    zkc_lock *a = NULL, *b = NULL;
    zkc_lock_info *info = NULL;
    lt_rec rb;
    char planted[128];

    lt_rec_init(&rb);
    CU_ASSERT_EQUAL_FATAL(tu_session(&sa, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sb, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(sa, "/locks/foreign", 5000) == 0, out);
    snprintf(planted, sizeof(planted), "/locks/foreign/_c_%s-lock--000000001",
             "00000000-0000-4000-8000-000000000000");
    TU_CHECK(plant(sa, planted, "intruder") == ZOK, out);
    a = new_lock(sa, "/locks/foreign", "a", NULL);
    b = new_lock(sb, "/locks/foreign", "b", &rb);
    TU_CHECK(a && b, out);
    CU_ASSERT_EQUAL(zkc_lock_acquire(a, 10000, NULL), 0);
    TU_CHECK(zkc_lock_acquire_async(b, lt_on_acquired, &rb) == 0, out);
    CU_ASSERT_EQUAL(lt_wait_children(sa, "/locks/foreign", 3, 10000), 0);
    TU_CHECK(zkc_lock_inspect(sa, "/locks/foreign", 10000, &info) == 0, out);
    TU_CHECK(info->count == 3, out);
    CU_ASSERT_STRING_EQUAL(info->entries[0].owner_id, "intruder");
    CU_ASSERT_EQUAL(info->entries[0].foreign, 1);
    CU_ASSERT_EQUAL(info->entries[0].holds, 0);
    CU_ASSERT_EQUAL(info->entries[0].seq, -1);
    CU_ASSERT_STRING_EQUAL(info->entries[1].owner_id, "a");
    CU_ASSERT_EQUAL(info->entries[1].foreign, 0);
    CU_ASSERT_EQUAL(info->entries[1].holds, 1);
    CU_ASSERT_STRING_EQUAL(info->entries[2].owner_id, "b");
    CU_ASSERT_EQUAL(info->entries[2].holds, 0);
    CU_ASSERT_EQUAL(info->near_wrap, 0);
    CU_ASSERT(info->cversion >= 3);
    zkc_lock_info_free(info);
    info = NULL;
    /* b waits behind a, not behind the planted node. */
    CU_ASSERT_EQUAL(rb.acquired, 0);
    CU_ASSERT_EQUAL(zkc_lock_release(a), 0);
    CU_ASSERT_EQUAL(lt_wait_acquired(&rb, 1, 10000), 0);
    CU_ASSERT_EQUAL(rb.rc, 0);
    CU_ASSERT_EQUAL(zkc_lock_is_held(b), 1);
    CU_ASSERT_EQUAL(zkc_lock_release(b), 0);
out:
    zkc_lock_info_free(info);
    zkc_lock_free(a);
    zkc_lock_free(b);
    if (sa) {
        zhandle_t *zh = zkc__zh_lock(sa, NULL);
        if (zh) {
            zkc__zh_unlock(sa);
            zoo_delete(zh, planted, -1);
        }
    }
    zkc_session_close(sa);
    zkc_session_close(sb);
    lt_rec_destroy(&rb);
}

struct cdone {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done, rc;
};

static void cdone_fn(void *arg, int rc)
{
    struct cdone *d = arg;

    pthread_mutex_lock(&d->mu);
    d->done = 1;
    d->rc = rc;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->mu);
}

/* zkc__q_container(): one call, waited for; its rc, or ZKC_ETIMEDOUT. */
static int container_sync(zkc_session *s, const char *path)
{
    struct cdone d;
    struct timespec ts;
    int rc;

    memset(&d, 0, sizeof(d));
    pthread_mutex_init(&d.mu, NULL);
    zkc__cond_init(&d.cond);
    zkc__q_container(s, path, cdone_fn, &d);
    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&d.mu);
    while (!d.done && pthread_cond_timedwait(&d.cond, &d.mu, &ts) != ETIMEDOUT)
        ;
    rc = d.done ? d.rc : ZKC_ETIMEDOUT;
    pthread_mutex_unlock(&d.mu);
    /* a reply after the deadline would write into d: wait for it */
    pthread_mutex_lock(&d.mu);
    while (!d.done)
        pthread_cond_wait(&d.cond, &d.mu);
    pthread_mutex_unlock(&d.mu);
    pthread_cond_destroy(&d.cond);
    pthread_mutex_destroy(&d.mu);
    return rc;
}

/* Bug 7 (prevention): recipe parents are made as containers, as Curator's
 * creatingParentContainersIfNeeded does, so the server removes them once
 * the line is empty and the sequence counter starts again. The server hides
 * the container type from clients (its Stat shows ephemeralOwner 0) and
 * removes empty containers only every 60 s by default, so this checks the
 * creation path: missing folders above are made, an existing node is fine,
 * and a lock on a fresh deep path works through it. */
static void test_container_parent(void)
{
    zkc_session *s = NULL;
    zkc_lock *l = NULL;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    CU_ASSERT_EQUAL(container_sync(s, "/locks/ctr/a/b"), 0);
    CU_ASSERT_EQUAL(lt_children(s, "/locks/ctr/a"), 1);
    CU_ASSERT_EQUAL(container_sync(s, "/locks/ctr/a/b"), 0);
    l = new_lock(s, "/locks/ctr/deep/x", "c", NULL);
    TU_CHECK(l != NULL, out);
    CU_ASSERT_EQUAL(zkc_lock_acquire(l, 10000, NULL), 0);
    CU_ASSERT_EQUAL(lt_children(s, "/locks/ctr/deep/x"), 1);
    CU_ASSERT_EQUAL(zkc_lock_release(l), 0);
out:
    zkc_lock_free(l);
    zkc_session_close(s);
}

/* ---- issue 9, bug 3: session expiry while acquires are in flight */

struct churn {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    zkc_lock *l;
    int stop;
    int cycles;
    int bad_rc; /* the first result that was neither 0 nor ETIMEDOUT */
};

static void *churn_main(void *arg)
{
    struct churn *c = arg;
    int rc, stop = 0;

    while (!stop) {
        rc = zkc_lock_acquire(c->l, 20000, NULL);
        if (rc == 0)
            zkc_lock_release(c->l);
        pthread_mutex_lock(&c->mu);
        if (rc == 0)
            c->cycles++;
        else if (rc != ZKC_ETIMEDOUT && c->bad_rc == 0)
            c->bad_rc = rc;
        pthread_cond_broadcast(&c->cond);
        stop = c->stop;
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

/* Wait until the churn thread has done `n` cycles; 0 or -1 at the deadline. */
static int churn_wait(struct churn *c, int n, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (c->cycles < n && rc == 0)
        if (pthread_cond_timedwait(&c->cond, &c->mu, &ts) == ETIMEDOUT)
            rc = c->cycles >= n ? 0 : -1;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* lock.h: "Connection loss and session loss while waiting are not errors".
 * A thread acquires and releases in a loop while its session is expired
 * under it several times: requests in flight on the old handle end with
 * ZCLOSING / ZINVALIDSTATE, and none of that may come out of acquire as
 * ECLOSED or ECONNLOSS; the loop keeps cycling on each new session. */
static void test_expiry_during_acquire(void)
{
    zkc_session *s = NULL;
    struct churn c;
    pthread_t th;
    int i, started = 0, before;

    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    zkc__cond_init(&c.cond);
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 2000, NULL), 0);
    c.l = new_lock(s, "/locks/churn-expiry", "churn", NULL);
    TU_CHECK(c.l != NULL, out);
    TU_CHECK(pthread_create(&th, NULL, churn_main, &c) == 0, out);
    started = 1;
    for (i = 0; i < 5; i++) {
        TU_CHECK(churn_wait(&c, i + 1, 10000) == 0, out);
        TU_CHECK(tu_expire(s) == 0, out);
        TU_CHECK(zkc_session_wait_connected(s, 10000) == 0, out);
    }
    /* Still cycling on the last session. */
    pthread_mutex_lock(&c.mu);
    before = c.cycles;
    pthread_mutex_unlock(&c.mu);
    CU_ASSERT_EQUAL(churn_wait(&c, before + 3, 10000), 0);
out:
    pthread_mutex_lock(&c.mu);
    c.stop = 1;
    pthread_mutex_unlock(&c.mu);
    if (started)
        pthread_join(th, NULL);
    printf("\n    %d cycles across 5 expiries; first error: %s ", c.cycles,
           c.bad_rc ? zkc_err_name(c.bad_rc) : "none");
    CU_ASSERT_EQUAL(c.bad_rc, 0);
    zkc_lock_free(c.l);
    zkc_session_close(s);
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.mu);
}

/* The same, made deterministic: an acquire started while the connection
 * is down queues its create on the handle that is still trying to
 * connect; at the local LOST the library closes that handle and the create
 * ends with ZCLOSING. The acquire must carry on with the new session and
 * be granted, not fail with ECLOSED. */
static void test_lost_during_acquire(void)
{
    zkc_session *s = NULL;
    tu_proxy *px = NULL;
    zkc_lock *l = NULL;
    tu_rec rec;
    lt_rec r;

    tu_rec_init(&rec);
    lt_rec_init(&r);
    CU_ASSERT_EQUAL_FATAL(tu_proxy_start(&px, zkh_connect_string(tu_zk)), 0);
    TU_CHECK(tu_session(&s, tu_proxy_address(px), 1000, &rec) == 0, out);
    l = new_lock(s, "/locks/lost-acq", "l", NULL);
    TU_CHECK(l != NULL, out);
    tu_proxy_block(px, 1);
    TU_CHECK(tu_rec_wait(&rec, 0, ZKC_CONN_SUSPENDED, 10000) >= 0, out);
    TU_CHECK(zkc_lock_acquire_async(l, lt_on_acquired, &r) == 0, out);
    TU_CHECK(tu_rec_wait(&rec, 0, ZKC_CONN_LOST, 10000) >= 0, out);
    tu_proxy_block(px, 0);
    CU_ASSERT_EQUAL(lt_wait_acquired(&r, 1, 20000), 0);
    CU_ASSERT_EQUAL(r.rc, 0);
    if (r.rc != 0)
        printf("\n    acquire across LOST: %s ", zkc_err_name(r.rc));
    CU_ASSERT_EQUAL(zkc_lock_is_held(l), 1);
    if (zkc_lock_is_held(l))
        CU_ASSERT_EQUAL(zkc_lock_release(l), 0);
    CU_ASSERT_EQUAL(lt_children(s, "/locks/lost-acq"), 0);
out:
    tu_proxy_block(px, 0);
    zkc_lock_free(l);
    zkc_session_close(s);
    tu_proxy_stop(px);
    tu_rec_destroy(&rec);
    lt_rec_destroy(&r);
}

/* ---- fenced multi details */

static void test_fenced_multi(void)
{
    zkc_session *s = NULL;
    zkc_lock *l = NULL;
    zkc_op ops[2];
    char guard[256];
    int failed = 7;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    l = new_lock(s, "/locks/fence", "f", NULL);
    TU_CHECK(l && zkc_lock_acquire(l, 5000, NULL) == 0, out);
    TU_CHECK(zkc_lock_node_path(l, guard, sizeof(guard)) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, "/fence", 5000) == 0, out);
    memset(ops, 0, sizeof(ops));
    ops[0].type = ZKC_OP_CREATE;
    ops[0].path = "/fence/a";
    ops[0].data = "x";
    ops[0].len = 1;
    ops[1].type = ZKC_OP_DELETE;
    ops[1].path = "/fence/missing";
    ops[1].version = -1;
    /* all or nothing: the second op fails, the first is rolled back */
    CU_ASSERT_EQUAL(zkc_fenced_multi_ex(s, guard, ops, 2, 5000, &failed), ZKC_ENONODE);
    CU_ASSERT_EQUAL(failed, 1);
    CU_ASSERT_EQUAL(lt_children(s, "/fence"), 0);
    CU_ASSERT_EQUAL(zkc_fenced_multi(s, guard, ops, 1, 5000), 0);
    CU_ASSERT_EQUAL(lt_children(s, "/fence"), 1);
    ops[0].type = ZKC_OP_DELETE;
    ops[0].version = -1;
    CU_ASSERT_EQUAL(zkc_lock_release(l), 0);
    CU_ASSERT_EQUAL(zkc_fenced_multi_ex(s, guard, ops, 1, 5000, &failed), ZKC_ENOTHELD);
    CU_ASSERT_EQUAL(failed, -1);
    CU_ASSERT_EQUAL(lt_children(s, "/fence"), 1);
    CU_ASSERT_EQUAL(zkc_fenced_multi(s, "bad", ops, 1, 5000), ZKC_EINVAL);
out:
    zkc_lock_free(l);
    zkc_session_close(s);
}

/* ---- connection loss during acquire; release retried in background */

static void test_connloss_during_acquire(void)
{
    zkc_session *s = NULL, *h = NULL;
    zkc_lock *l = NULL, *held = NULL, *c = NULL, *blocker = NULL;
    lt_rec r, rh;
    zkc_lock_info *info = NULL;
    int down = 0, rc;

    lt_rec_init(&r);
    lt_rec_init(&rh);
    /* Long sessions: they outlive a server restart. */
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 30000, NULL), 0);
    TU_CHECK(tu_session(&h, NULL, 30000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, "/locks/cl", 5000) == 0, out);
    l = new_lock(s, "/locks/cl", "mine", NULL);
    c = new_lock(s, "/locks/cl2", "c", NULL);
    held = new_lock(h, "/locks/held", "h", &rh);
    blocker = new_lock(h, "/locks/cl2", "blocker", NULL);
    TU_CHECK(l && c && held && blocker, out);
    TU_CHECK(zkc_lock_acquire(held, 5000, NULL) == 0, out);
    TU_CHECK(zkc_lock_acquire(blocker, 5000, NULL) == 0, out);
    /* The create leaves, then the server goes: the reply is lost (or the
     * request never arrives). */
    TU_CHECK(zkc_lock_acquire_async(l, lt_on_acquired, &r) == 0, out);
    TU_CHECK(zkh_stop_server(tu_zk, 0) == 0, out);
    down = 1;
    CU_ASSERT(lt_wait_event(&rh, 0, ZKC_LOCK_SUSPENDED, 10000) >= 0);
    /* a release meeting connection loss: retried after reconnect */
    TU_CHECK(zkh_start_server(tu_zk, 0) == 0, out);
    down = 0;
    CU_ASSERT(lt_wait_event(&rh, 0, ZKC_LOCK_RECONNECTED, 25000) >= 0);
    CU_ASSERT_EQUAL(zkc_lock_is_held(held), 1);
    CU_ASSERT_EQUAL(lt_wait_acquired(&r, 1, 25000), 0);
    CU_ASSERT_EQUAL(r.rc, 0);
    /* exactly one node: ours (adopted or created once, never orphaned).
     * A read sent while the handle is between connections waits for the
     * next one (the 30 s session keeps it queued): under load the restarted
     * server can drop the first connection again, so wait for it first. */
    TU_CHECK(zkc_session_wait_connected(s, 25000) == 0, out);
    rc = zkc_lock_inspect(s, "/locks/cl", 15000, &info);
    if (rc)
        printf("\n    inspect: %s ", zkc_err_name(rc));
    TU_CHECK(rc == 0, out);
    CU_ASSERT_EQUAL(info->count, 1);
    if (info->count == 1) {
        CU_ASSERT_EQUAL(info->entries[0].session_id, zkc_session_id(s));
        CU_ASSERT_STRING_EQUAL(info->entries[0].owner_id, "mine");
    }
    CU_ASSERT_EQUAL(zkc_lock_release(l), 0);
    CU_ASSERT_EQUAL(lt_children(s, "/locks/cl"), 0);

    /* cancel of a (queued) acquire caught by the stop: nothing of it is
     * left after the restart, even if its create reply was lost */
    TU_CHECK(zkc_lock_acquire_async(c, lt_on_acquired, &r) == 0, out);
    TU_CHECK(zkh_stop_server(tu_zk, 0) == 0, out);
    down = 1;
    CU_ASSERT_EQUAL(zkc_lock_cancel(c), 0);
    /* and a release whose delete cannot reach the server now */
    CU_ASSERT_EQUAL(zkc_lock_release(held), 0);
    TU_CHECK(zkh_start_server(tu_zk, 0) == 0, out);
    down = 0;
    CU_ASSERT_EQUAL(lt_wait_acquired(&r, 2, 25000), 0);
    CU_ASSERT_EQUAL(r.rc, ZKC_ECANCELED);
    CU_ASSERT_EQUAL(zkc_session_wait_connected(s, 25000), 0);
    CU_ASSERT_EQUAL(lt_wait_children(s, "/locks/cl2", 1, 10000), 0);
    /* the release whose delete met the stopped server: done once h is back
     * (the client's reconnect backoff may take h longer than s) */
    CU_ASSERT_EQUAL(zkc_session_wait_connected(h, 25000), 0);
    CU_ASSERT_EQUAL(lt_wait_children(s, "/locks/held", 0, 10000), 0);
    CU_ASSERT_EQUAL(zkc_lock_is_held(blocker), 1);
    CU_ASSERT_EQUAL(zkc_lock_release(blocker), 0);
    CU_ASSERT_EQUAL(lt_wait_children(s, "/locks/cl2", 0, 10000), 0);
out:
    if (down)
        zkh_start_server(tu_zk, 0);
    zkc_lock_info_free(info);
    zkc_lock_free(l);
    zkc_lock_free(c);
    zkc_lock_free(held);
    zkc_lock_free(blocker);
    zkc_session_close(s);
    zkc_session_close(h);
    lt_rec_destroy(&r);
    lt_rec_destroy(&rh);
}

/* ---- three requests per uncontended cycle (the two-round-trip floor) */

static void test_requests_per_cycle(void)
{
    enum { CYCLES = 50 };
    zkc_session *s = NULL;
    zkc_lock *l = NULL;
    long long calib, before, after;
    int i, ok = 1;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 30000, NULL), 0);
    l = new_lock(s, "/locks/rpc", "r", NULL);
    TU_CHECK(l != NULL, out);
    /* warm-up: creates the parent */
    TU_CHECK(zkc_lock_acquire(l, 5000, NULL) == 0 && zkc_lock_release(l) == 0, out);
    /* mntr's own connection counts as one packet: measure it */
    calib = zkh_mntr(tu_zk, 0, "zk_packets_received");
    before = zkh_mntr(tu_zk, 0, "zk_packets_received");
    for (i = 0; i < CYCLES; i++)
        if (zkc_lock_acquire(l, 5000, NULL) != 0 || zkc_lock_release(l) != 0)
            ok = 0;
    after = zkh_mntr(tu_zk, 0, "zk_packets_received");
    CU_ASSERT_EQUAL(ok, 1);
    TU_CHECK(calib >= 0 && before >= 0 && after >= 0, out);
    after -= before - calib;
    printf("\n    requests for %d cycles: %lld (%.2f per cycle) ", CYCLES, after - before,
           (double)(after - before) / CYCLES);
    /* create + getChildren (pipelined) + delete; a ping may slip in */
    CU_ASSERT(after - before >= 3 * CYCLES);
    CU_ASSERT(after - before <= 3 * CYCLES + 2);
    CU_ASSERT_EQUAL((after - before) / CYCLES, 3);
out:
    zkc_lock_free(l);
    zkc_session_close(s);
}

int register_lock_suite(void)
{
    CU_pSuite s = CU_add_suite("mutex", NULL, NULL);

    if (!s || !CU_add_test(s, "acquire, reentry, layout, inspect", test_basic_reentrant) ||
        !CU_add_test(s, "8 sessions: exclusion, FIFO, tokens", test_mutual_exclusion) ||
        !CU_add_test(s, "try, timeout, cancel leave no node", test_try_timeout_cancel) ||
        !CU_add_test(s, "holder expiry: lost, next granted, fenced", test_holder_expiry) ||
        !CU_add_test(s, "fenced multi: all or nothing, guard", test_fenced_multi) ||
        !CU_add_test(s, "connection loss during acquire", test_connloss_during_acquire) ||
        !CU_add_test(s, "3 requests per uncontended cycle", test_requests_per_cycle) ||
        !CU_add_test(s, "foreign persistent node ahead: skipped, reported", test_foreign_node) ||
        !CU_add_test(s, "container parents are made", test_container_parent) ||
        !CU_add_test(s, "session expiry during acquires: no error", test_expiry_during_acquire) ||
        !CU_add_test(s, "LOST under a queued create: acquire carries on",
                     test_lost_during_acquire) ||
        !CU_add_test(s, "freed waiter: its watch ends when fired or closed",
                     test_freed_waiter_watch))
        return -1;
    return 0;
}
