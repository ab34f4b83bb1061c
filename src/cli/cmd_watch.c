/* watch: one JSON object per line for every membership, leadership and lock
 * change of a cluster. Membership comes from a zkc_group observer (no join),
 * leadership from an election observer; the locks folder and each lock's
 * folders are watched with children caches (zkc_cache, names only) and
 * read again with zkc_lock_inspect on every change. Changes are diffs against
 * what was read when the watch started, so the state at start is never
 * reported as a change (`watch --once` waits for the next one). */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"

struct known_member {
    char *node;
    int64_t mzxid;
    int vpos;     /* position in its view (join order) */
    json_t *json; /* as last seen, for member_left */
};

struct lock_seen {
    char *name;
    char *sig;
};

struct watch_st {
    cli *c;
    const char *cluster;
    int once;
    char members_path[1024], leader_path[1024], locks_path[1024];

    pthread_mutex_t out_mu; /* output and `printed`: may block on a full pipe */
    int printed;
    pthread_mutex_t mu; /* done, dirty: held only briefly (completion thread) */
    int done;
    int dirty;

    /* dispatcher thread only (after the baseline) */
    struct known_member *members;
    int nmembers;
    char leader_node[128];
    json_t *leader; /* null when none */

    /* main thread only */
    struct lock_seen *locks;
    int nlocks;
    zkc_cache **caches; /* one per watched folder */
    char **cpaths;
    int ncaches;
};

static void emit(struct watch_st *w, const char *event, json_t *body)
{
    json_t *doc = json_object();
    const char *k;
    json_t *v;

    out_jset(doc, "event", json_string(event));
    out_jset(doc, "cluster", out_jstr(w->cluster));
    out_jset(doc, "time_ms", json_integer(out_now_ms()));
    json_object_foreach(body, k, v)
    {
        json_object_set(doc, k, v);
    }
    pthread_mutex_lock(&w->out_mu);
    if (!(w->once && w->printed)) {
        out_json_line(doc, stdout);
        w->printed++;
        if (w->once) {
            pthread_mutex_lock(&w->mu);
            w->done = 1;
            pthread_mutex_unlock(&w->mu);
            cli_wake();
        }
    }
    pthread_mutex_unlock(&w->out_mu);
    json_decref(doc);
    json_decref(body);
}

/* ------------------------------------------------------------ members */

static void known_free(struct known_member *k, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        free(k[i].node);
        json_decref(k[i].json);
    }
    free(k);
}

static int known_cmp(const void *a, const void *b)
{
    return strcmp(((const struct known_member *)a)->node, ((const struct known_member *)b)->node);
}

static int vpos_cmp(const void *a, const void *b)
{
    return (*(struct known_member *const *)a)->vpos - (*(struct known_member *const *)b)->vpos;
}

/* In `k` (sorted by node), binary search. */
static struct known_member *known_find(struct known_member *k, int n, const char *node)
{
    struct known_member key;

    key.node = (char *)node;
    return n > 0 ? bsearch(&key, k, (size_t)n, sizeof(*k), known_cmp) : NULL;
}

/* The members of `v`, sorted by node. A member unchanged since `old` (same
 * node and mzxid) keeps its JSON: a change of a large cluster costs a sort,
 * not a JSON document per member. */
static struct known_member *known_from_view(const zkc_group_view *v, int *n,
                                            struct known_member *old, int nold)
{
    int i, count = zkc_group_view_count(v);
    struct known_member *k = calloc((size_t)(count ? count : 1), sizeof(*k));
    int64_t now = out_now_ms();

    if (!k)
        return NULL;
    for (i = 0; i < count; i++) {
        const zkc_member *m = zkc_group_view_at(v, i);
        struct known_member *o = known_find(old, nold, zkc_member_node(m));

        k[i].node = strdup(zkc_member_node(m));
        k[i].mzxid = zkc_member_mzxid(m);
        k[i].vpos = i;
        if (o && o->mzxid == k[i].mzxid)
            k[i].json = json_incref(o->json);
        else
            k[i].json = cli_member_json(m, now);
        if (!k[i].node) {
            known_free(k, i + 1);
            return NULL;
        }
    }
    qsort(k, (size_t)count, sizeof(*k), known_cmp);
    *n = count;
    return k;
}

