/* No orphans: a protected create whose reply is lost. A loopback proxy
 * forwards the create to the server and cuts the connection before the
 * reply comes back. After the reconnect exactly one node with our guid
 * exists and it is owned by our session (adopted); if the session is lost
 * instead, none is left behind. Exercised on zkc__pcreate() directly and
 * through an election. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proxy.h"
#include "common/testutil.h"
#include "election_suites.h"
#include "internal.h"
#include "naming.h"
#include "pcreate.h"
#include "zkcoord/election.h"

/* Bigger than a ping (12 bytes), smaller than any create. */
#define REQUEST_MIN 20

struct done {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int called;
    int rc;
    char path[256];
    int64_t owner;
};

static void pc_done(void *arg, int rc, const char *path, const struct Stat *st)
{
    struct done *d = arg;

    pthread_mutex_lock(&d->mu);
    d->called = 1;
    d->rc = rc;
    if (rc == 0) {
        snprintf(d->path, sizeof(d->path), "%s", path);
        d->owner = st->ephemeralOwner;
    }
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->mu);
}

static void done_init(struct done *d)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->mu, NULL);
    zkc__cond_init(&d->cond);
}

static int done_wait(struct done *d, int timeout_ms)
{
    struct timespec ts;
    int called;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&d->mu);
    while (!d->called && pthread_cond_timedwait(&d->cond, &d->mu, &ts) != ETIMEDOUT)
        ;
    called = d->called;
    pthread_mutex_unlock(&d->mu);
    return called ? 0 : -1;
}

static void done_destroy(struct done *d)
{
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->mu);
}

/* Children of parent containing `token`, as seen by the direct session
 * `s`; the first one's name and owner are returned. -1 on error. */
static int with_token(zkc_session *s, const char *parent, const char *token, char *name, size_t len,
                      int64_t *owner)
{
    struct String_vector v;
    zhandle_t *zh = zkc__zh_lock(s, NULL);
    int i, n = 0;

    if (!zh)
        return -1;
    zkc__zh_unlock(s);
    if (zoo_get_children(zh, parent, 0, &v) != ZOK)
        return -1;
    for (i = 0; i < v.count; i++) {
        if (!strstr(v.data[i], token))
            continue;
        if (n++ == 0) {
            char *full = zkc__path_join(parent, v.data[i]);
            struct Stat st;
            snprintf(name, len, "%s", v.data[i]);
            if (full && zoo_exists(zh, full, 0, &st) == ZOK)
                *owner = st.ephemeralOwner;
            free(full);
        }
    }
    deallocate_String_vector(&v);
    return n;
}

/* The reply is lost, the session survives: the node is adopted. */
static void test_pcreate_reply_lost(void)
{
    tu_proxy *px = NULL;
    zkc_session *s = NULL, *direct = NULL;
    struct done d;
    char guid[ZKC_GUID_LEN + 1], token[ZKC_PROTECTED_PREFIX_LEN + 1], name[128];
    int64_t owner = 0;
    tu_rec rec;

    done_init(&d);
    tu_rec_init(&rec);
    TU_CHECK(tu_proxy_start(&px, zkh_connect_string(tu_zk)) == 0, out);
    TU_CHECK(tu_session(&s, tu_proxy_address(px), 10000, &rec) == 0, out);
    TU_CHECK(tu_session(&direct, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, "/orphan/a", 5000) == 0, out);
    TU_CHECK(zkc__guid(guid) == 0, out);
    zkc__protected_prefix(token, guid);

    tu_proxy_cut_after_request(px, REQUEST_MIN);
    zkc__pcreate(s, "/orphan/a", guid, "latch-", "me", 2, ZOO_EPHEMERAL_SEQUENTIAL, pc_done, &d);
    CU_ASSERT_EQUAL(tu_proxy_wait_cut(px, 10000), 0);
    TU_CHECK(done_wait(&d, 20000) == 0, out);
    CU_ASSERT_EQUAL(d.rc, 0);
    /* The connection was cut: the same session came back. */
    /* Announced on the dispatcher lane, maybe after the create returned. */
    CU_ASSERT(tu_rec_wait(&rec, 0, ZKC_CONN_RECONNECTED, 5000) >= 0);
    CU_ASSERT_EQUAL(with_token(direct, "/orphan/a", token, name, sizeof(name), &owner), 1);
    CU_ASSERT_EQUAL(owner, zkc_session_id(s));
    CU_ASSERT_EQUAL(d.owner, zkc_session_id(s));
    CU_ASSERT_STRING_EQUAL(zkc__path_base(d.path), name);
out:
    zkc_session_close(s);
    zkc_session_close(direct);
    tu_proxy_stop(px);
    tu_rec_destroy(&rec);
    done_destroy(&d);
}

/* The reply is lost and the session expires before the client gets back:
 * the create reports ZKC_ESESSIONLOST and nothing with our guid is left. */
