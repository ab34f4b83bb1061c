/*
 * The queue engine (qengine.h): one entry of a line of ephemeral sequential
 * nodes. Faces: lock.c (mutex), rwlock.c (both sides, through lock.c),
 * election.c (participants).
 *
 * Compatibility with Curator (InterProcessMutex, LockInternals,
 * StandardLockInternalsDriver): nodes are "<path>/_c_<uuid>-<body><seq>"
 * written with protection; Curator sorts children by the part after the
 * body (string compare of the zero-padded sequence), a node is granted when
 * its index is below maxLeases (1), and otherwise it watches
 * children[index - 1]. We order by the sequence as a 32-bit serial number
 * (queue.h: the same order until the 2^31 wrap, and still FIFO after it).
 *
 * A round: create (zoo_acreate2, so the reply carries czxid and
 * ephemeralOwner) and getChildren are sent back to back; the server answers
 * one session's requests in order, so one wait covers both. An uncontended
 * acquire + release therefore costs 3 requests and 2 round trips; Curator
 * waits for the create before asking for the children.
 *
 * Watching: like Curator we set the watch with getData, not exists: an
 * exists watch on a node that is already gone would stay registered on the
 * server for a path that never comes back (a watch leak Curator's
 * LockInternals comments on). The watch is per request (zkc__qwatch,
 * queue.h): no session-wide router, no lock order to keep with one.
 *
 * Fresh reads after a new session: unlike the children cache (cache.c,
 * which syncs first), re-entry after LOST needs no sync. Its listing goes
 * right behind its own create on the same session; the server that answers
 * the listing has applied that create, so it has applied every transaction
 * committed before it, including everything the old session saw.
 *
 * Locks: q->mu guards the state; under it only non-blocking zoo_a* calls
 * (mu -> zh_mu) and zkc__dispatch.
 */
#include "qengine.h"
#include "naming.h"
#include "pcreate.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request in flight. It is registered with the session (zkc__pending):
 * a completion the 3.8 client drops at zookeeper_close still runs, once,
 * as ZCLOSING, so no attempt waits for it and the reference it holds is
 * not leaked (issue 9, bug 5). */
enum rkind { R_CHILDREN, R_WATCH, R_VERIFY, R_OWN };

struct req {
    zkc__qe *q;
    unsigned attempt;
    unsigned round;
    enum rkind kind;
    zkc__qwatch *w; /* R_WATCH: the watch it sets */
    zkc__pending pend;
};

static void evaluate(zkc__qe *q);
static void lost(zkc__qe *q);
static void arm_own(zkc__qe *q);

/* ------------------------------------------------------------ lifetime */

void zkc__qe_ref(zkc__qe *q)
{
    __atomic_add_fetch(&q->refs, 1, __ATOMIC_SEQ_CST);
}

void zkc__qe_unref(zkc__qe *q)
{
    if (__atomic_sub_fetch(&q->refs, 1, __ATOMIC_SEQ_CST) != 0)
        return;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cond);
    free(q->parent);
    free(q->data);
    free(q->node);
    free(q->watching);
    zkc__q_foreign_clear(&q->foreign);
    q->ops->destroy(q);
}

/* mu held */
static struct req *req_new(zkc__qe *q)
{
    struct req *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->q = q;
    r->attempt = q->attempt;
    r->round = q->round;
    r->kind = R_CHILDREN;
    r->pend.next = r->pend.prev = &r->pend; /* not registered */
    zkc__qe_ref(q);
    return r;
}

static void req_free(struct req *r)
{
    zkc__qe_unref(r->q);
    free(r);
}

static void children_done(int rc, const struct String_vector *v, const struct Stat *pst,
                          const void *data);
static void watch_set(int rc, const char *value, int len, const struct Stat *st, const void *data);
static void verified(int rc, const struct Stat *st, const void *data);
static void own_set(int rc, const char *value, int len, const struct Stat *st, const void *data);
static void woken(zkc__qwatch *w, int type);

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
    case R_OWN:
        own_set(ZCLOSING, NULL, 0, NULL, r);
        break;
    }
}

/* zh held (from zkc__zh_lock, generation gen): send r of `kind` on `path`.
 * Returns the zoo_a* result; on failure no completion will come. */
