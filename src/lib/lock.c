/*
 * The fair lock engine: one queue entry (an ephemeral sequential node) per
 * handle, driven as an asynchronous state machine from ZooKeeper completions
 * and watches (completion thread) and session hooks (manager thread). The
 * mutex and both sides of the read/write lock are this one engine with a
 * different grant rule; the semaphore uses it for its internal mutex.
 *
 * Compatibility with Curator (InterProcessMutex, LockInternals,
 * StandardLockInternalsDriver): nodes are "<path>/_c_<uuid>-lock-<seq>"
 * written with protection; Curator sorts children by the part after the
 * last "lock-" (string compare of the zero-padded sequence), a node is
 * granted when its index is below maxLeases (1), and otherwise it watches
 * children[index - 1]. We order by the sequence parsed as a signed 32-bit
 * number (the same order until the 2^31 wrap, and still correct after it).
 *
 * A round of acquire: create (zoo_acreate2, so the reply carries czxid and
 * ephemeralOwner) and getChildren are sent back to back; the server answers
 * one session's requests in order, so one wait covers both. Uncontended
 * acquire + release therefore costs 3 requests and 2 round trips; Curator
 * waits for the create before asking for the children.
 *
 * Watching: like Curator we set the watch with getData, not exists: an
 * exists watch on a node that is already gone would stay registered on the
 * server for a path that never comes back (a watch leak Curator's
 * LockInternals comments on).
 *
 * Locks: l->mu guards the state. Watch subscriptions change under l->wmu,
 * never with l->mu held, because the session routes watch events with its
 * sub_mu held and our watch function takes l->mu (session.c lock order).
 */
#include "cache.h"
#include "queue.h"
#include "naming.h"
#include "pcreate.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum lstate {
    L_IDLE = 0,
    L_ACQUIRING = 1,
    L_HELD = 2,
    L_LOST = 3, /* was held; the holder has been told it is gone */
};

struct zkc_lock {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs; /* atomic */
    zkc_session *s;
    char *parent;
    char *owner;
    const char *body;
    zkc__lq_kind kind;
    zkc_lock *write_side; /* READ only */
    zkc_lock_event_fn on_event;
    void *ud;
    int owned_by_rw;
    int freed;

    enum lstate state;
    unsigned attempt; /* bumped when an acquire starts or is abandoned */
    /* Bumped when an attempt starts over on a new session: requests of the
     * old round may never complete (the 3.8 client can drop completions at
     * zookeeper_close), so nothing waits for them. */
    unsigned round;
    int try_only;
    int creating;      /* protected create of this attempt in flight */
    int gc_inflight;   /* getChildren of this attempt in flight (or reserved) */
    zkc__retry resume; /* "continue once connected" is pending */
    char *node;        /* full path of our node */
    const char *name;  /* its last segment (points into node) */
    unsigned node_gen; /* session generation of node */
    int64_t token;
    int64_t owner_sid;
    int count;
    int held_flag;          /* atomic mirror of state == L_HELD, read by the READ side */
    char *watching;         /* full path of the node we wait on */
    zkc__q_foreign foreign; /* persistent nodes planted in the line */
    int wrap_warned;
    int parent_ok; /* the container parent was made (or tried) */

    /* result of the pending acquire */
    unsigned res_attempt;
    int res_rc;
    int sync_waiting;
    zkc_lock_acquire_fn acb;
    void *acb_ud;

    pthread_mutex_t wmu; /* sub */
    char *sub;           /* path subscribed with zkc__watch */
};

/* A request in flight. It is registered with the session (zkc__pending):
 * a completion the 3.8 client drops at zookeeper_close still runs, once,
 * as ZCLOSING, so no attempt waits for it and the reference it holds is
 * not leaked (issue 9, bug 5). */
enum rkind { R_CHILDREN, R_WATCH, R_VERIFY };

struct req {
    zkc_lock *l;
    unsigned attempt;
    unsigned round;
    enum rkind kind;
    zkc__pending pend;
};

static void evaluate(zkc_lock *l);
static void launch(zkc_lock *l, unsigned attempt);

/* ------------------------------------------------------------ lifetime */

static void lock_ref(zkc_lock *l)
{
    __atomic_add_fetch(&l->refs, 1, __ATOMIC_SEQ_CST);
}

static void lock_unref(zkc_lock *l)
{
    if (__atomic_sub_fetch(&l->refs, 1, __ATOMIC_SEQ_CST) != 0)
        return;
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->wmu);
    pthread_cond_destroy(&l->cond);
    free(l->parent);
    free(l->owner);
    free(l->node);
    free(l->watching);
    free(l->sub);
    zkc__q_foreign_clear(&l->foreign);
    free(l);
}

/* mu held */
static struct req *req_new(zkc_lock *l)
{
    struct req *r = malloc(sizeof(*r));

    if (!r)
        return NULL;
    r->l = l;
    r->attempt = l->attempt;
    r->round = l->round;
    r->kind = R_CHILDREN;
    r->pend.next = r->pend.prev = &r->pend; /* not registered */
    lock_ref(l);
    return r;
}

static void req_free(struct req *r)
{
    lock_unref(r->l);
    free(r);
}

static void children_done(int rc, const struct String_vector *v, const struct Stat *pst,
                          const void *data);
static void watch_set(int rc, const char *value, int len, const struct Stat *st, const void *data);
static void verified(int rc, const struct Stat *st, const void *data);

static void req_dropped(zkc__pending *pd)
{
    struct req *r = (struct req *)(void *)((char *)pd - offsetof(struct req, pend));

    switch (r->kind) {
    case R_CHILDREN:
        children_done(ZCLOSING, NULL, NULL, r);
        break;
    case R_WATCH:
        watch_set(ZCLOSING, NULL, 0, NULL, r);
        break;
    case R_VERIFY:
        verified(ZCLOSING, NULL, r);
        break;
    }
}

