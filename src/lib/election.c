/*
 * Leader election: Curator's LeaderLatch layout and ordering, driven as an
 * asynchronous state machine (see include/zkcoord/election.h).
 *
 * Threads: ZooKeeper completions and watch events (completion thread), the
 * state hook (session manager thread) and the public calls (any thread)
 * all take `mu` and never block under it. User callbacks are queued with
 * zkc__dispatch() while `mu` is held, so they are delivered in the order the
 * state changed.
 *
 * Staleness: `epoch` grows whenever the participant abandons its node or its
 * view (resign, LOST, node gone, close). Every request carries the epoch it
 * was sent in and its completion is dropped when the epoch moved on. This is
 * what Curator lacked when two RECONNECTED handlers interleaved and a client
 * kept leading with a deleted node (CURATOR-620), and when a stale path was
 * re-adopted after expiry (CURATOR-696): here only completions of the
 * current epoch may elect, and only after the ephemeralOwner check.
 *
 * Locks (outer to inner): wmu -> mu; wmu -> the session's sub_mu; sub_mu ->
 * mu (watch events); hk_mu -> wmu (hook); mu -> zh_mu. Nothing takes wmu
 * while holding mu, and zkc__watch/zkc__unwatch are only called under wmu.
 */
#include "internal.h"
#include "naming.h"
#include "pcreate.h"
#include "zkcoord/election.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LATCH_BODY "latch-" /* Curator's LeaderLatch LOCK_NAME */

struct zkc_election {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs; /* owner + one per request, queued event and one-shot in flight */
    zkc_session *s;
    char *path; /* the election's parent node */
    char *id;
    int id_len;
    int observer;
    zkc_election_suspend_policy policy;
    zkc_election_fn fn;
    void *user_data;

    int closed;
    int waiters; /* threads in zkc_election_await_leadership() */
    int want;    /* campaigning */
    unsigned epoch;
    int create_pending;
    int pipe_pending; /* the getChildren sent right behind the create */
    int retry_pending;
    unsigned create_gen; /* session generation the pending create belongs to */
    char *node;          /* full path of our node, NULL when none */
    const char *name;    /* its last segment */
    unsigned node_gen;
    int64_t czxid;
    int leader;
    int suspended;
    char *target;     /* path whose watch events wake us: predecessor or own node */
    char *last_head;  /* node name of the leader last reported ("" = nobody) */
    char *asked_head; /* node name whose data is being read for LEADER_CHANGED */

    pthread_mutex_t wmu;
    char *watching; /* path subscribed with zkc__watch, under wmu */
};

/* Request context: holds a reference on the election. */
struct req {
    zkc_election *e;
    unsigned epoch;
    unsigned gen; /* creates: the session generation the node belongs to */
    int pipelined;
    char *path;
};

/* Test hook: watch events that matched a participant's target and woke it
 * (the no-herd test counts them). */
static unsigned long wakeups;

unsigned long zkc__election_wakeups(void);
unsigned long zkc__election_wakeups(void)
{
    return __atomic_load_n(&wakeups, __ATOMIC_SEQ_CST);
}

static void start_create(zkc_election *e);
static void set_watch(zkc_election *e);
static void send_list(zkc_election *e, int pipelined);

/* ------------------------------------------------------------ lifetime */

static void destroy(zkc_election *e)
{
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->wmu);
    pthread_cond_destroy(&e->cond);
    free(e->path);
    free(e->id);
    free(e->node);
    free(e->target);
    free(e->last_head);
    free(e->asked_head);
    free(e->watching);
    free(e);
}

static void unref(zkc_election *e)
{
    int n;

    pthread_mutex_lock(&e->mu);
    n = --e->refs;
    pthread_mutex_unlock(&e->mu);
    if (n == 0)
        destroy(e);
}

/* mu held. */
static struct req *req_new(zkc_election *e, const char *path)
{
    struct req *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    if (path && !(r->path = strdup(path))) {
        free(r);
        return NULL;
    }
    r->e = e;
    r->epoch = e->epoch;
    e->refs++;
    return r;
}

/* mu held; the caller holds another reference, so refs stays > 0. */
static void req_drop_locked(struct req *r)
{
    r->e->refs--;
    free(r->path);
    free(r);
}

static void req_free(struct req *r)
{
    zkc_election *e = r->e;

    free(r->path);
    free(r);
    unref(e);
}

static int stale(const struct req *r)
{
    return r->e->closed || r->epoch != r->e->epoch;
}

/* ------------------------------------------------------------- events */

struct note {
    zkc_election *e;
    zkc_election_event ev;
    char *id;
    char *node;
    char *del_path; /* delete after the callback (resign) */
    unsigned del_gen;
};

static void delete_node(zkc_session *s, const char *path, unsigned gen);

static void deliver(void *arg)
{
    struct note *n = arg;
    zkc_election *e = n->e;
    int closed;

    pthread_mutex_lock(&e->mu);
    closed = e->closed;
    pthread_mutex_unlock(&e->mu);
    n->ev.leader_id = n->id;
    n->ev.leader_node = n->node;
    if (!closed && e->fn)
        e->fn(e, &n->ev, e->user_data);
    if (n->del_path)
        delete_node(e->s, n->del_path, n->del_gen);
    free(n->id);
    free(n->node);
    free(n->del_path);
    free(n);
    unref(e);
}

/* Queue an event (mu held). `del_path` (may be NULL) is deleted after the
 * callback has run, or at once if the event cannot be queued. */