static int req_send(zhandle_t *zh, unsigned gen, struct req *r, enum rkind kind, const char *path)
{
    zkc_session *s = r->q->s;
    zkc__qwatch *w = NULL;
    int rc = ZBADARGUMENTS;

    r->kind = kind;
    if (kind == R_WATCH || kind == R_OWN) {
        /* The watch's own reference on q, dropped in woken(). */
        w = zkc__qwatch_new(s, path, woken, r->q);
        if (!w)
            return ZSYSTEMERROR;
        zkc__qe_ref(r->q);
        w->tag[0] = r->attempt;
        w->tag[1] = r->round;
        w->kind = kind;
        r->w = w;
        zkc__qwatch_sent(w, gen);
        if (kind == R_WATCH)
            r->q->pw = w;
    }
    zkc__pending_add(s, &r->pend, gen, req_dropped);
    switch (kind) {
    case R_CHILDREN:
        rc = zkc__zk_aget_children2(zh, path, 0, children_done, r);
        break;
    case R_WATCH:
        rc = zoo_awget(zh, path, zkc__qwatch_watcher, w, watch_set, r);
        break;
    case R_VERIFY:
        rc = zoo_aexists(zh, path, 0, verified, r);
        break;
    case R_OWN:
        rc = zoo_awget(zh, path, zkc__qwatch_watcher, w, own_set, r);
        break;
    }
    if (rc != ZOK) {
        zkc__pending_done(s, &r->pend);
        if (w) {
            /* mu is held: no callback, the watch's reference goes here
             * (the request's keeps q alive) */
            r->w = NULL;
            if (r->q->pw == w)
                r->q->pw = NULL;
            zkc__qwatch_unsent(w);
            zkc__qe_unref(r->q);
        }
    }
    return rc;
}

/* mu held: is this completion about the acquire in progress? */
static int current(zkc__qe *q, unsigned attempt, unsigned round)
{
    return attempt == q->attempt && round == q->round && q->state == ZKC__QE_ACQUIRING;
}

/* ------------------------------------------------- ends of an acquire */

/* mu held: forget our node, deleting it in the background. */
static void drop_node(zkc__qe *q)
{
    if (q->node) {
        zkc__bg_delete(q->s, q->node, q->node_gen, NULL);
        free(q->node);
        q->node = NULL;
        q->name = NULL;
    }
    free(q->watching);
    q->watching = NULL;
}

/* mu held: our node is gone with no delete to send (vanished, or died with
 * its session). */
static void lose_node(zkc__qe *q)
{
    free(q->node);
    q->node = NULL;
    q->name = NULL;
    free(q->watching);
    q->watching = NULL;
}

void zkc__qe_fail(zkc__qe *q, int rc)
{
    q->ops->done(q, rc);
    drop_node(q);
    q->state = ZKC__QE_IDLE;
    q->attempt++;
    q->try_only = 0;
}

/* ---------------------------------------------- resume after a loss */

/* Replies that mean "not now", not "no": the connection or the session
 * went, or the handle is being swapped for a new session's (its pending
 * requests end with ZCLOSING, new ones meet ZINVALIDSTATE). resume_later()
 * tells a real close (the session's) from these. */
static int transient(int zrc)
{
    return zkc__zk_connloss(zrc) || zkc__zk_expired(zrc) || zrc == ZSESSIONMOVED ||
           zrc == ZCLOSING || zrc == ZINVALIDSTATE;
}

static void resume(void *arg, zkc_conn_state st, unsigned gen);

static void ref_fn(void *q)
{
    zkc__qe_ref(q);
}

static void unref_fn(void *q)
{
    zkc__qe_unref(q);
}

/* mu held: continue the acquire in progress once connected again (one
 * pending run per entry: zkc__retry). */
static void resume_later(zkc__qe *q)
{
    if (q->resume.armed)
        return;
    if (!zkc__retry_arm(&q->resume, q->s, resume, q, ref_fn, unref_fn))
        zkc__qe_fail(q, ZKC_ECLOSED); /* the session is closing */
}

