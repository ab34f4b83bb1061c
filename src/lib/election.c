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
 * Watches are per request (zkc__qwatch, queue.h): each request that sets
 * one gives it a context of its own, which holds a reference on the
 * election until the watch fires or its handle is closed; no session-wide
 * path router. One watch of each kind is kept live per path (the slots
 * below): a request that would set a second one on the same path asks
 * without a watch, so relistings never pile up watches that all fire.
 *
 * Locks (outer to inner): hk_mu (session hooks) -> mu -> zh_mu.
 */
#include "internal.h"
#include "naming.h"
#include "cache.h"
#include "pcreate.h"
#include "queue.h"
#include "zkcoord/election.h"

#include <errno.h>
#include <stddef.h>
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
    zkc__retry retry;
    unsigned create_gen; /* session generation the pending create belongs to */
    char *node;          /* full path of our node, NULL when none */
    const char *name;    /* its last segment */
    unsigned node_gen;
    int64_t czxid;
    int64_t owner_sid; /* ephemeralOwner of our node, from its create reply */
    int leader;
    int own_armed;      /* a watch on our node is set on the server */
    int parent_ok;      /* the container parent was made (or tried) */
    int parent_pending; /* ... and is being made */
    int suspended;
    char *target;     /* path whose watch events wake us: predecessor or own node */
    char *last_head;  /* node name of the leader last reported ("" = nobody) */
    char *asked_head; /* node name whose data is being read for LEADER_CHANGED */

    zkc__q_foreign foreign; /* persistent nodes planted in the line */

    /* The live watch of each kind (NULL: none), cleared when it ends. */
    zkc__qwatch *tw; /* W_TARGET: the node we wait behind, or our own */
    zkc__qwatch *ow; /* W_OWN: our own node, set when it was made */
    zkc__qwatch *cw; /* W_CHILDREN: an observer's children watch */
    zkc__qwatch *pw; /* W_PATH: an observer's exists watch on the path */
};

enum wkind { W_TARGET, W_OWN, W_CHILDREN, W_PATH };

/* Request context: holds a reference on the election. */
struct req {
    zkc_election *e;
    unsigned epoch;
    unsigned gen; /* creates: the session generation the node belongs to */
    int pipelined;
    char *path;
    zkc__qwatch *w; /* the watch this request asks for, if any */
    /* Registered while in flight (zkc__pending): a completion the client
     * drops at handle close still runs once, as ZCLOSING (issue 9, bug 5). */
    zkc__pending pend;
    void (*drop)(struct req *r);
};

/* Test hook: watch events that matched a participant's target and woke it
 * (the no-herd test counts them). */
static unsigned long wakeups;

unsigned long zkc__election_wakeups(void);
unsigned long zkc__election_wakeups(void)
{
    return __atomic_load_n(&wakeups, __ATOMIC_SEQ_CST);
}

/* Test hook: when set, runs right before a participant sends the request
 * that sets its watch on the node it waits behind, with the path of that
 * node, on the thread that sends it and with no lock of ours held (the
 * watch-leak test deletes the node there). */
extern void (*zkc__election_test_before_watch)(const char *path);
void (*zkc__election_test_before_watch)(const char *path);

static void start_create(zkc_election *e);
static void send_list(zkc_election *e, int pipelined);

/* ------------------------------------------------------------ lifetime */

static void destroy(zkc_election *e)
{
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cond);
    free(e->path);
    free(e->id);
    free(e->node);
    free(e->target);
    free(e->last_head);
    free(e->asked_head);
    zkc__q_foreign_clear(&e->foreign);
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
    r->pend.next = r->pend.prev = &r->pend; /* not registered */
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

static void req_dropped(zkc__pending *pd)
{
    struct req *r = (struct req *)(void *)((char *)pd - offsetof(struct req, pend));

    r->drop(r);
}

/* zh held, from zkc__zh_lock(.., &gen): register r before its zoo_a* call;
 * req_unsent() when that call failed (no completion will come). */
static void req_sent(struct req *r, unsigned gen, void (*drop)(struct req *r))
{
    r->drop = drop;
    zkc__pending_add(r->e->s, &r->pend, gen, req_dropped);
}

static void req_unsent(struct req *r)
{
    zkc__pending_done(r->e->s, &r->pend);
}

/* ------------------------------------------------------------ watches */

static void woken(zkc__qwatch *w, int type);

