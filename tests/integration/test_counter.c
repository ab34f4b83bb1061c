/* Shared counters against a real server: every operation, the bytes on the
 * node (Curator's format), malformed data, the watch across a session
 * loss, cancellation at free, the version-skip multi, and concurrent adds
 * from several sessions adding up exactly. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/testutil.h"
#include "counter_logic.h"
#include "internal.h" /* the synchronous ZooKeeper API, zkc__dispatch_barrier */

int register_counter_suite(void);

/* ---- a raw ZooKeeper handle, to write what a foreign client would */

static void raw_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)type;
    (void)state;
    (void)path;
    (void)ctx;
}

static zhandle_t *raw_open(void)
{
    zhandle_t *zh;
    long long end = tu_now_ms() + 10000;
    char buf[8];
    int len = sizeof(buf);

    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zh = zookeeper_init(zkh_connect_string(tu_zk), raw_watcher, 10000, NULL, NULL, 0);
    if (!zh)
        return NULL;
    /* Synchronous calls wait for the connection; retry until it is up. */
    while (tu_now_ms() < end) {
        int rc = zoo_get(zh, "/zookeeper", 0, buf, &len, NULL);
        if (rc == ZOK || rc == ZNONODE)
            return zh;
        len = sizeof(buf);
    }
    zookeeper_close(zh);
    return NULL;
}

/* Data of `path` into buf; its length, or -1. */
static int raw_get(zhandle_t *zh, const char *path, char *buf, int cap, struct Stat *st)
{
    int len = cap;

    if (zoo_get(zh, path, 0, buf, &len, st) != ZOK)
        return -1;
    return len;
}

/* ---- a watch recorder */

struct wrec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    zkc_counter_value v[64];
    int err[64];
    int n;
};