static void resume(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc__qe *q = arg;
    int relaunch = 0;
    unsigned attempt;

    pthread_mutex_lock(&q->mu);
    zkc__retry_fired(&q->resume);
    attempt = q->attempt;
    if (q->state != ZKC__QE_ACQUIRING) {
        /* nothing to continue */
    } else if (st == ZKC_CONN_NONE) {
        zkc__qe_fail(q, ZKC_ECLOSED);
    } else if (st == ZKC_CONN_LOST) {
        resume_later(q); /* wait for the new session */
    } else if (gen != q->node_gen) {
        /* A new session: our node (or the create in flight) died with the
         * old one. Start a new round at once instead of waiting for the old
         * round's replies: the client may never deliver them. */
        q->round++;
        q->creating = 0;
        q->gc_inflight = 0;
        lose_node(q);
        relaunch = 1;
    } else if (q->creating) {
        /* the protected create recovers by itself */
    } else if (q->node) {
        if (q->gc_inflight == 0)
            evaluate(q);
    } else {
        /* our node died with the old session: queue again */
        lose_node(q);
        relaunch = 1;
    }
    pthread_mutex_unlock(&q->mu);
    if (relaunch)
        zkc__qe_launch(q, attempt);
    zkc__qe_unref(q);
}

/* ---------------------------------------------------------- the round */

static void own_woken(zkc__qe *q, zkc__qwatch *w, int type);

/* The watch on the entry we wait behind ended: fired (it was deleted or
 * changed: look again), or unfired (type 0: nothing to do). */
static void woken(zkc__qwatch *w, int type)
{
    zkc__qe *q = w->owner;

    pthread_mutex_lock(&q->mu);
    if (q->pw == w)
        q->pw = NULL;
    if (w->kind == R_OWN) {
        own_woken(q, w, type);
    } else if (type != 0 && current(q, w->tag[0], w->tag[1]) && q->watching &&
               strcmp(q->watching, w->path) == 0) {
        if (q->ops->woke)
            q->ops->woke(q);
        else
            zkc__lock_count_wakeup();
        free(q->watching);
        q->watching = NULL;
        if (q->gc_inflight == 0)
            evaluate(q);
    }
    pthread_mutex_unlock(&q->mu);
    zkc__qe_unref(q);
}

static void watch_set(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc__qe *q = r->q;

    zkc__pending_done(q->s, &r->pend);
    (void)value;
    (void)len;
    /* Only a ZOK reply leaves a data watch; for any other answer the
     * client keeps none. */
    zkc__qwatch_reply(r->w, rc == ZOK);
    r->w = NULL;
    pthread_mutex_lock(&q->mu);
    if (current(q, r->attempt, r->round)) {
        if (rc == ZOK && !zkc__q_eligible(st) && q->watching) {
            /* Not an ephemeral node: a foreign client planted it in the
             * line. It holds nothing; skip it from now on. */
            zkc__log(q->s, ZKC_LOG_WARN, "%s is not ephemeral: not a lock holder, skipped",
                     q->watching);
            if (zkc__q_foreign_add(&q->foreign, zkc__path_base(q->watching)) != 0) {
                zkc__qe_fail(q, ZKC_ENOMEM);
            } else {
                free(q->watching);
                q->watching = NULL;
                if (q->gc_inflight == 0)
                    evaluate(q);
            }
        } else if (rc == ZNONODE) {
            /* It left before our watch landed: look again. */
            free(q->watching);
            q->watching = NULL;
            if (q->gc_inflight == 0)
                evaluate(q);
        } else if (transient(rc)) {
            resume_later(q);
        } else if (rc != ZOK) {
            zkc__qe_fail(q, zkc__err_from_zk(rc));
        }
    }
    pthread_mutex_unlock(&q->mu);
    req_free(r);
}

/* mu held: send getData(path, watch) for the entry we wait behind. */
static void arm_watch(zkc__qe *q)
{
    struct req *r = req_new(q);
    zhandle_t *zh;
    int rc;
    unsigned gen;

    if (!r) {
        zkc__qe_fail(q, ZKC_ENOMEM);
        return;
    }
    if (q->pw && q->pw->tag[0] == q->attempt && q->pw->tag[1] == q->round &&
        strcmp(q->pw->path, q->watching) == 0) {
        req_free(r); /* still watched (see pw) */
        return;
    }
    if (q->ops->before_watch)
        q->ops->before_watch(q, q->watching);
    zh = zkc__zh_lock(q->s, &gen);
    if (!zh) {
        req_free(r);
        resume_later(q);
        return;
    }
    rc = req_send(zh, gen, r, R_WATCH, q->watching);
    zkc__zh_unlock(q->s);
    if (rc == ZSYSTEMERROR) {
        req_free(r);
        zkc__qe_fail(q, ZKC_ENOMEM);
    } else if (rc != ZOK) {
        req_free(r);
        resume_later(q);
    }
}