/* zh held (from zkc__zh_lock, generation gen): send r of `kind` on `path`.
 * Returns the zoo_a* result; on failure no completion will come. */
static int req_send(zhandle_t *zh, unsigned gen, struct req *r, enum rkind kind, const char *path)
{
    zkc_session *s = r->l->s;
    int rc = ZBADARGUMENTS;

    r->kind = kind;
    zkc__pending_add(s, &r->pend, gen, req_dropped);
    switch (kind) {
    case R_CHILDREN:
        rc = zoo_aget_children2(zh, path, 0, children_done, r);
        break;
    case R_WATCH:
        rc = zoo_aget(zh, path, 1, watch_set, r);
        break;
    case R_VERIFY:
        rc = zoo_aexists(zh, path, 0, verified, r);
        break;
    }
    if (rc != ZOK)
        zkc__pending_done(s, &r->pend);
    return rc;
}

/* mu held: is this completion about the acquire in progress? */
static int current(zkc_lock *l, const struct req *r)
{
    return r->attempt == l->attempt && r->round == l->round && l->state == L_ACQUIRING;
}

/* mu held: is r of the current round of the current attempt (whatever the
 * state)? Counters of requests in flight belong to one round. */
static int this_round(zkc_lock *l, const struct req *r)
{
    return r->attempt == l->attempt && r->round == l->round;
}

const char *zkc_lock_event_name(zkc_lock_event ev)
{
    switch (ev) {
    case ZKC_LOCK_SUSPENDED:
        return "suspended";
    case ZKC_LOCK_RECONNECTED:
        return "reconnected";
    case ZKC_LOCK_LOST:
        return "lost";
    }
    return "?";
}

/* ------------------------------------------------- user notifications */

struct note {
    zkc_lock *l;
    int is_event;
    zkc_lock_event ev;
    int rc;
    int64_t token;
    zkc_lock_acquire_fn acb;
    void *acb_ud;
};

static void run_note(void *arg)
{
    struct note *n = arg;
    zkc_lock *l = n->l;
    int freed, stale;

    /* SUSPENDED and LOST go on the safety lane, the rest on the ordinary
     * one, with no order between the two: an ordinary note that arrives
     * after its hold ended must not tell of a hold the safety lane has
     * already taken back. */
    pthread_mutex_lock(&l->mu);
    freed = l->freed;
    stale = l->state != L_HELD || l->token != n->token;
    pthread_mutex_unlock(&l->mu);
    if (n->is_event && n->ev == ZKC_LOCK_RECONNECTED && stale)
        freed = 1; /* the hold it confirms is gone: LOST says so */
    else if (!n->is_event && n->rc == 0 && stale)
        n->rc = ZKC_ESESSIONLOST; /* granted, but lost before this ran */
    if (!freed) {
        if (n->is_event && l->on_event)
            l->on_event(l, n->ev, n->token, l->ud);
        else if (!n->is_event)
            n->acb(l, n->rc, n->token, n->acb_ud);
    }
    lock_unref(l);
    free(n);
}

/* mu held */
static void post_note(zkc_lock *l, struct note *tmpl)
{
    struct note *n = malloc(sizeof(*n));

    if (!n) {
        zkc__log(l->s, ZKC_LOG_ERROR, "out of memory: a lock callback for %s is lost", l->parent);
        return;
    }
    *n = *tmpl;
    n->l = l;
    lock_ref(l);
    if ((n->is_event && n->ev != ZKC_LOCK_RECONNECTED ? zkc__dispatch_safety
                                                      : zkc__dispatch)(l->s, run_note, n) != 0) {
        lock_unref(l);
        free(n);
    }
}

/* mu held */
static void post_event(zkc_lock *l, zkc_lock_event ev)
{
    struct note n;

    if (!l->on_event)
        return;
    memset(&n, 0, sizeof(n));
    n.is_event = 1;
    n.ev = ev;
    n.token = l->token;
    post_note(l, &n);
}

/* mu held: the pending acquire ends with rc (0 = granted). */
static void finish_acquire(zkc_lock *l, int rc)
{
    l->res_attempt = l->attempt;
    l->res_rc = rc;
    pthread_cond_broadcast(&l->cond);
    if (l->acb) {
        struct note n;
        memset(&n, 0, sizeof(n));
        n.rc = rc;
        n.token = rc == 0 ? l->token : 0;
        n.acb = l->acb;
        n.acb_ud = l->acb_ud;
        l->acb = NULL;
        post_note(l, &n);
    }
}

/* mu held: forget our node, deleting it in the background. */
static void drop_node(zkc_lock *l)
{
    if (l->node) {
        zkc__bg_delete(l->s, l->node, l->node_gen, NULL);
        free(l->node);
        l->node = NULL;
        l->name = NULL;
    }
    free(l->watching);
    l->watching = NULL;
}

/* mu held: the acquire in progress fails (or is abandoned) with rc. */
static void fail_acquire(zkc_lock *l, int rc)
{
    finish_acquire(l, rc);
    drop_node(l);
    l->state = L_IDLE;
    l->attempt++;
    l->try_only = 0;
}

/* ---------------------------------------------------- watch routing */

static void on_watch(void *arg, int type, const char *path);

/* mu NOT held. Subscribe to `path` (NULL: none), dropping the old one. */
static void set_sub(zkc_lock *l, const char *path)
{
    pthread_mutex_lock(&l->wmu);
    if (l->sub && (!path || strcmp(l->sub, path) != 0)) {
        zkc__unwatch(l->s, l->sub, on_watch, l);
        free(l->sub);
        l->sub = NULL;
    }
    if (path && !l->sub) {
        char *copy = strdup(path);
        if (copy && zkc__watch(l->s, copy, on_watch, l) == 0)
            l->sub = copy;
        else
            free(copy);
    }
    pthread_mutex_unlock(&l->wmu);
}

/* ---------------------------------------------- resume after a loss */

