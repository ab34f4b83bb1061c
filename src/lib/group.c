/*
 * Group membership: see include/zkcoord/group.h.
 *
 * Two parts share one mutex (mu):
 *
 *  - The view of the folder: the children cache engine (cache.c) keeps the
 *    members (one getChildren per change of the folder, one get per new
 *    member, one get per payload change, a data watch on each) and hands us
 *    coalesced batches of changes on the dispatcher. Here a batch becomes
 *    events and a new immutable view. Building a view is one pass over the
 *    sorted members that reuses every member wrapper whose payload and
 *    flags did not change; duplicate ids are counted in a hash map updated
 *    by the batch: no per-change rebuild, sort or pairwise scan of the
 *    whole folder (that was O(n^2) per change at 10,000 members).
 *
 *  - Our own node (when joined), kept in line with what the user asked:
 *    created through zkc__pcreate_named() (adopt-or-clean after a lost
 *    reply, as Curator's protected mode: CURATOR-45), re-created with the new
 *    session after LOST (the behaviour of Curator's PersistentNode, which
 *    ServiceDiscovery uses for the same job), checked after RECONNECTED
 *    (exists without a watch: our node may have expired on the server while
 *    we were away, ZOOKEEPER-1159-style partitions, or been deleted by an
 *    operator), and re-created when it vanishes from the folder while we
 *    are still in.
 *
 * Threads: completions and watches run on the ZooKeeper completion thread,
 * state hooks and retries on the session manager thread, batches on the
 * dispatcher, user calls anywhere; none of them blocks except the
 * documented waits of user calls. Events reach the user through the
 * dispatcher only.
 *
 * Locks: hk_mu (session) -> mu -> zh_mu. pcreate may call back on the
 * calling thread, so it is started outside mu (run_queued()).
 *
 * Lifetime: every request in flight and queued retry holds a reference on
 * the group; the engine is closed (and its last delivery done) before the
 * group goes; zkc_group_free() drops the user's reference.
 */
#include "cache.h"
#include "internal.h"
#include "naming.h"
#include "payload.h"
#include "pcreate.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMBER_PREFIX "member_" /* ServerSet's node names (Finagle, Aurora) */
#define FREE_DRAIN_MS 2000      /* zkc_group_free(): wait for requests in flight */

/* A view's members are borrowed (see zkc__vlife in cache.h): a reference
 * per member per view made every change cost O(n) (taken on the new view,
 * dropped with the old one: two passes over every member, a cache miss
 * each). Members of the current view are held by their cache entries
 * (e->user) and move to the current view's record when they leave. */
struct zkc_group_view {
    int refs;
    int n;
    int dups;
    zkc_member **m; /* borrowed: kept alive by `life` and its chain */
    zkc__vlife *life;
};

struct zkc_group {
    int refs;
    zkc_session *s;
    char *path;
    zkc_group_opts o;
    pthread_mutex_t *mu; /* the cache engine's: it outlives us while deliveries are queued */
    pthread_cond_t cond;
    int closing;
    unsigned gen; /* session generation of our own node's requests */
    zkc__retry retry;

    /* the folder */
    zkc__cache *cache;
    zkc__smap ids;        /* member id -> number of delivered members with it */
    zkc_group_view *view; /* last delivered */
    int self_in_view;
    char *self_built; /* name of the member flagged SELF in that view */

    /* our own node */
    int joined;
    int create_queued;
    int creating;
    int setting;
    int deleting;
    int verifying;
    int need_verify;
    char *own_path; /* full path, NULL when we have no node in this session */
    unsigned own_gen;
    char *old_path; /* our node of a session that was LOST locally */
    char *payload;
    size_t payload_len;
    unsigned payload_ver; /* bumped by every update */
    unsigned own_ver;     /* payload version on the node */
    int last_err;

    /* requests alive (sent, or about to be), under rmu */
    pthread_mutex_t rmu;
    pthread_cond_t rcond;
    int live;
};

struct req {
    zkc__pending pend; /* completes it once, also when the handle closes */
    void (*dropped)(struct req *r);
    zkc_group *g;
    unsigned gen;
    unsigned ver;
    char *name; /* member name, or NULL */
};

static void hook(void *arg, zkc_conn_state st, unsigned gen);
static void req_done(struct req *r);
static void set_dropped(struct req *r);
static void delete_dropped(struct req *r);
static void resync(zkc_group *g);
static void run_queued(zkc_group *g);

/* ------------------------------------------------------------- helpers */

static zkc_group *group_ref(zkc_group *g)
{
    __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
    return g;
}

static void group_unref(zkc_group *g)
{
    int i;

    if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* The current view's members are the entries': a consumer may hold
     * that view past us. */
    for (i = 0; g->view && i < g->view->n; i++)
        zkc__vlife_keep(g->view->life, zkc__member_ref(g->view->m[i]));
    zkc__cache_unref(g->cache);
    zkc__smap_clear(&g->ids);
    zkc_group_view_free(g->view);
    free(g->self_built);
    free(g->own_path);
    free(g->old_path);
    free(g->payload);
    free(g->path);
    pthread_cond_destroy(&g->cond);
    pthread_cond_destroy(&g->rcond);
    pthread_mutex_destroy(&g->rmu);
    free(g);
}

static void group_ref_cb(void *arg)
{
    group_ref(arg);
}

static void group_unref_cb(void *arg)
{
    group_unref(arg);
}

static struct req *req_new(zkc_group *g, const char *name)
{
    struct req *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    if (name && !(r->name = strdup(name))) {
        free(r);
        return NULL;
    }
    r->g = group_ref(g);
    pthread_mutex_lock(&g->rmu);
    g->live++;
    pthread_mutex_unlock(&g->rmu);
    return r;
}

static void req_dropped(zkc__pending *pd)
{
    struct req *r = (struct req *)((char *)pd - offsetof(struct req, pend));

    r->dropped(r);
}

/* Handle locked, r->gen set: `r` is about to be sent; if the handle is
 * closed before its completion runs, dropped(r) stands in for it. */
static void req_sending(struct req *r, void (*dropped)(struct req *r))
{
    r->dropped = dropped;
    zkc__pending_add(r->g->s, &r->pend, r->gen, req_dropped);
}

static void req_unsent(struct req *r)
{
    zkc__pending_done(r->g->s, &r->pend);
    req_done(r);
}

static void req_done(struct req *r)
{
    zkc_group *g = r->g;

    free(r->name);
    free(r);
    pthread_mutex_lock(&g->rmu);
    if (--g->live == 0)
        pthread_cond_broadcast(&g->rcond);
    pthread_mutex_unlock(&g->rmu);
    group_unref(g);
}

/* Order of node names: sequence number (wrap-safe), then name; names
 * without a sequence (foreign nodes in the folder) last, by name. */
static int name_cmp(const char *a, const char *b)
{
    int32_t sa, sb;
    int oa = zkc__seq_parse(a, &sa) == 0, ob = zkc__seq_parse(b, &sb) == 0;
    int c;

    if (oa && ob) {
        c = zkc__seq_cmp(sa, sb);
        return c ? c : strcmp(a, b);
    }
    if (oa != ob)
        return oa ? -1 : 1;
    return strcmp(a, b);
}

