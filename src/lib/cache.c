/*
 * The children cache: see cache.h (the engine) and include/zkcoord/read.h
 * (zkc_cache, the public face of it).
 *
 * What this replaces, and why:
 *  - group.c's own copy of list/read/diff, which rebuilt, re-sorted and
 *    re-diffed the whole view and scanned it for duplicate ids on every
 *    change (O(n^2) per change at 10,000 members);
 *  - the session-wide path router for node watches (a linear strcmp scan
 *    per event): watches here are per-request, with the engine as their
 *    context, and an event finds its child with one hash lookup;
 *  - the CLI's own children watches on lock folders (cmd_watch.c).
 * Curator's PathChildrenCache has the same job; its known costs are avoided
 * on purpose: it re-read every child on each change (CURATOR-127) and
 * logged errors for a child deleted between getChildren and getData
 * (CURATOR-304), which here simply vanishes.
 *
 * Watches and lifetime. The ZooKeeper client calls a per-request watcher
 * with its context long after the request: once for a node event, and for
 * every session event until the handle is closed. So the engine must
 * outlive its watches. zkc__cache_close() (1) stops sending, (2) waits for
 * the requests in flight (their watches register before their completion
 * runs), (3) removes its watches from the client's tables locally
 * (zoo_remove_watches, local), and (4) waits for one round trip on the
 * completion thread, behind which any event collected before (3) has been
 * delivered. Only then may the engine go. If (4) cannot complete (no
 * connection within the bound), the engine is kept (a small, logged leak)
 * rather than freed under a watch.
 *
 * Threads: completions and watches on the ZooKeeper completion thread; the
 * state hook and retries on the session manager thread; deliveries on the
 * dispatcher. None blocks. Locks: hk_mu (session) -> mu -> zh_mu.
 */
#include "cache.h"
#include "naming.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLOSE_DRAIN_MS   2000 /* close: wait for requests in flight */
#define CLOSE_BARRIER_MS 2000 /* close: wait for the completion thread */
#define STALE_MS         100  /* deliver by then even while reads go on */

/* ------------------------------------------------------------ hash map */

/* Eight bytes a step (names here are 50-odd bytes; a byte-wise hash was
 * the top of the profile at 10,000 members, one lookup per child per
 * listing). */
static size_t str_hash(const char *s, size_t *len_out)
{
    uint64_t h = 0x9e3779b97f4a7c15ull, w;
    size_t len = strlen(s), i;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s + i, len - i);
    h = (h ^ w ^ len) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    if (len_out)
        *len_out = len;
    return (size_t)h;
}

void zkc__smap_init(zkc__smap *m)
{
    memset(m, 0, sizeof(*m));
}

void zkc__smap_clear(zkc__smap *m)
{
    size_t i;

    for (i = 0; i < m->nb; i++) {
        zkc__smap_item *it = m->b[i], *next;
        for (; it; it = next) {
            next = it->next;
            free(it);
        }
    }
    free(m->b);
    zkc__smap_init(m);
}