/* Replies that mean "not now", not "no": the connection or the session
 * went, or the handle is being swapped for a new session's (its pending
 * requests end with ZCLOSING, new ones meet ZINVALIDSTATE). resume_later()
 * tells a real close (the session's) from these. */
static int transient(int zrc)
{
    return zkc__zk_connloss(zrc) || zrc == ZSESSIONEXPIRED || zrc == ZSESSIONMOVED ||
           zrc == ZCLOSING || zrc == ZINVALIDSTATE;
}

static void resume(void *arg, zkc_conn_state st, unsigned gen);

static void ref_fn(void *l)
{
    lock_ref(l);
}

static void unref_fn(void *l)
{
    lock_unref(l);
}

/* mu held: continue the acquire in progress once connected again (one
 * pending run per handle: zkc__retry). */
static void resume_later(zkc_lock *l)
{
    if (l->resume.armed)
        return;
    if (!zkc__retry_arm(&l->resume, l->s, resume, l, ref_fn, unref_fn))
        fail_acquire(l, ZKC_ECLOSED); /* the session is closing */
}

static void resume(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_lock *l = arg;
    int relaunch = 0;
    unsigned attempt;

    pthread_mutex_lock(&l->mu);
    zkc__retry_fired(&l->resume);
    attempt = l->attempt;
    if (l->state != L_ACQUIRING) {
        /* nothing to continue */
    } else if (st == ZKC_CONN_NONE) {
        fail_acquire(l, ZKC_ECLOSED);
    } else if (st == ZKC_CONN_LOST) {
        resume_later(l); /* wait for the new session */
    } else if (gen != l->node_gen) {
        /* A new session: our node (or the create in flight) died with the
         * old one. Start a new round at once instead of waiting for the old
         * round's replies: the client may never deliver them. */
        l->round++;
        l->creating = 0;
        l->gc_inflight = 0;
        free(l->node);
        l->node = NULL;
        l->name = NULL;
        free(l->watching);
        l->watching = NULL;
        relaunch = 1;
    } else if (l->creating) {
        /* the protected create recovers by itself */
    } else if (l->node) {
        if (l->gc_inflight == 0)
            evaluate(l);
    } else {
        /* our node died with the old session: queue again */
        free(l->node);
        l->node = NULL;
        l->name = NULL;
        free(l->watching);
        l->watching = NULL;
        relaunch = 1;
    }
    pthread_mutex_unlock(&l->mu);
    if (relaunch)
        launch(l, attempt);
    lock_unref(l);
}

/* ---------------------------------------------------------- the round */

static void watch_set(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_lock *l = r->l;

    zkc__pending_done(l->s, &r->pend);
    (void)value;
    (void)len;
    pthread_mutex_lock(&l->mu);
    if (current(l, r)) {
        if (rc == ZOK && !zkc__q_eligible(st) && l->watching) {
            /* Not an ephemeral node: a foreign client planted it in the
             * line. It holds nothing; skip it from now on. */
            zkc__log(l->s, ZKC_LOG_WARN, "%s is not ephemeral: not a lock holder, skipped",
                     l->watching);
            if (zkc__q_foreign_add(&l->foreign, zkc__path_base(l->watching)) != 0) {
                fail_acquire(l, ZKC_ENOMEM);
            } else {
                free(l->watching);
                l->watching = NULL;
                if (l->gc_inflight == 0)
                    evaluate(l);
            }
        } else if (rc == ZNONODE) {
            /* It left before our watch landed: look again. */
            free(l->watching);
            l->watching = NULL;
            if (l->gc_inflight == 0)
                evaluate(l);
        } else if (transient(rc)) {
            resume_later(l);
        } else if (rc != ZOK) {
            fail_acquire(l, zkc__err_from_zk(rc));
        }
    }
    pthread_mutex_unlock(&l->mu);
    req_free(r);
}

/* mu held: send getData(path, watch) for the node we queue behind. */
static void arm_watch(zkc_lock *l)
{
    struct req *r = req_new(l);
    zhandle_t *zh;
    int rc;
    unsigned gen;

    if (!r) {
        fail_acquire(l, ZKC_ENOMEM);
        return;
    }
    zh = zkc__zh_lock(l->s, &gen);
    if (!zh) {
        req_free(r);
        resume_later(l);
        return;
    }
    rc = req_send(zh, gen, r, R_WATCH, l->watching);
    zkc__zh_unlock(l->s);
    if (rc != ZOK) {
        req_free(r);
        resume_later(l);
    }
}

static void on_watch(void *arg, int type, const char *path)
{
    zkc_lock *l = arg;

    if (type != ZOO_DELETED_EVENT && type != ZOO_CHANGED_EVENT)
        return;
    pthread_mutex_lock(&l->mu);
    if (l->state == L_ACQUIRING && l->watching && strcmp(l->watching, path) == 0) {
        zkc__lock_count_wakeup();
        free(l->watching);
        l->watching = NULL;
        if (l->gc_inflight == 0)
            evaluate(l);
    }
    pthread_mutex_unlock(&l->mu);
}

/* The kinds of entries that take part in our queue. */
static unsigned line_kinds(const zkc_lock *l)
{
    if (l->kind == ZKC__LQ_MUTEX)
        return ZKC__Q_BIT(ZKC__Q_MUTEX);
    return ZKC__Q_BIT(ZKC__Q_READ) | ZKC__Q_BIT(ZKC__Q_WRITE);
}

/* mu held: our node is verified to be ours; grant. */
int64_t (*zkc__test_grant_sid)(int64_t sid);