static void test_pcreate_reply_lost_session_lost(void)
{
    tu_proxy *px = NULL;
    zkc_session *s = NULL, *direct = NULL;
    struct done d;
    char guid[ZKC_GUID_LEN + 1], token[ZKC_PROTECTED_PREFIX_LEN + 1], name[128];
    int64_t owner = 0;

    done_init(&d);
    TU_CHECK(tu_proxy_start(&px, zkh_connect_string(tu_zk)) == 0, out);
    TU_CHECK(tu_session(&s, tu_proxy_address(px), 1000, NULL) == 0, out);
    TU_CHECK(tu_session(&direct, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, "/orphan/b", 5000) == 0, out);
    TU_CHECK(zkc__guid(guid) == 0, out);
    zkc__protected_prefix(token, guid);

    tu_proxy_cut_after_request(px, REQUEST_MIN);
    zkc__pcreate(s, "/orphan/b", guid, "latch-", "me", 2, ZOO_EPHEMERAL_SEQUENTIAL, pc_done, &d);
    TU_CHECK(tu_proxy_wait_cut(px, 10000) == 0, out);
    tu_proxy_block(px, 1);
    /* Usually the server has the node by now, under the doomed session
     * (the request may still sit in its socket buffer: not asserted). */
    printf("\n    node made before the expiry: %s ",
           with_token(direct, "/orphan/b", token, name, sizeof(name), &owner) == 1 ? "yes"
                                                                                   : "not yet");
    CU_ASSERT(tu_expire(s) == 0);
    tu_proxy_block(px, 0);
    TU_CHECK(done_wait(&d, 20000) == 0, out);
    CU_ASSERT_EQUAL(d.rc, ZKC_ESESSIONLOST);
    CU_ASSERT_EQUAL(zkc_session_wait_connected(s, 15000), 0);
    CU_ASSERT_EQUAL(with_token(direct, "/orphan/b", token, name, sizeof(name), &owner), 0);
out:
    zkc_session_close(s);
    zkc_session_close(direct);
    tu_proxy_stop(px);
    done_destroy(&d);
}

struct el_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int elected;
};

static void el_fn(zkc_election *e, const zkc_election_event *ev, void *ud)
{
    struct el_wait *w = ud;

    (void)e;
    pthread_mutex_lock(&w->mu);
    if (ev->type == ZKC_ELECTION_ELECTED)
        w->elected++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* Through the election: its create's reply is lost; it still ends up with
 * exactly one node, owned by its session, and leads with it. */
static void test_election_reply_lost(void)
{
    tu_proxy *px = NULL;
    zkc_session *s = NULL, *direct = NULL;
    zkc_election *e = NULL;
    zkc_election_opts o;
    struct el_wait w;
    zkc_election_leader_info info;
    char node[256], name[128];
    int64_t tok = 0, owner = 0;

    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu, NULL);
    zkc__cond_init(&w.cond);
    TU_CHECK(tu_proxy_start(&px, zkh_connect_string(tu_zk)) == 0, out);
    TU_CHECK(tu_session(&s, tu_proxy_address(px), 10000, NULL) == 0, out);
    TU_CHECK(tu_session(&direct, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, "/orphan/el", 5000) == 0, out);
    zkc_election_opts_init(&o);
    o.id = "orphan-test";
    o.fn = el_fn;
    o.user_data = &w;
    tu_proxy_cut_after_request(px, REQUEST_MIN);
    TU_CHECK(zkc_election_new(&e, s, "/orphan/el", &o) == 0, out);
    CU_ASSERT_EQUAL(tu_proxy_wait_cut(px, 10000), 0);
    TU_CHECK(zkc_election_await_leadership(e, 20000, &tok) == 0, out);
    TU_CHECK(zkc_election_node_path(e, node, sizeof(node)) == 0, out);
    /* One node with that guid: ours, owned by our session. */
    CU_ASSERT_EQUAL(with_token(direct, "/orphan/el", "latch-", name, sizeof(name), &owner), 1);
    CU_ASSERT_STRING_EQUAL(name, zkc__path_base(node));
    CU_ASSERT_EQUAL(owner, zkc_session_id(s));
    CU_ASSERT_EQUAL(zkc_election_observe_leader(direct, "/orphan/el", &info, 5000), 0);
    CU_ASSERT_STRING_EQUAL(info.id, "orphan-test");
    CU_ASSERT_EQUAL(info.token, tok);
    zkc_election_close(e);
    e = NULL;
    /* Asked on the same session, so answered after the delete. */
    CU_ASSERT_EQUAL(zkc_election_observe_leader(s, "/orphan/el", &info, 5000), ZKC_ENONODE);
out:
    zkc_election_close(e);
    zkc_session_close(s);
    zkc_session_close(direct);
    tu_proxy_stop(px);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.mu);
}

int register_orphan_suite(void)
{
    CU_pSuite s = CU_add_suite("orphan", NULL, NULL);

    if (!s || !CU_add_test(s, "pcreate: reply lost, node adopted", test_pcreate_reply_lost) ||
        !CU_add_test(s, "pcreate: reply lost, session lost, nothing left",
                     test_pcreate_reply_lost_session_lost) ||
        !CU_add_test(s, "election: reply lost, one node, leads", test_election_reply_lost))
        return -1;
    return 0;
}
