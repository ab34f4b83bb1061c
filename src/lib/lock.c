/*
 * The mutex and the two sides of the read/write lock: faces of the queue
 * engine (qengine.c) holding only what a lock adds to it -- reentry, the
 * blocking and asynchronous acquire, the grant rules, the user's
 * notifications and fenced writes -- plus the inspection of a lock path.
 * The semaphore uses the mutex for its internal lock.
 *
 * Grant rules: the mutex and the write side are granted when first in
 * their line; the read side when no writer is queued ahead of it (or our
 * own write side holds: downgrade).
 */
#include "cache.h"
#include "qengine.h"
#include "naming.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct zkc_lock {
    zkc__qe q; /* first: the engine's ops get it */
    zkc__lq_kind kind;
    zkc_lock *write_side; /* READ only */
    zkc_lock_event_fn on_event;
    void *ud;
    int owned_by_rw;
    int count; /* reentry */

    /* result of the pending acquire (under q.mu) */
    unsigned res_attempt;
    int res_rc;
    zkc_lock_acquire_fn acb;
    void *acb_ud;
};

#define LOCK_OF(qe) ((zkc_lock *)(void *)(qe))

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
    pthread_mutex_lock(&l->q.mu);
    freed = l->q.freed;
    stale = l->q.state != ZKC__QE_HELD || l->q.token != n->token;
    pthread_mutex_unlock(&l->q.mu);
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
    zkc__qe_unref(&l->q);
    free(n);
}

/* mu held */
static void post_note(zkc_lock *l, struct note *tmpl)
{
    struct note *n = malloc(sizeof(*n));

    if (!n) {
        zkc__log(l->q.s, ZKC_LOG_ERROR, "out of memory: a lock callback for %s is lost",
                 l->q.parent);
        return;
    }
    *n = *tmpl;
    n->l = l;
    zkc__qe_ref(&l->q);
    if ((n->is_event && n->ev != ZKC_LOCK_RECONNECTED ? zkc__dispatch_safety
                                                      : zkc__dispatch)(l->q.s, run_note, n) != 0) {
        zkc__qe_unref(&l->q);
        free(n);
    }
}

/* ------------------------------------------------------ the engine's ops */

/* The node directly ahead (mutex, write side), or the last writer ahead
 * (read side: it can only be granted once that one is gone, so earlier
 * writers leaving wake nobody). */
static int rule(zkc__qe *q, char **names, int n, int me)
{
    zkc_lock *l = LOCK_OF(q);
    int i, ahead = -1;

    (void)n;
    if (l->kind != ZKC__LQ_READ)
        return me - 1;
    for (i = 0; i < me; i++)
        if (zkc__q_kind(names[i]) == ZKC__Q_WRITE)
            ahead = i;
    if (ahead >= 0 && l->write_side &&
        __atomic_load_n(&l->write_side->q.held_flag, __ATOMIC_SEQ_CST))
        ahead = -1; /* downgrade: our own writer holds */
    return ahead;
}

static void done(zkc__qe *q, int rc)
{
    zkc_lock *l = LOCK_OF(q);

    if (rc == 0)
        l->count = 1;
    l->res_attempt = q->attempt;
    l->res_rc = rc;
    pthread_cond_broadcast(&q->cond);
    if (l->acb) {
        struct note n;
        memset(&n, 0, sizeof(n));
        n.rc = rc;
        n.token = rc == 0 ? q->token : 0;
        n.acb = l->acb;
        n.acb_ud = l->acb_ud;
        l->acb = NULL;
        post_note(l, &n);
    }
}

static void event(zkc__qe *q, zkc_lock_event ev)
{
    zkc_lock *l = LOCK_OF(q);
    struct note n;

    if (!l->on_event)
        return;
    memset(&n, 0, sizeof(n));
    n.is_event = 1;
    n.ev = ev;
    n.token = q->token;
    post_note(l, &n);
}

static void destroy(zkc__qe *q)
{
    free(LOCK_OF(q));
}

