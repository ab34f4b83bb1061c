/* Shared counters (include/zkcoord/counter.h): get, CAS on the znode
 * version, add with a bounded CAS loop, and a re-armed watch. Byte format
 * and the version plan (CURATOR-688) are in counter_logic.c.
 *
 * Every request goes through one path: a `struct req` owned by a zkc__call
 * (its `extra`), registered as pending on the handle so a completion the
 * 3.8 client drops at zookeeper_close() still completes it (as a
 * connection loss). Blocking functions wait on the call; watch reads finish
 * in watch_read_done() on the completion thread. `inflight` counts requests
 * whose completion has not run, so zkc_counter_free() returns only when
 * nothing of the handle can touch the session any more.
 *
 * The watch is per request (zkc__qwatch, queue.h): each watch read sets
 * its own watch with the counter as its context (one reference each), so
 * an event reaches the counter in O(1) and no session-wide router exists.
 * A watch still set when the counter is freed keeps only its memory alive
 * until it fires or the handle closes; it then finds the counter closing. */
#include "counter_logic.h"
#include "internal.h"
#include "naming.h"
#include "queue.h"
#include "zkcoord/counter.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_TRIES 1000
/* Not a ZooKeeper code: marks a call completed by zkc_counter_free(). */
#define RC_CANCELED (-100000)
/* Longest wait for a connection between checks for cancellation. */
#define CONNECT_SLICE_MS 100

enum req_kind { RQ_GET, RQ_EXISTS, RQ_SET, RQ_CREATE, RQ_MULTI };

struct waiter {
    zkc__call *call;
    struct waiter *next;
};

struct zkc_counter {
    zkc_session *s;
    char *path;
    int width;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs;
    int closing;
    int callers;  /* threads inside a blocking function */
    int inflight; /* requests sent whose completion has not finished */
    struct waiter *waiters;

    /* the watch */
    zkc_counter_fn fn;
    void *ud;
    unsigned watch_gen; /* +1 at every watch start / stop: stale notes are dropped */
    int subscribed;     /* state hook registered */
    int reading;        /* a watch read is in flight */
    int again;          /* something changed while it was: read once more */
    int reported;       /* rep_* hold the last state reported */
    int rep_exists;
    int64_t rep_mzxid;
    zkc__retry retry;
};

struct req {
    zkc__pending pd; /* first: dropped() gets back to the req */
    zkc_counter *c;
    zkc__call *call;
    int kind;
    int watch;      /* a watch read (not a blocking caller's) */
    zkc__qwatch *q; /* a watch read's own watch */
    int version;    /* RQ_SET expected version */
    char enc[8];    /* RQ_SET / RQ_CREATE / RQ_MULTI data */
    /* results */
    char data[16];
    int len; /* data length read; > sizeof(data) means "too long" */
    struct Stat st;
    zoo_op_t ops[2];
    zoo_op_result_t res[2];
    struct Stat mst[2];
};

static void counter_unref(zkc_counter *c)
{
    int left;

    pthread_mutex_lock(&c->mu);
    left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left)
        return;
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c->path);
    free(c);
}

/* For zkc__retry_arm(), called with c->mu held (the caller's own reference
 * keeps refs above zero). */
static void ref_locked(void *arg)
{
    ((zkc_counter *)arg)->refs++;
}

static void unref_locked(void *arg)
{
    ((zkc_counter *)arg)->refs--;
}

static int retryable(int zrc)
{
    return zkc__zk_connloss(zrc) || zrc == ZINVALIDSTATE || zrc == ZSESSIONMOVED ||
           zrc == ZTHROTTLEDOP || zkc__zk_expired(zrc);
}

static void value_from_stat(zkc_counter_value *v, const struct Stat *st, int64_t value)
{
    v->value = value;
    v->version = st->version;
    v->exists = 1;
    v->mzxid = st->mzxid;
}

/* ------------------------------------------------------------ requests */

static void watch_read_done(struct req *r, int zrc);

static void finish(struct req *r, int zrc)
{
    zkc_counter *c = r->c;
    zkc__call *call = r->call;

    if (r->q) /* getData leaves a watch on success, exists also on NONODE */
        zkc__qwatch_reply(r->q, zrc == ZOK || (r->kind == RQ_EXISTS && zrc == ZNONODE));
    r->q = NULL;
    if (r->watch)
        watch_read_done(r, zrc);
    zkc__call_complete(call, zrc);
    pthread_mutex_lock(&c->mu);
    c->inflight--;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    zkc__call_unref(call);
    counter_unref(c);
}

