/* The task queue (zkcoord/task.h): submit, wait for a result, and the
 * handle that plans (leader side) and runs tasks (worker side).
 *
 * The handle has one thread of its own (the "loop"). Children caches of the
 * folders it reads (members, election, tasks, assignments, claims) only
 * wake the loop; the loop decides from the cached views and writes with
 * blocking fenced multis, so no ZooKeeper or dispatcher thread ever waits
 * for a write, and a run callback has a thread of its own.
 *
 * Why the assignment node carries the claim's version (see task.h): a
 * check op in ZooKeeper compares a version, not an owner, and every claim
 * node is created at version 0. A stale worker's result multi must fail
 * even when a NEW claim of the same task exists (taken by another worker,
 * or by itself in its new session). Every claim rewrites the assignment in
 * the claim's own multi, so the assignment's version names the claim: the
 * result multi deletes the assignment at that version, and any later claim
 * or re-assignment makes it fail. */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "naming.h"
#include "payload.h"
#include "queue.h"
#include "zkcoord/task.h"

#define RESULT_MAX    (1024 * 1024) /* cap on a result node read */
#define ASSIGN_MAX    4096          /* cap on an assignment node read */
#define CAPACITY_MAX  1000000
#define WRITE_TIMEOUT 10000
#define TICK_MS       250
#define MEMBER_ID_MAX 255

/* ------------------------------------------------------------- names */