static int name_qcmp(const void *a, const void *b)
{
    return name_cmp(*(char *const *)a, *(char *const *)b);
}

/* mu held: our own node's name, or NULL. */
static const char *own_name(zkc_group *g)
{
    return g->own_path ? zkc__path_base(g->own_path) : NULL;
}

/* mu held: our node has been read into the cache (it may not be delivered
 * yet). */
static int self_seen(zkc_group *g)
{
    const char *own = own_name(g);
    zkc__centry *e = own ? zkc__cache_find(g->cache, own) : NULL;

    return e && e->value;
}

/* ------------------------------------------------------------- views */

static void member_unref_cb(void *m)
{
    zkc__member_unref(m);
}

static zkc_group_view *view_alloc(int n)
{
    zkc_group_view *v = calloc(1, sizeof(*v));

    if (!v)
        return NULL;
    v->refs = 1;
    v->m = calloc((size_t)(n > 0 ? n : 1), sizeof(*v->m));
    v->life = zkc__vlife_new(member_unref_cb);
    if (!v->m || !v->life) {
        free(v->m);
        zkc__vlife_unref(v->life);
        free(v);
        return NULL;
    }
    return v;
}

/* A view of `bodies` (sorted, borrowed), for the one-shot read: duplicate
 * ids counted with a hash map, not by comparing every pair. */
static zkc_group_view *view_build(struct zkc__mbody **bodies, int n)
{
    zkc_group_view *v = view_alloc(n);
    zkc__smap ids;
    int i;

    if (!v)
        return NULL;
    zkc__smap_init(&ids);
    for (i = 0; i < n; i++)
        if (bodies[i]->id)
            zkc__smap_put(&ids, bodies[i]->id,
                          (void *)((intptr_t)zkc__smap_get(&ids, bodies[i]->id) + 1));
    for (i = 0; i < n; i++) {
        unsigned fl = 0;
        if (bodies[i]->id && (intptr_t)zkc__smap_get(&ids, bodies[i]->id) > 1)
            fl |= ZKC_MEMBER_DUPLICATE;
        v->m[v->n] = zkc__member_new(bodies[i], fl);
        if (!v->m[v->n]) {
            zkc__smap_clear(&ids);
            zkc_group_view_free(v);
            return NULL;
        }
        zkc__vlife_keep(v->life, v->m[v->n]); /* this view alone holds it */
        if (fl & ZKC_MEMBER_DUPLICATE)
            v->dups++;
        v->n++;
    }
    zkc__smap_clear(&ids);
    return v;
}

int zkc_group_view_count(const zkc_group_view *v)
{
    return v ? v->n : 0;
}

const zkc_member *zkc_group_view_at(const zkc_group_view *v, int i)
{
    return v && i >= 0 && i < v->n ? v->m[i] : NULL;
}

const zkc_member *zkc_group_view_find(const zkc_group_view *v, const char *id)
{
    int i;

    if (!v || !id)
        return NULL;
    for (i = 0; i < v->n; i++)
        if (v->m[i]->b->id && strcmp(v->m[i]->b->id, id) == 0)
            return v->m[i];
    return NULL;
}

int zkc_group_view_duplicates(const zkc_group_view *v)
{
    return v ? v->dups : 0;
}

void zkc_group_view_free(zkc_group_view *v)
{
    if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    zkc__vlife_unref(v->life);
    free(v->m);
    free(v);
}

static zkc_group_view *view_ref(zkc_group_view *v)
{
    __atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
    return v;
}

zkc_group_view *zkc_group_view_ref(const zkc_group_view *v)
{
    /* Views are immutable; only the count changes. */
    return v ? view_ref((zkc_group_view *)v) : NULL;
}

/* ------------------------------------------------------------ events */

struct batch {
    zkc_group *g;
    zkc_group_event *ev;
    int n;
    int cap;
    zkc_group_view *view;
};

static int batch_add(struct batch *b, zkc_group_event_type type, zkc_member *m, zkc_member *prev,
                     int rc)
{
    zkc_group_event *e;

    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 8;
        zkc_group_event *n = realloc(b->ev, sizeof(*n) * (size_t)cap);
        if (!n)
            return ZKC_ENOMEM;
        b->ev = n;
        b->cap = cap;
    }
    e = &b->ev[b->n++];
    memset(e, 0, sizeof(*e));
    e->type = type;
    e->member = m ? zkc__member_ref(m) : NULL;
    e->previous = prev ? zkc__member_ref(prev) : NULL;
    e->rc = rc;
    return 0;
}

static void batch_free(struct batch *b)
{
    int i;

    for (i = 0; i < b->n; i++) {
        zkc__member_unref((zkc_member *)b->ev[i].member);
        zkc__member_unref((zkc_member *)b->ev[i].previous);
    }
    free(b->ev);
    zkc_group_view_free(b->view);
    group_unref(b->g);
    free(b);
}

static struct batch *batch_new(zkc_group *g)
{
    struct batch *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    b->g = group_ref(g);
    b->view = view_ref(g->view);
    return b;
}

/* Dispatcher thread. */
static void deliver_batch(void *ctx, void *arg)
{
    struct batch *b = arg;
    zkc_group *g = ctx;
    int i, closing;

    for (i = 0; g->o.on_event && i < b->n; i++) {
        pthread_mutex_lock(g->mu);
        closing = g->closing;
        pthread_mutex_unlock(g->mu);
        if (closing)
            break;
        b->ev[i].view = b->view;
        g->o.on_event(g, &b->ev[i], g->o.user_data);
    }
    batch_free(b);
}

static void deliver_error(void *arg)
{
    struct batch *b = arg;

    deliver_batch(b->g, b);
}

/* mu held. */
static void report_error(zkc_group *g, int rc)
{
    struct batch *b;

    if (!g->o.on_event || !(b = batch_new(g)))
        return;
    batch_add(b, ZKC_GROUP_ERROR, NULL, NULL, rc);
    if (zkc__dispatch(g->s, deliver_error, b) != 0)
        batch_free(b);
}

/* Count `b`'s id up or down; an id whose count crosses from one to more
 * (or back) goes into `crossed`: its members' DUPLICATE flags change. */
static void id_count(zkc_group *g, const struct zkc__mbody *b, int d, zkc__smap *crossed)
{
    intptr_t was, n;

    if (!b || !b->id)
        return;
    was = (intptr_t)zkc__smap_get(&g->ids, b->id);
    n = was + d;
    if (n > 0)
        zkc__smap_put(&g->ids, b->id, (void *)n);
    else
        zkc__smap_del(&g->ids, b->id);
    if ((was > 1) != (n > 1))
        zkc__smap_put(crossed, b->id, (void *)1);
}

/* The wrappers the batch's children had (make_batch's prev[]): a changed
 * or touched child's entry took its own reference (or passed it on with
 * wrapper_replace()); the others left, and stay alive with `ov`. */