/* The handle was closed with the request still pending: no completion will
 * come. For the caller this is a connection loss. */
static void dropped(zkc__pending *pd)
{
    finish((struct req *)pd, ZCONNECTIONLOSS);
}

static void data_done(int rc, const char *value, int value_len, const struct Stat *stat,
                      const void *data)
{
    struct req *r = (struct req *)data;

    zkc__pending_done(r->c->s, &r->pd);
    if (rc == ZOK && stat) {
        r->st = *stat;
        r->len = value_len < 0 ? 0 : value_len;
        if (r->len > 0 && r->len <= (int)sizeof(r->data))
            memcpy(r->data, value, (size_t)r->len);
    }
    finish(r, rc);
}

static void stat_done(int rc, const struct Stat *stat, const void *data)
{
    struct req *r = (struct req *)data;

    zkc__pending_done(r->c->s, &r->pd);
    if (rc == ZOK && stat)
        r->st = *stat;
    finish(r, rc);
}

static void create_done(int rc, const char *name, const struct Stat *stat, const void *data)
{
    struct req *r = (struct req *)data;

    (void)name;
    zkc__pending_done(r->c->s, &r->pd);
    if (rc == ZOK && stat)
        r->st = *stat;
    finish(r, rc);
}

static void multi_done(int rc, const void *data)
{
    struct req *r = (struct req *)data;

    zkc__pending_done(r->c->s, &r->pd);
    if (rc == ZOK)
        r->st = r->mst[1];
    finish(r, rc);
}

/* A request object with its call; NULL on out of memory. */
static struct req *req_new(zkc_counter *c, int kind)
{
    zkc__call *call = zkc__call_new();
    struct req *r;

    if (!call)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (!r) {
        zkc__call_unref(call);
        return NULL;
    }
    r->c = c;
    r->call = call;
    r->kind = kind;
    call->extra = r;
    call->extra_free = free;
    return r;
}

static void woken(zkc__qwatch *q, int type);

/* Send `r`. ZOK: the completion (or dropped()) will run finish() exactly
 * once. Otherwise the request was not sent (a ZooKeeper code: not
 * connected, closing, bad arguments, out of memory) and nothing more
 * happens. A watch read (r->watch) sets a watch of its own. */
static int req_send(struct req *r)
{
    zkc_counter *c = r->c;
    zhandle_t *zh;
    unsigned gen;
    int zrc = ZSYSTEMERROR;

    if (r->watch) {
        pthread_mutex_lock(&c->mu);
        c->refs++; /* the watch's, dropped in woken() */
        pthread_mutex_unlock(&c->mu);
        if (!(r->q = zkc__qwatch_new(c->s, c->path, woken, c))) {
            counter_unref(c);
            return ZSYSTEMERROR;
        }
    }
    zh = zkc__zh_lock(c->s, &gen);
    if (!zh) {
        if (r->q)
            zkc__qwatch_reply(r->q, 0);
        r->q = NULL;
        return ZCONNECTIONLOSS;
    }
    pthread_mutex_lock(&c->mu);
    c->inflight++;
    c->refs++;
    pthread_mutex_unlock(&c->mu);
    zkc__call_ref(r->call);
    zkc__pending_add(c->s, &r->pd, gen, dropped);
    if (r->q)
        zkc__qwatch_sent(r->q, gen);
    switch (r->kind) {
    case RQ_GET:
        zrc = zoo_awget(zh, c->path, r->q ? zkc__qwatch_watcher : NULL, r->q, data_done, r);
        break;
    case RQ_EXISTS:
        zrc = zoo_awexists(zh, c->path, r->q ? zkc__qwatch_watcher : NULL, r->q, stat_done, r);
        break;
    case RQ_SET:
        zrc = zoo_aset(zh, c->path, r->enc, c->width, r->version, stat_done, r);
        break;
    case RQ_CREATE:
        zrc = zoo_acreate2(zh, c->path, r->enc, c->width, zkc__acl(c->s), 0, create_done, r);
        break;
    case RQ_MULTI:
        /* Version -2: the first set is conditional and lands at -1, the
         * second (expected -1 = any, but inside the same transaction) moves
         * it on to 0, so no reader ever sees version -1 (CURATOR-688). */
        zoo_set_op_init(&r->ops[0], c->path, r->enc, c->width, r->version, &r->mst[0]);
        zoo_set_op_init(&r->ops[1], c->path, r->enc, c->width, -1, &r->mst[1]);
        zrc = zoo_amulti(zh, 2, r->ops, r->res, multi_done, r);
        break;
    }
    if (zrc != ZOK)
        zkc__pending_done(c->s, &r->pd);
    zkc__zh_unlock(c->s);
    if (zrc != ZOK) {
        pthread_mutex_lock(&c->mu);
        c->inflight--;
        c->refs--; /* the caller still holds one */
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->mu);
        if (r->q)
            zkc__qwatch_reply(r->q, 0);
        r->q = NULL;
        zkc__call_unref(r->call);
    }
    return zrc;
}

