/* The "dropped connection" adversary (issue 10 follow-up, CI failure of
 * "session expiry during acquires: no error"): the ZooKeeper C client ends
 * every request pending on a connection it drops with the code of the
 * socket error that dropped it (zookeeper.c handle_socket_error_msg ->
 * handle_error -> cleanup_bufs), and a reply out of order makes that code
 * ZRUNTIMEINCONSISTENCY, not ZCONNECTIONLOSS. The proxy delivers a chosen
 * reply out of order (tu_proxy_reorder_reply) on a real server: the request
 * was applied, its reply is lost to the client, and the recipes must treat
 * it as the connection loss it is (a protected create recovers its node by
 * guid) instead of failing. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/proxy.h"
#include "common/testutil.h"
#include "internal.h"

/* ZooKeeper opcodes (zookeeper.jute / proto.h) the tests aim at. */
#define OP_GETDATA      4
#define OP_DELETE       2
#define OP_GETCHILDREN2 12
#define OP_CREATE2      15

/* ------------------------------------------------------------ helpers */

/* Children of `path` as names (count in *n, caller frees with
 * deallocate_String_vector via free_children), or -1. */
static int children(zkc_session *s, const char *path, struct String_vector *out)
{
    zkc__call *c = zkc__call_new();
    zhandle_t *zh;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (!c)
        return -1;
    zh = zkc__zh_lock(s, NULL);
    if (zh) {
        zkc__call_ref(c);
        if (zoo_aget_children(zh, path, 0, zkc__call_strings_done, c) != ZOK)
            zkc__call_unref(c);
        zkc__zh_unlock(s);
        if (zkc__call_wait(c, 10000) == 0 && c->rc == ZOK) {
            *out = c->children;
            memset(&c->children, 0, sizeof(c->children));
            rc = 0;
        }
    }
    zkc__call_unref(c);
    return rc;
}

/* The ephemeral owner of `path`, 0 when it is not ephemeral, -1 on error. */
static int64_t owner_of(zkc_session *s, const char *path)
{
    zkc__call *c = zkc__call_new();
    zhandle_t *zh;
    int64_t owner = -1;

    if (!c)
        return -1;
    zh = zkc__zh_lock(s, NULL);
    if (zh) {
        zkc__call_ref(c);
        if (zoo_aexists(zh, path, 0, zkc__call_stat_done, c) != ZOK)
            zkc__call_unref(c);
        zkc__zh_unlock(s);
        if (zkc__call_wait(c, 10000) == 0 && c->rc == ZOK)
            owner = c->stat.ephemeralOwner;
    }
    zkc__call_unref(c);
    return owner;
}

/* Exactly one child under `parent`, ephemeral and owned by `s`'s session:
 * the create the reorder cut off was found again, not made twice. */
static void assert_one_node_of(zkc_session *s, const char *parent)
{
    struct String_vector v;
    char full[512];

    CU_ASSERT_EQUAL_FATAL(children(s, parent, &v), 0);
    CU_ASSERT_EQUAL(v.count, 1);
    if (v.count != 1)
        printf("\n    %s: %d children ", parent, v.count);
    if (v.count >= 1) {
        snprintf(full, sizeof(full), "%s/%s", parent, v.data[0]);
        CU_ASSERT_EQUAL(owner_of(s, full), zkc_session_id(s));
    }
    deallocate_String_vector(&v);
}

/* The reorder happened, the client dropped the connection for it and came
 * back on the same session. */
static void assert_dropped_and_back(tu_proxy *px, tu_rec *rec, int accepted_before)
{
    int swaps = 0, behind = 0;

    CU_ASSERT_EQUAL(tu_proxy_reorders(px, &swaps, &behind), 1);
    CU_ASSERT(tu_rec_wait(rec, 0, ZKC_CONN_SUSPENDED, 10000) >= 0);
    CU_ASSERT(tu_rec_wait(rec, 0, ZKC_CONN_RECONNECTED, 10000) >= 0);
    CU_ASSERT(tu_proxy_accepted(px) > accepted_before);
    CU_ASSERT(tu_rec_wait(rec, 0, ZKC_CONN_LOST, 0) < 0);
    printf("(%s, %d more pending) ", swaps ? "swapped" : "xid changed", behind);
}

