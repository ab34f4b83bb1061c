/* Group membership against a real server: diffs seen by observers, a
 * member vanishing between getChildren and get, hostile payloads, duplicate
 * ids, rejoin after expiry, re-creation of a deleted node, survival of a
 * server restart, churn, the read cost of one join, the one-shot read. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proxy.h"
#include "common/testutil.h"
#include "cache.h"
#include "internal.h"
#include "zkcoord/group.h"

/* ------------------------------------------------------------ recorder */

#define GREC_MAX 1024

struct gev {
    zkc_group_event_type type;
    char node[128];
    char id[64];
    int port;
    int prev_port;
    int rc;
};

typedef struct grec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct gev ev[GREC_MAX];
    int n;
    unsigned seq;         /* bumped by every event */
    zkc_group_view *last; /* view of the last CHANGED delivered */
} grec;

static void grec_init(grec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    zkc__cond_init(&r->cond);
}

static void grec_destroy(grec *r)
{
    zkc_group_view_free(r->last);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
}

static void grec_fn(zkc_group *g, const zkc_group_event *ev, void *ud)
{
    grec *r = ud;

    (void)g;
    pthread_mutex_lock(&r->mu);
    if (r->n < GREC_MAX) {
        struct gev *e = &r->ev[r->n++];
        memset(e, 0, sizeof(*e));
        e->type = ev->type;
        e->rc = ev->rc;
        if (ev->member) {
            snprintf(e->node, sizeof(e->node), "%s", zkc_member_node(ev->member));
            snprintf(e->id, sizeof(e->id), "%s",
                     zkc_member_id(ev->member) ? zkc_member_id(ev->member) : "");
            e->port = zkc_member_port(ev->member);
        }
        if (ev->previous)
            e->prev_port = zkc_member_port(ev->previous);
    }
    if (ev->type == ZKC_GROUP_CHANGED) {
        zkc_group_view_free(r->last);
        r->last = zkc_group_view_ref(ev->view);
    }
    r->seq++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static int grec_count(grec *r, zkc_group_event_type type, const char *id)
{
    int i, n = 0;

    pthread_mutex_lock(&r->mu);
    for (i = 0; i < r->n; i++)
        if (r->ev[i].type == type && (!id || strcmp(r->ev[i].id, id) == 0))
            n++;
    pthread_mutex_unlock(&r->mu);
    return n;
}

typedef int (*view_pred)(const zkc_group_view *v, void *arg);

/* Wait until pred holds for the last view delivered to `r` (so every
 * event before it was recorded too), re-checking at every event. `g` is
 * the group `r` records (kept for clarity at call sites). */
static int wait_view(grec *r, zkc_group *g, view_pred pred, void *arg, int timeout_ms)
{
    struct timespec ts;
    int ok;

    (void)g;
    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (!(ok = pred(r->last, arg)))
        if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT) {
            ok = pred(r->last, arg);
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static int has_id(const zkc_group_view *v, void *arg)
{
    return zkc_group_view_find(v, arg) != NULL;
}

static int count_is(const zkc_group_view *v, void *arg)
{
    return zkc_group_view_count(v) == *(int *)arg;
}

struct id_port {
    const char *id;
    int port;
};

static int id_has_port(const zkc_group_view *v, void *arg)
{
    struct id_port *ip = arg;
    const zkc_member *m = zkc_group_view_find(v, ip->id);

    return m && zkc_member_port(m) == ip->port;
}

/* ------------------------------------------------------------- helpers */

static zkc_member_info info_of(const char *id, int port)
{
    zkc_member_info i;

    memset(&i, 0, sizeof(i));
    i.id = id;
    i.host = "127.0.0.1";
    i.port = port;
    return i;
}

static int new_group(zkc_group **g, zkc_session *s, const char *path, grec *r)
{
    zkc_group_opts o;

    zkc_group_opts_init(&o);
    o.on_event = r ? grec_fn : NULL;
    o.user_data = r;
    return zkc_group_new(g, s, path, &o);
}

/* The raw handle of a session, for the sync API from the test thread. */
static zhandle_t *raw(zkc_session *s)
{
    zhandle_t *zh = zkc__zh_lock(s, NULL);

    if (zh)
        zkc__zh_unlock(s);
    return zh;
}

/* The node name of `id` in g's view, copied into buf ("" when absent). */
static void node_of(zkc_group *g, const char *id, char *buf, size_t len)
{
    zkc_group_view *v = NULL;
    const zkc_member *m;

    buf[0] = '\0';
    if (zkc_group_view_get(g, &v) != 0)
        return;
    m = zkc_group_view_find(v, id);
    if (m)
        snprintf(buf, len, "%s", zkc_member_node(m));
    zkc_group_view_free(v);
}

/* ---------------------------------------------------------------- tests */

static void test_join_update_leave(void)
{
    const char *path = "/zkcoord/basic/members";
    zkc_session *so = NULL, *sa = NULL;
    zkc_group *og = NULL, *ga = NULL;
    zkc_group_view *v = NULL;
    zkc_endpoint ep = {"admin", "127.0.0.1", 9090};
    zkc_member_info info = info_of("alpha", 8080);
    struct id_port want = {"alpha", 8081};
    const zkc_member *m;
    grec ro, ra;
    char node[128], full[256], buf[1024];
    int blen = sizeof(buf);
    json_t *j = NULL;
    int zero = 0;

    grec_init(&ro);
    grec_init(&ra);
    CU_ASSERT_EQUAL_FATAL(tu_session(&so, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sa, NULL, 4000, NULL) == 0, out);
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    TU_CHECK(new_group(&ga, sa, path, &ra) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_leave(ga, 0), ZKC_ENOTHELD);
    CU_ASSERT_EQUAL(zkc_group_update(ga, &info, 0), ZKC_ENOTHELD);
    CU_ASSERT_EQUAL(zkc_group_wait_joined(ga, 0), ZKC_ENOTHELD);
    info.endpoints = &ep;
    info.n_endpoints = 1;
    info.metadata = "{\"zone\":\"a\"}";
    TU_CHECK(zkc_group_join(ga, &info) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_join(ga, &info), ZKC_EBUSY);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    TU_CHECK(wait_view(&ro, og, has_id, "alpha", 10000), out);

    /* The observer's view, field by field. */
    TU_CHECK(zkc_group_view_get(og, &v) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_view_count(v), 1);
    m = zkc_group_view_at(v, 0);
    TU_CHECK(m != NULL, out);
    CU_ASSERT_STRING_EQUAL(zkc_member_id(m), "alpha");
    CU_ASSERT_STRING_EQUAL(zkc_member_host(m), "127.0.0.1");
    CU_ASSERT_EQUAL(zkc_member_port(m), 8080);
    CU_ASSERT_STRING_EQUAL(zkc_member_status(m), "ALIVE");
    CU_ASSERT_STRING_EQUAL(zkc_member_metadata(m), "{\"zone\":\"a\"}");
    CU_ASSERT_EQUAL(zkc_member_endpoint_count(m), 1);
    CU_ASSERT_EQUAL(zkc_member_flags(m), 0); /* not SELF for the observer */
    CU_ASSERT_EQUAL(zkc_member_owner(m), zkc_session_id(sa));
    CU_ASSERT(zkc_member_czxid(m) > 0);
    CU_ASSERT(zkc_member_ctime_ms(m) > 1600000000000LL);
    CU_ASSERT_EQUAL(strncmp(zkc_member_node(m), "member_", 7), 0);
    snprintf(node, sizeof(node), "%s", zkc_member_node(m));
    zkc_group_view_free(v);
    v = NULL;
    CU_ASSERT_EQUAL(grec_count(&ro, ZKC_GROUP_JOINED, "alpha"), 1);
    /* The member sees itself, flagged. */
    TU_CHECK(zkc_group_view_get(ga, &v) == 0, out);
    TU_CHECK(zkc_group_view_count(v) == 1, out);
    CU_ASSERT_EQUAL(zkc_member_flags(zkc_group_view_at(v, 0)), ZKC_MEMBER_SELF);
    zkc_group_view_free(v);
    v = NULL;

    /* What lands in ZooKeeper is plain ServerSet JSON at the top level. */
    snprintf(full, sizeof(full), "%s/%s", path, node);
    TU_CHECK(zoo_get(raw(so), full, 0, buf, &blen, NULL) == ZOK, out);
    j = json_loadb(buf, (size_t)blen, 0, NULL);
    TU_CHECK(j != NULL, out);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(json_object_get(j, "serviceEndpoint"), "host")),
        "127.0.0.1");
    CU_ASSERT_EQUAL(
        json_integer_value(json_object_get(json_object_get(j, "serviceEndpoint"), "port")), 8080);
    CU_ASSERT_EQUAL(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(j, "additionalEndpoints"), "admin"), "port")),
        9090);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")), "ALIVE");

    /* Update: one UPDATED with the old and new payloads. */
    info.port = 8081;
    TU_CHECK(zkc_group_update(ga, &info, 10000) == 0, out);
    TU_CHECK(wait_view(&ro, og, id_has_port, &want, 10000), out);
    CU_ASSERT_EQUAL(grec_count(&ro, ZKC_GROUP_UPDATED, "alpha"), 1);
    pthread_mutex_lock(&ro.mu);
    {
        int i;
        for (i = 0; i < ro.n; i++) {
            if (ro.ev[i].type == ZKC_GROUP_UPDATED) {
                CU_ASSERT_EQUAL(ro.ev[i].port, 8081);
                CU_ASSERT_EQUAL(ro.ev[i].prev_port, 8080);
                CU_ASSERT_STRING_EQUAL(ro.ev[i].node, node);
            }
        }
    }
    pthread_mutex_unlock(&ro.mu);

    /* Leave: LEFT, and an empty view. */
    TU_CHECK(zkc_group_leave(ga, 10000) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_leave(ga, 0), ZKC_ENOTHELD);
    TU_CHECK(wait_view(&ro, og, count_is, &zero, 10000), out);
    CU_ASSERT_EQUAL(grec_count(&ro, ZKC_GROUP_LEFT, "alpha"), 1);
    CU_ASSERT_EQUAL(grec_count(&ro, ZKC_GROUP_JOINED, NULL), 1);
    CU_ASSERT_EQUAL(grec_count(&ro, ZKC_GROUP_ERROR, NULL), 0);
    CU_ASSERT(grec_count(&ro, ZKC_GROUP_CHANGED, NULL) >= 3);
    blen = sizeof(buf);
    CU_ASSERT_EQUAL(zoo_get(raw(so), full, 0, buf, &blen, NULL), ZNONODE);

    /* Join again on the same handle. */
    info.port = 8082;
    TU_CHECK(zkc_group_join(ga, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    TU_CHECK(wait_view(&ro, og, has_id, "alpha", 10000), out);
out:
    json_decref(j);
    zkc_group_view_free(v);
    zkc_group_free(ga);
    zkc_group_free(og);
    zkc_session_close(sa);
    zkc_session_close(so);
    grec_destroy(&ro);
    grec_destroy(&ra);
}

/* A test subscription on the observer's folder, behind the group's: it
 * runs right after the group sent its getChildren, and deletes the new
 * node through the observer's own session, so the server answers the
 * getChildren (node listed) before the delete, and the delete before the
 * group's get (NONODE). Deterministic: one session's requests are served in
 * order. */
struct vanisher {
    zkc_session *s;
    const char *victim;
    int fired;
    int rc;
};

static void vanish_deleted(int rc, const void *data)
{
    struct vanisher *vn = (struct vanisher *)data;

    vn->rc = rc;
}

static void vanish_fn(zhandle_t *zh_, int type, int state, const char *path, void *arg)
{
    struct vanisher *vn = arg;
    zhandle_t *zh;

    (void)zh_;
    (void)state;
    (void)path;
    if (type != ZOO_CHILD_EVENT || vn->fired)
        return;
    vn->fired = 1;
    zh = zkc__zh_lock(vn->s, NULL);
    if (zh) {
        zoo_adelete(zh, vn->victim, -1, vanish_deleted, vn);
        zkc__zh_unlock(vn->s);
    }
}

static void test_vanish_between_list_and_get(void)
{
    const char *path = "/zkcoord/vanish/members";
    zkc_session *so = NULL, *sx = NULL, *sb = NULL;
    zkc_group *og = NULL, *gb = NULL;
    struct vanisher vn;
    grec ro;
    char created[256];
    int one = 1;

    memset(&vn, 0, sizeof(vn));
    vn.rc = 99;
    grec_init(&ro);
    CU_ASSERT_EQUAL_FATAL(tu_session(&so, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sx, NULL, 4000, NULL) == 0, out);
    TU_CHECK(tu_session(&sb, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(sx, path, 5000) == 0, out);
    vn.s = so;
    vn.victim = created;
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(so, path, 5000) == 0, out); /* a round trip: first listing is in */
    /* A child watch of our own on the observer's handle, set after the
     * group's: the client runs the watchers of one event oldest first, so
     * ours runs right after the group sent its getChildren. It fires once
     * (the create below), after which the client holds no pointer to vn. */
    {
        struct String_vector sv = {0, NULL};
        TU_CHECK(zoo_wget_children(raw(so), path, vanish_fn, &vn, &sv) == ZOK, out);
        deallocate_String_vector(&sv);
    }
    /* Named in advance (the child event may beat zoo_create's return). */
    snprintf(created, sizeof(created), "%s/member_x_0000000001", path);
    TU_CHECK(zoo_create(raw(sx), created, "{}", 2, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0) ==
                 ZOK,
             out);
    /* Then a real member: the observer must carry on normally. */
    TU_CHECK(new_group(&gb, sb, path, NULL) == 0, out);
    {
        zkc_member_info info = info_of("bravo", 1);
        TU_CHECK(zkc_group_join(gb, &info) == 0, out);
    }
    TU_CHECK(wait_view(&ro, og, has_id, "bravo", 10000), out);
    if (!wait_view(&ro, og, count_is, &one, 10000)) {
        zkc_group_view *v = NULL;
        int i;
        zkc_group_view_get(og, &v);
        for (i = 0; i < zkc_group_view_count(v); i++)
            fprintf(stderr, "    view[%d] = %s\n", i, zkc_member_node(zkc_group_view_at(v, i)));
        fprintf(stderr, "    fired %d rc %d\n", vn.fired, vn.rc);
        zkc_group_view_free(v);
        CU_FAIL("count 1");
        goto out;
    }
    CU_ASSERT_EQUAL(vn.fired, 1);
    CU_ASSERT_EQUAL(vn.rc, ZOK);
    /* The vanished node was never shown, and nothing went wrong. */
    CU_ASSERT_EQUAL(grec_count(&ro, ZKC_GROUP_JOINED, NULL), 1);
    CU_ASSERT_EQUAL(grec_count(&ro, ZKC_GROUP_LEFT, NULL), 0);
    CU_ASSERT_EQUAL(grec_count(&ro, ZKC_GROUP_ERROR, NULL), 0);
out:
    zkc_group_free(gb);
    zkc_group_free(og);
    zkc_session_close(sb);
    zkc_session_close(sx);
    zkc_session_close(so);
    grec_destroy(&ro);
}

static const zkc_member *find_node_prefix(const zkc_group_view *v, const char *prefix)
{
    int i;

    for (i = 0; i < zkc_group_view_count(v); i++)
        if (strncmp(zkc_member_node(zkc_group_view_at(v, i)), prefix, strlen(prefix)) == 0)
            return zkc_group_view_at(v, i);
    return NULL;
}

/* Create an ephemeral sequential node with raw data (len -2: strlen). */
static int mk(zhandle_t *zh, const char *dir, const char *name, const char *data, int len)
{
    char p[256];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return zoo_create(zh, p, data, len == -2 ? (int)strlen(data) : len, &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_EPHEMERAL_SEQUENTIAL, NULL, 0);
}

static void test_malformed_peers(void)
{
    const char *path = "/zkcoord/garbage/members";
    zkc_session *so = NULL, *sx = NULL;
    zkc_group *og = NULL;
    zkc_group_view *v = NULL;
    const zkc_member *m;
    zhandle_t *zh;
    grec ro;
    char *huge = NULL;
    int six = 6;
    size_t hlen = 100000;

    grec_init(&ro);
    CU_ASSERT_EQUAL_FATAL(tu_session(&so, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sx, NULL, 4000, NULL) == 0, out);
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(sx, path, 5000) == 0, out);
    zh = raw(sx);
    huge = malloc(hlen);
    TU_CHECK(huge != NULL, out);
    memset(huge, '{', hlen);
    TU_CHECK(mk(zh, path, "member_garbage_", "not json \x01\xff", 11) == ZOK, out);
    TU_CHECK(mk(zh, path, "member_huge_", huge, (int)hlen) == ZOK, out);
    TU_CHECK(mk(zh, path, "member_types_", "{\"serviceEndpoint\":\"x\",\"zkcoord\":{\"id\":42}}",
                -2) == ZOK,
             out);
    TU_CHECK(mk(zh, path, "member_partial_",
                "{\"serviceEndpoint\":{\"host\":\"h\",\"port\":5},\"zkcoord\":{\"id\":\"p\","
                "\"metadata\":7}}",
                -2) == ZOK,
             out);
    TU_CHECK(mk(zh, path, "member_empty_", NULL, -1) == ZOK, out);
    {
        char p[256];
        snprintf(p, sizeof(p), "%s/README", path);
        TU_CHECK(zoo_create(zh, p, "persistent foreign node", 23, &ZOO_OPEN_ACL_UNSAFE, 0, NULL,
                            0) == ZOK,
                 out);
    }
    TU_CHECK(wait_view(&ro, og, count_is, &six, 10000), out);
    TU_CHECK(zkc_group_view_get(og, &v) == 0, out);
    m = find_node_prefix(v, "member_garbage_");
    TU_CHECK(m != NULL, out);
    CU_ASSERT_EQUAL(zkc_member_flags(m), ZKC_MEMBER_MALFORMED | ZKC_MEMBER_NO_ID);
    m = find_node_prefix(v, "member_huge_");
    TU_CHECK(m != NULL, out);
    CU_ASSERT_EQUAL(zkc_member_flags(m),
                    ZKC_MEMBER_MALFORMED | ZKC_MEMBER_OVERSIZE | ZKC_MEMBER_NO_ID);
    CU_ASSERT_PTR_NULL(zkc_member_payload(m, NULL));
    m = find_node_prefix(v, "member_types_");
    TU_CHECK(m != NULL, out);
    CU_ASSERT_EQUAL(zkc_member_flags(m), ZKC_MEMBER_MALFORMED | ZKC_MEMBER_NO_ID);
    CU_ASSERT_PTR_NULL(zkc_member_host(m));
    m = find_node_prefix(v, "member_partial_");
    TU_CHECK(m != NULL, out);
    CU_ASSERT_EQUAL(zkc_member_flags(m), ZKC_MEMBER_MALFORMED);
    CU_ASSERT_STRING_EQUAL(zkc_member_id(m), "p");
    CU_ASSERT_STRING_EQUAL(zkc_member_host(m), "h");
    CU_ASSERT_EQUAL(zkc_member_port(m), 5);
    m = find_node_prefix(v, "member_empty_");
    TU_CHECK(m != NULL, out);
    CU_ASSERT((zkc_member_flags(m) & ZKC_MEMBER_MALFORMED) != 0);
    /* A node without a sequence number sorts last. */
    m = zkc_group_view_at(v, 5);
    TU_CHECK(m != NULL, out);
    CU_ASSERT_STRING_EQUAL(zkc_member_node(m), "README");
    CU_ASSERT_EQUAL(zkc_member_owner(m), 0);
out:
    zkc_group_view_free(v);
    free(huge);
    zkc_group_free(og);
    zkc_session_close(sx);
    zkc_session_close(so);
    grec_destroy(&ro);
}