/* ------------------------------------------------------------ blocking */

static int enter(zkc_counter *c)
{
    int rc = 0;

    pthread_mutex_lock(&c->mu);
    if (c->closing)
        rc = ZKC_ECANCELED;
    else
        c->callers++;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void leave(zkc_counter *c)
{
    pthread_mutex_lock(&c->mu);
    c->callers--;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/* Wait (in slices, so zkc_counter_free() is noticed) until connected or the
 * deadline. 0, ZKC_ETIMEDOUT, ZKC_ECANCELED, ZKC_ECLOSED. */
static int wait_connected(zkc_counter *c, int64_t deadline)
{
    for (;;) {
        int left = zkc__remaining(deadline), slice, rc, closing;

        pthread_mutex_lock(&c->mu);
        closing = c->closing;
        pthread_mutex_unlock(&c->mu);
        if (closing)
            return ZKC_ECANCELED;
        if (left == 0)
            return ZKC_ETIMEDOUT;
        slice = left < 0 || left > CONNECT_SLICE_MS ? CONNECT_SLICE_MS : left;
        rc = zkc_session_wait_connected(c->s, slice);
        if (rc == 0 || rc == ZKC_ECLOSED || rc == ZKC_EAUTHFAILED)
            return rc;
    }
}

/* Send `r` and wait for its reply. Returns 0 with *zrc the ZooKeeper code of
 * the reply; or ZKC_ETIMEDOUT, ZKC_ECANCELED; or 1 with *zrc the code of a
 * request that was not sent (so certainly not applied). Consumes `r`. */
static int run(zkc_counter *c, struct req *r, int64_t deadline, int *zrc)
{
    struct waiter w;
    struct waiter **pp;
    zkc__call *call = r->call;
    int rc, sent;

    sent = req_send(r);
    if (sent != ZOK) {
        *zrc = sent;
        zkc__call_unref(call);
        return 1;
    }
    w.call = call;
    pthread_mutex_lock(&c->mu);
    w.next = c->waiters;
    c->waiters = &w;
    pthread_mutex_unlock(&c->mu);
    rc = zkc__call_wait(call, zkc__remaining(deadline));
    pthread_mutex_lock(&c->mu);
    for (pp = &c->waiters; *pp; pp = &(*pp)->next)
        if (*pp == &w) {
            *pp = w.next;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    if (rc == 0) {
        pthread_mutex_lock(&call->mu);
        *zrc = call->rc;
        pthread_mutex_unlock(&call->mu);
        if (*zrc == RC_CANCELED)
            rc = ZKC_ECANCELED;
    }
    zkc__call_unref(call);
    return rc;
}

/* One read, retried over connection loss until the deadline. */
static int read_value(zkc_counter *c, zkc_counter_value *out, int64_t deadline)
{
    for (;;) {
        struct req *r = req_new(c, RQ_GET);
        int rc, zrc = ZOK;

        if (!r)
            return ZKC_ENOMEM;
        zkc__call_ref(r->call); /* keep r (its extra) past run() */
        rc = run(c, r, deadline, &zrc);
        if (rc == 0 && zrc == ZOK) {
            int64_t v;
            int len = r->len > (int)sizeof(r->data) ? -1 : r->len;

            rc = len < 0 ? ZKC_EBADDATA : zkc__counter_decode(r->data, len, c->width, &v);
            value_from_stat(out, &r->st, rc ? 0 : v);
            zkc__call_unref(r->call);
            return rc;
        }
        zkc__call_unref(r->call);
        if (rc < 0)
            return rc;
        if (zrc == ZNONODE) {
            memset(out, 0, sizeof(*out));
            return 0;
        }
        if (!retryable(zrc))
            return zkc__err_from_zk(zrc);
        rc = wait_connected(c, deadline);
        if (rc)
            return rc;
    }
}

static int mkparents(zkc_counter *c, int64_t deadline)
{
    char *parent = strdup(c->path);
    char *slash;
    int rc = 0;

    if (!parent)
        return ZKC_ENOMEM;
    slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        rc = zkc__mkdirs_sync(c->s, parent, zkc__remaining(deadline));
    }
    free(parent);
    return rc;
}

/* One conditional write of `value` by `plan` at `version`. 0 with *won; or
 * ZKC_ECONNLOSS / ZKC_ETIMEDOUT when the write was sent and its outcome is
 * unknown; or another error. Not-sent requests are retried. `plan`
 * ZKC__CAS_IMPOSSIBLE writes unconditionally (for zkc_counter_set only). */
static int write_value(zkc_counter *c, zkc__cas_plan plan, int32_t version, int64_t value, int *won,
                       zkc_counter_value *out, int64_t deadline)
{
    int made_parents = 0;

    for (;;) {
        static const int kinds[] = {0, RQ_CREATE, RQ_SET, RQ_MULTI, RQ_SET};
        struct req *r = req_new(c, kinds[plan]);
        int rc, zrc = ZOK;

        if (!r)
            return ZKC_ENOMEM;
        zkc__counter_encode(value, c->width, r->enc);
        r->version = plan == ZKC__CAS_IMPOSSIBLE ? -1 : version;
        zkc__call_ref(r->call);
        rc = run(c, r, deadline, &zrc);
        if (rc == 0 && zrc == ZOK) {
            *won = 1;
            if (out)
                value_from_stat(out, &r->st, value);
            zkc__call_unref(r->call);
            return 0;
        }
        zkc__call_unref(r->call);
        if (rc < 0)
            return rc;
        if (rc == 0 && retryable(zrc))
            return ZKC_ECONNLOSS; /* sent: may or may not have been applied */
        if (rc == 1 && retryable(zrc)) {
            rc = wait_connected(c, deadline);
            if (rc)
                return rc;
            continue;
        }
        if (plan == ZKC__CAS_CREATE && zrc == ZNONODE && !made_parents) {
            made_parents = 1;
            rc = mkparents(c, deadline);
            if (rc && rc != ZKC_ENODEEXISTS)
                return rc;
            continue;
        }
        if (zrc == ZBADVERSION || zrc == ZNODEEXISTS || zrc == ZNONODE) {
            *won = 0;
            return 0;
        }
        return zkc__err_from_zk(zrc);
    }
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : zkc__now_ms() + timeout_ms;
}

int zkc_counter_get(zkc_counter *c, zkc_counter_value *out, int timeout_ms)
{
    int rc;

    if (!c || !out)
        return ZKC_EINVAL;
    rc = enter(c);
    if (rc)
        return rc;
    rc = read_value(c, out, deadline_of(timeout_ms));
    leave(c);
    return rc;
}

/* CAS of `expected` -> `value`. `current` receives the node written when
 * won; when lost, a fresh read if `reread`, else it is left alone. */
static int cas_locked(zkc_counter *c, const zkc_counter_value *expected, int64_t value, int *won,
                      zkc_counter_value *current, int reread, int64_t deadline)
{
    zkc__cas_plan plan = zkc__counter_cas_plan(expected->exists, expected->version);
    int rc;

    if (plan == ZKC__CAS_IMPOSSIBLE) {
        zkc__log(c->s, ZKC_LOG_WARN,
                 "counter %s: node at version -1 (written by another client): "
                 "ZooKeeper cannot compare-and-set at -1; set it to move on",
                 c->path);
        return ZKC_EBUSY;
    }
    rc = write_value(c, plan, expected->version, value, won, current, deadline);
    if (rc || *won || !reread)
        return rc;
    return read_value(c, current, deadline);
}

int zkc_counter_cas(zkc_counter *c, const zkc_counter_value *expected, int64_t value, int *won,
                    zkc_counter_value *current, int timeout_ms)
{
    zkc_counter_value tmp;
    int rc;

    if (!c || !expected || !won)
        return ZKC_EINVAL;
    if (!zkc__counter_fits(value, c->width))
        return ZKC_EINVAL;
    *won = 0;
    rc = enter(c);
    if (rc)
        return rc;
    rc = cas_locked(c, expected, value, won, current ? current : &tmp, current != NULL,
                    deadline_of(timeout_ms));
    leave(c);
    return rc;
}

int zkc_counter_cas_value(zkc_counter *c, int64_t old, int64_t value, int *won,
                          zkc_counter_value *current, int timeout_ms)
{
    int64_t deadline = deadline_of(timeout_ms);
    zkc_counter_value cur, written;
    int rc, tries;

    if (!c || !won)
        return ZKC_EINVAL;
    if (!zkc__counter_fits(value, c->width))
        return ZKC_EINVAL;
    *won = 0;
    rc = enter(c);
    if (rc)
        return rc;
    for (tries = 0; tries < DEFAULT_TRIES; tries++) {
        rc = read_value(c, &cur, deadline);
        if (rc || cur.value != old)
            break; /* lost: `cur` is what it holds */
        /* Same value, other version: someone wrote meanwhile; compare again. */
        rc = cas_locked(c, &cur, value, won, &written, 0, deadline);
        if (rc || *won)
            break;
    }
    if (!rc && *won)
        cur = written;
    else if (!rc && tries == DEFAULT_TRIES)
        rc = ZKC_EBADVERSION;
    if (!rc && current)
        *current = cur;
    leave(c);
    return rc;
}

int zkc_counter_set(zkc_counter *c, int64_t value, zkc_counter_value *out, int timeout_ms)
{
    int64_t deadline = deadline_of(timeout_ms);
    zkc_counter_value cur, written;
    int rc, tries, won = 0;

    if (!c)
        return ZKC_EINVAL;
    if (!zkc__counter_fits(value, c->width))
        return ZKC_EINVAL;
    rc = enter(c);
    if (rc)
        return rc;
    for (tries = 0; tries < DEFAULT_TRIES && !won; tries++) {
        rc = read_value(c, &cur, deadline);
        if (rc && rc != ZKC_EBADDATA)
            break;
        /* Version -1 (plan IMPOSSIBLE) is written unconditionally: a set
         * replaces whatever is there anyway, and it moves the node to 0. */
        rc = write_value(c, zkc__counter_cas_plan(cur.exists, cur.version), cur.version, value,
                         &won, &written, deadline);
        if (rc)
            break;
    }
    if (!rc && !won)
        rc = ZKC_EBADVERSION;
    if (!rc && out)
        *out = written;
    leave(c);
    return rc;
}

int zkc_counter_add(zkc_counter *c, int64_t delta, int max_tries, zkc_counter_value *out,
                    int timeout_ms)
{
    int64_t deadline = deadline_of(timeout_ms);
    zkc_counter_value cur, written;
    int rc, tries, won = 0;

    if (!c)
        return ZKC_EINVAL;
    if (max_tries <= 0)
        max_tries = DEFAULT_TRIES;
    rc = enter(c);
    if (rc)
        return rc;
    for (tries = 0; tries < max_tries && !won; tries++) {
        rc = read_value(c, &cur, deadline);
        if (rc)
            break;
        rc = cas_locked(c, &cur, zkc__counter_wrap_add(cur.value, delta, c->width), &won, &written,
                        0, deadline);
        if (rc)
            break;
    }
    if (!rc && !won)
        rc = ZKC_EBADVERSION;
    if (!rc && out)
        *out = written;
    leave(c);
    return rc;
}

/* ------------------------------------------------------------ watch */

struct note {
    zkc_counter *c;
    unsigned gen;
    zkc_counter_value v;
    int err;
};

static void deliver(void *arg)
{
    struct note *n = arg;
    zkc_counter *c = n->c;
    zkc_counter_fn fn = NULL;
    void *ud = NULL;

    pthread_mutex_lock(&c->mu);
    if (!c->closing && c->fn && c->watch_gen == n->gen) {
        fn = c->fn;
        ud = c->ud;
    }
    pthread_mutex_unlock(&c->mu);
    if (fn)
        fn(c, &n->v, n->err, ud);
    counter_unref(c);
    free(n);
}

/* Under c->mu: report the state read if it differs from the last one. */
static void report_locked(zkc_counter *c, const zkc_counter_value *v, int err)
{
    struct note *n;

    if (!zkc__counter_changed(c->reported, c->rep_exists, c->rep_mzxid, v->exists, v->mzxid))
        return;
    n = malloc(sizeof(*n));
    if (!n)
        return;
    c->reported = 1;
    c->rep_exists = v->exists;
    c->rep_mzxid = v->mzxid;
    n->c = c;
    n->gen = c->watch_gen;
    n->v = *v;
    n->err = err;
    c->refs++;
    if (zkc__dispatch(c->s, deliver, n) != 0) {
        c->refs--;
        free(n);
    }
}

static void watch_send(zkc_counter *c, int kind);
static void watch_start(zkc_counter *c);

static void retry_fired(void *arg, zkc_conn_state state, unsigned gen)
{
    zkc_counter *c = arg;

    (void)gen;
    pthread_mutex_lock(&c->mu);
    zkc__retry_fired(&c->retry);
    pthread_mutex_unlock(&c->mu);
    if (state != ZKC_CONN_NONE)
        watch_start(c);
    counter_unref(c);
}

/* Start a watch read unless one is in flight (then read again after it). */
static void watch_start(zkc_counter *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->closing || !c->fn) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    if (c->reading) {
        c->again = 1;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->reading = 1;
    c->again = 0;
    pthread_mutex_unlock(&c->mu);
    watch_send(c, RQ_GET);
}

/* Send a watch read (reading is 1). A getData on a missing node leaves no
 * watch, so a missing node is followed with an exists watch (which fires on
 * its creation). When nothing can be sent, retry once connected. */
static void watch_send(zkc_counter *c, int kind)
{
    struct req *r = req_new(c, kind);
    int zrc = ZSYSTEMERROR;

    if (r) {
        r->watch = 1;
        zrc = req_send(r);
        zkc__call_unref(r->call); /* the completion holds its own */
    }
    if (zrc == ZOK)
        return;
    pthread_mutex_lock(&c->mu);
    c->reading = 0;
    if (!c->closing && c->fn)
        zkc__retry_arm(&c->retry, c->s, retry_fired, c, ref_locked, unref_locked);
    pthread_mutex_unlock(&c->mu);
}

static void watch_read_done(struct req *r, int zrc)
{
    zkc_counter *c = r->c;
    zkc_counter_value v;
    int err = 0, next = -1, again;

    memset(&v, 0, sizeof(v));
    if (zrc == ZOK && r->kind == RQ_GET) {
        int64_t value;
        int len = r->len > (int)sizeof(r->data) ? -1 : r->len;

        err = len < 0 ? ZKC_EBADDATA : zkc__counter_decode(r->data, len, c->width, &value);
        value_from_stat(&v, &r->st, err ? 0 : value);
    } else if (zrc == ZOK && r->kind == RQ_EXISTS) {
        next = RQ_GET; /* created meanwhile: read it (the exists watch is set too) */
    } else if (zrc == ZNONODE && r->kind == RQ_GET) {
        next = RQ_EXISTS;
    } else if (zrc == ZNONODE) {
        /* missing, and the exists watch is set: report "no node" */
    } else {
        pthread_mutex_lock(&c->mu);
        c->reading = 0;
        if (retryable(zrc) && !c->closing && c->fn)
            zkc__retry_arm(&c->retry, c->s, retry_fired, c, ref_locked, unref_locked);
        else if (!retryable(zrc) && zrc != ZCLOSING)
            zkc__log(c->s, ZKC_LOG_WARN, "counter %s: watch read failed: %s", c->path,
                     zkc_strerror(zkc__err_from_zk(zrc)));
        pthread_mutex_unlock(&c->mu);
        return;
    }
    if (next >= 0) {
        watch_send(c, next);
        return;
    }
    pthread_mutex_lock(&c->mu);
    if (!c->closing && c->fn)
        report_locked(c, &v, err);
    c->reading = 0;
    again = c->again;
    pthread_mutex_unlock(&c->mu);
    if (again)
        watch_start(c);
}

/* A watch read's watch ended: fired (type != 0: read again) or gone
 * unfired. Drops the watch's reference. */
static void woken(zkc__qwatch *q, int type)
{
    zkc_counter *c = q->owner;

    if (type)
        watch_start(c);
    counter_unref(c);
}

static void on_state(void *arg, zkc_conn_state state, unsigned gen)
{
    (void)gen;
    /* A new session has none of our watches; after RECONNECTED the client
     * re-registers them, but a read is cheap and closes any gap. */
    if (state == ZKC_CONN_CONNECTED || state == ZKC_CONN_RECONNECTED)
        watch_start(arg);
}

int zkc_counter_watch(zkc_counter *c, zkc_counter_fn fn, void *user_data)
{
    int rc, subscribe = 0;

    if (!c)
        return ZKC_EINVAL;
    pthread_mutex_lock(&c->mu);
    if (!fn) {
        c->fn = NULL;
        c->ud = NULL;
        c->watch_gen++;
        pthread_mutex_unlock(&c->mu);
        if (!zkc__on_dispatcher(c->s))
            zkc__dispatch_barrier(c->s);
        return 0;
    }
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        return ZKC_ECLOSED;
    }
    if (c->fn) {
        pthread_mutex_unlock(&c->mu);
        return ZKC_EBUSY;
    }
    c->fn = fn;
    c->ud = user_data;
    c->watch_gen++;
    c->reported = 0;
    if (!c->subscribed) {
        c->subscribed = 1;
        subscribe = 1;
    }
    pthread_mutex_unlock(&c->mu);
    if (subscribe) {
        rc = zkc__add_hook(c->s, on_state, c);
        if (rc) {
            pthread_mutex_lock(&c->mu);
            c->subscribed = 0;
            c->fn = NULL;
            c->watch_gen++;
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
    }
    watch_start(c);
    return 0;
}

/* ------------------------------------------------------------ handle */

int zkc_counter_new(zkc_counter **out, zkc_session *s, const char *path, zkc_counter_width width)
{
    zkc_counter *c;

    if (!out || !s || !path || zkc__path_check(path) != 0 || strcmp(path, "/") == 0)
        return ZKC_EINVAL;
    if (width != ZKC_COUNTER_INT32 && width != ZKC_COUNTER_INT64)
        return ZKC_EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return ZKC_ENOMEM;
    c->path = strdup(path);
    if (!c->path)
        goto fail_path;
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        goto fail_mu;
    if (zkc__cond_init(&c->cond) != 0)
        goto fail_cond;
    c->s = s;
    c->width = (int)width;
    c->refs = 1;
    zkc__session_attach(s);
    *out = c;
    return 0;

fail_cond:
    pthread_mutex_destroy(&c->mu);
fail_mu:
    free(c->path);
fail_path:
    free(c);
    return ZKC_ENOMEM;
}

const char *zkc_counter_path(const zkc_counter *c)
{
    return c ? c->path : NULL;
}

zkc_counter_width zkc_counter_get_width(const zkc_counter *c)
{
    return c ? (zkc_counter_width)c->width : ZKC_COUNTER_INT64;
}

void zkc_counter_free(zkc_counter *c)
{
    zkc_session *s;
    struct waiter *w;
    int subscribed;

    if (!c)
        return;
    s = c->s;
    pthread_mutex_lock(&c->mu);
    c->closing = 1;
    c->fn = NULL;
    c->watch_gen++;
    for (w = c->waiters; w; w = w->next)
        zkc__call_complete(w->call, RC_CANCELED);
    while (c->callers > 0)
        pthread_cond_wait(&c->cond, &c->mu);
    subscribed = c->subscribed;
    pthread_mutex_unlock(&c->mu);
    if (subscribed)
        zkc__remove_hook(s, on_state, c);
    /* Requests in flight still run finish(), which touches the session:
     * bounded (a reply, a connection loss, or dropped() at handle close). */
    pthread_mutex_lock(&c->mu);
    while (c->inflight > 0)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
    zkc__dispatch_barrier(s);
    zkc__session_detach(s);
    counter_unref(c);
}

int zkc__counter_callers(struct zkc_counter *c)
{
    int n;

    pthread_mutex_lock(&c->mu);
    n = c->callers;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int zkc__counter_write_plan(struct zkc_counter *c, zkc__cas_plan plan, int32_t version,
                            int64_t value, int *won, int timeout_ms)
{
    zkc_counter_value tmp;
    int rc = enter(c);

    if (rc)
        return rc;
    rc = write_value(c, plan, version, value, won, &tmp, deadline_of(timeout_ms));
    leave(c);
    return rc;
}