static void grant(zkc_lock *l)
{
    int64_t sid = zkc_session_id(l->s);

    if (zkc__test_grant_sid)
        sid = zkc__test_grant_sid(sid);

    /* Between two ZooKeeper sessions there is nothing to compare with:
     * never grant blind. Look again once connected. */
    if (sid == 0) {
        resume_later(l);
        return;
    }
    /* Ownership check: a node found by guid under another session must
     * never count as ours (pcreate deletes those; this is the last guard). */
    if (l->owner_sid != sid) {
        zkc__log(l->s, ZKC_LOG_WARN, "%s is owned by session 0x%llx, not ours: queueing again",
                 l->node, (unsigned long long)l->owner_sid);
        free(l->node);
        l->node = NULL;
        l->name = NULL;
        resume_later(l);
        return;
    }
    l->state = L_HELD;
    __atomic_store_n(&l->held_flag, 1, __ATOMIC_SEQ_CST);
    l->count = 1;
    l->try_only = 0;
    finish_acquire(l, 0);
}

static void children_done(int rc, const struct String_vector *v, const struct Stat *pst,
                          const void *data)
{
    struct req *r = (struct req *)data;
    zkc_lock *l = r->l;
    char **names = NULL;
    int n = 0, i, me = -1, ahead = -1, relaunch = 0, granted = 0;
    unsigned attempt = r->attempt;
    char *watch = NULL;

    zkc__pending_done(l->s, &r->pend);

    pthread_mutex_lock(&l->mu);
    if (this_round(l, r) && l->gc_inflight > 0)
        l->gc_inflight--;
    if (!current(l, r) || !l->node) {
        /* stale, or the create has not succeeded yet: its completion
         * (or recovery) evaluates again */
        goto out;
    }
    if (transient(rc)) {
        resume_later(l);
        goto out;
    }
    if (rc != ZOK && rc != ZNONODE) {
        fail_acquire(l, zkc__err_from_zk(rc));
        goto out;
    }
    if (rc == ZOK && pst && zkc__q_near_wrap(pst->cversion) && !l->wrap_warned) {
        l->wrap_warned = 1;
        zkc__log(l->s, ZKC_LOG_WARN,
                 "%s: sequence counter at %d, within 2^24 of the 2^31 wrap (Curator peers "
                 "order wrongly past it; let the path empty so its container resets)",
                 l->parent, (int)pst->cversion);
    }
    n = zkc__q_line(rc == ZOK ? v : NULL, line_kinds(l), &l->foreign, &names);
    if (n < 0) {
        fail_acquire(l, ZKC_ENOMEM);
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (strcmp(names[i], l->name) == 0) {
            me = i;
            break;
        }
        if (l->kind == ZKC__LQ_READ) {
            if (zkc__q_kind(names[i]) == ZKC__Q_WRITE)
                ahead = i; /* the last writer ahead of us */
        } else {
            ahead = i; /* the node directly ahead of us */
        }
    }
    if (me < 0) {
        /* Our node is gone while our session lives (deleted by hand, or
         * the session changed under us): queue again, as Curator does on
         * NoNode. */
        zkc__log(l->s, ZKC_LOG_INFO, "%s vanished while queued: queueing again", l->node);
        free(l->node);
        l->node = NULL;
        l->name = NULL;
        relaunch = 1;
        goto out;
    }
    if (l->kind == ZKC__LQ_READ && l->write_side &&
        __atomic_load_n(&l->write_side->held_flag, __ATOMIC_SEQ_CST))
        ahead = -1; /* downgrade: our own writer holds */
    if (ahead < 0) {
        grant(l);
        granted = 1;
        goto out;
    }
    if (l->try_only) {
        fail_acquire(l, ZKC_EBUSY);
        goto out;
    }
    free(l->watching);
    l->watching = zkc__path_join(l->parent, names[ahead]);
    if (!l->watching) {
        fail_acquire(l, ZKC_ENOMEM);
        goto out;
    }
    watch = strdup(l->watching);
    if (!watch) {
        fail_acquire(l, ZKC_ENOMEM);
        goto out;
    }
out:
    pthread_mutex_unlock(&l->mu);
    (void)granted;
    free(names);
    if (relaunch)
        launch(l, attempt);
    if (watch) {
        /* Subscribe before the request that sets the watch, so its event
         * cannot arrive unrouted. */
        set_sub(l, watch);
        pthread_mutex_lock(&l->mu);
        if (current(l, r) && l->watching && strcmp(l->watching, watch) == 0)
            arm_watch(l);
        pthread_mutex_unlock(&l->mu);
        free(watch);
    }
    req_free(r);
}

/* mu held: list the queue. */
static void evaluate(zkc_lock *l)
{
    struct req *r = req_new(l);
    zhandle_t *zh;
    int rc;
    unsigned gen;

    if (!r) {
        fail_acquire(l, ZKC_ENOMEM);
        return;
    }
    zh = zkc__zh_lock(l->s, &gen);
    if (!zh) {
        req_free(r);
        resume_later(l);
        return;
    }
    rc = req_send(zh, gen, r, R_CHILDREN, l->parent);
    zkc__zh_unlock(l->s);
    if (rc != ZOK) {
        req_free(r);
        resume_later(l);
        return;
    }
    l->gc_inflight++;
}

static void created(void *arg, int rc, const char *path, const struct Stat *st)
{
    struct req *r = arg;
    zkc_lock *l = r->l;

    pthread_mutex_lock(&l->mu);
    if (this_round(l, r))
        l->creating = 0;
    if (!current(l, r)) {
        /* Canceled or timed out while the create was in flight (or being
         * recovered): the node must not stay in the queue. */
        if (rc == 0)
            zkc__bg_delete(l->s, path, zkc_session_generation(l->s), NULL);
    } else if (rc == 0) {
        l->node = strdup(path);
        if (!l->node) {
            zkc__bg_delete(l->s, path, zkc_session_generation(l->s), NULL);
            fail_acquire(l, ZKC_ENOMEM);
        } else {
            l->name = zkc__path_base(l->node);
            l->token = st->czxid;
            l->owner_sid = st->ephemeralOwner;
            /* The pipelined getChildren (if any) answers next. */
            if (l->gc_inflight == 0)
                evaluate(l);
        }
    } else if (rc == ZKC_ESESSIONLOST || rc == ZKC_ECONNLOSS || rc == ZKC_ECLOSED) {
        /* Also ECLOSED: the handle of a session being replaced was closed
         * under the create. resume_later() fails with ECLOSED only when the
         * session itself is closing. */
        resume_later(l);
    } else {
        fail_acquire(l, rc);
    }
    pthread_mutex_unlock(&l->mu);
    req_free(r);
}