/* mu held: our node is verified to be ours; grant. */
int64_t (*zkc__test_grant_sid)(int64_t sid);

static void grant(zkc__qe *q)
{
    int64_t sid = zkc_session_id(q->s);

    if (zkc__test_grant_sid)
        sid = zkc__test_grant_sid(sid);

    /* Between two ZooKeeper sessions there is nothing to compare with:
     * never grant blind. Look again once connected. */
    if (sid == 0) {
        resume_later(q);
        return;
    }
    /* Ownership check: a node found by guid under another session must
     * never count as ours (pcreate deletes those; this is the last guard). */
    if (q->owner_sid != sid) {
        zkc__log(q->s, ZKC_LOG_WARN, "%s is owned by session 0x%llx, not ours: queueing again",
                 q->node, (unsigned long long)q->owner_sid);
        lose_node(q);
        resume_later(q);
        return;
    }
    q->state = ZKC__QE_HELD;
    __atomic_store_n(&q->held_flag, 1, __ATOMIC_SEQ_CST);
    q->try_only = 0;
    q->ops->done(q, 0);
}

static void children_done(int rc, const struct String_vector *v, const struct Stat *pst,
                          const void *data)
{
    struct req *r = (struct req *)data;
    zkc__qe *q = r->q;
    char **names = NULL;
    int n = 0, i, me = -1, ahead, relaunch = 0;
    unsigned attempt = r->attempt;

    zkc__pending_done(q->s, &r->pend);

    pthread_mutex_lock(&q->mu);
    if (r->attempt == q->attempt && r->round == q->round && q->gc_inflight > 0)
        q->gc_inflight--;
    if (!current(q, r->attempt, r->round) || !q->node) {
        /* stale, or the create has not succeeded yet: its completion
         * (or recovery) evaluates again */
        goto out;
    }
    if (transient(rc)) {
        resume_later(q);
        goto out;
    }
    if (rc != ZOK && rc != ZNONODE) {
        zkc__qe_fail(q, zkc__err_from_zk(rc));
        goto out;
    }
    if (rc == ZOK && pst && zkc__q_near_wrap(pst->cversion) && !q->wrap_warned) {
        q->wrap_warned = 1;
        zkc__log(q->s, ZKC_LOG_WARN,
                 "%s: sequence counter at %d, within 2^24 of the 2^31 wrap (Curator peers "
                 "order wrongly past it; let the path empty so its container resets)",
                 q->parent, (int)pst->cversion);
    }
    n = zkc__q_line(rc == ZOK ? v : NULL, q->kinds, &q->foreign, &names);
    if (n < 0) {
        zkc__qe_fail(q, ZKC_ENOMEM);
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (strcmp(names[i], q->name) == 0) {
            me = i;
            break;
        }
    }
    if (me < 0) {
        /* Our node is gone while our session lives (deleted by hand, or
         * the session changed under us): queue again, as Curator does on
         * NoNode. */
        zkc__log(q->s, ZKC_LOG_INFO, "%s vanished while queued: queueing again", q->node);
        lose_node(q);
        relaunch = 1;
        goto out;
    }
    if (q->ops->line)
        q->ops->line(q, names, n, me);
    ahead = q->ops->rule(q, names, n, me);
    if (ahead < 0) {
        grant(q);
        goto out;
    }
    if (q->try_only) {
        zkc__qe_fail(q, ZKC_EBUSY);
        goto out;
    }
    free(q->watching);
    q->watching = zkc__path_join(q->parent, names[ahead]);
    if (!q->watching) {
        zkc__qe_fail(q, ZKC_ENOMEM);
        goto out;
    }
    arm_watch(q);
out:
    pthread_mutex_unlock(&q->mu);
    free(names);
    if (relaunch)
        zkc__qe_launch(q, attempt);
    req_free(r);
}

/* mu held: list the line. */
static void evaluate(zkc__qe *q)
{
    struct req *r = req_new(q);
    zhandle_t *zh;
    int rc;
    unsigned gen;

    if (!r) {
        zkc__qe_fail(q, ZKC_ENOMEM);
        return;
    }
    zh = zkc__zh_lock(q->s, &gen);
    if (!zh) {
        req_free(r);
        resume_later(q);
        return;
    }
    rc = req_send(zh, gen, r, R_CHILDREN, q->parent);
    zkc__zh_unlock(q->s);
    if (rc != ZOK) {
        req_free(r);
        resume_later(q);
        return;
    }
    q->gc_inflight++;
}

