/*
 * Group membership: see include/zkcoord/group.h.
 *
 * Two state machines share one mutex (mu):
 *
 *  - The cache of the folder. One getChildren (with a child watch) per
 *    change; names not seen before get one get (with a data watch, for
 *    updates); names that went away are dropped without a read. This is
 *    what Curator's PathChildrenCache should cost but did not always
 *    (CURATOR-127: it re-read every child on each change; CURATOR-304: a
 *    child deleted between getChildren and getData logged errors instead of
 *    just vanishing). A data watch re-reads that one member only.
 *    Changes are published as one batch of diff events whenever no read is
 *    in flight, so one burst of changes costs one CHANGED event.
 *
 *  - Our own node (when joined), kept in line with what the user asked:
 *    created through zkc__pcreate_named() (adopt-or-clean after a lost
 *    reply, as Curator's protected mode: CURATOR-45), re-created with the new
 *    session after LOST (the behaviour of Curator's PersistentNode, which
 *    ServiceDiscovery uses for the same job), checked after RECONNECTED
 *    (exists: our node may have expired on the server while we were away,
 *    ZOOKEEPER-1159-style partitions, or been deleted by an operator), and
 *    re-created when it vanishes from the folder while we are still in.
 *
 * Threads: completions and node watches run on the ZooKeeper completion
 * thread, state hooks and retries on the session manager thread, user calls
 * anywhere; none of them blocks except the documented waits of user calls.
 * Events reach the user through zkc__dispatch() only.
 *
 * Locks: sub_mu (session) -> mu -> zh_mu; wmu -> sub_mu. The watch function
 * takes mu, so subscriptions are added and removed under wmu only, never
 * under mu. pcreate may call back on the calling thread, so it is started
 * outside mu (run_queued()).
 *
 * Lifetime: every request in flight, queued retry and dispatched batch holds
 * a reference on the group; zkc_group_free() drops the user's.
 */
#include "internal.h"
#include "naming.h"
#include "payload.h"
#include "pcreate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMBER_PREFIX "member_" /* ServerSet's node names (Finagle, Aurora) */
#define FREE_DRAIN_MS 2000      /* zkc_group_free(): wait for requests in flight */

struct entry {
    char *name;
    struct zkc__mbody *body; /* NULL until read */
    int reading;             /* a get or exists is in flight */
    int stale;               /* read again once the read in flight is back */
};

struct zkc_group_view {
    int refs;
    int n;
    int dups;
    zkc_member **m;
};

struct zkc_group {
    int refs;
    zkc_session *s;
    char *path;
    zkc_group_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int closing;
    unsigned gen; /* session generation our reads and watches belong to */

    /* the folder */
    int listing;     /* getChildren in flight */
    int relist;      /* list again when it is back */
    int need_list;   /* a listing failed with connection loss */
    int retry_armed; /* a zkc__when_connected() is queued */
    struct entry **ents;
    int n_ents;
    zkc_group_view *view; /* last published */
    int self_in_view;

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

    /* node-watch subscriptions (member paths), under wmu */
    pthread_mutex_t wmu;
    int wclosed;
    char **subs;
    int n_subs;
    int cap_subs;
};

struct req {
    zkc_group *g;
    unsigned gen;
    unsigned ver;
    char *name; /* member name, or NULL */
};

static void hook(void *arg, zkc_conn_state st, unsigned gen);
static void on_node_event(void *arg, int type, const char *path);
static void start_list(zkc_group *g);
static void maybe_publish(zkc_group *g);

/* ------------------------------------------------------------- helpers */

static zkc_group *group_ref(zkc_group *g)
{
    __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
    return g;
}

static void entry_free(struct entry *e)
{
    if (!e)
        return;
    zkc__mbody_unref(e->body);
    free(e->name);
    free(e);
}

static void group_unref(zkc_group *g)
{
    int i;

    if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (i = 0; i < g->n_ents; i++)
        entry_free(g->ents[i]);
    free(g->ents);
    zkc_group_view_free(g->view);
    for (i = 0; i < g->n_subs; i++)
        free(g->subs[i]);
    free(g->subs);
    free(g->own_path);
    free(g->old_path);
    free(g->payload);
    free(g->path);
    pthread_cond_destroy(&g->cond);
    pthread_cond_destroy(&g->rcond);
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->wmu);
    pthread_mutex_destroy(&g->rmu);
    free(g);
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