static void parent_made(void *arg, int rc)
{
    struct req *r = arg;
    zkc_lock *l = r->l;
    unsigned attempt = r->attempt;

    /* Best effort: on failure the protected create makes the parents
     * (persistent) itself. */
    if (rc != 0 && rc != ZKC_ECONNLOSS)
        zkc__log(l->s, ZKC_LOG_DEBUG, "%s: no container parent: %s", l->parent, zkc_strerror(rc));
    pthread_mutex_lock(&l->mu);
    l->parent_ok = 1;
    pthread_mutex_unlock(&l->mu);
    launch(l, attempt);
    req_free(r);
}

/* mu NOT held: create our node and, right behind it, list the queue. The
 * first time, make the parent a container first (one more round trip, once
 * per handle). */
static void launch(zkc_lock *l, unsigned attempt)
{
    struct req *cr, *gr = NULL;
    char guid[ZKC_GUID_LEN + 1];
    zhandle_t *zh;
    unsigned round, gen;
    int rc;

    pthread_mutex_lock(&l->mu);
    if (attempt != l->attempt || l->state != L_ACQUIRING) {
        pthread_mutex_unlock(&l->mu);
        return;
    }
    if (!l->parent_ok) {
        cr = req_new(l);
        if (!cr)
            fail_acquire(l, ZKC_ENOMEM);
        pthread_mutex_unlock(&l->mu);
        if (cr)
            zkc__q_container(l->s, l->parent, parent_made, cr);
        return;
    }
    cr = req_new(l);
    if (!cr) {
        fail_acquire(l, ZKC_ENOMEM);
        pthread_mutex_unlock(&l->mu);
        return;
    }
    /* A fresh guid per create, as Curator's withProtection() does: recovery
     * after a lost reply must find this create's node, never the node of an
     * earlier attempt of ours that is still being deleted. */
    if (zkc__guid(guid) != 0) {
        req_free(cr);
        fail_acquire(l, ZKC_ESYS);
        pthread_mutex_unlock(&l->mu);
        return;
    }
    l->creating = 1;
    l->gc_inflight++; /* reserved: the create's reply must not evaluate alone */
    round = l->round;
    l->node_gen = zkc_session_generation(l->s);
    pthread_mutex_unlock(&l->mu);

    zkc__pcreate(l->s, l->parent, guid, l->body, l->owner, (int)strlen(l->owner),
                 ZOO_EPHEMERAL_SEQUENTIAL, created, cr);

    pthread_mutex_lock(&l->mu);
    rc = ZINVALIDSTATE;
    if (attempt == l->attempt && round == l->round && l->state == L_ACQUIRING &&
        (gr = req_new(l)) != NULL) {
        zh = zkc__zh_lock(l->s, &gen);
        if (zh) {
            rc = req_send(zh, gen, gr, R_CHILDREN, l->parent);
            zkc__zh_unlock(l->s);
        }
        if (rc != ZOK)
            req_free(gr);
    }
    if (rc != ZOK) {
        if (attempt == l->attempt && round == l->round && l->gc_inflight > 0)
            l->gc_inflight--;
        /* The create may have completed meanwhile, waiting for us. */
        if (attempt == l->attempt && round == l->round && l->state == L_ACQUIRING && l->node &&
            l->gc_inflight == 0)
            evaluate(l);
    }
    pthread_mutex_unlock(&l->mu);
}

/* ------------------------------------------------------- state hooks */

static void verified(int rc, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_lock *l = r->l;

    zkc__pending_done(l->s, &r->pend);
    pthread_mutex_lock(&l->mu);
    if (r->attempt == l->attempt && l->state == L_HELD) {
        if (rc == ZOK && st->ephemeralOwner == l->owner_sid) {
            post_event(l, ZKC_LOCK_RECONNECTED);
        } else if (rc == ZOK || rc == ZNONODE || rc == ZSESSIONEXPIRED) {
            l->state = L_LOST;
            __atomic_store_n(&l->held_flag, 0, __ATOMIC_SEQ_CST);
            post_event(l, ZKC_LOCK_LOST);
        }
        /* connection loss: the next RECONNECTED verifies again */
    }
    pthread_mutex_unlock(&l->mu);
    req_free(r);
}

static void hook(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_lock *l = arg;
    struct req *r;
    zhandle_t *zh;
    unsigned zgen;

    (void)gen;
    pthread_mutex_lock(&l->mu);
    if (l->state == L_HELD) {
        if (st == ZKC_CONN_SUSPENDED) {
            post_event(l, ZKC_LOCK_SUSPENDED);
        } else if (st == ZKC_CONN_LOST || (st == ZKC_CONN_CONNECTED && gen != l->node_gen)) {
            l->state = L_LOST;
            __atomic_store_n(&l->held_flag, 0, __ATOMIC_SEQ_CST);
            post_event(l, ZKC_LOCK_LOST);
        } else if (st == ZKC_CONN_RECONNECTED) {
            /* Same session back: confirm the node is still there and
             * ours before saying so (it could have been deleted by hand). */
            r = req_new(l);
            zh = r ? zkc__zh_lock(l->s, &zgen) : NULL;
            if (zh) {
                if (req_send(zh, zgen, r, R_VERIFY, l->node) != ZOK) {
                    req_free(r);
                    r = NULL;
                }
                zkc__zh_unlock(l->s);
            } else if (r) {
                req_free(r);
            }
        }
    } else if (l->state == L_ACQUIRING && (st == ZKC_CONN_LOST || st == ZKC_CONN_RECONNECTED)) {
        resume_later(l);
    }
    pthread_mutex_unlock(&l->mu);
}