static void post(zkc_election *e, zkc_election_event_type type, int64_t token,
                 zkc_election_demote_reason reason, const char *id, int id_len, const char *node,
                 int err, const char *del_path, unsigned del_gen)
{
    struct note *n = calloc(1, sizeof(*n));

    if (!n)
        goto fail;
    n->e = e;
    n->ev.type = type;
    n->ev.token = token;
    n->ev.reason = reason;
    n->ev.err = err;
    n->del_gen = del_gen;
    if (id) {
        n->id = malloc((size_t)id_len + 1);
        if (n->id) {
            memcpy(n->id, id, (size_t)id_len);
            n->id[id_len] = '\0';
        }
    }
    n->node = node ? strdup(node) : NULL;
    n->del_path = del_path ? strdup(del_path) : NULL;
    if ((id && !n->id) || (node && !n->node) || (del_path && !n->del_path))
        goto fail;
    e->refs++;
    if (zkc__dispatch(e->s, deliver, n) != 0) {
        e->refs--;
        goto fail;
    }
    return;
fail:
    if (n) {
        free(n->id);
        free(n->node);
        free(n->del_path);
        free(n);
    }
    zkc__log(e->s, ZKC_LOG_ERROR, "election %s: cannot queue the %s event", e->path,
             zkc_election_event_name(type));
    if (del_path)
        delete_node(e->s, del_path, del_gen);
}

/* mu held: the participant stops leading. */
static void demote(zkc_election *e, zkc_election_demote_reason reason, const char *del_path,
                   unsigned del_gen)
{
    e->leader = 0;
    pthread_cond_broadcast(&e->cond);
    zkc__log(e->s, ZKC_LOG_INFO, "election %s: %s demoted (%s)", e->path, e->id,
             zkc_election_demote_reason_name(reason));
    post(e, ZKC_ELECTION_DEMOTED, e->czxid, reason, NULL, 0, NULL, 0, del_path, del_gen);
}

/* ------------------------------------------------ deleting our own nodes */

/* Lets zkc_election_close() wait for its delete. */
struct delwait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
    int refs;
};

struct del {
    zkc_session *s;
    char *path;
    unsigned gen;
    struct delwait *w;
};

