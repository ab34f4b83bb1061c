/* The session layer against a real server: connect, expiry, suspend and
 * reconnect, the local LOST timer, digest auth, chroot, mkdir -p. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "internal.h"
#include "naming.h"
#include "pcreate.h"
#include "suites.h"
#include "zkcoord/election.h"
#include "zkcoord/lock.h"

static void test_connect_wait_close(void)
{
    tu_rec rec;
    zkc_session *s = NULL;

    tu_rec_init(&rec);
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, &rec), 0);
    CU_ASSERT_EQUAL(zkc_session_state(s), ZKC_CONN_CONNECTED);
    CU_ASSERT_NOT_EQUAL(zkc_session_id(s), 0);
    CU_ASSERT_EQUAL(zkc_session_generation(s), 1);
    CU_ASSERT_EQUAL(zkc_session_timeout_ms(s), 4000);
    CU_ASSERT_EQUAL(tu_rec_wait(&rec, 0, ZKC_CONN_CONNECTED, 5000), 0);
    CU_ASSERT_EQUAL(zkc_session_wait_connected(s, 0), 0);
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
    tu_rec_destroy(&rec);
}

static void test_unreachable(void)
{
    zkc_session_opts o;
    zkc_session *s = NULL;
    long long t0, dt;

    zkc_session_opts_init(&o);
    o.servers = "127.0.0.1:1"; /* nothing listens on port 1 */
    o.log_level = ZKC_LOG_ERROR;
    o.log_fn = tu_log;
    CU_ASSERT_EQUAL_FATAL(zkc_session_new(&s, &o), 0);
    t0 = tu_now_ms();
    CU_ASSERT_EQUAL(zkc_session_wait_connected(s, 700), ZKC_EUNREACHABLE);
    dt = tu_now_ms() - t0;
    CU_ASSERT(dt >= 690);
    CU_ASSERT(dt < 3000); /* the deadline is kept, not stretched by the client */
    CU_ASSERT_EQUAL(zkc_session_state(s), ZKC_CONN_NONE);
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

static void test_forced_expiry(void)
{
    tu_rec rec;
    zkc_session *s = NULL;
    int64_t first;
    int lost, connected;

    tu_rec_init(&rec);
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 2000, &rec), 0);
    first = zkc_session_id(s);
    TU_CHECK(tu_expire(s) == 0, out);
    lost = tu_rec_wait(&rec, 1, ZKC_CONN_LOST, 10000);
    TU_CHECK(lost > 0, out);
    connected = tu_rec_wait(&rec, lost + 1, ZKC_CONN_CONNECTED, 10000);
    CU_ASSERT(connected > lost);
    CU_ASSERT_EQUAL(zkc_session_wait_connected(s, 5000), 0);
    CU_ASSERT_EQUAL(zkc_session_generation(s), 2);
    CU_ASSERT_NOT_EQUAL(zkc_session_id(s), 0);
    CU_ASSERT_NOT_EQUAL(zkc_session_id(s), first);
out:
    zkc_session_close(s);
    tu_rec_destroy(&rec);
}

static void test_suspend_reconnect(void)
{
    tu_rec rec;
    zkc_session *s = NULL;
    int64_t sid;
    int susp, rec_i;

    tu_rec_init(&rec);
    /* Long enough to outlive a server restart (the JVM takes 1-3 s). */
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 30000, &rec), 0);
    sid = zkc_session_id(s);
    TU_CHECK(zkh_stop_server(tu_zk, 0) == 0, out);
    susp = tu_rec_wait(&rec, 1, ZKC_CONN_SUSPENDED, 10000);
    CU_ASSERT(susp > 0);
    CU_ASSERT_EQUAL(zkc_session_state(s), ZKC_CONN_SUSPENDED);
    TU_CHECK(zkh_start_server(tu_zk, 0) == 0, out);
    rec_i = tu_rec_wait(&rec, susp + 1, ZKC_CONN_RECONNECTED, 25000);
    CU_ASSERT(rec_i > susp);
    CU_ASSERT_EQUAL(zkc_session_id(s), sid);
    CU_ASSERT_EQUAL(zkc_session_generation(s), 1);
    CU_ASSERT_EQUAL(tu_rec_wait(&rec, 0, ZKC_CONN_LOST, 0), -1);
out:
    zkc_session_close(s);
    tu_rec_destroy(&rec);
}

static void test_local_lost_timer(void)
{
    tu_rec rec;
    zkc_session *s = NULL;
    int susp, lost, conn;
    long long t_susp, t_lost;

    tu_rec_init(&rec);
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 1000, &rec), 0);
    TU_CHECK(zkh_stop_server(tu_zk, 0) == 0, out);
    susp = tu_rec_wait(&rec, 1, ZKC_CONN_SUSPENDED, 10000);
    t_susp = tu_now_ms();
    TU_CHECK(susp > 0, restart);
    /* No server is there to say "expired": the local timer must. */
    lost = tu_rec_wait(&rec, susp + 1, ZKC_CONN_LOST, 10000);
    t_lost = tu_now_ms();
    CU_ASSERT(lost > susp);
    CU_ASSERT(t_lost - t_susp < 5000);
restart:
    TU_CHECK(zkh_start_server(tu_zk, 0) == 0, out);
    conn = tu_rec_wait(&rec, lost + 1, ZKC_CONN_CONNECTED, 25000);
    CU_ASSERT(conn > lost);
    CU_ASSERT_EQUAL(zkc_session_generation(s), 2);
out:
    zkc_session_close(s);
    tu_rec_destroy(&rec);
}

static zkc_session *auth_session(const char *user, const char *password)
{
    zkc_session_opts o;
    zkc_session *s = NULL;

    zkc_session_opts_init(&o);
    o.servers = zkh_connect_string(tu_zk);
    o.digest_user = user;
    o.digest_password = password;
    o.log_fn = tu_log;
    o.log_level = ZKC_LOG_ERROR;
    if (zkc_session_new(&s, &o) != 0)
        return NULL;
    if (zkc_session_wait_connected(s, 10000) != 0) {
        zkc_session_close(s);
        return NULL;
    }
    return s;
}