/* ------------------------------------------------ the own-node watch */

/* mu held: getData(our node, watch). */
static void arm_own(zkc__qe *q)
{
    struct req *r = req_new(q);
    zhandle_t *zh;
    unsigned gen;

    if (!r)
        return; /* unarmed: a deletion shows at the next listing or verify */
    zh = zkc__zh_lock(q->s, &gen);
    if (zh && req_send(zh, gen, r, R_OWN, q->node) == ZOK)
        r = NULL;
    if (zh)
        zkc__zh_unlock(q->s);
    if (r)
        req_free(r);
}

/* mu held: our node is gone while the session lives. */
static void own_gone(zkc__qe *q)
{
    q->own_armed = 0;
    if (q->state == ZKC__QE_HELD) {
        zkc__log(q->s, ZKC_LOG_INFO, "%s was deleted while held", q->node);
        q->lost_node = 1;
        lost(q);
    } else if (q->state == ZKC__QE_ACQUIRING && q->gc_inflight == 0) {
        evaluate(q); /* the listing finds it gone: queue again */
    }
}

static void own_set(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc__qe *q = r->q;
    char *path = r->w ? strdup(r->w->path) : NULL;

    zkc__pending_done(q->s, &r->pend);
    (void)value;
    (void)len;
    (void)st;
    zkc__qwatch_reply(r->w, rc == ZOK);
    r->w = NULL;
    pthread_mutex_lock(&q->mu);
    if (path && q->node && strcmp(q->node, path) == 0) {
        if (rc == ZOK)
            q->own_armed = 1;
        else if (rc == ZNONODE)
            own_gone(q);
        /* connection loss: unarmed; RECONNECTED verifies a held node */
    }
    pthread_mutex_unlock(&q->mu);
    free(path);
    req_free(r);
}

/* mu held: the watch on our own node ended. */
static void own_woken(zkc__qe *q, zkc__qwatch *w, int type)
{
    if (type == 0 || !q->node || strcmp(q->node, w->path) != 0)
        return;
    q->own_armed = 0;
    if (type == ZOO_DELETED_EVENT)
        own_gone(q);
    else
        arm_own(q); /* data changed: set it again */
}

static void created(void *arg, int rc, const char *path, const struct Stat *st)
{
    struct req *r = arg;
    zkc__qe *q = r->q;

    pthread_mutex_lock(&q->mu);
    if (r->attempt == q->attempt && r->round == q->round)
        q->creating = 0;
    if (!current(q, r->attempt, r->round)) {
        /* Canceled or timed out while the create was in flight (or being
         * recovered): the node must not stay in the line. */
        if (rc == 0)
            zkc__bg_delete(q->s, path, zkc_session_generation(q->s), NULL);
    } else if (rc == 0) {
        q->node = strdup(path);
        if (!q->node) {
            zkc__bg_delete(q->s, path, zkc_session_generation(q->s), NULL);
            zkc__qe_fail(q, ZKC_ENOMEM);
        } else {
            q->name = zkc__path_base(q->node);
            q->token = st->czxid;
            q->owner_sid = st->ephemeralOwner;
            q->own_armed = 0;
            if (q->watch_own)
                arm_own(q);
            /* The pipelined getChildren (if any) answers next. */
            if (q->gc_inflight == 0)
                evaluate(q);
        }
    } else if (rc == ZKC_ESESSIONLOST || rc == ZKC_ECONNLOSS || rc == ZKC_ECLOSED) {
        /* Also ECLOSED: the handle of a session being replaced was closed
         * under the create. resume_later() fails with ECLOSED only when the
         * session itself is closing. */
        resume_later(q);
    } else {
        zkc__qe_fail(q, rc);
    }
    pthread_mutex_unlock(&q->mu);
    req_free(r);
}

static void parent_made(void *arg, int rc)
{
    struct req *r = arg;
    zkc__qe *q = r->q;
    unsigned attempt = r->attempt;

    /* Best effort: on failure the protected create makes the parents
     * (persistent) itself. */
    if (rc != 0 && rc != ZKC_ECONNLOSS)
        zkc__log(q->s, ZKC_LOG_DEBUG, "%s: no container parent: %s", q->parent, zkc_strerror(rc));
    pthread_mutex_lock(&q->mu);
    q->parent_ok = 1;
    pthread_mutex_unlock(&q->mu);
    zkc__qe_launch(q, attempt);
    req_free(r);
}

