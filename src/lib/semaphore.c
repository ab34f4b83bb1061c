/* Counting semaphore, Curator's InterProcessSemaphoreV2 layout: a mutex
 * under "<path>/locks" serialises the waiters; its holder creates a lease
 * "<path>/leases/_c_<uuid>-lease-<seq>", lists the leases with a watch, and
 * keeps its lease when there are at most max_leases of them, else waits for
 * the leases to change; then it releases the mutex. Only the head of the
 * mutex queue watches the leases folder, so a returned lease wakes one
 * waiter, and the others wait their turn in the mutex queue (FIFO).
 *
 * The waiting is done on the caller's thread (acquire is blocking only), as
 * a sequence of asynchronous requests each waited for with the caller's
 * deadline; the state kept for loss events is small.
 *
 * The leases are counted from the children cache (cache.c) of the leases
 * folder, with its per-request watch, on demand: only a round that counts
 * wants it, so a holder or an idle handle lists nothing when leases come
 * and go (the herd Curator's V2 avoids the same way), and the waiter lists
 * once per change. Locks: the cache's mutex, then mu (leases_listed()).
 *
 * A session lost while waiting ends the round, not the acquire: the lease
 * and the internal mutex died with the session, so the waiter starts again
 * on the new one (within its deadline), as the mutex does. Every wait also
 * wakes at session changes (the leases watch dies with its session), and a
 * lease is granted only while the session generation it was counted in is
 * still the current one. */
#include "queue.h"
#include "cache.h"
#include "naming.h"
#include "pcreate.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum sstate { S_IDLE = 0, S_ACQUIRING = 1, S_HELD = 2, S_LOST = 3 };

struct zkc_semaphore {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs; /* atomic */
    zkc_session *s;
    char *leases;
    char *owner;
    char guid[ZKC_GUID_LEN + 1];
    int max;
    zkc_lock *mutex;
    zkc_semaphore_event_fn on_event;
    void *ud;
    int freed;
    unsigned changes; /* children events on the leases folder */
    enum sstate state;
    unsigned epoch; /* bumped at each grant / release */
    char *node;
    unsigned node_gen;
    int64_t token;
    int64_t owner_sid;
    int acquiring;  /* threads inside zkc_semaphore_acquire() */
    zkc__cache *lc; /* the leases folder */
};

static void sem_ref(zkc_semaphore *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_SEQ_CST);
}

static void sem_unref(zkc_semaphore *m)
{
    if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_SEQ_CST) != 0)
        return;
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cond);
    zkc__cache_unref(m->lc);
    free(m->leases);
    free(m->owner);
    free(m->node);
    free(m);
}

void zkc_semaphore_opts_init(zkc_semaphore_opts *o)
{
    memset(o, 0, sizeof(*o));
}

/* ------------------------------------------------------------ events */

struct sem_note {
    zkc_semaphore *m;
    zkc_lock_event ev;
    int64_t token;
};

void (*zkc__test_sem_counted)(zkc_session *s);

static void run_note(void *arg)
{
    struct sem_note *n = arg;
    int freed;

    pthread_mutex_lock(&n->m->mu);
    freed = n->m->freed;
    /* RECONNECTED (ordinary lane) after LOST (safety lane): stale */
    if (n->ev == ZKC_LOCK_RECONNECTED && (n->m->state != S_HELD || n->m->token != n->token))
        freed = 1;
    pthread_mutex_unlock(&n->m->mu);
    if (!freed && n->m->on_event)
        n->m->on_event(n->m, n->ev, n->token, n->m->ud);
    sem_unref(n->m);
    free(n);
}

/* mu held */
static void post_event(zkc_semaphore *m, zkc_lock_event ev)
{
    struct sem_note *n;

    if (!m->on_event || !(n = malloc(sizeof(*n))))
        return;
    n->m = m;
    n->ev = ev;
    n->token = m->token;
    sem_ref(m);
    /* SUSPENDED and LOST: the safety lane, never behind other callbacks */
    if ((ev == ZKC_LOCK_RECONNECTED ? zkc__dispatch : zkc__dispatch_safety)(m->s, run_note, n) !=
        0) {
        sem_unref(m);
        free(n);
    }
}