static int set_data(zkc_session *s, const char *path, const char *data)
{
    zhandle_t *zh = zkc__zh_lock(s, NULL);
    int rc;

    if (!zh)
        return ZKC_ECONNLOSS;
    zkc__zh_unlock(s);
    /* Sync API from the test thread (not a completion thread). */
    rc = zoo_set(zh, path, data, (int)strlen(data), -1);
    return zkc__err_from_zk(rc);
}

static void test_digest_auth(void)
{
    zkc_session *owner = auth_session("alice", "s3cret");
    zkc_session *wrong = auth_session("alice", "guess");
    zkc_session *right = auth_session("alice", "s3cret");
    zhandle_t *zh;
    char buf[32];
    int len = sizeof(buf);

    CU_ASSERT_PTR_NOT_NULL_FATAL(owner);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrong);
    CU_ASSERT_PTR_NOT_NULL_FATAL(right);
    CU_ASSERT_EQUAL(zkc__mkdirs_sync(owner, "/authtest/secret", 5000), 0);
    CU_ASSERT_EQUAL(set_data(owner, "/authtest/secret", "v1"), 0);
    /* Digest auth only records an identity; the refusal comes from the ACL
     * of the node, which the library set to creator-all + world-read. */
    CU_ASSERT_EQUAL(set_data(wrong, "/authtest/secret", "v2"), ZKC_ENOAUTH);
    CU_ASSERT_EQUAL(set_data(right, "/authtest/secret", "v3"), 0);
    zh = zkc__zh_lock(wrong, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(zh);
    zkc__zh_unlock(wrong);
    CU_ASSERT_EQUAL(zoo_get(zh, "/authtest/secret", 0, buf, &len, NULL), ZOK);
    CU_ASSERT_EQUAL(len, 2);
    CU_ASSERT_EQUAL(memcmp(buf, "v3", 2), 0);
    zkc_session_close(owner);
    zkc_session_close(wrong);
    zkc_session_close(right);
}

static void test_chroot(void)
{
    zkc_session_opts o;
    zkc_session *s = NULL, *plain = NULL;
    zhandle_t *zh;
    struct Stat st;

    zkc_session_opts_init(&o);
    o.servers = zkh_connect_string(tu_zk);
    o.root = "/chroot-test/deep/root";
    o.log_fn = tu_log;
    o.log_level = ZKC_LOG_ERROR;
    CU_ASSERT_EQUAL_FATAL(zkc_session_new(&s, &o), 0);
    CU_ASSERT_EQUAL_FATAL(zkc_session_wait_connected(s, 10000), 0);
    CU_ASSERT_EQUAL(zkc__mkdirs_sync(s, "/x/y", 5000), 0);
    CU_ASSERT_EQUAL_FATAL(tu_session(&plain, NULL, 4000, NULL), 0);
    zh = zkc__zh_lock(plain, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(zh);
    zkc__zh_unlock(plain);
    CU_ASSERT_EQUAL(zoo_exists(zh, "/chroot-test/deep/root/x/y", 0, &st), ZOK);
    CU_ASSERT_EQUAL(zoo_exists(zh, "/x", 0, &st), ZNONODE);
    zkc_session_close(s);
    zkc_session_close(plain);
}

struct mk_arg {
    zkc_session *s;
    int rc;
};

static void *mk_thread(void *p)
{
    struct mk_arg *a = p;

    a->rc = zkc__mkdirs_sync(a->s, "/race/a/b/c/d/e", 10000);
    return NULL;
}

static void test_mkdirs_race(void)
{
    enum { N = 6 };
    zkc_session *s[N];
    struct mk_arg a[N];
    pthread_t t[N];
    int i;

    for (i = 0; i < N; i++)
        CU_ASSERT_EQUAL_FATAL(tu_session(&s[i], NULL, 4000, NULL), 0);
    for (i = 0; i < N; i++) {
        a[i].s = s[i];
        a[i].rc = 99;
        pthread_create(&t[i], NULL, mk_thread, &a[i]);
    }
    for (i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(a[i].rc, 0);
    }
    CU_ASSERT_EQUAL(zkc__mkdirs_sync(s[0], "/race/a/b/c/d/e", 5000), 0);
    CU_ASSERT_EQUAL(zkc__mkdirs_sync(s[0], "bad//path", 5000), ZKC_EINVAL);
    for (i = 0; i < N; i++)
        zkc_session_close(s[i]);
}

struct blocking_cb {
    zkc_session *s;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int rc;
    int called;
};

static void blocking_listener(zkc_session *s, zkc_conn_state st, void *ud)
{
    struct blocking_cb *b = ud;
    int rc = ZKC_EINVAL;

    /* A callback may call blocking library functions. */
    if (st == ZKC_CONN_CONNECTED)
        rc = zkc__mkdirs_sync(s, "/from-callback/x", 5000);
    pthread_mutex_lock(&b->mu);
    b->rc = rc;
    b->called = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
    CU_ASSERT_EQUAL(zkc_session_close(s), ZKC_EBUSY);
}

static void test_callback_may_block(void)
{
    zkc_session_opts o;
    zkc_session *s = NULL;
    struct blocking_cb b;
    struct timespec ts;

    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.mu, NULL);
    zkc__cond_init(&b.cond);
    zkc_session_opts_init(&o);
    o.servers = zkh_connect_string(tu_zk);
    o.log_fn = tu_log;
    CU_ASSERT_EQUAL_FATAL(zkc_session_new(&s, &o), 0);
    CU_ASSERT_EQUAL(zkc_session_add_listener(s, blocking_listener, &b), 0);
    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&b.mu);
    while (!b.called && pthread_cond_timedwait(&b.cond, &b.mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&b.mu);
    CU_ASSERT_EQUAL(b.called, 1);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(zkc_session_remove_listener(s, blocking_listener, &b), 0);
    CU_ASSERT_EQUAL(zkc_session_remove_listener(s, blocking_listener, &b), ZKC_ENONODE);
    zkc_session_close(s);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.mu);
}

/* ------------------------------------------- bug 1: no unannounced swap */