static const zkc__qe_ops lock_ops = {
    .rule = rule, .done = done, .event = event, .destroy = destroy};

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
    unsigned kinds;
    int rc;

    if (!out || !s || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return ZKC_ENOMEM;
    if (o && o->owner_id)
        snprintf(owner, sizeof(owner), "%s", o->owner_id);
    else
        zkc__default_owner(owner, sizeof(owner));
    kinds = kind == ZKC__LQ_MUTEX ? ZKC__Q_BIT(ZKC__Q_MUTEX)
                                  : ZKC__Q_BIT(ZKC__Q_READ) | ZKC__Q_BIT(ZKC__Q_WRITE);
    l->kind = kind;
    l->write_side = write_side;
    l->on_event = o ? o->on_event : NULL;
    l->ud = o ? o->user_data : NULL;
    rc = zkc__qe_init(&l->q, s, path, body_of(kind), owner, kinds, &lock_ops);
    if (rc) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

int zkc_lock_new(zkc_lock **out, zkc_session *s, const char *path, const zkc_lock_opts *o)
{
    return zkc__lock_new_kind(out, s, path, o, ZKC__LQ_MUTEX, NULL);
}

void zkc__lock_set_owned(zkc_lock *l, int owned)
{
    l->owned_by_rw = owned;
}

int zkc_lock_acquire(zkc_lock *l, int timeout_ms, int64_t *token)
{
    unsigned attempt;
    struct timespec ts;
    int rc, timed_out = 0;
    int wait_ms = timeout_ms;

    if (!l)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->q.mu);
    if (l->q.state == ZKC__QE_HELD) {
        l->count++;
        if (token)
            *token = l->q.token;
        pthread_mutex_unlock(&l->q.mu);
        return 0;
    }
    if (l->q.state == ZKC__QE_ACQUIRING) {
        pthread_mutex_unlock(&l->q.mu);
        return ZKC_EBUSY;
    }
    attempt = zkc__qe_begin(&l->q, timeout_ms == 0);
    zkc__qe_ref(&l->q); /* a zkc_lock_free() from another thread wakes us, not frees us */
    pthread_mutex_unlock(&l->q.mu);
    zkc__qe_launch(&l->q, attempt);

    if (timeout_ms == 0)
        wait_ms = zkc_session_timeout_ms(l->q.s);
    if (wait_ms >= 0)
        zkc__deadline(&ts, wait_ms);
    pthread_mutex_lock(&l->q.mu);
    while (l->res_attempt != attempt) {
        if (wait_ms < 0) {
            pthread_cond_wait(&l->q.cond, &l->q.mu);
        } else if (pthread_cond_timedwait(&l->q.cond, &l->q.mu, &ts) != 0 &&
                   l->res_attempt != attempt) {
            timed_out = 1;
            break;
        }
    }
    if (timed_out) {
        /* Abandon: our node (or the one whose create is in flight) goes. */
        if (l->q.attempt == attempt && l->q.state == ZKC__QE_ACQUIRING)
            zkc__qe_fail(&l->q, ZKC_ETIMEDOUT);
        rc = ZKC_ETIMEDOUT;
    } else {
        rc = l->res_rc;
    }
    if (rc == 0 && token)
        *token = l->q.token;
    pthread_mutex_unlock(&l->q.mu);
    zkc__qe_unref(&l->q);
    return rc;
}

int zkc_lock_acquire_async(zkc_lock *l, zkc_lock_acquire_fn cb, void *user_data)
{
    unsigned attempt;

    if (!l || !cb)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->q.mu);
    if (l->q.state == ZKC__QE_HELD) {
        struct note n;
        memset(&n, 0, sizeof(n));
        n.token = l->q.token;
        n.acb = cb;
        n.acb_ud = user_data;
        l->count++;
        post_note(l, &n);
        pthread_mutex_unlock(&l->q.mu);
        return 0;
    }
    if (l->q.state == ZKC__QE_ACQUIRING) {
        pthread_mutex_unlock(&l->q.mu);
        return ZKC_EBUSY;
    }
    attempt = zkc__qe_begin(&l->q, 0);
    l->acb = cb;
    l->acb_ud = user_data;
    pthread_mutex_unlock(&l->q.mu);
    zkc__qe_launch(&l->q, attempt);
    return 0;
}