struct vreq {
    zkc__pending pend; /* ends once, also when the handle is closed */
    zkc_semaphore *m;
    unsigned epoch;
};

/* The check of our lease after RECONNECTED ended: rc ZCLOSING when the
 * handle was closed with it in flight (the hook then hears the rest). */
static void verify_end(struct vreq *v, int rc, const struct Stat *st)
{
    zkc_semaphore *m = v->m;

    pthread_mutex_lock(&m->mu);
    if (v->epoch == m->epoch && m->state == S_HELD) {
        if (rc == ZOK && st->ephemeralOwner == m->owner_sid) {
            post_event(m, ZKC_LOCK_RECONNECTED);
        } else if (rc == ZOK || rc == ZNONODE || zkc__zk_expired(rc)) {
            m->state = S_LOST;
            post_event(m, ZKC_LOCK_LOST);
        }
    }
    pthread_mutex_unlock(&m->mu);
    sem_unref(m);
    free(v);
}

static void verified(int rc, const struct Stat *st, const void *data)
{
    struct vreq *v = (struct vreq *)data;

    zkc__pending_done(v->m->s, &v->pend);
    verify_end(v, rc, st);
}

static void verify_dropped(zkc__pending *pd)
{
    verify_end((struct vreq *)(void *)((char *)pd - offsetof(struct vreq, pend)), ZCLOSING, NULL);
}

static void hook(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_semaphore *m = arg;
    struct vreq *v;
    zhandle_t *zh;
    unsigned zgen;

    pthread_mutex_lock(&m->mu);
    /* Wake a waiter: its leases watch may have died with the session. */
    m->changes++;
    pthread_cond_broadcast(&m->cond);
    if (m->state == S_HELD) {
        if (st == ZKC_CONN_SUSPENDED) {
            post_event(m, ZKC_LOCK_SUSPENDED);
        } else if (st == ZKC_CONN_LOST || (st == ZKC_CONN_CONNECTED && gen != m->node_gen)) {
            m->state = S_LOST;
            post_event(m, ZKC_LOCK_LOST);
        } else if (st == ZKC_CONN_RECONNECTED && (v = malloc(sizeof(*v))) != NULL) {
            v->m = m;
            v->epoch = m->epoch;
            sem_ref(m);
            zh = zkc__zh_lock(m->s, &zgen);
            if (zh)
                zkc__pending_add(m->s, &v->pend, zgen, verify_dropped);
            if (!zh || zoo_aexists(zh, m->node, 0, verified, v) != ZOK) {
                if (zh)
                    zkc__pending_done(m->s, &v->pend);
                sem_unref(m);
                free(v);
            }
            if (zh)
                zkc__zh_unlock(m->s);
        }
    }
    pthread_mutex_unlock(&m->mu);
}

/* The leases' cache: names are all a count needs. */
static const char lease_value[] = "lease";

static void *lease_decode(void *ctx, const char *name, const char *data, int len,
                          const struct Stat *st)
{
    (void)ctx;
    (void)name;
    (void)data;
    (void)len;
    (void)st;
    return (void *)lease_value;
}

/* Completion thread, the cache's mutex held: a listing of the leases was
 * applied; a waiting round counts again. */
static void leases_listed(void *ctx)
{
    zkc_semaphore *m = ctx;

    pthread_mutex_lock(&m->mu);
    m->changes++;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->mu);
}

static const zkc__cache_ops lease_ops = {
    .decode = lease_decode,
    .listed = leases_listed,
};

/* ------------------------------------------------------ construction */