/* Issue 9, bug 1. The local LOST timer fires while the server is down; a
 * slow log sink holds the manager on the "session lost" line while the
 * server comes back and the old handle reconnects to its old session. The
 * old session must not be announced as CONNECTED, the new one must be
 * announced exactly once, and the LOST listener must not get the old handle
 * from zkc__zh_lock(). */
struct swap_rec {
    zkc_conn_state st;
    unsigned gen;
    int64_t sid;
};

struct swap_test {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int block_on_lost; /* the sink holds the "session lost" line */
    int blocked;
    int released;
    int64_t established; /* last sessionId the client logged as established */
    int n;
    struct swap_rec recs[32];
    int lost_zh_seen;    /* the LOST listener got a handle from zkc__zh_lock */
    int64_t lost_zh_sid; /* and its session id */
};

static void swap_sink(zkc_log_level level, const char *msg, void *ud)
{
    struct swap_test *t = ud;
    const char *p;
    struct timespec ts;

    if (strstr(msg, "session establishment complete") && (p = strstr(msg, "sessionId="))) {
        pthread_mutex_lock(&t->mu);
        t->established = (int64_t)strtoull(p + strlen("sessionId="), NULL, 16);
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->mu);
    }
    if (strstr(msg, "session lost")) {
        pthread_mutex_lock(&t->mu);
        if (t->block_on_lost) {
            t->block_on_lost = 0;
            t->blocked = 1;
            pthread_cond_broadcast(&t->cond);
            zkc__deadline(&ts, 60000); /* bounded: a broken test must still end */
            while (!t->released && pthread_cond_timedwait(&t->cond, &t->mu, &ts) != ETIMEDOUT)
                ;
        }
        pthread_mutex_unlock(&t->mu);
    }
    if (level <= ZKC_LOG_WARN)
        tu_log(level, msg, NULL);
}