int zkc_lock_cancel(zkc_lock *l)
{
    int rc = ZKC_ENONODE;

    if (!l)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->q.mu);
    if (l->q.state == ZKC__QE_ACQUIRING) {
        zkc__qe_fail(&l->q, ZKC_ECANCELED);
        rc = 0;
    }
    pthread_mutex_unlock(&l->q.mu);
    return rc;
}

int zkc_lock_release(zkc_lock *l)
{
    zkc__call *c = NULL;

    if (!l)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->q.mu);
    if (l->q.state == ZKC__QE_LOST) {
        /* Quietly: the node went with the session. */
        zkc__qe_forget(&l->q);
        l->count = 0;
        pthread_mutex_unlock(&l->q.mu);
        return 0;
    }
    if (l->q.state != ZKC__QE_HELD) {
        pthread_mutex_unlock(&l->q.mu);
        return ZKC_ENOTHELD;
    }
    if (l->count > 1) {
        l->count--;
        pthread_mutex_unlock(&l->q.mu);
        return 0;
    }
    l->count = 0;
    c = zkc__qe_release(&l->q);
    pthread_mutex_unlock(&l->q.mu);
    if (c) {
        zkc__call_wait(c, zkc_session_timeout_ms(l->q.s));
        zkc__call_unref(c);
    }
    return 0;
}

int zkc_lock_is_held(zkc_lock *l)
{
    int held;

    if (!l)
        return 0;
    pthread_mutex_lock(&l->q.mu);
    held = l->q.state == ZKC__QE_HELD;
    pthread_mutex_unlock(&l->q.mu);
    return held;
}

int64_t zkc_lock_token(zkc_lock *l)
{
    int64_t t;

    if (!l)
        return 0;
    pthread_mutex_lock(&l->q.mu);
    t = (l->q.state == ZKC__QE_HELD || l->q.state == ZKC__QE_LOST) ? l->q.token : 0;
    pthread_mutex_unlock(&l->q.mu);
    return t;
}

int zkc_lock_node_path(zkc_lock *l, char *buf, size_t len)
{
    int rc = 0;

    if (!l || !buf)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->q.mu);
    if (!l->q.node || (l->q.state != ZKC__QE_HELD && l->q.state != ZKC__QE_LOST))
        rc = ZKC_ENOTHELD;
    else if (strlen(l->q.node) >= len)
        rc = ZKC_EINVAL;
    else
        memcpy(buf, l->q.node, strlen(l->q.node) + 1);
    pthread_mutex_unlock(&l->q.mu);
    return rc;
}

int zkc_lock_fenced_multi(zkc_lock *l, const zkc_op *ops, int nops, int timeout_ms)
{
    char *guard = NULL;
    int rc;

    if (!l)
        return ZKC_EINVAL;
    pthread_mutex_lock(&l->q.mu);
    if (l->q.node && (l->q.state == ZKC__QE_HELD || l->q.state == ZKC__QE_LOST))
        guard = strdup(l->q.node);
    rc = l->q.node && !guard ? ZKC_ENOMEM : ZKC_ENOTHELD;
    pthread_mutex_unlock(&l->q.mu);
    if (!guard)
        return rc;
    rc = zkc_fenced_multi(l->q.s, guard, ops, nops, timeout_ms);
    free(guard);
    return rc;
}

void zkc__lock_free_any(zkc_lock *l)
{
    zkc__call *c = NULL;

    if (!l)
        return;
    zkc__qe_close_begin(&l->q);
    pthread_mutex_lock(&l->q.mu);
    l->q.freed = 1;
    l->acb = NULL;
    if (l->q.state == ZKC__QE_ACQUIRING) {
        zkc__qe_fail(&l->q, ZKC_ECANCELED);
    } else if (l->q.state == ZKC__QE_HELD) {
        l->count = 0;
        c = zkc__qe_release(&l->q);
    }
    pthread_mutex_unlock(&l->q.mu);
    if (c)
        zkc__call_unref(c); /* the delete goes on in the background */
    zkc__qe_close_end(&l->q);
}

void zkc_lock_free(zkc_lock *l)
{
    if (!l)
        return;
    if (l->owned_by_rw) {
        zkc__log(l->q.s, ZKC_LOG_ERROR, "zkc_lock_free on a side of a rwlock: use zkc_rwlock_free");
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
