/* The session layer against a real server: connect, expiry, suspend and
 * reconnect, the local LOST timer, digest auth, chroot, mkdir -p. */
#include <CUnit/CUnit.h>
#include <string.h>

#include "common/testutil.h"
#include "internal.h"
#include "suites.h"

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
        !CU_add_test(s, "callbacks may block", test_callback_may_block))
        return -1;
    return 0;
}