static void swap_listener(zkc_session *s, zkc_conn_state st, void *ud)
{
    struct swap_test *t = ud;
    zhandle_t *zh = NULL;
    int64_t zh_sid = 0;

    if (st == ZKC_CONN_LOST) {
        zh = zkc__zh_lock(s, NULL);
        if (zh) {
            zh_sid = zoo_client_id(zh)->client_id;
            zkc__zh_unlock(s);
        }
    }
    pthread_mutex_lock(&t->mu);
    if (t->n < (int)(sizeof(t->recs) / sizeof(t->recs[0]))) {
        t->recs[t->n].st = st;
        t->recs[t->n].gen = zkc_session_generation(s);
        t->recs[t->n].sid = zkc_session_id(s);
        t->n++;
    }
    if (zh) {
        t->lost_zh_seen = 1;
        t->lost_zh_sid = zh_sid;
    }
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

/* Wait (bounded) until pred(t) holds; mu held by the caller. */
static int swap_wait(struct swap_test *t, int (*pred)(struct swap_test *, int64_t), int64_t arg,
                     int timeout_ms)
{
    struct timespec ts;

    zkc__deadline(&ts, timeout_ms);
    while (!pred(t, arg))
        if (pthread_cond_timedwait(&t->cond, &t->mu, &ts) == ETIMEDOUT)
            return pred(t, arg);
    return 1;
}

static int swap_blocked(struct swap_test *t, int64_t unused)
{
    (void)unused;
    return t->blocked;
}

static int swap_established(struct swap_test *t, int64_t sid)
{
    return t->established == sid;
}

static int swap_connected_after_lost(struct swap_test *t, int64_t unused)
{
    int i, lost = 0;

    (void)unused;
    for (i = 0; i < t->n; i++) {
        if (t->recs[i].st == ZKC_CONN_LOST)
            lost = 1;
        else if (lost && t->recs[i].st == ZKC_CONN_CONNECTED)
            return 1;
    }
    return 0;
}

/* The session is settled on a live handle of a session other than `old`. */
static int settled_on_new(zkc_session *s, int64_t old)
{
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(s, &gen);
    int64_t zsid;

    if (!zh)
        return 0;
    zsid = zoo_client_id(zh)->client_id;
    zkc__zh_unlock(s);
    return zkc_session_state(s) == ZKC_CONN_CONNECTED && zsid != 0 && zsid != old &&
           zkc_session_id(s) == zsid && gen == zkc_session_generation(s);
}

/* create: make /swap-eph an ephemeral node of the current session; else
 * say whether it exists. Sync API from the test thread. */
static int swap_ephemeral(zkc_session *s, int create)
{
    zhandle_t *zh = zkc__zh_lock(s, NULL);
    struct Stat st;

    if (!zh)
        return ZCONNECTIONLOSS;
    zkc__zh_unlock(s);
    if (create)
        return zoo_create(zh, "/swap-eph", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0);
    return zoo_exists(zh, "/swap-eph", 0, &st);
}

static void test_no_unannounced_swap(void)
{
    struct swap_test t;
    zkc_session_opts o;
    zkc_session *s = NULL;
    int64_t sid1, sid2;
    long long deadline;
    int i, ok, n_connected = 0;
    unsigned last_gen = 0;

    memset(&t, 0, sizeof(t));
    pthread_mutex_init(&t.mu, NULL);
    zkc__cond_init(&t.cond);
    /* The client's "session establishment complete" line is an INFO one. */
    zoo_set_debug_level(ZOO_LOG_LEVEL_INFO); /* the client's default, to be sure */
    zkc_session_opts_init(&o);
    o.servers = zkh_connect_string(tu_zk);
    /* Longer than a server restart would be needed for the old session to
     * survive it; the server gives restored sessions a fresh timeout. */
    o.session_timeout_ms = 4000;
    o.log_fn = swap_sink;
    o.log_user_data = &t;
    o.log_level = ZKC_LOG_INFO;
    o.zk_log_level = ZKC_LOG_INFO;
    CU_ASSERT_EQUAL_FATAL(zkc_session_new(&s, &o), 0);
    CU_ASSERT_EQUAL(zkc_session_add_listener(s, swap_listener, &t), 0);
    TU_CHECK(zkc_session_wait_connected(s, 15000) == 0, out);
    sid1 = zkc_session_id(s);
    TU_CHECK(sid1 != 0, out);
    TU_CHECK(swap_ephemeral(s, 1) == ZOK, out); /* dies with the old session */

    pthread_mutex_lock(&t.mu);
    t.block_on_lost = 1;
    pthread_mutex_unlock(&t.mu);
    TU_CHECK(zkh_stop_server(tu_zk, 0) == 0, out);
    pthread_mutex_lock(&t.mu);
    ok = swap_wait(&t, swap_blocked, 0, 30000);
    pthread_mutex_unlock(&t.mu);
    CU_ASSERT(ok);
    TU_CHECK(zkh_start_server(tu_zk, 0) == 0, release);
    if (ok) {
        /* The old handle is still open: it finds its old session alive on
         * the restarted server while the manager is held. */
        pthread_mutex_lock(&t.mu);
        ok = swap_wait(&t, swap_established, sid1, 30000);
        pthread_mutex_unlock(&t.mu);
        CU_ASSERT(ok);
    }
release:
    pthread_mutex_lock(&t.mu);
    t.released = 1;
    pthread_cond_broadcast(&t.cond);
    ok = swap_wait(&t, swap_connected_after_lost, 0, 30000);
    pthread_mutex_unlock(&t.mu);
    CU_ASSERT(ok);
    deadline = tu_now_ms() + 30000;
    while (!settled_on_new(s, sid1) && tu_now_ms() < deadline) {
        /* Not a synchronisation sleep: polling session state with a deadline. */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT(settled_on_new(s, sid1));
    sid2 = zkc_session_id(s);
    zkc__dispatch_barrier(s); /* every announcement so far has been heard */

    pthread_mutex_lock(&t.mu);
    for (i = 0; i < t.n; i++)
        fprintf(stderr, "    [swap] %s gen %u session 0x%llx\n", zkc_conn_state_name(t.recs[i].st),
                t.recs[i].gen, (unsigned long long)t.recs[i].sid);
    /* connected (gen 1), suspended, lost, connected (gen 2, new id): no gap,
     * nothing announced twice, the old id never announced after LOST. */
    CU_ASSERT_EQUAL(t.n, 4);
    if (t.n == 4) {
        CU_ASSERT_EQUAL(t.recs[0].st, ZKC_CONN_CONNECTED);
        CU_ASSERT_EQUAL(t.recs[1].st, ZKC_CONN_SUSPENDED);
        CU_ASSERT_EQUAL(t.recs[2].st, ZKC_CONN_LOST);
        CU_ASSERT_EQUAL(t.recs[3].st, ZKC_CONN_CONNECTED);
        CU_ASSERT_EQUAL(t.recs[0].sid, sid1);
        CU_ASSERT_EQUAL(t.recs[3].sid, sid2);
        CU_ASSERT_EQUAL(t.recs[3].gen, 2);
    }
    for (i = 0; i < t.n; i++) {
        if (t.recs[i].st == ZKC_CONN_CONNECTED) {
            n_connected++;
            CU_ASSERT(t.recs[i].gen > last_gen); /* each generation once */
            last_gen = t.recs[i].gen;
            if (i > 0)
                CU_ASSERT_NOT_EQUAL(t.recs[i].sid, sid1);
        }
    }
    CU_ASSERT_EQUAL(n_connected, 2);
    /* At LOST the old handle was already gone from recipes. */
    CU_ASSERT(!t.lost_zh_seen || t.lost_zh_sid != sid1);
    pthread_mutex_unlock(&t.mu);
    CU_ASSERT_EQUAL(zkc_session_generation(s), 2);
    CU_ASSERT_NOT_EQUAL(sid2, sid1);
    /* The old handle, reconnected to its session, was closed: its
     * ephemeral node goes. Normally at once (zookeeper_close sends
     * closeSession); on a loaded machine the client may give up waiting for
     * that reply, and the server then expires the old session after its
     * timeout. A handle left open would keep the node forever, so waiting
     * past the old session's timeout still catches a leaked handle. */
    deadline = tu_now_ms() + o.session_timeout_ms + 5000;
    while (swap_ephemeral(s, 0) != ZNONODE && tu_now_ms() < deadline) {
        /* Not a synchronisation sleep: polling the server with a deadline. */
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT_EQUAL(swap_ephemeral(s, 0), ZNONODE);
out:
    zkc_session_close(s);
    /* The server must serve the next tests whatever happened above. */
    if (zkh_server_pid(tu_zk, 0) == 0)
        zkh_start_server(tu_zk, 0);
    pthread_cond_destroy(&t.cond);
    pthread_mutex_destroy(&t.mu);
}

/* ---------------------------------------------- bug 8: the safety lane */

struct lane_test {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int blocker_running;
    int unblock;
    int ran; /* ordinary callbacks run, in order */
    int out_of_order;
    long long learned; /* the library logged LOST (it sets LOST, then logs) */
    long long heard;   /* the listener ran with LOST */
};

struct lane_item {
    struct lane_test *t;
    int index;
};

static void lane_blocker(void *arg)
{
    struct lane_test *t = arg;
    struct timespec ts;

    /* A user callback blocked for seconds: on the test's word, at most 30 s. */
    zkc__deadline(&ts, 30000);
    pthread_mutex_lock(&t->mu);
    t->blocker_running = 1;
    pthread_cond_broadcast(&t->cond);
    while (!t->unblock && pthread_cond_timedwait(&t->cond, &t->mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&t->mu);
}

static void lane_ordinary(void *arg)
{
    struct lane_item *it = arg;

    pthread_mutex_lock(&it->t->mu);
    if (it->index != it->t->ran)
        it->t->out_of_order++;
    it->t->ran++;
    pthread_mutex_unlock(&it->t->mu);
}

static void lane_sink(zkc_log_level level, const char *msg, void *ud)
{
    struct lane_test *t = ud;

    if (strstr(msg, "connection state lost")) {
        pthread_mutex_lock(&t->mu);
        if (!t->learned)
            t->learned = tu_now_ms();
        pthread_mutex_unlock(&t->mu);
    }
    if (level <= ZKC_LOG_WARN && !strstr(msg, "zookeeper:"))
        tu_log(level, msg, NULL);
}

static void lane_listener(zkc_session *s, zkc_conn_state st, void *ud)
{
    struct lane_test *t = ud;

    (void)s;
    if (st != ZKC_CONN_LOST)
        return;
    pthread_mutex_lock(&t->mu);
    if (!t->heard)
        t->heard = tu_now_ms();
    pthread_mutex_unlock(&t->mu);
}

static void test_safety_lane(void)
{
    enum { N = 3000 };
    struct lane_test t;
    struct lane_item *items = calloc(N, sizeof(*items));
    zkc_session_opts o;
    zkc_session *s = NULL;
    struct timespec ts;
    int i, expired;

    CU_ASSERT_PTR_NOT_NULL_FATAL(items);
    memset(&t, 0, sizeof(t));
    pthread_mutex_init(&t.mu, NULL);
    zkc__cond_init(&t.cond);
    zkc_session_opts_init(&o);
    o.servers = zkh_connect_string(tu_zk);
    o.session_timeout_ms = 4000;
    o.log_fn = lane_sink;
    o.log_user_data = &t;
    o.log_level = ZKC_LOG_WARN;
    CU_ASSERT_EQUAL_FATAL(zkc_session_new(&s, &o), 0);
    CU_ASSERT_EQUAL(zkc_session_add_listener(s, lane_listener, &t), 0);
    TU_CHECK(zkc_session_wait_connected(s, 15000) == 0, out);

    /* The ordinary lane: one callback blocked, 3,000 queued behind it. */
    TU_CHECK(zkc__dispatch(s, lane_blocker, &t) == 0, out);
    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&t.mu);
    while (!t.blocker_running && pthread_cond_timedwait(&t.cond, &t.mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&t.mu);
    TU_CHECK(t.blocker_running, unblock);
    for (i = 0; i < N; i++) {
        items[i].t = &t;
        items[i].index = i;
        TU_CHECK(zkc__dispatch(s, lane_ordinary, &items[i]) == 0, unblock);
    }

    expired = tu_expire(s); /* waits for LOST through a listener */
    CU_ASSERT_EQUAL(expired, 0);
    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&t.mu);
    while (!t.heard && pthread_cond_timedwait(&t.cond, &t.mu, &ts) != ETIMEDOUT)
        ;
    fprintf(stderr, "    [safety lane] LOST learned -> listener: %lld ms, %d of %d ordinary run\n",
            t.heard && t.learned ? t.heard - t.learned : -1, t.ran, N);
    CU_ASSERT(t.learned > 0);
    CU_ASSERT(t.heard > 0);
    CU_ASSERT(t.heard - t.learned < 100);
    CU_ASSERT_EQUAL(t.ran, 0); /* the ordinary lane really was blocked */
    pthread_mutex_unlock(&t.mu);

unblock:
    pthread_mutex_lock(&t.mu);
    t.unblock = 1;
    pthread_cond_broadcast(&t.cond);
    pthread_mutex_unlock(&t.mu);
    zkc__dispatch_barrier(s); /* both lanes */
    pthread_mutex_lock(&t.mu);
    CU_ASSERT_EQUAL(t.ran, N);
    CU_ASSERT_EQUAL(t.out_of_order, 0);
    pthread_mutex_unlock(&t.mu);
out:
    zkc_session_close(s);
    pthread_cond_destroy(&t.cond);
    pthread_mutex_destroy(&t.mu);
    free(items);
}

/* ------------------------------------ bug 9: close with handles open */

static void test_close_with_open_handles(void)
{
    zkc_session *s = NULL;
    zkc_lock *l = NULL;
    zkc_rwlock *rw = NULL;
    int64_t token = 0;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(zkc_lock_new(&l, s, "/close-busy/lock", NULL), 0);
    /* Refused, and nothing was torn down: the lock still works. */
    CU_ASSERT_EQUAL(zkc_session_close(s), ZKC_EBUSY);
    CU_ASSERT_EQUAL(zkc_session_state(s), ZKC_CONN_CONNECTED);
    CU_ASSERT_EQUAL(zkc_lock_acquire(l, 10000, &token), 0);
    CU_ASSERT(token > 0);
    CU_ASSERT_EQUAL(zkc_lock_release(l), 0);
    CU_ASSERT_EQUAL_FATAL(zkc_rwlock_new(&rw, s, "/close-busy/rw", NULL), 0);
    zkc_lock_free(l);
    CU_ASSERT_EQUAL(zkc_session_close(s), ZKC_EBUSY); /* the rwlock still is open */
    zkc_rwlock_free(rw);
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

/* ------------------------------ bug 10: the client log past 64 sessions */

struct zklog_count {
    pthread_mutex_t mu;
    int zk_lines;
};

static void zklog_sink(zkc_log_level level, const char *msg, void *ud)
{
    struct zklog_count *c = ud;

    (void)level;
    if (strncmp(msg, "zookeeper: ", 11) == 0) {
        pthread_mutex_lock(&c->mu);
        c->zk_lines++;
        pthread_mutex_unlock(&c->mu);
    }
}

static void test_zk_log_past_64_sessions(void)
{
    enum { N = 70 };
    zkc_session **s = calloc(N, sizeof(*s));
    struct zklog_count *cnt = calloc(N, sizeof(*cnt));
    zkc_session_opts o;
    int i, opened = 0, before;

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cnt);
    zoo_set_debug_level(ZOO_LOG_LEVEL_INFO); /* the client's default, to be sure */
    for (i = 0; i < N; i++) {
        pthread_mutex_init(&cnt[i].mu, NULL);
        zkc_session_opts_init(&o);
        o.servers = zkh_connect_string(tu_zk);
        o.session_timeout_ms = 10000;
        o.log_fn = zklog_sink;
        o.log_user_data = &cnt[i];
        o.log_level = ZKC_LOG_INFO;
        o.zk_log_level = ZKC_LOG_INFO;
        if (zkc_session_new(&s[i], &o) != 0)
            break;
        opened++;
    }
    CU_ASSERT_EQUAL(opened, N);
    for (i = 0; i < opened; i++)
        CU_ASSERT_EQUAL(zkc_session_wait_connected(s[i], 30000), 0);
    /* Close all but the last: the client's log now belongs to it, the
     * oldest (only) open session, whatever its rank at creation. */
    for (i = 0; i < opened - 1; i++) {
        CU_ASSERT_EQUAL(zkc_session_close(s[i]), 0);
    }
    if (opened == N) {
        pthread_mutex_lock(&cnt[N - 1].mu);
        before = cnt[N - 1].zk_lines;
        pthread_mutex_unlock(&cnt[N - 1].mu);
        /* The client logs "Closing zookeeper sessionId=..." at INFO. */
        CU_ASSERT_EQUAL(zkc_session_close(s[N - 1]), 0);
        pthread_mutex_lock(&cnt[N - 1].mu);
        CU_ASSERT(cnt[N - 1].zk_lines > before);
        pthread_mutex_unlock(&cnt[N - 1].mu);
    }
    for (i = 0; i < N; i++)
        pthread_mutex_destroy(&cnt[i].mu);
    free(cnt);
    free(s);
}

/* ------------------------------ bug 5: completions at zookeeper_close */

struct close_probe {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int connected;
    int calls;
    int bad_rc;    /* completions run with neither ZOK nor ZCLOSING */
    int on_closer; /* completions run on the thread calling zookeeper_close */
    pthread_t closer;
};

static void probe_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct close_probe *p = ctx;

    (void)zh;
    (void)path;
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
        pthread_mutex_lock(&p->mu);
        p->connected = 1;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
    }
}

static void probe_done(int rc, const struct Stat *st, const void *data)
{
    struct close_probe *p = (struct close_probe *)data;

    (void)st;
    pthread_mutex_lock(&p->mu);
    p->calls++;
    if (rc != ZOK && rc != ZCLOSING)
        p->bad_rc++;
    if (pthread_equal(pthread_self(), p->closer))
        p->on_closer++;
    pthread_mutex_unlock(&p->mu);
}

/* One handle: connect, send n requests, close at once. Returns how many
 * completions ran by the time zookeeper_close() returned, -1 on error. */
static int close_round(struct close_probe *p, int n)
{
    struct timespec ts;
    zhandle_t *zh;
    int i, calls;

    pthread_mutex_lock(&p->mu);
    p->connected = 0;
    p->calls = 0;
    pthread_mutex_unlock(&p->mu);
    zh = zookeeper_init(zkh_connect_string(tu_zk), probe_watcher, 30000, NULL, p, 0);
    if (!zh)
        return -1;
    zkc__deadline(&ts, 15000);
    pthread_mutex_lock(&p->mu);
    while (!p->connected && pthread_cond_timedwait(&p->cond, &p->mu, &ts) != ETIMEDOUT)
        ;
    i = p->connected;
    pthread_mutex_unlock(&p->mu);
    if (!i) {
        zookeeper_close(zh);
        return -1;
    }
    for (i = 0; i < n; i++)
        if (zoo_aexists(zh, "/", 0, probe_done, p) != ZOK)
            break;
    p->closer = pthread_self();
    zookeeper_close(zh); /* joins the client's threads: nothing runs after */
    pthread_mutex_lock(&p->mu);
    calls = i == n ? p->calls : -1;
    pthread_mutex_unlock(&p->mu);
    return calls;
}

/* Pins what session.c's close_handle() comment says of the 3.8 client:
 * zookeeper_close() does NOT reliably run the completions of requests still
 * pending. It fails them with ZCLOSING and queues them for its completion
 * thread, but that thread exits after the batch it is draining, so usually
 * only the first one or few run and the rest are dropped (never called,
 * their memory leaked: ZOOKEEPER-2894). Those that do run, run on the
 * client's completion thread, never on the closing thread. Rounds repeat
 * until one drops completions (most do; a few run them all); a client
 * that always ran them all would fail here after 200 rounds. */
static void test_completions_at_close(void)
{
    enum { N = 50, ROUNDS = 200 };
    struct close_probe p;
    int round, calls = -1, dropped_in = -1;

    memset(&p, 0, sizeof(p));
    pthread_mutex_init(&p.mu, NULL);
    zkc__cond_init(&p.cond);
    for (round = 0; round < ROUNDS && dropped_in < 0; round++) {
        calls = close_round(&p, N);
        CU_ASSERT(calls >= 0);
        if (calls < 0)
            break;
        if (calls < N)
            dropped_in = round;
    }
    fprintf(stderr, "    [close] completions run at close: %d of %d (round %d)\n", calls, N,
            round - 1);
    CU_ASSERT(dropped_in >= 0);
    CU_ASSERT_EQUAL(p.bad_rc, 0);
    CU_ASSERT_EQUAL(p.on_closer, 0);
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.mu);
}