static json_t *member_body(json_t *member)
{
    json_t *b = json_object();

    json_object_set(b, "member", member);
    return b;
}

/* Dispatcher thread. Events in join order, as the views list members. */
static void on_group(zkc_group *g, const zkc_group_event *ev, void *user_data)
{
    struct watch_st *w = user_data;
    struct known_member *next, **left, **order;
    int i, n = 0, nleft = 0;

    (void)g;
    if (ev->type != ZKC_GROUP_CHANGED || !ev->view)
        return;
    next = known_from_view(ev->view, &n, w->members, w->nmembers);
    left = calloc((size_t)w->nmembers + 1, sizeof(*left));
    order = calloc((size_t)n + 1, sizeof(*order));
    if (!next || !left || !order) {
        if (next)
            known_free(next, n);
        free(left);
        free(order);
        return;
    }
    for (i = 0; i < w->nmembers; i++)
        if (!known_find(next, n, w->members[i].node))
            left[nleft++] = &w->members[i];
    qsort(left, (size_t)nleft, sizeof(*left), vpos_cmp);
    for (i = 0; i < nleft; i++)
        emit(w, "member_left", member_body(left[i]->json));
    for (i = 0; i < n; i++)
        order[i] = &next[i];
    qsort(order, (size_t)n, sizeof(*order), vpos_cmp);
    for (i = 0; i < n; i++) {
        const struct known_member *old = known_find(w->members, w->nmembers, order[i]->node);

        if (!old) {
            emit(w, "member_joined", member_body(order[i]->json));
        } else if (old->mzxid != order[i]->mzxid) {
            json_t *b = member_body(order[i]->json);

            json_object_set(b, "previous", old->json);
            emit(w, "member_updated", b);
        }
    }
    free(left);
    free(order);
    known_free(w->members, w->nmembers);
    w->members = next;
    w->nmembers = n;
}

/* ------------------------------------------------------------- leader */

static json_t *leader_obj(const char *id, const char *node, int64_t token)
{
    json_t *l = json_object();

    out_jset(l, "id", out_jstr(id));
    out_jset(l, "node", out_jstr(node));
    out_jset(l, "token", json_integer(token));
    return l;
}

/* Dispatcher thread. */
static void on_leader(zkc_election *e, const zkc_election_event *ev, void *user_data)
{
    struct watch_st *w = user_data;
    const char *node = ev->leader_id && ev->leader_node ? ev->leader_node : "";
    json_t *now, *b;

    (void)e;
    if (ev->type != ZKC_ELECTION_LEADER_CHANGED || strcmp(node, w->leader_node) == 0)
        return;
    now = *node ? leader_obj(ev->leader_id, node, ev->token) : json_null();
    b = json_object();
    json_object_set(b, "leader", now);
    json_object_set(b, "previous", w->leader);
    emit(w, "leader_changed", b);
    json_decref(w->leader);
    w->leader = now;
    snprintf(w->leader_node, sizeof(w->leader_node), "%s", node);
}

/* -------------------------------------------------------------- locks */

/* Any thread: never block, only flag and wake. */
static void mark_dirty(struct watch_st *w)
{
    pthread_mutex_lock(&w->mu);
    w->dirty = 1;
    pthread_mutex_unlock(&w->mu);
    cli_wake();
}

/* Dispatcher thread. */
static void on_cache(zkc_cache *c, const zkc_cache_event *ev, void *user_data)
{
    (void)c;
    if (ev->type == ZKC_CACHE_CHANGED)
        mark_dirty(user_data);
}

static void on_state(zkc_session *s, zkc_conn_state st, void *user_data)
{
    struct watch_st *w = user_data;

    (void)s;
    if (w->c->verbose)
        cli_err(w->c, "connection %s", zkc_conn_state_name(st));
    /* A reconnected session may have missed nothing, but reading again is
     * cheap. */
    if (st == ZKC_CONN_CONNECTED || st == ZKC_CONN_RECONNECTED)
        mark_dirty(w);
}

/* Main thread: keep a children cache on `path` (it waits for a missing
 * folder to appear). */