/* -------------------------------------------------------------- tests */

/* A lock acquire with its create2 and getChildren2 pipelined: first the
 * create's reply, then the listing's, comes out of order. The acquire is
 * granted, and the line holds exactly one node, ours. */
static void test_lock_reorder(void)
{
    static const int ops[2] = {OP_CREATE2, OP_GETCHILDREN2};
    int k;

    for (k = 0; k < 2; k++) {
        zkc_session *s = NULL;
        tu_proxy *px = NULL;
        zkc_lock_opts o;
        zkc_lock *l = NULL;
        zkc_lock_info *info = NULL;
        tu_rec rec;
        char path[64];
        int rc, before;

        snprintf(path, sizeof(path), "/connloss/lock%d", k);
        tu_rec_init(&rec);
        CU_ASSERT_EQUAL_FATAL(tu_proxy_start(&px, zkh_connect_string(tu_zk)), 0);
        TU_CHECK(tu_session(&s, tu_proxy_address(px), 4000, &rec) == 0, out);
        zkc_lock_opts_init(&o);
        o.owner_id = "mine";
        TU_CHECK(zkc_lock_new(&l, s, path, &o) == 0, out);
        before = tu_proxy_accepted(px);
        tu_proxy_reorder_reply(px, ops[k]);
        rc = zkc_lock_acquire(l, 20000, NULL);
        if (rc)
            printf("\n    acquire with op %d's reply out of order: %s ", ops[k], zkc_err_name(rc));
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(tu_proxy_wait_reorder(px, 0), 0);
        assert_dropped_and_back(px, &rec, before);
        CU_ASSERT_EQUAL(zkc_lock_is_held(l), rc == 0);
        TU_CHECK(zkc_lock_inspect(s, path, 10000, &info) == 0, out);
        CU_ASSERT_EQUAL(info->count, 1);
        if (info->count == 1) {
            CU_ASSERT_EQUAL(info->entries[0].session_id, zkc_session_id(s));
            CU_ASSERT_STRING_EQUAL(info->entries[0].owner_id, "mine");
        }
        if (rc == 0)
            CU_ASSERT_EQUAL(zkc_lock_release(l), 0);
    out:
        zkc_lock_info_free(info);
        zkc_lock_free(l);
        zkc_session_close(s);
        tu_proxy_stop(px);
        tu_rec_destroy(&rec);
    }
}

/* An election participant's protected create meets a reply out of order:
 * it still becomes leader, with one node in the line. */
static void test_election_reorder(void)
{
    zkc_session *s = NULL;
    tu_proxy *px = NULL;
    zkc_election *e = NULL;
    zkc_election_opts o;
    tu_rec rec;
    char node[512];
    int rc, before;

    tu_rec_init(&rec);
    CU_ASSERT_EQUAL_FATAL(tu_proxy_start(&px, zkh_connect_string(tu_zk)), 0);
    TU_CHECK(tu_session(&s, tu_proxy_address(px), 4000, &rec) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, "/connloss/election", 5000) == 0, out);
    zkc_election_opts_init(&o);
    o.id = "p1";
    before = tu_proxy_accepted(px);
    tu_proxy_reorder_reply(px, OP_CREATE2);
    TU_CHECK(zkc_election_new(&e, s, "/connloss/election", &o) == 0, out);
    rc = zkc_election_await_leadership(e, 20000, NULL);
    if (rc)
        printf("\n    leadership with the create's reply out of order: %s ", zkc_err_name(rc));
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(tu_proxy_wait_reorder(px, 0), 0);
    assert_dropped_and_back(px, &rec, before);
    CU_ASSERT_EQUAL(zkc_election_is_leader(e, NULL), 1);
    CU_ASSERT_EQUAL(zkc_election_node_path(e, node, sizeof(node)), 0);
    assert_one_node_of(s, "/connloss/election");
