/* The queue shared by every recipe: see queue.h. */
#include "queue.h"
#include "naming.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long wakeups;

unsigned long zkc__lock_watch_wakeups(void)
{
    return __atomic_load_n(&wakeups, __ATOMIC_SEQ_CST);
}

void zkc__lock_count_wakeup(void)
{
    __atomic_add_fetch(&wakeups, 1, __ATOMIC_SEQ_CST);
}

void zkc__default_owner(char *buf, size_t len)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, len, "%s:%ld", host, (long)getpid());
}

/* ------------------------------------------------ per-request watches */

zkc__qwatch *zkc__qwatch_new(zkc_session *s, const char *path, zkc__qwatch_fn fn, void *owner)
{
    zkc__qwatch *w = calloc(1, sizeof(*w));

    if (!w || !(w->path = strdup(path))) {
        free(w);
        return NULL;
    }
    w->refs = 2;
    w->s = s;
    w->fn = fn;
    w->owner = owner;
    w->pend.next = w->pend.prev = &w->pend; /* not registered */
    return w;
}

static void qwatch_unref(zkc__qwatch *w)
{
    if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_SEQ_CST) != 0)
        return;
    free(w->path);
    free(w);
}

/* The watch is done: fired (type), or gone from the client unfired (0).
 * A request's reply and the handle's close can both report "unfired" (the
 * close completes pending replies too): the first one counts. */
static void qwatch_end(zkc__qwatch *w, int type)
{
    zkc__pending_done(w->s, &w->pend);
    if (__atomic_exchange_n(&w->ended, 1, __ATOMIC_SEQ_CST) == 0) {
        w->fn(w, type);
        qwatch_unref(w);
    }
}

static void qwatch_dropped(zkc__pending *pd)
{
    qwatch_end((zkc__qwatch *)(void *)((char *)pd - offsetof(zkc__qwatch, pend)), 0);
}

void zkc__qwatch_sent(zkc__qwatch *w, unsigned gen)
{
    zkc__pending_add(w->s, &w->pend, gen, qwatch_dropped);
}

void zkc__qwatch_reply(zkc__qwatch *w, int set)
{
    if (!set)
        qwatch_end(w, 0);
    qwatch_unref(w);
}

void zkc__qwatch_unsent(zkc__qwatch *w)
{
    zkc__pending_done(w->s, &w->pend);
    free(w->path);
    free(w);
}

void zkc__qwatch_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)state;
    (void)path;
    /* Session events reach every per-request watcher still set: the
     * owners learn them from the session's hooks. */
    if (type != ZOO_SESSION_EVENT)
        qwatch_end(ctx, type);
}

/* -------------------------------------------------- background delete */

/* A release whose delete meets connection loss must not give up: the node
 * would stay and block the queue until the session expires, or forever if
 * the session survives (CURATOR-678, Curator's "guaranteed" delete). The
 * retry is bound to the node's session generation: once that session is
 * gone, so is the ephemeral node. */
struct bgdel {
    zkc__pending pend; /* the delete in flight (see zkc__pending) */
    zkc_session *s;
    char *path;
    unsigned gen;
    zkc__call *first;
    zkc__retry retry; /* one owner at a time: no lock needed */
};

static void bg_send(struct bgdel *d);

static void bg_finish(struct bgdel *d)
{
    if (d->first) {
        zkc__call_complete(d->first, ZOK);
        zkc__call_unref(d->first);
    }
    free(d->path);
    free(d);
}

/* The caller of release may go on; the retry continues on its own. */
static void bg_first_done(struct bgdel *d)
{
    if (d->first) {
        zkc__call_complete(d->first, ZOK);
        zkc__call_unref(d->first);
        d->first = NULL;
    }
}

static void bg_retry(void *arg, zkc_conn_state st, unsigned gen)
{
    struct bgdel *d = arg;

    zkc__retry_fired(&d->retry);
    if (st == ZKC_CONN_NONE || st == ZKC_CONN_LOST || gen != d->gen) {
        bg_finish(d); /* session gone (or closing): the node went with it */
        return;
    }
    bg_send(d);
}