static int subscribe(struct watch_st *w, const char *path)
{
    zkc_cache_opts o;
    zkc_cache **nc;
    char **np;
    int i, rc;

    for (i = 0; i < w->ncaches; i++)
        if (strcmp(w->cpaths[i], path) == 0)
            return 0;
    nc = realloc(w->caches, (size_t)(w->ncaches + 1) * sizeof(*nc));
    if (!nc)
        return ZKC_ENOMEM;
    w->caches = nc;
    np = realloc(w->cpaths, (size_t)(w->ncaches + 1) * sizeof(*np));
    if (!np)
        return ZKC_ENOMEM;
    w->cpaths = np;
    if (!(w->cpaths[w->ncaches] = strdup(path)))
        return ZKC_ENOMEM;
    zkc_cache_opts_init(&o);
    o.on_event = on_cache;
    o.user_data = w;
    rc = zkc_cache_new(&w->caches[w->ncaches], w->c->s, path, &o);
    if (rc == 0 && (rc = zkc_cache_start(w->caches[w->ncaches])) != 0)
        zkc_cache_free(w->caches[w->ncaches]);
    if (rc) {
        free(w->cpaths[w->ncaches]);
        return rc;
    }
    w->ncaches++;
    return 0;
}

/* Watch `path` and list it now (a missing folder is empty). */
static int arm(struct watch_st *w, const char *path, char ***names, int *n)
{
    int rc = subscribe(w, path);

    *names = NULL;
    *n = 0;
    if (rc)
        return rc;
    rc = cli_zk_children(w->c->s, path, w->c->timeout_ms, 0, names, n, NULL);
    return rc == ZKC_ENONODE ? 0 : rc;
}

static void locks_seen_free(struct lock_seen *l, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        free(l[i].name);
        free(l[i].sig);
    }
    free(l);
}

/* Main thread: re-arm the watches, read the locks, report what changed.
 * `report` is 0 for the baseline. */
static int refresh_locks(struct watch_st *w, int report)
{
    struct lock_seen *seen = NULL;
    cli_lock *locks = NULL;
    char **names = NULL, **kids, path[1100];
    int n = 0, nk, i, j, rc, nlocks = 0;

    rc = arm(w, w->locks_path, &names, &n);
    if (rc)
        return rc;
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", w->locks_path, names[i]);
        rc = arm(w, path, &kids, &nk);
        if (rc)
            goto out;
        for (j = 0; j < nk; j++)
            if (strcmp(kids[j], "leases") == 0) {
                char **lk;
                int nl;

                snprintf(path, sizeof(path), "%s/%s/leases", w->locks_path, names[i]);
                rc = arm(w, path, &lk, &nl);
                cli_names_free(lk, nl);
            }
        cli_names_free(kids, nk);
        if (rc)
            goto out;
    }
    rc = cli_read_locks(w->c, w->cluster, NULL, &locks, &nlocks);
    if (rc)
        goto out;
    seen = calloc((size_t)(nlocks ? nlocks : 1), sizeof(*seen));
    if (!seen) {
        rc = ZKC_ENOMEM;
        goto out;
    }
    for (i = 0; i < nlocks; i++) {
        const struct lock_seen *old = NULL;

        seen[i].name = strdup(locks[i].name);
        seen[i].sig = cli_lock_signature(&locks[i]);
        for (j = 0; j < w->nlocks; j++)
            if (strcmp(w->locks[j].name, locks[i].name) == 0)
                old = &w->locks[j];
        if (report && seen[i].sig && (!old || strcmp(old->sig ? old->sig : "", seen[i].sig) != 0)) {
            json_t *b = json_object();

            out_jset(b, "lock", cli_lock_json(&locks[i]));
            emit(w, "lock_changed", b);
        }
    }
    for (j = 0; report && j < w->nlocks; j++) {
        int found = 0;

        for (i = 0; i < nlocks; i++)
            if (strcmp(w->locks[j].name, locks[i].name) == 0)
                found = 1;
        if (!found) {
            json_t *b = json_object();

            out_jset(b, "name", out_jstr(w->locks[j].name));
            emit(w, "lock_removed", b);
        }
    }
    locks_seen_free(w->locks, w->nlocks);
    w->locks = seen;
    w->nlocks = nlocks;
out:
    cli_locks_free(locks, nlocks);
    cli_names_free(names, n);
    return rc;
}