/* Blocking reads without a deadline (zkc_lock_inspect, election
 * observe_leader) while their handle is closed under them: the client may
 * drop their completions (test above), which left the caller waiting
 * forever. Registered with zkc__pending they end, as a connection loss.
 * The server is paused so the reads stay in flight; the local session
 * timer is made to run out at once (test hook), which closes the connected
 * handle. A trivial request goes first so that the client's completion
 * thread takes it and leaves the reads' completions to be dropped. */
struct rac {
    zkc_session *s;
    int which; /* 0: lock inspect, 1: observe leader */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
    int rc;
};

static void *rac_thread(void *arg)
{
    struct rac *r = arg;
    zkc_lock_info *info = NULL;
    zkc_election_leader_info li;
    int rc;

    if (r->which == 0)
        rc = zkc_lock_inspect(r->s, "/rac/lock", -1, &info);
    else
        rc = zkc_election_observe_leader(r->s, "/rac/election", &li, -1);
    zkc_lock_info_free(info);
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    r->rc = rc;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void rac_first_done(int rc, const struct Stat *st, const void *data)
{
    (void)rc;
    (void)st;
    (void)data;
}

static void test_blocking_reads_at_close(void)
{
    enum { ROUNDS = 4 };
    static struct rac r; /* outlives a stuck reader */
    zkc_session *s = NULL;
    struct timespec ts;
    pthread_t t;
    zhandle_t *zh;
    int64_t deadline;
    int round, done, rc, paused;

    memset(&r, 0, sizeof(r));
    pthread_mutex_init(&r.mu, NULL);
    zkc__cond_init(&r.cond);
    /* A long session timeout: the client's own receive timeout (2/3 of it)
     * must not fail the reads with a connection loss first. */
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 60000, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(zkc__mkdirs_sync(s, "/rac/lock", 5000), 0);
    CU_ASSERT_EQUAL_FATAL(zkc__mkdirs_sync(s, "/rac/election", 5000), 0);
    r.s = s;
    for (round = 0; round < ROUNDS; round++) {
        r.which = round % 2;
        r.done = 0;
        r.rc = 0;
        CU_ASSERT_EQUAL_FATAL(zkc_session_wait_connected(s, 30000), 0);
        paused = zkh_pause_server(tu_zk, 0) == 0;
        CU_ASSERT_FATAL(paused);
        zh = zkc__zh_lock(s, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(zh);
        CU_ASSERT_EQUAL(zoo_aexists(zh, "/", 0, rac_first_done, NULL), ZOK);
        zkc__zh_unlock(s);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, rac_thread, &r), 0);
        /* Until the reader's request is registered and sent (it is sent
         * under the handle lock, taken here after it). */
        deadline = tu_now_ms() + 10000;
        while (zkc__test_pending_count(s) < 1 && tu_now_ms() < deadline)
            sched_yield();
        CU_ASSERT(zkc__test_pending_count(s) >= 1);
        if (zkc__zh_lock(s, NULL))
            zkc__zh_unlock(s);
        zkc__test_expire_now(s);
        zkc__deadline(&ts, 20000);
        pthread_mutex_lock(&r.mu);
        while (!r.done && pthread_cond_timedwait(&r.cond, &r.mu, &ts) != ETIMEDOUT)
            ;
        done = r.done;
        rc = r.rc;
        pthread_mutex_unlock(&r.mu);
        zkh_resume_server(tu_zk, 0);
        CU_ASSERT_EQUAL(done, 1);
        if (!done) {
            fprintf(stderr, "    [%s] still waiting 20 s after its handle closed\n",
                    r.which ? "observe_leader" : "lock_inspect");
            return; /* the reader is stuck: leave the session */
        }
        pthread_join(t, NULL);
        CU_ASSERT_EQUAL(rc, ZKC_ECONNLOSS);
    }
    CU_ASSERT_EQUAL(zkc_session_wait_connected(s, 30000), 0);
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.mu);
}