static struct entry *find_entry(zkc_group *g, const char *name)
{
    int lo = 0, hi = g->n_ents - 1;

    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = name_cmp(g->ents[mid]->name, name);
        if (c == 0)
            return g->ents[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static void remove_entry(zkc_group *g, struct entry *e)
{
    int i;

    for (i = 0; i < g->n_ents; i++) {
        if (g->ents[i] == e) {
            memmove(&g->ents[i], &g->ents[i + 1], sizeof(e) * (size_t)(g->n_ents - i - 1));
            g->n_ents--;
            entry_free(e);
            return;
        }
    }
}

/* ------------------------------------------------------ subscriptions */

static char *member_path(zkc_group *g, const char *name)
{
    return zkc__path_join(g->path, name);
}

/* Route data-watch events of a member's node to us. Not under mu. */
static void subscribe(zkc_group *g, const char *name)
{
    char *path = member_path(g, name);

    if (!path)
        return;
    pthread_mutex_lock(&g->wmu);
    if (g->wclosed || zkc__watch(g->s, path, on_node_event, g) != 0) {
        free(path);
    } else {
        if (g->n_subs == g->cap_subs) {
            int cap = g->cap_subs ? g->cap_subs * 2 : 16;
            char **n = realloc(g->subs, sizeof(*n) * (size_t)cap);
            if (!n) {
                zkc__unwatch(g->s, path, on_node_event, g);
                free(path);
                pthread_mutex_unlock(&g->wmu);
                return;
            }
            g->subs = n;
            g->cap_subs = cap;
        }
        g->subs[g->n_subs++] = path;
    }
    pthread_mutex_unlock(&g->wmu);
}

static void unsubscribe(zkc_group *g, const char *name)
{
    char *path = member_path(g, name);
    int i;

    if (!path)
        return;
    pthread_mutex_lock(&g->wmu);
    for (i = g->n_subs - 1; i >= 0; i--) {
        if (strcmp(g->subs[i], path) == 0) {
            zkc__unwatch(g->s, path, on_node_event, g);
            free(g->subs[i]);
            g->subs[i] = g->subs[--g->n_subs];
            break;
        }
    }
    pthread_mutex_unlock(&g->wmu);
    free(path);
}

/* A list of names collected under mu, acted on after it is released. */
struct names {
    char **v;
    int n;
};

static void names_add(struct names *l, const char *name)
{
    char **n = realloc(l->v, sizeof(*n) * (size_t)(l->n + 1));

    if (!n)
        return;
    l->v = n;
    if ((l->v[l->n] = strdup(name)))
        l->n++;
}

static void names_free(struct names *l)
{
    int i;

    for (i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ------------------------------------------------------------- views */

static zkc_group_view *view_alloc(int n)
{
    zkc_group_view *v = calloc(1, sizeof(*v));

    if (!v)
        return NULL;
    v->refs = 1;
    v->m = calloc((size_t)(n > 0 ? n : 1), sizeof(*v->m));
    if (!v->m) {
        free(v);
        return NULL;
    }
    return v;
}

/* A view of `bodies` (sorted, borrowed) with the flags that depend on the
 * whole view. `self` is our node's name or NULL. */
static zkc_group_view *view_build(struct zkc__mbody **bodies, int n, const char *self)
{
    zkc_group_view *v = view_alloc(n);
    int i, j;

    if (!v)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned fl = 0;
        if (self && strcmp(bodies[i]->node, self) == 0)
            fl |= ZKC_MEMBER_SELF;
        if (bodies[i]->id) {
            for (j = 0; j < n; j++) {
                if (j != i && bodies[j]->id && strcmp(bodies[i]->id, bodies[j]->id) == 0) {
                    fl |= ZKC_MEMBER_DUPLICATE;
                    break;
                }
            }
        }
        v->m[v->n] = zkc__member_new(bodies[i], fl);
        if (!v->m[v->n]) {
            zkc_group_view_free(v);
            return NULL;
        }
        if (fl & ZKC_MEMBER_DUPLICATE)
            v->dups++;
        v->n++;
    }
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
    int i;

    if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (i = 0; i < v->n; i++)
        zkc__member_unref(v->m[i]);
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

/* Dispatcher thread. */
static void deliver(void *arg)
{
    struct batch *b = arg;
    zkc_group *g = b->g;
    int i, closing;

    for (i = 0; i < b->n; i++) {
        pthread_mutex_lock(&g->mu);
        closing = g->closing;
        pthread_mutex_unlock(&g->mu);
        if (closing)
            break;
        b->ev[i].view = b->view;
        g->o.on_event(g, &b->ev[i], g->o.user_data);
    }
    batch_free(b);
}

/* mu held: the dispatcher's own lock is innermost, and posting under mu
 * keeps batches in the order their diffs were computed. */
static void post(zkc_group *g, struct batch *b)
{
    if (b->n == 0 || !g->o.on_event || zkc__dispatch(g->s, deliver, b) != 0)
        batch_free(b);
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

/* mu held. */
static void report_error(zkc_group *g, int rc)
{
    struct batch *b = batch_new(g);

    if (!b)
        return;
    batch_add(b, ZKC_GROUP_ERROR, NULL, NULL, rc);
    post(g, b);
}

/* mu held. When nothing is in flight, turn the cache into a view, diff it
 * against the last one and post the events. */
static void maybe_publish(zkc_group *g)
{
    struct zkc__mbody **bodies;
    zkc_group_view *nv, *ov = g->view;
    struct batch *b;
    const char *self = g->own_path ? zkc__path_base(g->own_path) : NULL;
    int i, j, n = 0, changed = 0;

    if (g->closing || g->listing)
        return;
    for (i = 0; i < g->n_ents; i++)
        if (g->ents[i]->reading)
            return;
    bodies = malloc(sizeof(*bodies) * ((size_t)g->n_ents + 1));
    if (!bodies)
        return;
    for (i = 0; i < g->n_ents; i++)
        if (g->ents[i]->body)
            bodies[n++] = g->ents[i]->body;
    nv = view_build(bodies, n, self);
    free(bodies);
    if (!nv)
        return;
    b = batch_new(g);
    if (!b) {
        zkc_group_view_free(nv);
        return;
    }
    /* Both views are sorted by name_cmp: walk them side by side. Events go
     * in the documented order: LEFT, JOINED, UPDATED, DUPLICATE. */
    for (i = 0, j = 0; i < ov->n || j < nv->n;) {
        int c = i == ov->n ? 1 : j == nv->n ? -1 : name_cmp(ov->m[i]->b->node, nv->m[j]->b->node);
        if (c < 0) {
            batch_add(b, ZKC_GROUP_LEFT, ov->m[i], NULL, 0);
            i++;
        } else if (c > 0) {
            j++;
        } else {
            i++;
            j++;
        }
    }
    for (i = 0, j = 0; j < nv->n;) {
        int c = i == ov->n ? 1 : name_cmp(ov->m[i]->b->node, nv->m[j]->b->node);
        if (c < 0) {
            i++;
        } else if (c > 0) {
            batch_add(b, ZKC_GROUP_JOINED, nv->m[j], NULL, 0);
            j++;
        } else {
            if (ov->m[i]->b != nv->m[j]->b)
                batch_add(b, ZKC_GROUP_UPDATED, nv->m[j], ov->m[i], 0);
            else if (ov->m[i]->flags != nv->m[j]->flags)
                changed = 1;
            i++;
            j++;
        }
    }
    for (i = 0, j = 0; j < nv->n; j++) {
        int was_dup = 0;
        if (!(nv->m[j]->flags & ZKC_MEMBER_DUPLICATE))
            continue;
        while (i < ov->n && name_cmp(ov->m[i]->b->node, nv->m[j]->b->node) < 0)
            i++;
        if (i < ov->n && strcmp(ov->m[i]->b->node, nv->m[j]->b->node) == 0)
            was_dup = (ov->m[i]->flags & ZKC_MEMBER_DUPLICATE) != 0;
        if (!was_dup) {
            zkc__log(g->s, ZKC_LOG_WARN,
                     "group %s: member id '%s' is claimed by more than one node (%s is one)%s",
                     g->path, nv->m[j]->b->id, nv->m[j]->b->node,
                     (nv->m[j]->flags & ZKC_MEMBER_SELF) ? ": ours" : "");
            batch_add(b, ZKC_GROUP_DUPLICATE, nv->m[j], NULL, 0);
        }
    }
    if (b->n == 0 && !changed && ov->n == nv->n) {
        batch_free(b);
        zkc_group_view_free(nv);
        return;
    }
    g->self_in_view = 0;
    for (i = 0; self && i < nv->n; i++)
        if (nv->m[i]->flags & ZKC_MEMBER_SELF)
            g->self_in_view = 1;
    zkc_group_view_free(b->view);
    b->view = view_ref(nv);
    g->view = nv;
    zkc_group_view_free(ov);
    batch_add(b, ZKC_GROUP_CHANGED, NULL, NULL, 0);
    pthread_cond_broadcast(&g->cond);
    post(g, b);
}

/* --------------------------------------------------------- retrying */

static void resync(zkc_group *g);
static void run_queued(zkc_group *g);

/* Manager thread, once connected again after a connection loss. */
static void retry(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_group *g = arg;

    pthread_mutex_lock(&g->mu);
    g->retry_armed = 0;
    /* LOST: the CONNECTED hook of the next session redoes everything. */
    if (!g->closing && st != ZKC_CONN_NONE && st != ZKC_CONN_LOST && gen == g->gen)
        resync(g);
    pthread_mutex_unlock(&g->mu);
    run_queued(g);
    group_unref(g);
}

/* mu held: something failed with connection loss; try again once connected. */
static void arm_retry(zkc_group *g)
{
    if (g->retry_armed || g->closing)
        return;
    g->retry_armed = 1;
    group_ref(g);
    if (zkc__when_connected(g->s, retry, g) != 0) {
        g->retry_armed = 0;
        __atomic_sub_fetch(&g->refs, 1, __ATOMIC_RELAXED); /* the caller holds another */
    }
}

static int is_connloss(int zrc)
{
    return zrc == ZCONNECTIONLOSS || zrc == ZOPERATIONTIMEOUT;
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

/* -------------------------------------------------------- the folder */

static void read_member(zkc_group *g, struct entry *e, int probe);

static void list_done(int zrc, const struct String_vector *sv, const void *data);
static void folder_checked(int zrc, const struct Stat *st, const void *data);

/* mu held. */
static void start_list(zkc_group *g)
{
    struct req *r;
    zhandle_t *zh;
    int zrc;

    if (g->closing)
        return;
    if (g->listing) {
        g->relist = 1;
        return;
    }
    r = req_new(g, NULL);
    if (!r)
        return;
    zh = lock_zh(g);
    if (!zh) {
        g->need_list = 1;
        req_done(r);
        return;
    }
    r->gen = g->gen;
    zrc = zoo_aget_children(zh, g->path, 1, list_done, r);
    zkc__zh_unlock(g->s);
    if (zrc != ZOK) {
        g->need_list = 1;
        arm_retry(g);
        req_done(r);
        return;
    }
    g->listing = 1;
    g->need_list = 0;
}

/* mu held: the folder is missing; an exists watch says when it appears. */
static void watch_folder(zkc_group *g)
{
    struct req *r = req_new(g, NULL);
    zhandle_t *zh;

    if (!r)
        return;
    zh = lock_zh(g);
    if (!zh) {
        g->need_list = 1;
        req_done(r);
        return;
    }
    r->gen = g->gen;
    if (zoo_aexists(zh, g->path, 1, folder_checked, r) != ZOK) {
        zkc__zh_unlock(g->s);
        g->need_list = 1;
        arm_retry(g);
        req_done(r);
        return;
    }
    zkc__zh_unlock(g->s);
    g->listing = 1;
}

static void folder_checked(int zrc, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_group *g = r->g;

    (void)st;
    pthread_mutex_lock(&g->mu);
    if (!g->closing && r->gen == g->gen) {
        g->listing = 0;
        if (zrc == ZOK || g->relist) { /* created meanwhile */
            g->relist = 0;
            start_list(g);
        } else if (is_connloss(zrc)) {
            g->need_list = 1;
            arm_retry(g);
        }
        maybe_publish(g);
    }
    pthread_mutex_unlock(&g->mu);
    req_done(r);
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
    if (g->joined)
        g->create_queued = 1;
    pthread_cond_broadcast(&g->cond);
}

/* mu held: merge the sorted listing into the sorted cache. */
static void reconcile(zkc_group *g, char **names, int n, struct names *gone, struct names *fresh)
{
    struct entry **next = calloc((size_t)(n > 0 ? n : 1), sizeof(*next));
    const char *own = g->own_path ? zkc__path_base(g->own_path) : NULL;
    int i = 0, j = 0, k = 0, own_seen = 0;

    if (!next)
        return;
    qsort(names, (size_t)n, sizeof(*names), name_qcmp);
    while (i < g->n_ents || j < n) {
        int c = i == g->n_ents ? 1 : j == n ? -1 : name_cmp(g->ents[i]->name, names[j]);
        if (c < 0) {
            names_add(gone, g->ents[i]->name);
            entry_free(g->ents[i++]);
        } else if (c > 0) {
            struct entry *e = calloc(1, sizeof(*e));
            if (e && !(e->name = strdup(names[j]))) {
                free(e);
                e = NULL;
            }
            if (e) {
                next[k++] = e;
                names_add(fresh, e->name);
            }
            j++;
        } else {
            next[k++] = g->ents[i++];
            j++;
        }
    }
    for (i = 0; own && i < k; i++)
        if (strcmp(next[i]->name, own) == 0)
            own_seen = 1;
    free(g->ents);
    g->ents = next;
    g->n_ents = k;
    /* A listing only proves our node is gone once the node existed before
     * the listing was sent; a listing sent before our create finished may
     * not have it yet, and is followed by another (the create fired our
     * own child watch). So only an in-view node counts. */
    if (own && !own_seen && g->self_in_view)
        own_node_gone(g, "left the folder");
}

static void list_done(int zrc, const struct String_vector *sv, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_group *g = r->g;
    struct names gone = {NULL, 0}, fresh = {NULL, 0};
    int i, relist;

    pthread_mutex_lock(&g->mu);
    if (g->closing || r->gen != g->gen) {
        pthread_mutex_unlock(&g->mu);
        req_done(r);
        return;
    }
    g->listing = 0;
    if (zrc == ZOK) {
        reconcile(g, sv->data, sv->count, &gone, &fresh);
    } else if (zrc == ZNONODE) {
        for (i = 0; i < g->n_ents; i++) {
            names_add(&gone, g->ents[i]->name);
            entry_free(g->ents[i]);
        }
        g->n_ents = 0;
        if (g->self_in_view)
            own_node_gone(g, "went with its folder");
    } else if (is_connloss(zrc)) {
        g->need_list = 1;
        arm_retry(g);
    } else if (zrc != ZCLOSING && zrc != ZSESSIONEXPIRED) {
        zkc__log(g->s, ZKC_LOG_ERROR, "group %s: cannot list members: %s", g->path, zerror(zrc));
    }
    relist = g->relist;
    g->relist = 0;
    pthread_mutex_unlock(&g->mu);

    for (i = 0; i < gone.n; i++)
        unsubscribe(g, gone.v[i]);
    for (i = 0; i < fresh.n; i++)
        subscribe(g, fresh.v[i]);

    pthread_mutex_lock(&g->mu);
    if (!g->closing && r->gen == g->gen) {
        /* All gets go out back to back: one round trip for any number. */
        for (i = 0; i < fresh.n; i++) {
            struct entry *e = find_entry(g, fresh.v[i]);
            if (e && !e->reading)
                read_member(g, e, 0);
        }
        if (zrc == ZNONODE)
            watch_folder(g);
        else if (relist)
            start_list(g);
        maybe_publish(g);
    }
    pthread_mutex_unlock(&g->mu);
    run_queued(g);
    names_free(&gone);
    names_free(&fresh);
    req_done(r);
}

/* ------------------------------------------------------- the members */

static void member_read(int zrc, const char *value, int len, const struct Stat *st,
                        const void *data);
static void member_probed(int zrc, const struct Stat *st, const void *data);

/* mu held. A get (or, to re-arm a watch lost with a session, an exists)
 * of one member, with a data watch. */
static void read_member(zkc_group *g, struct entry *e, int probe)
{
    struct req *r = req_new(g, e->name);
    char *path = member_path(g, e->name);
    zhandle_t *zh;
    int zrc;

    if (!r || !path) {
        if (r)
            req_done(r);
        free(path);
        return;
    }
    zh = lock_zh(g);
    if (!zh) {
        e->stale = 1;
        free(path);
        req_done(r);
        return;
    }
    r->gen = g->gen;
    if (probe)
        zrc = zoo_aexists(zh, path, 1, member_probed, r);
    else
        zrc = zoo_aget(zh, path, 1, member_read, r);
    zkc__zh_unlock(g->s);
    free(path);
    if (zrc != ZOK) {
        e->stale = 1;
        arm_retry(g);
        req_done(r);
        return;
    }
    e->reading = 1;
    e->stale = 0;
}

/* mu held: a read came back for an entry; NULL when it is gone meanwhile. */
static struct entry *read_back(zkc_group *g, struct req *r)
{
    struct entry *e;

    if (g->closing || r->gen != g->gen)
        return NULL;
    e = find_entry(g, r->name);
    if (e)
        e->reading = 0;
    return e;
}

/* mu held: the node went away between getChildren and this read (or
 * later): it is simply gone, as the next listing will also say. */
static void vanished(zkc_group *g, struct entry *e, struct names *gone)
{
    const char *own = g->own_path ? zkc__path_base(g->own_path) : NULL;

    zkc__log(g->s, ZKC_LOG_DEBUG, "group %s: %s went away before it could be read", g->path,
             e->name);
    names_add(gone, e->name);
    if (own && strcmp(own, e->name) == 0 && g->self_in_view)
        own_node_gone(g, "was deleted");
    remove_entry(g, e);
}

static void member_read(int zrc, const char *value, int len, const struct Stat *st,
                        const void *data)
{
    struct req *r = (struct req *)data;
    zkc_group *g = r->g;
    struct names gone = {NULL, 0};
    struct entry *e;
    char why[200];

    pthread_mutex_lock(&g->mu);
    e = read_back(g, r);
    if (!e)
        goto out;
    if (zrc == ZOK) {
        if (!e->body || e->body->mzxid != st->mzxid) {
            struct zkc__mbody *b =
                zkc__payload_decode(e->name, value, len, g->o.max_payload, why, sizeof(why));
            if (b) {
                b->owner = st->ephemeralOwner;
                b->czxid = st->czxid;
                b->mzxid = st->mzxid;
                b->ctime = st->ctime;
                if (b->flags & ZKC_MEMBER_MALFORMED)
                    zkc__log(g->s, ZKC_LOG_WARN,
                             "group %s: member %s has a malformed payload (%s); shown with "
                             "what could be read",
                             g->path, e->name, why);
                zkc__mbody_unref(e->body);
                e->body = b;
            }
        }
        if (e->stale)
            read_member(g, e, 0);
    } else if (zrc == ZNONODE) {
        vanished(g, e, &gone);
    } else if (is_connloss(zrc)) {
        e->stale = 1;
        arm_retry(g);
    } else if (zrc != ZCLOSING && zrc != ZSESSIONEXPIRED) {
        zkc__log(g->s, ZKC_LOG_WARN, "group %s: cannot read member %s: %s", g->path, e->name,
                 zerror(zrc));
        if (!e->body) {
            e->body = zkc__payload_decode(e->name, NULL, 0, g->o.max_payload, NULL, 0);
            if (e->body)
                e->body->mzxid = -1;
        }
    }
    maybe_publish(g);
out:
    pthread_mutex_unlock(&g->mu);
    if (gone.n)
        unsubscribe(g, gone.v[0]);
    names_free(&gone);
    run_queued(g);
    req_done(r);
}

static void member_probed(int zrc, const struct Stat *st, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_group *g = r->g;
    struct names gone = {NULL, 0};
    struct entry *e;

    pthread_mutex_lock(&g->mu);
    e = read_back(g, r);
    if (!e)
        goto out;
    if (zrc == ZOK) {
        if (!e->body || e->body->mzxid != st->mzxid || e->stale)
            read_member(g, e, 0);
    } else if (zrc == ZNONODE) {
        vanished(g, e, &gone);
    } else if (is_connloss(zrc)) {
        e->stale = 1;
        arm_retry(g);
    }
    maybe_publish(g);
out:
    pthread_mutex_unlock(&g->mu);
    if (gone.n)
        unsubscribe(g, gone.v[0]);
    names_free(&gone);
    run_queued(g);
    req_done(r);
}

/* Completion thread, under the session's sub_mu: do not subscribe here. */
static void on_node_event(void *arg, int type, const char *path)
{
    zkc_group *g = arg;
    struct entry *e;

    pthread_mutex_lock(&g->mu);
    if (g->closing) {
        pthread_mutex_unlock(&g->mu);
        return;
    }
    if (strcmp(path, g->path) == 0) {
        if (type == ZOO_CHILD_EVENT || type == ZOO_CREATED_EVENT || type == ZOO_DELETED_EVENT)
            start_list(g);
    } else if (type == ZOO_CHANGED_EVENT) {
        e = find_entry(g, zkc__path_base(path));
        if (e && e->reading)
            e->stale = 1;
        else if (e)
            read_member(g, e, 0);
    }
    /* A member's DELETED event needs nothing: the child watch lists again. */
    pthread_mutex_unlock(&g->mu);
}

/* ------------------------------------------------------- our own node */

static void issue_set(zkc_group *g);
static void issue_delete(zkc_group *g);

static void created(void *arg, int rc, const char *path, const struct Stat *st)
{
    struct req *r = arg;
    zkc_group *g = r->g;

    pthread_mutex_lock(&g->mu);
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
            zkc__log(g->s, ZKC_LOG_INFO, "group %s: joined as %s (session 0x%llx)", g->path,
                     zkc__path_base(path), (unsigned long long)st->ephemeralOwner);
            if (g->own_ver != g->payload_ver)
                issue_set(g);
            /* Our node may be in the view already (its listing came
             * first): publish again to mark it ours. */
            maybe_publish(g);
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
    pthread_mutex_unlock(&g->mu);
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

    pthread_mutex_lock(&g->mu);
    if (!g->create_queued || g->creating || g->own_path || !g->joined || g->closing) {
        g->create_queued = 0;
        pthread_mutex_unlock(&g->mu);
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
    pthread_mutex_unlock(&g->mu);
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
    pthread_mutex_lock(&g->mu);
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
    } else if (zrc != ZCLOSING && zrc != ZSESSIONEXPIRED) {
        g->last_err = zkc__err_from_zk(zrc);
        zkc__log(g->s, ZKC_LOG_ERROR, "group %s: cannot update our node: %s", g->path, zerror(zrc));
        report_error(g, g->last_err);
    }
out:
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mu);
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
    if (zoo_aset(zh, g->own_path, g->payload, (int)g->payload_len, -1, set_done, r) != ZOK) {
        zkc__zh_unlock(g->s);
        arm_retry(g);
        req_done(r);
        return;
    }
    zkc__zh_unlock(g->s);
    g->setting = 1;
}

static void delete_done(int zrc, const void *data)
{
    struct req *r = (struct req *)data;
    zkc_group *g = r->g;

    pthread_mutex_lock(&g->mu);
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
        } else if (zrc != ZCLOSING && zrc != ZSESSIONEXPIRED) {
            zkc__log(g->s, ZKC_LOG_ERROR, "group %s: cannot delete our node %s: %s", g->path,
                     r->name, zerror(zrc));
            free(g->own_path); /* it goes with the session; nothing more to do */
            g->own_path = NULL;
        }
    }
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mu);
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
    if (zoo_adelete(zh, g->own_path, -1, delete_done, r) != ZOK) {
        zkc__zh_unlock(g->s);
        arm_retry(g);
        req_done(r);
        return;
    }
    zkc__zh_unlock(g->s);
    g->deleting = 1;
}

static void old_deleted(int zrc, const void *data)
{
    (void)zrc;
    req_done((struct req *)data);
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
        if (zoo_adelete(zh, g->old_path, -1, old_deleted, r) == ZOK)
            r = NULL;
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

    pthread_mutex_lock(&g->mu);
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
    pthread_mutex_unlock(&g->mu);
    run_queued(g);
    req_done(r);
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
    if (zoo_aexists(zh, g->own_path, 0, verified, r) != ZOK) {
        zkc__zh_unlock(g->s);
        g->need_verify = 1;
        arm_retry(g);
        req_done(r);
        return;
    }
    zkc__zh_unlock(g->s);
    g->verifying = 1;
}

/* mu held: send again whatever failed with connection loss. Idempotent. */
static void resync(zkc_group *g)
{
    int i;

    if (g->need_list)
        start_list(g);
    for (i = 0; i < g->n_ents; i++) {
        struct entry *e = g->ents[i];
        if (!e->reading && (e->stale || !e->body))
            read_member(g, e, 0);
    }
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
    int i;

    pthread_mutex_lock(&g->mu);
    if (g->closing) {
        pthread_mutex_unlock(&g->mu);
        return;
    }
    switch (st) {
    case ZKC_CONN_CONNECTED:
        if (gen == g->gen)
            break; /* the first session, which our first requests wait for */
        /* A new session: every watch and our node went with the old one.
         * Listing again costs one getChildren; each known member costs one
         * exists (it re-arms the data watch and says whether the payload
         * changed while we were away), and only changed ones are read. */
        g->gen = gen;
        g->listing = 0;
        g->relist = 0;
        g->setting = 0;
        g->deleting = 0;
        g->verifying = 0;
        g->need_verify = 0;
        g->self_in_view = 0;
        free(g->own_path);
        g->own_path = NULL;
        delete_old(g);
        start_list(g);
        for (i = 0; i < g->n_ents; i++) {
            g->ents[i]->reading = 0;
            read_member(g, g->ents[i], g->ents[i]->body != NULL);
        }
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
    pthread_mutex_unlock(&g->mu);
    run_queued(g);
}

/* ---------------------------------------------------------- public API */

void zkc_group_opts_init(zkc_group_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_payload = ZKC_PAYLOAD_DEFAULT_MAX;
}

int zkc_group_new(zkc_group **out, zkc_session *s, const char *path, const zkc_group_opts *o)
{
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
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->wmu, NULL);
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
    rc = zkc__watch(s, g->path, on_node_event, g);
    if (rc)
        goto fail_alloc;
    rc = zkc__add_hook(s, hook, g);
    if (rc)
        goto fail_hook;
    pthread_mutex_lock(&g->mu);
    start_list(g);
    pthread_mutex_unlock(&g->mu);
    zkc__session_attach(s);
    *out = g;
    return 0;

fail_hook:
    zkc__unwatch(s, g->path, on_node_event, g);
fail_alloc:
    zkc_group_view_free(g->view);
    free(g->path);
    pthread_cond_destroy(&g->rcond);
fail_rcond:
    pthread_cond_destroy(&g->cond);
fail_cond:
    pthread_mutex_destroy(&g->rmu);
    pthread_mutex_destroy(&g->wmu);
    pthread_mutex_destroy(&g->mu);
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
    pthread_mutex_lock(&g->mu);
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
    pthread_mutex_unlock(&g->mu);
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
            pthread_cond_wait(&g->cond, &g->mu);
        else if (pthread_cond_timedwait(&g->cond, &g->mu, &ts) == ETIMEDOUT)
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
    if (g->own_path && g->self_in_view) {
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
    pthread_mutex_lock(&g->mu);
    rc = wait_until(g, joined_done, NULL, timeout_ms);
    pthread_mutex_unlock(&g->mu);
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
    pthread_mutex_lock(&g->mu);
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
    pthread_mutex_unlock(&g->mu);
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
    pthread_mutex_lock(&g->mu);
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
    pthread_mutex_unlock(&g->mu);
    return rc;
}

int zkc_group_view_get(zkc_group *g, zkc_group_view **out)
{
    if (!g || !out)
        return ZKC_EINVAL;
    pthread_mutex_lock(&g->mu);
    *out = view_ref(g->view);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

void zkc_group_free(zkc_group *g)
{
    struct timespec ts;
    int i;

    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->closing = 1;
    g->joined = 0;
    g->create_queued = 0;
    issue_delete(g); /* a create in flight deletes its node when it lands */
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mu);

    /* Neither call may run under mu: both wait for our functions. */
    zkc__remove_hook(g->s, hook, g);
    zkc__unwatch(g->s, g->path, on_node_event, g);
    pthread_mutex_lock(&g->wmu);
    g->wclosed = 1;
    for (i = 0; i < g->n_subs; i++) {
        zkc__unwatch(g->s, g->subs[i], on_node_event, g);
        free(g->subs[i]);
    }
    g->n_subs = 0;
    pthread_mutex_unlock(&g->wmu);

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

struct oneshot {
    int refs;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    zkc_session *s;
    char *path;
    size_t max;
    int rc;
    int pending; /* gets in flight */
    int done;
    char **names;
    int n;
    struct zkc__mbody **bodies;
};

struct oneshot_req {
    struct oneshot *o;
    int i;
};

static void oneshot_unref(struct oneshot *o)
{
    int i;

    if (__atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (i = 0; i < o->n; i++) {
        free(o->names[i]);
        zkc__mbody_unref(o->bodies[i]);
    }
    free(o->names);
    free(o->bodies);
    free(o->path);
    pthread_cond_destroy(&o->cond);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* o->mu held: the chain of requests is over. */
static void oneshot_finish(struct oneshot *o, int rc)
{
    if (!o->rc)
        o->rc = rc;
    o->done = 1;
    pthread_cond_broadcast(&o->cond);
}

static void oneshot_got(int zrc, const char *value, int len, const struct Stat *st,
                        const void *data)
{
    struct oneshot_req *q = (struct oneshot_req *)data;
    struct oneshot *o = q->o;
    struct zkc__mbody *b = NULL;
    int last;

    if (zrc == ZOK) {
        b = zkc__payload_decode(o->names[q->i], value, len, o->max, NULL, 0);
        if (b) {
            b->owner = st->ephemeralOwner;
            b->czxid = st->czxid;
            b->mzxid = st->mzxid;
            b->ctime = st->ctime;
        }
    }
    pthread_mutex_lock(&o->mu);
    o->bodies[q->i] = b;
    if (zrc != ZOK && zrc != ZNONODE && !o->rc)
        o->rc = zkc__err_from_zk(zrc);
    last = --o->pending == 0;
    if (last)
        oneshot_finish(o, 0);
    pthread_mutex_unlock(&o->mu);
    free(q);
    if (last)
        oneshot_unref(o);
}

static void oneshot_listed(int zrc, const struct String_vector *sv, const void *data)
{
    struct oneshot *o = (struct oneshot *)data;
    zhandle_t *zh;
    int i, sent = 0, rc = 0;

    pthread_mutex_lock(&o->mu);
    if (zrc == ZNONODE || (zrc == ZOK && sv->count == 0)) {
        oneshot_finish(o, 0);
        goto out;
    }
    if (zrc != ZOK) {
        oneshot_finish(o, zkc__err_from_zk(zrc));
        goto out;
    }
    o->names = calloc((size_t)sv->count, sizeof(*o->names));
    o->bodies = calloc((size_t)sv->count, sizeof(*o->bodies));
    if (!o->names || !o->bodies) {
        oneshot_finish(o, ZKC_ENOMEM);
        goto out;
    }
    for (i = 0; i < sv->count; i++) {
        if (!(o->names[o->n] = strdup(sv->data[i]))) {
            oneshot_finish(o, ZKC_ENOMEM);
            goto out;
        }
        o->n++;
    }
    qsort(o->names, (size_t)o->n, sizeof(*o->names), name_qcmp);
    zh = zkc__zh_lock(o->s, NULL);
    if (!zh) {
        oneshot_finish(o, ZKC_ECONNLOSS);
        goto out;
    }
    o->pending = o->n + 1; /* held until every get is sent */
    for (i = 0; i < o->n && !rc; i++) {
        struct oneshot_req *q = malloc(sizeof(*q));
        char *path = zkc__path_join(o->path, o->names[i]);
        if (!q || !path) {
            rc = ZKC_ENOMEM;
        } else {
            q->o = o;
            q->i = i;
            rc = zoo_aget(zh, path, 0, oneshot_got, q) == ZOK ? 0 : ZKC_ECONNLOSS;
        }
        free(path);
        if (rc)
            free(q);
        else
            sent++;
    }
    zkc__zh_unlock(o->s);
    o->pending -= o->n + 1 - sent;
    if (rc && !o->rc)
        o->rc = rc;
    if (o->pending == 0) {
        oneshot_finish(o, rc);
        goto out;
    }
    pthread_mutex_unlock(&o->mu);
    return; /* the last get's completion drops the chain's reference */
out:
    pthread_mutex_unlock(&o->mu);
    oneshot_unref(o);
}

int zkc_group_read(zkc_session *s, const char *path, size_t max_payload, zkc_group_view **out,
                   int timeout_ms)
{
    struct oneshot *o;
    struct timespec ts;
    zhandle_t *zh;
    int64_t t0 = zkc__now_ms();
    int rc, left = timeout_ms;

    if (!s || !path || !out || zkc__path_check(path) != 0)
        return ZKC_EINVAL;
    rc = zkc_session_wait_connected(s, timeout_ms);
    if (rc)
        return rc;
    if (timeout_ms >= 0) {
        left = timeout_ms - (int)(zkc__now_ms() - t0);
        if (left < 0)
            left = 0;
    }
    o = calloc(1, sizeof(*o));
    if (!o)
        return ZKC_ENOMEM;
    o->refs = 2; /* the caller and the chain of requests */
    o->s = s;
    o->max = max_payload ? max_payload : ZKC_PAYLOAD_DEFAULT_MAX;
    pthread_mutex_init(&o->mu, NULL);
    zkc__cond_init(&o->cond);
    o->path = strdup(path);
    if (!o->path) {
        o->refs = 1;
        oneshot_unref(o);
        return ZKC_ENOMEM;
    }
    zh = zkc__zh_lock(s, NULL);
    rc = !zh ? ZKC_ECONNLOSS : zkc__err_from_zk(zoo_aget_children(zh, path, 0, oneshot_listed, o));
    if (zh)
        zkc__zh_unlock(s);
    if (rc) {
        o->refs = 1;
        oneshot_unref(o);
        return rc;
    }
    if (left >= 0)
        zkc__deadline(&ts, left);
    pthread_mutex_lock(&o->mu);
    while (!o->done) {
        if (left < 0)
            pthread_cond_wait(&o->cond, &o->mu);
        else if (pthread_cond_timedwait(&o->cond, &o->mu, &ts) == ETIMEDOUT)
            break;
    }
    rc = o->done ? o->rc : ZKC_ETIMEDOUT;
    if (rc == 0) {
        struct zkc__mbody **bodies = calloc((size_t)(o->n ? o->n : 1), sizeof(*bodies));
        zkc_group_view *v = NULL;
        int i, n = 0;
        if (bodies) {
            for (i = 0; i < o->n; i++)
                if (o->bodies[i])
                    bodies[n++] = o->bodies[i];
            v = view_build(bodies, n, NULL);
            free(bodies);
        }
        if (v)
            *out = v;
        else
            rc = ZKC_ENOMEM;
    }
    pthread_mutex_unlock(&o->mu);
    oneshot_unref(o);
    return rc;
}