out:
    zkc_election_close(e);
    zkc_session_close(s);
    tu_proxy_stop(px);
    tu_rec_destroy(&rec);
}

/* A group join whose create reply comes out of order: the member appears
 * once, in the folder and in the view. */
static void test_group_reorder(void)
{
    zkc_session *s = NULL;
    tu_proxy *px = NULL;
    zkc_group *g = NULL;
    zkc_group_view *v = NULL;
    zkc_member_info mi;
    tu_rec rec;
    int rc, before;

    tu_rec_init(&rec);
    CU_ASSERT_EQUAL_FATAL(tu_proxy_start(&px, zkh_connect_string(tu_zk)), 0);
    TU_CHECK(tu_session(&s, tu_proxy_address(px), 4000, &rec) == 0, out);
    TU_CHECK(zkc_group_new(&g, s, "/connloss/group", NULL) == 0, out);
    memset(&mi, 0, sizeof(mi));
    mi.id = "m1";
    mi.host = "127.0.0.1";
    mi.port = 4242;
    before = tu_proxy_accepted(px);
    tu_proxy_reorder_reply(px, OP_CREATE2);
    TU_CHECK(zkc_group_join(g, &mi) == 0, out);
    rc = zkc_group_wait_joined(g, 20000);
    if (rc)
        printf("\n    join with the create's reply out of order: %s ", zkc_err_name(rc));
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(tu_proxy_wait_reorder(px, 0), 0);
    assert_dropped_and_back(px, &rec, before);
    assert_one_node_of(s, "/connloss/group");
    TU_CHECK(zkc_group_view_get(g, &v) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_view_count(v), 1);
    CU_ASSERT_EQUAL(zkc_group_view_duplicates(v), 0);
    CU_ASSERT_PTR_NOT_NULL(zkc_group_view_find(v, "m1"));
    if (zkc_group_view_find(v, "m1"))
        CU_ASSERT_EQUAL(zkc_member_owner(zkc_group_view_find(v, "m1")), zkc_session_id(s));
out:
    zkc_group_view_free(v);
    zkc_group_free(g);
    zkc_session_close(s);
    tu_proxy_stop(px);
    tu_rec_destroy(&rec);
}

/* ---- the CI churn, with replies out of order at random moments */

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