/* Requests in flight when their handle closes complete exactly once: the
 * 3.8 client drops most of their completions (test above), so the session
 * runs the dropped ones itself (zkc__pending) and a protected create still
 * reports, here with ZKC_ECLOSED, or 0 if its reply came first. */
struct pc_count {
    pthread_mutex_t mu;
    int calls;
    int ok;
    int closed;
    int other;
};

static void pc_done(void *arg, int rc, const char *path, const struct Stat *st)
{
    struct pc_count *c = arg;

    (void)path;
    (void)st;
    pthread_mutex_lock(&c->mu);
    c->calls++;
    if (rc == 0)
        c->ok++;
    else if (rc == ZKC_ECLOSED)
        c->closed++;
    else
        c->other++;
    pthread_mutex_unlock(&c->mu);
}

static void pc_first_done(int rc, const struct Stat *st, const void *data)
{
    (void)rc;
    (void)st;
    (void)data;
}

static void test_pcreate_at_close(void)
{
    zhandle_t *zh;
    enum { N = 50, ROUNDS = 5 };
    struct pc_count c;
    zkc_session *s = NULL;
    char guid[64];
    int i, round, closed_total = 0;

    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    for (round = 0; round < ROUNDS; round++) {
        CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 10000, NULL), 0);
        CU_ASSERT_EQUAL(zkc__mkdirs_sync(s, "/pc-close", 5000), 0);
        pthread_mutex_lock(&c.mu);
        c.calls = c.ok = c.closed = c.other = 0;
        pthread_mutex_unlock(&c.mu);
        /* A request with a trivial completion first: at close, the client's
         * completion thread runs it and leaves before the creates' are
         * queued, which is when the client drops them. */
        zh = zkc__zh_lock(s, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(zh);
        CU_ASSERT_EQUAL(zoo_aexists(zh, "/", 0, pc_first_done, NULL), ZOK);
        zkc__zh_unlock(s);
        for (i = 0; i < N; i++) {
            CU_ASSERT_EQUAL(zkc__guid(guid), 0);
            zkc__pcreate(s, "/pc-close", guid, "n-", "x", 1, ZOO_EPHEMERAL_SEQUENTIAL, pc_done, &c);
        }
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
        pthread_mutex_lock(&c.mu);
        CU_ASSERT_EQUAL(c.calls, N); /* each exactly once, all before close returned */
        CU_ASSERT_EQUAL(c.ok + c.closed, N);
        CU_ASSERT_EQUAL(c.other, 0);
        closed_total += c.closed;
        pthread_mutex_unlock(&c.mu);
    }
    fprintf(stderr, "    [pcreate at close] %d of %d creates ended ECLOSED\n", closed_total,
            N * ROUNDS);
    pthread_mutex_destroy(&c.mu);
}