/* ------------------------------------------------------------- public */

void zkc_lock_opts_init(zkc_lock_opts *o)
{
    memset(o, 0, sizeof(*o));
}

static const char *body_of(zkc__lq_kind kind)
{
    switch (kind) {
    case ZKC__LQ_READ:
        return "__READ__";
    case ZKC__LQ_WRITE:
        return "__WRIT__";
    case ZKC__LQ_MUTEX:
        break;
    }
    return "lock-";
}

int zkc__lock_new_kind(zkc_lock **out, zkc_session *s, const char *path, const zkc_lock_opts *o,
                       zkc__lq_kind kind, zkc_lock *write_side)
{
    zkc_lock *l;
    char owner[320];
    int rc;

    if (!out || !s || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return ZKC_ENOMEM;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->wmu, NULL);
    if (zkc__cond_init(&l->cond) != 0) {
        rc = ZKC_ESYS;
        goto fail_cond;
    }
    if (o && o->owner_id)
        snprintf(owner, sizeof(owner), "%s", o->owner_id);
    else
        zkc__default_owner(owner, sizeof(owner));
    l->parent = strdup(path);
    l->owner = strdup(owner);
    if (!l->parent || !l->owner) {
        rc = ZKC_ENOMEM;
        goto fail_alloc;
    }
    l->refs = 1;
    l->s = s;
    l->kind = kind;
    l->body = body_of(kind);
    l->write_side = write_side;
    l->on_event = o ? o->on_event : NULL;
    l->ud = o ? o->user_data : NULL;
    rc = zkc__add_hook(s, hook, l);
    if (rc)
        goto fail_alloc;
    zkc__session_attach(s);
    *out = l;
    return 0;

fail_alloc:
    free(l->parent);
    free(l->owner);
    pthread_cond_destroy(&l->cond);
fail_cond:
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->wmu);
    free(l);
    return rc;
}

int zkc_lock_new(zkc_lock **out, zkc_session *s, const char *path, const zkc_lock_opts *o)
{
    return zkc__lock_new_kind(out, s, path, o, ZKC__LQ_MUTEX, NULL);
}

void zkc__lock_set_owned(zkc_lock *l, int owned)
{
    l->owned_by_rw = owned;
}

/* mu held: start an acquire; returns the attempt to launch. */
static unsigned begin(zkc_lock *l, int try_only)
{
    l->attempt++;
    l->state = L_ACQUIRING;
    l->try_only = try_only;
    l->creating = 0;
    l->gc_inflight = 0;
    free(l->node);
    l->node = NULL;
    l->name = NULL;
    free(l->watching);
    l->watching = NULL;
    l->token = 0;
    return l->attempt;
}

int zkc_lock_acquire(zkc_lock *l, int timeout_ms, int64_t *token)
{
    unsigned attempt;
    struct timespec ts;
    int rc, timed_out = 0;
    int wait_ms = timeout_ms;

    if (!l)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->mu);
    if (l->state == L_HELD) {
        l->count++;
        if (token)
            *token = l->token;
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    if (l->state == L_ACQUIRING) {
        pthread_mutex_unlock(&l->mu);
        return ZKC_EBUSY;
    }
    attempt = begin(l, timeout_ms == 0);
    l->sync_waiting = 1;
    lock_ref(l); /* a zkc_lock_free() from another thread wakes us, not frees us */
    pthread_mutex_unlock(&l->mu);
    launch(l, attempt);

    if (timeout_ms == 0)
        wait_ms = zkc_session_timeout_ms(l->s);
    if (wait_ms >= 0)
        zkc__deadline(&ts, wait_ms);
    pthread_mutex_lock(&l->mu);
    while (l->res_attempt != attempt) {
        if (wait_ms < 0) {
            pthread_cond_wait(&l->cond, &l->mu);
        } else if (pthread_cond_timedwait(&l->cond, &l->mu, &ts) != 0 &&
                   l->res_attempt != attempt) {
            timed_out = 1;
            break;
        }
    }
    l->sync_waiting = 0;
    if (timed_out) {
        /* Abandon: our node (or the one whose create is in flight) goes. */
        if (l->attempt == attempt && l->state == L_ACQUIRING)
            fail_acquire(l, ZKC_ETIMEDOUT);
        rc = ZKC_ETIMEDOUT;
    } else {
        rc = l->res_rc;
    }
    if (rc == 0 && token)
        *token = l->token;
    pthread_mutex_unlock(&l->mu);
    lock_unref(l);
    return rc;
}

int zkc_lock_acquire_async(zkc_lock *l, zkc_lock_acquire_fn cb, void *user_data)
{
    unsigned attempt;

    if (!l || !cb)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->mu);
    if (l->state == L_HELD) {
        struct note n;
        memset(&n, 0, sizeof(n));
        n.token = l->token;
        n.acb = cb;
        n.acb_ud = user_data;
        l->count++;
        post_note(l, &n);
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    if (l->state == L_ACQUIRING) {
        pthread_mutex_unlock(&l->mu);
        return ZKC_EBUSY;
    }
    attempt = begin(l, 0);
    l->acb = cb;
    l->acb_ud = user_data;
    pthread_mutex_unlock(&l->mu);
    launch(l, attempt);
    return 0;
}

int zkc_lock_cancel(zkc_lock *l)
{
    int rc = ZKC_ENONODE;

    if (!l)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->mu);
    if (l->state == L_ACQUIRING) {
        fail_acquire(l, ZKC_ECANCELED);
        rc = 0;
    }
    pthread_mutex_unlock(&l->mu);
    set_sub(l, NULL);
    return rc;
}

/* mu held; returns a call to wait on (or NULL) after unlocking. */
static zkc__call *release_node(zkc_lock *l)
{
    zkc__call *c = NULL;

    l->state = L_IDLE;
    __atomic_store_n(&l->held_flag, 0, __ATOMIC_SEQ_CST);
    l->count = 0;
    l->attempt++;
    if (l->node) {
        c = zkc__call_new();
        if (c)
            zkc__call_ref(c); /* one for bg_delete */
        zkc__bg_delete(l->s, l->node, l->node_gen, c);
        free(l->node);
        l->node = NULL;
        l->name = NULL;
    }
    return c;
}