static void prev_release(zkc_group_view *ov, const zkc__change *ch, zkc_member **prev, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (ch[i].kind == ZKC__CH_CHANGED || ch[i].kind == ZKC__CH_TOUCHED)
            zkc__member_unref(prev[i]);
        else
            zkc__vlife_keep(ov->life, prev[i]);
    }
}

/* Position of node `name` in view `v` (in name_cmp order): the first one
 * whose name is not before it. */
static int view_lower(const zkc_group_view *v, const char *name)
{
    int lo = 0, hi = v->n;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (name_cmp(v->m[mid]->b->node, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The view flags of child `e`, with payload `body`, in the next view. */
static unsigned view_flags(zkc_group *g, const char *own, const zkc__centry *e,
                           const struct zkc__mbody *body)
{
    unsigned fl = 0;

    if (own && strcmp(e->name, own) == 0)
        fl |= ZKC_MEMBER_SELF;
    if (body->id && (intptr_t)zkc__smap_get(&g->ids, body->id) > 1)
        fl |= ZKC_MEMBER_DUPLICATE;
    return fl;
}

/* `old` (may be NULL) still fits a child with payload `body` and flags `fl`. */
static int wrapper_fits(const zkc_member *old, const struct zkc__mbody *body, unsigned fl)
{
    return old && old->b == body && (old->flags & ~body->flags) == fl;
}

/* A new wrapper `m` for child `e` replaces `old` (e->user, may be NULL),
 * which stays alive with view `ov` (and older views). */
static void wrapper_replace(zkc_group *g, zkc_group_view *ov, zkc__centry *e, zkc_member *m,
                            struct batch *dup)
{
    zkc_member *old = e->user;

    if ((m->flags & ZKC_MEMBER_DUPLICATE) && !(old && (old->flags & ZKC_MEMBER_DUPLICATE))) {
        zkc__log(g->s, ZKC_LOG_WARN,
                 "group %s: member id '%s' is claimed by more than one node (%s is one)%s", g->path,
                 m->b->id, m->b->node, (m->flags & ZKC_MEMBER_SELF) ? ": ours" : "");
        batch_add(dup, ZKC_GROUP_DUPLICATE, m, NULL, 0);
    }
    zkc__vlife_keep(ov->life, old);
    e->user = m;
}

/* The usual case (no duplicate id appeared or went, our own node did not
 * move): the next view is `ov` patched by the batch, in O(k log n) for k
 * changes plus one copy of the pointer array, touching no unchanged
 * member. 0 with *out set; 1 when `ov` and the entries do not line up (an
 * earlier batch ran out of memory: the caller builds the view in full);
 * ZKC_ENOMEM with nothing changed. */
static int view_patch(zkc_group *g, zkc_group_view *ov, const zkc__change *ch, int n,
                      zkc_member **prev, const char *own, struct batch *dup, zkc_group_view **out,
                      int *reshaped, int *self)
{
    int *dpos = malloc(sizeof(int) * (size_t)n), *ipos = malloc(sizeof(int) * (size_t)n);
    int *idx = malloc(sizeof(int) * (size_t)n);
    unsigned *fls = malloc(sizeof(unsigned) * (size_t)n);
    zkc_member **ins = calloc((size_t)n, sizeof(*ins));
    zkc_group_view *nv = NULL;
    int i, j, nd = 0, ni = 0, rc = ZKC_ENOMEM, dups = ov->dups, me = g->self_in_view;

    if (!dpos || !ipos || !idx || !fls || !ins)
        goto out;
    /* Where each change lands in `ov`, before changing anything. */
    rc = 1;
    for (i = 0; i < n; i++) {
        zkc__centry *e = ch[i].e;
        struct zkc__mbody *body = e->delivered;
        zkc_member *old = ch[i].kind == ZKC__CH_REMOVED ? prev[i] : e->user;
        int p;

        if (ch[i].kind != ZKC__CH_REMOVED) {
            if (!body)
                continue;
            fls[ni] = view_flags(g, own, e, body);
            if (wrapper_fits(old, body, fls[ni]))
                continue; /* the same wrapper: nothing moves */
        }
        p = view_lower(ov, e->name);
        if (old && (p >= ov->n || ov->m[p] != old))
            goto out; /* not where it should be */
        if (old)
            dpos[nd++] = p;
        if (ch[i].kind != ZKC__CH_REMOVED) {
            if (ni > 0 && p < ipos[ni - 1])
                goto out;
            ipos[ni] = p;
            idx[ni++] = i;
        }
    }
    rc = ZKC_ENOMEM;
    nv = view_alloc(ov->n + ni);
    if (!nv)
        goto out;
    for (j = 0; j < ni; j++)
        if (!(ins[j] = zkc__member_new(ch[idx[j]].e->delivered, fls[j])))
            goto out;
    rc = 0;
    for (j = 0; j < nd; j++) {
        if (ov->m[dpos[j]]->flags & ZKC_MEMBER_DUPLICATE)
            dups--;
        if (ov->m[dpos[j]]->flags & ZKC_MEMBER_SELF)
            me = 0;
    }
    nv->n = zkc__view_merge((void **)nv->m, (void *const *)ov->m, ov->n, dpos, nd, ipos,
                            (void *const *)ins, ni);
    for (j = 0; j < ni; j++) {
        if (ins[j]->flags & ZKC_MEMBER_DUPLICATE)
            dups++;
        if (ins[j]->flags & ZKC_MEMBER_SELF)
            me = 1;
        wrapper_replace(g, ov, ch[idx[j]].e, ins[j], dup);
        ins[j] = NULL; /* the entry's now */
    }
    nv->dups = dups;
    *self = me;
    *reshaped = nd > 0 || ni > 0;
    *out = nv;
    nv = NULL;
out:
    for (j = 0; ins && j < ni; j++)
        zkc__member_unref(ins[j]);
    zkc_group_view_free(nv);
    free(dpos);
    free(ipos);
    free(idx);
    free(fls);
    free(ins);
    return rc;
}

/* Dispatcher thread, mu held: one coalesced batch of the engine becomes
 * events and the next view. Events go in the documented order: LEFT,
 * JOINED, UPDATED, DUPLICATE, then one CHANGED. */
static void *make_batch(void *ctx, const zkc__change *ch, int n)
{
    zkc_group *g = ctx;
    zkc__centry *const *ents;
    zkc_member **prev = calloc((size_t)n, sizeof(*prev));
    zkc_group_view *nv = NULL, *ov = g->view;
    struct batch *b = batch_new(g), dup = {0};
    const char *own = own_name(g);
    zkc__smap crossed;
    int i, k, ne, reshaped = 0, self = 0, self_moved, rc = 1;

    if (!b || !prev) {
        if (b)
            batch_free(b);
        free(prev);
        zkc__log(g->s, ZKC_LOG_ERROR, "group %s: out of memory delivering a change", g->path);
        return NULL;
    }
    zkc__smap_init(&crossed);
    self_moved =
        (own != NULL) != (g->self_built != NULL) || (own && strcmp(own, g->self_built) != 0);
    for (i = 0; i < n; i++) {
        prev[i] = ch[i].e->user;
        ch[i].e->user = NULL;
        if (ch[i].kind == ZKC__CH_REMOVED || ch[i].kind == ZKC__CH_CHANGED)
            id_count(g, ch[i].old_value, -1, &crossed);
        if (ch[i].kind == ZKC__CH_ADDED || ch[i].kind == ZKC__CH_CHANGED)
            id_count(g, ch[i].new_value, +1, &crossed);
        if (ch[i].kind == ZKC__CH_REMOVED && prev[i])
            batch_add(b, ZKC_GROUP_LEFT, prev[i], NULL, 0);
        if (ch[i].kind == ZKC__CH_CHANGED || ch[i].kind == ZKC__CH_TOUCHED)
            ch[i].e->user = prev[i] ? zkc__member_ref(prev[i]) : NULL; /* reused if still fit */
    }

    if (!self_moved && !crossed.n)
        rc = view_patch(g, ov, ch, n, prev, own, &dup, &nv, &reshaped, &self);
    if (rc == ZKC_ENOMEM)
        goto oom;
    /* Otherwise one pass over the members, reusing wrappers that still fit:
     * the flags of members not in the batch may change. */
    if (rc != 0) {
        ents = zkc__cache_sorted(g->cache, &ne);
        nv = view_alloc(ne);
        if (!nv)
            goto oom;
        for (i = 0; i < ne; i++) {
            zkc__centry *e = ents[i];
            struct zkc__mbody *body = e->delivered;
            zkc_member *old = e->user;
            unsigned fl;

            if (!body)
                continue; /* not told yet */
            if (old && old->b == body && !self_moved &&
                !(crossed.n && body->id && zkc__smap_get(&crossed, body->id))) {
                fl = old->flags & ~body->flags; /* O(1), no lookup */
            } else {
                fl = view_flags(g, own, e, body);
                if (!wrapper_fits(old, body, fl)) {
                    zkc_member *m = zkc__member_new(body, fl);
                    if (!m) {
                        zkc_group_view_free(nv);
                        goto oom;
                    }
                    wrapper_replace(g, ov, e, m, &dup);
                    reshaped = 1;
                }
            }
            if (fl & ZKC_MEMBER_SELF)
                self = 1;
            nv->m[nv->n++] = e->user;
            if (fl & ZKC_MEMBER_DUPLICATE)
                nv->dups++;
        }
    }
    for (i = 0; i < n; i++) {
        zkc__centry *e = ch[i].e;
        if (ch[i].kind == ZKC__CH_ADDED && e->user)
            batch_add(b, ZKC_GROUP_JOINED, e->user, NULL, 0);
    }
    for (i = 0; i < n; i++) {
        zkc__centry *e = ch[i].e;
        if (ch[i].kind == ZKC__CH_CHANGED && e->user)
            batch_add(b, ZKC_GROUP_UPDATED, e->user, prev[i], 0);
    }
    for (k = 0; k < dup.n; k++)
        batch_add(b, ZKC_GROUP_DUPLICATE, (zkc_member *)dup.ev[k].member, NULL, 0);
    prev_release(ov, ch, prev, n);
    for (k = 0; k < dup.n; k++)
        zkc__member_unref((zkc_member *)dup.ev[k].member);
    free(dup.ev);
    free(prev);
    zkc__smap_clear(&crossed);
    g->self_in_view = self;
    if (self_moved) {
        free(g->self_built);
        g->self_built = own ? strdup(own) : NULL;
    }
    pthread_cond_broadcast(&g->cond);
    if (b->n == 0 && !reshaped && ov->n == nv->n) {
        zkc_group_view_free(nv);
        batch_free(b);
        return NULL;
    }
    zkc__vlife_chain(ov->life, nv->life);
    zkc_group_view_free(b->view);
    b->view = view_ref(nv);
    g->view = nv;
    zkc_group_view_free(ov);
    batch_add(b, ZKC_GROUP_CHANGED, NULL, NULL, 0);
    return b;

oom:
    zkc__smap_clear(&crossed);
    prev_release(ov, ch, prev, n);
    for (k = 0; k < dup.n; k++)
        zkc__member_unref((zkc_member *)dup.ev[k].member);
    free(dup.ev);
    free(prev);
    batch_free(b);
    zkc__log(g->s, ZKC_LOG_ERROR, "group %s: out of memory delivering a change", g->path);
    return NULL;
}

/* ------------------------------------------------- the engine's view of it */

static void *decode_member(void *ctx, const char *name, const char *data, int len,
                           const struct Stat *st)
{
    zkc_group *g = ctx;
    struct zkc__mbody *b;
    char why[200];

    b = zkc__payload_decode(name, data, len < 0 ? 0 : len, g->o.max_payload, why, sizeof(why));
    if (!b)
        return NULL;
    if (st) {
        b->owner = st->ephemeralOwner;
        b->czxid = st->czxid;
        b->mzxid = st->mzxid;
        b->ctime = st->ctime;
    } else {
        b->mzxid = -1; /* could not be read */
    }
    if (st && (b->flags & ZKC_MEMBER_MALFORMED))
        zkc__log(g->s, ZKC_LOG_WARN,
                 "group %s: member %s has a malformed payload (%s); shown with what could be read",
                 g->path, name, why);
    return b;
}

static void body_ref(void *v)
{
    zkc__mbody_ref(v);
}

static void body_unref(void *v)
{
    zkc__mbody_unref(v);
}

static int64_t body_mzxid(void *v)
{
    return ((struct zkc__mbody *)v)->mzxid;
}

static void own_node_gone(zkc_group *g, const char *why);

/* mu held: a member left the cache (listing or a read found it gone). Its
 * wrapper goes with its LEFT event; a member never told has none. */
static void member_gone(void *ctx, zkc__centry *e)
{
    zkc_group *g = ctx;
    const char *own = own_name(g);

    /* A listing only proves our node is gone once the node had been read
     * (a listing sent before our create finished may not have it yet, and
     * is followed by another: the create fired our own child watch). */
    if (own && strcmp(own, e->name) == 0 && e->value)
        own_node_gone(g, "left the folder");
    if (!e->delivered && e->user) {
        zkc__member_unref(e->user);
        e->user = NULL;
    }
}

static void member_arrived(void *ctx, zkc__centry *e)
{
    zkc_group *g = ctx;

    (void)e;
    pthread_cond_broadcast(&g->cond); /* zkc_group_wait_joined() from the dispatcher */
}

static void member_forget(void *user)
{
    zkc__member_unref(user);
}

static const zkc__cache_ops group_cache_ops = {
    .forget = member_forget,
    .cmp = name_cmp,
    .decode = decode_member,
    .ref = body_ref,
    .unref = body_unref,
    .mzxid = body_mzxid,
    .batch = make_batch,
    .deliver = deliver_batch,
    .gone = member_gone,
    .arrived = member_arrived,
};

/* --------------------------------------------------------- retrying */

/* Manager thread, once connected again after a connection loss. */
static void retry(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_group *g = arg;

    pthread_mutex_lock(g->mu);
    zkc__retry_fired(&g->retry);
    /* LOST: the CONNECTED hook of the next session redoes everything. */
    if (!g->closing && st != ZKC_CONN_NONE && st != ZKC_CONN_LOST && gen == g->gen)
        resync(g);
    pthread_mutex_unlock(g->mu);
    run_queued(g);
    group_unref(g);
}

/* mu held: something failed with connection loss; try again once connected. */
static void arm_retry(zkc_group *g)
{
    if (!g->closing)
        zkc__retry_arm(&g->retry, g->s, retry, g, group_ref_cb, group_unref_cb);
}

static int is_connloss(int zrc)
{
    return zkc__zk_connloss(zrc);
}

/* mu held. The handle to send on, locked, or NULL when there is none for
 * our generation (a retry or the CONNECTED hook will send later). */
static zhandle_t *lock_zh(zkc_group *g)
{
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(g->s, &gen);

    if (!zh) {
        arm_retry(g);
        return NULL;
    }
    if (gen != g->gen) {
        zkc__zh_unlock(g->s);
        return NULL; /* a newer session: its CONNECTED hook resyncs */
    }
    return zh;
}

/* mu held. Our node vanished while we are still in: make it again. */
static void own_node_gone(zkc_group *g, const char *why)
{
    if (!g->own_path)
        return;
    if (g->joined && !g->deleting)
        zkc__log(g->s, ZKC_LOG_WARN, "group %s: our node %s %s; creating it again", g->path,
                 zkc__path_base(g->own_path), why);
    free(g->own_path);
    g->own_path = NULL;
    g->self_in_view = 0;
    if (g->joined) {
        g->create_queued = 1;
        /* Called from the engine's completions, which do not start our
         * create (outside mu): the retry slot does, on the manager thread. */
        arm_retry(g);
    }
    pthread_cond_broadcast(&g->cond);
}

/* ------------------------------------------------------- our own node */

static void issue_set(zkc_group *g);
static void issue_delete(zkc_group *g);

static void created(void *arg, int rc, const char *path, const struct Stat *st)
{
    struct req *r = arg;
    zkc_group *g = r->g;

    pthread_mutex_lock(g->mu);
    g->creating = 0;
    if (rc == 0 && r->gen != zkc_session_generation(g->s)) {
        rc = ZKC_ESESSIONLOST; /* it died with that session */
    }
    if (rc == 0) {
        free(g->own_path);
        g->own_path = strdup(path);
        g->own_gen = r->gen;
        g->own_ver = r->ver;
        g->last_err = 0;
        if (!g->own_path) {
            zkc__log(g->s, ZKC_LOG_ERROR, "group %s: out of memory", g->path);
        } else if (g->closing || !g->joined) {
            issue_delete(g); /* left while the create was in flight */
        } else {
            zkc__centry *e = zkc__cache_find(g->cache, zkc__path_base(path));

            zkc__log(g->s, ZKC_LOG_INFO, "group %s: joined as %s (session 0x%llx)", g->path,
                     zkc__path_base(path), (unsigned long long)st->ephemeralOwner);
            if (g->own_ver != g->payload_ver)
                issue_set(g);
            /* Our node may be in the view already (its listing came
             * first): deliver it again to mark it ours. */
            if (e)
                zkc__cache_touch(g->cache, e);
        }
    } else if (rc == ZKC_ESESSIONLOST) {
        if (g->joined && !g->closing)
            g->create_queued = 1; /* with the new session */
    } else if (rc == ZKC_ECONNLOSS) {
        /* Sent on a handle that was dying (its session expiring): resync
         * creates again once connected. */
        arm_retry(g);
    } else if (rc != ZKC_ECLOSED) {
        g->last_err = rc;
        zkc__log(g->s, ZKC_LOG_ERROR, "group %s: cannot create our member node: %s", g->path,
                 zkc_strerror(rc));
        if (!g->closing)
            report_error(g, rc);
    }
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(g->mu);
    run_queued(g);
    req_done(r);
}

/* Not under mu: start the create that was queued under it. */
static void run_queued(zkc_group *g)
{
    char guid[ZKC_GUID_LEN + 1];
    char prefix[sizeof(MEMBER_PREFIX) + ZKC_GUID_LEN + 1];
    char *data = NULL;
    size_t len = 0;
    struct req *r = NULL;
    int rc;

    pthread_mutex_lock(g->mu);
    if (!g->create_queued || g->creating || g->own_path || !g->joined || g->closing) {
        g->create_queued = 0;
        pthread_mutex_unlock(g->mu);
        return;
    }
    g->create_queued = 0;
    rc = zkc__guid(guid);
    if (rc == 0 && (r = req_new(g, NULL)) && (data = malloc(g->payload_len + 1))) {
        memcpy(data, g->payload, g->payload_len);
        len = g->payload_len;
        r->ver = g->payload_ver;
        r->gen = zkc_session_generation(g->s);
        g->creating = 1;
    } else {
        g->last_err = rc ? rc : ZKC_ENOMEM;
        if (r)
            req_done(r);
        r = NULL;
        pthread_cond_broadcast(&g->cond);
    }
    pthread_mutex_unlock(g->mu);
    if (!r)
        return;
    /* "member_<guid>_<seq>": ServerSet's name, with the guid that lets
     * pcreate find the node again after a lost reply. */
    snprintf(prefix, sizeof(prefix), MEMBER_PREFIX "%s_", guid);
    zkc__pcreate_named(g->s, g->path, prefix, data, (int)len, ZOO_EPHEMERAL_SEQUENTIAL, created, r);
    free(data);
}

static void set_done(int zrc, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_group *g = r->g;

    (void)st;
    zkc__pending_done(g->s, &r->pend);
    pthread_mutex_lock(g->mu);
    g->setting = 0;
    if (g->closing || r->gen != g->gen || !g->own_path || strcmp(g->own_path, r->name) != 0)
        goto out;
    if (zrc == ZOK) {
        g->own_ver = r->ver;
        if (g->own_ver != g->payload_ver)
            issue_set(g);
    } else if (zrc == ZNONODE) {
        own_node_gone(g, "was deleted");
    } else if (is_connloss(zrc)) {
        arm_retry(g);
    } else if (zrc != ZCLOSING && !zkc__zk_expired(zrc)) {
        g->last_err = zkc__err_from_zk(zrc);
        zkc__log(g->s, ZKC_LOG_ERROR, "group %s: cannot update our node: %s", g->path, zerror(zrc));
        report_error(g, g->last_err);
    }
out:
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(g->mu);
    run_queued(g);
    req_done(r);
}

/* mu held. */
static void issue_set(zkc_group *g)
{
    struct req *r;
    zhandle_t *zh;

    if (g->setting || !g->own_path || g->closing || !(r = req_new(g, g->own_path)))
        return;
    zh = lock_zh(g);
    if (!zh) {
        req_done(r);
        return;
    }
    r->gen = g->gen;
    r->ver = g->payload_ver;
    req_sending(r, set_dropped);
    if (zoo_aset(zh, g->own_path, g->payload, (int)g->payload_len, -1, set_done, r) != ZOK) {
        zkc__zh_unlock(g->s);
        arm_retry(g);
        req_unsent(r);
        return;
    }
    zkc__zh_unlock(g->s);
    g->setting = 1;
}

static void delete_done(int zrc, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_group *g = r->g;

    zkc__pending_done(g->s, &r->pend);
    pthread_mutex_lock(g->mu);
    g->deleting = 0;
    if (r->gen == g->gen && g->own_path && strcmp(g->own_path, r->name) == 0) {
        if (zrc == ZOK || zrc == ZNONODE) {
            free(g->own_path);
            g->own_path = NULL;
            g->self_in_view = 0;
            if (g->joined && !g->closing)
                g->create_queued = 1; /* joined again meanwhile */
        } else if (is_connloss(zrc) && !g->closing) {
            arm_retry(g);
        } else if (zrc != ZCLOSING && !zkc__zk_expired(zrc)) {
            zkc__log(g->s, ZKC_LOG_ERROR, "group %s: cannot delete our node %s: %s", g->path,
                     r->name, zerror(zrc));
            free(g->own_path); /* it goes with the session; nothing more to do */
            g->own_path = NULL;
        }
    }
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(g->mu);
    run_queued(g);
    req_done(r);
}

/* mu held. Also while closing: free leaves this way. */
static void issue_delete(zkc_group *g)
{
    struct req *r;
    unsigned gen;
    zhandle_t *zh;

    if (g->deleting || !g->own_path || !(r = req_new(g, g->own_path)))
        return;
    zh = zkc__zh_lock(g->s, &gen);
    if (!zh || gen != g->gen) {
        if (zh)
            zkc__zh_unlock(g->s);
        else
            arm_retry(g);
        req_done(r);
        return;
    }
    r->gen = g->gen;
    req_sending(r, delete_dropped);
    if (zoo_adelete(zh, g->own_path, -1, delete_done, r) != ZOK) {
        zkc__zh_unlock(g->s);
        arm_retry(g);
        req_unsent(r);
        return;
    }
    zkc__zh_unlock(g->s);
    g->deleting = 1;
}

static void old_deleted(int zrc, const void *data)
{
    struct req *r = (struct req *)data;

    (void)zrc;
    zkc__pending_done(r->g->s, &r->pend);
    req_done(r);
}

/* Stand-ins for completions the client dropped at a handle close. */
static void set_dropped(struct req *r)
{
    set_done(ZCLOSING, NULL, r);
}

static void delete_dropped(struct req *r)
{
    delete_done(ZCLOSING, r);
}

static void old_dropped(struct req *r)
{
    old_deleted(ZCLOSING, r);
}

/* mu held. After a local LOST the server may keep our old session (and its
 * node) alive until it times out, so peers would see us twice. The name
 * carries our guid, so the node is ours: delete it from the new session. */
static void delete_old(zkc_group *g)
{
    struct req *r;
    zhandle_t *zh;

    if (!g->old_path)
        return;
    r = req_new(g, NULL);
    zh = r ? lock_zh(g) : NULL;
    if (zh) {
        r->gen = g->gen;
        req_sending(r, old_dropped);
        if (zoo_adelete(zh, g->old_path, -1, old_deleted, r) == ZOK)
            r = NULL;
        else
            zkc__pending_done(g->s, &r->pend);
        zkc__zh_unlock(g->s);
    }
    if (r)
        req_done(r);
    free(g->old_path);
    g->old_path = NULL;
}

static void verified(int zrc, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_group *g = r->g;
    int64_t sid;

    zkc__pending_done(g->s, &r->pend);
    pthread_mutex_lock(g->mu);
    g->verifying = 0;
    if (g->closing || r->gen != g->gen || !g->own_path || strcmp(g->own_path, r->name) != 0)
        goto out;
    sid = zkc_session_id(g->s);
    if (zrc == ZOK && st->ephemeralOwner == sid) {
        if (g->own_ver != g->payload_ver)
            issue_set(g);
    } else if (zrc == ZOK) {
        /* The name carries our guid, yet another session owns it: never
         * adopt it (it dies with that session); delete it and make ours. */
        zkc__log(g->s, ZKC_LOG_WARN, "group %s: %s is owned by session 0x%llx, not ours", g->path,
                 zkc__path_base(g->own_path), (unsigned long long)st->ephemeralOwner);
        issue_delete(g);
        g->deleting = 0; /* its completion finds own_path cleared: fine */
        own_node_gone(g, "belongs to another session");
    } else if (zrc == ZNONODE) {
        own_node_gone(g, "is gone after the reconnect");
    } else if (is_connloss(zrc)) {
        g->need_verify = 1;
        arm_retry(g);
    }
out:
    pthread_mutex_unlock(g->mu);
    run_queued(g);
    req_done(r);
}

static void verify_dropped(struct req *r)
{
    verified(ZCLOSING, NULL, r);
}

/* mu held. */
static void verify_own(zkc_group *g)
{
    struct req *r;
    zhandle_t *zh;

    g->need_verify = 0;
    if (g->verifying || !g->own_path || !(r = req_new(g, g->own_path)))
        return;
    zh = lock_zh(g);
    if (!zh) {
        g->need_verify = 1;
        req_done(r);
        return;
    }
    r->gen = g->gen;
    req_sending(r, verify_dropped);
    if (zoo_aexists(zh, g->own_path, 0, verified, r) != ZOK) {
        zkc__zh_unlock(g->s);
        g->need_verify = 1;
        arm_retry(g);
        req_unsent(r);
        return;
    }
    zkc__zh_unlock(g->s);
    g->verifying = 1;
}

/* mu held: send again whatever failed with connection loss. Idempotent.
 * (The folder's reads are the engine's: it retries its own.) */
static void resync(zkc_group *g)
{
    if (g->need_verify)
        verify_own(g);
    if (g->own_path && g->joined && g->own_ver != g->payload_ver)
        issue_set(g);
    if (g->own_path && !g->joined)
        issue_delete(g);
    if (g->joined && !g->own_path && !g->creating)
        g->create_queued = 1;
}

/* Manager thread. */
static void hook(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_group *g = arg;

    pthread_mutex_lock(g->mu);
    if (g->closing) {
        pthread_mutex_unlock(g->mu);
        return;
    }
    switch (st) {
    case ZKC_CONN_CONNECTED:
        if (gen == g->gen)
            break; /* the first session, which our first requests wait for */
        /* A new session: our node went with the old one (the engine lists
         * and reads the folder again by itself). */
        g->gen = gen;
        g->setting = 0;
        g->deleting = 0;
        g->verifying = 0;
        g->need_verify = 0;
        g->self_in_view = 0;
        free(g->own_path);
        g->own_path = NULL;
        delete_old(g);
        if (g->joined && !g->creating)
            g->create_queued = 1;
        pthread_cond_broadcast(&g->cond);
        break;
    case ZKC_CONN_RECONNECTED:
        /* The same session: the client re-registered our watches. Our node
         * may still have gone (deleted by someone, or the session moved and
         * back): check it is there and ours. */
        if (gen == g->gen) {
            g->need_verify = 1;
            resync(g);
        }
        break;
    case ZKC_CONN_LOST:
        if (g->own_path) {
            free(g->old_path);
            g->old_path = g->own_path;
            g->own_path = NULL;
            g->self_in_view = 0;
        }
        pthread_cond_broadcast(&g->cond);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(g->mu);
    run_queued(g);
}

void zkc__group_counts(zkc_group *g, int *present, int *dirty, int *queued, int *busy)
{
    pthread_mutex_lock(g->mu);
    zkc__cache_counts(g->cache, present, dirty, queued, busy);
    pthread_mutex_unlock(g->mu);
}

unsigned zkc__group_listed(zkc_group *g)
{
    unsigned n;

    pthread_mutex_lock(g->mu);
    n = zkc__cache_listed(g->cache);
    pthread_mutex_unlock(g->mu);
    return n;
}

/* ---------------------------------------------------------- public API */

void zkc_group_opts_init(zkc_group_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_payload = ZKC_PAYLOAD_DEFAULT_MAX;
}

int zkc_group_new(zkc_group **out, zkc_session *s, const char *path, const zkc_group_opts *o)
{
    zkc__cache_cfg cfg = {.fetch_data = 1, .watch_data = 1};
    zkc_group *g;
    int rc = ZKC_ENOMEM;

    if (!out || !s || !path || zkc__path_check(path) != 0 || strcmp(path, "/") == 0)
        return ZKC_EINVAL;
    g = calloc(1, sizeof(*g));
    if (!g)
        return ZKC_ENOMEM;
    g->refs = 1;
    g->s = s;
    if (o)
        g->o = *o;
    else
        zkc_group_opts_init(&g->o);
    if (!g->o.max_payload)
        g->o.max_payload = ZKC_PAYLOAD_DEFAULT_MAX;
    zkc__smap_init(&g->ids);
    /* The engine owns the mutex we use (see cache.h). */
    rc = zkc__cache_new(&g->cache, s, path, &group_cache_ops, g, &cfg);
    if (rc) {
        free(g);
        return rc;
    }
    g->mu = zkc__cache_mutex(g->cache);
    rc = ZKC_ENOMEM;
    pthread_mutex_init(&g->rmu, NULL);
    if (zkc__cond_init(&g->cond) != 0) {
        rc = ZKC_ESYS;
        goto fail_cond;
    }
    if (zkc__cond_init(&g->rcond) != 0) {
        rc = ZKC_ESYS;
        goto fail_rcond;
    }
    g->path = strdup(path);
    g->view = view_alloc(0);
    if (!g->path || !g->view)
        goto fail_alloc;
    g->gen = zkc_session_generation(s);
    rc = zkc__add_hook(s, hook, g);
    if (rc)
        goto fail_alloc;
    /* Not under g->mu: it adds the cache's hook (hk_mu comes before mu). */
    zkc__cache_start(g->cache);
    zkc__session_attach(s);
    *out = g;
    return 0;

fail_alloc:
    zkc_group_view_free(g->view);
    free(g->path);
    pthread_cond_destroy(&g->rcond);
fail_rcond:
    pthread_cond_destroy(&g->cond);
fail_cond:
    pthread_mutex_destroy(&g->rmu);
    zkc__cache_unref(g->cache);
    free(g);
    return rc;
}

static int encode(zkc_group *g, const zkc_member_info *info, char **data, size_t *len)
{
    char why[200];
    int rc = zkc__payload_encode(info, g->o.max_payload, data, len, why, sizeof(why));

    if (rc == ZKC_EINVAL)
        zkc__log(g->s, ZKC_LOG_ERROR, "group %s: bad member info: %s", g->path, why);
    return rc;
}

int zkc_group_join(zkc_group *g, const zkc_member_info *info)
{
    char *data;
    size_t len;
    int rc;

    if (!g || !info)
        return ZKC_EINVAL;
    rc = encode(g, info, &data, &len);
    if (rc)
        return rc;
    pthread_mutex_lock(g->mu);
    if (g->closing) {
        rc = ZKC_ECLOSED;
    } else if (g->joined) {
        rc = ZKC_EBUSY;
    } else {
        free(g->payload);
        g->payload = data;
        g->payload_len = len;
        data = NULL;
        g->payload_ver++;
        g->joined = 1;
        g->last_err = 0;
        if (g->own_path && !g->deleting)
            issue_set(g); /* left but the delete never went out: keep it */
        else if (!g->own_path)
            g->create_queued = 1;
    }
    pthread_mutex_unlock(g->mu);
    free(data);
    run_queued(g);
    return rc;
}

/* mu held. Wait on the group's condition until `done` says so, or the
 * deadline; 0 or ZKC_ETIMEDOUT. */
static int wait_until(zkc_group *g, int (*done)(zkc_group *g, void *arg, int *rc), void *arg,
                      int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    if (timeout_ms >= 0)
        zkc__deadline(&ts, timeout_ms);
    while (!done(g, arg, &rc)) {
        if (timeout_ms == 0)
            return ZKC_ETIMEDOUT;
        if (timeout_ms < 0)
            pthread_cond_wait(&g->cond, g->mu);
        else if (pthread_cond_timedwait(&g->cond, g->mu, &ts) == ETIMEDOUT)
            return done(g, arg, &rc) ? rc : ZKC_ETIMEDOUT;
    }
    return rc;
}

static int joined_done(zkc_group *g, void *arg, int *rc)
{
    (void)arg;
    if (g->closing) {
        *rc = ZKC_ECLOSED;
        return 1;
    }
    if (!g->joined) {
        *rc = ZKC_ENOTHELD;
        return 1;
    }
    /* On the dispatcher the delivery cannot come while we wait here: our
     * node read into the cache is enough. */
    if (g->own_path && (g->self_in_view || (zkc__on_dispatcher(g->s) && self_seen(g)))) {
        *rc = 0;
        return 1;
    }
    if (g->last_err && !g->creating && !g->create_queued) {
        *rc = g->last_err;
        return 1;
    }
    return 0;
}

int zkc_group_wait_joined(zkc_group *g, int timeout_ms)
{
    int rc;

    if (!g)
        return ZKC_EINVAL;
    pthread_mutex_lock(g->mu);
    rc = wait_until(g, joined_done, NULL, timeout_ms);
    pthread_mutex_unlock(g->mu);
    return rc;
}

static int updated_done(zkc_group *g, void *arg, int *rc)
{
    unsigned ver = *(unsigned *)arg;

    if (g->closing) {
        *rc = ZKC_ECLOSED;
        return 1;
    }
    if (!g->joined) {
        *rc = ZKC_ENOTHELD;
        return 1;
    }
    /* Versions only grow; a later update acknowledged covers ours. */
    if (g->own_path && (int)(g->own_ver - ver) >= 0) {
        *rc = 0;
        return 1;
    }
    return 0;
}

int zkc_group_update(zkc_group *g, const zkc_member_info *info, int timeout_ms)
{
    char *data;
    size_t len;
    unsigned ver;
    int rc;

    if (!g || !info)
        return ZKC_EINVAL;
    rc = encode(g, info, &data, &len);
    if (rc)
        return rc;
    pthread_mutex_lock(g->mu);
    if (g->closing) {
        rc = ZKC_ECLOSED;
    } else if (!g->joined) {
        rc = ZKC_ENOTHELD;
    } else {
        free(g->payload);
        g->payload = data;
        g->payload_len = len;
        data = NULL;
        ver = ++g->payload_ver;
        issue_set(g); /* or, while a set or create is in flight, its completion will */
        rc = timeout_ms == 0 ? 0 : wait_until(g, updated_done, &ver, timeout_ms);
    }
    pthread_mutex_unlock(g->mu);
    free(data);
    return rc;
}

static int left_done(zkc_group *g, void *arg, int *rc)
{
    (void)arg;
    *rc = 0;
    return g->joined || (!g->own_path && !g->creating);
}

int zkc_group_leave(zkc_group *g, int timeout_ms)
{
    int rc = 0;

    if (!g)
        return ZKC_EINVAL;
    pthread_mutex_lock(g->mu);
    if (g->closing) {
        rc = ZKC_ECLOSED;
    } else if (!g->joined) {
        rc = ZKC_ENOTHELD;
    } else {
        g->joined = 0;
        g->create_queued = 0;
        issue_delete(g);
        if (timeout_ms != 0)
            rc = wait_until(g, left_done, NULL, timeout_ms);
    }
    pthread_mutex_unlock(g->mu);
    return rc;
}

int zkc_group_view_get(zkc_group *g, zkc_group_view **out)
{
    if (!g || !out)
        return ZKC_EINVAL;
    pthread_mutex_lock(g->mu);
    *out = view_ref(g->view);
    pthread_mutex_unlock(g->mu);
    return 0;
}

void zkc_group_free(zkc_group *g)
{
    struct timespec ts;

    if (!g)
        return;
    pthread_mutex_lock(g->mu);
    g->closing = 1;
    g->joined = 0;
    g->create_queued = 0;
    issue_delete(g); /* a create in flight deletes its node when it lands */
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(g->mu);

    /* Neither call may run under mu: both wait for our functions. */
    zkc__remove_hook(g->s, hook, g);
    zkc__cache_close(g->cache);

    /* The ZooKeeper C client drops the completions still pending when a
     * handle is closed (ZOOKEEPER-2894, ZOOKEEPER-3868), which would leak
     * this group if the session closed right after. Let what is in flight
     * (our delete, reads of a recent change) come back first: while
     * connected that is a round trip; while disconnected the client fails
     * them at its next connect attempt. Bounded, best effort. */
    zkc__deadline(&ts, FREE_DRAIN_MS);
    pthread_mutex_lock(&g->rmu);
    while (g->live > 0 && pthread_cond_timedwait(&g->rcond, &g->rmu, &ts) != ETIMEDOUT)
        ;
    if (g->live > 0)
        zkc__log(g->s, ZKC_LOG_DEBUG, "group %s: freed with %d requests still in flight", g->path,
                 g->live);
    pthread_mutex_unlock(&g->rmu);

    /* A batch may be delivering right now on the dispatcher: once a
     * barrier queued behind it has run, none is (later ones see closing). */
    zkc__dispatch_barrier(g->s);
    zkc__session_detach(g->s);
    group_unref(g);
}

/* -------------------------------------------------------- one-shot read */

int zkc_group_read(zkc_session *s, const char *path, size_t max_payload, zkc_group_view **out,
                   int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : zkc__now_ms() + timeout_ms;
    zkc__call *list, **gets = NULL;
    struct zkc__mbody **bodies = NULL;
    zkc_group_view *v;
    zhandle_t *zh;
    unsigned gen;
    char **names = NULL;
    int rc, i, n = 0, nb = 0, sent = 0;

    if (!s || !path || !out || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    if (!max_payload)
        max_payload = ZKC_PAYLOAD_DEFAULT_MAX;
    rc = zkc_session_wait_connected(s, timeout_ms);
    if (rc)
        return rc;
    if (!(list = zkc__call_new()))
        return ZKC_ENOMEM;
    zh = zkc__zh_lock(s, &gen);
    rc = !zh ? ZCONNECTIONLOSS : zkc__read_send(s, zh, gen, ZKC__READ_CHILDREN, path, list);
    if (zh)
        zkc__zh_unlock(s);
    if (rc != ZOK) {
        zkc__call_unref(list);
        return zkc__err_from_zk(rc);
    }
    rc = zkc__call_wait(list, zkc__remaining(deadline));
    if (rc == 0 && list->rc == ZNONODE) {
        n = 0;
    } else if (rc == 0 && list->rc != ZOK) {
        rc = list->rc == ZSYSTEMERROR ? ZKC_ENOMEM : zkc__err_from_zk(list->rc);
    } else if (rc == 0) {
        n = list->children.count;
        names = list->children.data;
    }
    if (rc)
        goto out;
    if (n > 0) {
        qsort(names, (size_t)n, sizeof(*names), name_qcmp);
        gets = calloc((size_t)n, sizeof(*gets));
        bodies = calloc((size_t)n, sizeof(*bodies));
        if (!gets || !bodies) {
            rc = ZKC_ENOMEM;
            goto out;
        }
    }
    /* Every get goes out back to back: one round trip for any number. */
    zh = n > 0 ? zkc__zh_lock(s, &gen) : NULL;
    if (n > 0 && !zh)
        rc = ZKC_ECONNLOSS;
    for (i = 0; zh && i < n && !rc; i++) {
        char *p = zkc__path_join(path, names[i]);
        if (!p || !(gets[i] = zkc__call_new())) {
            free(p);
            rc = ZKC_ENOMEM;
            break;
        }
        if (zkc__read_send(s, zh, gen, ZKC__READ_DATA, p, gets[i]) != ZOK)
            rc = ZKC_ECONNLOSS;
        free(p);
        sent++;
    }
    if (zh)
        zkc__zh_unlock(s);
    for (i = 0; i < sent && !rc; i++) {
        struct zkc__got *d;
        rc = zkc__call_wait(gets[i], zkc__remaining(deadline));
        if (rc)
            break;
        if (gets[i]->rc == ZNONODE)
            continue; /* gone since the listing */
        if (gets[i]->rc != ZOK) {
            rc = gets[i]->rc == ZSYSTEMERROR ? ZKC_ENOMEM : zkc__err_from_zk(gets[i]->rc);
            break;
        }
        d = gets[i]->extra;
        bodies[nb] = zkc__payload_decode(names[i], d->data, d->len, max_payload, NULL, 0);
        if (!bodies[nb]) {
            rc = ZKC_ENOMEM;
            break;
        }
        bodies[nb]->owner = gets[i]->stat.ephemeralOwner;
        bodies[nb]->czxid = gets[i]->stat.czxid;
        bodies[nb]->mzxid = gets[i]->stat.mzxid;
        bodies[nb]->ctime = gets[i]->stat.ctime;
        nb++;
    }
    if (!rc) {
        v = view_build(bodies, nb);
        if (v)
            *out = v;
        else
            rc = ZKC_ENOMEM;
    }
out:
    for (i = 0; i < n && gets; i++)
        if (gets[i])
            zkc__call_unref(gets[i]);
    for (i = 0; i < nb; i++)
        zkc__mbody_unref(bodies[i]);
    free(gets);
    free(bodies);
    zkc__call_unref(list);
    return rc;
}
