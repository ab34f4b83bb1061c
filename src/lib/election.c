/*
 * Leader election: Curator's LeaderLatch layout and ordering (see
 * include/zkcoord/election.h). A participant is a face of the queue engine
 * (qengine.c), which owns its node: the protected create, the pipelined
 * listing, the predecessor watch, the ownership check before leading, the
 * verification at RECONNECTED, LOST, re-entry and the background delete.
 * The grant rule is "first in the line of latch nodes"; the engine also
 * watches our own node from its create on, so a leader whose node is
 * deleted hears it at once and a hand-off costs the old leader's delete and
 * our getChildren only (2 requests, as Curator's). What this file adds:
 * the suspend policies (STEP_DOWN demotes at SUSPENDED and leads again once
 * RECONNECTED verified the node; WAIT keeps leading), LEADER_CHANGED (the
 * head of the line, read for its id), DEMOTED before the node is deleted on
 * resign, and the observer, which holds no node: it reads the line through
 * the children cache (cache.c: listing, watch, relist coalescing, waiting
 * for a missing path, resync and a fresh read after a new session) and,
 * after every listing the cache applied (its `listed` signal, which also
 * comes for an empty or missing path, so "nobody leads" is told at start),
 * reports the head of the line by the one order and eligibility rule.
 *
 * Threads: ZooKeeper completions and watch events (completion thread), the
 * state hook (session manager thread) and the public calls (any thread)
 * all take q.mu and never block under it. User callbacks are queued with
 * zkc__dispatch() while q.mu is held, so they are delivered in the order
 * the state changed.
 *
 * Staleness: the engine's attempts and rounds guard the node (CURATOR-620:
 * two RECONNECTED handlers interleaving kept a client leading with a
 * deleted node; CURATOR-696: a stale path re-adopted after expiry; here
 * only the current attempt may lead, and only after the ownership check).
 * `epoch` guards this file's own requests (head reads, the observer's
 * listings): it grows whenever the election abandons its view.
 *
 * Watches are per request (zkc__qwatch, queue.h; the cache's own), no
 * session-wide router.
 * Locks (outer to inner): hk_mu (session hooks) -> q.mu -> zh_mu; the
 * observer's cache mutex -> q.mu (its `listed` runs under the cache's
 * mutex; q.mu is never held while calling into the cache).
 */
#include "cache.h"
#include "naming.h"
#include "qengine.h"
#include "zkcoord/election.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LATCH_BODY "latch-" /* Curator's LeaderLatch LOCK_NAME */

struct zkc_election {
    zkc__qe q; /* first: the engine's ops get it */
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
    int leader;
    int suspended;
    char *last_head;  /* node name of the leader last reported ("" = nobody) */
    char *asked_head; /* node name whose data is being read for LEADER_CHANGED */

    /* the observer's */
    zkc__retry retry;          /* read the head again once connected */
    zkc__cache *cache;         /* the line's children */
    struct String_vector seen; /* the names of the last listing (copies) */
};

#define EL_OF(qe) ((zkc_election *)(void *)(qe))

/* Request context of this file's own requests: holds a reference. */
struct req {
    zkc_election *e;
    unsigned epoch;
    char *path;
    /* Registered while in flight (zkc__pending): a completion the client
     * drops at handle close still runs once, as ZCLOSING (issue 9, bug 5). */
    zkc__pending pend;
    void (*drop)(struct req *r);
};

/* Test hook: watch events that woke a participant waiting behind another
 * node (the no-herd test counts them). */
static unsigned long wakeups;

unsigned long zkc__election_wakeups(void);
unsigned long zkc__election_wakeups(void)
{
    return __atomic_load_n(&wakeups, __ATOMIC_SEQ_CST);
}

/* Test hook: when set, runs right before a participant sends the request
 * that sets its watch on the node it waits behind, with the path of that
 * node, on the thread that sends it (the watch-leak test deletes the node
 * there). */
extern void (*zkc__election_test_before_watch)(const char *path);
void (*zkc__election_test_before_watch)(const char *path);

static void observe(zkc_election *e);

/* ------------------------------------------------------------ lifetime */

static void destroy(zkc__qe *q)
{
    zkc_election *e = EL_OF(q);

    free(e->id);
    free(e->last_head);
    free(e->asked_head);
    deallocate_String_vector(&e->seen);
    free(e);
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
    zkc__qe_ref(&e->q);
    return r;
}