int zkc_lock_release(zkc_lock *l)
{
    zkc__call *c = NULL;

    if (!l)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->mu);
    if (l->state == L_LOST) {
        /* Quietly: the node went with the session. */
        l->state = L_IDLE;
        l->count = 0;
        free(l->node);
        l->node = NULL;
        l->name = NULL;
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    if (l->state != L_HELD) {
        pthread_mutex_unlock(&l->mu);
        return ZKC_ENOTHELD;
    }
    if (l->count > 1) {
        l->count--;
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    c = release_node(l);
    pthread_mutex_unlock(&l->mu);
    if (c) {
        zkc__call_wait(c, zkc_session_timeout_ms(l->s));
        zkc__call_unref(c);
    }
    return 0;
}

int zkc_lock_is_held(zkc_lock *l)
{
    int held;

    if (!l)
        return 0;
    pthread_mutex_lock(&l->mu);
    held = l->state == L_HELD;
    pthread_mutex_unlock(&l->mu);
    return held;
}

int64_t zkc_lock_token(zkc_lock *l)
{
    int64_t t;

    if (!l)
        return 0;
    pthread_mutex_lock(&l->mu);
    t = (l->state == L_HELD || l->state == L_LOST) ? l->token : 0;
    pthread_mutex_unlock(&l->mu);
    return t;
}

int zkc_lock_node_path(zkc_lock *l, char *buf, size_t len)
{
    int rc = 0;

    if (!l || !buf)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->mu);
    if (!l->node || (l->state != L_HELD && l->state != L_LOST))
        rc = ZKC_ENOTHELD;
    else if (strlen(l->node) >= len)
        rc = ZKC_EINVAL;
    else
        memcpy(buf, l->node, strlen(l->node) + 1);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int zkc_lock_fenced_multi(zkc_lock *l, const zkc_op *ops, int nops, int timeout_ms)
{
    char *guard = NULL;
    int rc;

    if (!l)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->mu);
    if (l->node && (l->state == L_HELD || l->state == L_LOST))
        guard = strdup(l->node);
    rc = l->node && !guard ? ZKC_ENOMEM : ZKC_ENOTHELD;
    pthread_mutex_unlock(&l->mu);
    if (!guard)
        return rc;
    rc = zkc_fenced_multi(l->s, guard, ops, nops, timeout_ms);
    free(guard);
    return rc;
}

void zkc__lock_free_any(zkc_lock *l)
{
    zkc__call *c = NULL;

    if (!l)
        return;
    /* Hook and watch first, outside our mutex (session lock order); after
     * these return, neither runs for us again. */
    zkc__remove_hook(l->s, hook, l);
    pthread_mutex_lock(&l->mu);
    l->freed = 1;
    l->acb = NULL;
    if (l->state == L_ACQUIRING)
        fail_acquire(l, ZKC_ECANCELED);
    else if (l->state == L_HELD)
        c = release_node(l);
    pthread_mutex_unlock(&l->mu);
    set_sub(l, NULL);
    if (c)
        zkc__call_unref(c); /* the delete goes on in the background */
    zkc__dispatch_barrier(l->s);
    zkc__session_detach(l->s);
    lock_unref(l);
}

void zkc_lock_free(zkc_lock *l)
{
    if (!l)
        return;
    if (l->owned_by_rw) {
        zkc__log(l->s, ZKC_LOG_ERROR, "zkc_lock_free on a side of a rwlock: use zkc_rwlock_free");
        return;
    }
    zkc__lock_free_any(l);
}

/* --------------------------------------------------------- inspection */

struct islot {
    zkc__pending pend; /* completes once, also when the handle is closed */
    zkc_session *s;
    zkc__call *c;
    int rc;
    struct Stat st;
    char data[1024];
};

struct ibatch {
    int n;
    int pending;
    struct islot *slots;
};

static void ibatch_free(void *arg)
{
    struct ibatch *b = arg;

    if (b) {
        free(b->slots);
        free(b);
    }
}

/* One node's read ended (reply, or ZCLOSING when the handle was closed
 * with it in flight). */
static void islot_end(struct islot *sl, int rc, const char *value, int len, const struct Stat *st)
{
    zkc__call *c = sl->c;
    struct ibatch *b = c->extra;

    pthread_mutex_lock(&c->mu);
    sl->rc = rc;
    if (rc == ZOK) {
        size_t n = len > 0 ? (size_t)len : 0;
        if (n > sizeof(sl->data) - 1)
            n = sizeof(sl->data) - 1;
        if (n)
            memcpy(sl->data, value, n);
        sl->data[n] = '\0';
        sl->st = *st;
    }
    if (--b->pending == 0) {
        c->done = 1;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->mu);
    zkc__call_unref(c);
}

static void islot_done(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct islot *sl = (struct islot *)data;

    zkc__pending_done(sl->s, &sl->pend);
    islot_end(sl, rc, value, len, st);
}

static void islot_dropped(zkc__pending *pd)
{
    islot_end((struct islot *)(void *)((char *)pd - offsetof(struct islot, pend)), ZCLOSING, NULL,
              0, NULL);
}

void zkc_lock_info_free(zkc_lock_info *info)
{
    int i;

    if (!info)
        return;
    for (i = 0; i < info->count; i++) {
        free(info->entries[i].name);
        free(info->entries[i].owner_id);
    }
    free(info->entries);
    free(info);
}