static void test_duplicate_ids(void)
{
    const char *path = "/zkcoord/dup/members";
    zkc_session *so = NULL, *s1 = NULL, *s2 = NULL;
    zkc_group *og = NULL, *g1 = NULL, *g2 = NULL;
    zkc_group_view *v = NULL;
    zkc_member_info info = info_of("twin", 1);
    grec ro;
    int two = 2, one = 1;

    grec_init(&ro);
    CU_ASSERT_EQUAL_FATAL(tu_session(&so, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&s1, NULL, 4000, NULL) == 0, out);
    TU_CHECK(tu_session(&s2, NULL, 4000, NULL) == 0, out);
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    TU_CHECK(new_group(&g1, s1, path, NULL) == 0, out);
    TU_CHECK(new_group(&g2, s2, path, NULL) == 0, out);
    TU_CHECK(zkc_group_join(g1, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(g1, 10000) == 0, out);
    info.port = 2;
    TU_CHECK(zkc_group_join(g2, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(g2, 10000) == 0, out);
    TU_CHECK(wait_view(&ro, og, count_is, &two, 10000), out);
    TU_CHECK(zkc_group_view_get(og, &v) == 0, out);
    /* Both shown, both flagged: not merged. */
    CU_ASSERT_EQUAL(zkc_group_view_duplicates(v), 2);
    CU_ASSERT((zkc_member_flags(zkc_group_view_at(v, 0)) & ZKC_MEMBER_DUPLICATE) != 0);
    CU_ASSERT((zkc_member_flags(zkc_group_view_at(v, 1)) & ZKC_MEMBER_DUPLICATE) != 0);
    CU_ASSERT_EQUAL(zkc_member_port(zkc_group_view_at(v, 0)), 1); /* join order */
    CU_ASSERT_EQUAL(zkc_member_port(zkc_group_view_at(v, 1)), 2);
    zkc_group_view_free(v);
    v = NULL;
    CU_ASSERT(grec_count(&ro, ZKC_GROUP_DUPLICATE, "twin") >= 1);
    TU_CHECK(zkc_group_leave(g1, 10000) == 0, out);
    TU_CHECK(wait_view(&ro, og, count_is, &one, 10000), out);
    TU_CHECK(zkc_group_view_get(og, &v) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_view_duplicates(v), 0);
    CU_ASSERT_EQUAL(zkc_member_flags(zkc_group_view_at(v, 0)) & ZKC_MEMBER_DUPLICATE, 0);
out:
    zkc_group_view_free(v);
    zkc_group_free(g2);
    zkc_group_free(g1);
    zkc_group_free(og);
    zkc_session_close(s2);
    zkc_session_close(s1);
    zkc_session_close(so);
    grec_destroy(&ro);
}

struct node_change {
    const char *id;
    const char *old_node;
};

static int id_on_new_node(const zkc_group_view *v, void *arg)
{
    struct node_change *nc = arg;
    const zkc_member *m = zkc_group_view_find(v, nc->id);
    int i, n = 0;

    for (i = 0; i < zkc_group_view_count(v); i++)
        if (strcmp(zkc_member_node(zkc_group_view_at(v, i)), nc->old_node) == 0)
            return 0;
    for (i = 0; i < zkc_group_view_count(v); i++)
        if (zkc_member_id(zkc_group_view_at(v, i)) &&
            strcmp(zkc_member_id(zkc_group_view_at(v, i)), nc->id) == 0)
            n++;
    return m && n == 1 && strcmp(zkc_member_node(m), nc->old_node) != 0;
}

static void test_rejoin_after_expiry(void)
{
    const char *path = "/zkcoord/expiry/members";
    zkc_session *so = NULL, *sa = NULL;
    zkc_group *og = NULL, *ga = NULL;
    zkc_member_info info = info_of("phoenix", 7);
    struct node_change nc;
    grec ro, ra;
    char before[128], after[128];

    grec_init(&ro);
    grec_init(&ra);
    CU_ASSERT_EQUAL_FATAL(tu_session(&so, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sa, NULL, 2000, NULL) == 0, out);
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    TU_CHECK(new_group(&ga, sa, path, &ra) == 0, out);
    TU_CHECK(zkc_group_join(ga, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    TU_CHECK(wait_view(&ro, og, has_id, "phoenix", 10000), out);
    node_of(og, "phoenix", before, sizeof(before));
    TU_CHECK(tu_expire(sa) == 0, out);
    /* Without being asked, the member comes back with the new session. */
    nc.id = "phoenix";
    nc.old_node = before;
    TU_CHECK(wait_view(&ro, og, id_on_new_node, &nc, 15000), out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    CU_ASSERT_EQUAL(zkc_session_generation(sa), 2);
    node_of(ga, "phoenix", after, sizeof(after));
    CU_ASSERT_STRING_NOT_EQUAL(after, before);
    TU_CHECK(wait_view(&ra, ga, id_on_new_node, &nc, 10000), out);
    CU_ASSERT(grec_count(&ro, ZKC_GROUP_LEFT, "phoenix") >= 1);
    CU_ASSERT(grec_count(&ro, ZKC_GROUP_JOINED, "phoenix") >= 2);
    {
        /* Its own view marks the new node as ours. */
        zkc_group_view *v = NULL;
        TU_CHECK(zkc_group_view_get(ga, &v) == 0, out);
        CU_ASSERT((zkc_member_flags(zkc_group_view_find(v, "phoenix")) & ZKC_MEMBER_SELF) != 0);
        CU_ASSERT_EQUAL(zkc_member_owner(zkc_group_view_find(v, "phoenix")), zkc_session_id(sa));
        zkc_group_view_free(v);
    }
out:
    zkc_group_free(ga);
    zkc_group_free(og);
    zkc_session_close(sa);
    zkc_session_close(so);
    grec_destroy(&ro);
    grec_destroy(&ra);
}

static void test_recreate_deleted_node(void)
{
    const char *path = "/zkcoord/deleted/members";
    zkc_session *so = NULL, *sa = NULL;
    zkc_group *og = NULL, *ga = NULL;
    zkc_member_info info = info_of("stubborn", 7);
    struct node_change nc;
    grec ro;
    char before[128], full[256];

    grec_init(&ro);
    CU_ASSERT_EQUAL_FATAL(tu_session(&so, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sa, NULL, 4000, NULL) == 0, out);
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    TU_CHECK(new_group(&ga, sa, path, NULL) == 0, out);
    TU_CHECK(zkc_group_join(ga, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    TU_CHECK(wait_view(&ro, og, has_id, "stubborn", 10000), out);
    node_of(og, "stubborn", before, sizeof(before));
    /* An operator deletes the node while the member is still in. */
    snprintf(full, sizeof(full), "%s/%s", path, before);
    TU_CHECK(zoo_delete(raw(so), full, -1) == ZOK, out);
    nc.id = "stubborn";
    nc.old_node = before;
    TU_CHECK(wait_view(&ro, og, id_on_new_node, &nc, 10000), out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
out:
    zkc_group_free(ga);
    zkc_group_free(og);
    zkc_session_close(sa);
    zkc_session_close(so);
    grec_destroy(&ro);
}

static void test_survives_server_restart(void)
{
    const char *path = "/zkcoord/restart/members";
    zkc_session *sa = NULL;
    zkc_group *ga = NULL;
    zkc_group_view *v = NULL;
    zkc_member_info info = info_of("survivor", 7);
    tu_rec rec;
    grec ra;
    char before[128], after[128];
    int susp, back, one = 1;

    tu_rec_init(&rec);
    grec_init(&ra);
    /* Long enough to outlive a server restart (the JVM takes 1-3 s). */
    CU_ASSERT_EQUAL_FATAL(tu_session(&sa, NULL, 30000, &rec), 0);
    TU_CHECK(new_group(&ga, sa, path, &ra) == 0, out);
    TU_CHECK(zkc_group_join(ga, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    node_of(ga, "survivor", before, sizeof(before));
    TU_CHECK(zkh_stop_server(tu_zk, 0) == 0, out);
    susp = tu_rec_wait(&rec, 1, ZKC_CONN_SUSPENDED, 10000);
    CU_ASSERT(susp > 0);
    TU_CHECK(zkh_start_server(tu_zk, 0) == 0, out);
    back = tu_rec_wait(&rec, susp + 1, ZKC_CONN_RECONNECTED, 25000);
    TU_CHECK(back > susp, out);
    /* Verified, not re-created: the same node, still ours, once. */
    {
        zkc_session *probe = NULL;
        zkc_group_view *rv = NULL;
        TU_CHECK(tu_session(&probe, NULL, 4000, NULL) == 0, out);
        CU_ASSERT_EQUAL(zkc_group_read(probe, path, 0, &rv, 10000), 0);
        if (rv) {
            CU_ASSERT_EQUAL(zkc_group_view_count(rv), 1);
            if (zkc_group_view_count(rv) == 1) {
                CU_ASSERT_STRING_EQUAL(zkc_member_node(zkc_group_view_at(rv, 0)), before);
                CU_ASSERT_EQUAL(zkc_member_owner(zkc_group_view_at(rv, 0)), zkc_session_id(sa));
            }
        }
        zkc_group_view_free(rv);
        zkc_session_close(probe);
    }
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    TU_CHECK(wait_view(&ra, ga, count_is, &one, 10000), out);
    node_of(ga, "survivor", after, sizeof(after));
    CU_ASSERT_STRING_EQUAL(after, before);
    TU_CHECK(zkc_group_view_get(ga, &v) == 0, out);
    CU_ASSERT_EQUAL(zkc_member_flags(zkc_group_view_at(v, 0)), ZKC_MEMBER_SELF);
out:
    zkc_group_view_free(v);
    zkc_group_free(ga);
    zkc_session_close(sa);
    grec_destroy(&ra);
    tu_rec_destroy(&rec);
}

/* A session through a proxy that can cut its connection. */
static int proxied_session(zkc_session **out, tu_proxy *px, int timeout_ms, tu_rec *rec)
{
    return tu_session(out, tu_proxy_address(px), timeout_ms, rec);
}

/* The server's children of `path` whose data claims `id` (raw read). */
static int server_count_id(zhandle_t *zh, const char *path, const char *id, char *node,
                           size_t node_len)
{
    struct String_vector sv = {0, NULL};
    char needle[128], p[256], buf[4096];
    int i, n = 0;

    snprintf(needle, sizeof(needle), "\"id\":\"%s\"", id);
    if (zoo_get_children(zh, path, 0, &sv) != ZOK)
        return -1;
    for (i = 0; i < sv.count; i++) {
        int len = sizeof(buf) - 1;
        snprintf(p, sizeof(p), "%s/%s", path, sv.data[i]);
        if (zoo_get(zh, p, 0, buf, &len, NULL) != ZOK || len < 0)
            continue;
        buf[len] = '\0';
        if (strstr(buf, needle)) {
            n++;
            if (node)
                snprintf(node, node_len, "%s", sv.data[i]);
        }
    }
    deallocate_String_vector(&sv);
    return n;
}

static void test_lost_create_reply(void)
{
    const char *path = "/zkcoord/orphan/members";
    tu_proxy *px = NULL;
    zkc_session *sa = NULL, *so = NULL;
    zkc_group *ga = NULL;
    zkc_member_info info = info_of("careful", 3);
    zkc_group_view *v = NULL;
    tu_rec rec;
    char node[128];

    tu_rec_init(&rec);
    CU_ASSERT_EQUAL_FATAL(tu_proxy_start(&px, zkh_connect_string(tu_zk)), 0);
    TU_CHECK(tu_session(&so, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(so, path, 5000) == 0, out);
    TU_CHECK(proxied_session(&sa, px, 8000, &rec) == 0, out);
    TU_CHECK(new_group(&ga, sa, path, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(sa, path, 5000) == 0, out); /* first listing is in */
    /* The create (its JSON makes it the only request this big) reaches the
     * server; its reply is lost with the connection. */
    tu_proxy_cut_after_request(px, 120);
    TU_CHECK(zkc_group_join(ga, &info) == 0, out);
    TU_CHECK(tu_proxy_wait_cut(px, 5000) == 0, out);
    TU_CHECK(tu_rec_wait(&rec, 1, ZKC_CONN_RECONNECTED, 15000) > 0, out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    /* Adopted by its guid: one node, ours, no orphan. */
    CU_ASSERT_EQUAL(server_count_id(raw(so), path, "careful", node, sizeof(node)), 1);
    TU_CHECK(zkc_group_view_get(ga, &v) == 0, out);
    TU_CHECK(zkc_group_view_count(v) == 1, out);
    CU_ASSERT_STRING_EQUAL(zkc_member_node(zkc_group_view_at(v, 0)), node);
    CU_ASSERT_EQUAL(zkc_member_owner(zkc_group_view_at(v, 0)), zkc_session_id(sa));
    CU_ASSERT_EQUAL(zkc_member_flags(zkc_group_view_at(v, 0)), ZKC_MEMBER_SELF);
out:
    zkc_group_view_free(v);
    zkc_group_free(ga);
    zkc_session_close(sa);
    zkc_session_close(so);
    tu_proxy_stop(px);
    tu_rec_destroy(&rec);
}

static void test_deleted_while_disconnected(void)
{
    const char *path = "/zkcoord/away/members";
    tu_proxy *px = NULL;
    zkc_session *sa = NULL, *so = NULL;
    zkc_group *ga = NULL, *og = NULL;
    zkc_member_info info = info_of("away", 3);
    struct node_change nc;
    tu_rec rec;
    grec ro;
    char before[128], full[256];
    int susp;

    tu_rec_init(&rec);
    grec_init(&ro);
    CU_ASSERT_EQUAL_FATAL(tu_proxy_start(&px, zkh_connect_string(tu_zk)), 0);
    TU_CHECK(tu_session(&so, NULL, 4000, NULL) == 0, out);
    TU_CHECK(proxied_session(&sa, px, 10000, &rec) == 0, out);
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    TU_CHECK(new_group(&ga, sa, path, NULL) == 0, out);
    TU_CHECK(zkc_group_join(ga, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    TU_CHECK(wait_view(&ro, og, has_id, "away", 10000), out);
    node_of(og, "away", before, sizeof(before));
    /* Away from the server (same session lives on), the node is deleted. */
    tu_proxy_block(px, 1);
    susp = tu_rec_wait(&rec, 1, ZKC_CONN_SUSPENDED, 10000);
    TU_CHECK(susp > 0, unblock);
    snprintf(full, sizeof(full), "%s/%s", path, before);
    TU_CHECK(zoo_delete(raw(so), full, -1) == ZOK, unblock);
unblock:
    tu_proxy_block(px, 0);
    TU_CHECK(tu_rec_wait(&rec, susp + 1, ZKC_CONN_RECONNECTED, 15000) > susp, out);
    /* Back with the same session: the member notices and makes it again. */
    nc.id = "away";
    nc.old_node = before;
    TU_CHECK(wait_view(&ro, og, id_on_new_node, &nc, 10000), out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    CU_ASSERT_EQUAL(tu_rec_wait(&rec, 0, ZKC_CONN_LOST, 0), -1);
    CU_ASSERT_EQUAL(server_count_id(raw(so), path, "away", NULL, 0), 1);
out:
    zkc_group_free(og);
    zkc_group_free(ga);
    zkc_session_close(sa);
    zkc_session_close(so);
    tu_proxy_stop(px);
    tu_rec_destroy(&rec);
    grec_destroy(&ro);
}

/* --------------------------------------------------------------- churn */

#define CHURN_N 8

struct match_arg {
    char **names;
    int n;
};

static int view_matches(const zkc_group_view *v, void *arg)
{
    struct match_arg *ma = arg;
    int i;

    if (zkc_group_view_count(v) != ma->n)
        return 0;
    for (i = 0; i < ma->n; i++)
        if (strcmp(zkc_member_node(zkc_group_view_at(v, i)), ma->names[i]) != 0)
            return 0;
    return 1;
}

static int str_seq_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a + strlen(*(char *const *)a) - 10,
                  *(char *const *)b + strlen(*(char *const *)b) - 10);
}

static void test_churn(void)
{
    const char *path = "/zkcoord/churn/members";
    zkc_session *s[CHURN_N] = {NULL};
    zkc_group *g[CHURN_N] = {NULL};
    grec r[CHURN_N];
    int joined[CHURN_N] = {0};
    char ids[CHURN_N][16];
    struct String_vector sv = {0, NULL};
    struct match_arg ma;
    unsigned seed = 4242;
    int i, step, ok = 1;

    for (i = 0; i < CHURN_N; i++)
        grec_init(&r[i]);
    for (i = 0; i < CHURN_N; i++) {
        TU_CHECK(tu_session(&s[i], NULL, 2000, NULL) == 0, out);
        TU_CHECK(new_group(&g[i], s[i], path, &r[i]) == 0, out);
        snprintf(ids[i], sizeof(ids[i]), "churn-%d", i);
    }
    /* The first two only watch; the others join, leave, update at random,
     * without waiting for each other. */
    for (step = 0; step < 60; step++) {
        int k;
        seed = seed * 1103515245u + 12345u;
        k = 2 + (int)((seed >> 8) % (CHURN_N - 2));
        if (step == 30) {
            /* One member loses its session in the middle of it all. */
            TU_CHECK(tu_expire(s[k]) == 0, out);
            continue;
        }
        if (!joined[k]) {
            zkc_member_info info = info_of(ids[k], step);
            CU_ASSERT_EQUAL(zkc_group_join(g[k], &info), 0);
            joined[k] = 1;
        } else if ((seed >> 20) % 3 == 0) {
            zkc_member_info info = info_of(ids[k], 1000 + step);
            CU_ASSERT_EQUAL(zkc_group_update(g[k], &info, 0), 0);
        } else {
            int rc = zkc_group_leave(g[k], (seed >> 24) % 2 ? 0 : 5000);
            CU_ASSERT(rc == 0);
            joined[k] = 0;
        }
    }
    for (i = 2; i < CHURN_N; i++)
        if (joined[i])
            TU_CHECK(zkc_group_wait_joined(g[i], 15000) == 0, out);
    /* Converged when every observer shows exactly the server's children
     * and those are the members still in (leaves sent with timeout 0 may
     * still be landing: read the server again until then). */
    {
        long long deadline = tu_now_ms() + 20000;
        int expect = 0;
        for (i = 2; i < CHURN_N; i++)
            expect += joined[i];
        for (;;) {
            deallocate_String_vector(&sv);
            TU_CHECK(zoo_get_children(raw(s[0]), path, 0, &sv) == ZOK, out);
            qsort(sv.data, (size_t)sv.count, sizeof(*sv.data), str_seq_cmp);
            ma.names = sv.data;
            ma.n = sv.count;
            ok = sv.count == expect;
            for (i = 0; i < CHURN_N && ok; i++)
                ok = wait_view(&r[i], g[i], view_matches, &ma, 1000);
            if (ok || tu_now_ms() > deadline)
                break;
        }
        CU_ASSERT_EQUAL(sv.count, expect);
    }
    for (i = 0; i < CHURN_N; i++)
        CU_ASSERT_EQUAL(grec_count(&r[i], ZKC_GROUP_ERROR, NULL), 0);
    CU_ASSERT_EQUAL(ok, 1);
out:
    deallocate_String_vector(&sv);
    for (i = 0; i < CHURN_N; i++) {
        zkc_group_free(g[i]);
        zkc_session_close(s[i]);
        grec_destroy(&r[i]);
    }
}

/* ----------------------------------------------------------- read cost */

static void test_read_cost(void)
{
    enum { W = 4 };
    const char *path = "/zkcoord/cost/members";
    zkc_session *sw[W] = {NULL}, *sj = NULL, *sx = NULL;
    zkc_group *gw[W] = {NULL}, *gj = NULL;
    grec rw[W], rj;
    zkc_member_info info = info_of("newcomer", 1);
    long long p0, p1, idle;
    char pre[256];
    int i, one = 1, two = 2;

    for (i = 0; i < W; i++)
        grec_init(&rw[i]);
    grec_init(&rj);
    /* Long session timeouts: no ping falls in the measured window. */
    CU_ASSERT_EQUAL_FATAL(tu_session(&sx, NULL, 40000, NULL), 0);
    TU_CHECK(zkc__mkdirs_sync(sx, path, 5000) == 0, out);
    /* One member already there, so each watcher's first view is not empty
     * and "synced" is observable. */
    snprintf(pre, sizeof(pre), "%s/member_pre_", path);
    TU_CHECK(zoo_create(raw(sx), pre, "{\"zkcoord\":{\"id\":\"pre\"}}", 24, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_EPHEMERAL_SEQUENTIAL, NULL, 0) == ZOK,
             out);
    for (i = 0; i < W; i++) {
        TU_CHECK(tu_session(&sw[i], NULL, 40000, NULL) == 0, out);
        TU_CHECK(new_group(&gw[i], sw[i], path, &rw[i]) == 0, out);
    }
    TU_CHECK(tu_session(&sj, NULL, 40000, NULL) == 0, out);
    TU_CHECK(new_group(&gj, sj, path, &rj) == 0, out);
    for (i = 0; i < W; i++)
        TU_CHECK(wait_view(&rw[i], gw[i], count_is, &one, 10000), out);
    TU_CHECK(wait_view(&rj, gj, count_is, &one, 10000), out);

    /* The server counts a four-letter-word connection as a packet too. */
    p0 = zkh_mntr(tu_zk, 0, "zk_packets_received");
    idle = zkh_mntr(tu_zk, 0, "zk_packets_received") - p0;
    p0 += idle;
    TU_CHECK(zkc_group_join(gj, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(gj, 10000) == 0, out);
    for (i = 0; i < W; i++)
        TU_CHECK(wait_view(&rw[i], gw[i], count_is, &two, 10000), out);
    p1 = zkh_mntr(tu_zk, 0, "zk_packets_received") - idle;
    printf("\n    read cost: %lld requests for one join seen by %d watchers + the joiner "
           "(mntr alone: %lld)\n",
           p1 - p0, W, idle);
    CU_ASSERT(idle >= 0 && idle <= 1);
    /* Each watcher: getChildren + get of the newcomer. The joiner: create,
     * then its own getChildren + get. Never a re-read of "pre". */
    CU_ASSERT(p1 - p0 <= W * 2 + 3);
    CU_ASSERT(p1 - p0 >= W * 2 + 1);
out:
    zkc_group_free(gj);
    for (i = 0; i < W; i++) {
        zkc_group_free(gw[i]);
        zkc_session_close(sw[i]);
        grec_destroy(&rw[i]);
    }
    zkc_session_close(sj);
    zkc_session_close(sx);
    grec_destroy(&rj);
}

/* ------------------------------------------------------------ one-shot */

static void test_read_oneshot(void)
{
    const char *path = "/zkcoord/oneshot/members";
    zkc_session *s = NULL, *sa = NULL;
    zkc_group *ga = NULL;
    zkc_group_view *v = NULL;
    zkc_member_info info = info_of("solo", 5);
    char p[256];

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sa, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc_group_read(s, "/zkcoord/none/members", 0, &v, 5000) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_view_count(v), 0);
    zkc_group_view_free(v);
    v = NULL;
    CU_ASSERT_EQUAL(zkc_group_read(s, "bad", 0, &v, 5000), ZKC_EINVAL);
    TU_CHECK(new_group(&ga, sa, path, NULL) == 0, out);
    TU_CHECK(zkc_group_join(ga, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(ga, 10000) == 0, out);
    snprintf(p, sizeof(p), "%s/member_junk_", path);
    TU_CHECK(zoo_create(raw(s), p, "junk", 4, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, NULL,
                        0) == ZOK,
             out);
    TU_CHECK(zkc_group_read(s, path, 0, &v, 5000) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_view_count(v), 2);
    CU_ASSERT_PTR_NOT_NULL(zkc_group_view_find(v, "solo"));
    if (zkc_group_view_count(v) == 2) {
        CU_ASSERT_EQUAL(zkc_member_port(zkc_group_view_at(v, 0)), 5);
        CU_ASSERT((zkc_member_flags(zkc_group_view_at(v, 1)) & ZKC_MEMBER_MALFORMED) != 0);
    }
out:
    zkc_group_view_free(v);
    zkc_group_free(ga);
    zkc_session_close(sa);
    zkc_session_close(s);
}

/* A callback may free its own group. */
struct self_free {
    zkc_group *g;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int freed;
};

static void free_from_cb(zkc_group *g, const zkc_group_event *ev, void *ud)
{
    struct self_free *sf = ud;

    if (ev->type != ZKC_GROUP_CHANGED)
        return;
    pthread_mutex_lock(&sf->mu);
    if (!sf->freed) {
        zkc_group_free(g);
        sf->freed = 1;
        pthread_cond_broadcast(&sf->cond);
    }
    pthread_mutex_unlock(&sf->mu);
}

/* Freed from its own callback while the engine has a delivery queued on
 * the dispatcher behind the running one: that delivery runs after the
 * group is gone. */
struct queued_free {
    struct self_free sf;
    zkc_session *s;
    const char *path;
    int created;     /* the extra member node was made */
    int queued_seen; /* a delivery was queued when the group was freed */
};

static void free_with_queued_cb(zkc_group *g, const zkc_group_event *ev, void *ud)
{
    struct queued_free *qf = ud;
    const char *data = "{\"zkcoord\":{\"id\":\"extra\"}}";
    char p[256];
    long long end;
    int pr, d, q = 0, b;

    if (ev->type != ZKC_GROUP_CHANGED)
        return;
    pthread_mutex_lock(&qf->sf.mu);
    if (!qf->sf.freed) {
        /* A change now: its delivery is queued while this one runs. */
        snprintf(p, sizeof(p), "%s/member_extra", qf->path);
        qf->created = zoo_create(raw(qf->s), p, data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE,
                                 ZOO_EPHEMERAL, NULL, 0) == ZOK;
        end = tu_now_ms() + 10000;
        while (qf->created && tu_now_ms() < end) {
            struct timespec ts = {0, 2 * 1000000};

            zkc__group_counts(g, &pr, &d, &q, &b);
            if (q)
                break;
            nanosleep(&ts, NULL); /* the engine has no event for "queued": poll */
        }
        qf->queued_seen = q;
        zkc_group_free(g);
        qf->sf.freed = 1;
        pthread_cond_broadcast(&qf->sf.cond);
    }
    pthread_mutex_unlock(&qf->sf.mu);
}

/* The engine's queued delivery locked the cache's mutex, which was the
 * group's, destroyed and freed by zkc_group_free (found by TSan as a use
 * of a destroyed mutex in deliver_fn; ASan reports the use after free). */
static void test_free_from_callback_queued(void)
{
    zkc_session *s = NULL;
    zkc_group_opts o;
    zkc_member_info info = info_of("ephemeral", 1);
    struct queued_free qf;
    struct timespec ts;

    memset(&qf, 0, sizeof(qf));
    pthread_mutex_init(&qf.sf.mu, NULL);
    zkc__cond_init(&qf.sf.cond);
    qf.path = "/zkcoord/selffree2/members";
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    qf.s = s;
    TU_CHECK(zkc__mkdirs_sync(s, qf.path, 5000) == 0, out);
    zkc_group_opts_init(&o);
    o.on_event = free_with_queued_cb;
    o.user_data = &qf;
    TU_CHECK(zkc_group_new(&qf.sf.g, s, qf.path, &o) == 0, out);
    TU_CHECK(zkc_group_join(qf.sf.g, &info) == 0, out);
    zkc__deadline(&ts, 20000);
    pthread_mutex_lock(&qf.sf.mu);
    while (!qf.sf.freed && pthread_cond_timedwait(&qf.sf.cond, &qf.sf.mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&qf.sf.mu);
    CU_ASSERT_EQUAL(qf.sf.freed, 1);
    CU_ASSERT_EQUAL(qf.created, 1);
    CU_ASSERT_EQUAL(qf.queued_seen, 1);
    if (!qf.sf.freed)
        zkc_group_free(qf.sf.g);
out:
    /* Closing runs what is still queued on the dispatcher first. */
    zkc_session_close(s);
    pthread_cond_destroy(&qf.sf.cond);
    pthread_mutex_destroy(&qf.sf.mu);
}

/* The public cache may be freed from its own callback too (read.h); the
 * batch it is delivering has more events after the one that frees it. */
struct cache_self_free {
    zkc_cache *c;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int freed;
    int calls; /* callbacks seen, the freeing one included */
};

static void cache_free_from_cb(zkc_cache *c, const zkc_cache_event *ev, void *ud)
{
    struct cache_self_free *cf = ud;

    (void)ev;
    pthread_mutex_lock(&cf->mu);
    cf->calls++;
    if (!cf->freed) {
        zkc_cache_free(c);
        cf->freed = 1;
        pthread_cond_broadcast(&cf->cond);
    }
    pthread_mutex_unlock(&cf->mu);
}

static void test_cache_free_from_callback(void)
{
    const char *path = "/zkcoord/cacheselffree/folder";
    zkc_session *s = NULL;
    zkc_cache_opts o;
    struct cache_self_free cf;
    struct timespec ts;
    char p[128];

    memset(&cf, 0, sizeof(cf));
    pthread_mutex_init(&cf.mu, NULL);
    zkc__cond_init(&cf.cond);
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    TU_CHECK(zkc__mkdirs_sync(s, path, 5000) == 0, out);
    snprintf(p, sizeof(p), "%s/a", path);
    TU_CHECK(zoo_create(raw(s), p, "1", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0) == ZOK,
             out);
    zkc_cache_opts_init(&o);
    o.on_event = cache_free_from_cb;
    o.user_data = &cf;
    TU_CHECK(zkc_cache_new(&cf.c, s, path, &o) == 0, out);
    /* The first batch is ADDED "a", then CHANGED: freed at the first. */
    TU_CHECK(zkc_cache_start(cf.c) == 0, out);
    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&cf.mu);
    while (!cf.freed && pthread_cond_timedwait(&cf.cond, &cf.mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&cf.mu);
    CU_ASSERT_EQUAL(cf.freed, 1);
    if (!cf.freed)
        zkc_cache_free(cf.c);
out:
    zkc_session_close(s); /* runs what is still queued on the dispatcher */
    /* None after the one that freed it (read.h). */
    CU_ASSERT_EQUAL(cf.calls, 1);
    pthread_cond_destroy(&cf.cond);
    pthread_mutex_destroy(&cf.mu);
}

/* ------------------------------------------------- publishing under churn */

struct churner {
    zhandle_t *zh;
    const char *path;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
    int inflight;
    long done;
};

static void churn_created(int rc, const char *value, const void *data)
{
    struct churner *ch = (struct churner *)data;

    (void)rc;
    (void)value;
    pthread_mutex_lock(&ch->mu);
    ch->inflight--;
    ch->done++;
    pthread_cond_broadcast(&ch->cond);
    pthread_mutex_unlock(&ch->mu);
}

#define CHURN_SLOTS 128 /* without the staleness bound, 8 did not starve, 128 did */
static void churn_deleted(int rc, const void *data)
{
    (void)rc;
    (void)data;
}

/* Keeps the folder changing without a pause: CHURN_SLOTS nodes, each
 * deleted and created again, with up to CHURN_SLOTS creates in flight. */
static void *churn_main(void *arg)
{
    struct churner *ch = arg;
    char prev[CHURN_SLOTS][256];
    int slot = 0, i;

    memset(prev, 0, sizeof(prev));
    pthread_mutex_lock(&ch->mu);
    while (!ch->stop) {
        struct timespec ts;
        while (ch->inflight >= CHURN_SLOTS && !ch->stop) {
            zkc__deadline(&ts, 1000);
            pthread_cond_timedwait(&ch->cond, &ch->mu, &ts);
        }
        if (ch->stop)
            break;
        ch->inflight++;
        pthread_mutex_unlock(&ch->mu);
        if (prev[slot][0])
            zoo_adelete(ch->zh, prev[slot], -1, churn_deleted, NULL);
        /* A fixed name per slot: created, then deleted next time round. */
        snprintf(prev[slot], sizeof(prev[slot]), "%s/member_churn%d_0000000000", ch->path, slot);
        if (zoo_acreate(ch->zh, prev[slot], "{}", 2, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
                        churn_created, ch) != ZOK) {
            pthread_mutex_lock(&ch->mu);
            ch->inflight--;
            continue;
        }
        slot = (slot + 1) % (CHURN_SLOTS);
        pthread_mutex_lock(&ch->mu);
    }
    pthread_mutex_unlock(&ch->mu);
    for (i = 0; i < CHURN_SLOTS; i++)
        if (prev[i][0])
            zoo_adelete(ch->zh, prev[i], -1, churn_deleted, NULL);
    return NULL;
}

/* Issue 9 "publishing not starved under sustained churn": while the folder
 * never stops changing (so a listing is nearly always in flight), a member
 * that joins is still delivered within a bounded time. (Before the
 * staleness bound in cache.c the join was not delivered within 5 s.) */
static void test_publish_under_churn(void)
{
    const char *path = "/zkcoord/churnpub/members";
    zkc_session *so = NULL, *sx = NULL, *sm = NULL;
    zkc_group *og = NULL, *gm = NULL;
    zkc_member_info info = info_of("steady", 9);
    struct churner ch;
    pthread_t th;
    int started = 0;
    long long t0, seen = -1;
    grec ro;

    memset(&ch, 0, sizeof(ch));
    pthread_mutex_init(&ch.mu, NULL);
    zkc__cond_init(&ch.cond);
    grec_init(&ro);
    CU_ASSERT_EQUAL_FATAL(tu_session(&so, NULL, 10000, NULL), 0);
    TU_CHECK(tu_session(&sx, NULL, 10000, NULL) == 0, out);
    TU_CHECK(tu_session(&sm, NULL, 10000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(sx, path, 5000) == 0, out);
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    TU_CHECK(new_group(&gm, sm, path, NULL) == 0, out);
    ch.zh = raw(sx);
    ch.path = path;
    TU_CHECK(pthread_create(&th, NULL, churn_main, &ch) == 0, out);
    started = 1;
    /* Churn going (some changes through), then the steady member joins. */
    {
        struct timespec ts;
        zkc__deadline(&ts, 10000);
        pthread_mutex_lock(&ch.mu);
        while (ch.done < 200 && pthread_cond_timedwait(&ch.cond, &ch.mu, &ts) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&ch.mu);
    }
    t0 = tu_now_ms();
    TU_CHECK(zkc_group_join(gm, &info) == 0, out);
    if (wait_view(&ro, og, has_id, "steady", 5000))
        seen = tu_now_ms() - t0;
    pthread_mutex_lock(&ch.mu);
    printf("\n    under churn (%ld changes so far): the join was delivered after %lld ms\n",
           ch.done, seen);
    pthread_mutex_unlock(&ch.mu);
    CU_ASSERT(seen >= 0 && seen < 5000);
out:
    if (started) {
        pthread_mutex_lock(&ch.mu);
        ch.stop = 1;
        pthread_cond_broadcast(&ch.cond);
        pthread_mutex_unlock(&ch.mu);
        pthread_join(th, NULL);
    }
    zkc_group_free(gm);
    zkc_group_free(og);
    zkc_session_close(sm);
    zkc_session_close(sx);
    zkc_session_close(so);
    grec_destroy(&ro);
    pthread_cond_destroy(&ch.cond);
    pthread_mutex_destroy(&ch.mu);
}

/* ------------------------------------------------------ public reads */

/* zkc_get / zkc_get_children: what the CLI reads with. */
static void test_read_api(void)
{
    const char *path = "/zkcoord/readapi/node";
    zkc_session *s = NULL;
    zkc_stat st;
    char **names = NULL, *data = NULL, p[128];
    int n = -1, len = -1;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    CU_ASSERT_EQUAL(zkc_get_children(s, path, 5000, &names, &n, NULL), ZKC_ENONODE);
    CU_ASSERT_EQUAL(zkc_get(s, path, 5000, &data, &len, NULL), ZKC_ENONODE);
    CU_ASSERT_EQUAL(n, -1); /* untouched on failure */
    CU_ASSERT_EQUAL(zkc_get_children(s, "no-slash", 5000, &names, &n, NULL), ZKC_EINVAL);
    TU_CHECK(zkc__mkdirs_sync(s, path, 5000) == 0, out);
    TU_CHECK(zoo_set(raw(s), path, "hello", 5, -1) == ZOK, out);
    snprintf(p, sizeof(p), "%s/zeta", path);
    TU_CHECK(zoo_create(raw(s), p, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    snprintf(p, sizeof(p), "%s/alpha", path);
    TU_CHECK(zoo_create(raw(s), p, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0) == ZOK,
             out);
    CU_ASSERT_EQUAL(zkc_get_children(s, path, 5000, &names, &n, &st), 0);
    CU_ASSERT_EQUAL(n, 2);
    if (n == 2) {
        CU_ASSERT_STRING_EQUAL(names[0], "alpha");
        CU_ASSERT_STRING_EQUAL(names[1], "zeta");
    }
    CU_ASSERT_EQUAL(st.num_children, 2);
    CU_ASSERT_EQUAL(st.version, 1);
    CU_ASSERT_EQUAL(st.data_length, 5);
    zkc_strings_free(names, n);
    memset(&st, 0, sizeof(st));
    CU_ASSERT_EQUAL(zkc_get(s, path, 5000, &data, &len, &st), 0);
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT(data && strcmp(data, "hello") == 0);
    CU_ASSERT_EQUAL(st.version, 1);
    CU_ASSERT_EQUAL(st.owner, 0);
    free(data);
    /* An empty ephemeral node: no data, owned by this session. */
    CU_ASSERT_EQUAL(zkc_get(s, p, 5000, &data, &len, &st), 0);
    CU_ASSERT_PTR_NULL(data);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(st.owner, zkc_session_id(s));
    CU_ASSERT_EQUAL(zkc_get(s, p, 5000, NULL, NULL, NULL), 0);
    /* No children: a NULL array and 0. */
    CU_ASSERT_EQUAL(zkc_get_children(s, p, 5000, &names, &n, NULL), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NULL(names);
out:
    zkc_session_close(s);
}

#define CREC_MAX 64

struct crec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int n;
    struct {
        zkc_cache_event_type type;
        char name[64];
        char data[64];
        int has_stat;
    } ev[CREC_MAX];
    zkc_cache_view *last;
};

static void crec_fn(zkc_cache *c, const zkc_cache_event *ev, void *ud)
{
    struct crec *r = ud;

    (void)c;
    pthread_mutex_lock(&r->mu);
    if (r->n < CREC_MAX) {
        r->ev[r->n].type = ev->type;
        snprintf(r->ev[r->n].name, sizeof(r->ev[r->n].name), "%s", ev->name ? ev->name : "");
        snprintf(r->ev[r->n].data, sizeof(r->ev[r->n].data), "%.*s", ev->data ? ev->len : 0,
                 ev->data ? ev->data : "");
        r->ev[r->n].has_stat = ev->stat != NULL;
        r->n++;
    }
    if (ev->type == ZKC_CACHE_CHANGED) {
        zkc_cache_view_free(r->last);
        r->last = zkc_cache_view_ref(ev->view);
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

/* A recorder, a session for the cache (*s) and one for writes (*sx), and
 * the folder `path`. 0 or -1; the caller frees what was made. */
static int crec_setup(struct crec *r, zkc_session **s, zkc_session **sx, const char *path)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    zkc__cond_init(&r->cond);
    if (tu_session(s, NULL, 4000, NULL) != 0 || tu_session(sx, NULL, 4000, NULL) != 0)
        return -1;
    return zkc__mkdirs_sync(*sx, path, 5000) == 0 ? 0 : -1;
}

/* Wait for an event of `type` about `name` at index >= from; its index or -1. */
static int crec_wait(struct crec *r, int from, zkc_cache_event_type type, const char *name)
{
    struct timespec ts;
    int i, found = -1;

    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        for (i = from; i < r->n && found < 0; i++)
            if (r->ev[i].type == type && (!name || strcmp(r->ev[i].name, name) == 0))
                found = i;
        if (found >= 0 || pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* zkc_cache: a folder that does not exist yet, then children added,
 * updated and removed, each told once, with data; a names-only cache. */
static void test_cache_api(void)
{
    const char *path = "/zkcoord/cacheapi/folder";
    zkc_session *s = NULL, *sx = NULL;
    zkc_cache *c = NULL, *cn = NULL;
    zkc_cache_opts o;
    zkc_cache_view *v = NULL;
    struct crec r, rn;
    char pa[128], pb[128];
    int i, at;

    memset(&r, 0, sizeof(r));
    memset(&rn, 0, sizeof(rn));
    pthread_mutex_init(&r.mu, NULL);
    zkc__cond_init(&r.cond);
    pthread_mutex_init(&rn.mu, NULL);
    zkc__cond_init(&rn.cond);
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sx, NULL, 4000, NULL) == 0, out);
    zkc_cache_opts_init(&o);
    o.on_event = crec_fn;
    o.user_data = &r;
    o.fetch_data = 1;
    o.watch_data = 1;
    CU_ASSERT_EQUAL(zkc_cache_new(&c, s, "relative", &o), ZKC_EINVAL);
    TU_CHECK(zkc_cache_new(&c, s, path, &o) == 0, out);
    TU_CHECK(zkc_cache_start(c) == 0, out);
    CU_ASSERT_EQUAL(zkc_cache_start(c), ZKC_EBUSY);
    o.user_data = &rn;
    o.fetch_data = o.watch_data = 0;
    TU_CHECK(zkc_cache_new(&cn, s, path, &o) == 0, out);
    TU_CHECK(zkc_cache_start(cn) == 0, out);

    /* The folder appears with one child. */
    TU_CHECK(zkc__mkdirs_sync(sx, path, 5000) == 0, out);
    snprintf(pa, sizeof(pa), "%s/a", path);
    snprintf(pb, sizeof(pb), "%s/b", path);
    TU_CHECK(zoo_create(raw(sx), pa, "1", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    at = crec_wait(&r, 0, ZKC_CACHE_ADDED, "a");
    TU_CHECK(at >= 0, out);
    CU_ASSERT_STRING_EQUAL(r.ev[at].data, "1");
    CU_ASSERT(r.ev[at].has_stat);
    TU_CHECK(crec_wait(&r, at, ZKC_CACHE_CHANGED, NULL) > at, out);
    /* An update is told with the new data, once. */
    TU_CHECK(zoo_set(raw(sx), pa, "2", 1, -1) == ZOK, out);
    at = crec_wait(&r, at, ZKC_CACHE_UPDATED, "a");
    TU_CHECK(at >= 0, out);
    CU_ASSERT_STRING_EQUAL(r.ev[at].data, "2");
    TU_CHECK(zoo_create(raw(sx), pb, "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    TU_CHECK(crec_wait(&r, at, ZKC_CACHE_ADDED, "b") > at, out);
    TU_CHECK(zoo_delete(raw(sx), pa, -1) == ZOK, out);
    at = crec_wait(&r, at, ZKC_CACHE_REMOVED, "a");
    TU_CHECK(at >= 0, out);
    CU_ASSERT_STRING_EQUAL(r.ev[at].data, "2"); /* as last seen */
    TU_CHECK(crec_wait(&r, at, ZKC_CACHE_CHANGED, NULL) > at, out);
    TU_CHECK(zkc_cache_view_get(c, &v) == 0, out);
    CU_ASSERT_EQUAL(zkc_cache_view_count(v), 1);
    CU_ASSERT_STRING_EQUAL(zkc_cache_view_name(v, 0), "b");
    CU_ASSERT_STRING_EQUAL(zkc_cache_view_data(v, 0, &i), "x");
    CU_ASSERT_EQUAL(i, 1);
    CU_ASSERT_PTR_NOT_NULL(zkc_cache_view_stat(v, 0));
    CU_ASSERT_PTR_NULL(zkc_cache_view_name(v, 1));
    zkc_cache_view_free(v);
    pthread_mutex_lock(&r.mu);
    for (i = 0, at = 0; i < r.n; i++)
        at += r.ev[i].type == ZKC_CACHE_UPDATED;
    pthread_mutex_unlock(&r.mu);
    CU_ASSERT_EQUAL(at, 1);

    /* A child deleted and made again under the same name at once: the
     * cache must not take the new node for the old one. */
    pthread_mutex_lock(&r.mu);
    at = r.n;
    pthread_mutex_unlock(&r.mu);
    TU_CHECK(zoo_delete(raw(sx), pb, -1) == ZOK, out);
    TU_CHECK(zoo_create(raw(sx), pb, "y", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    {
        struct timespec ts;
        int ok = 0;
        zkc__deadline(&ts, 10000);
        pthread_mutex_lock(&r.mu);
        while (!(ok = r.last && zkc_cache_view_count(r.last) == 1 &&
                      strcmp(zkc_cache_view_data(r.last, 0, NULL), "y") == 0) &&
               pthread_cond_timedwait(&r.cond, &r.mu, &ts) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&r.mu);
        CU_ASSERT(ok);
    }
    CU_ASSERT(crec_wait(&r, at, ZKC_CACHE_REMOVED, "b") >= at);
    CU_ASSERT(crec_wait(&r, at, ZKC_CACHE_ADDED, "b") >= at);

    /* The names-only cache: the same children, no data, no stat. */
    TU_CHECK(crec_wait(&rn, 0, ZKC_CACHE_REMOVED, "a") >= 0, out);
    TU_CHECK(crec_wait(&rn, 0, ZKC_CACHE_ADDED, "b") >= 0, out);
    TU_CHECK(zkc_cache_view_get(cn, &v) == 0, out);
    CU_ASSERT_EQUAL(zkc_cache_view_count(v), 1);
    CU_ASSERT_PTR_NULL(zkc_cache_view_data(v, 0, NULL));
    CU_ASSERT_PTR_NULL(zkc_cache_view_stat(v, 0));
    zkc_cache_view_free(v);
    pthread_mutex_lock(&rn.mu);
    for (i = 0, at = 0; i < rn.n; i++)
        at += rn.ev[i].type == ZKC_CACHE_UPDATED || rn.ev[i].has_stat;
    pthread_mutex_unlock(&rn.mu);
    CU_ASSERT_EQUAL(at, 0);
out:
    zkc_cache_free(c);
    zkc_cache_free(cn);
    zkc_session_close(sx);
    zkc_session_close(s);
    zkc_cache_view_free(r.last);
    zkc_cache_view_free(rn.last);
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&rn.cond);
    pthread_mutex_destroy(&rn.mu);
}

/* Freeing a cache (or group) takes its per-request watches out of the
 * client: the nodes it watched then change, and no watcher runs into freed
 * memory (under ASan a use after free would abort here). The session's
 * own events keep flowing: a read on it afterwards works. */
static void test_cache_free_then_changes(void)
{
    const char *path = "/zkcoord/cachefree/folder";
    zkc_session *s = NULL, *sx = NULL;
    zkc_cache *c = NULL;
    zkc_group *g = NULL;
    zkc_cache_opts o;
    struct crec r;
    char p[128], *data = NULL;
    int i, len = 0;

    TU_CHECK(crec_setup(&r, &s, &sx, path) == 0, out);
    for (i = 0; i < 20; i++) {
        snprintf(p, sizeof(p), "%s/member_n%02d_0000000000", path, i);
        TU_CHECK(zoo_create(raw(sx), p, "{}", 2, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    }
    zkc_cache_opts_init(&o);
    o.on_event = crec_fn;
    o.user_data = &r;
    o.watch_data = 1;
    TU_CHECK(zkc_cache_new(&c, s, path, &o) == 0, out);
    TU_CHECK(zkc_cache_start(c) == 0, out);
    TU_CHECK(new_group(&g, s, path, NULL) == 0, out);
    TU_CHECK(crec_wait(&r, 0, ZKC_CACHE_CHANGED, NULL) >= 0, out);
    {
        int twenty = 20;
        zkc_group_view *v = NULL;
        long long end = tu_now_ms() + 10000;
        while (tu_now_ms() < end) {
            zkc_group_view_get(g, &v);
            if (count_is(v, &twenty))
                break;
            zkc_group_view_free(v);
            v = NULL;
            poll(NULL, 0, 10);
        }
        TU_CHECK(v != NULL, out);
        zkc_group_view_free(v);
    }
    zkc_cache_free(c);
    c = NULL;
    zkc_group_free(g);
    g = NULL;
    /* Every watched node fires now: the folder's child watch and twenty
     * data watches, on a session whose cache and group are gone. */
    for (i = 0; i < 20; i++) {
        snprintf(p, sizeof(p), "%s/member_n%02d_0000000000", path, i);
        TU_CHECK(zoo_set(raw(sx), p, "{\"x\":1}", 7, -1) == ZOK, out);
    }
    snprintf(p, sizeof(p), "%s/member_late_0000000000", path);
    TU_CHECK(zoo_create(raw(sx), p, "{}", 2, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    /* One round trip on the session: its notifications came before. */
    CU_ASSERT_EQUAL(zkc_get(s, p, 5000, &data, &len, NULL), 0);
    CU_ASSERT_EQUAL(len, 2);
    free(data);
out:
    zkc_cache_free(c);
    zkc_group_free(g);
    zkc_session_close(sx);
    zkc_session_close(s);
    zkc_cache_view_free(r.last);
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.mu);
}

/* Fresh reads after a new session (issue 9): a new ZooKeeper session has
 * no last-seen zxid and may be served by a follower behind what the old
 * session saw, so the cache's first folder read of a new session goes
 * right behind a sync of the folder. Exactly one sync per new session, and
 * none per change (the counter counts syncs sent by every cache of the
 * process; only this test's cache exists while it runs). */
static void test_cache_sync_per_new_session(void)
{
    const char *path = "/zkcoord/cachesync/folder";
    zkc_session *s = NULL, *sx = NULL;
    zkc_cache *c = NULL;
    zkc_cache_opts o;
    struct crec r;
    char p[128];
    unsigned long base;
    int i, at = 0;

    TU_CHECK(crec_setup(&r, &s, &sx, path) == 0, out);
    snprintf(p, sizeof(p), "%s/a", path);
    TU_CHECK(zoo_create(raw(sx), p, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    zkc_cache_opts_init(&o);
    o.on_event = crec_fn;
    o.user_data = &r;
    base = zkc__cache_syncs();
    TU_CHECK(zkc_cache_new(&c, s, path, &o) == 0, out);
    TU_CHECK(zkc_cache_start(c) == 0, out);
    TU_CHECK((at = crec_wait(&r, 0, ZKC_CACHE_ADDED, "a")) >= 0, out);
    CU_ASSERT_EQUAL(zkc__cache_syncs(), base); /* the first read: nothing seen before */
    for (i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        snprintf(p, sizeof(p), "%s/%s", path, name);
        TU_CHECK(zoo_create(raw(sx), p, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
        TU_CHECK((at = crec_wait(&r, at, ZKC_CACHE_ADDED, name)) >= 0, out);
    }
    CU_ASSERT_EQUAL(zkc__cache_syncs(), base); /* none per change */
    TU_CHECK(tu_expire(s) == 0, out);
    /* Seen only through a listing of the new session (the old watch died). */
    snprintf(p, sizeof(p), "%s/after", path);
    TU_CHECK(zoo_create(raw(sx), p, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    TU_CHECK((at = crec_wait(&r, at, ZKC_CACHE_ADDED, "after")) >= 0, out);
    CU_ASSERT_EQUAL(zkc__cache_syncs(), base + 1);
    snprintf(p, sizeof(p), "%s/later", path);
    TU_CHECK(zoo_create(raw(sx), p, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    TU_CHECK((at = crec_wait(&r, at, ZKC_CACHE_ADDED, "later")) >= 0, out);
    TU_CHECK(crec_wait(&r, at, ZKC_CACHE_CHANGED, NULL) >= 0, out); /* its batch's view */
    CU_ASSERT_EQUAL(zkc__cache_syncs(), base + 1);                  /* one per new session */
    pthread_mutex_lock(&r.mu);
    CU_ASSERT_EQUAL(zkc_cache_view_count(r.last), 8); /* a, c0..c4, after, later */
    pthread_mutex_unlock(&r.mu);
out:
    zkc_cache_free(c);
    zkc_session_close(sx);
    zkc_session_close(s);
    zkc_cache_view_free(r.last);
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.mu);
}

/* ------------------------------------------------------- slow consumer */

struct slow {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int block;   /* the callback waits while set */
    int blocked; /* it is waiting now */
    int changed; /* CHANGED events seen */
    int events;  /* events of any kind seen */
    zkc_group_view *last;
};

static void slow_fn(zkc_group *g, const zkc_group_event *ev, void *ud)
{
    struct slow *sl = ud;
    struct timespec ts;

    (void)g;
    pthread_mutex_lock(&sl->mu);
    sl->events++;
    if (ev->type == ZKC_GROUP_CHANGED) {
        sl->changed++;
        zkc_group_view_free(sl->last);
        sl->last = zkc_group_view_ref(ev->view);
        zkc__deadline(&ts, 60000);
        while (sl->block) {
            sl->blocked = 1;
            pthread_cond_broadcast(&sl->cond);
            if (pthread_cond_timedwait(&sl->cond, &sl->mu, &ts) == ETIMEDOUT)
                break;
        }
        sl->blocked = 0;
    }
    pthread_cond_broadcast(&sl->cond);
    pthread_mutex_unlock(&sl->mu);
}

struct pipe_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int left;
    int failed;
};

static void pipe_done(struct pipe_wait *pw, int rc)
{
    pthread_mutex_lock(&pw->mu);
    if (rc != ZOK)
        pw->failed++;
    if (--pw->left == 0)
        pthread_cond_broadcast(&pw->cond);
    pthread_mutex_unlock(&pw->mu);
}

static void pipe_created(int rc, const char *value, const void *data)
{
    (void)value;
    pipe_done((struct pipe_wait *)data, rc);
}

static void pipe_void(int rc, const void *data)
{
    pipe_done((struct pipe_wait *)data, rc);
}

static void pipe_stat(int rc, const struct Stat *st, const void *data)
{
    (void)st;
    pipe_done((struct pipe_wait *)data, rc);
}

static int pipe_wait_all(struct pipe_wait *pw, int timeout_ms)
{
    struct timespec ts;
    int ok;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&pw->mu);
    while (pw->left > 0 && pthread_cond_timedwait(&pw->cond, &pw->mu, &ts) != ETIMEDOUT)
        ;
    ok = pw->left == 0 && pw->failed == 0;
    pthread_mutex_unlock(&pw->mu);
    return ok;
}

/* Wait (polling the cache's own counters, with a deadline) until the
 * observer's cache has read everything: nothing in flight, `present`
 * children. */
static int wait_cache_idle(zkc_group *g, int present, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    int p, d, q, b;

    for (;;) {
        zkc__group_counts(g, &p, &d, &q, &b);
        if (p == present && b == 0)
            return 1;
        if (tu_now_ms() > end)
            return 0;
        {
            struct timespec ts = {0, 5 * 1000000};
            nanosleep(&ts, NULL); /* the cache has no event for "idle": poll */
        }
    }
}

#define SLOW_N 1000

/* Issue 9 bug 8, membership side: a consumer whose callback is blocked
 * gets the latest view when it comes back, not a backlog of one batch per
 * change, and memory does not grow per change meanwhile. 2,000 changes
 * (1,000 joins, 995 leaves, 5 updates) while blocked. */
static void test_slow_consumer_coalesced(void)
{
    const char *path = "/zkcoord/slow/members";
    static char made[SLOW_N][128];
    zkc_session *so = NULL, *sx = NULL;
    zkc_group *og = NULL;
    zkc_group_opts o;
    struct slow sl;
    struct pipe_wait pw;
    char p[256];
    size_t mem0, mem1;
    int i, p_, d, q, b, changed_blocked, six = 6;

    memset(&sl, 0, sizeof(sl));
    pthread_mutex_init(&sl.mu, NULL);
    zkc__cond_init(&sl.cond);
    memset(&pw, 0, sizeof(pw));
    pthread_mutex_init(&pw.mu, NULL);
    zkc__cond_init(&pw.cond);
    CU_ASSERT_EQUAL_FATAL(tu_session(&so, NULL, 20000, NULL), 0);
    TU_CHECK(tu_session(&sx, NULL, 20000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(sx, path, 5000) == 0, out);
    zkc_group_opts_init(&o);
    o.on_event = slow_fn;
    o.user_data = &sl;
    TU_CHECK(zkc_group_new(&og, so, path, &o) == 0, out);
    /* The first member's CHANGED blocks the callback (and the dispatcher). */
    sl.block = 1;
    snprintf(p, sizeof(p), "%s/member_first_", path);
    TU_CHECK(zoo_create(raw(sx), p, "{\"zkcoord\":{\"id\":\"first\"}}", 26, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_EPHEMERAL_SEQUENTIAL, NULL, 0) == ZOK,
             out);
    {
        struct timespec ts;
        zkc__deadline(&ts, 10000);
        pthread_mutex_lock(&sl.mu);
        while (!sl.blocked && pthread_cond_timedwait(&sl.cond, &sl.mu, &ts) != ETIMEDOUT)
            ;
        changed_blocked = sl.changed;
        pthread_mutex_unlock(&sl.mu);
    }
    TU_CHECK(sl.blocked, unblock);
    CU_ASSERT_EQUAL(changed_blocked, 1);
    mem0 = mallinfo2().uordblks;

    /* 1,000 joins, pipelined; the observer reads them meanwhile. */
    pw.left = SLOW_N;
    for (i = 0; i < SLOW_N; i++) {
        char data[128];
        snprintf(made[i], sizeof(made[i]), "%s/member_m%04d_0000000000", path, i);
        snprintf(data, sizeof(data), "{\"zkcoord\":{\"id\":\"m%d\"}}", i);
        TU_CHECK(zoo_acreate(raw(sx), made[i], data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE,
                             ZOO_EPHEMERAL, pipe_created, &pw) == ZOK,
                 unblock);
    }
    TU_CHECK(pipe_wait_all(&pw, 30000), unblock);
    TU_CHECK(wait_cache_idle(og, SLOW_N + 1, 30000), unblock);
    /* 995 leaves and 5 updates. */
    pw.left = SLOW_N;
    for (i = 0; i < SLOW_N; i++) {
        if (i < SLOW_N - 5) {
            TU_CHECK(zoo_adelete(raw(sx), made[i], -1, pipe_void, &pw) == ZOK, unblock);
        } else {
            char data[128];
            snprintf(data, sizeof(data), "{\"zkcoord\":{\"id\":\"m%d\"},\"shard\":7}", i);
            TU_CHECK(zoo_aset(raw(sx), made[i], data, (int)strlen(data), -1, pipe_stat, &pw) == ZOK,
                     unblock);
        }
    }
    TU_CHECK(pipe_wait_all(&pw, 30000), unblock);
    TU_CHECK(wait_cache_idle(og, 6, 30000), unblock);
    /* Still blocked: the backlog is what the folder holds now, not what
     * happened: six children at most waiting, one delivery queued. */
    zkc__group_counts(og, &p_, &d, &q, &b);
    CU_ASSERT(d <= 6);
    CU_ASSERT(q <= 1);
    mem1 = mallinfo2().uordblks;
    printf("\n    blocked consumer: %d waiting, %d queued, heap %+lld bytes after 2,000 changes\n",
           d, q, (long long)mem1 - (long long)mem0);
    /* A backlog of one batch per change would hold ~1,000 views of up to
     * 1,000 members; main as of da2d9f6 grew by ~750 kB here. */
    CU_ASSERT((long long)mem1 - (long long)mem0 < 256 * 1024);
unblock:
    pthread_mutex_lock(&sl.mu);
    sl.block = 0;
    pthread_cond_broadcast(&sl.cond);
    pthread_mutex_unlock(&sl.mu);
    {
        struct timespec ts;
        int ok;
        zkc__deadline(&ts, 20000);
        pthread_mutex_lock(&sl.mu);
        while (!(ok = sl.last && count_is(sl.last, &six)) &&
               pthread_cond_timedwait(&sl.cond, &sl.mu, &ts) != ETIMEDOUT)
            ;
        CU_ASSERT(ok);
        /* The blocked one, then the coalesced rest: a bounded few. */
        CU_ASSERT(sl.changed >= 2 && sl.changed <= 3);
        CU_ASSERT(sl.events <= 6 + 1 + 2 * 3);
        if (ok) {
            CU_ASSERT_PTR_NOT_NULL(zkc_group_view_find(sl.last, "first"));
            for (i = SLOW_N - 5; i < SLOW_N; i++) {
                char id[16];
                snprintf(id, sizeof(id), "m%d", i);
                CU_ASSERT_PTR_NOT_NULL(zkc_group_view_find(sl.last, id));
                CU_ASSERT_EQUAL(zkc_member_shard(zkc_group_view_find(sl.last, id)), 7);
            }
        }
        printf("    after unblocking: %d CHANGED, %d events in all\n", sl.changed, sl.events);
        pthread_mutex_unlock(&sl.mu);
    }
out:
    zkc_group_free(og);
    zkc_session_close(sx);
    zkc_session_close(so);
    zkc_group_view_free(sl.last);
    pthread_cond_destroy(&sl.cond);
    pthread_mutex_destroy(&sl.mu);
    pthread_cond_destroy(&pw.cond);
    pthread_mutex_destroy(&pw.mu);
}

/* Issue 9 bug 4, group side: after a new session the group re-arms its
 * data watches. A member that went away meanwhile must not be left with a
 * watch on its path (an exists watch on a path that never returns is
 * re-sent on every reconnect and kept by the server for the session's
 * life). Counted with the server's zk_watch_count. */
static void test_no_watch_left_after_lost(void)
{
    const char *path = "/zkcoord/probe/members";
    tu_proxy *px = NULL;
    zkc_session *so = NULL, *sm = NULL;
    zkc_group *og = NULL, *gm = NULL;
    zkc_member_info info = info_of("fleeting", 5);
    tu_rec rec;
    grec ro;
    int zero = 0, susp;
    long long watches;

    tu_rec_init(&rec);
    grec_init(&ro);
    CU_ASSERT_EQUAL_FATAL(tu_proxy_start(&px, zkh_connect_string(tu_zk)), 0);
    TU_CHECK(proxied_session(&so, px, 2000, &rec) == 0, out);
    TU_CHECK(tu_session(&sm, NULL, 10000, NULL) == 0, out);
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    TU_CHECK(new_group(&gm, sm, path, NULL) == 0, out);
    TU_CHECK(zkc_group_join(gm, &info) == 0, out);
    TU_CHECK(zkc_group_wait_joined(gm, 10000) == 0, out);
    TU_CHECK(wait_view(&ro, og, has_id, "fleeting", 10000), out);
    /* The observer is cut off; the member leaves; the observer's session
     * expires on the server while it is away. */
    tu_proxy_block(px, 1);
    susp = tu_rec_wait(&rec, 1, ZKC_CONN_SUSPENDED, 10000);
    TU_CHECK(susp > 0, unblock);
    zkc_group_free(gm);
    gm = NULL;
    zkc_session_close(sm);
    sm = NULL;
    /* No heartbeat for a session timeout: LOST (the local timer; the
     * server expires it too). */
    TU_CHECK(tu_rec_wait(&rec, susp, ZKC_CONN_LOST, 20000) >= 0, unblock);
unblock:
    tu_proxy_block(px, 0);
    /* Back: a new session whose group reads the folder again. */
    TU_CHECK(tu_rec_wait(&rec, susp, ZKC_CONN_LOST, 1000) >= 0, out);
    TU_CHECK(tu_rec_wait(&rec, susp, ZKC_CONN_CONNECTED, 20000) >= 0, out);
    TU_CHECK(zkc_session_generation(so) >= 2, out);
    TU_CHECK(wait_view(&ro, og, count_is, &zero, 15000), out);
    TU_CHECK(wait_cache_idle(og, 0, 10000), out);
    /* One watch is left on the server: the observer's child watch on the
     * folder. Not one on the departed member's path. */
    watches = zkh_mntr(tu_zk, 0, "zk_watch_count");
    printf("\n    server watches after the new session: %lld\n", watches);
    CU_ASSERT_EQUAL(watches, 1);
out:
    zkc_group_free(gm);
    zkc_group_free(og);
    zkc_session_close(sm);
    zkc_session_close(so);
    tu_proxy_stop(px);
    tu_rec_destroy(&rec);
    grec_destroy(&ro);
}

static void test_free_from_callback(void)
{
    zkc_session *s = NULL;
    zkc_group_opts o;
    zkc_member_info info = info_of("ephemeral", 1);
    struct self_free sf;
    struct timespec ts;

    memset(&sf, 0, sizeof(sf));
    pthread_mutex_init(&sf.mu, NULL);
    zkc__cond_init(&sf.cond);
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 4000, NULL), 0);
    zkc_group_opts_init(&o);
    o.on_event = free_from_cb;
    o.user_data = &sf;
    TU_CHECK(zkc_group_new(&sf.g, s, "/zkcoord/selffree/members", &o) == 0, out);
    TU_CHECK(zkc_group_join(sf.g, &info) == 0, out);
    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&sf.mu);
    while (!sf.freed && pthread_cond_timedwait(&sf.cond, &sf.mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&sf.mu);
    CU_ASSERT_EQUAL(sf.freed, 1);
    if (!sf.freed)
        zkc_group_free(sf.g);
out:
    zkc_session_close(s);
    pthread_cond_destroy(&sf.cond);
    pthread_mutex_destroy(&sf.mu);
}

/* ------------------------------------ state changes during zkc_group_new */

#define FLAP_ROUNDS    120                            /* two states each: tu_rec keeps 256 */
#define FLAP_PER_ROUND 12                             /* made in one round, at most */
#define FLAP_MAX       (FLAP_ROUNDS * FLAP_PER_ROUND) /* groups and caches made in all */

struct flap {
    zkc_session *s;
    tu_proxy *px;
    tu_rec *rec;
    const char *path;
    zkc_group *g[FLAP_MAX];
    zkc_cache *c[FLAP_MAX];
    int ng, nc;
    int failed;   /* a new or start that did not return 0 */
    int unmet;    /* rounds whose RECONNECTED did not come */
    int made_max; /* objects made in one round, at most */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
};

/* Make groups and caches (which add their session hooks, then start) as
 * fast as possible while the connection is cut and comes back: the
 * manager thread announces SUSPENDED and RECONNECTED, running every hook,
 * while new objects add theirs. */
static void *flap_main(void *arg)
{
    struct flap *f = arg;
    int round;

    for (round = 0; round < FLAP_ROUNDS; round++) {
        int from = tu_rec_count(f->rec), made = 0;

        tu_proxy_cut(f->px);
        while (made < FLAP_PER_ROUND && tu_rec_wait(f->rec, from, ZKC_CONN_RECONNECTED, 0) < 0) {
            if ((f->ng + f->nc) % 2 == 0) {
                if (zkc_group_new(&f->g[f->ng], f->s, f->path, NULL) == 0)
                    f->ng++;
                else
                    f->failed++;
            } else {
                if (zkc_cache_new(&f->c[f->nc], f->s, f->path, NULL) == 0) {
                    if (zkc_cache_start(f->c[f->nc]) != 0)
                        f->failed++;
                    f->nc++;
                } else {
                    f->failed++;
                }
            }
            made++;
        }
        if (made > f->made_max)
            f->made_max = made;
        if (tu_rec_wait(f->rec, from, ZKC_CONN_RECONNECTED, 20000) < 0)
            f->unmet++;
    }
    pthread_mutex_lock(&f->mu);
    f->done = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* Lock order (cachefix, found by ThreadSanitizer): zkc_group_new and
 * zkc_cache_start started the cache engine under the object's mutex, and
 * starting adds a session hook under the hook list lock, which the manager
 * thread holds while the hooks take that mutex. A state announced while an
 * object is being made deadlocked both threads. Here states are announced
 * while objects are made; TSan reports the inversion at its first
 * occurrence, and a real deadlock is caught by the deadline. */
static void test_new_during_state_changes(void)
{
    const char *path = "/zkcoord/flap/members";
    zkc_member_info info = info_of("flapper", 1);
    zkc_session *s = NULL;
    tu_proxy *px = NULL;
    tu_rec rec;
    struct flap *f = calloc(1, sizeof(*f));
    struct timespec ts;
    pthread_t t;
    int i, done;

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    tu_rec_init(&rec);
    pthread_mutex_init(&f->mu, NULL);
    zkc__cond_init(&f->cond);
    CU_ASSERT_EQUAL_FATAL(tu_proxy_start(&px, zkh_connect_string(tu_zk)), 0);
    TU_CHECK(proxied_session(&s, px, 8000, &rec) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, path, 5000) == 0, out);
    f->s = s;
    f->px = px;
    f->rec = &rec;
    f->path = path;
    TU_CHECK(pthread_create(&t, NULL, flap_main, f) == 0, out);
    zkc__deadline(&ts, 180000);
    pthread_mutex_lock(&f->mu);
    while (!f->done && pthread_cond_timedwait(&f->cond, &f->mu, &ts) == 0)
        ;
    done = f->done;
    pthread_mutex_unlock(&f->mu);
    if (!done) {
        /* Two threads are stuck for good: nothing can be cleaned up. */
        fprintf(stderr, "\n    DEADLOCK: zkc_group_new/zkc_cache_start vs the session's "
                        "state hooks\n");
        abort();
    }
    pthread_join(t, NULL);
    printf("\n    %d groups and %d caches made over %d cuts (at most %d in one round)\n", f->ng,
           f->nc, FLAP_ROUNDS, f->made_max);
    CU_ASSERT_EQUAL(f->failed, 0);
    CU_ASSERT_EQUAL(f->unmet, 0);
    CU_ASSERT(f->ng >= FLAP_ROUNDS / 2);
    /* What was made meanwhile works: the last group joins and is seen. */
    TU_CHECK(f->ng > 0, out);
    TU_CHECK(zkc_group_join(f->g[f->ng - 1], &info) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_wait_joined(f->g[f->ng - 1], 20000), 0);
out:
    for (i = 0; i < f->ng; i++)
        zkc_group_free(f->g[i]);
    for (i = 0; i < f->nc; i++)
        zkc_cache_free(f->c[i]);
    zkc_session_close(s);
    tu_proxy_stop(px);
    tu_rec_destroy(&rec);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* ------------------------------------------------ views: patch, lifetime */

#define VP_FMT                                                                                     \
    "{\"serviceEndpoint\":{\"host\":\"127.0.0.1\",\"port\":%d},\"additionalEndpoints\":{},"        \
    "\"status\":\"ALIVE\",\"zkcoord\":{\"id\":\"%s\",\"version\":1}}"

/* A member node written by a raw client: its full path in `made`. */
static int vp_create(zhandle_t *zh, const char *path, int i, const char *id, int port, char *made,
                     int len)
{
    char p[256], data[256];

    snprintf(p, sizeof(p), "%s/member_%08x-0000-4000-8000-000000000000_", path, i);
    snprintf(data, sizeof(data), VP_FMT, port, id);
    return zoo_create(zh, p, data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_EPHEMERAL_SEQUENTIAL, made, len);
}

/* The group's view equals a fresh one-shot read, member by member. */
static int same_as_read(zkc_session *s, const char *path, const zkc_group_view *v)
{
    zkc_group_view *f = NULL;
    int i, ok;

    if (zkc_group_read(s, path, 0, &f, 5000) != 0)
        return 0;
    ok = zkc_group_view_count(f) == zkc_group_view_count(v) &&
         zkc_group_view_duplicates(f) == zkc_group_view_duplicates(v);
    for (i = 0; ok && i < zkc_group_view_count(f); i++) {
        const zkc_member *a = zkc_group_view_at(f, i), *b = zkc_group_view_at(v, i);
        ok = strcmp(zkc_member_node(a), zkc_member_node(b)) == 0 &&
             zkc_member_port(a) == zkc_member_port(b) &&
             strcmp(zkc_member_id(a), zkc_member_id(b)) == 0 &&
             zkc_member_flags(a) == zkc_member_flags(b);
        if (!ok)
            printf("\n    view differs at %d: %s:%d %#x, read %s:%d %#x\n", i, zkc_member_node(b),
                   zkc_member_port(b), zkc_member_flags(b), zkc_member_node(a), zkc_member_port(a),
                   zkc_member_flags(a));
    }
    zkc_group_view_free(f);
    return ok;
}

/* A view shares its members with the views before and after it (no
 * reference per member per view): what each view shows stays right as
 * members join, change, leave and duplicate ids come and go, and a view
 * kept by the consumer outlives every change and the group itself (ASan
 * checks the reads below). */
static void test_views_patched_and_kept(void)
{
    const char *path = "/zkcoord/viewpatch/members";
    zkc_session *so = NULL, *sw = NULL;
    zkc_group *og = NULL;
    zkc_group_view *v0 = NULL, *v1 = NULL, *v = NULL;
    char made[8][256], data[256], ids[8][8];
    struct id_port up = {"m2", 9102};
    zhandle_t *zh;
    int i, want;
    grec ro;

    grec_init(&ro);
    CU_ASSERT_EQUAL_FATAL(tu_session(&so, NULL, 4000, NULL), 0);
    TU_CHECK(tu_session(&sw, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(sw, path, 5000) == 0, out);
    zh = raw(sw);
    TU_CHECK(zh != NULL, out);
    for (i = 0; i < 6; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%d", i);
        TU_CHECK(vp_create(zh, path, i, ids[i], 9000 + i, made[i], sizeof(made[i])) == ZOK, out);
    }
    TU_CHECK(new_group(&og, so, path, &ro) == 0, out);
    want = 6;
    TU_CHECK(wait_view(&ro, og, count_is, &want, 10000), out);
    TU_CHECK(zkc_group_view_get(og, &v0) == 0, out);
    CU_ASSERT(same_as_read(so, path, v0));

    /* Leaves, an update and a join in the usual (patched) way. */
    TU_CHECK(zoo_delete(zh, made[1], -1) == ZOK, out);
    TU_CHECK(zoo_delete(zh, made[3], -1) == ZOK, out);
    snprintf(data, sizeof(data), VP_FMT, 9102, "m2");
    TU_CHECK(zoo_set(zh, made[2], data, (int)strlen(data), -1) == ZOK, out);
    TU_CHECK(vp_create(zh, path, 6, "m6", 9006, made[6], sizeof(made[6])) == ZOK, out);
    want = 5;
    TU_CHECK(wait_view(&ro, og, count_is, &want, 10000), out);
    TU_CHECK(wait_view(&ro, og, id_has_port, &up, 10000), out);
    TU_CHECK(zkc_group_view_get(og, &v1) == 0, out);
    CU_ASSERT(same_as_read(so, path, v1));

    /* A duplicate id appears (every member with it is flagged), then goes. */
    TU_CHECK(vp_create(zh, path, 7, "m0", 9007, made[7], sizeof(made[7])) == ZOK, out);
    want = 6;
    TU_CHECK(wait_view(&ro, og, count_is, &want, 10000), out);
    TU_CHECK(zkc_group_view_get(og, &v) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_view_duplicates(v), 2);
    CU_ASSERT(same_as_read(so, path, v));
    zkc_group_view_free(v);
    v = NULL;
    TU_CHECK(zoo_delete(zh, made[7], -1) == ZOK, out);
    TU_CHECK(zoo_delete(zh, made[0], -1) == ZOK, out);
    want = 4;
    TU_CHECK(wait_view(&ro, og, count_is, &want, 10000), out);
    TU_CHECK(zkc_group_view_get(og, &v) == 0, out);
    CU_ASSERT_EQUAL(zkc_group_view_duplicates(v), 0);
    CU_ASSERT(same_as_read(so, path, v));

    /* The group goes; the views kept still show what they showed. */
    zkc_group_free(og);
    og = NULL;
    grec_destroy(&ro);
    grec_init(&ro);
    TU_CHECK(zkc_group_view_count(v0) == 6, out);
    for (i = 0; i < 6; i++) {
        const zkc_member *m = zkc_group_view_at(v0, i);
        CU_ASSERT_STRING_EQUAL(zkc_member_id(m), ids[i]);
        CU_ASSERT_EQUAL(zkc_member_port(m), 9000 + i);
        CU_ASSERT_EQUAL(zkc_member_flags(m), 0);
    }
    TU_CHECK(zkc_group_view_count(v1) == 5, out);
    CU_ASSERT_STRING_EQUAL(zkc_member_id(zkc_group_view_at(v1, 1)), "m2");
    CU_ASSERT_EQUAL(zkc_member_port(zkc_group_view_at(v1, 1)), 9102);
    CU_ASSERT_STRING_EQUAL(zkc_member_id(zkc_group_view_at(v1, 4)), "m6");
    TU_CHECK(zkc_group_view_count(v) == 4, out);
    CU_ASSERT_STRING_EQUAL(zkc_member_id(zkc_group_view_at(v, 0)), "m2");
    CU_ASSERT_STRING_EQUAL(zkc_member_id(zkc_group_view_at(v, 3)), "m6");
out:
    zkc_group_free(og);
    zkc_group_view_free(v);
    zkc_group_view_free(v1);
    zkc_group_view_free(v0);
    zkc_session_close(sw);
    zkc_session_close(so);
    grec_destroy(&ro);
}

/* The last view delivered to `r` has `n` children and child `name` (when
 * not NULL) has data `data`. */
static int crec_view_is(struct crec *r, int n, const char *name, const char *data, int timeout_ms)
{
    struct timespec ts;
    int ok = 0, i;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        ok = r->last && zkc_cache_view_count(r->last) == n;
        for (i = 0; ok && name && i < n; i++)
            if (strcmp(zkc_cache_view_name(r->last, i), name) == 0)
                break;
        if (ok && name)
            ok = i < n && strcmp(zkc_cache_view_data(r->last, i, NULL), data) == 0;
        if (ok || pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* The public cache's views share their children as the group's do: each
 * view stays right as children come, change and go, and a view kept by
 * the user outlives every change and the cache (ASan checks the reads). */
static void test_cache_views_patched_and_kept(void)
{
    const char *path = "/zkcoord/cacheview/folder";
    const char *names = "abcdef";
    zkc_session *s = NULL, *sx = NULL;
    zkc_cache *c = NULL;
    zkc_cache_opts o;
    zkc_cache_view *v0 = NULL, *v1 = NULL;
    char p[128], d[16], **kids = NULL, *data = NULL;
    int i, nk = 0, len;
    struct crec r;

    TU_CHECK(crec_setup(&r, &s, &sx, path) == 0, out);
    for (i = 0; names[i]; i++) {
        snprintf(p, sizeof(p), "%s/%c", path, names[i]);
        snprintf(d, sizeof(d), "%d", i);
        TU_CHECK(zoo_create(raw(sx), p, d, 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    }
    zkc_cache_opts_init(&o);
    o.on_event = crec_fn;
    o.user_data = &r;
    o.fetch_data = o.watch_data = 1;
    TU_CHECK(zkc_cache_new(&c, s, path, &o) == 0, out);
    TU_CHECK(zkc_cache_start(c) == 0, out);
    TU_CHECK(crec_view_is(&r, 6, NULL, NULL, 10000), out);
    TU_CHECK(zkc_cache_view_get(c, &v0) == 0, out);

    snprintf(p, sizeof(p), "%s/b", path);
    TU_CHECK(zoo_delete(raw(sx), p, -1) == ZOK, out);
    snprintf(p, sizeof(p), "%s/d", path);
    TU_CHECK(zoo_delete(raw(sx), p, -1) == ZOK, out);
    snprintf(p, sizeof(p), "%s/c", path);
    TU_CHECK(zoo_set(raw(sx), p, "C", 1, -1) == ZOK, out);
    snprintf(p, sizeof(p), "%s/g", path);
    TU_CHECK(zoo_create(raw(sx), p, "6", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK, out);
    TU_CHECK(crec_view_is(&r, 5, "c", "C", 10000) && crec_view_is(&r, 5, "g", "6", 10000), out);
    TU_CHECK(zkc_cache_view_get(c, &v1) == 0, out);
    /* The same as a fresh read, child by child. */
    TU_CHECK(zkc_get_children(s, path, 5000, &kids, &nk, NULL) == 0, out);
    TU_CHECK(nk == zkc_cache_view_count(v1), out);
    for (i = 0; i < nk; i++) {
        snprintf(p, sizeof(p), "%s/%s", path, kids[i]);
        TU_CHECK(zkc_get(s, p, 5000, &data, &len, NULL) == 0, out);
        CU_ASSERT_STRING_EQUAL(zkc_cache_view_name(v1, i), kids[i]);
        CU_ASSERT_STRING_EQUAL(zkc_cache_view_data(v1, i, NULL), data);
        free(data);
        data = NULL;
    }

    /* The cache goes; the views kept still show what they showed. */
    zkc_cache_free(c);
    c = NULL;
    TU_CHECK(zkc_cache_view_count(v0) == 6, out);
    for (i = 0; names[i]; i++) {
        snprintf(d, sizeof(d), "%d", i);
        CU_ASSERT_EQUAL(zkc_cache_view_name(v0, i)[0], names[i]);
        CU_ASSERT_STRING_EQUAL(zkc_cache_view_data(v0, i, NULL), d);
    }
    TU_CHECK(zkc_cache_view_count(v1) == 5, out);
    CU_ASSERT_STRING_EQUAL(zkc_cache_view_name(v1, 1), "c");
    CU_ASSERT_STRING_EQUAL(zkc_cache_view_data(v1, 1, NULL), "C");
    CU_ASSERT_STRING_EQUAL(zkc_cache_view_name(v1, 4), "g");
out:
    zkc_strings_free(kids, nk);
    zkc_cache_free(c);
    zkc_cache_view_free(v1);
    zkc_cache_view_free(v0);
    zkc_cache_view_free(r.last);
    zkc_session_close(sx);
    zkc_session_close(s);
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.mu);
}

int register_group_suite(void);

static const struct {
    const char *name;
    CU_TestFunc fn;
} group_tests[] = {
    {"join, update, leave seen by an observer", test_join_update_leave},
    {"member vanishing between getChildren and get", test_vanish_between_list_and_get},
    {"malformed peer payloads", test_malformed_peers},
    {"duplicate ids detected", test_duplicate_ids},
    {"rejoin after session expiry", test_rejoin_after_expiry},
    {"deleted node is re-created", test_recreate_deleted_node},
    {"server restart: verified, kept", test_survives_server_restart},
    {"lost create reply: adopted, no orphan", test_lost_create_reply},
    {"deleted while disconnected: re-created after RECONNECTED", test_deleted_while_disconnected},
    {"membership under churn", test_churn},
    {"read cost of one join", test_read_cost},
    {"one-shot read", test_read_oneshot},
    {"free from its own callback", test_free_from_callback},
    {"free from its own callback, a delivery queued behind", test_free_from_callback_queued},
    {"public cache freed from its own callback", test_cache_free_from_callback},
    {"slow consumer: coalesced, bounded", test_slow_consumer_coalesced},
    {"publishing not starved under sustained churn", test_publish_under_churn},
    {"public reads: zkc_get, zkc_get_children", test_read_api},
    {"public children cache: zkc_cache", test_cache_api},
    {"freed cache: its watches fire into nothing", test_cache_free_then_changes},
    {"cache: one sync per new session, none per change", test_cache_sync_per_new_session},
    {"no watch left on a member gone before a new session", test_no_watch_left_after_lost},
    {"state changes while groups and caches are made: no deadlock", test_new_during_state_changes},
    {"views: patched per change, kept past changes and the group", test_views_patched_and_kept},
    {"public cache views: patched, kept past changes and the cache",
     test_cache_views_patched_and_kept},
};

/* ZKC_GROUP_ONLY=substring runs the matching tests only (for debugging). */
int register_group_suite(void)
{
    CU_pSuite s = CU_add_suite("group", NULL, NULL);
    const char *only = getenv("ZKC_GROUP_ONLY");
    size_t i;

    if (!s)
        return -1;
    for (i = 0; i < sizeof(group_tests) / sizeof(group_tests[0]); i++)
        if ((!only || strstr(group_tests[i].name, only)) &&
            !CU_add_test(s, group_tests[i].name, group_tests[i].fn))
            return -1;
    return 0;
}