int zkc_task_id_valid(const char *name)
{
    size_t i;

    if (!name || strncmp(name, "task-", 5) != 0 || strlen(name) != 5 + ZKC_SEQ_LEN)
        return 0;
    for (i = 5; i < 5 + ZKC_SEQ_LEN; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    return 1;
}

/* cluster + "/work/" + sub [+ "/" + name]; NULL on ENOMEM. */
static char *work_path(const char *cluster, const char *sub, const char *name)
{
    size_t n = strlen(cluster) + strlen(sub) + (name ? strlen(name) : 0) + 16;
    char *p = malloc(n);

    if (!p)
        return NULL;
    if (name)
        snprintf(p, n, "%s/work/%s/%s", strcmp(cluster, "/") ? cluster : "", sub, name);
    else
        snprintf(p, n, "%s/work/%s", strcmp(cluster, "/") ? cluster : "", sub);
    return p;
}

/* ------------------------------------------------------------ results */

void zkc_task_result_free(zkc_task_result *r)
{
    if (!r)
        return;
    free(r->output);
    free(r->worker);
    free(r);
}

int zkc_task_result_parse(const char *data, size_t len, zkc_task_result **out)
{
    json_t *root, *v, *ov;
    zkc_task_result *r;
    json_error_t jerr;
    const char *task, *worker, *output;
    json_int_t status, token;
    int rc = ZKC_EBADDATA;

    if (!out || (!data && len))
        return ZKC_EINVAL;
    if (!data || len > RESULT_MAX)
        return ZKC_EBADDATA;
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return ZKC_EBADDATA;
    if (!json_is_object(root))
        goto done;
    v = json_object_get(root, "task");
    task = json_is_string(v) ? json_string_value(v) : NULL;
    if (!task || !zkc_task_id_valid(task))
        goto done;
    v = json_object_get(root, "status");
    if (!json_is_integer(v) || (status = json_integer_value(v)) < -2147483647 - 1 ||
        status > 2147483647)
        goto done;
    v = json_object_get(root, "worker");
    worker = json_is_string(v) ? json_string_value(v) : NULL;
    if (!worker || strlen(worker) > MEMBER_ID_MAX)
        goto done;
    v = json_object_get(root, "token");
    if (!json_is_integer(v) || (token = json_integer_value(v)) < 0)
        goto done;
    ov = json_object_get(root, "output");
    if (ov && !json_is_string(ov))
        goto done;
    output = ov ? json_string_value(ov) : "";
    v = json_object_get(root, "truncated");
    if (v && !json_is_boolean(v))
        goto done;
    rc = ZKC_ENOMEM;
    if (!(r = calloc(1, sizeof(*r))))
        goto done;
    snprintf(r->task, sizeof(r->task), "%s", task);
    r->status = (int)status;
    r->token = token;
    r->truncated = v && json_is_true(v);
    r->output_len = ov ? json_string_length(ov) : 0;
    r->output = malloc(r->output_len + 1);
    r->worker = strdup(worker);
    if (!r->output || !r->worker) {
        zkc_task_result_free(r);
        goto done;
    }
    if (r->output_len)
        memcpy(r->output, output, r->output_len);
    r->output[r->output_len] = '\0';
    *out = r;
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* Copy `n` bytes replacing every byte that is not part of a well-formed
 * UTF-8 sequence with '?' (jansson only takes valid UTF-8). */
static char *utf8_clean(const char *in, size_t n)
{
    char *o = malloc(n + 1);
    size_t i = 0, k;

    if (!o)
        return NULL;
    while (i < n) {
        unsigned char c = (unsigned char)in[i];
        size_t want = c < 0x80         ? 1
                      : (c >> 5) == 6  ? 2
                      : (c >> 4) == 14 ? 3
                      : (c >> 3) == 30 ? 4
                                       : 0;
        int ok = want > 0 && i + want <= n;
        unsigned cp = want == 1 ? c : want == 2 ? c & 0x1f : want == 3 ? c & 0x0f : c & 0x07;

        for (k = 1; ok && k < want; k++) {
            unsigned char d = (unsigned char)in[i + k];
            if ((d & 0xc0) != 0x80)
                ok = 0;
            cp = (cp << 6) | (d & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if (ok &&
            ((want == 2 && cp < 0x80) || (want == 3 && cp < 0x800) ||
             (want == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)))
            ok = 0;
        if (!ok) {
            o[i++] = '?';
            continue;
        }
        memcpy(o + i, in + i, want);
        i += want;
    }
    o[n] = '\0';
    return o;
}

/* The result document; NULL on ENOMEM. */
static char *result_encode(const char *task, int status, const char *output, size_t olen,
                           const char *worker, int64_t token)
{
    int truncated = olen > ZKC_TASK_OUTPUT_MAX;
    char *clean, *text;
    json_t *root;

    if (truncated) {
        olen = ZKC_TASK_OUTPUT_MAX;
        /* do not cut a UTF-8 sequence in half: back up to its start */
        while (olen > 0 && ((unsigned char)output[olen] & 0xc0) == 0x80)
            olen--;
    }
    if (!(clean = utf8_clean(output ? output : "", output ? olen : 0)))
        return NULL;
    root = json_object();
    if (!root || json_object_set_new(root, "task", json_string(task)) ||
        json_object_set_new(root, "status", json_integer(status)) ||
        json_object_set_new(root, "output", json_stringn(clean, output ? olen : 0)) ||
        json_object_set_new(root, "truncated", json_boolean(truncated)) ||
        json_object_set_new(root, "worker", json_string(worker)) ||
        json_object_set_new(root, "token", json_integer(token))) {
        json_decref(root);
        free(clean);
        return NULL;
    }
    free(clean);
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* ------------------------------------------------------- assignments */

struct assign {
    char member[MEMBER_ID_MAX + 1];
    int claimed;
};

/* 0, or ZKC_EBADDATA for anything that is not our assignment document. */
static int assign_parse(const char *data, int len, struct assign *a)
{
    json_t *root, *m, *c;
    int rc = ZKC_EBADDATA;

    if (!data || len <= 0 || len > ASSIGN_MAX)
        return ZKC_EBADDATA;
    if (!(root = json_loadb(data, (size_t)len, JSON_REJECT_DUPLICATES, NULL)))
        return ZKC_EBADDATA;
    m = json_object_get(root, "member");
    c = json_object_get(root, "claimed");
    if (json_is_string(m) && json_string_length(m) > 0 && json_string_length(m) <= MEMBER_ID_MAX &&
        strlen(json_string_value(m)) == json_string_length(m) && json_is_boolean(c)) {
        snprintf(a->member, sizeof(a->member), "%s", json_string_value(m));
        a->claimed = json_is_true(c);
        rc = 0;
    }
    json_decref(root);
    return rc;
}

/* NULL on ENOMEM. */
static char *assign_encode(const char *member, int claimed)
{
    json_t *root = json_pack("{s:s, s:b}", "member", member, "claimed", claimed);
    char *text;

    if (!root)
        return NULL;
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* ------------------------------------------- one request through a call */

enum { RQ_CREATE_SEQ, RQ_EXISTS_WATCH };

struct treq {
    zkc__pending pend;
    zkc_session *s;
    zkc__call *c;
    zkc__qwatch *q; /* RQ_EXISTS_WATCH: the watch it sets */
};

static void treq_dropped(zkc__pending *pd)
{
    struct treq *r = (struct treq *)((char *)pd - offsetof(struct treq, pend));

    if (r->q)
        zkc__qwatch_reply(r->q, 0);
    zkc__call_complete(r->c, ZCLOSING);
    zkc__call_unref(r->c);
    free(r);
}

static void treq_created(int zrc, const char *name, const void *data)
{
    struct treq *r = (struct treq *)data;

    zkc__pending_done(r->s, &r->pend);
    if (zrc == ZOK && name) {
        pthread_mutex_lock(&r->c->mu);
        if (!r->c->done && r->c->extra)
            snprintf(r->c->extra, ZKC_TASK_ID_MAX, "%s", zkc__path_base(name));
        pthread_mutex_unlock(&r->c->mu);
    }
    zkc__call_complete(r->c, zrc);
    zkc__call_unref(r->c);
    free(r);
}

static void treq_stat(int zrc, const struct Stat *st, const void *data)
{
    struct treq *r = (struct treq *)data;

    zkc__pending_done(r->s, &r->pend);
    if (r->q)
        zkc__qwatch_reply(r->q, zrc == ZOK || zrc == ZNONODE);
    zkc__call_stat_done(zrc, st, r->c);
    free(r);
}

/* Send one request for `c`; the ZooKeeper code of the send (ZOK: `c` will
 * be completed exactly once). `*gen` gets the handle's generation.
 * RQ_EXISTS_WATCH sets the per-request watch `q` (made by the caller, see
 * zkc__qwatch_new); it is consumed either way. */
static int treq_send(zkc_session *s, int kind, const char *path, const char *data, int len,
                     zkc__call *c, unsigned *gen, zkc__qwatch *q)
{
    struct treq *r = malloc(sizeof(*r));
    zhandle_t *zh = NULL;
    int zrc;

    if (!r || !(zh = zkc__zh_lock(s, gen))) {
        zrc = r ? ZCONNECTIONLOSS : ZSYSTEMERROR;
        free(r);
        if (q)
            zkc__qwatch_reply(q, 0);
        return zrc;
    }
    r->s = s;
    r->c = c;
    r->q = q;
    zkc__call_ref(c);
    zkc__pending_add(s, &r->pend, *gen, treq_dropped);
    if (kind == RQ_CREATE_SEQ) {
        zrc = zoo_acreate(zh, path, data, len, zkc__acl(s), ZOO_PERSISTENT_SEQUENTIAL, treq_created,
                          r);
    } else {
        zkc__qwatch_sent(q, *gen);
        zrc = zoo_awexists(zh, path, zkc__qwatch_watcher, q, treq_stat, r);
    }
    if (zrc != ZOK) {
        zkc__pending_done(s, &r->pend);
        zkc__call_unref(c);
        free(r);
    }
    zkc__zh_unlock(s);
    if (zrc != ZOK && q)
        zkc__qwatch_reply(q, 0);
    return zrc;
}

/* ------------------------------------------------------ submit and wait */

static int create_seq(zkc_session *s, const char *prefix, const char *payload, size_t len, char *id,
                      size_t id_len, int64_t deadline)
{
    zkc__call *c = zkc__call_new();
    unsigned gen;
    int zrc, rc;

    if (!c)
        return ZKC_ENOMEM;
    if (!(c->extra = calloc(1, ZKC_TASK_ID_MAX))) {
        zkc__call_unref(c);
        return ZKC_ENOMEM;
    }
    c->extra_free = free;
    zrc = treq_send(s, RQ_CREATE_SEQ, prefix, payload, (int)len, c, &gen, NULL);
    if (zrc != ZOK) {
        zkc__call_unref(c);
        return zrc == ZSYSTEMERROR ? ZKC_ENOMEM : zkc__err_from_zk(zrc);
    }
    rc = zkc__call_wait(c, zkc__remaining(deadline));
    pthread_mutex_lock(&c->mu);
    if (rc == 0 && c->rc != ZOK)
        rc = c->rc == ZCLOSING ? ZKC_ECONNLOSS : zkc__err_from_zk(c->rc);
    if (rc == 0)
        snprintf(id, id_len, "%s", (char *)c->extra);
    pthread_mutex_unlock(&c->mu);
    zkc__call_unref(c);
    return rc;
}

int zkc_task_submit(zkc_session *s, const char *cluster_path, const char *payload, size_t len,
                    char *id, size_t id_len, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : zkc__now_ms() + timeout_ms;
    char *dir, *prefix;
    int rc;

    if (!s || !cluster_path || zkc__path_check(cluster_path) != 0 || (!payload && len) ||
        len > ZKC_TASK_PAYLOAD_MAX || !id || id_len < ZKC_TASK_ID_MAX)
        return ZKC_EINVAL;
    dir = work_path(cluster_path, "tasks", NULL);
    prefix = work_path(cluster_path, "tasks", "task-");
    if (!dir || !prefix) {
        rc = ZKC_ENOMEM;
        goto out;
    }
    rc = zkc_session_wait_connected(s, zkc__remaining(deadline));
    if (rc == ZKC_EUNREACHABLE)
        rc = ZKC_ECONNLOSS;
    if (rc)
        goto out;
    rc = create_seq(s, prefix, payload, len, id, id_len, deadline);
    if (rc == ZKC_ENONODE) {
        /* first task of the cluster: make the folder, then once more */
        rc = zkc__mkdirs_sync(s, dir, zkc__remaining(deadline));
        if (rc == 0)
            rc = create_seq(s, prefix, payload, len, id, id_len, deadline);
    }
out:
    free(dir);
    free(prefix);
    return rc;
}

/* A waiting zkc_task_wait(). Its exists watches may outlive the call (a
 * watch stays in the client until it fires or the handle closes), so it is
 * on the heap: one reference for the call, one per watch set. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int fired;
    int refs; /* atomic */
};

static void waiter_unref(struct waiter *w)
{
    if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_SEQ_CST) != 0)
        return;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* The exists watch ended: fired (type != 0) or gone unfired. */
static void on_result_watch(zkc__qwatch *q, int type)
{
    struct waiter *w = q->owner;

    if (type) {
        pthread_mutex_lock(&w->mu);
        w->fired = 1;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
    }
    waiter_unref(w);
}

/* Read and decode the result at `path`: 0, ZKC_ENONODE, or an error. */
static int result_read(zkc_session *s, const char *path, int timeout_ms, zkc_task_result **out)
{
    char *data = NULL;
    int len = 0, rc;
    zkc_stat st;

    rc = zkc_get(s, path, timeout_ms, &data, &len, &st);
    if (rc)
        return rc;
    rc = zkc_task_result_parse(data, (size_t)len, out);
    free(data);
    if (rc == 0) {
        (*out)->czxid = st.czxid;
        (*out)->ctime_ms = st.ctime_ms;
    }
    return rc;
}

int zkc_task_wait(zkc_session *s, const char *cluster_path, const char *id, int timeout_ms,
                  zkc_task_result **out)
{
    int64_t deadline = timeout_ms < 0 ? -1 : zkc__now_ms() + timeout_ms;
    struct waiter *w;
    char *path;
    int rc;

    if (!s || !cluster_path || zkc__path_check(cluster_path) != 0 || !zkc_task_id_valid(id) || !out)
        return ZKC_EINVAL;
    if (!(path = work_path(cluster_path, "results", id)))
        return ZKC_ENOMEM;
    if (!(w = calloc(1, sizeof(*w)))) {
        free(path);
        return ZKC_ENOMEM;
    }
    pthread_mutex_init(&w->mu, NULL);
    if (zkc__cond_init(&w->cond) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        free(path);
        return ZKC_ENOMEM;
    }
    w->refs = 1;
    for (;;) {
        zkc__call *c;
        zkc__qwatch *q;
        unsigned gen = 0;
        int zrc, left;

        pthread_mutex_lock(&w->mu);
        w->fired = 0;
        pthread_mutex_unlock(&w->mu);
        __atomic_add_fetch(&w->refs, 1, __ATOMIC_SEQ_CST); /* the watch's */
        if (!(q = zkc__qwatch_new(s, path, on_result_watch, w)))
            waiter_unref(w);
        if (!q || !(c = zkc__call_new())) {
            if (q) {
                zkc__qwatch_unsent(q); /* fn is not called: drop its reference */
                waiter_unref(w);
            }
            rc = ZKC_ENOMEM;
            break;
        }
        /* exists with a watch: one request, and its own watch (per request,
         * zkc__qwatch) wakes us when the result is created */
        zrc = treq_send(s, RQ_EXISTS_WATCH, path, NULL, 0, c, &gen, q);
        if (zrc == ZOK) {
            rc = zkc__call_wait(c, zkc__remaining(deadline));
            zrc = rc ? ZOPERATIONTIMEOUT : c->rc;
        }
        zkc__call_unref(c);
        if (zrc == ZOK) {
            rc = result_read(s, path, zkc__remaining(deadline), out);
            if (rc != ZKC_ENONODE && rc != ZKC_ECONNLOSS)
                break; /* got it, or it is not a result */
            continue;
        }
        if (zrc == ZNOAUTH) {
            rc = ZKC_ENOAUTH;
            break;
        }
        left = zkc__remaining(deadline);
        if (left == 0) {
            /* At the deadline (at once for timeout 0, "look once", whose
             * exists gives up before the server can answer): one last
             * look, a result that is there counts. */
            rc = result_read(s, path, 1000, out);
            if (rc == ZKC_ENONODE || rc == ZKC_ECONNLOSS || rc == ZKC_ETIMEDOUT)
                rc = ZKC_ETIMEDOUT;
            break;
        }
        if (zrc != ZNONODE) {
            /* not connected: wait for the connection, then ask again */
            rc = zkc_session_wait_connected(s, left < 0 || left > TICK_MS ? TICK_MS : left);
            if (rc == ZKC_ECLOSED)
                break;
            continue;
        }
        /* Watch armed: sleep until it fires, the deadline, or the session
         * changes generation (a new session has lost the watch). */
        pthread_mutex_lock(&w->mu);
        while (!w->fired && zkc_session_generation(s) == gen) {
            struct timespec ts;
            left = zkc__remaining(deadline);
            if (left == 0)
                break;
            zkc__deadline(&ts, left < 0 || left > TICK_MS ? TICK_MS : left);
            pthread_cond_timedwait(&w->cond, &w->mu, &ts);
        }
        pthread_mutex_unlock(&w->mu);
        if (zkc__remaining(deadline) == 0) {
            /* one last look: a result created at the deadline counts */
            rc = result_read(s, path, 1000, out);
            if (rc == ZKC_ENONODE || rc == ZKC_ECONNLOSS || rc == ZKC_ETIMEDOUT)
                rc = ZKC_ETIMEDOUT;
            break;
        }
    }
    waiter_unref(w);
    free(path);
    return rc;
}

int zkc_task_result_delete(zkc_session *s, const char *cluster_path, const char *id, int timeout_ms)
{
    zkc_op op;
    char *path, *dir;
    int rc;

    if (!s || !cluster_path || zkc__path_check(cluster_path) != 0 || !zkc_task_id_valid(id))
        return ZKC_EINVAL;
    path = work_path(cluster_path, "results", id);
    dir = work_path(cluster_path, "results", NULL);
    if (!path || !dir) {
        free(path);
        free(dir);
        return ZKC_ENOMEM;
    }
    memset(&op, 0, sizeof(op));
    op.type = ZKC_OP_DELETE;
    op.path = path;
    op.version = -1;
    /* the folder is the guard: it exists whenever a result does */
    rc = zkc_fenced_multi(s, dir, &op, 1, timeout_ms);
    if (rc == ZKC_ENOTHELD)
        rc = ZKC_ENONODE;
    free(path);
    free(dir);
    return rc;
}

/* ------------------------------------------------------------- handle */

struct run {
    zkc_tasks *t;
    pthread_t th;
    int done;
    char name[ZKC_TASK_ID_MAX];
    char *payload;
    int len;
    int64_t token;
    int aversion; /* the assignment's version our claim left */
};

struct plan {
    int version; /* the assignment's version our write left */
    char member[MEMBER_ID_MAX + 1];
};

struct zkc_tasks {
    zkc_session *s;
    char *cluster;
    char *dirs[4]; /* tasks, assign, running, results */
    char *member_id;
    zkc_task_run_fn run;
    void *user_data;
    zkc_election *el;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    int stop;
    int dirty;
    int dirs_ok;
    zkc__smap runs;    /* name -> struct run *, under mu */
    int nruns;         /* entries of runs not yet done, under mu */
    zkc__smap planned; /* leader: name -> struct plan *, loop thread only */
    zkc__smap warned;  /* names warned about, loop thread only */
    zkc_tasks_stats st;

    zkc_cache *caches[5]; /* members, election, tasks, assign, running */
};

enum { D_TASKS, D_ASSIGN, D_RUNNING, D_RESULTS };
enum { C_MEMBERS, C_ELECTION, C_TASKS, C_ASSIGN, C_RUNNING };

void zkc_tasks_opts_init(zkc_tasks_opts *o)
{
    if (o)
        memset(o, 0, sizeof(*o));
}

int zkc_tasks_stats_get(zkc_tasks *t, zkc_tasks_stats *out)
{
    if (!t || !out)
        return ZKC_EINVAL;
    pthread_mutex_lock(&t->mu);
    *out = t->st;
    out->running = t->nruns;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static void wake(zkc_tasks *t)
{
    pthread_mutex_lock(&t->mu);
    t->dirty = 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

static void on_cache(zkc_cache *c, const zkc_cache_event *ev, void *user_data)
{
    (void)c;
    if (ev->type == ZKC_CACHE_CHANGED)
        wake(user_data);
}

/* 1 the first time `name` is seen here (foreign data is reported once per
 * handle, not at every pass), else 0. */
static int first_warning(zkc_tasks *t, const char *name)
{
    if (zkc__smap_get(&t->warned, name))
        return 0;
    return zkc__smap_put(&t->warned, name, t) == 0;
}

/* Index of `name` in the view (children sorted by strcmp), or -1. */
static int view_find(const zkc_cache_view *v, const char *name)
{
    int lo = 0, hi = v ? zkc_cache_view_count(v) - 1 : -1;

    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(zkc_cache_view_name(v, mid), name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* ---- live members and their capacities */

struct live {
    char *id;
    int capacity;
    int load;
};

/* Capacity from a member's metadata: 1 when absent; 1 with a warning when
 * not an integer in [1, CAPACITY_MAX]. */
static int member_capacity(zkc_tasks *t, const struct zkc__mbody *b)
{
    json_t *root, *v;
    int cap = 1;

    if (!b->metadata)
        return 1;
    root = json_loads(b->metadata, 0, NULL);
    v = root ? json_object_get(root, "capacity") : NULL;
    if (v) {
        if (json_is_integer(v) && json_integer_value(v) >= 1 &&
            json_integer_value(v) <= CAPACITY_MAX)
            cap = (int)json_integer_value(v);
        else if (first_warning(t, b->node))
            zkc__log(t->s, ZKC_LOG_WARN,
                     "task queue: member %s (%s) has an invalid capacity, using 1",
                     b->id ? b->id : "?", b->node);
    }
    json_decref(root);
    return cap;
}

/* The live members (first node of each id), sorted by id. */
static int live_members(zkc_tasks *t, struct live **out, int *n)
{
    zkc_cache_view *v = NULL;
    struct live *l;
    int i, k = 0, count;

    *out = NULL;
    *n = 0;
    if (zkc_cache_view_get(t->caches[C_MEMBERS], &v) != 0)
        return ZKC_ENOMEM;
    count = zkc_cache_view_count(v);
    if (!(l = calloc((size_t)count + 1, sizeof(*l)))) {
        zkc_cache_view_free(v);
        return ZKC_ENOMEM;
    }
    for (i = 0; i < count; i++) {
        int len = 0, j, dup = 0;
        const char *data = zkc_cache_view_data(v, i, &len);
        const zkc_stat *st = zkc_cache_view_stat(v, i);
        struct zkc__mbody *b;

        if (!st || st->owner == 0)
            continue; /* a live member is an ephemeral node */
        b = zkc__payload_decode(zkc_cache_view_name(v, i), data, len, ZKC_PAYLOAD_DEFAULT_MAX, NULL,
                                0);
        if (!b)
            continue;
        /* A member going away (status STOPPING: a drained agent) takes no
         * new tasks; the ones it claimed stay its own until it is done. */
        if (b->status && strcmp(b->status, "STOPPING") == 0) {
            zkc__mbody_unref(b);
            continue;
        }
        if (b->id && strlen(b->id) <= MEMBER_ID_MAX) {
            for (j = 0; j < k; j++)
                if (strcmp(l[j].id, b->id) == 0)
                    dup = 1;
            if (!dup && (l[k].id = strdup(b->id))) {
                l[k].capacity = member_capacity(t, b);
                k++;
            }
        }
        zkc__mbody_unref(b);
    }
    zkc_cache_view_free(v);
    *out = l;
    *n = k;
    return 0;
}

static void live_free(struct live *l, int n)
{
    int i;

    for (i = 0; l && i < n; i++)
        free(l[i].id);
    free(l);
}

static struct live *live_find(struct live *l, int n, const char *id)
{
    int i;

    for (i = 0; i < n; i++)
        if (strcmp(l[i].id, id) == 0)
            return &l[i];
    return NULL;
}

/* The least loaded member with room (load/capacity, then id), avoiding
 * `avoid` when another has room. NULL when all are full. */
static struct live *pick(struct live *l, int n, const char *avoid)
{
    struct live *best = NULL;
    int i, pass;

    for (pass = 0; pass < 2 && !best; pass++) {
        for (i = 0; i < n; i++) {
            struct live *m = &l[i];
            if (m->load >= m->capacity || (pass == 0 && avoid && strcmp(m->id, avoid) == 0))
                continue;
            if (!best || (int64_t)m->load * best->capacity < (int64_t)best->load * m->capacity ||
                ((int64_t)m->load * best->capacity == (int64_t)best->load * m->capacity &&
                 strcmp(m->id, best->id) < 0))
                best = m;
        }
    }
    return best;
}

/* ---- the leader */

static int ensure_dirs(zkc_tasks *t)
{
    int i, rc;

    if (t->dirs_ok)
        return 0;
    for (i = 0; i < 4; i++)
        if ((rc = zkc__mkdirs_sync(t->s, t->dirs[i], WRITE_TIMEOUT)) != 0)
            return rc;
    t->dirs_ok = 1;
    return 0;
}

/* Write the assignment of `name` to `member`: create it (version < 0) or
 * replace the one at `version`, fenced by the leadership. */
static int assign_write(zkc_tasks *t, const char *name, const char *member, int version)
{
    char *path = zkc__path_join(t->dirs[D_ASSIGN], name);
    char *tpath = zkc__path_join(t->dirs[D_TASKS], name);
    char *probe = tpath ? zkc__path_join(tpath, "assigning") : NULL;
    char *doc = assign_encode(member, 0);
    struct plan *p = NULL;
    zkc_op op[3];
    int rc = ZKC_ENOMEM;

    if (!path || !probe || !doc)
        goto out;
    memset(op, 0, sizeof(op));
    op[0].type = version < 0 ? ZKC_OP_CREATE : ZKC_OP_SET;
    op[0].path = path;
    op[0].data = doc;
    op[0].len = (int)strlen(doc);
    op[0].version = version;
    /* The task must still exist: the cache of tasks lags the result
     * multis that delete them, and an assignment made for a finished task
     * would be an orphan. A multi has no existence check we can express
     * (fence.h has none besides the guard, which is the leadership), so
     * create and delete a child of the task in the same transaction: it
     * fails with ZKC_ENONODE when the task is gone, and leaves nothing. */
    op[1].type = ZKC_OP_CREATE;
    op[1].path = probe;
    op[2].type = ZKC_OP_DELETE;
    op[2].path = probe;
    op[2].version = -1;
    rc = zkc_election_fenced_multi(t->el, op, 3, WRITE_TIMEOUT);
    if (rc == 0) {
        if ((p = calloc(1, sizeof(*p)))) {
            p->version = version < 0 ? 0 : version + 1;
            snprintf(p->member, sizeof(p->member), "%s", member);
            free(zkc__smap_del(&t->planned, name));
            if (zkc__smap_put(&t->planned, name, p) != 0)
                free(p);
        }
        pthread_mutex_lock(&t->mu);
        t->st.assigned++;
        pthread_mutex_unlock(&t->mu);
        zkc__log(t->s, ZKC_LOG_DEBUG, "task queue: %s assigned to %s", name, member);
    } else {
        zkc__log(t->s, ZKC_LOG_DEBUG, "task queue: assigning %s to %s: %s", name, member,
                 zkc_strerror(rc));
    }
out:
    free(path);
    free(tpath);
    free(probe);
    free(doc);
    return rc;
}

/* Does `path` exist? 1, 0, or <0 on error. */
static int exists_now(zkc_tasks *t, const char *dir, const char *name)
{
    char *path = zkc__path_join(dir, name);
    int rc;

    if (!path)
        return ZKC_ENOMEM;
    rc = zkc_get(t->s, path, WRITE_TIMEOUT, NULL, NULL, NULL);
    free(path);
    return rc == 0 ? 1 : rc == ZKC_ENONODE ? 0 : rc;
}

static void leader_pass(zkc_tasks *t)
{
    zkc_cache_view *tv = NULL, *av = NULL, *rv = NULL;
    struct live *l = NULL;
    int nl = 0, i, n;

    if (ensure_dirs(t) != 0)
        return;
    if (live_members(t, &l, &nl) != 0)
        return;
    if (zkc_cache_view_get(t->caches[C_TASKS], &tv) ||
        zkc_cache_view_get(t->caches[C_ASSIGN], &av) ||
        zkc_cache_view_get(t->caches[C_RUNNING], &rv))
        goto out;

    /* Loads: every assignment of a task that exists, as the cache shows it
     * or as our own later write left it. */
    n = zkc_cache_view_count(av);
    for (i = 0; i < n; i++) {
        const char *name = zkc_cache_view_name(av, i);
        const zkc_stat *st = zkc_cache_view_stat(av, i);
        struct plan *p = zkc__smap_get(&t->planned, name);
        struct assign a;
        struct live *m;
        int len = 0;
        const char *data = zkc_cache_view_data(av, i, &len);

        if (p && st && st->version >= p->version) {
            free(zkc__smap_del(&t->planned, name)); /* the cache caught up */
            p = NULL;
        }
        if (!zkc_task_id_valid(name) || view_find(tv, name) < 0 || p)
            continue;
        if (assign_parse(data, len, &a) == 0 && (m = live_find(l, nl, a.member)))
            m->load++;
    }
    /* our writes the cache has not shown yet */
    n = zkc_cache_view_count(tv);
    for (i = 0; i < n; i++) {
        struct plan *p = zkc__smap_get(&t->planned, zkc_cache_view_name(tv, i));
        struct live *m;
        if (p && (m = live_find(l, nl, p->member)))
            m->load++;
    }

    /* Existing assignments: orphans, garbage, dead assignees, dead claims. */
    n = zkc_cache_view_count(av);
    for (i = 0; i < n; i++) {
        const char *name = zkc_cache_view_name(av, i);
        const zkc_stat *st = zkc_cache_view_stat(av, i);
        int len = 0, bad;
        const char *data = zkc_cache_view_data(av, i, &len);
        struct assign a;
        struct live *m, *to;

        if (!zkc_task_id_valid(name)) {
            if (first_warning(t, name))
                zkc__log(t->s, ZKC_LOG_WARN, "task queue: %s: foreign node %s skipped",
                         t->dirs[D_ASSIGN], name);
            continue;
        }
        if (!st || zkc__smap_get(&t->planned, name))
            continue;
        if (view_find(tv, name) < 0) {
            /* The task is gone (completed: the result multi deletes both,
             * so this is a lag of the cache; or deleted by an operator).
             * Delete the assignment only when a fresh read agrees. */
            if (exists_now(t, t->dirs[D_TASKS], name) == 0 &&
                exists_now(t, t->dirs[D_RUNNING], name) == 0) {
                char *path = zkc__path_join(t->dirs[D_ASSIGN], name);
                zkc_op op;
                memset(&op, 0, sizeof(op));
                op.type = ZKC_OP_DELETE;
                op.path = path;
                op.version = st->version;
                if (path)
                    zkc_election_fenced_multi(t->el, &op, 1, WRITE_TIMEOUT);
                free(path);
            }
            continue;
        }
        bad = assign_parse(data, len, &a) != 0;
        if (bad && first_warning(t, name))
            zkc__log(t->s, ZKC_LOG_WARN, "task queue: %s: unreadable assignment %s replaced",
                     t->dirs[D_ASSIGN], name);
        m = bad ? NULL : live_find(l, nl, a.member);
        if (!bad && !a.claimed && m)
            continue; /* its worker will claim it */
        if (!bad && a.claimed) {
            /* A claim made in the same multi as this version: the claim
             * node is there unless its session died. The cache of claims
             * may lag the cache of assignments: ask the server. */
            if (view_find(rv, name) >= 0 || exists_now(t, t->dirs[D_RUNNING], name) != 0)
                continue;
        }
        if (m && m->load > 0)
            m->load--;
        to = pick(l, nl, bad ? NULL : a.member);
        if (!to)
            continue; /* nobody has room: wait for a change */
        if (assign_write(t, name, to->id, st->version) == 0)
            to->load++;
        else if (m)
            m->load++;
    }

    /* New tasks, oldest first. */
    n = zkc_cache_view_count(tv);
    for (i = 0; i < n; i++) {
        const char *name = zkc_cache_view_name(tv, i);
        struct live *to;

        if (!zkc_task_id_valid(name)) {
            if (first_warning(t, name))
                zkc__log(t->s, ZKC_LOG_WARN, "task queue: %s: foreign node %s skipped",
                         t->dirs[D_TASKS], name);
            continue;
        }
        if (view_find(av, name) >= 0 || zkc__smap_get(&t->planned, name))
            continue;
        if (!(to = pick(l, nl, NULL)))
            break;
        if (assign_write(t, name, to->id, -1) == 0)
            to->load++;
    }
    /* forget plans of tasks that are gone */
    if (t->planned.n) {
        zkc__smap_item *it, *next;
        size_t b;
        for (b = 0; b < t->planned.nb; b++)
            for (it = t->planned.b[b]; it; it = next) {
                next = it->next;
                if (view_find(tv, it->key) < 0 && view_find(av, it->key) < 0)
                    free(zkc__smap_del(&t->planned, it->key));
            }
    }
out:
    zkc_cache_view_free(tv);
    zkc_cache_view_free(av);
    zkc_cache_view_free(rv);
    live_free(l, nl);
}

/* ---- the worker */

static void *run_main(void *arg);

static void claim_delete(zkc_tasks *t, const char *rpath)
{
    zkc_stat st;
    zkc_op op;

    /* Only our own claim, of the current session. A delete cannot be made
     * conditional on the owner: should our session expire between this
     * read and the delete (sent then on the new session), and another
     * worker claim the task in that gap, its claim would go. Its result
     * multi would then fail on its guard and the task run again: the
     * window costs a run, never a second result. */
    int tries, rc;

    /* A claim of a live session left behind would hold its task forever
     * (the leader re-assigns only claims that are gone): connection
     * errors are waited out, a few times (a session lost meanwhile took
     * the claim with it). */
    for (tries = 0; tries < 5; tries++) {
        if (tries > 0 && zkc_session_wait_connected(t->s, WRITE_TIMEOUT) == ZKC_ECLOSED)
            return;
        rc = zkc_get(t->s, rpath, WRITE_TIMEOUT, NULL, NULL, &st);
        if (rc == ZKC_ECONNLOSS || rc == ZKC_ETIMEDOUT)
            continue;
        if (rc != 0 || st.owner != zkc_session_id(t->s))
            return;
        memset(&op, 0, sizeof(op));
        op.type = ZKC_OP_DELETE;
        op.path = rpath;
        op.version = -1;
        rc = zkc_fenced_multi(t->s, rpath, &op, 1, WRITE_TIMEOUT);
        if (rc != ZKC_ECONNLOSS && rc != ZKC_ETIMEDOUT)
            return;
    }
    zkc__log(t->s, ZKC_LOG_WARN,
             "task queue: could not delete the claim %s (connection trouble): its task waits "
             "for this session to end",
             rpath);
}

/* Claim `name` (assignment at `version`), read it and start its run. */
static void claim(zkc_tasks *t, const char *name, int version)
{
    char *apath = zkc__path_join(t->dirs[D_ASSIGN], name);
    char *rpath = zkc__path_join(t->dirs[D_RUNNING], name);
    char *tpath = zkc__path_join(t->dirs[D_TASKS], name);
    char *doc = assign_encode(t->member_id, 1);
    struct run *r = NULL;
    zkc_op ops[2];
    zkc_stat st;
    int rc;

    if (!apath || !rpath || !tpath || !doc)
        goto out;
    memset(ops, 0, sizeof(ops));
    ops[0].type = ZKC_OP_CREATE;
    ops[0].path = rpath;
    ops[0].data = t->member_id;
    ops[0].len = (int)strlen(t->member_id);
    ops[0].flags = ZKC_CREATE_EPHEMERAL;
    ops[1].type = ZKC_OP_SET;
    ops[1].path = apath;
    ops[1].data = doc;
    ops[1].len = (int)strlen(doc);
    ops[1].version = version;
    /* the assignment is the guard; its version makes the claim exclusive
     * to this assignment, the create makes it exclusive among workers */
    rc = zkc_fenced_multi(t->s, apath, ops, 2, WRITE_TIMEOUT);
    if (rc == ZKC_ENODEEXISTS && zkc_get(t->s, rpath, WRITE_TIMEOUT, NULL, NULL, &st) == 0 &&
        st.owner == 0 && first_warning(t, rpath)) {
        /* a persistent node is no claim of any worker: a foreign client's */
        zkc__log(t->s, ZKC_LOG_WARN,
                 "task queue: %s is a persistent node (not a claim): %s cannot run until it is "
                 "deleted",
                 rpath, name);
    }
    if (rc != 0 && rc != ZKC_ECONNLOSS && rc != ZKC_ETIMEDOUT) {
        zkc__log(t->s, ZKC_LOG_DEBUG, "task queue: claim of %s: %s", name, zkc_strerror(rc));
        goto out;
    }
    /* the token, and (after an uncertain multi) whether we hold it */
    if (zkc_get(t->s, rpath, WRITE_TIMEOUT, NULL, NULL, &st) != 0 ||
        st.owner != zkc_session_id(t->s))
        goto out;
    if (!(r = calloc(1, sizeof(*r))))
        goto out;
    rc = zkc_get(t->s, tpath, WRITE_TIMEOUT, &r->payload, &r->len, NULL);
    if (rc != 0) {
        /* the task went away (an operator deleted it): let the claim go */
        zkc__log(t->s, ZKC_LOG_INFO, "task queue: %s vanished after its claim: %s", name,
                 zkc_strerror(rc));
        claim_delete(t, rpath);
        free(r);
        r = NULL;
        goto out;
    }
    r->t = t;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->token = st.czxid;
    r->aversion = version + 1;
    pthread_mutex_lock(&t->mu);
    if (zkc__smap_put(&t->runs, name, r) != 0 || pthread_create(&r->th, NULL, run_main, r) != 0) {
        zkc__smap_del(&t->runs, name);
        pthread_mutex_unlock(&t->mu);
        claim_delete(t, rpath);
        free(r->payload);
        free(r);
        goto out;
    }
    t->nruns++;
    t->st.claimed++;
    pthread_mutex_unlock(&t->mu);
out:
    free(apath);
    free(rpath);
    free(tpath);
    free(doc);
}

/* Write the result of `r`: ONE multi guarded by our claim. */
static int result_write(zkc_tasks *t, struct run *r, const char *doc)
{
    char *rpath = zkc__path_join(t->dirs[D_RUNNING], r->name);
    char *tpath = zkc__path_join(t->dirs[D_TASKS], r->name);
    char *apath = zkc__path_join(t->dirs[D_ASSIGN], r->name);
    char *opath = zkc__path_join(t->dirs[D_RESULTS], r->name);
    zkc_op ops[4];
    int rc = ZKC_ENOMEM, tries;

    if (!rpath || !tpath || !apath || !opath)
        goto out;
    memset(ops, 0, sizeof(ops));
    ops[0].type = ZKC_OP_CREATE;
    ops[0].path = opath;
    ops[0].data = doc;
    ops[0].len = (int)strlen(doc);
    ops[1].type = ZKC_OP_DELETE;
    ops[1].path = tpath;
    ops[1].version = -1;
    ops[2].type = ZKC_OP_DELETE;
    ops[2].path = apath;
    ops[2].version = r->aversion; /* fails once anyone claimed or re-assigned it since */
    ops[3].type = ZKC_OP_DELETE;
    ops[3].path = rpath;
    ops[3].version = -1;
    for (tries = 0; tries < 5; tries++) {
        zkc_task_result *got = NULL;
        zkc_stat st;
        int grc;

        rc = zkc_fenced_multi(t->s, rpath, ops, 4, WRITE_TIMEOUT);
        if (rc != ZKC_ECONNLOSS && rc != ZKC_ETIMEDOUT)
            break;
        /* Unknown outcome: look at what is there once connected. */
        zkc_session_wait_connected(t->s, WRITE_TIMEOUT);
        grc = result_read(t->s, opath, WRITE_TIMEOUT, &got);
        if (grc == 0) {
            rc = got->token == r->token ? 0 : ZKC_ENOTHELD;
            zkc_task_result_free(got);
            break;
        }
        if (grc == ZKC_ECONNLOSS || grc == ZKC_ETIMEDOUT)
            continue; /* still unknown: look again */
        grc = zkc_get(t->s, rpath, WRITE_TIMEOUT, NULL, NULL, &st);
        if (grc == ZKC_ECONNLOSS || grc == ZKC_ETIMEDOUT)
            continue; /* not "not held": a connection error says nothing */
        if (grc == 0 && st.czxid == r->token && st.owner == zkc_session_id(t->s))
            continue; /* still ours and not written: again */
        rc = ZKC_ENOTHELD;
        break;
    }
    if (rc != 0)
        claim_delete(t, rpath);
out:
    free(rpath);
    free(tpath);
    free(apath);
    free(opath);
    return rc;
}

static void *run_main(void *arg)
{
    struct run *r = arg;
    zkc_tasks *t = r->t;
    zkc_task task;
    char *output = NULL, *doc;
    size_t olen = 0;
    int status, rc = ZKC_ENOMEM;

    task.id = r->name;
    task.payload = r->payload ? r->payload : "";
    task.len = (size_t)r->len;
    task.token = r->token;
    status = t->run(t, &task, &output, &olen, t->user_data);
    doc = result_encode(r->name, status, output, output ? olen : 0, t->member_id, r->token);
    free(output);
    if (doc)
        rc = result_write(t, r, doc);
    free(doc);
    if (rc == 0)
        zkc__log(t->s, ZKC_LOG_DEBUG, "task queue: %s done (status %d)", r->name, status);
    else
        zkc__log(t->s, ZKC_LOG_WARN,
                 "task queue: result of %s (token %lld) not written: %s (the claim is no "
                 "longer ours; the task runs again elsewhere)",
                 r->name, (long long)r->token, zkc_strerror(rc));
    pthread_mutex_lock(&t->mu);
    if (rc == 0)
        t->st.completed++;
    else
        t->st.fenced++;
    r->done = 1;
    t->nruns--;
    t->dirty = 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Join the runs that finished. */
static void reap(zkc_tasks *t, int all)
{
    for (;;) {
        struct run *found = NULL;
        zkc__smap_item *it;
        size_t b;

        pthread_mutex_lock(&t->mu);
        for (b = 0; b < t->runs.nb && !found; b++)
            for (it = t->runs.b[b]; it && !found; it = it->next)
                if (((struct run *)it->val)->done || all)
                    found = it->val;
        if (found)
            zkc__smap_del(&t->runs, found->name);
        pthread_mutex_unlock(&t->mu);
        if (!found)
            return;
        pthread_join(found->th, NULL);
        free(found->payload);
        free(found);
    }
}

static void worker_pass(zkc_tasks *t)
{
    zkc_cache_view *av = NULL;
    struct live *l = NULL, *me;
    int nl = 0, i, n;

    if (live_members(t, &l, &nl) != 0)
        return;
    me = live_find(l, nl, t->member_id);
    if (!me || zkc_cache_view_get(t->caches[C_ASSIGN], &av))
        goto out;
    n = zkc_cache_view_count(av);
    for (i = 0; i < n; i++) {
        const char *name = zkc_cache_view_name(av, i);
        const zkc_stat *st = zkc_cache_view_stat(av, i);
        int len = 0, busy, mine;
        const char *data = zkc_cache_view_data(av, i, &len);
        struct assign a;

        if (!zkc_task_id_valid(name) || !st || assign_parse(data, len, &a) != 0 ||
            strcmp(a.member, t->member_id) != 0)
            continue;
        pthread_mutex_lock(&t->mu);
        mine = zkc__smap_get(&t->runs, name) != NULL;
        busy = t->nruns >= me->capacity || t->stop;
        pthread_mutex_unlock(&t->mu);
        if (busy)
            break;
        if (mine)
            continue;
        /* Claimed by us but not running here: a claim of our previous
         * session (it died with it: take the task again), or the cache
         * still shows a task we just finished. One read tells; a worker
         * keeps no cache of the claims, which would cost every worker a
         * listing per claim. */
        if (a.claimed && exists_now(t, t->dirs[D_RUNNING], name) != 0)
            continue;
        claim(t, name, st->version);
    }
out:
    zkc_cache_view_free(av);
    live_free(l, nl);
}

static void *loop_main(void *arg)
{
    zkc_tasks *t = arg;
    int was_leader = 0;

    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        int leader;

        if (!t->dirty) {
            struct timespec ts;
            zkc__deadline(&ts, TICK_MS);
            pthread_cond_timedwait(&t->cond, &t->mu, &ts);
        }
        if (t->stop)
            break;
        t->dirty = 0;
        pthread_mutex_unlock(&t->mu);
        reap(t, 0);
        /* The election's callbacks are its owner's: poll its state at each
         * wake-up (the election folder's cache wakes us at every change,
         * the tick catches the state machine settling after it). */
        leader = t->el && zkc_election_is_leader(t->el, NULL);
        if (leader)
            leader_pass(t);
        else if (was_leader) {
            zkc__smap_item *it, *next;
            size_t b;
            for (b = 0; b < t->planned.nb; b++)
                for (it = t->planned.b[b]; it; it = next) {
                    next = it->next;
                    free(zkc__smap_del(&t->planned, it->key));
                }
        }
        was_leader = leader;
        if (t->member_id)
            worker_pass(t);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void tasks_destroy(zkc_tasks *t)
{
    int i;

    for (i = 0; i < 5; i++)
        zkc_cache_free(t->caches[i]);
    for (i = 0; i < 4; i++)
        free(t->dirs[i]);
    if (t->planned.b) {
        zkc__smap_item *it;
        size_t b;
        for (b = 0; b < t->planned.nb; b++)
            for (it = t->planned.b[b]; it; it = it->next)
                free(it->val);
    }
    zkc__smap_clear(&t->planned);
    zkc__smap_clear(&t->warned);
    zkc__smap_clear(&t->runs);
    free(t->cluster);
    free(t->member_id);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int zkc_tasks_new(zkc_tasks **out, zkc_session *s, const char *cluster_path,
                  const zkc_tasks_opts *o)
{
    static const char *sub[4] = {"tasks", "assign", "running", "results"};
    char *paths[5] = {NULL, NULL, NULL, NULL, NULL};
    zkc_cache_opts co;
    zkc_tasks *t;
    int i, rc = ZKC_ENOMEM;

    if (!out || !s || !cluster_path || zkc__path_check(cluster_path) != 0 || !o ||
        (o->member_id && (!o->run || !*o->member_id || strlen(o->member_id) > MEMBER_ID_MAX)) ||
        (!o->member_id && !o->election) ||
        (o->election_path && zkc__path_check(o->election_path) != 0) ||
        (o->members_path && zkc__path_check(o->members_path) != 0))
        return ZKC_EINVAL;
    if (!(t = calloc(1, sizeof(*t))))
        return ZKC_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    if (zkc__cond_init(&t->cond) != 0) {
        pthread_mutex_destroy(&t->mu);
        free(t);
        return ZKC_ENOMEM;
    }
    zkc__smap_init(&t->runs);
    zkc__smap_init(&t->planned);
    zkc__smap_init(&t->warned);
    t->s = s;
    t->run = o->run;
    t->user_data = o->user_data;
    t->el = o->election;
    t->cluster = strdup(cluster_path);
    t->member_id = o->member_id ? strdup(o->member_id) : NULL;
    if (!t->cluster || (o->member_id && !t->member_id))
        goto fail;
    for (i = 0; i < 4; i++)
        if (!(t->dirs[i] = work_path(cluster_path, sub[i], NULL)))
            goto fail;
    paths[C_MEMBERS] =
        o->members_path ? strdup(o->members_path) : zkc__path_join(cluster_path, "members");
    paths[C_ELECTION] =
        o->election_path ? strdup(o->election_path) : zkc__path_join(cluster_path, "leader");
    paths[C_TASKS] = strdup(t->dirs[D_TASKS]);
    paths[C_ASSIGN] = strdup(t->dirs[D_ASSIGN]);
    paths[C_RUNNING] = strdup(t->dirs[D_RUNNING]);
    for (i = 0; i < 5; i++) {
        if (!paths[i])
            goto fail;
        if (i == C_ELECTION && !t->el)
            continue;
        if ((i == C_TASKS || i == C_RUNNING) && !t->el)
            continue; /* only the leader reads the tasks and the claims */
        zkc_cache_opts_init(&co);
        co.on_event = on_cache;
        co.user_data = t;
        /* members: payload for ids and capacities; assign: the member and
         * the version; tasks and claims: names only */
        co.fetch_data = co.watch_data = i == C_MEMBERS || i == C_ASSIGN;
        if ((rc = zkc_cache_new(&t->caches[i], s, paths[i], &co)) != 0)
            goto fail;
    }
    for (i = 0; i < 5; i++)
        if (t->caches[i] && (rc = zkc_cache_start(t->caches[i])) != 0)
            goto fail;
    /* Caches already deliver (on_cache -> wake) from their dispatcher. */
    pthread_mutex_lock(&t->mu);
    t->dirty = 1;
    pthread_mutex_unlock(&t->mu);
    if (pthread_create(&t->thread, NULL, loop_main, t) != 0) {
        rc = ZKC_ESYS;
        goto fail;
    }
    for (i = 0; i < 5; i++)
        free(paths[i]);
    zkc__session_attach(s);
    *out = t;
    return 0;
fail:
    for (i = 0; i < 5; i++)
        free(paths[i]);
    tasks_destroy(t);
    return rc == 0 ? ZKC_ENOMEM : rc;
}

void zkc_tasks_free(zkc_tasks *t)
{
    zkc_session *s;

    if (!t)
        return;
    s = t->s;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    /* runs finish (callbacks return, results are written) */
    reap(t, 1);
    tasks_destroy(t);
    zkc__session_detach(s);
}