/* zkc__dispatch_barrier() waits for the safety lane too: a recipe being
 * freed must know none of its safety callbacks (DEMOTED, lock LOST) runs. */
struct bar_test {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int release;
    int fn_done;
    int barrier_returned;
    int fn_done_at_return;
    zkc_session *s;
};

static void bar_safety_fn(void *arg)
{
    struct bar_test *b = arg;
    struct timespec ts;

    zkc__deadline(&ts, 30000);
    pthread_mutex_lock(&b->mu);
    while (!b->release && pthread_cond_timedwait(&b->cond, &b->mu, &ts) != ETIMEDOUT)
        ;
    b->fn_done = 1;
    pthread_mutex_unlock(&b->mu);
}

static void *bar_thread(void *arg)
{
    struct bar_test *b = arg;

    zkc__dispatch_barrier(b->s);
    pthread_mutex_lock(&b->mu);
    b->barrier_returned = 1;
    b->fn_done_at_return = b->fn_done;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void test_barrier_covers_safety_lane(void)
{
    struct bar_test b;
    struct timespec ts;
    pthread_t t;
    int early;

    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.mu, NULL);
    zkc__cond_init(&b.cond);
    CU_ASSERT_EQUAL_FATAL(tu_session(&b.s, NULL, 4000, NULL), 0);
    CU_ASSERT_EQUAL(zkc__dispatch_safety(b.s, bar_safety_fn, &b), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, bar_thread, &b), 0);
    /* While the safety callback is held, the barrier must not return: give
     * it a window to do so wrongly. */
    zkc__deadline(&ts, 300);
    pthread_mutex_lock(&b.mu);
    while (!b.barrier_returned && pthread_cond_timedwait(&b.cond, &b.mu, &ts) != ETIMEDOUT)
        ;
    early = b.barrier_returned;
    b.release = 1;
    pthread_cond_broadcast(&b.cond);
    pthread_mutex_unlock(&b.mu);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(early, 0);
    CU_ASSERT_EQUAL(b.barrier_returned, 1);
    CU_ASSERT_EQUAL(b.fn_done_at_return, 1);
    CU_ASSERT_EQUAL(zkc_session_close(b.s), 0);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.mu);
}