static int churn_cycles(struct churn *c)
{
    int n;

    pthread_mutex_lock(&c->mu);
    n = c->cycles;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Two lockers contend on one lock, one through the proxy. Each round picks
 * (from a printed seed; ZKC_TEST_SEED replays one) which request's reply
 * comes out of order: the next of any kind, a create, a listing, the
 * getData that sets the watch on the one ahead, or a release's delete,
 * after a random number of the faulted locker's cycles; every fifth round
 * its session is also expired, as in the CI test. Nothing but ETIMEDOUT
 * may come out of acquire, and both keep cycling. */
static void test_churn_reorder(void)
{
    enum { ROUNDS = 20 };
    static const int ops[5] = {0, OP_CREATE2, OP_GETCHILDREN2, OP_GETDATA, OP_DELETE};
    zkc_session *s = NULL, *t = NULL;
    tu_proxy *px = NULL;
    struct churn a, b;
    pthread_t tha, thb;
    zkc_lock_opts o;
    const char *env = getenv("ZKC_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    int i, started_a = 0, started_b = 0, faults = 0, expiries = 0;

    printf("\n    seed %u (ZKC_TEST_SEED=%u replays it) ", seed, seed);
    srand(seed);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&a.mu, NULL);
    zkc__cond_init(&a.cond);
    pthread_mutex_init(&b.mu, NULL);
    zkc__cond_init(&b.cond);
    CU_ASSERT_EQUAL_FATAL(tu_proxy_start(&px, zkh_connect_string(tu_zk)), 0);
    TU_CHECK(tu_session(&s, tu_proxy_address(px), 2000, NULL) == 0, out);
    TU_CHECK(tu_session(&t, NULL, 4000, NULL) == 0, out);
    zkc_lock_opts_init(&o);
    o.owner_id = "faulted";
    TU_CHECK(zkc_lock_new(&a.l, s, "/connloss/churn", &o) == 0, out);
    o.owner_id = "direct";
    TU_CHECK(zkc_lock_new(&b.l, t, "/connloss/churn", &o) == 0, out);
    TU_CHECK(pthread_create(&tha, NULL, churn_main, &a) == 0, out);
    started_a = 1;
    TU_CHECK(pthread_create(&thb, NULL, churn_main, &b) == 0, out);
    started_b = 1;
    for (i = 0; i < ROUNDS; i++) {
        int op = ops[rand() % 5], skip = rand() % 3;
        TU_CHECK(churn_wait(&a, churn_cycles(&a) + skip, 20000) == 0, out);
        tu_proxy_reorder_reply(px, op);
        /* a delete comes once per cycle, a getData only under contention:
         * the fault waits for the request it was armed for */
        TU_CHECK(tu_proxy_wait_reorder(px, 20000) == 0, out);
        faults++;
        if (i % 5 == 4) {
            TU_CHECK(tu_expire(s) == 0, out);
            TU_CHECK(zkc_session_wait_connected(s, 10000) == 0, out);
            expiries++;
        }
    }
    /* Both still cycling. */
    CU_ASSERT_EQUAL(churn_wait(&a, churn_cycles(&a) + 3, 20000), 0);
    CU_ASSERT_EQUAL(churn_wait(&b, churn_cycles(&b) + 3, 20000), 0);
out:
    pthread_mutex_lock(&a.mu);
    a.stop = 1;
    pthread_mutex_unlock(&a.mu);
    pthread_mutex_lock(&b.mu);
    b.stop = 1;
    pthread_mutex_unlock(&b.mu);
    if (started_a)
        pthread_join(tha, NULL);
    if (started_b)
        pthread_join(thb, NULL);
    printf("\n    %d replies out of order, %d expiries; cycles %d + %d; first errors: %s, %s ",
           faults, expiries, a.cycles, b.cycles, a.bad_rc ? zkc_err_name(a.bad_rc) : "none",
           b.bad_rc ? zkc_err_name(b.bad_rc) : "none");
    CU_ASSERT_EQUAL(a.bad_rc, 0);
    CU_ASSERT_EQUAL(b.bad_rc, 0);
    zkc_lock_free(a.l);
    zkc_lock_free(b.l);
    zkc_session_close(s);
    zkc_session_close(t);
    tu_proxy_stop(px);
    pthread_cond_destroy(&a.cond);
    pthread_mutex_destroy(&a.mu);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.mu);
}

/* ---- the server's UNKNOWNSESSION (-12) in reply to a create
 *
 * CI's "session expiry during acquires: no error" once got ZKC_EZOOKEEPER
 * from an unmapped -12: KeeperException.Code.UNKNOWNSESSION, the server's
 * answer to a request of a session it has already removed
 * (SessionTrackerImpl.checkSession), which the C client passes on as the
 * request's result, having no name for it. The sequence below makes it on
 * purpose: the proxy holds the reply to a recipe's create; the session is
 * closed on the server from a second handle (the server drops the proxied
 * connection and removes the session with the node the create made); the
 * held reply then reaches the client with err -12, as if the create had
 * come after the removal, and the server's close follows. The recipe must
 * take it as the session loss it is and carry on with the new session. */

#define ZK_UNKNOWNSESSION (-12)

struct held {
    tu_proxy *px;
    zkc_session *s; /* through the proxy */
    zkc_session *t; /* direct: looks at the folder */
    tu_rec rec;
    int64_t old_sid;
};

/* Session timeout of the faulted session: its client drops a silent
 * connection after 2/3 of it, so the hold (a second handle's connect and
 * close, a few round trips) has seconds to spare. */
#define HELD_TIMEOUT_MS 12000