static void delwait_unref(struct delwait *w)
{
    int n;

    pthread_mutex_lock(&w->mu);
    n = --w->refs;
    w->done = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (n == 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
}

static void del_free(struct del *d)
{
    if (d->w)
        delwait_unref(d->w);
    free(d->path);
    free(d);
}

static void del_send(struct del *d);

static void del_retry(void *arg, zkc_conn_state st, unsigned gen)
{
    struct del *d = arg;

    /* After LOST (or on close) the ephemeral node is gone with its session. */
    if (st == ZKC_CONN_NONE || st == ZKC_CONN_LOST || gen != d->gen) {
        del_free(d);
        return;
    }
    del_send(d);
}

static void del_done(int zrc, const void *data)
{
    struct del *d = (struct del *)data;

    if (zrc == ZCONNECTIONLOSS || zrc == ZOPERATIONTIMEOUT) {
        /* A node left behind would hold its place in line and block the
         * election until the session ends: try again on reconnect. */
        if (zkc__when_connected(d->s, del_retry, d) == 0)
            return;
    } else if (zrc != ZOK && zrc != ZNONODE && zrc != ZCLOSING && zrc != ZSESSIONEXPIRED) {
        zkc__log(d->s, ZKC_LOG_WARN, "cannot delete %s: %s", d->path, zerror(zrc));
    }
    del_free(d);
}

static void del_send(struct del *d)
{
    zkc_session *s = d->s;
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(s, &gen);
    int zrc;

    if (!zh) {
        if (zkc__when_connected(s, del_retry, d) != 0)
            del_free(d);
        return;
    }
    if (gen != d->gen) {
        zkc__zh_unlock(s);
        del_free(d);
        return;
    }
    zrc = zoo_adelete(zh, d->path, -1, del_done, d);
    zkc__zh_unlock(s); /* not d->s: the reply may already have freed d */
    if (zrc != ZOK)
        del_free(d);
}

static void delete_node_w(zkc_session *s, const char *path, unsigned gen, struct delwait *w)
{
    struct del *d = calloc(1, sizeof(*d));

    if (!d || !(d->path = strdup(path))) {
        free(d);
        zkc__log(s, ZKC_LOG_ERROR, "out of memory deleting %s", path);
        if (w)
            delwait_unref(w);
        return;
    }
    d->s = s;
    d->gen = gen;
    d->w = w;
    del_send(d);
}

/* Delete one of our nodes in the background (any thread, any lock of ours
 * may be held). */
static void delete_node(zkc_session *s, const char *path, unsigned gen)
{
    delete_node_w(s, path, gen, NULL);
}

/* Delete and wait for the answer, at most a session timeout: close() leaves
 * nothing in line behind it, and nothing in flight that a session closed
 * right after would have to drop. Not under mu. */
static void delete_node_sync(zkc_session *s, const char *path, unsigned gen)
{
    struct delwait *w = calloc(1, sizeof(*w));
    struct timespec ts;

    if (!w || zkc__cond_init(&w->cond) != 0) {
        free(w);
        delete_node(s, path, gen);
        return;
    }
    pthread_mutex_init(&w->mu, NULL);
    w->refs = 2;
    delete_node_w(s, path, gen, w);
    zkc__deadline(&ts, zkc_session_timeout_ms(s));
    pthread_mutex_lock(&w->mu);
    while (!w->done && pthread_cond_timedwait(&w->cond, &w->mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&w->mu);
    delwait_unref(w);
}

/* ------------------------------------------------------------ retries */

static void retry_fn(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_election *e = arg;
    int create = 0;

    (void)gen;
    pthread_mutex_lock(&e->mu);
    e->retry_pending = 0;
    /* LOST: the hook re-enters at CONNECTED. */
    if (!e->closed && (st == ZKC_CONN_CONNECTED || st == ZKC_CONN_RECONNECTED)) {
        if (e->observer || (e->want && e->node))
            send_list(e, 0);
        else if (e->want && !e->create_pending)
            create = 1;
    }
    pthread_mutex_unlock(&e->mu);
    if (create)
        start_create(e);
    unref(e);
}

/* mu held: try again once connected (a one-shot, so no spinning while the
 * connection is down). */
static void retry_later(zkc_election *e)
{
    if (e->retry_pending || e->closed)
        return;
    e->retry_pending = 1;
    e->refs++;
    if (zkc__when_connected(e->s, retry_fn, e) != 0) {
        e->refs--;
        e->retry_pending = 0;
    }
}

static int transient(int zrc)
{
    return zrc == ZCONNECTIONLOSS || zrc == ZOPERATIONTIMEOUT || zrc == ZSESSIONEXPIRED ||
           zrc == ZSESSIONMOVED;
}

/* mu held: campaigning stops on a non-transient error. */
static void fail_campaign(zkc_election *e, int rc)
{
    zkc__log(e->s, ZKC_LOG_ERROR, "election %s: %s stops campaigning: %s", e->path, e->id,
             zkc_strerror(rc));
    if (e->leader)
        demote(e, ZKC_DEMOTE_NODE_DELETED, NULL, 0);
    if (e->node)
        delete_node(e->s, e->node, e->node_gen);
    free(e->node);
    e->node = NULL;
    e->name = NULL;
    e->want = 0;
    e->epoch++;
    e->create_pending = 0;
    free(e->target);
    e->target = NULL;
    pthread_cond_broadcast(&e->cond);
    post(e, ZKC_ELECTION_ERROR, 0, ZKC_DEMOTE_NONE, NULL, 0, NULL, rc, NULL, 0);
}

/* mu held: our node is gone (deleted by someone, or its parent removed):
 * step down and queue a new node at the back of the line, as Curator's
 * LeaderLatch resets when it cannot find its node. Returns 1: create. */
static int own_node_gone(zkc_election *e)
{
    zkc__log(e->s, ZKC_LOG_WARN, "election %s: node %s of %s vanished; re-entering", e->path,
             e->node, e->id);
    if (e->leader)
        demote(e, ZKC_DEMOTE_NODE_DELETED, NULL, 0);
    free(e->node);
    e->node = NULL;
    e->name = NULL;
    free(e->target);
    e->target = NULL;
    e->epoch++;
    e->create_pending = 0;
    e->pipe_pending = 0;
    return e->want;
}

/* ------------------------------------------------------- the requests */

static void head_read(int zrc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_election *e = r->e;

    pthread_mutex_lock(&e->mu);
    if (stale(r) || !e->asked_head || strcmp(e->asked_head, r->path) != 0)
        goto out;
    free(e->asked_head);
    e->asked_head = NULL;
    if (zrc == ZOK && !e->leader && (!e->last_head || strcmp(e->last_head, r->path) != 0)) {
        char *h = strdup(r->path);
        if (!h)
            goto out;
        free(e->last_head);
        e->last_head = h;
        if (len < 0 || !value)
            len = 0;
        if (len > ZKC_ELECTION_ID_MAX)
            len = ZKC_ELECTION_ID_MAX;
        post(e, ZKC_ELECTION_LEADER_CHANGED, st->czxid, ZKC_DEMOTE_NONE, value ? value : "", len,
             r->path, 0, NULL, 0);
    } else if (transient(zrc)) {
        retry_later(e);
    }
    /* NONODE: the leader left meanwhile; the next listing reports who
     * follows it. */
out:
    pthread_mutex_unlock(&e->mu);
    req_free(r);
}

/* mu held: read the data of the head node to report it. */
static void ask_head(zkc_election *e, const char *head)
{
    char *full;
    struct req *r;
    zhandle_t *zh;
    int zrc;

    if (e->asked_head && strcmp(e->asked_head, head) == 0)
        return;
    full = zkc__path_join(e->path, head);
    r = req_new(e, head);
    free(e->asked_head);
    e->asked_head = strdup(head);
    if (!full || !r || !e->asked_head)
        goto fail;
    zh = zkc__zh_lock(e->s, NULL);
    if (!zh)
        goto retry;
    zrc = zoo_aget(zh, full, 0, head_read, r);
    zkc__zh_unlock(e->s);
    if (zrc != ZOK)
        goto retry;
    free(full);
    return;
retry:
    retry_later(e);
fail:
    if (r)
        req_drop_locked(r);
    free(e->asked_head);
    e->asked_head = NULL;
    free(full);
}

/* mu held: report "nobody leads" once. */
static void report_nobody(zkc_election *e)
{
    if (e->last_head && *e->last_head == '\0')
        return;
    free(e->last_head);
    e->last_head = strdup("");
    post(e, ZKC_ELECTION_LEADER_CHANGED, 0, ZKC_DEMOTE_NONE, NULL, 0, NULL, 0, NULL, 0);
}

static void stat_done(int zrc, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_election *e = r->e;
    int create = 0;

    pthread_mutex_lock(&e->mu);
    if (stale(r))
        goto out;
    if (e->observer) { /* exists watch on a missing election path */
        if (zrc == ZOK)
            send_list(e, 0);
        else if (transient(zrc))
            retry_later(e);
        goto out;
    }
    if (!e->node || strcmp(r->path, e->node) != 0) {
        /* The predecessor: gone before the watch was set, look again. */
        if (zrc == ZNONODE)
            send_list(e, 0);
        else if (transient(zrc))
            retry_later(e);
        else if (zrc != ZOK)
            fail_campaign(e, zkc__err_from_zk(zrc));
        goto out;
    }
    /* Our own node, first in line: confirm it is owned by the session we
     * have now before leading (CURATOR-696: a client that reconnected after
     * its session had expired kept leading with a dead node). */
    if (zrc == ZNONODE) {
        create = own_node_gone(e);
    } else if (transient(zrc)) {
        retry_later(e);
    } else if (zrc != ZOK) {
        fail_campaign(e, zkc__err_from_zk(zrc));
    } else {
        unsigned gen = 0;
        int64_t mine = 0;
        zhandle_t *zh = zkc__zh_lock(e->s, &gen);
        if (zh) {
            mine = zoo_client_id(zh)->client_id;
            zkc__zh_unlock(e->s);
        }
        if (!zh) {
            retry_later(e);
        } else if (gen != e->node_gen || st->ephemeralOwner != mine) {
            zkc__log(e->s, ZKC_LOG_WARN,
                     "election %s: %s is owned by session 0x%llx, not ours (0x%llx); re-entering",
                     e->path, e->node, (unsigned long long)st->ephemeralOwner,
                     (unsigned long long)mine);
            create = own_node_gone(e);
        } else if (e->suspended && e->policy == ZKC_ELECTION_STEP_DOWN) {
            /* Answered just before the connection dropped: RECONNECTED
             * looks again. */
        } else if (!e->leader) {
            e->leader = 1;
            e->czxid = st->czxid;
            pthread_cond_broadcast(&e->cond);
            zkc__log(e->s, ZKC_LOG_INFO, "election %s: %s elected (token %lld)", e->path, e->id,
                     (long long)e->czxid);
            post(e, ZKC_ELECTION_ELECTED, e->czxid, ZKC_DEMOTE_NONE, e->id, e->id_len, e->name, 0,
                 NULL, 0);
            if (!e->last_head || strcmp(e->last_head, e->name) != 0) {
                free(e->last_head);
                e->last_head = strdup(e->name);
                post(e, ZKC_ELECTION_LEADER_CHANGED, e->czxid, ZKC_DEMOTE_NONE, e->id, e->id_len,
                     e->name, 0, NULL, 0);
            }
        }
    }
out:
    pthread_mutex_unlock(&e->mu);
    if (create)
        start_create(e);
    req_free(r);
}

/* Watch `target` (set under mu) and send exists on it with a watch. The
 * subscription must be in place before the request goes out, or a deletion
 * right after the server set the watch would be routed to nobody. Called
 * without mu. */
static void watch_target(zkc_election *e, unsigned epoch)
{
    struct req *r;
    zhandle_t *zh;
    int zrc;

    set_watch(e);
    pthread_mutex_lock(&e->mu);
    if (e->closed || e->epoch != epoch || !e->target)
        goto out;
    r = req_new(e, e->target);
    if (!r)
        goto out;
    zh = zkc__zh_lock(e->s, NULL);
    if (!zh) {
        req_drop_locked(r);
        retry_later(e);
        goto out;
    }
    zrc = zoo_aexists(zh, r->path, 1, stat_done, r);
    zkc__zh_unlock(e->s);
    if (zrc != ZOK) {
        req_drop_locked(r);
        retry_later(e);
    }
out:
    pthread_mutex_unlock(&e->mu);
}

/* mu held: set the watch target; returns 1 when it changed or needs a new
 * exists. */
static int set_target(zkc_election *e, const char *path)
{
    char *t = strdup(path);

    if (!t)
        return 0;
    free(e->target);
    e->target = t;
    return 1;
}

/* Children that are latch nodes, sorted by sequence (wrap-safe). Returns
 * the count; *out is a new array of borrowed names. */
static int latch_children(const struct String_vector *v, char ***out)
{
    char **names = malloc(sizeof(char *) * (size_t)(v->count > 0 ? v->count : 1));
    int i, n = 0;

    if (!names)
        return -1;
    for (i = 0; i < v->count; i++)
        if (strstr(v->data[i], LATCH_BODY))
            names[n++] = v->data[i];
    n = zkc__sort_by_seq(names, n);
    *out = names;
    return n;
}

/* mu held. Returns 1 to create a node, 2 to watch the target. */
static int evaluate(zkc_election *e, const struct String_vector *v, int pipelined)
{
    char **names;
    int n, i, idx = -1;
    int act = 0;

    n = latch_children(v, &names);
    if (n < 0)
        return 0;
    if (e->observer) {
        if (n == 0)
            report_nobody(e);
        else if (!e->last_head || strcmp(e->last_head, names[0]) != 0)
            ask_head(e, names[0]);
        goto out;
    }
    if (!e->node)
        goto out; /* the create is still being recovered: it lists again */
    for (i = 0; i < n; i++) {
        if (strcmp(names[i], e->name) == 0) {
            idx = i;
            break;
        }
    }
    if (idx < 0) {
        if (pipelined) /* sent with a create that went through recovery */
            send_list(e, 0);
        else
            act = own_node_gone(e) ? 1 : 0;
        goto out;
    }
    if (idx == 0) {
        act = set_target(e, e->node) ? 2 : 0;
        goto out;
    }
    if (e->leader) /* something sorted ahead of us: only a wrap gone wrong */
        demote(e, ZKC_DEMOTE_NODE_DELETED, NULL, 0);
    if (!e->last_head || strcmp(e->last_head, names[0]) != 0)
        ask_head(e, names[0]);
    {
        /* Watch only the node just ahead: one leader change wakes one
         * participant (the herd effect of ZooKeeper's recipe notes). When
         * it goes, list again rather than assume we lead: it may have been
         * a follower that left (Netflix/curator#115). */
        char *pred = zkc__path_join(e->path, names[idx - 1]);
        if (pred && set_target(e, pred))
            act = 2;
        free(pred);
    }
out:
    free(names);
    return act;
}

static void listed(int zrc, const struct String_vector *v, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_election *e = r->e;
    int act = 0;
    unsigned epoch;

    pthread_mutex_lock(&e->mu);
    if (r->pipelined && r->epoch == e->epoch)
        e->pipe_pending = 0;
    epoch = e->epoch;
    if (stale(r))
        goto out;
    if (zrc == ZOK) {
        act = evaluate(e, v, r->pipelined);
    } else if (zrc == ZNONODE) {
        if (e->observer) {
            report_nobody(e);
            if (set_target(e, e->path))
                act = 2;
        } else if (e->node && !r->pipelined) {
            /* The election path itself was removed (CURATOR-724): so was
             * our node. pcreate makes the parents again. */
            act = own_node_gone(e) ? 1 : 0;
        }
    } else if (transient(zrc)) {
        retry_later(e);
    } else if (!e->observer) {
        fail_campaign(e, zkc__err_from_zk(zrc));
    } else {
        zkc__log(e->s, ZKC_LOG_WARN, "election observer %s: %s", e->path, zerror(zrc));
    }
    epoch = e->epoch;
out:
    pthread_mutex_unlock(&e->mu);
    if (act == 1)
        start_create(e);
    else if (act == 2)
        watch_target(e, epoch);
    req_free(r);
}

/* mu held. Observers list with a watch on the children. */
static void send_list(zkc_election *e, int pipelined)
{
    struct req *r = req_new(e, NULL);
    zhandle_t *zh;
    int zrc;

    if (!r) {
        zkc__log(e->s, ZKC_LOG_ERROR, "election %s: out of memory", e->path);
        return;
    }
    r->pipelined = pipelined;
    zh = zkc__zh_lock(e->s, NULL);
    if (!zh) {
        req_drop_locked(r);
        retry_later(e);
        return;
    }
    zrc = zoo_aget_children(zh, e->path, e->observer, listed, r);
    zkc__zh_unlock(e->s);
    if (zrc != ZOK) {
        req_drop_locked(r);
        retry_later(e);
    }
}

static void created(void *arg, int rc, const char *path, const struct Stat *st)
{
    struct req *r = arg;
    zkc_election *e = r->e;

    pthread_mutex_lock(&e->mu);
    if (stale(r) || !e->want) {
        /* Abandoned while it was being made (resign, LOST, close). */
        if (rc == 0)
            delete_node(e->s, path, r->gen);
        goto out;
    }
    e->create_pending = 0;
    if (rc == 0) {
        free(e->node);
        e->node = strdup(path);
        if (!e->node) {
            delete_node(e->s, path, e->create_gen);
            fail_campaign(e, ZKC_ENOMEM);
            goto out;
        }
        e->name = zkc__path_base(e->node);
        e->node_gen = r->gen;
        e->czxid = st->czxid;
        zkc__log(e->s, ZKC_LOG_DEBUG, "election %s: %s joined as %s", e->path, e->id, e->name);
        /* Usually the getChildren sent right behind the create answers
         * next and includes our node: one round trip to the first
         * evaluation. */
        if (!e->pipe_pending)
            send_list(e, 0);
    } else if (rc == ZKC_ESESSIONLOST || rc == ZKC_ECONNLOSS) {
        retry_later(e); /* re-enter with the new session */
    } else if (rc != ZKC_ECLOSED) {
        fail_campaign(e, rc);
    }
out:
    pthread_mutex_unlock(&e->mu);
    req_free(r);
}

/* Create our node (not under mu: zkc__pcreate may call back at once), with
 * a getChildren pipelined right behind it. */
static void start_create(zkc_election *e)
{
    char guid[ZKC_GUID_LEN + 1];
    struct req *r, *lr = NULL;
    int rc;

    pthread_mutex_lock(&e->mu);
    if (e->closed || !e->want || e->node || e->create_pending) {
        pthread_mutex_unlock(&e->mu);
        return;
    }
    rc = zkc__guid(guid);
    r = rc == 0 ? req_new(e, NULL) : NULL;
    if (!r) {
        fail_campaign(e, rc ? rc : ZKC_ENOMEM);
        pthread_mutex_unlock(&e->mu);
        return;
    }
    e->create_pending = 1;
    e->create_gen = zkc_session_generation(e->s);
    r->gen = e->create_gen;
    lr = req_new(e, NULL);
    if (lr) {
        lr->pipelined = 1;
        e->pipe_pending = 1;
    }
    pthread_mutex_unlock(&e->mu);

    zkc__pcreate(e->s, e->path, guid, LATCH_BODY, e->id, e->id_len, ZOO_EPHEMERAL_SEQUENTIAL,
                 created, r);

    if (!lr)
        return;
    pthread_mutex_lock(&e->mu);
    if (!stale(lr) && e->pipe_pending) {
        zhandle_t *zh = zkc__zh_lock(e->s, NULL);
        int zrc = ZINVALIDSTATE;
        if (zh) {
            zrc = zoo_aget_children(zh, e->path, 0, listed, lr);
            zkc__zh_unlock(e->s);
        }
        if (zrc == ZOK) {
            pthread_mutex_unlock(&e->mu);
            return;
        }
    }
    if (lr->epoch == e->epoch)
        e->pipe_pending = 0;
    if (e->node && !e->closed && lr->epoch == e->epoch)
        send_list(e, 0);
    req_drop_locked(lr);
    pthread_mutex_unlock(&e->mu);
}

/* ------------------------------------------------------------ watches */

static void on_watch(void *arg, int type, const char *path)
{
    zkc_election *e = arg;

    pthread_mutex_lock(&e->mu);
    if (!e->closed && e->target && strcmp(path, e->target) == 0) {
        if (!e->observer)
            __atomic_add_fetch(&wakeups, 1, __ATOMIC_SEQ_CST);
        zkc__log(e->s, ZKC_LOG_DEBUG, "election %s: event %d on %s", e->path, type, path);
        send_list(e, 0);
    }
    pthread_mutex_unlock(&e->mu);
}

/* Make the one subscription match `target` (re-read under mu, so racing
 * callers converge on the latest). Called without mu. */
static void set_watch(zkc_election *e)
{
    char *want = NULL;

    pthread_mutex_lock(&e->wmu);
    pthread_mutex_lock(&e->mu);
    if (e->target && !e->closed)
        want = strdup(e->target);
    pthread_mutex_unlock(&e->mu);
    if (want && e->watching && strcmp(want, e->watching) == 0) {
        free(want);
        pthread_mutex_unlock(&e->wmu);
        return;
    }
    if (e->watching) {
        zkc__unwatch(e->s, e->watching, on_watch, e);
        free(e->watching);
        e->watching = NULL;
    }
    if (want && zkc__watch(e->s, want, on_watch, e) == 0) {
        e->watching = want;
        want = NULL;
    }
    pthread_mutex_unlock(&e->wmu);
    free(want);
}

/* --------------------------------------------------- connection states */

static void on_state(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_election *e = arg;
    int create = 0, rewatch = 0;

    (void)gen;
    pthread_mutex_lock(&e->mu);
    if (e->closed) {
        pthread_mutex_unlock(&e->mu);
        return;
    }
    switch (st) {
    case ZKC_CONN_SUSPENDED:
        e->suspended = 1;
        /* Curator's standard error policy: at SUSPENDED a leader can no
         * longer know it leads; its session may expire any moment and
         * another be elected (Curator TN10, TN14). */
        if (e->leader && e->policy == ZKC_ELECTION_STEP_DOWN)
            demote(e, ZKC_DEMOTE_SUSPENDED, NULL, 0);
        break;
    case ZKC_CONN_RECONNECTED:
        e->suspended = 0;
        /* Same session: the node may still be there. Look before acting
         * instead of deleting and re-creating it, which made competing
         * latches livelock (CURATOR-644, CURATOR-645). */
        if (e->observer || (e->want && e->node))
            send_list(e, 0);
        else if (e->want && !e->create_pending)
            create = 1;
        break;
    case ZKC_CONN_LOST:
        e->suspended = 0;
        if (e->leader)
            demote(e, ZKC_DEMOTE_LOST, NULL, 0);
        if (!e->observer) {
            free(e->node);
            e->node = NULL;
            e->name = NULL;
            e->epoch++;
            e->create_pending = 0;
            e->pipe_pending = 0;
            free(e->target);
            e->target = NULL;
            rewatch = 1;
        }
        break;
    case ZKC_CONN_CONNECTED:
        e->suspended = 0;
        if (e->observer)
            send_list(e, 0);
        else if (e->want && e->node)
            send_list(e, 0);
        else if (e->want && !e->create_pending)
            create = 1; /* a new session after LOST: re-enter */
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&e->mu);
    if (rewatch)
        set_watch(e);
    if (create)
        start_create(e);
}

/* -------------------------------------------------------------- public */

void zkc_election_opts_init(zkc_election_opts *o)
{
    if (o)
        memset(o, 0, sizeof(*o));
}

static int alloc_election(zkc_election **out, zkc_session *s, const char *path)
{
    zkc_election *e = calloc(1, sizeof(*e));

    if (!e)
        return ZKC_ENOMEM;
    if (zkc__cond_init(&e->cond) != 0) {
        free(e);
        return ZKC_ESYS;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->wmu, NULL);
    e->refs = 1;
    e->s = s;
    e->path = strdup(path);
    if (!e->path) {
        destroy(e);
        return ZKC_ENOMEM;
    }
    *out = e;
    return 0;
}

int zkc_election_new(zkc_election **out, zkc_session *s, const char *path,
                     const zkc_election_opts *o)
{
    zkc_election *e;
    size_t id_len;
    int rc;

    if (!out || !s || !path || !o || !o->id || zkc__path_check(path) != 0 || strcmp(path, "/") == 0)
        return ZKC_EINVAL;
    id_len = strlen(o->id);
    if (id_len == 0 || id_len > ZKC_ELECTION_ID_MAX)
        return ZKC_EINVAL;
    if (o->on_suspend != ZKC_ELECTION_STEP_DOWN && o->on_suspend != ZKC_ELECTION_WAIT)
        return ZKC_EINVAL;
    rc = alloc_election(&e, s, path);
    if (rc)
        return rc;
    e->id = strdup(o->id);
    if (!e->id) {
        rc = ZKC_ENOMEM;
        goto fail_id;
    }
    e->id_len = (int)id_len;
    e->policy = o->on_suspend;
    e->fn = o->fn;
    e->user_data = o->user_data;
    e->want = 1;
    rc = zkc__add_hook(s, on_state, e);
    if (rc)
        goto fail_hook;
    zkc__session_attach(s);
    *out = e;
    start_create(e);
    return 0;

fail_hook:
fail_id:
    destroy(e);
    return rc;
}

int zkc_election_observer_new(zkc_election **out, zkc_session *s, const char *path,
                              zkc_election_fn fn, void *user_data)
{
    zkc_election *e;
    int rc;

    if (!out || !s || !path || !fn || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    rc = alloc_election(&e, s, path);
    if (rc)
        return rc;
    e->observer = 1;
    e->fn = fn;
    e->user_data = user_data;
    e->id = strdup("");
    e->target = strdup(path);
    if (!e->id || !e->target) {
        rc = ZKC_ENOMEM;
        goto fail;
    }
    rc = zkc__add_hook(s, on_state, e);
    if (rc)
        goto fail;
    set_watch(e);
    pthread_mutex_lock(&e->mu);
    send_list(e, 0);
    pthread_mutex_unlock(&e->mu);
    zkc__session_attach(s);
    *out = e;
    return 0;

fail:
    destroy(e);
    return rc;
}

int zkc_election_close(zkc_election *e)
{
    char *node;
    unsigned gen;

    if (!e)
        return 0;
    pthread_mutex_lock(&e->mu);
    e->closed = 1;
    e->want = 0;
    e->epoch++;
    e->leader = 0;
    node = e->node;
    gen = e->node_gen;
    e->node = NULL;
    e->name = NULL;
    free(e->target);
    e->target = NULL;
    pthread_cond_broadcast(&e->cond);
    while (e->waiters > 0)
        pthread_cond_wait(&e->cond, &e->mu);
    pthread_mutex_unlock(&e->mu);
    zkc__remove_hook(e->s, on_state, e);
    set_watch(e); /* drops the subscription */
    if (node) {
        delete_node_sync(e->s, node, gen);
        free(node);
    }
    zkc__dispatch_barrier(e->s);
    zkc__session_detach(e->s);
    unref(e);
    return 0;
}

int zkc_election_resign(zkc_election *e)
{
    char *node;
    unsigned gen;

    if (!e)
        return ZKC_EINVAL;
    pthread_mutex_lock(&e->mu);
    if (e->observer) {
        pthread_mutex_unlock(&e->mu);
        return ZKC_EINVAL;
    }
    if (!e->want) {
        pthread_mutex_unlock(&e->mu);
        return 0;
    }
    e->want = 0;
    e->epoch++;
    e->create_pending = 0;
    e->pipe_pending = 0;
    node = e->node;
    gen = e->node_gen;
    e->node = NULL;
    e->name = NULL;
    free(e->target);
    e->target = NULL;
    if (e->leader) {
        /* The node goes only after the DEMOTED callback returned: the next
         * leader cannot be elected while this one still acts as leader. */
        demote(e, ZKC_DEMOTE_RESIGNED, node, gen);
    } else if (node) {
        delete_node(e->s, node, gen);
    }
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->mu);
    free(node);
    set_watch(e);
    return 0;
}

int zkc_election_rejoin(zkc_election *e)
{
    if (!e)
        return ZKC_EINVAL;
    pthread_mutex_lock(&e->mu);
    if (e->observer || e->closed) {
        pthread_mutex_unlock(&e->mu);
        return ZKC_EINVAL;
    }
    if (e->want) {
        pthread_mutex_unlock(&e->mu);
        return 0;
    }
    e->want = 1;
    e->epoch++;
    pthread_mutex_unlock(&e->mu);
    start_create(e);
    return 0;
}

int zkc_election_is_leader(zkc_election *e, int64_t *token)
{
    int l;

    if (!e)
        return 0;
    pthread_mutex_lock(&e->mu);
    l = e->leader;
    if (l && token)
        *token = e->czxid;
    pthread_mutex_unlock(&e->mu);
    return l;
}

int zkc_election_await_leadership(zkc_election *e, int timeout_ms, int64_t *token)
{
    struct timespec ts;
    int rc = 0;

    if (!e || e->observer)
        return ZKC_EINVAL;
    if (timeout_ms >= 0)
        zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&e->mu);
    e->waiters++;
    while (!e->leader && e->want && !e->closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&e->cond, &e->mu);
        } else if (pthread_cond_timedwait(&e->cond, &e->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (e->leader) {
        if (token)
            *token = e->czxid;
    } else if (!e->want || e->closed) {
        rc = ZKC_ECANCELED;
    } else {
        rc = ZKC_ETIMEDOUT;
    }
    if (--e->waiters == 0 && e->closed)
        pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int zkc_election_node_path(zkc_election *e, char *buf, size_t len)
{
    int rc = 0;

    if (!e || !buf)
        return ZKC_EINVAL;
    pthread_mutex_lock(&e->mu);
    if (!e->node)
        rc = ZKC_ENONODE;
    else if (strlen(e->node) + 1 > len)
        rc = ZKC_EINVAL;
    else
        memcpy(buf, e->node, strlen(e->node) + 1);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int zkc_election_fenced_multi(zkc_election *e, const zkc_op *ops, int nops, int timeout_ms)
{
    char *guard = NULL;
    int rc;

    if (!e || e->observer)
        return ZKC_EINVAL;
    pthread_mutex_lock(&e->mu);
    /* The node alone is not enough: a follower's node exists too. While the
     * node that won the term exists, nobody can sort ahead of it, so the
     * local "leading" plus the server's check of the node is the term. */
    if (e->leader && e->node)
        guard = strdup(e->node);
    rc = e->leader && e->node && !guard ? ZKC_ENOMEM : 0;
    pthread_mutex_unlock(&e->mu);
    if (rc)
        return rc;
    if (!guard)
        return ZKC_ENOTHELD;
    rc = zkc_fenced_multi(e->s, guard, ops, nops, timeout_ms);
    free(guard);
    return rc;
}

/* ------------------------------------------------ one-shot observation */

struct look {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs; /* caller + request in flight */
    int done;
    int abandoned;
    int rc;
    int tries;
    zkc_session *s;
    char *path;
    char head[128];
    zkc_election_leader_info info;
};

static void look_unref(struct look *l)
{
    int n;

    pthread_mutex_lock(&l->mu);
    n = --l->refs;
    pthread_mutex_unlock(&l->mu);
    if (n == 0) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cond);
        free(l->path);
        free(l);
    }
}

static void look_finish(struct look *l, int rc)
{
    pthread_mutex_lock(&l->mu);
    l->rc = rc;
    l->done = 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    look_unref(l);
}

static void look_list(struct look *l);

static void look_read(int zrc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct look *l = (struct look *)data;
    int abandoned;

    pthread_mutex_lock(&l->mu);
    abandoned = l->abandoned;
    pthread_mutex_unlock(&l->mu);
    if (zrc == ZNONODE && !abandoned && ++l->tries < 10) {
        look_list(l); /* the leader left between the two reads */
        return;
    }
    if (zrc != ZOK) {
        look_finish(l, zrc == ZNONODE ? ZKC_ENONODE : zkc__err_from_zk(zrc));
        return;
    }
    if (len < 0 || !value)
        len = 0;
    if (len > ZKC_ELECTION_ID_MAX)
        len = ZKC_ELECTION_ID_MAX;
    memcpy(l->info.id, value ? value : "", (size_t)len);
    l->info.id[len] = '\0';
    snprintf(l->info.node, sizeof(l->info.node), "%s", l->head);
    l->info.token = st->czxid;
    l->info.session_id = st->ephemeralOwner;
    look_finish(l, 0);
}

static void look_listed(int zrc, const struct String_vector *v, const void *data)
{
    struct look *l = (struct look *)data;
    char **names, *full;
    zkc_session *s;
    zhandle_t *zh;
    int n;

    if (zrc != ZOK) {
        look_finish(l, zkc__err_from_zk(zrc));
        return;
    }
    n = latch_children(v, &names);
    if (n <= 0) {
        if (n == 0)
            free(names);
        look_finish(l, n == 0 ? ZKC_ENONODE : ZKC_ENOMEM);
        return;
    }
    snprintf(l->head, sizeof(l->head), "%s", names[0]);
    full = zkc__path_join(l->path, names[0]);
    free(names);
    if (!full) {
        look_finish(l, ZKC_ENOMEM);
        return;
    }
    s = l->s; /* the reply may free l before zoo_aget returns */
    zh = zkc__zh_lock(s, NULL);
    zrc = zh ? zoo_aget(zh, full, 0, look_read, l) : ZCONNECTIONLOSS;
    if (zh)
        zkc__zh_unlock(s);
    free(full);
    if (zrc != ZOK)
        look_finish(l, zkc__err_from_zk(zrc));
}

static void look_list(struct look *l)
{
    zkc_session *s = l->s; /* the reply may free l before the call returns */
    zhandle_t *zh = zkc__zh_lock(s, NULL);
    int zrc = zh ? zoo_aget_children(zh, l->path, 0, look_listed, l) : ZCONNECTIONLOSS;

    if (zh)
        zkc__zh_unlock(s);
    if (zrc != ZOK)
        look_finish(l, zkc__err_from_zk(zrc));
}

int zkc_election_observe_leader(zkc_session *s, const char *path, zkc_election_leader_info *info,
                                int timeout_ms)
{
    struct look *l;
    struct timespec ts;
    int rc;

    if (!s || !path || !info || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return ZKC_ENOMEM;
    if (!(l->path = strdup(path)) || zkc__cond_init(&l->cond) != 0) {
        free(l->path);
        free(l);
        return ZKC_ENOMEM;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->s = s;
    l->refs = 2;
    if (timeout_ms >= 0)
        zkc__deadline(&ts, timeout_ms);
    look_list(l);
    pthread_mutex_lock(&l->mu);
    while (!l->done) {
        if (timeout_ms < 0)
            pthread_cond_wait(&l->cond, &l->mu);
        else if (pthread_cond_timedwait(&l->cond, &l->mu, &ts) == ETIMEDOUT)
            break;
    }
    if (l->done) {
        rc = l->rc;
        if (rc == 0)
            *info = l->info;
    } else {
        rc = ZKC_ETIMEDOUT;
        l->abandoned = 1;
    }
    pthread_mutex_unlock(&l->mu);
    look_unref(l);
    return rc;
}

int zkc_election_leader(zkc_election *e, zkc_election_leader_info *info, int timeout_ms)
{
    if (!e)
        return ZKC_EINVAL;
    return zkc_election_observe_leader(e->s, e->path, info, timeout_ms);
}

/* --------------------------------------------------------------- names */

const char *zkc_election_event_name(zkc_election_event_type t)
{
    switch (t) {
    case ZKC_ELECTION_ELECTED:
        return "elected";
    case ZKC_ELECTION_DEMOTED:
        return "demoted";
    case ZKC_ELECTION_LEADER_CHANGED:
        return "leader_changed";
    case ZKC_ELECTION_ERROR:
        return "error";
    }
    return "?";
}

const char *zkc_election_demote_reason_name(zkc_election_demote_reason r)
{
    switch (r) {
    case ZKC_DEMOTE_NONE:
        return "none";
    case ZKC_DEMOTE_RESIGNED:
        return "resigned";
    case ZKC_DEMOTE_SUSPENDED:
        return "suspended";
    case ZKC_DEMOTE_LOST:
        return "lost";
    case ZKC_DEMOTE_NODE_DELETED:
        return "node_deleted";
    }
    return "?";
}