static void bg_later(struct bgdel *d)
{
    bg_first_done(d);
    if (!zkc__retry_arm(&d->retry, d->s, bg_retry, d, NULL, NULL))
        bg_finish(d); /* the session is closing: the node goes with it */
}

static void bg_deleted(int rc, const void *data)
{
    struct bgdel *d = (struct bgdel *)data;

    zkc__pending_done(d->s, &d->pend);
    if (zkc__zk_connloss(rc)) {
        zkc__log(d->s, ZKC_LOG_INFO, "delete of %s: connection lost, retrying after reconnect",
                 d->path);
        bg_later(d);
        return;
    }
    if (rc != ZOK && rc != ZNONODE && rc != ZCLOSING && !zkc__zk_expired(rc))
        zkc__log(d->s, ZKC_LOG_WARN, "cannot delete %s: %s", d->path, zerror(rc));
    bg_finish(d);
}

/* Its handle was closed without running the completion: that handle's
 * session, and so the ephemeral node, is gone. */
static void bg_dropped(zkc__pending *pd)
{
    bg_deleted(ZCLOSING, (char *)pd - offsetof(struct bgdel, pend));
}

static void bg_send(struct bgdel *d)
{
    zkc_session *s = d->s; /* the reply may free d before we unlock */
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(s, &gen);
    int rc;

    if (!zh) {
        bg_later(d);
        return;
    }
    if (gen != d->gen) {
        zkc__zh_unlock(s);
        bg_finish(d);
        return;
    }
    zkc__pending_add(s, &d->pend, gen, bg_dropped);
    rc = zoo_adelete(zh, d->path, -1, bg_deleted, d);
    if (rc != ZOK)
        zkc__pending_done(s, &d->pend);
    zkc__zh_unlock(s);
    if (rc == ZINVALIDSTATE || zkc__zk_connloss(rc))
        bg_later(d);
    else if (rc != ZOK)
        bg_finish(d);
}

void zkc__bg_delete(zkc_session *s, const char *path, unsigned gen, zkc__call *first)
{
    struct bgdel *d = calloc(1, sizeof(*d));

    if (!d || !(d->path = strdup(path))) {
        free(d);
        zkc__log(s, ZKC_LOG_ERROR, "out of memory deleting %s", path);
        if (first) {
            zkc__call_complete(first, ZOK);
            zkc__call_unref(first);
        }
        return;
    }
    d->s = s;
    d->gen = gen;
    d->first = first;
    d->pend.next = d->pend.prev = &d->pend;
    bg_send(d);
}

/* ------------------------------------------- order and eligibility */

int zkc__q_kind(const char *name)
{
    /* Names are "_c_<guid>-<body><seq>" (or a foreign imitation): the guid
     * is hex, so a body cannot be found inside it. */
    if (strstr(name, "__WRIT__"))
        return ZKC__Q_WRITE;
    if (strstr(name, "__READ__"))
        return ZKC__Q_READ;
    if (strstr(name, "latch-"))
        return ZKC__Q_LATCH;
    if (strstr(name, "lease-"))
        return ZKC__Q_LEASE;
    if (strstr(name, "lock-"))
        return ZKC__Q_MUTEX;
    return -1;
}

int zkc__q_foreign_has(const zkc__q_foreign *f, const char *name)
{
    int i;

    for (i = 0; f && i < f->n; i++)
        if (strcmp(f->names[i], name) == 0)
            return 1;
    return 0;
}

int zkc__q_foreign_add(zkc__q_foreign *f, const char *name)
{
    char **grown;
    char *copy;

    if (zkc__q_foreign_has(f, name))
        return 0;
    copy = strdup(name);
    grown = copy ? realloc(f->names, sizeof(*grown) * (size_t)(f->n + 1)) : NULL;
    if (!grown) {
        free(copy);
        return ZKC_ENOMEM;
    }
    f->names = grown;
    f->names[f->n++] = copy;
    return 0;
}