/* The folder is made first, so that the held create is the recipe's own. */
static int held_start(struct held *h, const char *parent)
{
    memset(h, 0, sizeof(*h));
    tu_rec_init(&h->rec);
    if (tu_proxy_start(&h->px, zkh_connect_string(tu_zk)) != 0 ||
        tu_session(&h->s, tu_proxy_address(h->px), HELD_TIMEOUT_MS, &h->rec) != 0 ||
        tu_session(&h->t, NULL, 4000, NULL) != 0 || zkc__mkdirs_sync(h->t, parent, 5000) != 0)
        return -1;
    h->old_sid = zkc_session_id(h->s);
    tu_proxy_hold_reply(h->px, OP_CREATE2);
    return 0;
}

static void held_end(struct held *h)
{
    zkc_session_close(h->s);
    zkc_session_close(h->t);
    tu_proxy_stop(h->px);
    tu_rec_destroy(&h->rec);
}

/* Wait until `parent` has `n` children (as `t` sees them), at most
 * timeout_ms: each look is a round trip to the server. 0 or -1. */
static int wait_children(zkc_session *t, const char *parent, int n, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    struct String_vector v;
    int count;

    do {
        if (children(t, parent, &v) != 0)
            return -1;
        count = v.count;
        deallocate_String_vector(&v);
        if (count == n)
            return 0;
    } while (tu_now_ms() < deadline);
    printf("\n    %s: %d children, not %d ", parent, count, n);
    return -1;
}

/* The create's reply is held: its node is in `parent`, of the old session.
 * Close the session from elsewhere; the server drops the connection and the
 * node; then the held reply goes to the client with err -12. 0 or -1. */
static int held_expire(struct held *h, const char *parent)
{
    struct String_vector v;
    char full[512];
    int ok;

    TU_CHECK(tu_proxy_wait_held(h->px, 10000) == 0, fail);
    TU_CHECK(children(h->t, parent, &v) == 0, fail);
    ok = v.count == 1;
    if (ok) {
        snprintf(full, sizeof(full), "%s/%s", parent, v.data[0]);
        ok = owner_of(h->t, full) == h->old_sid;
    }
    deallocate_String_vector(&v);
    TU_CHECK(ok, fail); /* the create was applied, for the old session */
    TU_CHECK(tu_close_session(h->s) == 1, fail);
    TU_CHECK(tu_proxy_wait_server_closed(h->px, 10000) == 0, fail);
    TU_CHECK(wait_children(h->t, parent, 0, 10000) == 0, fail); /* session removed */
    TU_CHECK(tu_proxy_release_held(h->px, ZK_UNKNOWNSESSION, 10000) == 0, fail);
    return 0;
fail:
    return -1;
}

/* After the recipe carried on: the old session was lost, the new one holds
 * exactly one node in `parent`. */
static void held_check(struct held *h, const char *parent)
{
    CU_ASSERT(tu_rec_wait(&h->rec, 0, ZKC_CONN_LOST, 10000) >= 0);
    TU_CHECK(zkc_session_wait_connected(h->s, 15000) == 0, out);
    CU_ASSERT(zkc_session_id(h->s) != h->old_sid);
    assert_one_node_of(h->s, parent);
out:
    return;
}

struct acquirer {
    zkc_lock *l;
    int rc;
};

static void *acquire_main(void *arg)
{
    struct acquirer *a = arg;

    a->rc = zkc_lock_acquire(a->l, 30000, NULL);
    return NULL;
}

/* A lock acquire's create gets UNKNOWNSESSION: it is granted with the new
 * session, never ZKC_EZOOKEEPER. */
static void test_lock_unknown_session(void)
{
    static const char *path = "/unknownsession/lock";
    struct held h;
    zkc_lock_opts o;
    struct acquirer a = {NULL, -1};
    pthread_t th;
    int started = 0;

    TU_CHECK(held_start(&h, path) == 0, out);
    zkc_lock_opts_init(&o);
    o.owner_id = "mine";
    TU_CHECK(zkc_lock_new(&a.l, h.s, path, &o) == 0, out);
    TU_CHECK(pthread_create(&th, NULL, acquire_main, &a) == 0, out);
    started = 1;
    TU_CHECK(held_expire(&h, path) == 0, out);
    pthread_join(th, NULL);
    started = 0;
    if (a.rc)
        printf("\n    acquire after UNKNOWNSESSION: %s ", zkc_err_name(a.rc));
    CU_ASSERT_EQUAL(a.rc, 0);
    held_check(&h, path);
    CU_ASSERT_EQUAL(zkc_lock_is_held(a.l), a.rc == 0);
out:
    if (started) {
        tu_proxy_release_held(h.px, ZK_UNKNOWNSESSION, 10000);
        pthread_join(th, NULL);
    }
    if (a.rc == 0)
        zkc_lock_release(a.l);
    zkc_lock_free(a.l);
    held_end(&h);
}