/* Create our node and, right behind it, list the line. The first time,
 * make the parent a container first (one more round trip, once per
 * entry). */
void zkc__qe_launch(zkc__qe *q, unsigned attempt)
{
    struct req *cr, *gr = NULL;
    char guid[ZKC_GUID_LEN + 1];
    zhandle_t *zh;
    unsigned round, gen;
    int rc;

    pthread_mutex_lock(&q->mu);
    if (attempt != q->attempt || q->state != ZKC__QE_ACQUIRING) {
        pthread_mutex_unlock(&q->mu);
        return;
    }
    if (!q->parent_ok) {
        cr = req_new(q);
        if (!cr)
            zkc__qe_fail(q, ZKC_ENOMEM);
        pthread_mutex_unlock(&q->mu);
        if (cr)
            zkc__q_container(q->s, q->parent, parent_made, cr);
        return;
    }
    cr = req_new(q);
    if (!cr) {
        zkc__qe_fail(q, ZKC_ENOMEM);
        pthread_mutex_unlock(&q->mu);
        return;
    }
    /* A fresh guid per create, as Curator's withProtection() does: recovery
     * after a lost reply must find this create's node, never the node of an
     * earlier attempt of ours that is still being deleted. */
    if (zkc__guid(guid) != 0) {
        req_free(cr);
        zkc__qe_fail(q, ZKC_ESYS);
        pthread_mutex_unlock(&q->mu);
        return;
    }
    q->creating = 1;
    q->gc_inflight++; /* reserved: the create's reply must not evaluate alone */
    round = q->round;
    q->node_gen = zkc_session_generation(q->s);
    pthread_mutex_unlock(&q->mu);

    zkc__pcreate(q->s, q->parent, guid, q->body, q->data, (int)strlen(q->data),
                 ZOO_EPHEMERAL_SEQUENTIAL, created, cr);

    pthread_mutex_lock(&q->mu);
    rc = ZINVALIDSTATE;
    if (current(q, attempt, round) && (gr = req_new(q)) != NULL) {
        zh = zkc__zh_lock(q->s, &gen);
        if (zh) {
            rc = req_send(zh, gen, gr, R_CHILDREN, q->parent);
            zkc__zh_unlock(q->s);
        }
        if (rc != ZOK)
            req_free(gr);
    }
    if (rc != ZOK) {
        if (attempt == q->attempt && round == q->round && q->gc_inflight > 0)
            q->gc_inflight--;
        /* The create may have completed meanwhile, waiting for us. */
        if (current(q, attempt, round) && q->node && q->gc_inflight == 0)
            evaluate(q);
    }
    pthread_mutex_unlock(&q->mu);
}

unsigned zkc__qe_begin(zkc__qe *q, int try_only)
{
    q->attempt++;
    q->state = ZKC__QE_ACQUIRING;
    q->try_only = try_only;
    q->creating = 0;
    q->gc_inflight = 0;
    lose_node(q);
    q->own_armed = 0;
    q->token = 0;
    return q->attempt;
}

zkc__call *zkc__qe_release(zkc__qe *q)
{
    zkc__call *c = NULL;

    q->state = ZKC__QE_IDLE;
    __atomic_store_n(&q->held_flag, 0, __ATOMIC_SEQ_CST);
    q->attempt++;
    if (q->node) {
        c = zkc__call_new();
        if (c)
            zkc__call_ref(c); /* one for bg_delete */
        zkc__bg_delete(q->s, q->node, q->node_gen, c);
        free(q->node);
        q->node = NULL;
        q->name = NULL;
    }
    return c;
}

void zkc__qe_forget(zkc__qe *q)
{
    q->state = ZKC__QE_IDLE;
    lose_node(q);
}

void zkc__qe_requeue(zkc__qe *q)
{
    __atomic_store_n(&q->held_flag, 0, __ATOMIC_SEQ_CST);
    zkc__qe_begin(q, 0);
    resume_later(q);
}

void zkc__qe_relist(zkc__qe *q)
{
    if (q->state == ZKC__QE_ACQUIRING && q->node && !q->creating && q->gc_inflight == 0)
        evaluate(q);
}