static zkc__qwatch **slot_of(zkc_election *e, int kind)
{
    switch (kind) {
    case W_OWN:
        return &e->ow;
    case W_CHILDREN:
        return &e->cw;
    case W_PATH:
        return &e->pw;
    }
    return &e->tw;
}

/* mu and zh held (gen from zkc__zh_lock), right before the zoo_aw* call of
 * r: the watch context for it, or NULL to ask without a watch, when one of
 * this kind is live on this path already (or no memory: the next request
 * asks again). */
static zkc__qwatch *watch_for(struct req *r, int kind, const char *path, unsigned gen)
{
    zkc_election *e = r->e;
    zkc__qwatch **slot = slot_of(e, kind);
    zkc__qwatch *w;

    if (*slot && strcmp((*slot)->path, path) == 0)
        return NULL;
    w = zkc__qwatch_new(e->s, path, woken, e);
    if (!w)
        return NULL;
    w->kind = kind;
    e->refs++; /* the watch's, dropped in woken() */
    *slot = w;
    zkc__qwatch_sent(w, gen);
    r->w = w;
    return w;
}

/* mu held: r's zoo_aw* call failed; its watch never was. */
static void watch_unsent(struct req *r)
{
    zkc__qwatch *w = r->w;
    zkc__qwatch **slot;

    if (!w)
        return;
    slot = slot_of(r->e, w->kind);
    if (*slot == w)
        *slot = NULL;
    r->w = NULL;
    zkc__qwatch_unsent(w);
    r->e->refs--; /* r holds one more */
}

/* mu NOT held, first thing in a completion: `set` is whether the reply
 * left the watch r asked for. */