/* ------------------------------------------------------------ command */

int cmd_watch(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"once", no_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    zkc_election_leader_info info;
    zkc_group_view *base = NULL;
    zkc_group_opts go;
    zkc_group *g = NULL;
    zkc_election *e = NULL;
    struct watch_st w;
    int ch, rc, i, listening = 0;

    memset(&w, 0, sizeof(w));
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'o') {
            w.once = 1;
        } else {
            cli_err(c, "watch: unknown option '%s'", argv[optind - 1]);
            return cli_usage_error(c, "watch");
        }
    }
    if (argc - optind != 1 || cli_name_ok(argv[optind]) != 0) {
        cli_err(c, "watch: want one CLUSTER");
        return cli_usage_error(c, "watch");
    }
    w.c = c;
    w.cluster = argv[optind];
    cli_path(c, w.members_path, sizeof(w.members_path), w.cluster, "members", NULL);
    cli_path(c, w.leader_path, sizeof(w.leader_path), w.cluster, "leader", NULL);
    cli_path(c, w.locks_path, sizeof(w.locks_path), w.cluster, "locks", NULL);
    pthread_mutex_init(&w.mu, NULL);
    pthread_mutex_init(&w.out_mu, NULL);
    w.leader = json_null();
    rc = cli_connect_with_signals(c);
    if (rc) {
        pthread_mutex_destroy(&w.out_mu);
        pthread_mutex_destroy(&w.mu);
        return rc;
    }
    /* The baseline, read before the observers start: they report changes
     * relative to it. */
    rc = zkc_group_read(c->s, w.members_path, 0, &base, c->timeout_ms);
    if (rc) {
        rc = cli_fail(c, rc, w.members_path);
        goto out;
    }
    w.members = known_from_view(base, &w.nmembers, NULL, 0);
    zkc_group_view_free(base);
    rc = cli_read_leader(c, w.cluster, &info);
    if (rc == 0) {
        json_decref(w.leader);
        w.leader = leader_obj(info.id, info.node, info.token);
        snprintf(w.leader_node, sizeof(w.leader_node), "%s", info.node);
    } else if (rc != ZKC_ENONODE) {
        rc = cli_fail(c, rc, w.leader_path);
        goto out;
    }
    rc = zkc_session_add_listener(c->s, on_state, &w);
    if (rc) {
        rc = cli_fail(c, rc, "listening");
        goto out;
    }
    listening = 1;
    rc = refresh_locks(&w, 0);
    if (rc) {
        rc = cli_fail(c, rc, w.locks_path);
        goto out;
    }
    zkc_group_opts_init(&go);
    go.on_event = on_group;
    go.user_data = &w;
    rc = zkc_group_new(&g, c->s, w.members_path, &go);
    if (rc == 0)
        rc = zkc_election_observer_new(&e, c->s, w.leader_path, on_leader, &w);
    if (rc) {
        rc = cli_fail(c, rc, "watching");
        goto out;
    }
    if (c->verbose)
        cli_err(c, "watching %s/%s", *c->root ? c->root : "", w.cluster);
    for (;;) {
        int sig = cli_wait(-1), done, dirty;

        pthread_mutex_lock(&w.mu);
        done = w.done;
        dirty = w.dirty;
        w.dirty = 0;
        pthread_mutex_unlock(&w.mu);
        if (sig || done)
            break;
        if (dirty) {
            rc = refresh_locks(&w, 1);
            /* Connection trouble: the state listener wakes us when back. */
            if (rc && c->verbose)
                cli_err(c, "reading the locks: %s", zkc_strerror(rc));
        }
    }
    rc = 0;
out:
    zkc_group_free(g);
    zkc_election_close(e);
    if (listening)
        zkc_session_remove_listener(c->s, on_state, &w);
    for (i = 0; i < w.ncaches; i++) {
        zkc_cache_free(w.caches[i]);
        free(w.cpaths[i]);
    }
    free(w.caches);
    free(w.cpaths);
    zkc_session_close(c->s);
    known_free(w.members, w.nmembers);
    json_decref(w.leader);
    locks_seen_free(w.locks, w.nlocks);
    pthread_mutex_destroy(&w.out_mu);
    pthread_mutex_destroy(&w.mu);
    return rc;
}