/* mu held or not: the caller holds another reference when mu is held. */
static void req_free(struct req *r)
{
    zkc_election *e = r->e;

    free(r->path);
    free(r);
    zkc__qe_unref(&e->q);
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
    zkc__pending_add(r->e->q.s, &r->pend, gen, req_dropped);
}

static void req_unsent(struct req *r)
{
    zkc__pending_done(r->e->q.s, &r->pend);
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

static void deliver(void *arg)
{
    struct note *n = arg;
    zkc_election *e = n->e;
    int closed;

    pthread_mutex_lock(&e->q.mu);
    closed = e->closed;
    /* DEMOTED runs on the safety lane, ELECTED on the ordinary one, with
     * no order between them: an ELECTED whose term has already ended (its
     * DEMOTED may have run first) must not be told. */
    if (n->ev.type == ZKC_ELECTION_ELECTED && (!e->leader || e->q.token != n->ev.token))
        closed = 1;
    pthread_mutex_unlock(&e->q.mu);
    n->ev.leader_id = n->id;
    n->ev.leader_node = n->node;
    if (!closed && e->fn)
        e->fn(e, &n->ev, e->user_data);
    if (n->del_path)
        zkc__bg_delete(e->q.s, n->del_path, n->del_gen, NULL);
    free(n->id);
    free(n->node);
    free(n->del_path);
    free(n);
    zkc__qe_unref(&e->q);
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
    zkc__qe_ref(&e->q);
    /* DEMOTED: the safety lane (a leader must hear it at once, whatever
     * else is queued); everything else: the ordinary lane. */
    if ((type == ZKC_ELECTION_DEMOTED ? zkc__dispatch_safety : zkc__dispatch)(e->q.s, deliver, n) !=
        0) {
        zkc__qe_unref(&e->q); /* the caller holds another */
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
    zkc__log(e->q.s, ZKC_LOG_ERROR, "election %s: cannot queue the %s event", e->q.parent,
             zkc_election_event_name(type));
    if (del_path)
        zkc__bg_delete(e->q.s, del_path, del_gen, NULL);
}

/* mu held: the participant stops leading. */
static void demote(zkc_election *e, zkc_election_demote_reason reason, const char *del_path,
                   unsigned del_gen)
{
    e->leader = 0;
    pthread_cond_broadcast(&e->q.cond);
    zkc__log(e->q.s, ZKC_LOG_INFO, "election %s: %s demoted (%s)", e->q.parent, e->id,
             zkc_election_demote_reason_name(reason));
    post(e, ZKC_ELECTION_DEMOTED, e->q.token, reason, NULL, 0, NULL, 0, del_path, del_gen);
}

/* mu held: this participant leads (the engine granted its node: first in
 * line, and ours). */
static void become_leader(zkc_election *e)
{
    if (e->leader)
        return;
    e->leader = 1;
    pthread_cond_broadcast(&e->q.cond);
    zkc__log(e->q.s, ZKC_LOG_INFO, "election %s: %s elected (token %lld)", e->q.parent, e->id,
             (long long)e->q.token);
    post(e, ZKC_ELECTION_ELECTED, e->q.token, ZKC_DEMOTE_NONE, e->id, e->id_len, e->q.name, 0, NULL,
         0);
    if (!e->last_head || strcmp(e->last_head, e->q.name) != 0) {
        free(e->last_head);
        e->last_head = strdup(e->q.name);
        post(e, ZKC_ELECTION_LEADER_CHANGED, e->q.token, ZKC_DEMOTE_NONE, e->id, e->id_len,
             e->q.name, 0, NULL, 0);
    }
}

/* ------------------------------------------------- retries (observer) */

static void retry_fn(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_election *e = arg;

    (void)gen;
    pthread_mutex_lock(&e->q.mu);
    zkc__retry_fired(&e->retry);
    if (!e->closed && (st == ZKC_CONN_CONNECTED || st == ZKC_CONN_RECONNECTED))
        observe(e);
    pthread_mutex_unlock(&e->q.mu);
    zkc__qe_unref(&e->q);
}

static void ref_fn(void *e)
{
    zkc__qe_ref(&((zkc_election *)e)->q);
}

static void unref_fn(void *e)
{
    zkc__qe_unref(&((zkc_election *)e)->q);
}

/* mu held: read the head again once connected (a one-shot, so no spinning
 * while the connection is down). Nothing is armed once closing. */
static void retry_later(zkc_election *e)
{
    if (e->closed || e->retry.armed)
        return;
    zkc__retry_arm(&e->retry, e->q.s, retry_fn, e, ref_fn, unref_fn);
}

/* ZCLOSING / ZINVALIDSTATE: the handle of a session being replaced. */
static int transient(int zrc)
{
    return zkc__zk_connloss(zrc) || zkc__zk_expired(zrc) || zrc == ZSESSIONMOVED ||
           zrc == ZCLOSING || zrc == ZINVALIDSTATE;
}

/* ------------------------------------------------------ the head's id */

static void head_read(int zrc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_election *e = r->e;

    zkc__pending_done(e->q.s, &r->pend);
    pthread_mutex_lock(&e->q.mu);
    if (stale(r) || !e->asked_head || strcmp(e->asked_head, r->path) != 0)
        goto out;
    free(e->asked_head);
    e->asked_head = NULL;
    if (zrc == ZOK && !zkc__q_eligible(st)) {
        /* Not an ephemeral node: never the leader (queue.h). Skip it; the
         * observer reports the next one of its last listing (a
         * participant's engine skips it too from now on, and lists
         * again). */
        zkc__log(e->q.s, ZKC_LOG_WARN, "election %s: %s is not ephemeral: not a leader, skipped",
                 e->q.parent, r->path);
        if (zkc__q_foreign_add(&e->q.foreign, r->path) == 0) {
            if (e->observer)
                observe(e);
            else
                zkc__qe_relist(&e->q);
        }
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
    } else if (transient(zrc) && e->observer) {
        retry_later(e);
    }
    /* NONODE: the leader left meanwhile; the next listing reports who
     * follows it. */
out:
    pthread_mutex_unlock(&e->q.mu);
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

    if ((e->asked_head && strcmp(e->asked_head, head) == 0) ||
        (e->last_head && strcmp(e->last_head, head) == 0))
        return;
    full = zkc__path_join(e->q.parent, head);
    r = req_new(e, head);
    free(e->asked_head);
    e->asked_head = strdup(head);
    if (!full || !r || !e->asked_head)
        goto fail;
    zh = zkc__zh_lock(e->q.s, &gen);
    if (!zh)
        goto retry;
    req_sent(r, gen, drop_head);
    zrc = zoo_aget(zh, full, 0, head_read, r);
    zkc__zh_unlock(e->q.s);
    if (zrc != ZOK) {
        req_unsent(r);
        goto retry;
    }
    free(full);
    return;
retry:
    if (e->observer)
        retry_later(e);
fail:
    if (r)
        req_free(r);
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

/* The line of latch nodes in the one order (queue.h), less the nodes found
 * to be foreign. Returns the count or -1; *out is a new array of borrowed
 * names. */
static int latch_children(const struct String_vector *v, const zkc__q_foreign *f, char ***out)
{
    return zkc__q_line(v, ZKC__Q_BIT(ZKC__Q_LATCH), f, out);
}

/* ------------------------------------------------------ the observer */

/* mu held: report the head of the last listing, by the one order and
 * eligibility rule (foreign nodes found by head reads left out). */
static void observe(zkc_election *e)
{
    char **names = NULL;
    int n;

    if (e->closed)
        return;
    n = latch_children(&e->seen, &e->q.foreign, &names);
    if (n == 0)
        report_nobody(e);
    else if (n > 0)
        ask_head(e, names[0]);
    else
        zkc__log(e->q.s, ZKC_LOG_ERROR, "election %s: out of memory", e->q.parent);
    free(names);
}

/* The cache's: names are all the observer needs (the head's data is read
 * on its own, only for the head). */
static const char obs_value[] = "node";

static void *obs_decode(void *ctx, const char *name, const char *data, int len,
                        const struct Stat *st)
{
    (void)ctx;
    (void)name;
    (void)data;
    (void)len;
    (void)st;
    return (void *)obs_value;
}

/* Completion thread, the cache's mutex held: a listing was applied (also
 * the first, and one of a missing path: then nobody leads). Keep its names
 * and report the head. */
static void obs_listed(void *ctx)
{
    zkc_election *e = ctx;
    struct String_vector v = {0, NULL};
    zkc__centry *const *c;
    int i, n;

    c = zkc__cache_sorted(e->cache, &n);
    if (n > 0 && allocate_String_vector(&v, n) != 0) {
        zkc__log(e->q.s, ZKC_LOG_ERROR, "election %s: out of memory", e->q.parent);
        return;
    }
    for (i = 0; i < n; i++) {
        if (!(v.data[i] = strdup(c[i]->name))) {
            v.count = i;
            deallocate_String_vector(&v);
            zkc__log(e->q.s, ZKC_LOG_ERROR, "election %s: out of memory", e->q.parent);
            return;
        }
    }
    pthread_mutex_lock(&e->q.mu);
    deallocate_String_vector(&e->seen);
    e->seen = v;
    observe(e);
    pthread_mutex_unlock(&e->q.mu);
}

static const zkc__cache_ops obs_ops = {
    .decode = obs_decode,
    .listed = obs_listed,
};

/* ------------------------------------------------- the engine's ops */

/* First in line leads. */
static int rule(zkc__qe *q, char **names, int n, int me)
{
    (void)q;
    (void)names;
    (void)n;
    return me - 1;
}

/* Every listing: report the head of the line when it is not us (we report
 * ourselves when granted). */
static void line(zkc__qe *q, char **names, int n, int me)
{
    zkc_election *e = EL_OF(q);

    (void)n;
    if (me > 0 && !e->closed)
        ask_head(e, names[0]);
}

static void done(zkc__qe *q, int rc)
{
    zkc_election *e = EL_OF(q);

    pthread_cond_broadcast(&q->cond);
    if (rc == 0) {
        /* Answered just before the connection dropped: under STEP_DOWN,
         * RECONNECTED (which verifies the node) elects. */
        if (e->want && !(e->suspended && e->policy == ZKC_ELECTION_STEP_DOWN))
            become_leader(e);
        return;
    }
    if (rc == ZKC_ECANCELED || rc == ZKC_ECLOSED || e->closed)
        return; /* resigned or closed, or the session is closing */
    zkc__log(q->s, ZKC_LOG_ERROR, "election %s: %s stops campaigning: %s", q->parent, e->id,
             zkc_strerror(rc));
    e->want = 0;
    e->epoch++;
    post(e, ZKC_ELECTION_ERROR, 0, ZKC_DEMOTE_NONE, NULL, 0, NULL, rc, NULL, 0);
}

static void event(zkc__qe *q, zkc_lock_event ev)
{
    zkc_election *e = EL_OF(q);

    switch (ev) {
    case ZKC_LOCK_SUSPENDED:
        break; /* state() demoted already under STEP_DOWN */
    case ZKC_LOCK_RECONNECTED:
        /* Same session, node verified ours: lead again after STEP_DOWN. */
        if (e->want)
            become_leader(e);
        break;
    case ZKC_LOCK_LOST:
        /* Our node is gone (session lost, or deleted by someone): step
         * down and queue a new node at the back of the line, as Curator's
         * LeaderLatch resets when it cannot find its node. */
        if (e->leader)
            demote(e, q->lost_node ? ZKC_DEMOTE_NODE_DELETED : ZKC_DEMOTE_LOST, NULL, 0);
        if (q->lost_node)
            zkc__log(q->s, ZKC_LOG_WARN, "election %s: node of %s vanished; re-entering", q->parent,
                     e->id);
        e->epoch++;
        if (e->want && !e->closed)
            zkc__qe_requeue(q);
        else
            zkc__qe_forget(q);
        break;
    }
}

static void state(zkc__qe *q, zkc_conn_state st, unsigned gen)
{
    zkc_election *e = EL_OF(q);

    (void)gen;
    if (e->closed)
        return;
    e->suspended = st == ZKC_CONN_SUSPENDED;
    if (e->observer)
        return; /* the cache follows the session by itself */
    /* Curator's standard error policy: at SUSPENDED a leader can no
     * longer know it leads; its session may expire any moment and another
     * be elected (Curator TN10, TN14). */
    if (st == ZKC_CONN_SUSPENDED && e->leader && e->policy == ZKC_ELECTION_STEP_DOWN)
        demote(e, ZKC_DEMOTE_SUSPENDED, NULL, 0);
    if (st == ZKC_CONN_LOST && e->leader && q->state != ZKC__QE_HELD)
        demote(e, ZKC_DEMOTE_LOST, NULL, 0);
}

static void woke(zkc__qe *q)
{
    (void)q;
    __atomic_add_fetch(&wakeups, 1, __ATOMIC_SEQ_CST);
}

static void before_watch(zkc__qe *q, const char *path)
{
    (void)q;
    if (zkc__election_test_before_watch)
        zkc__election_test_before_watch(path);
}

static const zkc__qe_ops election_ops = {
    .rule = rule,
    .done = done,
    .event = event,
    .destroy = destroy,
    .line = line,
    .state = state,
    .woke = woke,
    .before_watch = before_watch,
};

/* -------------------------------------------------------------- public */

void zkc_election_opts_init(zkc_election_opts *o)
{
    if (o)
        memset(o, 0, sizeof(*o));
}

static int alloc_election(zkc_election **out, zkc_session *s, const char *path, const char *id)
{
    zkc_election *e = calloc(1, sizeof(*e));
    int rc;

    if (!e)
        return ZKC_ENOMEM;
    e->id = strdup(id);
    if (!e->id) {
        free(e);
        return ZKC_ENOMEM;
    }
    e->id_len = (int)strlen(id);
    rc = zkc__qe_init(&e->q, s, path, LATCH_BODY, id, ZKC__Q_BIT(ZKC__Q_LATCH), &election_ops);
    if (rc) {
        free(e->id);
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

int zkc_election_new(zkc_election **out, zkc_session *s, const char *path,
                     const zkc_election_opts *o)
{
    zkc_election *e;
    size_t id_len;
    unsigned attempt;
    int rc;

    if (!out || !s || !path || !o || !o->id || zkc__path_check(path) != 0 || strcmp(path, "/") == 0)
        return ZKC_EINVAL;
    id_len = strlen(o->id);
    if (id_len == 0 || id_len > ZKC_ELECTION_ID_MAX)
        return ZKC_EINVAL;
    if (o->on_suspend != ZKC_ELECTION_STEP_DOWN && o->on_suspend != ZKC_ELECTION_WAIT)
        return ZKC_EINVAL;
    rc = alloc_election(&e, s, path, o->id);
    if (rc)
        return rc;
    e->policy = o->on_suspend;
    e->fn = o->fn;
    e->user_data = o->user_data;
    e->q.watch_own = 1;
    pthread_mutex_lock(&e->q.mu);
    e->want = 1;
    attempt = zkc__qe_begin(&e->q, 0);
    pthread_mutex_unlock(&e->q.mu);
    *out = e;
    zkc__qe_launch(&e->q, attempt);
    return 0;
}

int zkc_election_observer_new(zkc_election **out, zkc_session *s, const char *path,
                              zkc_election_fn fn, void *user_data)
{
    zkc__cache_cfg cfg;
    zkc_election *e;
    int rc;

    if (!out || !s || !path || !fn || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    rc = alloc_election(&e, s, path, "");
    if (rc)
        return rc;
    e->observer = 1;
    e->fn = fn;
    e->user_data = user_data;
    memset(&cfg, 0, sizeof(cfg));
    rc = zkc__cache_new(&e->cache, s, path, &obs_ops, e, &cfg);
    if (rc) {
        zkc_election_close(e);
        return rc;
    }
    /* Before the first request: its answer may reach the callback before
     * this function returns, and a callback comparing its handle with the
     * caller's copy must see it stored (TSan caught the agent doing so). */
    *out = e;
    zkc__cache_start(e->cache);
    return 0;
}

int zkc_election_close(zkc_election *e)
{
    zkc__call *c = NULL;

    if (!e)
        return 0;
    pthread_mutex_lock(&e->q.mu);
    e->closed = 1;
    e->want = 0;
    e->epoch++;
    e->leader = 0;
    pthread_cond_broadcast(&e->q.cond);
    while (e->waiters > 0)
        pthread_cond_wait(&e->q.cond, &e->q.mu);
    pthread_mutex_unlock(&e->q.mu);
    if (e->cache) {
        /* no listing reaches e after this (q.mu not held: see the top) */
        zkc__cache_close(e->cache);
        zkc__cache_unref(e->cache);
        e->cache = NULL;
    }
    zkc__qe_close_begin(&e->q);
    pthread_mutex_lock(&e->q.mu);
    e->q.freed = 1;
    if (e->q.state == ZKC__QE_ACQUIRING)
        zkc__qe_fail(&e->q, ZKC_ECANCELED);
    else if (e->q.state == ZKC__QE_HELD)
        c = zkc__qe_release(&e->q);
    else if (e->q.state == ZKC__QE_LOST)
        zkc__qe_forget(&e->q);
    pthread_mutex_unlock(&e->q.mu);
    /* close() leaves nothing in line behind it: wait for the delete's
     * first answer, at most a session timeout. A watch still set keeps e
     * alive (its context) until it fires or its handle is closed;
     * e->closed keeps it from acting. */
    if (c) {
        zkc__call_wait(c, zkc_session_timeout_ms(e->q.s));
        zkc__call_unref(c);
    }
    zkc__qe_close_end(&e->q);
    return 0;
}

int zkc_election_resign(zkc_election *e)
{
    char *node = NULL;
    unsigned gen = 0;

    if (!e)
        return ZKC_EINVAL;
    pthread_mutex_lock(&e->q.mu);
    if (e->observer) {
        pthread_mutex_unlock(&e->q.mu);
        return ZKC_EINVAL;
    }
    if (!e->want) {
        pthread_mutex_unlock(&e->q.mu);
        return 0;
    }
    e->want = 0;
    e->epoch++;
    if (e->q.state == ZKC__QE_HELD)
        zkc__qe_abandon(&e->q, &node, &gen);
    else if (e->q.state == ZKC__QE_ACQUIRING)
        zkc__qe_fail(&e->q, ZKC_ECANCELED);
    else if (e->q.state == ZKC__QE_LOST)
        zkc__qe_forget(&e->q);
    if (e->leader) {
        /* The node goes only after the DEMOTED callback returned: the next
         * leader cannot be elected while this one still acts as leader. */
        demote(e, ZKC_DEMOTE_RESIGNED, node, gen);
    } else if (node) {
        zkc__bg_delete(e->q.s, node, gen, NULL);
    }
    pthread_cond_broadcast(&e->q.cond);
    pthread_mutex_unlock(&e->q.mu);
    free(node);
    return 0;
}

int zkc_election_rejoin(zkc_election *e)
{
    unsigned attempt;

    if (!e)
        return ZKC_EINVAL;
    pthread_mutex_lock(&e->q.mu);
    if (e->observer || e->closed) {
        pthread_mutex_unlock(&e->q.mu);
        return ZKC_EINVAL;
    }
    if (e->want) {
        pthread_mutex_unlock(&e->q.mu);
        return 0;
    }
    e->want = 1;
    e->epoch++;
    if (e->q.state == ZKC__QE_LOST)
        zkc__qe_forget(&e->q);
    attempt = zkc__qe_begin(&e->q, 0);
    pthread_mutex_unlock(&e->q.mu);
    zkc__qe_launch(&e->q, attempt);
    return 0;
}

int zkc_election_is_leader(zkc_election *e, int64_t *token)
{
    int l;

    if (!e)
        return 0;
    pthread_mutex_lock(&e->q.mu);
    l = e->leader;
    if (l && token)
        *token = e->q.token;
    pthread_mutex_unlock(&e->q.mu);
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
    pthread_mutex_lock(&e->q.mu);
    e->waiters++;
    while (!e->leader && e->want && !e->closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&e->q.cond, &e->q.mu);
        } else if (pthread_cond_timedwait(&e->q.cond, &e->q.mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (e->leader) {
        if (token)
            *token = e->q.token;
    } else if (!e->want || e->closed) {
        rc = ZKC_ECANCELED;
    } else {
        rc = ZKC_ETIMEDOUT;
    }
    if (--e->waiters == 0 && e->closed)
        pthread_cond_broadcast(&e->q.cond);
    pthread_mutex_unlock(&e->q.mu);
    return rc;
}

int zkc_election_node_path(zkc_election *e, char *buf, size_t len)
{
    int rc = 0;

    if (!e || !buf)
        return ZKC_EINVAL;
    pthread_mutex_lock(&e->q.mu);
    if (!e->q.node || e->observer)
        rc = ZKC_ENONODE;
    else if (strlen(e->q.node) + 1 > len)
        rc = ZKC_EINVAL;
    else
        memcpy(buf, e->q.node, strlen(e->q.node) + 1);
    pthread_mutex_unlock(&e->q.mu);
    return rc;
}

int zkc_election_fenced_multi(zkc_election *e, const zkc_op *ops, int nops, int timeout_ms)
{
    char *guard = NULL;
    int rc;

    if (!e || e->observer)
        return ZKC_EINVAL;
    pthread_mutex_lock(&e->q.mu);
    /* The node alone is not enough: a follower's node exists too. While the
     * node that won the term exists, nobody can sort ahead of it, so the
     * local "leading" plus the server's check of the node is the term. */
    if (e->leader && e->q.node)
        guard = strdup(e->q.node);
    rc = e->leader && e->q.node && !guard ? ZKC_ENOMEM : 0;
    pthread_mutex_unlock(&e->q.mu);
    if (rc)
        return rc;
    if (!guard)
        return ZKC_ENOTHELD;
    rc = zkc_fenced_multi(e->q.s, guard, ops, nops, timeout_ms);
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
    return zkc_election_observe_leader(e->q.s, e->q.parent, info, timeout_ms);
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