void zkc__qe_abandon(zkc__qe *q, char **node, unsigned *gen)
{
    q->state = ZKC__QE_IDLE;
    __atomic_store_n(&q->held_flag, 0, __ATOMIC_SEQ_CST);
    q->attempt++;
    q->own_armed = 0;
    *node = q->node;
    *gen = q->node_gen;
    q->node = NULL;
    q->name = NULL;
    free(q->watching);
    q->watching = NULL;
}

/* ------------------------------------------------------- state hooks */

/* mu held: lost while held. */
static void lost(zkc__qe *q)
{
    q->state = ZKC__QE_LOST;
    __atomic_store_n(&q->held_flag, 0, __ATOMIC_SEQ_CST);
    q->ops->event(q, ZKC_LOCK_LOST);
}

static void verified(int rc, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc__qe *q = r->q;

    zkc__pending_done(q->s, &r->pend);
    pthread_mutex_lock(&q->mu);
    if (r->attempt == q->attempt && q->state == ZKC__QE_HELD) {
        if (rc == ZOK && st->ephemeralOwner == q->owner_sid) {
            q->ops->event(q, ZKC_LOCK_RECONNECTED);
        } else if (rc == ZOK || rc == ZNONODE || zkc__zk_expired(rc)) {
            q->lost_node = !zkc__zk_expired(rc);
            lost(q);
        }
        /* connection loss: the next RECONNECTED verifies again */
    }
    pthread_mutex_unlock(&q->mu);
    req_free(r);
}

static void hook(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc__qe *q = arg;
    struct req *r;
    zhandle_t *zh;
    unsigned zgen;

    pthread_mutex_lock(&q->mu);
    if (q->ops->state)
        q->ops->state(q, st, gen);
    if (q->state == ZKC__QE_HELD) {
        if (st == ZKC_CONN_SUSPENDED) {
            q->ops->event(q, ZKC_LOCK_SUSPENDED);
        } else if (st == ZKC_CONN_LOST || (st == ZKC_CONN_CONNECTED && gen != q->node_gen)) {
            q->lost_node = 0;
            lost(q);
        } else if (st == ZKC_CONN_RECONNECTED) {
            /* Same session back: confirm the node is still there and
             * ours before saying so (it could have been deleted by hand). */
            r = req_new(q);
            zh = r ? zkc__zh_lock(q->s, &zgen) : NULL;
            if (zh) {
                if (req_send(zh, zgen, r, R_VERIFY, q->node) != ZOK) {
                    req_free(r);
                    r = NULL;
                }
                zkc__zh_unlock(q->s);
            } else if (r) {
                req_free(r);
            }
        }
    } else if (q->state == ZKC__QE_ACQUIRING &&
               (st == ZKC_CONN_LOST || st == ZKC_CONN_RECONNECTED)) {
        resume_later(q);
    }
    pthread_mutex_unlock(&q->mu);
}

/* ------------------------------------------------------- set up, close */

int zkc__qe_init(zkc__qe *q, zkc_session *s, const char *parent, const char *body, const char *data,
                 unsigned kinds, const zkc__qe_ops *ops)
{
    int rc;

    pthread_mutex_init(&q->mu, NULL);
    if (zkc__cond_init(&q->cond) != 0) {
        rc = ZKC_ESYS;
        goto fail_cond;
    }
    q->parent = strdup(parent);
    q->data = strdup(data);
    if (!q->parent || !q->data) {
        rc = ZKC_ENOMEM;
        goto fail_alloc;
    }
    q->refs = 1;
    q->s = s;
    q->body = body;
    q->kinds = kinds;
    q->ops = ops;
    rc = zkc__add_hook(s, hook, q);
    if (rc)
        goto fail_alloc;
    zkc__session_attach(s);
    return 0;

fail_alloc:
    free(q->parent);
    free(q->data);
    q->parent = q->data = NULL;
    pthread_cond_destroy(&q->cond);
fail_cond:
    pthread_mutex_destroy(&q->mu);
    return rc;
}

void zkc__qe_close_begin(zkc__qe *q)
{
    /* Outside our mutex (session lock order); after it returns, the hook
     * does not run for us again. */
    zkc__remove_hook(q->s, hook, q);
}

void zkc__qe_close_end(zkc__qe *q)
{
    zkc_session *s = q->s;

    /* A watch still set keeps q alive (its context) until it fires or the
     * handle closes; nothing of it reaches the face: q->freed is set and
     * the attempt it belongs to is over. */
    zkc__dispatch_barrier(s);
    zkc__session_detach(s);
    zkc__qe_unref(q);
}