int zkc_semaphore_new(zkc_semaphore **out, zkc_session *s, const char *path, int max_leases,
                      const zkc_semaphore_opts *o)
{
    zkc_semaphore *m;
    zkc_lock_opts lo;
    zkc__cache_cfg cfg;
    char owner[320];
    char *locks = NULL;
    int rc;

    if (!out || !s || max_leases < 1 || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return ZKC_ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    if (zkc__cond_init(&m->cond) != 0) {
        rc = ZKC_ESYS;
        goto fail_cond;
    }
    if (o && o->owner_id)
        snprintf(owner, sizeof(owner), "%s", o->owner_id);
    else
        zkc__default_owner(owner, sizeof(owner));
    m->refs = 1;
    m->s = s;
    m->max = max_leases;
    m->on_event = o ? o->on_event : NULL;
    m->ud = o ? o->user_data : NULL;
    m->owner = strdup(owner);
    m->leases = zkc__path_join(path, "leases");
    locks = zkc__path_join(path, "locks");
    if (!m->owner || !m->leases || !locks) {
        rc = ZKC_ENOMEM;
        goto fail_alloc;
    }
    zkc_lock_opts_init(&lo);
    lo.owner_id = owner;
    rc = zkc_lock_new(&m->mutex, s, locks, &lo);
    if (rc)
        goto fail_alloc;
    memset(&cfg, 0, sizeof(cfg));
    cfg.on_demand = 1;
    rc = zkc__cache_new(&m->lc, s, m->leases, &lease_ops, m, &cfg);
    if (rc)
        goto fail_cache;
    rc = zkc__add_hook(s, hook, m);
    if (rc)
        goto fail_hook;
    zkc__cache_start(m->lc); /* not wanted yet: sends nothing */
    free(locks);
    zkc__session_attach(s);
    *out = m;
    return 0;

fail_hook:
    zkc__cache_unref(m->lc); /* never started */
fail_cache:
    zkc_lock_free(m->mutex);
fail_alloc:
    free(locks);
    free(m->owner);
    free(m->leases);
    pthread_cond_destroy(&m->cond);
fail_cond:
    pthread_mutex_destroy(&m->mu);
    free(m);
    return rc;
}

/* -------------------------------------------------------- acquire */

/* The protected create of a lease, waited for by the caller; a caller that
 * gives up before the reply leaves a note so the reply's node is deleted. */
struct lease_create {
    zkc_session *s;
    char *path;
    struct Stat st;
    unsigned gen;
    int abandoned;
};

static void lease_create_free(void *arg)
{
    struct lease_create *x = arg;

    if (x) {
        free(x->path);
        free(x);
    }
}

static void lease_created(void *arg, int rc, const char *path, const struct Stat *st)
{
    zkc__call *c = arg;
    struct lease_create *x = c->extra;

    pthread_mutex_lock(&c->mu);
    if (rc == 0) {
        if (x->abandoned) {
            zkc__bg_delete(x->s, path, x->gen, NULL);
        } else {
            x->path = strdup(path);
            x->st = *st;
            if (!x->path) {
                zkc__bg_delete(x->s, path, x->gen, NULL);
                rc = ZKC_ENOMEM;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    zkc__call_complete(c, rc);
    zkc__call_unref(c);
}

/* The cache's mutex held: leases in its view. */
static int count_leases(zkc__cache *c)
{
    zkc__centry *const *e;
    int i, n = 0, ne;

    e = zkc__cache_sorted(c, &ne);
    for (i = 0; i < ne; i++)
        if (strstr(e[i]->name, "lease-"))
            n++;
    return n;
}

/* Wait for a reply (deadline_ms -1 = forever, or an absolute time), but no
 * longer than the session generation `gen` lasts: the 3.8 client may drop
 * the completions of requests pending when it closes a handle, and after a
 * session change the answer no longer matters. 0, ZKC_ETIMEDOUT, or
 * ZKC_ESESSIONLOST (the generation moved on). The slices are not
 * synchronisation: they bound how long a dropped reply is waited for. */
/* zkc_semaphore_free() was called: a blocked acquire gives up. */
static int freed(zkc_semaphore *m)
{
    int f;

    pthread_mutex_lock(&m->mu);
    f = m->freed;
    pthread_mutex_unlock(&m->mu);
    return f;
}

/* zkc_session_wait_connected() that also ends when the handle is freed
 * (ZKC_ECANCELED). */
static int wait_connected(zkc_semaphore *m, int64_t deadline_ms)
{
    int left, slice, rc;

    for (;;) {
        if (freed(m))
            return ZKC_ECANCELED;
        left = zkc__remaining(deadline_ms);
        slice = left < 0 || left > 500 ? 500 : left;
        rc = zkc_session_wait_connected(m->s, slice);
        if (rc != ZKC_ETIMEDOUT || (left >= 0 && slice == left))
            return rc;
    }
}

static int wait_call(zkc_semaphore *m, zkc__call *c, int64_t deadline_ms, unsigned gen)
{
    int left, slice, rc;

    for (;;) {
        left = zkc__remaining(deadline_ms);
        slice = left < 0 || left > 500 ? 500 : left;
        rc = zkc__call_wait(c, slice);
        if (rc == 0)
            return 0;
        if (left >= 0 && slice == left)
            return ZKC_ETIMEDOUT;
        if (zkc_session_generation(m->s) != gen)
            return ZKC_ESESSIONLOST;
        if (freed(m))
            return ZKC_ECANCELED;
    }
}

/* Delete our lease and wait for the first outcome. */
static void drop_lease(zkc_semaphore *m, const char *path, unsigned gen)
{
    zkc__call *c = zkc__call_new();

    if (c)
        zkc__call_ref(c);
    zkc__bg_delete(m->s, path, gen, c);
    if (c) {
        zkc__call_wait(c, zkc_session_timeout_ms(m->s));
        zkc__call_unref(c);
    }
}

/* "This round cannot finish: the session changed under it; go again." */
#define AGAIN 1

/* One round: the internal mutex, our lease, counting until it fits. 0 with
 * *lease (new), *st and *gen set; AGAIN; or a ZKC_* error. Nothing of the
 * round is left behind on AGAIN or an error. */
static int one_round(zkc_semaphore *m, int64_t deadline, int try_only, char **lease_out,
                     struct Stat *st_out, unsigned *gen_out)
{
    pthread_mutex_t *cmu = zkc__cache_mutex(m->lc);
    zkc__call *cc = NULL;
    struct lease_create *x;
    int rc, found, n, seen;
    char *lease = NULL;
    unsigned gen, snap, mark;
    struct Stat st;

    if (freed(m))
        return ZKC_ECANCELED;
    rc = zkc_lock_acquire(m->mutex, try_only ? 0 : zkc__remaining(deadline), NULL);
    if (rc) {
        if (rc == ZKC_EBUSY)
            rc = ZKC_ETIMEDOUT;
        return rc;
    }
    if (freed(m)) {
        rc = ZKC_ECANCELED;
        goto out_unlock;
    }

    /* Our lease, protected like every node here. */
    cc = zkc__call_new();
    x = calloc(1, sizeof(*x));
    if (!cc || !x) {
        free(x);
        rc = ZKC_ENOMEM;
        goto out_unlock;
    }
    x->s = m->s;
    x->gen = gen = zkc_session_generation(m->s);
    rc = zkc__guid(m->guid); /* fresh per create, as Curator's protection */
    if (rc) {
        free(x);
        goto out_unlock;
    }
    cc->extra = x;
    cc->extra_free = lease_create_free;
    zkc__call_ref(cc);
    zkc__pcreate(m->s, m->leases, m->guid, "lease-", m->owner, (int)strlen(m->owner),
                 ZOO_EPHEMERAL_SEQUENTIAL, lease_created, cc);
    rc = wait_call(m, cc, deadline, gen);
    if (rc != 0) {
        pthread_mutex_lock(&cc->mu);
        if (!cc->done)
            x->abandoned = 1;
        else if (x->path)
            lease = strdup(x->path);
        pthread_mutex_unlock(&cc->mu);
        if (lease)
            drop_lease(m, lease, gen);
        rc = rc == ZKC_ESESSIONLOST ? AGAIN : rc;
        goto out_unlock;
    }
    if (cc->rc != 0) {
        rc = cc->rc;
        if (rc == ZKC_ESESSIONLOST || rc == ZKC_ECONNLOSS || rc == ZKC_ECLOSED)
            rc = AGAIN; /* the session (or its handle) changed under the create */
        goto out_unlock;
    }
    lease = strdup(x->path);
    st = x->st;
    if (!lease) {
        drop_lease(m, x->path, gen);
        rc = ZKC_ENOMEM;
        goto out_unlock;
    }

    /* Count from the cache, wanted from now on: a listing numbered `mark`
     * or later was sent after our create, so it names our lease unless
     * the lease is gone. */
    pthread_mutex_lock(cmu);
    mark = zkc__cache_want(m->lc, 1);
    pthread_mutex_unlock(cmu);
    for (;;) {
        pthread_mutex_lock(&m->mu);
        snap = m->changes;
        pthread_mutex_unlock(&m->mu);
        pthread_mutex_lock(cmu);
        seen = zkc__cache_listed(m->lc) >= mark;
        found = zkc__cache_find(m->lc, zkc__path_base(lease)) != NULL;
        n = found ? count_leases(m->lc) : 0;
        pthread_mutex_unlock(cmu);
        if (zkc_session_generation(m->s) != gen || (seen && !found)) {
            rc = AGAIN; /* our lease went with the session (or was deleted) */
            break;
        }
        if (found && n <= m->max) {
            /* Counted in session `gen`: grant only if that is still the
             * session we have (a lease counted before a session change is
             * gone, and so may be the others' view of it). */
            if (zkc__test_sem_counted)
                zkc__test_sem_counted(m->s);
            rc = zkc_session_generation(m->s) == gen ? 0 : AGAIN;
            break;
        }
        if (found && try_only) {
            rc = ZKC_ETIMEDOUT;
            break;
        }
        /* Wait for the leases or the session to change (or the deadline). */
        pthread_mutex_lock(&m->mu);
        while (m->changes == snap && !m->freed) {
            struct timespec ts;
            int left = zkc__remaining(deadline);
            if (left < 0) {
                pthread_cond_wait(&m->cond, &m->mu);
                continue;
            }
            if (left == 0)
                break;
            zkc__deadline(&ts, left);
            pthread_cond_timedwait(&m->cond, &m->mu, &ts);
        }
        pthread_mutex_unlock(&m->mu);
        if (freed(m)) {
            rc = ZKC_ECANCELED;
            break;
        }
        if (zkc__remaining(deadline) == 0) {
            rc = ZKC_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_lock(cmu);
    zkc__cache_want(m->lc, 0);
    pthread_mutex_unlock(cmu);
    if (rc != 0) {
        drop_lease(m, lease, gen);
        free(lease);
        lease = NULL;
        goto out_unlock;
    }
    *lease_out = lease;
    *st_out = st;
    *gen_out = gen;

out_unlock:
    zkc_lock_release(m->mutex);
    if (cc)
        zkc__call_unref(cc);
    return rc;
}

int zkc_semaphore_acquire(zkc_semaphore *m, int timeout_ms, int64_t *token)
{
    int64_t deadline = -1;
    int rc, try_only = timeout_ms == 0;
    char *lease = NULL;
    unsigned gen = 0;
    struct Stat st;

    if (!m)
        return ZKC_EINVAL;
    pthread_mutex_lock(&m->mu);
    if (m->state == S_HELD || m->state == S_ACQUIRING) {
        pthread_mutex_unlock(&m->mu);
        return ZKC_EBUSY;
    }
    if (m->freed) {
        pthread_mutex_unlock(&m->mu);
        return ZKC_ECANCELED;
    }
    m->state = S_ACQUIRING;
    m->acquiring++;
    pthread_mutex_unlock(&m->mu);

    if (timeout_ms >= 0)
        deadline = zkc__now_ms() + (try_only ? zkc_session_timeout_ms(m->s) : timeout_ms);
    for (;;) {
        rc = one_round(m, deadline, try_only, &lease, &st, &gen);
        if (rc != AGAIN)
            break;
        /* The session changed under the round: again, on the new one. */
        zkc__log(m->s, ZKC_LOG_INFO, "semaphore %s: session changed while acquiring, again",
                 m->leases);
        rc = wait_connected(m, deadline);
        if (rc)
            break;
    }
    pthread_mutex_lock(&m->mu);
    if (rc == 0 && m->freed) {
        /* freed while the grant was on its way: not ours to keep */
        pthread_mutex_unlock(&m->mu);
        drop_lease(m, lease, gen);
        free(lease);
        lease = NULL;
        pthread_mutex_lock(&m->mu);
        rc = ZKC_ECANCELED;
    }
    if (rc == 0) {
        m->state = S_HELD;
        m->epoch++;
        free(m->node);
        m->node = lease;
        m->node_gen = gen;
        m->token = st.czxid;
        m->owner_sid = st.ephemeralOwner;
        if (token)
            *token = st.czxid;
    } else {
        m->state = S_IDLE;
    }
    if (--m->acquiring == 0)
        pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int zkc_semaphore_release(zkc_semaphore *m)
{
    char *node;
    unsigned gen;

    if (!m)
        return ZKC_EINVAL;
    pthread_mutex_lock(&m->mu);
    if (m->state == S_LOST) {
        m->state = S_IDLE;
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    if (m->state != S_HELD) {
        pthread_mutex_unlock(&m->mu);
        return ZKC_ENOTHELD;
    }
    m->state = S_IDLE;
    m->epoch++;
    node = m->node;
    m->node = NULL;
    gen = m->node_gen;
    pthread_mutex_unlock(&m->mu);
    drop_lease(m, node, gen);
    free(node);
    return 0;
}

int zkc_semaphore_is_held(zkc_semaphore *m)
{
    int held;

    if (!m)
        return 0;
    pthread_mutex_lock(&m->mu);
    held = m->state == S_HELD;
    pthread_mutex_unlock(&m->mu);
    return held;
}

void zkc_semaphore_free(zkc_semaphore *m)
{
    char *node = NULL;
    unsigned gen = 0;

    if (!m)
        return;
    zkc__remove_hook(m->s, hook, m);
    pthread_mutex_lock(&m->mu);
    m->freed = 1;
    pthread_cond_broadcast(&m->cond);
    /* A blocked acquire returns ZKC_ECANCELED: its waits check `freed`
     * at least every half second, and its internal mutex acquire is
     * canceled here. Wait for it to leave before freeing what it uses. */
    while (m->acquiring > 0) {
        struct timespec ts;
        pthread_mutex_unlock(&m->mu);
        zkc_lock_cancel(m->mutex);
        pthread_mutex_lock(&m->mu);
        zkc__deadline(&ts, 100);
        if (m->acquiring > 0)
            pthread_cond_timedwait(&m->cond, &m->mu, &ts);
    }
    if (m->state == S_HELD) {
        node = m->node;
        m->node = NULL;
        gen = m->node_gen;
    }
    m->state = S_IDLE;
    pthread_mutex_unlock(&m->mu);
    /* No round is left to want the leases: no listed() after this. */
    zkc__cache_close(m->lc);
    if (node) {
        zkc__bg_delete(m->s, node, gen, NULL);
        free(node);
    }
    zkc_lock_free(m->mutex);
    zkc__dispatch_barrier(m->s);
    zkc__session_detach(m->s);
    sem_unref(m);
}