int zkc_lock_inspect(zkc_session *s, const char *path, int timeout_ms, zkc_lock_info **out)
{
    int64_t deadline = timeout_ms < 0 ? -1 : zkc__now_ms() + timeout_ms;
    zkc__call *gc = NULL, *dc = NULL;
    struct ibatch *b = NULL;
    zkc_lock_info *info = NULL;
    char **names = NULL;
    int rc, i, n = 0, writer_seen = 0, ahead = 0, sent = 0;
    unsigned gen;
    zhandle_t *zh;

    if (!s || !out || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    gc = zkc__call_new();
    if (!gc)
        return ZKC_ENOMEM;
    /* Every read is registered with zkc__pending (zkc__read_send, islot):
     * a completion the client drops at a handle close still completes, with
     * ZCLOSING, so even a wait without deadline ends. */
    zh = zkc__zh_lock(s, &gen);
    if (!zh) {
        rc = ZKC_ECONNLOSS;
        goto out;
    }
    rc = zkc__read_send(s, zh, gen, ZKC__READ_CHILDREN, path, gc);
    zkc__zh_unlock(s);
    if (rc != ZOK) {
        rc = zkc__err_from_zk(rc);
        goto out;
    }
    rc = zkc__call_wait(gc, zkc__remaining(deadline));
    if (rc)
        goto out;
    if (gc->rc == ZCLOSING) {
        rc = ZKC_ECONNLOSS; /* the handle was closed under it: transient */
        goto out;
    }
    if (gc->rc != ZOK) {
        rc = zkc__err_from_zk(gc->rc);
        goto out;
    }
    /* The one order of every participant (queue.h). */
    n = zkc__q_line(&gc->children,
                    ZKC__Q_BIT(ZKC__Q_MUTEX) | ZKC__Q_BIT(ZKC__Q_READ) | ZKC__Q_BIT(ZKC__Q_WRITE) |
                        ZKC__Q_BIT(ZKC__Q_LEASE),
                    NULL, &names);
    if (n < 0) {
        rc = ZKC_ENOMEM;
        goto out;
    }
    /* Every node's data and stat, pipelined: one round trip in all. */
    dc = zkc__call_new();
    b = calloc(1, sizeof(*b));
    if (!dc || !b || !(b->slots = calloc((size_t)n + 1, sizeof(*b->slots)))) {
        free(b);
        rc = ZKC_ENOMEM;
        goto out;
    }
    b->n = n;
    b->pending = n + 1; /* +1 until every request is sent */
    dc->extra = b;
    dc->extra_free = ibatch_free;
    zh = zkc__zh_lock(s, &gen);
    for (i = 0; zh && i < n; i++) {
        char *full = zkc__path_join(path, names[i]);
        b->slots[i].s = s;
        b->slots[i].c = dc;
        b->slots[i].rc = ZNONODE;
        zkc__call_ref(dc);
        if (full)
            zkc__pending_add(s, &b->slots[i].pend, gen, islot_dropped);
        if (!full || zoo_aget(zh, full, 0, islot_done, &b->slots[i]) != ZOK) {
            if (full)
                zkc__pending_done(s, &b->slots[i].pend);
            zkc__call_unref(dc);
            pthread_mutex_lock(&dc->mu);
            b->pending--;
            b->slots[i].rc = ZCONNECTIONLOSS;
            pthread_mutex_unlock(&dc->mu);
        } else {
            sent++;
        }
        free(full);
    }
    if (zh)
        zkc__zh_unlock(s);
    pthread_mutex_lock(&dc->mu);
    if (--b->pending == 0)
        dc->done = 1;
    pthread_mutex_unlock(&dc->mu);
    if (!zh) {
        rc = ZKC_ECONNLOSS;
        goto out;
    }
    rc = zkc__call_wait(dc, zkc__remaining(deadline));
    if (rc)
        goto out;
    info = calloc(1, sizeof(*info));
    if (!info || !(info->entries = calloc((size_t)n + 1, sizeof(*info->entries)))) {
        rc = ZKC_ENOMEM;
        goto out;
    }
    info->cversion = gc->stat.cversion;
    info->near_wrap = zkc__q_near_wrap(gc->stat.cversion);
    for (i = 0; i < n; i++) {
        struct islot *sl = &b->slots[i];
        zkc_lock_entry *e = &info->entries[info->count];
        int k = zkc__q_kind(names[i]);
        if (sl->rc == ZNONODE)
            continue; /* left while we looked */
        if (sl->rc == ZCLOSING) {
            rc = ZKC_ECONNLOSS; /* the handle was closed under it: transient */
            goto out;
        }
        if (sl->rc != ZOK) {
            rc = zkc__err_from_zk(sl->rc);
            goto out;
        }
        e->name = strdup(names[i]);
        e->owner_id = strdup(sl->data);
        info->count++;
        if (!e->name || !e->owner_id) {
            rc = ZKC_ENOMEM;
            goto out;
        }
        e->token = sl->st.czxid;
        e->session_id = sl->st.ephemeralOwner;
        zkc__seq_parse(names[i], &e->seq);
        /* A node that is not ephemeral holds nothing, and nobody queues
         * behind it (queue.h): the participants skip it too. */
        e->foreign = !zkc__q_eligible(&sl->st);
        if (k == ZKC__Q_WRITE) {
            e->kind = ZKC_LOCK_ENTRY_WRITE;
            e->holds = !e->foreign && ahead == 0;
            writer_seen |= !e->foreign;
        } else if (k == ZKC__Q_READ) {
            e->kind = ZKC_LOCK_ENTRY_READ;
            e->holds = !e->foreign && !writer_seen;
        } else if (k == ZKC__Q_MUTEX) {
            e->kind = ZKC_LOCK_ENTRY_MUTEX;
            e->holds = !e->foreign && ahead == 0;
        } else {
            e->kind = ZKC_LOCK_ENTRY_LEASE;
            e->holds = !e->foreign;
        }
        ahead += !e->foreign;
    }
    *out = info;
    info = NULL;
    rc = 0;
out:
    (void)sent;
    zkc_lock_info_free(info);
    free(names);
    if (dc)
        zkc__call_unref(dc);
    zkc__call_unref(gc);
    return rc;
}