/* A callback on each lane frees a recipe handle at the same moment: each
 * free's barrier waits for the other lane, whose current callback is the
 * other free. Both must return (they once waited for each other forever). */
struct xfree_test {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int arrived;
    int freed;
    zkc_lock *l[2];
};

struct xfree_arg {
    struct xfree_test *t;
    int i;
};

static void xfree_fn(void *arg)
{
    struct xfree_arg *a = arg;
    struct xfree_test *t = a->t;
    struct timespec ts;

    /* Both callbacks running before either frees. */
    zkc__deadline(&ts, 30000);
    pthread_mutex_lock(&t->mu);
    t->arrived++;
    pthread_cond_broadcast(&t->cond);
    while (t->arrived < 2 && pthread_cond_timedwait(&t->cond, &t->mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&t->mu);
    zkc_lock_free(t->l[a->i]);
    pthread_mutex_lock(&t->mu);
    t->freed++;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

static void test_free_from_both_lanes(void)
{
    static struct xfree_test t; /* outlives a failed (deadlocked) run */
    static struct xfree_arg a[2];
    zkc_session *s = NULL;
    struct timespec ts;
    int arrived, freed;

    memset(&t, 0, sizeof(t));
    pthread_mutex_init(&t.mu, NULL);
    zkc__cond_init(&t.cond);
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(zkc_lock_new(&t.l[0], s, "/xfree/a", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(zkc_lock_new(&t.l[1], s, "/xfree/b", NULL), 0);
    a[0].t = a[1].t = &t;
    a[0].i = 0;
    a[1].i = 1;
    CU_ASSERT_EQUAL_FATAL(zkc__dispatch_safety(s, xfree_fn, &a[0]), 0);
    CU_ASSERT_EQUAL_FATAL(zkc__dispatch(s, xfree_fn, &a[1]), 0);
    zkc__deadline(&ts, 20000);
    pthread_mutex_lock(&t.mu);
    while (t.freed < 2 && pthread_cond_timedwait(&t.cond, &t.mu, &ts) != ETIMEDOUT)
        ;
    arrived = t.arrived;
    freed = t.freed;
    pthread_mutex_unlock(&t.mu);
    CU_ASSERT_EQUAL(arrived, 2);
    CU_ASSERT_EQUAL(freed, 2);
    if (freed != 2) {
        /* Deadlocked lanes: the session cannot be closed; leave it. */
        fprintf(stderr, "    both lanes stuck freeing handles: %d of 2 frees returned\n", freed);
        return;
    }
    CU_ASSERT_EQUAL(zkc_session_close(s), 0);
    pthread_cond_destroy(&t.cond);
    pthread_mutex_destroy(&t.mu);
}

int register_session_suite(void)
{
    CU_pSuite s = CU_add_suite("session", NULL, NULL);

    if (!s || !CU_add_test(s, "connect, wait, close", test_connect_wait_close) ||
        !CU_add_test(s, "unreachable server keeps the deadline", test_unreachable) ||
        !CU_add_test(s, "forced expiry: LOST then new CONNECTED", test_forced_expiry) ||
        !CU_add_test(s, "server stop: SUSPENDED, restart: RECONNECTED", test_suspend_reconnect) ||
        !CU_add_test(s, "local timer: LOST without a server", test_local_lost_timer) ||
        !CU_add_test(s, "digest auth and ACL", test_digest_auth) ||
        !CU_add_test(s, "chroot created and honoured", test_chroot) ||
        !CU_add_test(s, "mkdir -p races", test_mkdirs_race) ||
        !CU_add_test(s, "callbacks may block", test_callback_may_block) ||
        !CU_add_test(s, "local LOST: no unannounced session swap", test_no_unannounced_swap) ||
        !CU_add_test(s, "safety lane: LOST within 100 ms behind a blocked lane",
                     test_safety_lane) ||
        !CU_add_test(s, "barrier covers the safety lane", test_barrier_covers_safety_lane) ||
        !CU_add_test(s, "handles freed from both lanes at once", test_free_from_both_lanes) ||
        !CU_add_test(s, "close with recipe handles open: EBUSY", test_close_with_open_handles) ||
        !CU_add_test(s, "client log routed past 64 sessions", test_zk_log_past_64_sessions) ||
        !CU_add_test(s, "completions at handle close", test_completions_at_close) ||
        !CU_add_test(s, "blocking reads without deadline end at handle close",
                     test_blocking_reads_at_close) ||
        !CU_add_test(s, "protected creates in flight at close complete once",
                     test_pcreate_at_close))
        return -1;
    return 0;
}