/* A group join's create gets UNKNOWNSESSION: the member joins once, with
 * the new session. */
static void test_group_unknown_session(void)
{
    static const char *path = "/unknownsession/group";
    struct held h;
    zkc_group *g = NULL;
    zkc_group_view *v = NULL;
    zkc_member_info mi;
    int rc;

    TU_CHECK(held_start(&h, path) == 0, out);
    TU_CHECK(zkc_group_new(&g, h.s, path, NULL) == 0, out);
    memset(&mi, 0, sizeof(mi));
    mi.id = "m1";
    mi.host = "127.0.0.1";
    mi.port = 4242;
    TU_CHECK(zkc_group_join(g, &mi) == 0, out);
    TU_CHECK(held_expire(&h, path) == 0, out);
    rc = zkc_group_wait_joined(g, 30000);
    if (rc)
        printf("\n    join after UNKNOWNSESSION: %s ", zkc_err_name(rc));
    CU_ASSERT_EQUAL(rc, 0);
    held_check(&h, path);
    TU_CHECK(zkc_group_view_get(g, &v) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_view_count(v), 1);
    CU_ASSERT_PTR_NOT_NULL(zkc_group_view_find(v, "m1"));
    if (zkc_group_view_find(v, "m1"))
        CU_ASSERT_EQUAL(zkc_member_owner(zkc_group_view_find(v, "m1")), zkc_session_id(h.s));
out:
    zkc_group_view_free(v);
    zkc_group_free(g);
    held_end(&h);
}

/* An election participant's create gets UNKNOWNSESSION: it becomes leader
 * with the new session, one node in the line. */
static void test_election_unknown_session(void)
{
    static const char *path = "/unknownsession/election";
    struct held h;
    zkc_election *e = NULL;
    zkc_election_opts o;
    int rc;

    TU_CHECK(held_start(&h, path) == 0, out);
    zkc_election_opts_init(&o);
    o.id = "p1";
    TU_CHECK(zkc_election_new(&e, h.s, path, &o) == 0, out);
    TU_CHECK(held_expire(&h, path) == 0, out);
    rc = zkc_election_await_leadership(e, 30000, NULL);
    if (rc)
        printf("\n    leadership after UNKNOWNSESSION: %s ", zkc_err_name(rc));
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(zkc_election_is_leader(e, NULL), 1);
    held_check(&h, path);
out:
    zkc_election_close(e);
    held_end(&h);
}

int register_connloss_suite(void); /* connloss_main.c */

int register_connloss_suite(void)
{
    CU_pSuite s = CU_add_suite("reply out of order", NULL, NULL);

    if (!s || !CU_add_test(s, "lock: create2/getChildren2 reply out of order", test_lock_reorder) ||
        !CU_add_test(s, "election: create reply out of order", test_election_reorder) ||
        !CU_add_test(s, "group join: create reply out of order", test_group_reorder) ||
        !CU_add_test(s, "lock churn, out of order at random: no error", test_churn_reorder))
        return -1;
    s = CU_add_suite("UNKNOWNSESSION (-12) in reply to a create", NULL, NULL);
    if (!s ||
        !CU_add_test(s, "lock: acquire granted with the new session", test_lock_unknown_session) ||
        !CU_add_test(s, "group join: joined with the new session", test_group_unknown_session) ||
        !CU_add_test(s, "election: leader with the new session", test_election_unknown_session))
        return -1;
    return 0;
}