static void watch_reply(struct req *r, int set)
{
    if (r->w) {
        zkc__qwatch_reply(r->w, set);
        r->w = NULL;
    }
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

/* Delete one of our nodes in the background (any thread, any lock of ours
 * may be held), retried after connection loss while its session lives. */
static void delete_node(zkc_session *s, const char *path, unsigned gen)
{
    zkc__bg_delete(s, path, gen, NULL);
}

static void deliver(void *arg)
{
    struct note *n = arg;
    zkc_election *e = n->e;
    int closed;

    pthread_mutex_lock(&e->mu);
    closed = e->closed;
    /* DEMOTED runs on the safety lane, ELECTED on the ordinary one, with
     * no order between them: an ELECTED whose term has already ended (its
     * DEMOTED may have run first) must not be told. */
    if (n->ev.type == ZKC_ELECTION_ELECTED && (!e->leader || e->czxid != n->ev.token))
        closed = 1;
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
    /* DEMOTED: the safety lane (a leader must hear it at once, whatever
     * else is queued); everything else: the ordinary lane. */
    if ((type == ZKC_ELECTION_DEMOTED ? zkc__dispatch_safety : zkc__dispatch)(e->s, deliver, n) !=
        0) {
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

/* Delete and wait for the first answer, at most a session timeout: close()
 * leaves nothing in line behind it. Not under mu. */
static void delete_node_sync(zkc_session *s, const char *path, unsigned gen)
{
    zkc__call *c = zkc__call_new();

    if (c)
        zkc__call_ref(c); /* one for the delete */
    zkc__bg_delete(s, path, gen, c);
    if (c) {
        zkc__call_wait(c, zkc_session_timeout_ms(s));
        zkc__call_unref(c);
    }
}

/* ------------------------------------------------------------ retries */

static void retry_fn(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_election *e = arg;
    int create = 0;

    (void)gen;
    pthread_mutex_lock(&e->mu);
    zkc__retry_fired(&e->retry);
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
    if (e->closed || e->retry.armed)
        return;
    /* The caller holds a reference; refs stays > 0 across the arm. */
    e->refs++;
    zkc__retry_arm(&e->retry, e->s, retry_fn, e, NULL, NULL);
    if (!e->retry.armed)
        e->refs--;
}

/* ZCLOSING / ZINVALIDSTATE: the handle of a session being replaced (a real
 * close of the session ends the campaign through the hooks, and
 * retry_later() arms nothing once the session is closing). */
static int transient(int zrc)
{
    return zrc == ZCONNECTIONLOSS || zrc == ZOPERATIONTIMEOUT || zrc == ZSESSIONEXPIRED ||
           zrc == ZSESSIONMOVED || zrc == ZCLOSING || zrc == ZINVALIDSTATE;
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

    zkc__pending_done(e->s, &r->pend);
    pthread_mutex_lock(&e->mu);
    if (stale(r) || !e->asked_head || strcmp(e->asked_head, r->path) != 0)
        goto out;
    free(e->asked_head);
    e->asked_head = NULL;
    if (zrc == ZOK && !zkc__q_eligible(st)) {
        /* Not an ephemeral node: never the leader (queue.h). Skip it and
         * report the real head. */
        zkc__log(e->s, ZKC_LOG_WARN, "election %s: %s is not ephemeral: not a leader, skipped",
                 e->path, r->path);
        if (zkc__q_foreign_add(&e->foreign, r->path) == 0)
            send_list(e, 0);
    } else if (zrc == ZOK && !e->leader && (!e->last_head || strcmp(e->last_head, r->path) != 0)) {
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

static void drop_head(struct req *r)
{
    head_read(ZCLOSING, NULL, 0, NULL, r);
}

/* mu held: read the data of the head node to report it. */
static void ask_head(zkc_election *e, const char *head)
{
    char *full;
    struct req *r;
    zhandle_t *zh;
    int zrc;
    unsigned gen;

    if (e->asked_head && strcmp(e->asked_head, head) == 0)
        return;
    full = zkc__path_join(e->path, head);
    r = req_new(e, head);
    free(e->asked_head);
    e->asked_head = strdup(head);
    if (!full || !r || !e->asked_head)
        goto fail;
    zh = zkc__zh_lock(e->s, &gen);
    if (!zh)
        goto retry;
    req_sent(r, gen, drop_head);
    zrc = zoo_aget(zh, full, 0, head_read, r);
    zkc__zh_unlock(e->s);
    if (zrc != ZOK) {
        req_unsent(r);
        goto retry;
    }
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

/* mu held: this participant leads (its node is first in the line, and
 * ours). */
static void become_leader(zkc_election *e)
{
    if (e->leader)
        return;
    e->leader = 1;
    pthread_cond_broadcast(&e->cond);
    zkc__log(e->s, ZKC_LOG_INFO, "election %s: %s elected (token %lld)", e->path, e->id,
             (long long)e->czxid);
    post(e, ZKC_ELECTION_ELECTED, e->czxid, ZKC_DEMOTE_NONE, e->id, e->id_len, e->name, 0, NULL, 0);
    if (!e->last_head || strcmp(e->last_head, e->name) != 0) {
        free(e->last_head);
        e->last_head = strdup(e->name);
        post(e, ZKC_ELECTION_LEADER_CHANGED, e->czxid, ZKC_DEMOTE_NONE, e->id, e->id_len, e->name,
             0, NULL, 0);
    }
}

/* An observer's exists watch on a missing election path: that one waits
 * for a path to appear, which is what it is for. */
static void observer_stat_done(int zrc, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_election *e = r->e;

    zkc__pending_done(e->s, &r->pend);
    watch_reply(r, zrc == ZOK || zrc == ZNONODE); /* exists: both leave one */
    (void)st;
    pthread_mutex_lock(&e->mu);
    if (!stale(r)) {
        if (zrc == ZOK)
            send_list(e, 0);
        else if (transient(zrc))
            retry_later(e);
    }
    pthread_mutex_unlock(&e->mu);
    req_free(r);
}

/* The watch on the node we wait behind (or our own, when first), set with
 * getData, never exists: an exists watch on a node that is already gone
 * stays on the server for a path that never comes back, and is re-sent at
 * every reconnect (the lock has always done it this way, as Curator's
 * LockInternals does). */
static void target_read(int zrc, const char *value, int len, const struct Stat *st,
                        const void *data)
{
    struct req *r = (struct req *)data;
    zkc_election *e = r->e;
    int create = 0;

    zkc__pending_done(e->s, &r->pend);
    watch_reply(r, zrc == ZOK);
    (void)value;
    (void)len;
    pthread_mutex_lock(&e->mu);
    if (stale(r))
        goto out;
    if (!e->node || strcmp(r->path, e->node) != 0) {
        if (zrc == ZOK && !zkc__q_eligible(st)) {
            /* A persistent node planted in the line: nobody's predecessor
             * (queue.h). Skip it and look again. */
            zkc__log(e->s, ZKC_LOG_WARN, "election %s: %s is not ephemeral: skipped", e->path,
                     r->path);
            if (zkc__q_foreign_add(&e->foreign, zkc__path_base(r->path)) == 0)
                send_list(e, 0);
        } else if (zrc == ZNONODE) {
            /* The predecessor: gone before the watch was set (so no watch
             * was left on the server), look again. */
            send_list(e, 0);
        } else if (transient(zrc)) {
            retry_later(e);
        } else if (zrc != ZOK) {
            fail_campaign(e, zkc__err_from_zk(zrc));
        }
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
        if (!zh || mine == 0) {
            retry_later(e); /* between sessions: never elect blind */
        } else if (gen != e->node_gen || st->ephemeralOwner != mine) {
            zkc__log(e->s, ZKC_LOG_WARN,
                     "election %s: %s is owned by session 0x%llx, not ours (0x%llx); re-entering",
                     e->path, e->node, (unsigned long long)st->ephemeralOwner,
                     (unsigned long long)mine);
            create = own_node_gone(e);
        } else if (e->suspended && e->policy == ZKC_ELECTION_STEP_DOWN) {
            /* Answered just before the connection dropped: RECONNECTED
             * looks again. */
        } else {
            e->czxid = st->czxid;
            e->own_armed = 1; /* this read left a watch on our node */
            become_leader(e);
        }
    }
out:
    pthread_mutex_unlock(&e->mu);
    if (create)
        start_create(e);
    req_free(r);
}

static void drop_observer_stat(struct req *r)
{
    observer_stat_done(ZCLOSING, NULL, r);
}

static void drop_target(struct req *r)
{
    target_read(ZCLOSING, NULL, 0, NULL, r);
}

/* Watch `target` (set under mu): getData with a watch (exists for an
 * observer waiting for the election path). Called without mu. */
static void watch_target(zkc_election *e, unsigned epoch)
{
    struct req *r;
    zhandle_t *zh;
    int zrc;
    unsigned gen;

    if (zkc__election_test_before_watch && !e->observer) {
        char *t;
        pthread_mutex_lock(&e->mu);
        t = e->target && (!e->node || strcmp(e->target, e->node) != 0) ? strdup(e->target) : NULL;
        pthread_mutex_unlock(&e->mu);
        if (t)
            zkc__election_test_before_watch(t);
        free(t);
    }
    pthread_mutex_lock(&e->mu);
    if (e->closed || e->epoch != epoch || !e->target)
        goto out;
    r = req_new(e, e->target);
    if (!r)
        goto out;
    zh = zkc__zh_lock(e->s, &gen);
    if (!zh) {
        req_drop_locked(r);
        retry_later(e);
        goto out;
    }
    req_sent(r, gen, e->observer ? drop_observer_stat : drop_target);
    if (e->observer) {
        zkc__qwatch *w = watch_for(r, W_PATH, r->path, gen);
        zrc = zoo_awexists(zh, r->path, w ? zkc__qwatch_watcher : NULL, w, observer_stat_done, r);
    } else {
        zkc__qwatch *w = watch_for(r, W_TARGET, r->path, gen);
        zrc = zoo_awget(zh, r->path, w ? zkc__qwatch_watcher : NULL, w, target_read, r);
    }
    zkc__zh_unlock(e->s);
    if (zrc != ZOK) {
        watch_unsent(r);
        req_unsent(r);
        req_drop_locked(r);
        retry_later(e);
    }
out:
    pthread_mutex_unlock(&e->mu);
}

/* The watch on our own node, set once per node right after its create
 * (so a leader hears its node deleted, and a hand-off needs no request of
 * its own to set it): answer. */
static void own_read(int zrc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_election *e = r->e;

    zkc__pending_done(e->s, &r->pend);
    watch_reply(r, zrc == ZOK);
    (void)value;
    (void)len;
    (void)st;
    pthread_mutex_lock(&e->mu);
    if (!stale(r) && e->node && strcmp(e->node, r->path) == 0) {
        if (zrc == ZOK)
            e->own_armed = 1;
        else if (zrc == ZNONODE)
            send_list(e, 0); /* the listing tells who is gone */
        /* otherwise (connection loss) it stays unarmed: the first-in-line
         * path then reads our node with a watch itself */
    }
    pthread_mutex_unlock(&e->mu);
    req_free(r);
}

static void drop_own(struct req *r)
{
    own_read(ZCLOSING, NULL, 0, NULL, r);
}

/* mu held: getData(own node, watch), unless that watch is live already. */
static void arm_own(zkc_election *e)
{
    struct req *r;
    zhandle_t *zh;
    unsigned gen;
    int zrc = ZINVALIDSTATE;

    if (!e->node || e->observer || e->closed || (e->ow && strcmp(e->ow->path, e->node) == 0))
        return;
    r = req_new(e, e->node);
    if (!r)
        return;
    zh = zkc__zh_lock(e->s, &gen);
    if (zh) {
        zkc__qwatch *w;
        req_sent(r, gen, drop_own);
        w = watch_for(r, W_OWN, r->path, gen);
        zrc = zoo_awget(zh, r->path, w ? zkc__qwatch_watcher : NULL, w, own_read, r);
        zkc__zh_unlock(e->s);
        if (zrc != ZOK) {
            watch_unsent(r);
            req_unsent(r);
        }
    }
    if (zrc != ZOK)
        req_drop_locked(r);
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

/* The line of latch nodes in the one order (queue.h), less the nodes found
 * to be foreign. Returns the count or -1; *out is a new array of borrowed
 * names. */
static int latch_children(const struct String_vector *v, const zkc__q_foreign *f, char ***out)
{
    return zkc__q_line(v, ZKC__Q_BIT(ZKC__Q_LATCH), f, out);
}

/* mu held. Returns 1 to create a node, 2 to watch the target. */
static int evaluate(zkc_election *e, const struct String_vector *v, int pipelined)
{
    char **names;
    int n, i, idx = -1;
    int act = 0;

    n = latch_children(v, &e->foreign, &names);
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
        unsigned gen = 0;
        int64_t mine = 0;
        zhandle_t *zh;
        /* First in line. The listing shows our node exists; it is ours if
         * the session that created it (the create reply's ephemeralOwner)
         * is still the current one. With the watch on our node already set,
         * that needs no request: a hand-off costs the old leader's delete
         * and our getChildren, as Curator's does. */
        if (e->own_armed && !e->leader && !(e->suspended && e->policy == ZKC_ELECTION_STEP_DOWN)) {
            zh = zkc__zh_lock(e->s, &gen);
            if (zh) {
                mine = zoo_client_id(zh)->client_id;
                zkc__zh_unlock(e->s);
            }
            if (zh && mine != 0 && gen == e->node_gen && e->owner_sid == mine) {
                free(e->target);
                e->target = NULL;
                become_leader(e);
                act = 2; /* drops the predecessor's subscription */
                goto out;
            }
        }
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

    zkc__pending_done(e->s, &r->pend);
    watch_reply(r, zrc == ZOK);
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

static void drop_listed(struct req *r)
{
    listed(ZCLOSING, NULL, r);
}

/* mu held. Observers list with a watch on the children. */
static void send_list(zkc_election *e, int pipelined)
{
    struct req *r = req_new(e, NULL);
    zhandle_t *zh;
    unsigned gen;
    int zrc;

    if (!r) {
        zkc__log(e->s, ZKC_LOG_ERROR, "election %s: out of memory", e->path);
        return;
    }
    r->pipelined = pipelined;
    zh = zkc__zh_lock(e->s, &gen);
    if (!zh) {
        req_drop_locked(r);
        retry_later(e);
        return;
    }
    req_sent(r, gen, drop_listed);
    {
        /* Observers list with a watch on the children. */
        zkc__qwatch *w = e->observer ? watch_for(r, W_CHILDREN, e->path, gen) : NULL;
        zrc = zoo_awget_children(zh, e->path, w ? zkc__qwatch_watcher : NULL, w, listed, r);
    }
    zkc__zh_unlock(e->s);
    if (zrc != ZOK) {
        watch_unsent(r);
        req_unsent(r);
        req_drop_locked(r);
        retry_later(e);
    }
}

static void created(void *arg, int rc, const char *path, const struct Stat *st)
{
    struct req *r = arg;
    zkc_election *e = r->e;
    int arm = 0;

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
        e->owner_sid = st->ephemeralOwner;
        e->own_armed = 0;
        arm = 1;
        zkc__log(e->s, ZKC_LOG_DEBUG, "election %s: %s joined as %s", e->path, e->id, e->name);
        /* Usually the getChildren sent right behind the create answers
         * next and includes our node: one round trip to the first
         * evaluation. */
        if (!e->pipe_pending)
            send_list(e, 0);
    } else if (rc == ZKC_ESESSIONLOST || rc == ZKC_ECONNLOSS || rc == ZKC_ECLOSED) {
        /* re-enter with the new session (ECLOSED: the old handle was
         * closed under the create; retry_later gives up when the session
         * itself is closing) */
        retry_later(e);
    } else {
        fail_campaign(e, rc);
    }
out:
    pthread_mutex_unlock(&e->mu);
    if (arm) {
        /* Set the watch on our node. */
        pthread_mutex_lock(&e->mu);
        if (!stale(r) && e->node && strcmp(e->node, path) == 0)
            arm_own(e);
        pthread_mutex_unlock(&e->mu);
    }
    req_free(r);
}

static void parent_made(void *arg, int rc)
{
    zkc_election *e = arg;

    /* Best effort: on failure the protected create makes the parents
     * (persistent) itself. */
    if (rc != 0 && rc != ZKC_ECONNLOSS)
        zkc__log(e->s, ZKC_LOG_DEBUG, "election %s: no container parent: %s", e->path,
                 zkc_strerror(rc));
    pthread_mutex_lock(&e->mu);
    e->parent_ok = 1;
    e->parent_pending = 0;
    pthread_mutex_unlock(&e->mu);
    start_create(e);
    unref(e);
}

/* Create our node (not under mu: zkc__pcreate may call back at once), with
 * a getChildren pipelined right behind it. The first time, make the
 * election's node a container first (as Curator's LeaderLatch does), so
 * the server removes it, and its sequence counter, once nobody is left. */
static void start_create(zkc_election *e)
{
    char guid[ZKC_GUID_LEN + 1];
    struct req *r, *lr = NULL;
    int rc;

    pthread_mutex_lock(&e->mu);
    if (e->closed || !e->want || e->node || e->create_pending || e->parent_pending) {
        pthread_mutex_unlock(&e->mu);
        return;
    }
    if (!e->parent_ok) {
        e->parent_pending = 1;
        e->refs++;
        pthread_mutex_unlock(&e->mu);
        zkc__q_container(e->s, e->path, parent_made, e);
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
        unsigned gen;
        zhandle_t *zh = zkc__zh_lock(e->s, &gen);
        int zrc = ZINVALIDSTATE;
        if (zh) {
            req_sent(lr, gen, drop_listed);
            zrc = zoo_aget_children(zh, e->path, 0, listed, lr);
            zkc__zh_unlock(e->s);
            if (zrc != ZOK)
                req_unsent(lr);
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

/* ---------------------------------------------------- watch events */

/* A watch of ours ended: fired by a node event (type), or unfired (0: the
 * reply set none, or its handle was closed). Completion thread, or the
 * thread that closed the handle; mu NOT held. */
static void woken(zkc__qwatch *w, int type)
{
    zkc_election *e = w->owner;
    zkc__qwatch **slot = slot_of(e, w->kind);
    const char *path = w->path;

    pthread_mutex_lock(&e->mu);
    if (*slot == w)
        *slot = NULL;
    if (type == 0 || e->closed) {
        /* nothing to act on */
    } else if (w->kind == W_CHILDREN || w->kind == W_PATH) {
        zkc__log(e->s, ZKC_LOG_DEBUG, "election observer %s: event %d", e->path, type);
        send_list(e, 0);
    } else if (w->kind == W_TARGET) {
        /* The node we waited behind (or our own, when first) went or
         * changed: list again. Taking the target makes a second watch on
         * the same node (set before a reconnect, say) wake nobody. */
        if (e->target && strcmp(path, e->target) == 0) {
            if (!e->node || strcmp(path, e->node) != 0)
                __atomic_add_fetch(&wakeups, 1, __ATOMIC_SEQ_CST);
            else
                e->own_armed = 0; /* our node's watch fired: it is gone */
            zkc__log(e->s, ZKC_LOG_DEBUG, "election %s: event %d on %s", e->path, type, path);
            free(e->target);
            e->target = NULL;
            send_list(e, 0);
        }
    } else if (e->node && strcmp(path, e->node) == 0) {
        /* W_OWN: our node */
        e->own_armed = 0; /* the watch fired */
        if (type == ZOO_DELETED_EVENT) {
            zkc__log(e->s, ZKC_LOG_DEBUG, "election %s: our node was deleted", e->path);
            send_list(e, 0); /* the listing finds it gone: step down, re-enter */
        } else {
            arm_own(e); /* data changed: set it again */
        }
    }
    pthread_mutex_unlock(&e->mu);
    unref(e);
}

/* --------------------------------------------------- connection states */

static void on_state(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_election *e = arg;
    int create = 0;

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
    zkc__session_attach(s);
    /* Before the first request: its answer may reach the callback before
     * this function returns, and a callback comparing its handle with the
     * caller's copy must see it stored (TSan caught the agent doing so). */
    *out = e;
    pthread_mutex_lock(&e->mu);
    send_list(e, 0);
    pthread_mutex_unlock(&e->mu);
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
    /* A watch still set keeps e alive (its context) until it fires or its
     * handle is closed; e->closed keeps it from acting. */
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

/* Send one read through a zkc__call and wait for it: 0 with c->rc the
 * ZooKeeper answer, or ZKC_ECONNLOSS / ZKC_ETIMEDOUT / another ZKC_* code
 * when it could not be sent or answered in time. The read is registered
 * with zkc__pending (zkc__read_send): a completion the client drops at a
 * handle close completes it with ZCLOSING, so a caller waiting without a
 * deadline is never left waiting. */
static int call_read(zkc_session *s, int kind, const char *path, zkc__call *c, int64_t deadline)
{
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(s, &gen);
    int zrc;

    if (!zh)
        return ZKC_ECONNLOSS;
    zrc = zkc__read_send(s, zh, gen, kind, path, c);
    zkc__zh_unlock(s);
    if (zrc != ZOK)
        return zkc__err_from_zk(zrc);
    zrc = zkc__call_wait(c, zkc__remaining(deadline));
    if (zrc == 0 && c->rc == ZCLOSING)
        return ZKC_ECONNLOSS; /* the handle was closed under it: transient */
    return zrc;
}

/* The leader is the first node of the line (queue.h's one order) that is
 * an ephemeral node: the rule every participant and observer applies. */
int zkc_election_observe_leader(zkc_session *s, const char *path, zkc_election_leader_info *info,
                                int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : zkc__now_ms() + timeout_ms;
    zkc__call *lc = NULL, *gc = NULL;
    char **names = NULL;
    char *full;
    int rc, n, i, tries, vanished;

    if (!s || !path || !info || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    for (tries = 0; tries < 10; tries++) {
        lc = zkc__call_new();
        if (!lc)
            return ZKC_ENOMEM;
        rc = call_read(s, ZKC__READ_CHILDREN, path, lc, deadline);
        if (rc == 0 && lc->rc != ZOK)
            rc = zkc__err_from_zk(lc->rc);
        if (rc)
            goto out;
        n = latch_children(&lc->children, NULL, &names);
        if (n < 0) {
            rc = ZKC_ENOMEM;
            goto out;
        }
        vanished = 0;
        for (i = 0; i < n; i++) {
            full = zkc__path_join(path, names[i]);
            gc = full ? zkc__call_new() : NULL;
            if (!gc) {
                free(full);
                rc = ZKC_ENOMEM;
                goto out;
            }
            rc = call_read(s, ZKC__READ_DATA, full, gc, deadline);
            free(full);
            if (rc)
                goto out;
            if (gc->rc == ZNONODE || (gc->rc == ZOK && !zkc__q_eligible(&gc->stat))) {
                /* gone meanwhile, or foreign: the next one in line */
                vanished |= gc->rc == ZNONODE;
                zkc__call_unref(gc);
                gc = NULL;
                continue;
            }
            if (gc->rc != ZOK) {
                rc = zkc__err_from_zk(gc->rc);
                goto out;
            }
            {
                const struct zkc__got *g = gc->extra;
                int len = g ? g->len : 0;
                if (len > ZKC_ELECTION_ID_MAX)
                    len = ZKC_ELECTION_ID_MAX;
                if (len > 0)
                    memcpy(info->id, g->data, (size_t)len);
                info->id[len] = '\0';
            }
            snprintf(info->node, sizeof(info->node), "%s", names[i]);
            info->token = gc->stat.czxid;
            info->session_id = gc->stat.ephemeralOwner;
            rc = 0;
            goto out;
        }
        free(names);
        names = NULL;
        zkc__call_unref(lc);
        lc = NULL;
        if (!vanished)
            return ZKC_ENONODE; /* nobody leads */
        /* the line moved while we read it: list again */
    }
    return ZKC_ENONODE;
out:
    free(names);
    if (gc)
        zkc__call_unref(gc);
    if (lc)
        zkc__call_unref(lc);
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