static zkc__smap_item **smap_slot(const zkc__smap *m, const char *key, size_t *hash)
{
    zkc__smap_item **pp;
    size_t h = str_hash(key, NULL);

    if (hash)
        *hash = h;
    if (!m->nb)
        return NULL;
    for (pp = &m->b[h & (m->nb - 1)]; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            return pp;
    return NULL;
}

void *zkc__smap_get(const zkc__smap *m, const char *key)
{
    zkc__smap_item **pp = smap_slot(m, key, NULL);

    return pp ? (*pp)->val : NULL;
}

static int smap_grow(zkc__smap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 64, i;
    zkc__smap_item **b = calloc(nb, sizeof(*b));

    if (!b)
        return ZKC_ENOMEM;
    for (i = 0; i < m->nb; i++) {
        zkc__smap_item *it = m->b[i], *next;
        for (; it; it = next) {
            size_t h = it->hash & (nb - 1);
            next = it->next;
            it->next = b[h];
            b[h] = it;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

int zkc__smap_put(zkc__smap *m, const char *key, void *val)
{
    size_t h, len;
    zkc__smap_item **pp = smap_slot(m, key, &h), *it;

    if (pp) {
        (*pp)->val = val;
        return 0;
    }
    if (m->n + 1 > m->nb && smap_grow(m) != 0)
        return ZKC_ENOMEM;
    len = strlen(key);
    it = malloc(sizeof(*it) + len + 1);
    if (!it)
        return ZKC_ENOMEM;
    memcpy(it->key, key, len + 1);
    it->val = val;
    it->hash = h;
    it->next = m->b[h & (m->nb - 1)];
    m->b[h & (m->nb - 1)] = it;
    m->n++;
    return 0;
}

void *zkc__smap_del(zkc__smap *m, const char *key)
{
    zkc__smap_item **pp = smap_slot(m, key, NULL), *it;
    void *val;

    if (!pp)
        return NULL;
    it = *pp;
    *pp = it->next;
    val = it->val;
    free(it);
    m->n--;
    return val;
}

/* ------------------------------------------------------------- engine */

struct zkc__cache {
    int refs; /* atomic */
    zkc_session *s;
    char *path;
    size_t path_len;
    pthread_mutex_t *mu; /* &own_mu */
    pthread_mutex_t own_mu;
    zkc__cache_ops ops;
    void *ctx;
    zkc__cache_cfg cfg;

    int closing;
    int started;
    int hooked;
    unsigned gen;
    int fresh;   /* a new session: sync before its first folder read */
    int listing; /* getChildren (or the folder's exists) in flight */
    int relist;
    int need_list;
    unsigned list_no;
    int inflight;       /* getData in flight */
    int stale_any;      /* some child may be stale (see read_stale()) */
    int paused;         /* on demand and not wanted: changes only set need_list */
    unsigned list_sent; /* listings sent, ever */
    unsigned list_seen; /* number of the last listing applied */
    zkc__retry retry;

    zkc__smap map; /* name -> present entry */

    /* The last listing, names back to back in its order: the server lists
     * an unchanged folder in the same order, so the next listing is
     * compared with it as two streams (no hash lookup, no cache miss per
     * known child); only names that differ are looked up. Children dropped
     * since (data watch, NONODE) are remembered, since a name that is in
     * the old listing is then no longer known. */
    char *pbuf;
    size_t plen;
    size_t pcap;
    int *poff;
    int pocap;
    int pn;
    /* The listing before that one's buffers, reused for the next listing:
     * a listing of 10,000 names is half a megabyte, and allocating and
     * freeing it anew each time cost page faults and a malloc_consolidate
     * (glibc merges every free small chunk when a chunk over 64 KiB is
     * freed) per change. */
    char *sbuf;
    size_t scap;
    int *soff;
    int socap;
    char *dropped[8];
    int ndropped;     /* names in dropped[] */
    int dropped_more; /* more than fit: compare nothing next time */
    zkc__centry **sorted;
    int n;
    int cap;
    zkc__centry *dirty;
    int64_t dirty_since; /* when the dirty list last became non-empty */
    int delivery_queued;

    pthread_mutex_t rmu; /* live, under it */
    pthread_cond_t rcond;
    int live;
    struct zkc__cache *kept_next;
};

/* Engines closed while a watch could still fire into them (see the top). */
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static zkc__cache *kept;

enum { REQ_LIST, REQ_FOLDER, REQ_CHILD };

struct creq {
    zkc__pending pend; /* completes it once, also when the handle closes */
    zkc__cache *c;
    unsigned gen;
    int kind;    /* REQ_* */
    unsigned no; /* REQ_LIST: its number (list_sent) */
    int synced;  /* a sync went right before it */
    char name[]; /* child name, "" for the folder */
};

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx);
static void list_done(int zrc, const struct String_vector *sv, const void *data);
static void folder_checked(int zrc, const struct Stat *st, const void *data);
static void child_read(int zrc, const char *value, int len, const struct Stat *st,
                       const void *data);
static void start_list(zkc__cache *c);
static void read_child(zkc__cache *c, zkc__centry *e);
static void maybe_deliver(zkc__cache *c);

static void cache_ref(void *arg)
{
    zkc__cache *c = arg;

    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

static void entry_free(zkc__cache *c, zkc__centry *e)
{
    if (e->user && c->ops.forget)
        c->ops.forget(e->user);
    if (c->ops.unref) {
        if (e->value)
            c->ops.unref(e->value);
        if (e->delivered)
            c->ops.unref(e->delivered);
    }
    free(e->name);
    free(e);
}

void zkc__cache_unref(zkc__cache *c)
{
    zkc__centry *e, *next;
    int i;

    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (e = c->dirty; e; e = next) {
        next = e->dnext;
        if (!e->present)
            entry_free(c, e); /* tombstones are on no other list */
    }
    for (i = 0; i < c->n; i++)
        entry_free(c, c->sorted[i]);
    free(c->sorted);
    zkc__smap_clear(&c->map);
    for (i = 0; i < c->ndropped; i++)
        free(c->dropped[i]);
    free(c->pbuf);
    free(c->poff);
    free(c->sbuf);
    free(c->soff);
    pthread_cond_destroy(&c->rcond);
    pthread_mutex_destroy(&c->rmu);
    pthread_mutex_destroy(&c->own_mu);
    free(c->path);
    free(c);
}

static void cache_unref_cb(void *arg)
{
    zkc__cache_unref(arg);
}

/* The handle closed without running the completion (zkc__pending): run it
 * as if it had failed with ZCLOSING. */
static void req_dropped(zkc__pending *pd)
{
    struct creq *r = (struct creq *)((char *)pd - offsetof(struct creq, pend));

    if (r->kind == REQ_LIST)
        list_done(ZCLOSING, NULL, r);
    else if (r->kind == REQ_FOLDER)
        folder_checked(ZCLOSING, NULL, r);
    else
        child_read(ZCLOSING, NULL, 0, NULL, r);
}

/* Handle locked: `r` is about to be sent on it. */
static void req_sending(struct creq *r, int kind)
{
    r->kind = kind;
    zkc__pending_add(r->c->s, &r->pend, r->gen, req_dropped);
}

static struct creq *req_new(zkc__cache *c, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    struct creq *r = malloc(sizeof(*r) + len + 1);

    if (!r)
        return NULL;
    memcpy(r->name, name ? name : "", len + 1);
    r->c = c;
    r->gen = c->gen;
    r->synced = 0;
    cache_ref(c);
    pthread_mutex_lock(&c->rmu);
    c->live++;
    pthread_mutex_unlock(&c->rmu);
    return r;
}

static void req_done(struct creq *r)
{
    zkc__cache *c = r->c;

    free(r);
    pthread_mutex_lock(&c->rmu);
    if (--c->live == 0)
        pthread_cond_broadcast(&c->rcond);
    pthread_mutex_unlock(&c->rmu);
    zkc__cache_unref(c);
}

static int cmp_names(zkc__cache *c, const char *a, const char *b)
{
    return c->ops.cmp ? c->ops.cmp(a, b) : strcmp(a, b);
}

static int is_connloss(int zrc)
{
    return zkc__zk_connloss(zrc);
}

/* ------------------------------------------------------------ retrying */

static void set_stale(zkc__cache *c, zkc__centry *e)
{
    e->stale = 1;
    c->stale_any = 1;
}

/* mu held: read again the children marked stale. A flag says whether any
 * may be, so that a listing does not walk every child (a cache miss each:
 * a third of a join's CPU at 10,000 members). */
static void read_stale(zkc__cache *c)
{
    int i;

    if (!c->stale_any)
        return;
    c->stale_any = 0;
    for (i = 0; i < c->n; i++) {
        zkc__centry *e = c->sorted[i];
        if (!e->reading && e->stale)
            read_child(c, e);
        if (e->stale)
            c->stale_any = 1;
    }
}

static void resync(zkc__cache *c)
{
    if (c->need_list)
        start_list(c);
    read_stale(c);
}

/* Manager thread, once connected again after a connection loss. */
static void retry(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc__cache *c = arg;

    pthread_mutex_lock(c->mu);
    zkc__retry_fired(&c->retry);
    /* LOST: the CONNECTED hook of the next session redoes everything. */
    if (!c->closing && st != ZKC_CONN_NONE && st != ZKC_CONN_LOST && gen == c->gen)
        resync(c);
    pthread_mutex_unlock(c->mu);
    zkc__cache_unref(c);
}

static void arm_retry(zkc__cache *c)
{
    if (!c->closing)
        zkc__retry_arm(&c->retry, c->s, retry, c, cache_ref, cache_unref_cb);
}

/* mu held. The handle to send on, locked, or NULL when there is none for
 * our generation (a retry or the CONNECTED hook will send later). */
static zhandle_t *lock_zh(zkc__cache *c)
{
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(c->s, &gen);

    if (!zh) {
        arm_retry(c);
        return NULL;
    }
    if (gen != c->gen) {
        zkc__zh_unlock(c->s);
        return NULL;
    }
    return zh;
}

/* ------------------------------------------------------- dirty, delivery */

static void mark_dirty(zkc__cache *c, zkc__centry *e)
{
    if (e->dirty || !c->ops.batch)
        return; /* told already, or nobody to tell */
    e->dirty = 1;
    e->dprev = NULL;
    if (!c->dirty)
        c->dirty_since = zkc__now_ms();
    e->dnext = c->dirty;
    if (c->dirty)
        c->dirty->dprev = e;
    c->dirty = e;
}

static void unlink_dirty(zkc__cache *c, zkc__centry *e)
{
    if (!e->dirty)
        return;
    if (e->dprev)
        e->dprev->dnext = e->dnext;
    else
        c->dirty = e->dnext;
    if (e->dnext)
        e->dnext->dprev = e->dprev;
    e->dirty = 0;
    e->dnext = e->dprev = NULL;
}

void zkc__cache_touch(zkc__cache *c, zkc__centry *e)
{
    e->touched = 1;
    mark_dirty(c, e);
    maybe_deliver(c);
}

static int change_order(const void *a, const void *b, void *arg)
{
    const zkc__change *x = a, *y = b;

    if ((x->kind == ZKC__CH_REMOVED) != (y->kind == ZKC__CH_REMOVED))
        return x->kind == ZKC__CH_REMOVED ? -1 : 1;
    return cmp_names(arg, x->e->name, y->e->name);
}

/* Dispatcher thread. */
static void deliver_fn(void *arg)
{
    zkc__cache *c = arg;
    zkc__centry *list, *e, *next, *tomb = NULL;
    zkc__change *ch = NULL;
    void *made = NULL;
    int n = 0, cap = 0, i;

    pthread_mutex_lock(c->mu);
    c->delivery_queued = 0;
    if (c->closing) {
        pthread_mutex_unlock(c->mu);
        zkc__cache_unref(c);
        return;
    }
    list = c->dirty;
    c->dirty = NULL;
    for (e = list; e; e = next) {
        void *now = e->present ? e->value : NULL;
        int kind = 0;

        next = e->dnext;
        e->dirty = 0;
        e->dnext = e->dprev = NULL;
        if (e->present && !e->value)
            continue; /* not read yet: its read marks it again */
        if (!e->delivered && now)
            kind = ZKC__CH_ADDED;
        else if (e->delivered && !now)
            kind = ZKC__CH_REMOVED;
        else if (e->delivered && now && e->delivered != now)
            kind = ZKC__CH_CHANGED;
        else if (now && e->touched)
            kind = ZKC__CH_TOUCHED;
        e->touched = 0;
        if (!e->present) {
            e->dnext = tomb;
            tomb = e;
        }
        if (!kind)
            continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 16;
            zkc__change *nch = realloc(ch, sizeof(*nch) * (size_t)ncap);
            if (!nch) {
                /* Out of memory: tell this one next time. */
                if (e->present)
                    mark_dirty(c, e);
                continue;
            }
            ch = nch;
            cap = ncap;
        }
        ch[n].kind = kind;
        ch[n].e = e;
        ch[n].old_value = e->delivered; /* the entry's reference moves here */
        ch[n].new_value = now;
        if (now && c->ops.ref) {
            c->ops.ref(now); /* one for the change, one for `delivered` */
            c->ops.ref(now);
        }
        e->delivered = now;
        n++;
    }
    if (n > 1)
        qsort_r(ch, (size_t)n, sizeof(*ch), change_order, c);
    if (n && c->ops.batch)
        made = c->ops.batch(c->ctx, ch, n);
    for (i = 0; i < n && c->ops.unref; i++) {
        if (ch[i].old_value)
            c->ops.unref(ch[i].old_value);
        if (ch[i].new_value)
            c->ops.unref(ch[i].new_value);
    }
    for (e = tomb; e; e = next) {
        next = e->dnext;
        entry_free(c, e);
    }
    if (c->dirty)
        maybe_deliver(c);
    pthread_mutex_unlock(c->mu);
    free(ch);
    if (made && c->ops.deliver)
        c->ops.deliver(c->ctx, made);
    zkc__cache_unref(c);
}

/* mu held. One delivery at a time, once nothing is in flight: a burst of
 * changes is one batch, and a blocked consumer has one queued. Under
 * sustained churn a listing is nearly always in flight, so waiting for
 * quiet alone could starve the user (seen: a join never delivered while
 * 128 changes were kept in flight): changes older than STALE_MS go out at
 * the next completion anyway, with what has been read so far (children
 * not read yet follow in a later batch). */
static void maybe_deliver(zkc__cache *c)
{
    if (c->closing || c->delivery_queued || !c->dirty)
        return;
    if ((c->listing || c->inflight) && zkc__now_ms() - c->dirty_since < STALE_MS)
        return;
    cache_ref(c);
    c->delivery_queued = 1;
    if (zkc__dispatch(c->s, deliver_fn, c) != 0) {
        c->delivery_queued = 0;
        __atomic_sub_fetch(&c->refs, 1, __ATOMIC_RELAXED); /* the caller holds another */
    }
}

void zkc__cache_counts(zkc__cache *c, int *present, int *dirty, int *queued, int *busy)
{
    zkc__centry *e;
    int n = 0;

    for (e = c->dirty; e; e = e->dnext)
        n++;
    *present = c->n;
    *dirty = n;
    *queued = c->delivery_queued;
    *busy = c->listing + c->inflight + c->need_list;
}

zkc__centry *zkc__cache_find(zkc__cache *c, const char *name)
{
    return zkc__smap_get(&c->map, name);
}

zkc__centry *const *zkc__cache_sorted(zkc__cache *c, int *n)
{
    *n = c->n;
    return c->sorted;
}

/* ------------------------------------------------------------- children */

/* mu held: `e` left the folder. It stays as a tombstone only when the
 * user has seen it, so its removal is told; one never told goes at once
 * (so a blocked consumer's backlog stays within the folder's size, however
 * many children come and go meanwhile). */
static void drop_entry(zkc__cache *c, zkc__centry *e)
{
    if (c->ndropped < 8 && (c->dropped[c->ndropped] = strdup(e->name)))
        c->ndropped++;
    else
        c->dropped_more = 1;
    zkc__smap_del(&c->map, e->name);
    e->present = 0;
    if (c->ops.gone)
        c->ops.gone(c->ctx, e);
    if (e->delivered) {
        mark_dirty(c, e);
    } else {
        unlink_dirty(c, e);
        entry_free(c, e);
    }
}

static void remove_sorted(zkc__cache *c, zkc__centry *e)
{
    int lo = 0, hi = c->n - 1, i;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int k = cmp_names(c, c->sorted[mid]->name, e->name);
        if (k == 0) {
            lo = mid;
            break;
        }
        if (k < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    if (lo >= c->n || c->sorted[lo] != e) { /* not where expected: search */
        for (i = 0; i < c->n && c->sorted[i] != e; i++)
            ;
        lo = i;
    }
    if (lo < c->n) {
        memmove(&c->sorted[lo], &c->sorted[lo + 1], sizeof(e) * (size_t)(c->n - lo - 1));
        c->n--;
    }
}

static int entry_qcmp(const void *a, const void *b, void *arg)
{
    return cmp_names(arg, (*(zkc__centry *const *)a)->name, (*(zkc__centry *const *)b)->name);
}

/* Name `at` of the last listing is `name` (of `len` bytes). */
static int prev_is(const zkc__cache *c, int at, const char *name, size_t len)
{
    size_t n;

    if (at >= c->pn)
        return 0;
    n = (at + 1 < c->pn ? (size_t)c->poff[at + 1] : c->plen) - (size_t)c->poff[at] - 1;
    return n == len && memcmp(name, c->pbuf + c->poff[at], len) == 0;
}

/* mu held: merge a listing into the cache, in O(n + k log k) for n known
 * and k new children. */
static void reconcile(zkc__cache *c, const struct String_vector *sv)
{
    zkc__centry **fresh = NULL, **merged;
    unsigned no = ++c->list_no;
    int i, j, k = 0, m, nf = 0, fcap = 0, known = 0, pi = 0, usep = c->pbuf && !c->dropped_more;
    size_t want = c->plen + c->plen / 4 + 4096, ncap = c->scap, nlen = 0;
    char *nbuf = c->sbuf;
    int *noff = c->soff, nocap = c->socap;

    c->sbuf = NULL;
    c->soff = NULL;
    c->scap = 0;
    c->socap = 0;
    if (ncap < want) {
        free(nbuf);
        nbuf = malloc(want);
        ncap = nbuf ? want : 0;
    }
    if (nocap < sv->count || !noff) {
        free(noff);
        nocap = sv->count > 0 ? sv->count : 1;
        noff = malloc(sizeof(*noff) * (size_t)nocap);
    }
    for (i = 0; i < sv->count; i++) {
        const char *name = sv->data[i];
        size_t len = strlen(name);
        zkc__centry *e;

        /* Keep this listing for the next one. */
        if (nbuf && nlen + len + 1 > ncap) {
            char *nb = realloc(nbuf, ncap = (nlen + len + 1) * 2);
            if (!nb)
                free(nbuf);
            nbuf = nb;
            ncap = nb ? ncap : 0;
        }
        if (nbuf && noff) {
            memcpy(nbuf + nlen, name, len + 1);
            noff[i] = (int)nlen;
            nlen += len + 1;
        }
        /* Same name at the same place (or one further: a child removed) in
         * the last listing, and not dropped since: known, no lookup. */
        if (usep) {
            int at = prev_is(c, pi, name, len) ? pi : prev_is(c, pi + 1, name, len) ? pi + 1 : -1;
            if (at >= 0) {
                for (j = 0; j < c->ndropped; j++)
                    if (strcmp(c->dropped[j], name) == 0)
                        break;
                if (j == c->ndropped) {
                    pi = at + 1;
                    known++;
                    continue;
                }
            }
        }
        e = zkc__smap_get(&c->map, name);
        if (e) {
            known++; /* not stamped: a join need not touch the known ones */
            continue;
        }
        if (nf == fcap) {
            /* Grown as new names come (a join has one): an array of the
             * whole listing, allocated and freed per listing, was 80 KB
             * at 10,000 names, and freeing it made glibc consolidate. */
            int ncap2 = fcap ? fcap * 2 : 16;
            zkc__centry **nfresh = realloc(fresh, sizeof(*fresh) * (size_t)ncap2);
            if (!nfresh) {
                free(nbuf);
                nbuf = NULL;
                continue; /* out of memory: the next listing tries again */
            }
            fresh = nfresh;
            fcap = ncap2;
        }
        e = calloc(1, sizeof(*e));
        if (!e || !(e->name = strdup(name)) || zkc__smap_put(&c->map, e->name, e) != 0) {
            if (e)
                free(e->name);
            free(e);
            free(nbuf); /* a name not in the map: the listing cannot serve */
            nbuf = NULL;
            continue; /* out of memory: the next listing tries again */
        }
        e->present = 1;
        e->listed = no;
        fresh[nf++] = e;
    }
    /* The last listing's buffers become the spare ones. */
    c->sbuf = c->pbuf;
    c->scap = c->pcap;
    c->soff = c->poff;
    c->socap = c->pocap;
    if (nbuf && noff) {
        c->pbuf = nbuf;
        c->pcap = ncap;
        c->poff = noff;
        c->pocap = nocap;
        c->plen = nlen;
        c->pn = sv->count;
    } else {
        free(nbuf);
        free(noff);
        c->pbuf = NULL;
        c->poff = NULL;
        c->pcap = c->plen = 0;
        c->pocap = c->pn = 0;
    }
    nbuf = NULL;
    noff = NULL;
    /* Gone: known children this listing did not name. When it named every
     * known one (a join; or a leave already taken from its data watch),
     * there is nothing to sweep. */
    if (known != c->n) {
        for (i = 0; i < sv->count; i++) {
            zkc__centry *e = zkc__smap_get(&c->map, sv->data[i]);
            if (e)
                e->listed = no;
        }
        for (i = 0, m = 0; i < c->n; i++) {
            zkc__centry *e = c->sorted[i];
            if (e->listed == no)
                c->sorted[m++] = e;
            else
                drop_entry(c, e);
        }
        c->n = m;
    }
    if (nf) {
        qsort_r(fresh, (size_t)nf, sizeof(*fresh), entry_qcmp, c);
        if (c->n + nf <= c->cap && nf <= 8) {
            /* A few new ones (the usual change): binary insertion. */
            for (j = 0; j < nf; j++) {
                int lo = 0, hi = c->n;
                while (lo < hi) {
                    int mid = lo + (hi - lo) / 2;
                    if (cmp_names(c, c->sorted[mid]->name, fresh[j]->name) <= 0)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                memmove(&c->sorted[lo + 1], &c->sorted[lo], sizeof(*merged) * (size_t)(c->n - lo));
                c->sorted[lo] = fresh[j];
                c->n++;
            }
        } else {
            int cap = (c->n + nf) + (c->n + nf) / 4 + 8; /* room for the next few */
            merged = malloc(sizeof(*merged) * (size_t)cap);
            if (!merged) {
                for (i = 0; i < nf; i++) {
                    zkc__smap_del(&c->map, fresh[i]->name);
                    entry_free(c, fresh[i]);
                }
                nf = 0;
                goto oom;
            }
            for (i = 0, j = 0; i < c->n || j < nf;) {
                if (j == nf || (i < c->n && cmp_names(c, c->sorted[i]->name, fresh[j]->name) <= 0))
                    merged[k++] = c->sorted[i++];
                else
                    merged[k++] = fresh[j++];
            }
            free(c->sorted);
            c->sorted = merged;
            c->n = k;
            c->cap = cap;
        }
    }
    /* Read the new ones (all sent back to back: one round trip for any
     * number), and known ones a new session left without a data watch. */
    for (i = 0; i < nf; i++) {
        zkc__centry *e = fresh[i];
        if (c->cfg.fetch_data) {
            read_child(c, e);
        } else if ((e->value = c->ops.decode(c->ctx, e->name, NULL, 0, NULL))) {
            mark_dirty(c, e);
            if (c->ops.arrived)
                c->ops.arrived(c->ctx, e);
        }
    }
    if (c->cfg.fetch_data)
        read_stale(c);
    free(fresh);
    for (i = 0; i < c->ndropped; i++)
        free(c->dropped[i]);
    c->ndropped = 0;
    c->dropped_more = 0;
    return;
oom:
    free(nbuf);
    free(noff);
    free(c->pbuf); /* compare nothing next time */
    c->pbuf = NULL;
    c->pcap = c->plen = 0;
    c->pn = 0;
    free(fresh);
    zkc__log(c->s, ZKC_LOG_ERROR, "cache %s: out of memory merging a listing", c->path);
    c->need_list = 1;
    arm_retry(c);
}

static unsigned long syncs_sent;

unsigned long zkc__cache_syncs(void)
{
    return __atomic_load_n(&syncs_sent, __ATOMIC_SEQ_CST);
}

/* Nothing to do: the read sent right behind the sync is what waits. A
 * failed sync fails that read too (same connection), which retries. */
static void sync_done(int zrc, const char *value, const void *data)
{
    (void)zrc;
    (void)value;
    (void)data;
}

/* mu held. Send the folder's listing (REQ_LIST: getChildren) or, the
 * folder being missing, its check (REQ_FOLDER: exists; that watch is the
 * point there, the folder is expected to come), both with our watch. When
 * nothing could be sent, need_list says so and a retry or the CONNECTED
 * hook sends it later.
 *
 * Fresh reads after a new session: a new ZooKeeper session starts with no
 * last-seen zxid, so it may be served by a follower behind what the old
 * session saw, and its first listing could drop members the old session
 * listed (until the watch fires). So the first folder read of a new
 * session's generation goes right behind a sync of the folder: the server
 * answers one session's requests in order and a read behind a sync sees
 * everything the leader committed before the sync (the ZooKeeper
 * Programmer's Guide's "sync, then read"). Pipelined, it costs one request
 * per new session and no round trip; `fresh` stays set until such a read
 * is answered. The cache's very first read needs none: nothing was seen
 * before it. */
static void send_folder_req(zkc__cache *c, int kind)
{
    struct creq *r;
    zhandle_t *zh = lock_zh(c);
    int zrc = ZSYSTEMERROR;

    if (!zh) {
        c->need_list = 1;
        return;
    }
    r = req_new(c, NULL);
    if (r && c->fresh) {
        /* data NULL: the completion owns nothing, so a completion the
         * client drops at close leaks nothing */
        zrc = zoo_async(zh, c->path, sync_done, NULL);
        r->synced = zrc == ZOK;
        if (r->synced)
            __atomic_add_fetch(&syncs_sent, 1, __ATOMIC_SEQ_CST);
    }
    if (r) {
        req_sending(r, kind);
        r->no = kind == REQ_LIST ? ++c->list_sent : 0;
        zrc = kind == REQ_LIST ? zoo_awget_children(zh, c->path, watcher, c, list_done, r)
                               : zoo_awexists(zh, c->path, watcher, c, folder_checked, r);
    }
    zkc__zh_unlock(c->s);
    if (zrc != ZOK) {
        c->need_list = 1;
        arm_retry(c);
        if (r) {
            zkc__pending_done(c->s, &r->pend);
            req_done(r);
        }
        return;
    }
    c->listing = 1;
    c->need_list = 0;
}

static void folder_checked(int zrc, const struct Stat *st, const void *data)
{
    struct creq *r = (struct creq *)data;
    zkc__cache *c = r->c;

    (void)st;
    zkc__pending_done(c->s, &r->pend);
    pthread_mutex_lock(c->mu);
    if (!c->closing && r->gen == c->gen) {
        c->listing = 0;
        if (r->synced && (zrc == ZOK || zrc == ZNONODE))
            c->fresh = 0;
        if (zrc == ZOK || c->relist) { /* created meanwhile */
            c->relist = 0;
            start_list(c);
        } else if (is_connloss(zrc)) {
            c->need_list = 1;
            arm_retry(c);
        }
        maybe_deliver(c);
    }
    pthread_mutex_unlock(c->mu);
    req_done(r);
}

static void list_done(int zrc, const struct String_vector *sv, const void *data)
{
    struct creq *r = (struct creq *)data;
    zkc__cache *c = r->c;
    int relist;

    zkc__pending_done(c->s, &r->pend);
    pthread_mutex_lock(c->mu);
    if (c->closing || r->gen != c->gen)
        goto out;
    c->listing = 0;
    relist = c->relist;
    c->relist = 0;
    if (r->synced && (zrc == ZOK || zrc == ZNONODE))
        c->fresh = 0;
    if (zrc == ZOK) {
        c->list_seen = r->no;
        reconcile(c, sv);
    } else if (zrc == ZNONODE) {
        c->list_seen = r->no;
        while (c->n > 0)
            drop_entry(c, c->sorted[--c->n]);
        send_folder_req(c, REQ_FOLDER);
        relist = 0;
    } else if (is_connloss(zrc)) {
        c->need_list = 1;
        arm_retry(c);
    } else if (zrc != ZCLOSING && !zkc__zk_expired(zrc)) {
        zkc__log(c->s, ZKC_LOG_ERROR, "cache %s: cannot list children: %s", c->path, zerror(zrc));
    }
    if (relist)
        start_list(c);
    if ((zrc == ZOK || zrc == ZNONODE) && c->ops.listed)
        c->ops.listed(c->ctx);
    maybe_deliver(c);
out:
    pthread_mutex_unlock(c->mu);
    req_done(r);
}

/* mu held. */
static void start_list(zkc__cache *c)
{
    if (c->closing)
        return;
    if (c->paused) {
        c->need_list = 1; /* listed when wanted again */
        return;
    }
    if (c->listing) {
        c->relist = 1;
        return;
    }
    send_folder_req(c, REQ_LIST);
}

static void child_read(int zrc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct creq *r = (struct creq *)data;
    zkc__cache *c = r->c;
    zkc__centry *e;

    zkc__pending_done(c->s, &r->pend);
    pthread_mutex_lock(c->mu);
    if (c->closing || r->gen != c->gen)
        goto out;
    c->inflight--;
    e = zkc__smap_get(&c->map, r->name);
    if (!e)
        goto done; /* it left meanwhile */
    e->reading = 0;
    if (zrc == ZOK) {
        /* An unchanged node (mzxid) keeps its value: a re-arm after a new
         * session costs no decode and tells nothing. */
        if (!e->value || c->ops.mzxid == NULL || c->ops.mzxid(e->value) != st->mzxid) {
            void *v = c->ops.decode(c->ctx, e->name, value, len, st);
            if (v) {
                void *old = e->value;
                e->value = v;
                mark_dirty(c, e);
                if (!old && c->ops.arrived)
                    c->ops.arrived(c->ctx, e);
                if (old && c->ops.unref)
                    c->ops.unref(old);
            }
        }
        if (e->stale)
            read_child(c, e);
    } else if (zrc == ZNONODE) {
        /* Deleted between getChildren and this read (or since): it is
         * simply gone, as the next listing will say too. */
        remove_sorted(c, e);
        drop_entry(c, e);
    } else if (is_connloss(zrc)) {
        set_stale(c, e);
        arm_retry(c);
    } else if (zrc != ZCLOSING && !zkc__zk_expired(zrc)) {
        zkc__log(c->s, ZKC_LOG_WARN, "cache %s: cannot read %s: %s", c->path, e->name, zerror(zrc));
        if (!e->value && (e->value = c->ops.decode(c->ctx, e->name, NULL, -1, NULL))) {
            mark_dirty(c, e);
            if (c->ops.arrived)
                c->ops.arrived(c->ctx, e);
        }
    }
done:
    maybe_deliver(c);
out:
    pthread_mutex_unlock(c->mu);
    req_done(r);
}

/* mu held. One getData, with a data watch when asked. getData rather than
 * exists even to re-arm a watch: on a node that is gone, exists would leave
 * a watch on a path that may never come back. */
static void read_child(zkc__cache *c, zkc__centry *e)
{
    struct creq *r;
    char *path;
    zhandle_t *zh;
    int zrc;

    if (c->closing)
        return;
    if (e->reading) {
        set_stale(c, e);
        return;
    }
    zh = lock_zh(c);
    if (!zh) {
        set_stale(c, e);
        return;
    }
    r = req_new(c, e->name);
    path = zkc__path_join(c->path, e->name);
    if (r)
        req_sending(r, REQ_CHILD);
    if (!r || !path)
        zrc = ZSYSTEMERROR;
    else if (c->cfg.watch_data)
        zrc = zoo_awget(zh, path, watcher, c, child_read, r);
    else
        zrc = zoo_aget(zh, path, 0, child_read, r);
    zkc__zh_unlock(c->s);
    free(path);
    if (zrc != ZOK) {
        set_stale(c, e);
        arm_retry(c);
        if (r) {
            zkc__pending_done(c->s, &r->pend);
            req_done(r);
        }
        return;
    }
    e->reading = 1;
    e->stale = 0;
    c->inflight++;
}

/* Completion thread. Session events reach every per-request watcher; the
 * state hook handles those. */
static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    zkc__cache *c = ctx;
    zkc__centry *e;

    (void)zh;
    (void)state;
    if (type == ZOO_SESSION_EVENT || !path)
        return;
    pthread_mutex_lock(c->mu);
    if (c->closing) {
        pthread_mutex_unlock(c->mu);
        return;
    }
    if (strcmp(path, c->path) == 0) {
        if (type == ZOO_CHILD_EVENT || type == ZOO_CREATED_EVENT || type == ZOO_DELETED_EVENT)
            start_list(c);
    } else if ((type == ZOO_CHANGED_EVENT || type == ZOO_DELETED_EVENT) &&
               strncmp(path, c->path, c->path_len) == 0 && path[c->path_len] == '/') {
        e = zkc__smap_get(&c->map, path + c->path_len + 1);
        if (e && type == ZOO_CHANGED_EVENT) {
            read_child(c, e);
        } else if (e) {
            /* Gone: known at once, in O(log n), without waiting for the
             * listing (which then finds nothing to sweep). */
            remove_sorted(c, e);
            drop_entry(c, e);
            maybe_deliver(c);
        }
    }
    pthread_mutex_unlock(c->mu);
}

/* Manager thread (hk_mu held). */
static void hook(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc__cache *c = arg;
    int i;

    pthread_mutex_lock(c->mu);
    if (c->closing || !c->started) {
        pthread_mutex_unlock(c->mu);
        return;
    }
    if (st == ZKC_CONN_CONNECTED && gen != c->gen) {
        /* A new session: every watch went with the old one. List again;
         * known children are read again (with a data watch) once the
         * listing shows they are still there, and only changed ones are
         * decoded and told. */
        c->gen = gen;
        c->fresh = 1;
        c->listing = 0;
        c->relist = 0;
        c->inflight = 0;
        for (i = 0; i < c->n; i++) {
            c->sorted[i]->reading = 0;
            c->sorted[i]->stale = c->cfg.fetch_data;
        }
        c->stale_any = c->cfg.fetch_data;
        start_list(c);
    } else if (st == ZKC_CONN_RECONNECTED && gen == c->gen) {
        /* Same session: the client re-registered our watches; send what
         * failed meanwhile. */
        resync(c);
    }
    pthread_mutex_unlock(c->mu);
}

/* ------------------------------------------- one read through a zkc__call */

/* The context of one read sent for a zkc__call: it completes the call
 * exactly once, also when the handle is closed with the read in flight
 * (zkc__pending), so a waiter never waits for a completion that the client
 * dropped, and the call's reference is always given back. */
struct pcall {
    zkc__pending pend;
    zkc_session *s;
    zkc__call *c;
};

static void pcall_dropped(zkc__pending *pd)
{
    struct pcall *p = (struct pcall *)((char *)pd - offsetof(struct pcall, pend));

    zkc__call_complete(p->c, ZCLOSING);
    zkc__call_unref(p->c);
    free(p);
}

static void strings_stat_done(int zrc, const struct String_vector *v, const struct Stat *st,
                              const void *data);

static void pcall_data(int zrc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct pcall *p = (struct pcall *)data;

    zkc__pending_done(p->s, &p->pend);
    zkc__call_data_done(zrc, value, len, st, p->c);
    free(p);
}

static void pcall_children(int zrc, const struct String_vector *v, const struct Stat *st,
                           const void *data)
{
    struct pcall *p = (struct pcall *)data;

    zkc__pending_done(p->s, &p->pend);
    strings_stat_done(zrc, v, st, p->c);
    free(p);
}

static void pcall_stat(int zrc, const struct Stat *st, const void *data)
{
    struct pcall *p = (struct pcall *)data;

    zkc__pending_done(p->s, &p->pend);
    zkc__call_stat_done(zrc, st, p->c);
    free(p);
}

int zkc__read_send(zkc_session *s, zhandle_t *zh, unsigned gen, int kind, const char *path,
                   zkc__call *c)
{
    struct pcall *p = malloc(sizeof(*p));
    int zrc;

    if (!p)
        return ZSYSTEMERROR;
    p->s = s;
    p->c = c;
    zkc__call_ref(c);
    zkc__pending_add(s, &p->pend, gen, pcall_dropped);
    if (kind == ZKC__READ_DATA)
        zrc = zoo_aget(zh, path, 0, pcall_data, p);
    else if (kind == ZKC__READ_CHILDREN)
        zrc = zoo_aget_children2(zh, path, 0, pcall_children, p);
    else
        zrc = zoo_aexists(zh, path, 0, pcall_stat, p);
    if (zrc != ZOK) {
        zkc__pending_done(s, &p->pend);
        zkc__call_unref(c);
        free(p);
    }
    return zrc;
}

int zkc__cache_new(zkc__cache **out, zkc_session *s, const char *path, const zkc__cache_ops *ops,
                   void *ctx, const zkc__cache_cfg *cfg)
{
    zkc__cache *c = calloc(1, sizeof(*c));

    if (!c)
        return ZKC_ENOMEM;
    c->path = strdup(path);
    if (!c->path || zkc__cond_init(&c->rcond) != 0) {
        free(c->path);
        free(c);
        return ZKC_ENOMEM;
    }
    pthread_mutex_init(&c->rmu, NULL);
    pthread_mutex_init(&c->own_mu, NULL);
    c->path_len = strlen(path);
    c->refs = 1;
    c->s = s;
    c->mu = &c->own_mu;
    c->ops = *ops;
    c->ctx = ctx;
    c->cfg = *cfg;
    c->gen = zkc_session_generation(s);
    c->paused = cfg->on_demand;
    zkc__smap_init(&c->map);
    *out = c;
    return 0;
}

unsigned zkc__cache_want(zkc__cache *c, int want)
{
    unsigned mark = c->list_sent + 1;

    c->paused = !want;
    if (want && c->need_list && !c->listing)
        start_list(c);
    return mark;
}

unsigned zkc__cache_listed(zkc__cache *c)
{
    return c->list_seen;
}

pthread_mutex_t *zkc__cache_mutex(zkc__cache *c)
{
    return c->mu;
}

void zkc__cache_start(zkc__cache *c)
{
    int added, keep = 0;

    /* The hook list lock (hk_mu) is outside ours (the manager holds it
     * while our hook takes mu), so the hook is added before mu is taken,
     * never under it. Until `started` is set the hook does nothing. */
    added = zkc__add_hook(c->s, hook, c) == 0;
    pthread_mutex_lock(c->mu);
    if (!c->started && !c->closing) {
        c->started = 1;
        c->gen = zkc_session_generation(c->s);
        c->hooked = keep = added;
        start_list(c);
    }
    pthread_mutex_unlock(c->mu);
    /* Started already, or closing: close removes only the hook it saw. */
    if (added && !keep)
        zkc__remove_hook(c->s, hook, c);
}

/* Wait for one round trip through the completion thread: every watch event
 * the client collected before this call has been delivered after it. */
static int completion_barrier(zkc__cache *c)
{
    zkc__call *call = zkc__call_new();
    zhandle_t *zh;
    unsigned gen;
    int rc;

    if (!call)
        return ZKC_ENOMEM;
    zh = zkc__zh_lock(c->s, &gen);
    if (!zh) {
        zkc__call_unref(call);
        return 0; /* no handle: the last one is closed, its watches with it */
    }
    rc = zkc__read_send(c->s, zh, gen, ZKC__READ_STAT, "/", call);
    zkc__zh_unlock(c->s);
    if (rc != ZOK) {
        zkc__call_unref(call);
        return ZKC_ECONNLOSS;
    }
    rc = zkc__call_wait(call, CLOSE_BARRIER_MS);
    zkc__call_unref(call);
    return rc;
}

void zkc__cache_close(zkc__cache *c)
{
    struct timespec ts;
    zhandle_t *zh;
    unsigned gen;
    int i, hooked, started, live, brc;

    pthread_mutex_lock(c->mu);
    c->closing = 1;
    hooked = c->hooked;
    started = c->started;
    c->hooked = 0;
    pthread_mutex_unlock(c->mu);
    if (hooked)
        zkc__remove_hook(c->s, hook, c);

    zkc__deadline(&ts, CLOSE_DRAIN_MS);
    pthread_mutex_lock(&c->rmu);
    while (c->live > 0 && pthread_cond_timedwait(&c->rcond, &c->rmu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&c->rmu);

    if (started) {
        pthread_mutex_lock(c->mu);
        zh = zkc__zh_lock(c->s, &gen);
        if (zh && gen == c->gen) {
            zoo_remove_watches(zh, c->path, ZWATCHTYPE_ANY, watcher, c, 1);
            for (i = 0; c->cfg.watch_data && i < c->n; i++) {
                char *p = zkc__path_join(c->path, c->sorted[i]->name);
                if (p)
                    zoo_remove_watches(zh, p, ZWATCHTYPE_DATA, watcher, c, 1);
                free(p);
            }
        }
        if (zh)
            zkc__zh_unlock(c->s);
        pthread_mutex_unlock(c->mu);
        brc = completion_barrier(c);

        pthread_mutex_lock(&c->rmu);
        live = c->live;
        pthread_mutex_unlock(&c->rmu);
        if (brc != 0 || live > 0) {
            /* A watch may still fire into us: keep the engine (small, and
             * on a list) rather than free it under the client. */
            zkc__log(c->s, ZKC_LOG_WARN,
                     "cache %s: closed while the connection was down; its memory is kept "
                     "until the process exits",
                     c->path);
            cache_ref(c);
            pthread_mutex_lock(&kept_mu);
            c->kept_next = kept;
            kept = c;
            pthread_mutex_unlock(&kept_mu);
        }
    }
    zkc__dispatch_barrier(c->s);
}

/* ----------------------------------------------------- one-shot reads */

void zkc__call_data_done(int zrc, const char *value, int len, const struct Stat *st,
                         const void *data)
{
    zkc__call *c = (zkc__call *)data;

    if (zrc == ZOK) {
        size_t n = len > 0 ? (size_t)len : 0;
        struct zkc__got *d = malloc(sizeof(*d) + n + 1);
        pthread_mutex_lock(&c->mu);
        if (!d) {
            zrc = ZSYSTEMERROR;
        } else if (!c->done) {
            d->len = (int)n;
            if (n)
                memcpy(d->data, value, n);
            d->data[n] = 0;
            c->extra = d;
            c->extra_free = free;
            c->stat = *st;
            d = NULL;
        }
        pthread_mutex_unlock(&c->mu);
        free(d);
    }
    zkc__call_complete(c, zrc);
    zkc__call_unref(c);
}

static void stat_out(const struct Stat *z, zkc_stat *st)
{
    st->czxid = z->czxid;
    st->mzxid = z->mzxid;
    st->pzxid = z->pzxid;
    st->ctime_ms = z->ctime;
    st->mtime_ms = z->mtime;
    st->owner = z->ephemeralOwner;
    st->version = z->version;
    st->cversion = z->cversion;
    st->aversion = z->aversion;
    st->data_length = z->dataLength;
    st->num_children = z->numChildren;
}

static void strings_stat_done(int zrc, const struct String_vector *v, const struct Stat *st,
                              const void *data)
{
    zkc__call *c = (zkc__call *)data;

    if (zrc == ZOK && st) {
        pthread_mutex_lock(&c->mu);
        if (!c->done)
            c->stat = *st;
        pthread_mutex_unlock(&c->mu);
    }
    zkc__call_strings_done(zrc, v, data); /* completes, unrefs */
}

static int str_qcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Send one read (children or data) and wait for it. */
static int read_once(zkc_session *s, const char *path, int timeout_ms, int children,
                     zkc__call **out)
{
    zkc__call *c;
    zhandle_t *zh;
    unsigned gen;
    int zrc, rc;

    if (!s || !path || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    if (!(c = zkc__call_new()))
        return ZKC_ENOMEM;
    zh = zkc__zh_lock(s, &gen);
    if (!zh) {
        zkc__call_unref(c);
        return ZKC_ECONNLOSS;
    }
    zrc = zkc__read_send(s, zh, gen, children ? ZKC__READ_CHILDREN : ZKC__READ_DATA, path, c);
    zkc__zh_unlock(s);
    if (zrc != ZOK) {
        zkc__call_unref(c);
        return zkc__err_from_zk(zrc);
    }
    rc = zkc__call_wait(c, timeout_ms);
    if (rc == 0 && c->rc != ZOK)
        rc = c->rc == ZSYSTEMERROR ? ZKC_ENOMEM : zkc__err_from_zk(c->rc);
    if (rc) {
        zkc__call_unref(c);
        return rc;
    }
    *out = c;
    return 0;
}

int zkc_get_children(zkc_session *s, const char *path, int timeout_ms, char ***names, int *count,
                     zkc_stat *st)
{
    zkc__call *c;
    int rc;

    if (!names || !count)
        return ZKC_EINVAL;
    rc = read_once(s, path, timeout_ms, 1, &c);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    if (c->children.count > 0)
        qsort(c->children.data, (size_t)c->children.count, sizeof(char *), str_qcmp);
    *names = c->children.count > 0 ? c->children.data : NULL;
    *count = c->children.count;
    if (!*names)
        free(c->children.data);
    c->children.data = NULL; /* handed over */
    c->children.count = 0;
    if (st)
        stat_out(&c->stat, st);
    pthread_mutex_unlock(&c->mu);
    zkc__call_unref(c);
    return 0;
}

int zkc_get(zkc_session *s, const char *path, int timeout_ms, char **data, int *len, zkc_stat *st)
{
    struct zkc__got *d;
    zkc__call *c;
    int rc = read_once(s, path, timeout_ms, 0, &c);

    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    d = c->extra;
    if (data) {
        *data = NULL;
        if (d && d->len > 0 && !(*data = malloc((size_t)d->len + 1)))
            rc = ZKC_ENOMEM;
        else if (d && d->len > 0)
            memcpy(*data, d->data, (size_t)d->len + 1);
    }
    if (!rc && len)
        *len = d ? d->len : 0;
    if (!rc && st)
        stat_out(&c->stat, st);
    pthread_mutex_unlock(&c->mu);
    zkc__call_unref(c);
    return rc;
}

void zkc_strings_free(char **names, int count)
{
    int i;

    for (i = 0; names && i < count; i++)
        free(names[i]);
    free(names);
}

/* ------------------------------------------- views with borrowed elements */

zkc__vlife *zkc__vlife_new(void (*unref)(void *elt))
{
    zkc__vlife *l = calloc(1, sizeof(*l));

    if (l) {
        l->refs = 1;
        l->unref = unref;
    }
    return l;
}

void zkc__vlife_keep(zkc__vlife *l, void *elt)
{
    if (!elt)
        return;
    if (l->ngone == l->capgone) {
        int cap = l->capgone ? l->capgone * 2 : 8;
        void **g = realloc(l->gone, sizeof(*g) * (size_t)cap);
        if (!g)
            return; /* leaked, not freed under a reader */
        l->gone = g;
        l->capgone = cap;
    }
    l->gone[l->ngone++] = elt;
}

void zkc__vlife_chain(zkc__vlife *older, zkc__vlife *newer)
{
    __atomic_add_fetch(&newer->refs, 1, __ATOMIC_RELAXED);
    older->next = newer;
}

void zkc__vlife_unref(zkc__vlife *l)
{
    /* A loop, not recursion: a chain is as long as the changes seen while
     * a user kept its oldest view. */
    while (l && __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        zkc__vlife *next = l->next;
        int i;

        for (i = 0; i < l->ngone; i++)
            l->unref(l->gone[i]);
        free(l->gone);
        free(l);
        l = next;
    }
}

static int int_qcmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;

    return (x > y) - (x < y);
}

int zkc__view_merge(void **out, void *const *old, int n, int *dpos, int nd, const int *ipos,
                    void *const *ins, int ni)
{
    int cur = 0, di = 0, j = 0, k = 0;

    qsort(dpos, (size_t)nd, sizeof(*dpos), int_qcmp);
    while (cur < n || j < ni) {
        int stop = n;
        if (j < ni && ipos[j] < stop)
            stop = ipos[j];
        if (di < nd && dpos[di] < stop)
            stop = dpos[di];
        memcpy(&out[k], &old[cur], sizeof(*out) * (size_t)(stop - cur));
        k += stop - cur;
        cur = stop;
        if (j < ni && ipos[j] == cur) {
            /* memcpy: the arrays hold pointers of the callers' types */
            memcpy(&out[k++], &ins[j++], sizeof(*out));
        } else if (di < nd && dpos[di] == cur) {
            cur++;
            di++;
        }
    }
    return k;
}

/* --------------------------------------------------- zkc_cache (public) */

/* One child as a public view shows it: immutable, refcounted. */
struct cval {
    int refs;
    int has_stat;
    zkc_stat st;
    int len;
    char *data;
    char name[];
};

/* A view's children are borrowed (see zkc__vlife in cache.h), so building
 * a view copies the pointer array and touches only the changed children. */
struct zkc_cache_view {
    int refs;
    int n;
    struct cval **v; /* borrowed: kept alive by `life` and its chain */
    zkc__vlife *life;
};

struct zkc_cache {
    int refs;            /* atomic: the user's, and one per batch being delivered */
    pthread_mutex_t *mu; /* the engine's (it outlives us while deliveries are queued) */
    zkc_session *s;
    zkc_cache_opts o;
    zkc__cache *eng;
    zkc_cache_view *view;
    int started;
    int closing;
};

struct pub_batch {
    zkc_cache *c; /* referenced: the callback may free the cache */
    zkc_cache_view *view;
    zkc_cache_event *ev;
    struct cval **vals; /* referenced, one per event (NULL for CHANGED) */
    int n;
};

static void cval_ref(void *p)
{
    __atomic_add_fetch(&((struct cval *)p)->refs, 1, __ATOMIC_RELAXED);
}

static void cval_unref(void *p)
{
    struct cval *v = p;

    if (v && __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        free(v->data);
        free(v);
    }
}

static zkc_cache_view *cview_alloc(int n)
{
    zkc_cache_view *v = calloc(1, sizeof(*v));

    if (!v)
        return NULL;
    v->refs = 1;
    v->v = calloc((size_t)(n > 0 ? n : 1), sizeof(*v->v));
    v->life = zkc__vlife_new(cval_unref);
    if (!v->v || !v->life) {
        free(v->v);
        zkc__vlife_unref(v->life);
        free(v);
        return NULL;
    }
    return v;
}

/* First position in `v` whose name is not before `name`. */
static int cview_lower(const zkc_cache_view *v, const char *name)
{
    int lo = 0, hi = v->n;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(v->v[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The next view: `ov` patched by the batch (O(k log n) and one copy of the
 * pointer array); NULL when out of memory or when `ov` and the batch do
 * not line up (the caller then builds it from the entries). */
static zkc_cache_view *cview_patch(const zkc_cache_view *ov, const zkc__change *ch, int n)
{
    int *dpos = malloc(sizeof(int) * (size_t)(n + 1)),
        *ipos = malloc(sizeof(int) * (size_t)(n + 1));
    struct cval **ins = malloc(sizeof(*ins) * (size_t)(n + 1));
    zkc_cache_view *nv = NULL;
    int i, nd = 0, ni = 0;

    if (!dpos || !ipos || !ins)
        goto out;
    for (i = 0; i < n; i++) {
        struct cval *old = ch[i].old_value, *now = ch[i].new_value;
        int p;

        if (ch[i].kind == ZKC__CH_TOUCHED)
            continue;
        p = cview_lower(ov, ch[i].e->name);
        if (old) {
            if (p >= ov->n || ov->v[p] != old)
                goto out;
            dpos[nd++] = p;
        }
        if (now) {
            if (ni > 0 && p < ipos[ni - 1])
                goto out;
            ipos[ni] = p;
            ins[ni++] = now;
        }
    }
    if (!(nv = cview_alloc(ov->n + ni)))
        goto out;
    nv->n = zkc__view_merge((void **)nv->v, (void *const *)ov->v, ov->n, dpos, nd, ipos,
                            (void *const *)ins, ni);
out:
    free(dpos);
    free(ipos);
    free(ins);
    return nv;
}

static int64_t cval_mzxid(void *p)
{
    struct cval *v = p;

    return v->has_stat ? v->st.mzxid : -1;
}

static void *cval_decode(void *ctx, const char *name, const char *data, int len,
                         const struct Stat *st)
{
    size_t nl = strlen(name);
    struct cval *v = calloc(1, sizeof(*v) + nl + 1);

    (void)ctx;
    if (!v)
        return NULL;
    v->refs = 1;
    memcpy(v->name, name, nl + 1);
    if (st) {
        v->has_stat = 1;
        stat_out(st, &v->st);
    }
    if (data && len > 0) {
        if (!(v->data = malloc((size_t)len + 1))) {
            free(v);
            return NULL;
        }
        memcpy(v->data, data, (size_t)len);
        v->data[len] = 0;
        v->len = len;
    }
    return v;
}

static void pub_unref(zkc_cache *c)
{
    int i;

    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* The current view's children are the entries' (their `delivered`),
     * which go with the engine: a user may hold that view past us. */
    for (i = 0; c->view && i < c->view->n; i++) {
        cval_ref(c->view->v[i]);
        zkc__vlife_keep(c->view->life, c->view->v[i]);
    }
    zkc_cache_view_free(c->view);
    zkc__cache_unref(c->eng); /* the mutex goes with the engine's last reference */
    free(c);
}

static void pub_batch_free(struct pub_batch *b)
{
    int i;

    for (i = 0; i < b->n; i++)
        cval_unref(b->vals[i]);
    free(b->vals);
    free(b->ev);
    zkc_cache_view_free(b->view);
    pub_unref(b->c);
    free(b);
}

/* Dispatcher, engine lock held. */
static void *pub_make_batch(void *ctx, const zkc__change *ch, int n)
{
    zkc_cache *c = ctx;
    zkc__centry *const *ents;
    struct pub_batch *b = calloc(1, sizeof(*b));
    zkc_cache_view *v = NULL;
    int i, ne;

    /* What leaves stays alive with the current view (and older ones),
     * whatever happens next. */
    for (i = 0; i < n; i++)
        if (ch[i].old_value && ch[i].old_value != ch[i].new_value) {
            cval_ref(ch[i].old_value);
            zkc__vlife_keep(c->view->life, ch[i].old_value);
        }
    if (b && !(v = cview_patch(c->view, ch, n))) {
        /* Not lined up (or out of memory): from the entries, in order. */
        ents = zkc__cache_sorted(c->eng, &ne);
        if ((v = cview_alloc(ne)))
            for (i = 0; i < ne; i++)
                if (ents[i]->delivered)
                    v->v[v->n++] = ents[i]->delivered;
    }
    if (!b || !v || !(b->ev = calloc((size_t)n + 1, sizeof(*b->ev))) ||
        !(b->vals = calloc((size_t)n + 1, sizeof(*b->vals)))) {
        zkc_cache_view_free(v);
        if (b) {
            free(b->ev);
            free(b->vals);
        }
        free(b);
        zkc__log(c->s, ZKC_LOG_ERROR, "cache: out of memory delivering a change");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        struct cval *val = ch[i].kind == ZKC__CH_REMOVED ? ch[i].old_value : ch[i].new_value;
        zkc_cache_event *e = &b->ev[b->n];

        if (ch[i].kind == ZKC__CH_TOUCHED)
            continue;
        e->type = ch[i].kind == ZKC__CH_ADDED     ? ZKC_CACHE_ADDED
                  : ch[i].kind == ZKC__CH_REMOVED ? ZKC_CACHE_REMOVED
                                                  : ZKC_CACHE_UPDATED;
        cval_ref(val);
        b->vals[b->n++] = val;
        e->name = val->name;
        e->data = val->data;
        e->len = val->len;
        e->stat = val->has_stat ? &val->st : NULL;
    }
    b->ev[b->n++].type = ZKC_CACHE_CHANGED;
    b->view = v;
    b->c = c;
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    zkc__vlife_chain(c->view->life, v->life);
    zkc_cache_view_free(c->view);
    c->view = zkc_cache_view_ref(v);
    return b;
}

/* Dispatcher, lock not held. */
static void pub_deliver(void *ctx, void *arg)
{
    zkc_cache *c = ctx;
    struct pub_batch *b = arg;
    int i, closing;

    for (i = 0; c->o.on_event && i < b->n; i++) {
        pthread_mutex_lock(c->mu);
        closing = c->closing;
        pthread_mutex_unlock(c->mu);
        if (closing)
            break;
        b->ev[i].view = b->view;
        c->o.on_event(c, &b->ev[i], c->o.user_data);
    }
    pub_batch_free(b);
}

static const zkc__cache_ops pub_ops = {
    .decode = cval_decode,
    .ref = cval_ref,
    .unref = cval_unref,
    .mzxid = cval_mzxid,
    .batch = pub_make_batch,
    .deliver = pub_deliver,
};

void zkc_cache_opts_init(zkc_cache_opts *o)
{
    if (o)
        memset(o, 0, sizeof(*o));
}

int zkc_cache_new(zkc_cache **out, zkc_session *s, const char *path, const zkc_cache_opts *o)
{
    zkc__cache_cfg cfg = {0};
    zkc_cache *c;
    int rc;

    if (!out || !s || !path || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return ZKC_ENOMEM;
    c->refs = 1;
    if (o)
        c->o = *o;
    c->s = s;
    cfg.fetch_data = c->o.fetch_data || c->o.watch_data;
    cfg.watch_data = c->o.watch_data;
    c->view = cview_alloc(0);
    rc = c->view ? zkc__cache_new(&c->eng, s, path, &pub_ops, c, &cfg) : ZKC_ENOMEM;
    if (rc) {
        zkc_cache_view_free(c->view);
        free(c);
        return rc;
    }
    c->mu = zkc__cache_mutex(c->eng);
    zkc__session_attach(s);
    *out = c;
    return 0;
}

int zkc_cache_start(zkc_cache *c)
{
    int rc = 0;

    if (!c)
        return ZKC_EINVAL;
    pthread_mutex_lock(c->mu);
    if (c->started)
        rc = ZKC_EBUSY;
    c->started = 1;
    pthread_mutex_unlock(c->mu);
    /* Not under mu: starting adds the engine's session hook (hk_mu). */
    if (rc == 0)
        zkc__cache_start(c->eng);
    return rc;
}

int zkc_cache_view_get(zkc_cache *c, zkc_cache_view **out)
{
    if (!c || !out)
        return ZKC_EINVAL;
    pthread_mutex_lock(c->mu);
    *out = zkc_cache_view_ref(c->view);
    pthread_mutex_unlock(c->mu);
    return 0;
}

void zkc_cache_free(zkc_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(c->mu);
    c->closing = 1;
    pthread_mutex_unlock(c->mu);
    zkc__cache_close(c->eng);
    zkc__session_detach(c->s);
    /* A batch being delivered (when freed from its callback) holds the
     * last reference: it stops at its next event (closing). */
    pub_unref(c);
}

int zkc_cache_view_count(const zkc_cache_view *v)
{
    return v ? v->n : 0;
}

const char *zkc_cache_view_name(const zkc_cache_view *v, int i)
{
    return v && i >= 0 && i < v->n ? v->v[i]->name : NULL;
}

const char *zkc_cache_view_data(const zkc_cache_view *v, int i, int *len)
{
    if (!v || i < 0 || i >= v->n) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->v[i]->len;
    return v->v[i]->data;
}

const zkc_stat *zkc_cache_view_stat(const zkc_cache_view *v, int i)
{
    return v && i >= 0 && i < v->n && v->v[i]->has_stat ? &v->v[i]->st : NULL;
}

zkc_cache_view *zkc_cache_view_ref(const zkc_cache_view *v)
{
    if (v)
        __atomic_add_fetch(&((zkc_cache_view *)v)->refs, 1, __ATOMIC_RELAXED);
    return (zkc_cache_view *)v;
}

void zkc_cache_view_free(zkc_cache_view *v)
{
    if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    zkc__vlife_unref(v->life);
    free(v->v);
    free(v);
}