static void wrec_init(struct wrec *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static void wrec_destroy(struct wrec *w)
{
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
}

static void on_change(zkc_counter *c, const zkc_counter_value *v, int err, void *ud)
{
    struct wrec *w = ud;

    (void)c;
    pthread_mutex_lock(&w->mu);
    if (w->n < 64) {
        w->v[w->n] = *v;
        w->err[w->n] = err;
        w->n++;
    }
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* Wait for a report with index >= from matching (exists, value); its index
 * or -1 at the deadline. */
static int wrec_wait(struct wrec *w, int from, int exists, int64_t value, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    int i, found = -1;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        struct timespec ts;
        long long left;

        for (i = from; i < w->n && found < 0; i++)
            if (w->v[i].exists == exists && (!exists || w->v[i].value == value))
                found = i;
        left = end - tu_now_ms();
        if (found >= 0 || left <= 0)
            break;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(left / 1000);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cond, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return found;
}

/* ---- tests */

static void test_ops_int32(void)
{
    zkc_session *s = NULL;
    zkc_counter *c = NULL, *bad = NULL;
    zkc_counter_value v, cur, stale;
    zhandle_t *zh = raw_open();
    char buf[16];
    int won = -1;

    CU_ASSERT_PTR_NOT_NULL_FATAL(zh);
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    CU_ASSERT_EQUAL(zkc_counter_new(&bad, s, "relative", ZKC_COUNTER_INT32), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc_counter_new(&bad, s, "/c/x", (zkc_counter_width)5), ZKC_EINVAL);
    CU_ASSERT_PTR_NULL(bad);
    TU_CHECK(zkc_counter_new(&c, s, "/ctr/a/int", ZKC_COUNTER_INT32) == 0, out);
    CU_ASSERT_STRING_EQUAL(zkc_counter_path(c), "/ctr/a/int");
    CU_ASSERT_EQUAL(zkc_counter_get_width(c), ZKC_COUNTER_INT32);

    /* missing node: 0, not existing */
    memset(&v, 0x55, sizeof(v));
    CU_ASSERT_EQUAL(zkc_counter_get(c, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.exists, 0);
    CU_ASSERT_EQUAL(v.value, 0);

    /* set creates the node and its parents; 4-byte big-endian */
    CU_ASSERT_EQUAL(zkc_counter_set(c, 5, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.exists, 1);
    CU_ASSERT_EQUAL(v.value, 5);
    CU_ASSERT_EQUAL(v.version, 0);
    CU_ASSERT_EQUAL(raw_get(zh, "/ctr/a/int", buf, sizeof(buf), NULL), 4);
    CU_ASSERT_EQUAL(memcmp(buf, "\x00\x00\x00\x05", 4), 0);
    CU_ASSERT_EQUAL(zkc_counter_get(c, &cur, 5000), 0);
    CU_ASSERT_EQUAL(cur.value, 5);
    CU_ASSERT_EQUAL(cur.version, 0);
    CU_ASSERT_EQUAL(cur.mzxid, v.mzxid);
    stale = cur;

    /* add returns the new value; negative deltas */
    CU_ASSERT_EQUAL(zkc_counter_add(c, 3, 0, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, 8);
    CU_ASSERT_EQUAL(v.version, 1);
    CU_ASSERT_EQUAL(zkc_counter_add(c, -10, 0, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, -2);
    CU_ASSERT_EQUAL(raw_get(zh, "/ctr/a/int", buf, sizeof(buf), NULL), 4);
    CU_ASSERT_EQUAL(memcmp(buf, "\xff\xff\xff\xfe", 4), 0);

    /* CAS on a stale version loses and reports the current node */
    CU_ASSERT_EQUAL(zkc_counter_cas(c, &stale, 100, &won, &cur, 5000), 0);
    CU_ASSERT_EQUAL(won, 0);
    CU_ASSERT_EQUAL(cur.value, -2);
    CU_ASSERT_EQUAL(cur.version, 2);
    /* ... and on the current one wins */
    CU_ASSERT_EQUAL(zkc_counter_cas(c, &cur, 100, &won, &v, 5000), 0);
    CU_ASSERT_EQUAL(won, 1);
    CU_ASSERT_EQUAL(v.value, 100);
    CU_ASSERT_EQUAL(v.version, 3);
    /* CAS "must not exist" on an existing node loses */
    memset(&stale, 0, sizeof(stale));
    CU_ASSERT_EQUAL(zkc_counter_cas(c, &stale, 1, &won, &cur, 5000), 0);
    CU_ASSERT_EQUAL(won, 0);
    CU_ASSERT_EQUAL(cur.value, 100);

    /* CAS on the value */
    CU_ASSERT_EQUAL(zkc_counter_cas_value(c, 99, 7, &won, &cur, 5000), 0);
    CU_ASSERT_EQUAL(won, 0);
    CU_ASSERT_EQUAL(cur.value, 100);
    CU_ASSERT_EQUAL(zkc_counter_cas_value(c, 100, 7, &won, &cur, 5000), 0);
    CU_ASSERT_EQUAL(won, 1);
    CU_ASSERT_EQUAL(cur.value, 7);
    CU_ASSERT_EQUAL(cur.version, 4);

    /* range and wrap at 32 bits, as Java's int */
    CU_ASSERT_EQUAL(zkc_counter_set(c, (int64_t)INT32_MAX + 1, NULL, 5000), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc_counter_set(c, INT32_MAX, NULL, 5000), 0);
    CU_ASSERT_EQUAL(zkc_counter_add(c, 1, 0, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, INT32_MIN);
out:
    zkc_counter_free(c);
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
    zookeeper_close(zh);
}

static void test_ops_int64_and_bad_data(void)
{
    zkc_session *s = NULL;
    zkc_counter *c = NULL;
    zkc_counter_value v;
    zhandle_t *zh = raw_open();
    char buf[16];
    int won = -1;

    CU_ASSERT_PTR_NOT_NULL_FATAL(zh);
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(zkc_counter_new(&c, s, "/ctr/long", ZKC_COUNTER_INT64) == 0, out);
    /* add on a missing node creates it (DistributedAtomicLong) */
    CU_ASSERT_EQUAL(zkc_counter_add(c, 0x100000000LL, 0, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, 0x100000000LL);
    CU_ASSERT_EQUAL(v.version, 0);
    CU_ASSERT_EQUAL(raw_get(zh, "/ctr/long", buf, sizeof(buf), NULL), 8);
    CU_ASSERT_EQUAL(memcmp(buf, "\x00\x00\x00\x01\x00\x00\x00\x00", 8), 0);
    CU_ASSERT_EQUAL(zkc_counter_add(c, -0x100000001LL, 0, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, -1);

    /* a node with empty data reads 0 and counts on */
    CU_ASSERT_EQUAL(zoo_create(zh, "/ctr/empty", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZOK);
    zkc_counter_free(c);
    c = NULL;
    TU_CHECK(zkc_counter_new(&c, s, "/ctr/empty", ZKC_COUNTER_INT64) == 0, out);
    CU_ASSERT_EQUAL(zkc_counter_get(c, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.exists, 1);
    CU_ASSERT_EQUAL(v.value, 0);
    CU_ASSERT_EQUAL(zkc_counter_add(c, 2, 0, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, 2);

    /* garbage: reads and adds fail with EBADDATA, set overwrites it */
    CU_ASSERT_EQUAL(zoo_create(zh, "/ctr/garbage", "abc", 3, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
                    ZOK);
    zkc_counter_free(c);
    c = NULL;
    TU_CHECK(zkc_counter_new(&c, s, "/ctr/garbage", ZKC_COUNTER_INT64) == 0, out);
    CU_ASSERT_EQUAL(zkc_counter_get(c, &v, 5000), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(v.exists, 1);
    CU_ASSERT_EQUAL(zkc_counter_add(c, 1, 0, NULL, 5000), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc_counter_cas_value(c, 0, 1, &won, NULL, 5000), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc_counter_set(c, 9, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, 9);
    CU_ASSERT_EQUAL(zkc_counter_get(c, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, 9);
out:
    zkc_counter_free(c);
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
    zookeeper_close(zh);
}

/* The version-skip multi (sent in production only at version -2, which no
 * test can reach): one conditional write that moves the version by two,
 * atomically, and loses on a stale version like any CAS. */
static void test_skip_multi(void)
{
    zkc_session *s = NULL;
    zkc_counter *c = NULL;
    zkc_counter_value v;
    int won = -1;

    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(zkc_counter_new(&c, s, "/ctr/skip", ZKC_COUNTER_INT32) == 0, out);
    CU_ASSERT_EQUAL(zkc_counter_set(c, 1, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.version, 0);
    CU_ASSERT_EQUAL(zkc__counter_write_plan(c, ZKC__CAS_SET_SKIP, 0, 42, &won, 5000), 0);
    CU_ASSERT_EQUAL(won, 1);
    CU_ASSERT_EQUAL(zkc_counter_get(c, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, 42);
    CU_ASSERT_EQUAL(v.version, 2);
    won = -1;
    CU_ASSERT_EQUAL(zkc__counter_write_plan(c, ZKC__CAS_SET_SKIP, 0, 43, &won, 5000), 0);
    CU_ASSERT_EQUAL(won, 0);
    CU_ASSERT_EQUAL(zkc_counter_get(c, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, 42);
    CU_ASSERT_EQUAL(v.version, 2);
    /* a CAS keeps working whatever version the node is at */
    CU_ASSERT_EQUAL(zkc_counter_cas(c, &v, 44, &won, &v, 5000), 0);
    CU_ASSERT_EQUAL(won, 1);
    CU_ASSERT_EQUAL(v.version, 3);
out:
    zkc_counter_free(c);
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

enum { ADD_THREADS = 5, ADD_EACH = 40 };

struct adder {
    int64_t delta;
    zkc_counter_width width;
    int errors;
};

static void *add_thread(void *p)
{
    struct adder *a = p;
    zkc_session *s = NULL;
    zkc_counter *c = NULL;
    int i;

    if (tu_session(&s, NULL, 10000, NULL) != 0 ||
        zkc_counter_new(&c, s, a->width == ZKC_COUNTER_INT32 ? "/ctr/conc32" : "/ctr/conc64",
                        a->width) != 0) {
        a->errors = ADD_EACH;
        zkc_session_close(s);
        return NULL;
    }
    for (i = 0; i < ADD_EACH; i++)
        if (zkc_counter_add(c, a->delta, 0, NULL, 30000) != 0)
            a->errors++;
    zkc_counter_free(c);
    zkc_session_close(s);
    return NULL;
}

static void concurrent_adds(zkc_counter_width width)
{
    struct adder a[ADD_THREADS];
    pthread_t t[ADD_THREADS];
    zkc_session *s = NULL;
    zkc_counter *c = NULL;
    zkc_counter_value v;
    int64_t expect = 0;
    int i, started = 0, errors = 0;

    for (i = 0; i < ADD_THREADS; i++) {
        a[i].delta = i + 1;
        a[i].width = width;
        a[i].errors = 0;
        expect += (int64_t)(i + 1) * ADD_EACH;
        if (pthread_create(&t[i], NULL, add_thread, &a[i]) == 0)
            started++;
    }
    CU_ASSERT_EQUAL(started, ADD_THREADS);
    for (i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        errors += a[i].errors;
    }
    CU_ASSERT_EQUAL(errors, 0);
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(zkc_counter_new(&c, s, width == ZKC_COUNTER_INT32 ? "/ctr/conc32" : "/ctr/conc64",
                             width) == 0,
             out);
    CU_ASSERT_EQUAL(zkc_counter_get(c, &v, 5000), 0);
    CU_ASSERT_EQUAL(v.value, expect);
    /* one write per add: the node was written exactly that many times */
    CU_ASSERT_EQUAL(v.version, ADD_THREADS * ADD_EACH - 1);
out:
    zkc_counter_free(c);
    zkc_session_close(s);
}

static void test_concurrent_adds_int32(void)
{
    concurrent_adds(ZKC_COUNTER_INT32);
}

static void test_concurrent_adds_int64(void)
{
    concurrent_adds(ZKC_COUNTER_INT64);
}

static void test_watch(void)
{
    zkc_session *s = NULL, *w = NULL;
    zkc_counter *c = NULL, *cw = NULL;
    zhandle_t *zh = raw_open();
    struct wrec rec;
    int i;

    wrec_init(&rec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(zh);
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(tu_session(&w, NULL, 5000, NULL) == 0, out);
    TU_CHECK(zkc_counter_new(&c, s, "/ctr/watched", ZKC_COUNTER_INT64) == 0, out);
    TU_CHECK(zkc_counter_new(&cw, w, "/ctr/watched", ZKC_COUNTER_INT64) == 0, out);
    /* armed on a missing node: reported missing, then its creation */
    CU_ASSERT_EQUAL(zkc_counter_watch(cw, on_change, &rec), 0);
    CU_ASSERT_EQUAL(zkc_counter_watch(cw, on_change, &rec), ZKC_EBUSY);
    CU_ASSERT(wrec_wait(&rec, 0, 0, 0, 10000) == 0);
    CU_ASSERT_EQUAL(zkc_counter_set(c, 10, NULL, 5000), 0);
    i = wrec_wait(&rec, 1, 1, 10, 10000);
    CU_ASSERT(i >= 1);
    CU_ASSERT_EQUAL(zkc_counter_add(c, 5, 0, NULL, 5000), 0);
    i = wrec_wait(&rec, i + 1, 1, 15, 10000);
    CU_ASSERT(i >= 2);
    /* deleted by someone else */
    CU_ASSERT_EQUAL(zoo_delete(zh, "/ctr/watched", -1), ZOK);
    i = wrec_wait(&rec, i + 1, 0, 0, 10000);
    CU_ASSERT(i >= 3);
    /* the watcher's session is lost: a change after the new session is
     * still reported (the watch was re-armed) */
    CU_ASSERT_EQUAL(tu_expire(w), 0);
    CU_ASSERT_EQUAL(zkc_session_wait_connected(w, 10000), 0);
    CU_ASSERT_EQUAL(zkc_counter_set(c, 77, NULL, 5000), 0);
    i = wrec_wait(&rec, i + 1, 1, 77, 10000);
    CU_ASSERT(i >= 4);
    /* no write reported twice */
    pthread_mutex_lock(&rec.mu);
    for (i = 1; i < rec.n; i++)
        CU_ASSERT(!(rec.v[i].exists && rec.v[i].mzxid == rec.v[i - 1].mzxid));
    pthread_mutex_unlock(&rec.mu);
    /* stopped: no more reports */
    CU_ASSERT_EQUAL(zkc_counter_watch(cw, NULL, NULL), 0);
    pthread_mutex_lock(&rec.mu);
    i = rec.n;
    pthread_mutex_unlock(&rec.mu);
    CU_ASSERT_EQUAL(zkc_counter_set(c, 78, NULL, 5000), 0);
    /* the watcher's own read after the write is ordered after its
     * notification (one session, in order), so a report would be in */
    {
        zkc_counter_value v;
        CU_ASSERT_EQUAL(zkc_counter_get(cw, &v, 5000), 0);
        CU_ASSERT_EQUAL(v.value, 78);
    }
    zkc__dispatch_barrier(w);
    pthread_mutex_lock(&rec.mu);
    CU_ASSERT_EQUAL(rec.n, i);
    pthread_mutex_unlock(&rec.mu);
out:
    zkc_counter_free(cw);
    zkc_counter_free(c);
    CU_ASSERT_EQUAL(zkc_session_close(w), 0);
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
    zookeeper_close(zh);
    wrec_destroy(&rec);
}

/* The watch after the server restarts: the watcher reconnects (the same
 * session when the restart is quick enough, a new one otherwise) and a
 * change made after that is reported either way. */
static void test_watch_server_restart(void)
{
    zkc_session *s = NULL, *w = NULL;
    zkc_counter *c = NULL, *cw = NULL;
    struct wrec rec;
    int i;

    wrec_init(&rec);
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(tu_session(&w, NULL, 5000, NULL) == 0, out);
    TU_CHECK(zkc_counter_new(&c, s, "/ctr/restart", ZKC_COUNTER_INT32) == 0, out);
    TU_CHECK(zkc_counter_new(&cw, w, "/ctr/restart", ZKC_COUNTER_INT32) == 0, out);
    CU_ASSERT_EQUAL(zkc_counter_set(c, 1, NULL, 5000), 0);
    CU_ASSERT_EQUAL(zkc_counter_watch(cw, on_change, &rec), 0);
    i = wrec_wait(&rec, 0, 1, 1, 10000);
    CU_ASSERT_EQUAL(i, 0);
    CU_ASSERT_EQUAL(zkh_stop_server(tu_zk, 0), 0);
    CU_ASSERT_EQUAL(zkh_start_server(tu_zk, 0), 0);
    CU_ASSERT_EQUAL(zkc_session_wait_connected(s, 30000), 0);
    CU_ASSERT_EQUAL(zkc_session_wait_connected(w, 30000), 0);
    CU_ASSERT_EQUAL(zkc_counter_add(c, 41, 0, NULL, 30000), 0);
    CU_ASSERT(wrec_wait(&rec, 1, 1, 42, 30000) >= 1);
out:
    zkc_counter_free(cw);
    zkc_counter_free(c);
    CU_ASSERT_EQUAL(zkc_session_close(w), 0);
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
    wrec_destroy(&rec);
}

struct blocked {
    zkc_counter *c;
    int rc;
};

static void *blocked_get(void *p)
{
    struct blocked *b = p;
    zkc_counter_value v;

    b->rc = zkc_counter_get(b->c, &v, 60000);
    return NULL;
}

/* A blocking call in another thread is woken with ZKC_ECANCELED by free. */
static void test_free_cancels(void)
{
    zkc_session *s = NULL;
    struct blocked b;
    pthread_t t;
    long long end;
    int paused = 0;

    memset(&b, 0, sizeof(b));
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(zkc_counter_new(&b.c, s, "/ctr/cancel", ZKC_COUNTER_INT32) == 0, out);
    /* a paused server never answers: the get waits */
    TU_CHECK(zkh_pause_server(tu_zk, 0) == 0, out);
    paused = 1;
    b.rc = 1;
    TU_CHECK(pthread_create(&t, NULL, blocked_get, &b) == 0, out);
    end = tu_now_ms() + 10000;
    while (zkc__counter_callers(b.c) == 0 && tu_now_ms() < end)
        sched_yield();
    CU_ASSERT_EQUAL(zkc__counter_callers(b.c), 1);
    zkc_counter_free(b.c);
    b.c = NULL;
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(b.rc, ZKC_ECANCELED);
out:
    if (paused)
        CU_ASSERT_EQUAL(zkh_resume_server(tu_zk, 0), 0);
    zkc_counter_free(b.c);
    if (s) {
        CU_ASSERT_EQUAL(zkc_session_wait_connected(s, 20000), 0);
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
    }
}

/* ---- zkcoordctl counter: the built binary, run with posix_spawn */

extern char **environ;

/* Run `zkcoordctl -s <servers> args...` (NULL-terminated); stdout and
 * stderr into out (NUL-terminated, truncated). Exit status, or -1. */
static int ctl(char *out, size_t cap, ...)
{
    const char *top = getenv("top_builddir");
    char bin[1024];
    char *argv[32];
    posix_spawn_file_actions_t fa;
    va_list ap;
    pid_t pid;
    size_t got = 0;
    ssize_t r;
    int fds[2], n = 0, status;

    snprintf(bin, sizeof(bin), "%s/zkcoordctl", top && *top ? top : ".");
    argv[n++] = bin;
    argv[n++] = (char *)"-s";
    argv[n++] = (char *)zkh_connect_string(tu_zk);
    va_start(ap, cap);
    while (n < 31 && (argv[n] = va_arg(ap, char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    if (posix_spawn(&pid, bin, &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    while (got < cap - 1 && (r = read(fds[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void test_cli(void)
{
    char out[4096];

    /* no node: exit 3 */
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/n", NULL), 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/cli/n: not found"));
    /* set, add, get: table */
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/n", "set", "40", NULL), 0);
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/n", "add", "2", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "PATH    VALUE  VERSION\n/cli/n  42     1\n");
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/n", "add", "-50", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/cli/n  -8     2"));
    /* JSON */
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "--format", "json", "counter", "/cli/n", "get", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"width\": \"int32\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"value\": -8"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"version\": 2"));
    /* cas: lost prints the current value and exits 1; won exits 0 */
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/n", "cas", "7", "9", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "cas lost: the counter holds -8, not 7"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/cli/n  -8     2"));
    CU_ASSERT_EQUAL(
        ctl(out, sizeof(out), "--format", "json", "counter", "/cli/n", "cas", "-8", "9", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"won\": true"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"value\": 9"));
    /* widths: an 8-byte counter is malformed for the 4-byte reader */
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/l", "--long", "set", "3000000000", NULL),
                    0);
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/l", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "not a 4-byte counter"));
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/l", "--long", "add", "1", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "3000000001"));
    /* usage: exit 2 */
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/n", "set", "3000000000", NULL), 2);
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/n", "add", "x", NULL), 2);
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", "/cli/n", "frob", NULL), 2);
    CU_ASSERT_EQUAL(ctl(out, sizeof(out), "counter", NULL), 2);
}

int register_counter_suite(void)
{
    CU_pSuite s = CU_add_suite("counter", NULL, NULL);

    if (!s || !CU_add_test(s, "int32: get, set, add, cas, cas on value, bytes", test_ops_int32) ||
        !CU_add_test(s, "int64, empty and malformed data", test_ops_int64_and_bad_data) ||
        !CU_add_test(s, "version-skip multi", test_skip_multi) ||
        !CU_add_test(s, "concurrent adds from sessions: exact total (int32)",
                     test_concurrent_adds_int32) ||
        !CU_add_test(s, "concurrent adds from sessions: exact total (int64)",
                     test_concurrent_adds_int64) ||
        !CU_add_test(s, "watch: changes, delete, session loss, stop", test_watch) ||
        !CU_add_test(s, "watch across a server restart", test_watch_server_restart) ||
        !CU_add_test(s, "free wakes a blocked caller with ECANCELED", test_free_cancels) ||
        !CU_add_test(s, "zkcoordctl counter: ops, output, exit codes", test_cli))
        return -1;
    return 0;
}