void zkc__q_foreign_clear(zkc__q_foreign *f)
{
    int i;

    for (i = 0; i < f->n; i++)
        free(f->names[i]);
    free(f->names);
    f->names = NULL;
    f->n = 0;
}

int zkc__q_eligible(const struct Stat *st)
{
    return st && st->ephemeralOwner != 0;
}

int zkc__q_line(const struct String_vector *v, unsigned kinds, const zkc__q_foreign *f, char ***out)
{
    int count = v ? v->count : 0;
    char **names = malloc(sizeof(*names) * (size_t)(count > 0 ? count : 1));
    int i, n = 0, k;

    if (!names)
        return -1;
    for (i = 0; i < count; i++) {
        k = zkc__q_kind(v->data[i]);
        if (k >= 0 && (kinds & ZKC__Q_BIT(k)) && !zkc__q_foreign_has(f, v->data[i]))
            names[n++] = v->data[i];
    }
    /* Names without a sequence sort last; they are nobody's predecessor
     * that matters, and they are never first while a real entry exists. */
    if (zkc__sort_by_seq(names, n) < 0) {
        free(names);
        return -1;
    }
    *out = names;
    return n;
}

int zkc__q_near_wrap(int32_t cversion)
{
    return cversion < 0 || cversion >= INT32_MAX - ZKC__Q_WRAP_MARGIN;
}

/* -------------------------------------------------- container parents */

struct cont {
    zkc__pending pend;
    zkc_session *s;
    char *path;
    int tries;
    zkc__done_fn done;
    void *arg;
};

static void cont_send(struct cont *c);

static void cont_finish(struct cont *c, int rc)
{
    c->done(c->arg, rc);
    free(c->path);
    free(c);
}

static void cont_parents_made(void *arg, int rc)
{
    struct cont *c = arg;

    if (rc != 0) {
        cont_finish(c, rc);
        return;
    }
    cont_send(c);
}

static void cont_created(int zrc, const char *value, const void *data)
{
    struct cont *c = (struct cont *)data;
    char *slash;

    (void)value;
    zkc__pending_done(c->s, &c->pend);
    if (zrc == ZOK || zrc == ZNODEEXISTS) {
        cont_finish(c, 0);
        return;
    }
    if (zrc == ZNONODE && c->tries++ < 3) {
        slash = strrchr(c->path, '/');
        if (slash && slash != c->path) {
            /* the parents, persistent, then the container again */
            *slash = '\0';
            zkc__mkdirs(c->s, c->path, cont_parents_made, c);
            *slash = '/';
            return;
        }
    }
    cont_finish(c, zkc__err_from_zk(zrc));
}

static void cont_dropped(zkc__pending *pd)
{
    cont_created(ZCLOSING, NULL, (char *)pd - offsetof(struct cont, pend));
}

static void cont_send(struct cont *c)
{
    zkc_session *s = c->s;
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(s, &gen);
    int zrc;

    if (!zh) {
        cont_finish(c, ZKC_ECONNLOSS);
        return;
    }
    zkc__pending_add(s, &c->pend, gen, cont_dropped);
    zrc = zoo_acreate(zh, c->path, "", 0, zkc__acl(s), ZOO_CONTAINER, cont_created, c);
    if (zrc != ZOK)
        zkc__pending_done(s, &c->pend);
    zkc__zh_unlock(s);
    if (zrc != ZOK)
        cont_finish(c, zkc__err_from_zk(zrc));
}

void zkc__q_container(zkc_session *s, const char *path, zkc__done_fn done, void *arg)
{
    struct cont *c = calloc(1, sizeof(*c));

    if (!c || !(c->path = strdup(path))) {
        free(c);
        done(arg, ZKC_ENOMEM);
        return;
    }
    c->s = s;
    c->done = done;
    c->arg = arg;
    c->pend.next = c->pend.prev = &c->pend;
    cont_send(c);
}
