/* Work assignment (include/zkcoord/work.h): items, a plan written by the
 * leader, and claims held by the members.
 *
 * A handle is driven by one thread of its own (the "worker"): it sleeps
 * until something it follows changed, then makes one pass: as leader,
 * re-plan and write the plan; as member, revoke what it lost, delete the
 * claims of what was revoked, claim what it was given. Everything it
 * follows comes from children caches (zkc_cache, cache.c) whose callbacks
 * only mark the handle dirty: members, items (with their specs), the work
 * folder (the plan node's data) and claims; and from an election observer
 * that tells who leads. The worker may block (plain zkc_get, fenced
 * multis, claim requests through zkc__call), so no state machine runs on
 * the ZooKeeper threads, and a pass always acts on a fresh snapshot: a
 * change during a pass marks the handle dirty again.
 *
 * Safety of the hand-over (no two members run one item): a member runs an
 * item from ASSIGNED until its REVOKED callback returned, and holds the
 * item's claim (an ephemeral node, exclusive by ZooKeeper's create) for at
 * least that long: the claim is created before ASSIGNED is posted and
 * deleted only after REVOKED returned. A new owner creates its claim only
 * when the old one is gone. The one exception is the session's death,
 * which frees the claims by itself: REVOKED then comes as soon as the
 * session is known LOST (safety lane), and the server gives the claim away
 * only after the session timeout, which the local timer of the session
 * (DESIGN: LOST on no reconnect within the timeout) reaches first.
 *
 * The claim's delete is sent on the very ZooKeeper session that created it
 * (zkc__zh_lock with the generation check): after a LOST, a claim of the
 * old session is never deleted by the new one, so a member can never
 * delete a claim the next owner already re-created. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "internal.h"
#include "naming.h"
#include "payload.h"
#include "work_plan.h"
#include "zkcoord/work.h"

/* Wait slices of the worker when it has a reason to look again without
 * an event: a request failed (connection trouble), or the election
 * observer says we lead but the election has not told us yet. */
#define RETRY_MS       200
#define LEADER_POLL_MS 20
#define MEMBER_MAX     65536

enum hstate {
    H_ASSIGNING = 1, /* claimed; ASSIGNED posted, not run yet */
    H_DELIVERING,    /* ASSIGNED running */
    H_RUNNING,       /* ASSIGNED returned */
    H_REVOKING,      /* REVOKED posted or running */
    H_REVOKED,       /* REVOKED returned: delete the claim */
    H_DEAD           /* forgotten (session lost): the worker frees it */
};

struct held {
    struct held *next;
    char *item;
    int64_t token;
    int64_t sid;  /* session that created the claim */
    unsigned gen; /* its generation */
    enum hstate state;
    int lost;         /* the session was lost while ASSIGNED ran: REVOKED once it returned */
    int closing_told; /* zkc_work_free(): its REVOKED (CLOSED) not yet returned */
    int claim_gone;   /* found gone or not ours: no fenced write passes any more */
};

struct zkc_work {
    zkc_session *s;
    char *cluster, *work_path, *items_path, *plan_path, *claims_path, *members_path, *leader_path;
    char *id;
    zkc_election *el;
    zkc_work_fn fn;
    void *ud;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs;
    int closing;
    int dirty;
    int verify;             /* RECONNECTED: check every held claim, then tell */
    int lost_pending;       /* LOST jobs posted, not yet told: no new claim meanwhile */
    int leader_is_us;       /* the observer saw our node lead */
    char leader_node[128];  /* as the observer last told */
    int64_t warned_plan_mz; /* mzxid of the last malformed plan reported */
    struct held *held;
    pthread_t thread;
    int thread_started;
    int hooked;

    zkc_cache *c_members, *c_items, *c_work, *c_claims;
    /* Claims (by item) read once and found to be another session's: not
     * read again while they stay in the claims view (the worker's own). */
    char **foreign;
    int n_foreign;
    zkc_election *obs;
};

struct job {
    zkc_work *w;
    zkc_work_event ev;
    char *item;
    char *spec;
    struct job *next; /* LOST: the REVOKED that come first */
};

static const char *const state_names[] = {"running",  "unplanned", "owner_down", "waiting",
                                          "handover", "bad_claim", "bad_spec",   "stray_claim"};

const char *zkc_work_item_state_name(zkc_work_item_state st)
{
    if ((int)st < 0 || (size_t)st >= sizeof(state_names) / sizeof(state_names[0]))
        return "?";
    return state_names[st];
}

const char *zkc_work_event_name(zkc_work_event_type t)
{
    switch (t) {
    case ZKC_WORK_ASSIGNED:
        return "assigned";
    case ZKC_WORK_REVOKED:
        return "revoked";
    case ZKC_WORK_SUSPENDED:
        return "suspended";
    case ZKC_WORK_RECONNECTED:
        return "reconnected";
    case ZKC_WORK_LOST:
        return "lost";
    }
    return "?";
}

const char *zkc_work_revoke_reason_name(zkc_work_revoke_reason r)
{
    switch (r) {
    case ZKC_WORK_MOVED:
        return "moved";
    case ZKC_WORK_REMOVED:
        return "removed";
    case ZKC_WORK_CLAIM_GONE:
        return "claim_gone";
    case ZKC_WORK_SESSION:
        return "session";
    case ZKC_WORK_CLOSED:
        return "closed";
    }
    return "?";
}

int zkc_work_item_name_check(const char *item)
{
    return zkc__work_item_ok(item);
}

void zkc_work_opts_init(zkc_work_opts *o)
{
    if (o)
        memset(o, 0, sizeof(*o));
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);

    if (!p)
        return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

/* ------------------------------------------------------ claim requests */

/* A create or delete of a claim on one ZooKeeper session, through a
 * zkc__call (see call.c), registered as pending so a completion the client
 * drops at close still completes it. */
struct creq {
    zkc__pending pd; /* first: dropped() gets back to the request */
    zkc_session *s;
    zkc__call *call;
    struct Stat st;
};

static void creq_finish(struct creq *r, int zrc)
{
    zkc__call *call = r->call;

    zkc__call_complete(call, zrc);
    zkc__call_unref(call);
}

static void creq_dropped(zkc__pending *pd)
{
    creq_finish((struct creq *)pd, ZCONNECTIONLOSS);
}

static void creq_create_done(int rc, const char *name, const struct Stat *st, const void *data)
{
    struct creq *r = (struct creq *)data;

    (void)name;
    zkc__pending_done(r->s, &r->pd);
    if (rc == ZOK && st)
        r->call->stat = *st;
    creq_finish(r, rc);
}

static void creq_void_done(int rc, const void *data)
{
    struct creq *r = (struct creq *)data;

    zkc__pending_done(r->s, &r->pd);
    creq_finish(r, rc);
}

enum { CLAIM_CREATE, CLAIM_DELETE };
#define ZSTALE (-100001) /* not a ZooKeeper code: the session of `want_gen` is gone */

/* Create (ephemeral, data = our id) or delete the claim of `item`. For a
 * delete, `want_gen` is the generation that created it: when the current
 * handle is of another one, nothing is sent (ZSTALE). Returns a ZooKeeper
 * code; on a create's ZOK, *st is the new node's stat and *gen_out the
 * generation it was created in. */
static int claim_op(zkc_work *w, int kind, const char *item, unsigned want_gen, struct Stat *st,
                    unsigned *gen_out)
{
    zkc__call *call;
    struct creq *r;
    zhandle_t *zh;
    char *path = join(w->claims_path, item);
    unsigned gen;
    int zrc, timeout = zkc_session_timeout_ms(w->s);

    if (!path)
        return ZSYSTEMERROR;
    call = zkc__call_new();
    r = calloc(1, sizeof(*r));
    if (!call || !r) {
        if (call)
            zkc__call_unref(call);
        free(r);
        free(path);
        return ZSYSTEMERROR;
    }
    r->s = w->s;
    r->call = call;
    call->extra = r;
    call->extra_free = free;
    zh = zkc__zh_lock(w->s, &gen);
    if (!zh) {
        zkc__call_unref(call);
        free(path);
        return ZCONNECTIONLOSS;
    }
    if (kind == CLAIM_DELETE && gen != want_gen) {
        zkc__zh_unlock(w->s);
        zkc__call_unref(call);
        free(path);
        return ZSTALE;
    }
    zkc__call_ref(call); /* the completion's */
    zkc__pending_add(w->s, &r->pd, gen, creq_dropped);
    if (kind == CLAIM_CREATE)
        zrc = zoo_acreate2(zh, path, w->id, (int)strlen(w->id), zkc__acl(w->s), ZOO_EPHEMERAL,
                           creq_create_done, r);
    else
        zrc = zoo_adelete(zh, path, -1, creq_void_done, r);
    if (zrc != ZOK)
        zkc__pending_done(w->s, &r->pd);
    zkc__zh_unlock(w->s);
    free(path);
    if (zrc != ZOK) {
        zkc__call_unref(call); /* no completion will come */
        zkc__call_unref(call);
        return zrc;
    }
    if (zkc__call_wait(call, timeout > 0 ? timeout : 10000) != 0) {
        zkc__call_unref(call);
        return ZOPERATIONTIMEOUT; /* outcome unknown: the claims cache will tell */
    }
    zrc = call->rc;
    if (zrc == ZOK && st)
        *st = call->stat;
    if (gen_out)
        *gen_out = gen;
    zkc__call_unref(call);
    return zrc;
}

/* ------------------------------------------------------------ handle */

static void work_ref(zkc_work *w)
{
    pthread_mutex_lock(&w->mu);
    w->refs++;
    pthread_mutex_unlock(&w->mu);
}

static void work_unref(zkc_work *w)
{
    int left;
    struct held *h;

    pthread_mutex_lock(&w->mu);
    left = --w->refs;
    pthread_mutex_unlock(&w->mu);
    if (left)
        return;
    while ((h = w->held)) {
        w->held = h->next;
        free(h->item);
        free(h);
    }
    zkc_strings_free(w->foreign, w->n_foreign);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w->cluster);
    free(w->work_path);
    free(w->items_path);
    free(w->plan_path);
    free(w->claims_path);
    free(w->members_path);
    free(w->leader_path);
    free(w->id);
    free(w);
}

static void mark_dirty(zkc_work *w)
{
    pthread_mutex_lock(&w->mu);
    w->dirty = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void on_cache(zkc_cache *c, const zkc_cache_event *ev, void *ud)
{
    (void)c;
    if (ev->type == ZKC_CACHE_CHANGED)
        mark_dirty(ud);
}

static void on_leader(zkc_election *e, const zkc_election_event *ev, void *ud)
{
    zkc_work *w = ud;

    (void)e;
    if (ev->type != ZKC_ELECTION_LEADER_CHANGED)
        return;
    pthread_mutex_lock(&w->mu);
    snprintf(w->leader_node, sizeof(w->leader_node), "%s", ev->leader_node ? ev->leader_node : "");
    w->dirty = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static struct held *held_find(zkc_work *w, const char *item)
{
    struct held *h;

    for (h = w->held; h; h = h->next)
        if (h->state != H_DEAD && strcmp(h->item, item) == 0)
            return h;
    return NULL;
}

static struct held *held_find_token(zkc_work *w, const char *item, int64_t token)
{
    struct held *h = held_find(w, item);

    return h && h->token == token ? h : NULL;
}

static void job_free(struct job *j)
{
    while (j) {
        struct job *next = j->next;

        free(j->item);
        free(j->spec);
        free(j);
        j = next;
    }
}

static struct job *job_new(zkc_work *w, zkc_work_event_type type, const char *item, int64_t token)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    j->w = w;
    j->ev.type = type;
    j->ev.token = token;
    if (item && !(j->item = strdup(item))) {
        free(j);
        return NULL;
    }
    j->ev.item = j->item;
    return j;
}

static void call_user(zkc_work *w, const zkc_work_event *ev)
{
    if (w->fn)
        w->fn(w, ev, w->ud);
}

/* Ordinary lane: ASSIGNED, unless the hold ended (LOST) or the handle is
 * closing by the time it runs. */
static int post(zkc_work *w, struct job *j, int safety, void (*fn)(void *));
static void lost_told(zkc_work *w);

/* Safety lane: one REVOKED whatever `closing` says (the hold is over). */
static void run_closed_one(void *arg)
{
    struct job *j = arg;
    zkc_work *w = j->w;

    call_user(w, &j->ev);
    job_free(j);
    work_unref(w);
}

static void run_assigned(void *arg)
{
    struct job *j = arg, *lost = NULL;
    zkc_work *w = j->w;
    struct held *h;
    int go;

    pthread_mutex_lock(&w->mu);
    h = held_find_token(w, j->item, j->ev.token);
    go = h && h->state == H_ASSIGNING && !w->closing;
    if (go)
        h->state = H_DELIVERING;
    pthread_mutex_unlock(&w->mu);
    if (go)
        call_user(w, &j->ev);
    pthread_mutex_lock(&w->mu);
    h = held_find_token(w, j->item, j->ev.token);
    if (go && h && h->state == H_DELIVERING) {
        if (h->lost) {
            /* LOST came while the user was starting the item: REVOKED
             * now, after ASSIGNED returned, never during it. */
            h->state = H_DEAD;
            lost = job_new(w, ZKC_WORK_REVOKED, h->item, h->token);
            if (lost)
                lost->ev.reason = ZKC_WORK_SESSION;
        } else {
            h->state = H_RUNNING;
        }
    }
    w->dirty = 1; /* a revocation may be waiting for RUNNING */
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (lost)
        post(w, lost, 1, run_closed_one);
    job_free(j);
    work_unref(w);
}

/* Safety lane: REVOKED; the claim is deleted by the worker after it. Only
 * while the hold is still being revoked: zkc_work_free() or LOST may have
 * ended it (and told the user) meanwhile. */
static void run_revoked(void *arg)
{
    struct job *j = arg;
    zkc_work *w = j->w;
    struct held *h;
    int go;

    pthread_mutex_lock(&w->mu);
    h = held_find_token(w, j->item, j->ev.token);
    go = h && h->state == H_REVOKING;
    if (go && h->lost)
        j->ev.reason = ZKC_WORK_SESSION; /* lost while queued: the claim is gone */
    pthread_mutex_unlock(&w->mu);
    if (go)
        call_user(w, &j->ev);
    pthread_mutex_lock(&w->mu);
    h = held_find_token(w, j->item, j->ev.token);
    /* A claim found gone is not deleted: the node at its path now may be
     * the next owner's. */
    if (h && h->state == H_REVOKING)
        h->state = j->ev.reason == ZKC_WORK_CLAIM_GONE ? H_DEAD : H_REVOKED;
    w->dirty = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    job_free(j);
    work_unref(w);
}

/* Safety lane (or inline): the REVOKED of zkc_work_free(), whatever
 * `closing` says. */
static void run_closed(void *arg)
{
    struct job *j = arg, *r;
    zkc_work *w = j->w;

    for (r = j->next; r; r = r->next)
        call_user(w, &r->ev);
    job_free(j);
    work_unref(w);
}

/* Safety lane: a connection-state event, after the REVOKED it carries
 * (LOST). */
static void run_state(void *arg)
{
    struct job *j = arg, *r;
    zkc_work *w = j->w;
    int closing, lost = j->ev.type == ZKC_WORK_LOST;

    pthread_mutex_lock(&w->mu);
    closing = w->closing;
    pthread_mutex_unlock(&w->mu);
    /* The REVOKED of a LOST are told even while closing: those holds are
     * over, and zkc_work_free() does not revoke them again (it waits for
     * this job with its barrier). */
    for (r = j->next; r; r = r->next)
        call_user(w, &r->ev);
    if (!closing)
        call_user(w, &j->ev);
    job_free(j);
    if (lost)
        lost_told(w);
    work_unref(w);
}

/* Post `j` (holding a reference on w for it) to a lane. Returns the
 * dispatcher's code (the job is freed when it failed). */
static int post(zkc_work *w, struct job *j, int safety, void (*fn)(void *))
{
    int rc;

    work_ref(w);
    rc = safety ? zkc__dispatch_safety(w->s, fn, j) : zkc__dispatch(w->s, fn, j);
    if (rc != 0) {
        job_free(j);
        work_unref(w);
    }
    return rc;
}

/* A LOST job was told (or never will be): claims may start again. */
static void lost_told(zkc_work *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->lost_pending > 0)
        w->lost_pending--;
    w->dirty = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* Session manager thread; must not block. */
static void state_hook(void *arg, zkc_conn_state st, unsigned gen)
{
    zkc_work *w = arg;
    struct job *j, *r;
    struct held *h;
    int any = 0;

    (void)gen;
    if (st == ZKC_CONN_CONNECTED || st == ZKC_CONN_NONE) {
        mark_dirty(w);
        return;
    }
    j = job_new(w,
                st == ZKC_CONN_SUSPENDED     ? ZKC_WORK_SUSPENDED
                : st == ZKC_CONN_RECONNECTED ? ZKC_WORK_RECONNECTED
                                             : ZKC_WORK_LOST,
                NULL, 0);
    pthread_mutex_lock(&w->mu);
    for (h = w->held; h; h = h->next)
        if (h->state != H_DEAD)
            any = 1;
    if (st == ZKC_CONN_LOST) {
        /* Every hold ends now. One whose ASSIGNED has not run yet is
         * dropped silently (run_assigned will not call the user); one
         * being revoked gets its REVOKED from its own job, which runs
         * before this one on the same lane -- so it stays REVOKING: its
         * job finds it, tells the user (reason SESSION now: the claim
         * went with the session), and the worker then forgets it
         * (its delete is refused as of another generation). Marking it
         * DEAD here made that job skip the user: the item's REVOKED was
         * never told, and the member ran it on while the next owner did
         * (chaos seed 19 schedule 0: REVOKED MOVED queued behind a slow
         * one when the session was lost; regression test "LOST while a
         * REVOKED is queued"). */
        for (h = w->held; h; h = h->next) {
            if (h->state == H_DELIVERING) {
                h->lost = 1; /* its REVOKED follows its ASSIGNED's return */
                continue;
            }
            if (h->state == H_REVOKING) {
                h->lost = 1; /* told with reason SESSION: the claim went with it */
                continue;
            }
            if (h->state == H_RUNNING && j) {
                r = job_new(w, ZKC_WORK_REVOKED, h->item, h->token);
                if (r) {
                    r->ev.reason = ZKC_WORK_SESSION;
                    r->next = j->next;
                    j->next = r;
                }
            }
            h->state = H_DEAD;
        }
    } else if (st == ZKC_CONN_RECONNECTED) {
        w->verify = any;
        any = 0; /* told by the worker once the claims are verified */
    }
    /* The new session claims nothing before this LOST (and the REVOKED
     * it carries) was told: else the ordinary lane could deliver the new
     * session's ASSIGNED of an item before the safety lane, held up by a
     * slow callback, delivers the old hold's REVOKED (work.h's order:
     * REVOKED, LOST, then the new session). */
    if (st == ZKC_CONN_LOST && j && any)
        w->lost_pending++;
    w->dirty = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (j && any) {
        if (post(w, j, 1, run_state) != 0 && st == ZKC_CONN_LOST)
            lost_told(w);
    } else {
        job_free(j);
    }
}

static int claim_data_ok(const char *d, int len);

/* -------------------------------------------------------------- views */

/* A child of a cache view, looked up by name (views are sorted by name). */
static int view_find(const zkc_cache_view *v, const char *name)
{
    int lo = 0, hi = v ? zkc_cache_view_count(v) - 1 : -1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(zkc_cache_view_name(v, mid), name);

        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Names of a cache view equal `names` (sorted)? */
static int same_names(const zkc_cache_view *v, char **names, int n)
{
    int i;

    if ((v ? zkc_cache_view_count(v) : 0) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (strcmp(zkc_cache_view_name(v, i), names[i]) != 0)
            return 0;
    return 1;
}

struct mem {
    char *id;
    int64_t weight;
};

static int mem_cmp(const void *a, const void *b)
{
    return strcmp(((const struct mem *)a)->id, ((const struct mem *)b)->id);
}

/* Live members from the member folder's children (name, data, stat):
 * ephemeral nodes with an id, each id once, sorted; weights from the
 * metadata. `log` (may be NULL) reports bad weights. With `drained`, a
 * node whose ServerSet status is STOPPING (a member being drained, as the
 * task planner reads it) is left out: the planner gives it nothing, so its
 * items move as a leaver's do (only its own), and it is back in the plan
 * the moment its status is anything else again. */
static int members_from(zkc_session *log, int drained, int n, const char *(*name)(void *, int),
                        const char *(*data)(void *, int, int *), int64_t (*owner)(void *, int),
                        void *ctx, struct mem **out, int *nout)
{
    struct mem *m = calloc((size_t)(n ? n : 1), sizeof(*m));
    int i, k = 0;

    if (!m)
        return ZKC_ENOMEM;
    for (i = 0; i < n; i++) {
        int len = 0;
        const char *d = data(ctx, i, &len);
        struct zkc__mbody *b;
        char why[160];

        if (owner(ctx, i) == 0)
            continue; /* not an ephemeral node: not a live member */
        b = zkc__payload_decode(name(ctx, i), d, len, MEMBER_MAX, NULL, 0);
        if (!b) {
            free(m);
            return ZKC_ENOMEM;
        }
        if (drained && b->status && strcmp(b->status, "STOPPING") == 0) {
            zkc__mbody_unref(b);
            continue;
        }
        if (b->id && !(b->flags & ZKC_MEMBER_NO_ID) && b->id[0]) {
            if (zkc__work_weight(b->metadata, &m[k].weight, why, sizeof(why)) && log)
                zkc_session_log(log, ZKC_LOG_WARN, "work: member '%s': %s", b->id, why);
            m[k].id = strdup(b->id);
            if (!m[k].id) {
                zkc__mbody_unref(b);
                while (k--)
                    free(m[k].id);
                free(m);
                return ZKC_ENOMEM;
            }
            k++;
        }
        zkc__mbody_unref(b);
    }
    qsort(m, (size_t)k, sizeof(*m), mem_cmp);
    /* duplicates: the id counts once (its weight from the first by name) */
    for (i = 1, n = k ? 1 : 0; i < k; i++) {
        if (strcmp(m[n - 1].id, m[i].id) == 0)
            free(m[i].id);
        else
            m[n++] = m[i];
    }
    *out = m;
    *nout = n;
    return 0;
}

static void members_free(struct mem *m, int n)
{
    while (n-- > 0)
        free(m[n].id);
    free(m);
}

static const char *cv_name(void *ctx, int i)
{
    return zkc_cache_view_name(ctx, i);
}
static const char *cv_data(void *ctx, int i, int *len)
{
    return zkc_cache_view_data(ctx, i, len);
}
static int64_t cv_owner(void *ctx, int i)
{
    const zkc_stat *st = zkc_cache_view_stat(ctx, i);

    return st ? st->owner : 0;
}

/* The plan from the work folder's view: status and plan (cleared when not
 * OK); *zver gets the plan node's data version (-1 when missing). */
static zkc_work_plan_status plan_from(const zkc_cache_view *wv, zkc__wplan *p, int32_t *zver,
                                      int64_t *mzxid, char *why, size_t why_len)
{
    int i = view_find(wv, "plan"), len = 0;
    const char *d;
    const zkc_stat *st;

    zkc__wplan_clear(p);
    *zver = -1;
    *mzxid = 0;
    if (i < 0)
        return ZKC_WORK_PLAN_MISSING;
    d = zkc_cache_view_data(wv, i, &len);
    st = zkc_cache_view_stat(wv, i);
    if (st) {
        *zver = st->version;
        *mzxid = st->mzxid;
    }
    if (len > ZKC_WORK_MAX_PLAN) {
        snprintf(why, why_len, "larger than %d bytes", ZKC_WORK_MAX_PLAN);
        return ZKC_WORK_PLAN_MALFORMED;
    }
    if (zkc__wplan_decode(d, len, p, why, why_len) != 0)
        return ZKC_WORK_PLAN_MALFORMED;
    return ZKC_WORK_PLAN_OK;
}

/* -------------------------------------------------------------- leader */

/* Without a readable plan, the previous assignment is who runs what now:
 * the claims (ephemeral, data a member id), so replacing a lost or
 * garbled plan moves nothing that need not move. One read per claim: the
 * claims cache holds names only, and this is the rare path. */
static int prev_from_claims(zkc_work *w, const zkc_cache_view *cv, zkc__wplan *p)
{
    int n = cv ? zkc_cache_view_count(cv) : 0, i, rc;

    zkc__wplan_clear(p);
    if (!n)
        return 0;
    p->lines = calloc((size_t)n, sizeof(*p->lines));
    if (!p->lines)
        return ZKC_ENOMEM;
    for (i = 0; i < n; i++) {
        char *path = join(w->claims_path, zkc_cache_view_name(cv, i)), *d = NULL;
        int len = 0;
        zkc_stat st;

        if (!path) {
            zkc__wplan_clear(p);
            return ZKC_ENOMEM;
        }
        rc = zkc_get(w->s, path, zkc_session_timeout_ms(w->s), &d, &len, &st);
        free(path);
        if (rc == ZKC_ENONODE)
            continue;
        if (rc != 0) {
            zkc__wplan_clear(p);
            return rc;
        }
        if (st.owner == 0 || len > ZKC_PAYLOAD_MAX_ID || !claim_data_ok(d, len)) {
            free(d); /* foreign or garbage: not an assignment */
            continue;
        }
        p->lines[p->n].item = strdup(zkc_cache_view_name(cv, i));
        p->lines[p->n].member = d;
        p->n++;
        if (!p->lines[p->n - 1].item) {
            zkc__wplan_clear(p);
            return ZKC_ENOMEM;
        }
    }
    return 0;
}

/* One planning step. Returns 1 when it should be retried soon (views not
 * yet in line with the server, a write failed), else 0. */
static int leader_pass(zkc_work *w, const zkc_cache_view *mv, const zkc_cache_view *iv,
                       const zkc_cache_view *wv, const zkc_cache_view *cv)
{
    zkc__wplan prev = {0}, next = {0};
    zkc_work_plan_status pst;
    struct mem *mem = NULL;
    zkc__wp_member *wm = NULL;
    const char **items = NULL;
    int *owner = NULL;
    char **names = NULL, why[200], *text = NULL;
    int n_names = 0, nm = 0, ni = 0, i, rc, retry = 0, changed;
    int32_t zver;
    int64_t mz;
    size_t tlen;
    int tmo = zkc_session_timeout_ms(w->s);
    zkc_op op;

    /* Act only on views that match the server now: a cache that has not
     * read its folder yet (a new leader's) would otherwise look empty and
     * revoke everything. Two reads per plan. */
    rc = zkc_get_children(w->s, w->members_path, tmo, &names, &n_names, NULL);
    if (rc != 0 || !same_names(mv, names, n_names)) {
        zkc_strings_free(names, n_names);
        return rc == ZKC_ENONODE ? 0 : 1;
    }
    zkc_strings_free(names, n_names);
    names = NULL;
    n_names = 0;
    rc = zkc_get_children(w->s, w->items_path, tmo, &names, &n_names, NULL);
    if (rc != 0 || !same_names(iv, names, n_names)) {
        zkc_strings_free(names, n_names);
        return 1;
    }
    zkc_strings_free(names, n_names);

    pst = plan_from(wv, &prev, &zver, &mz, why, sizeof(why));
    if (pst == ZKC_WORK_PLAN_MALFORMED)
        zkc_session_log(w->s, ZKC_LOG_WARN,
                        "work: the plan node %s is not a plan (%s); replacing it", w->plan_path,
                        why);
    if (pst != ZKC_WORK_PLAN_OK && prev_from_claims(w, cv, &prev) != 0)
        return 1;
    if (members_from(w->s, 1, mv ? zkc_cache_view_count(mv) : 0, cv_name, cv_data, cv_owner,
                     (void *)mv, &mem, &nm) != 0)
        return 1;
    ni = iv ? zkc_cache_view_count(iv) : 0;
    items = calloc((size_t)(ni ? ni : 1), sizeof(*items));
    owner = calloc((size_t)(ni ? ni : 1), sizeof(*owner));
    wm = calloc((size_t)(nm ? nm : 1), sizeof(*wm));
    if (!items || !owner || !wm) {
        retry = 1;
        goto out;
    }
    for (i = 0, n_names = 0; i < ni; i++) {
        int len = 0;
        const char *name = zkc_cache_view_name(iv, i);

        zkc_cache_view_data(iv, i, &len);
        if (zkc__work_item_ok(name) != 0 || len > ZKC_WORK_MAX_SPEC)
            continue; /* reported by the view (bad_spec); never planned */
        items[n_names++] = name;
    }
    ni = n_names;
    for (i = 0; i < nm; i++) {
        wm[i].id = mem[i].id;
        wm[i].weight = mem[i].weight;
    }
    rc = zkc__work_plan(items, ni, wm, nm, prev.lines, prev.n, owner);
    if (rc != 0) {
        retry = 1;
        goto out;
    }
    /* the new plan, and whether it differs */
    next.version = prev.version + 1;
    next.leader = w->id;
    next.lines = calloc((size_t)(ni ? ni : 1), sizeof(*next.lines));
    if (!next.lines) {
        next.leader = NULL;
        retry = 1;
        goto out;
    }
    changed = pst != ZKC_WORK_PLAN_OK;
    for (i = 0; i < ni; i++) {
        next.lines[next.n].item = items[i];
        next.lines[next.n].member = owner[i] >= 0 ? wm[owner[i]].id : NULL;
        if (next.lines[next.n].member)
            next.n++;
    }
    if (!changed) {
        int k = 0;

        for (i = 0; i < next.n; i++)
            if (!changed) {
                if (k >= prev.n || strcmp(prev.lines[k].item, next.lines[i].item) != 0 ||
                    strcmp(prev.lines[k].member, next.lines[i].member) != 0)
                    changed = 1;
                k++;
            }
        if (k != prev.n)
            changed = 1;
    }
    if (changed) {
        rc = zkc__wplan_encode(&next, &text, &tlen);
        if (rc == 0) {
            memset(&op, 0, sizeof(op));
            op.path = w->plan_path;
            op.data = text;
            op.len = (int)tlen;
            if (zver >= 0) {
                op.type = ZKC_OP_SET;
                op.version = zver; /* a view behind the server fails: re-read */
            } else {
                op.type = ZKC_OP_CREATE;
            }
            rc = zkc_election_fenced_multi(w->el, &op, 1, tmo);
            if (rc == 0)
                zkc_session_log(w->s, ZKC_LOG_INFO, "work: plan %lld written: %d items, %d members",
                                (long long)next.version, ni, nm);
            else if (rc != ZKC_ENOTHELD)
                retry = 1;
        } else {
            retry = 1;
        }
    }
out:
    next.leader = NULL; /* borrowed */
    free(next.lines);   /* strings borrowed */
    free(text);
    free(items);
    free(owner);
    free(wm);
    members_free(mem, nm);
    zkc__wplan_clear(&prev);
    return retry;
}

/* -------------------------------------------------------------- member */

/* Is there a claim of `item` in the claims view (names only)? */
static int claim_in(const zkc_cache_view *cv, const char *item)
{
    return view_find(cv, item) >= 0;
}

static int foreign_has(const zkc_work *w, const char *item)
{
    int i;

    for (i = 0; i < w->n_foreign; i++)
        if (strcmp(w->foreign[i], item) == 0)
            return 1;
    return 0;
}

/* Forget the foreign claims that left the view (they may come back as
 * anyone's); worker thread only. */
static void foreign_prune(zkc_work *w, const zkc_cache_view *cv)
{
    int i, k = 0;

    for (i = 0; i < w->n_foreign; i++) {
        if (claim_in(cv, w->foreign[i]))
            w->foreign[k++] = w->foreign[i];
        else
            free(w->foreign[i]);
    }
    w->n_foreign = k;
}

static void foreign_add(zkc_work *w, const char *item)
{
    char **v = realloc(w->foreign, sizeof(*v) * (size_t)(w->n_foreign + 1));

    if (!v)
        return; /* read again next time */
    w->foreign = v;
    if ((v[w->n_foreign] = strdup(item)))
        w->n_foreign++;
}

/* Is our claim of `h` still there? A read, for when a view suggests it is
 * not (the view may simply be behind our own create). 1 yes, 0 no, -1
 * cannot tell now. */
static int claim_still_ours(zkc_work *w, const char *item, int64_t sid, int64_t token)
{
    char *path = join(w->claims_path, item);
    zkc_stat st;
    int rc;

    if (!path)
        return -1;
    rc = zkc_get(w->s, path, zkc_session_timeout_ms(w->s), NULL, NULL, &st);
    free(path);
    if (rc == ZKC_ENONODE)
        return 0;
    if (rc != 0)
        return -1;
    return st.owner == sid && st.czxid == token;
}

static int item_exists(zkc_work *w, const char *item)
{
    char *path = join(w->items_path, item);
    int rc;

    if (!path)
        return -1;
    rc = zkc_get(w->s, path, zkc_session_timeout_ms(w->s), NULL, NULL, NULL);
    free(path);
    return rc == 0 ? 1 : rc == ZKC_ENONODE ? 0 : -1;
}

/* Revoke `h` (RUNNING), posting REVOKED on the safety lane. Lock held. */
static void revoke_locked(zkc_work *w, struct held *h, zkc_work_revoke_reason why)
{
    struct job *j = job_new(w, ZKC_WORK_REVOKED, h->item, h->token);

    if (!j)
        return; /* tried again at the next pass */
    j->ev.reason = why;
    h->state = H_REVOKING;
    /* Not ours any more: the node at its path may already be the next
     * owner's, which a fenced write's check would take for ours. */
    if (why == ZKC_WORK_CLAIM_GONE)
        h->claim_gone = 1;
    w->refs++;
    if (zkc__dispatch_safety(w->s, run_revoked, j) != 0) {
        w->refs--;
        job_free(j);
        h->state = H_RUNNING;
    }
}

static int member_pass(zkc_work *w, const zkc_cache_view *iv, const zkc_cache_view *wv,
                       const zkc_cache_view *cv)
{
    zkc__wplan plan = {0};
    zkc_work_plan_status pst;
    char why[200];
    int32_t zver;
    int64_t mz, sid = zkc_session_id(w->s);
    unsigned gen = zkc_session_generation(w->s);
    zkc_conn_state cs = zkc_session_state(w->s);
    int connected = cs == ZKC_CONN_CONNECTED || cs == ZKC_CONN_RECONNECTED;
    int retry = 0, verify, i;
    struct held *h, **pp;

    pst = plan_from(wv, &plan, &zver, &mz, why, sizeof(why));
    if (pst == ZKC_WORK_PLAN_MALFORMED) {
        pthread_mutex_lock(&w->mu);
        if (w->warned_plan_mz != mz) {
            w->warned_plan_mz = mz;
            pthread_mutex_unlock(&w->mu);
            zkc_session_log(w->s, ZKC_LOG_WARN,
                            "work: the plan node %s is not a plan (%s); ignored until the leader "
                            "replaces it",
                            w->plan_path, why);
        } else {
            pthread_mutex_unlock(&w->mu);
        }
    }

    foreign_prune(w, cv);

    /* 1. What we hold: free the forgotten, delete revoked claims, revoke
     * what we lost. The list is changed only by this thread (entries are
     * never freed elsewhere), so `h` stays valid while unlocked. */
    pthread_mutex_lock(&w->mu);
    verify = w->verify && connected;
    if (verify)
        w->verify = 0; /* else kept for the first pass once connected */
    pp = &w->held;
    while ((h = *pp)) {
        if (h->state == H_DEAD) {
            *pp = h->next;
            free(h->item);
            free(h);
            continue;
        }
        pp = &h->next;
    }
    for (h = w->held; h; h = h->next) {
        enum hstate st = h->state;
        int reason = 0, gone;

        if (st == H_REVOKED) {
            pthread_mutex_unlock(&w->mu);
            i = claim_op(w, CLAIM_DELETE, h->item, h->gen, NULL, NULL);
            pthread_mutex_lock(&w->mu);
            if (i == ZOK || i == ZNONODE || i == ZSTALE) {
                if (h->state == H_REVOKED)
                    h->state = H_DEAD;
            } else {
                retry = 1;
            }
            continue;
        }
        if (st != H_RUNNING || !connected || h->gen != gen)
            continue;
        if (view_find(iv, h->item) < 0) {
            pthread_mutex_unlock(&w->mu);
            gone = item_exists(w, h->item);
            pthread_mutex_lock(&w->mu);
            if (gone == 0)
                reason = ZKC_WORK_REMOVED;
            else if (gone < 0)
                retry = 1;
        }
        if (!reason && pst == ZKC_WORK_PLAN_OK) {
            int k = zkc__wplan_find(&plan, h->item);

            if (k < 0 || strcmp(plan.lines[k].member, w->id) != 0)
                reason = ZKC_WORK_MOVED;
        }
        /* A claim of ours leaves only with our session or by a foreign
         * delete; a view without it (or a reconnect) is checked by a read,
         * as the view may be behind our own create. */
        if (!reason && (verify || !claim_in(cv, h->item))) {
            pthread_mutex_unlock(&w->mu);
            gone = claim_still_ours(w, h->item, h->sid, h->token);
            pthread_mutex_lock(&w->mu);
            if (gone == 0)
                reason = ZKC_WORK_CLAIM_GONE;
            else if (gone < 0)
                retry = 1;
        }
        if (reason && h->state == H_RUNNING)
            revoke_locked(w, h, (zkc_work_revoke_reason)reason);
    }
    pthread_mutex_unlock(&w->mu);
    if (verify) {
        struct job *j = job_new(w, ZKC_WORK_RECONNECTED, NULL, 0);

        if (j)
            post(w, j, 1, run_state);
    }

    /* 2. Claim what the plan gives us (not while a LOST is untold: its
     * job marks us dirty once told). */
    pthread_mutex_lock(&w->mu);
    if (w->lost_pending > 0)
        connected = 0;
    pthread_mutex_unlock(&w->mu);
    if (pst == ZKC_WORK_PLAN_OK && connected) {
        for (i = 0; i < plan.n; i++) {
            const char *item = plan.lines[i].item, *spec;
            int k = view_find(iv, item), len = 0, zrc, held_now, stale;
            int64_t token = 0;
            struct Stat st;
            unsigned cgen = gen;
            struct job *j;
            struct held *nh;

            if (strcmp(plan.lines[i].member, w->id) != 0 || k < 0)
                continue;
            pthread_mutex_lock(&w->mu);
            held_now = held_find(w, item) != NULL || w->closing;
            pthread_mutex_unlock(&w->mu);
            if (held_now)
                continue;
            spec = zkc_cache_view_data(iv, k, &len);
            if (len > ZKC_WORK_MAX_SPEC)
                continue;
            if (claim_in(cv, item)) {
                char *path;
                zkc_stat cst;

                if (foreign_has(w, item))
                    continue; /* someone holds it: the claims cache wakes us when it goes */
                path = join(w->claims_path, item);
                zrc = path ? zkc_get(w->s, path, zkc_session_timeout_ms(w->s), NULL, NULL, &cst)
                           : ZKC_ENOMEM;
                free(path);
                if (zrc == ZKC_ENONODE) {
                    pthread_mutex_lock(&w->mu);
                    w->dirty = 1; /* gone meanwhile: the next pass creates ours */
                    pthread_mutex_unlock(&w->mu);
                    continue;
                }
                if (zrc != 0) {
                    retry = 1;
                    continue;
                }
                if (cst.owner != sid || sid == 0) {
                    foreign_add(w, item);
                    continue;
                }
                token = cst.czxid; /* ours (a create whose reply was lost): adopt it */
            } else {
                zrc = claim_op(w, CLAIM_CREATE, item, 0, &st, &cgen);
                if (zrc == ZNODEEXISTS)
                    continue; /* the claims cache tells us when it goes */
                if (zrc != ZOK) {
                    retry = 1;
                    continue;
                }
                token = st.czxid;
                if (cgen != zkc_session_generation(w->s))
                    continue; /* that session is gone, and the claim with it */
            }
            nh = calloc(1, sizeof(*nh));
            j = job_new(w, ZKC_WORK_ASSIGNED, item, token);
            if (j && len > 0 && spec) {
                j->spec = malloc((size_t)len + 1);
                if (j->spec) {
                    memcpy(j->spec, spec, (size_t)len);
                    j->spec[len] = '\0';
                    j->ev.spec = j->spec;
                    j->ev.spec_len = len;
                }
            }
            if (!nh || !j || !(nh->item = strdup(item)) || (len > 0 && spec && !j->spec)) {
                if (nh)
                    free(nh->item);
                free(nh);
                job_free(j);
                /* Keep no claim we cannot account for. */
                claim_op(w, CLAIM_DELETE, item, cgen, NULL, NULL);
                retry = 1;
                continue;
            }
            nh->token = token;
            nh->sid = sid;
            nh->gen = cgen;
            nh->state = H_ASSIGNING;
            pthread_mutex_lock(&w->mu);
            /* The session may have been LOST since the create: its hook
             * has forgotten every hold, and would not see this one. LOST
             * moves the generation on before the hook runs, and the hook
             * takes this lock: checked here, under it, nothing slips
             * through. */
            stale = cgen != zkc_session_generation(w->s) || w->closing;
            if (!stale) {
                nh->next = w->held;
                w->held = nh;
            }
            pthread_mutex_unlock(&w->mu);
            if (stale) {
                free(nh->item);
                free(nh);
                job_free(j);
                continue;
            }
            post(w, j, 0, run_assigned);
        }
    }
    zkc__wplan_clear(&plan);
    return retry;
}

/* -------------------------------------------------------------- worker */

static int ensure_folders(zkc_work *w)
{
    int tmo = zkc_session_timeout_ms(w->s);

    if (zkc__mkdirs_sync(w->s, w->items_path, tmo) != 0)
        return -1;
    if (zkc__mkdirs_sync(w->s, w->claims_path, tmo) != 0)
        return -1;
    return 0;
}

static void *worker(void *arg)
{
    zkc_work *w = arg;
    int folders = 0, retry = 0;
    /* The views and term of the last leader pass that finished: a pass
     * on the same ones (a claim changed, say) has nothing to plan, and
     * skipping it saves its two listings. References held, so an address
     * cannot come back as another view. */
    zkc_cache_view *done_mv = NULL, *done_iv = NULL, *done_wv = NULL;
    int64_t done_term = 0;

    for (;;) {
        zkc_cache_view *mv = NULL, *iv = NULL, *wv = NULL, *cv = NULL;
        int lead = 0, poll = 0, timed;
        char mine[512];

        pthread_mutex_lock(&w->mu);
        for (;;) {
            if (w->closing)
                break;
            if (w->dirty)
                break;
            timed = retry ? RETRY_MS : (w->leader_is_us ? LEADER_POLL_MS : -1);
            if (timed < 0) {
                pthread_cond_wait(&w->cond, &w->mu);
            } else {
                struct timespec ts;

                zkc__deadline(&ts, timed);
                if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) != 0)
                    break;
            }
        }
        if (w->closing) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        w->dirty = 0;
        pthread_mutex_unlock(&w->mu);
        retry = 0;

        if (!folders) {
            if (zkc_session_wait_connected(w->s, RETRY_MS) != 0 || ensure_folders(w) != 0) {
                retry = 1;
                continue;
            }
            folders = 1;
        }
        zkc_cache_view_get(w->c_members, &mv);
        zkc_cache_view_get(w->c_items, &iv);
        zkc_cache_view_get(w->c_work, &wv);
        zkc_cache_view_get(w->c_claims, &cv);
        if (w->el) {
            lead = zkc_election_is_leader(w->el, NULL);
            if (!lead && zkc_election_node_path(w->el, mine, sizeof(mine)) == 0) {
                pthread_mutex_lock(&w->mu);
                poll = w->leader_node[0] && strcmp(zkc__path_base(mine), w->leader_node) == 0;
                w->leader_is_us = poll;
                pthread_mutex_unlock(&w->mu);
            } else {
                pthread_mutex_lock(&w->mu);
                w->leader_is_us = 0;
                pthread_mutex_unlock(&w->mu);
            }
        }
        if (lead) {
            int64_t term = 0;

            zkc_election_is_leader(w->el, &term);
            if (!(term == done_term && mv && mv == done_mv && iv == done_iv && wv == done_wv)) {
                int r = leader_pass(w, mv, iv, wv, cv);

                zkc_cache_view_free(done_mv);
                zkc_cache_view_free(done_iv);
                zkc_cache_view_free(done_wv);
                done_mv = done_iv = done_wv = NULL;
                done_term = 0;
                if (r) {
                    retry = 1;
                } else {
                    done_mv = mv ? zkc_cache_view_ref(mv) : NULL;
                    done_iv = iv ? zkc_cache_view_ref(iv) : NULL;
                    done_wv = wv ? zkc_cache_view_ref(wv) : NULL;
                    done_term = term;
                }
            }
        }
        if (member_pass(w, iv, wv, cv))
            retry = 1;
        zkc_cache_view_free(mv);
        zkc_cache_view_free(iv);
        zkc_cache_view_free(wv);
        zkc_cache_view_free(cv);
    }
    zkc_cache_view_free(done_mv);
    zkc_cache_view_free(done_iv);
    zkc_cache_view_free(done_wv);
    return NULL;
}

static int start_cache(zkc_work *w, zkc_cache **out, const char *path, int data)
{
    zkc_cache_opts o;
    int rc;

    zkc_cache_opts_init(&o);
    o.on_event = on_cache;
    o.user_data = w;
    o.fetch_data = data;
    o.watch_data = data;
    rc = zkc_cache_new(out, w->s, path, &o);
    if (rc == 0 && (rc = zkc_cache_start(*out)) != 0) {
        zkc_cache_free(*out);
        *out = NULL;
    }
    return rc;
}

static void stop_parts(zkc_work *w)
{
    zkc_cache_free(w->c_members);
    zkc_cache_free(w->c_items);
    zkc_cache_free(w->c_work);
    zkc_cache_free(w->c_claims);
    zkc_election_close(w->obs);
    w->c_members = w->c_items = w->c_work = w->c_claims = NULL;
    w->obs = NULL;
}

int zkc_work_new(zkc_work **out, zkc_session *s, const char *cluster_path, const zkc_work_opts *o)
{
    zkc_work *w;
    int rc = ZKC_ENOMEM;

    if (!out || !s || !o || !o->member_id || !o->member_id[0] ||
        strlen(o->member_id) > ZKC_PAYLOAD_MAX_ID || !cluster_path ||
        zkc__path_check(cluster_path) != 0)
        return ZKC_EINVAL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return ZKC_ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    if (zkc__cond_init(&w->cond) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return ZKC_ENOMEM;
    }
    w->refs = 1;
    w->s = s;
    w->el = o->election;
    w->fn = o->on_event;
    w->ud = o->user_data;
    w->dirty = 1;
    w->cluster = strdup(cluster_path);
    w->id = strdup(o->member_id);
    w->work_path = join(cluster_path, "work");
    w->members_path = join(cluster_path, "members");
    w->leader_path = join(cluster_path, "leader");
    if (w->work_path) {
        w->items_path = join(w->work_path, "items");
        w->plan_path = join(w->work_path, "plan");
        w->claims_path = join(w->work_path, "claims");
    }
    if (!w->cluster || !w->id || !w->work_path || !w->members_path || !w->leader_path ||
        !w->items_path || !w->plan_path || !w->claims_path)
        goto fail_mem;
    if ((rc = start_cache(w, &w->c_members, w->members_path, 1)) != 0 ||
        (rc = start_cache(w, &w->c_items, w->items_path, 1)) != 0 ||
        (rc = start_cache(w, &w->c_work, w->work_path, 1)) != 0 ||
        (rc = start_cache(w, &w->c_claims, w->claims_path, 0)) != 0)
        goto fail_parts;
    if (w->el && (rc = zkc_election_observer_new(&w->obs, s, w->leader_path, on_leader, w)) != 0)
        goto fail_parts;
    if ((rc = zkc__add_hook(s, state_hook, w)) != 0)
        goto fail_parts;
    w->hooked = 1;
    if (pthread_create(&w->thread, NULL, worker, w) != 0) {
        rc = ZKC_ESYS;
        goto fail_hook;
    }
    w->thread_started = 1;
    zkc__session_attach(s);
    *out = w;
    return 0;

fail_hook:
    zkc__remove_hook(s, state_hook, w);
fail_parts:
    stop_parts(w);
    zkc__dispatch_barrier(s);
fail_mem:
    work_unref(w);
    return rc == 0 ? ZKC_ENOMEM : rc;
}

void zkc_work_free(zkc_work *w)
{
    struct held *h;
    struct job *list;

    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->closing = 1; /* queued ASSIGNED are dropped from now on */
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (w->thread_started)
        pthread_join(w->thread, NULL);
    if (w->hooked)
        zkc__remove_hook(w->s, state_hook, w);
    stop_parts(w);
    /* An ASSIGNED or REVOKED running now finishes; the rest see `closing`
     * or their hold's state. */
    zkc__dispatch_barrier(w->s);
    /* What the user still runs: revoke it before the claims go. */
    list = job_new(w, ZKC_WORK_REVOKED, NULL, 0);
    pthread_mutex_lock(&w->mu);
    for (h = w->held; h; h = h->next) {
        if (list && (h->state == H_DELIVERING || h->state == H_RUNNING || h->state == H_REVOKING)) {
            struct job *r = job_new(w, ZKC_WORK_REVOKED, h->item, h->token);

            if (r) {
                r->ev.reason = ZKC_WORK_CLOSED;
                r->next = list->next;
                list->next = r;
                h->closing_told = 1; /* fenced writes until it returned */
            }
        }
        if (h->state != H_DEAD)
            h->state = H_REVOKED;
    }
    w->refs++; /* the job's */
    pthread_mutex_unlock(&w->mu);
    if (!list) {
        work_unref(w);
    } else if (!list->next) {
        job_free(list);
        work_unref(w);
    } else if (zkc__on_dispatcher(w->s) || zkc__dispatch_safety(w->s, run_closed, list) != 0) {
        run_closed(list);
    } else {
        zkc__dispatch_barrier(w->s);
    }
    /* The REVOKED (CLOSED) returned: no fenced write passes from here on,
     * and the deletes below go after any that did (same lock, same
     * handle: see zkc_work_fenced_multi_ex). */
    pthread_mutex_lock(&w->mu);
    for (h = w->held; h; h = h->next)
        h->closing_told = 0;
    pthread_mutex_unlock(&w->mu);
    /* Our claims go now, so their new owners need not wait for our
     * session to end. Only on the session that made them. */
    for (h = w->held; h; h = h->next)
        if (h->state == H_REVOKED)
            claim_op(w, CLAIM_DELETE, h->item, h->gen, NULL, NULL);
    zkc__session_detach(w->s);
    work_unref(w);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int zkc_work_held(zkc_work *w, char ***items, int *n)
{
    struct held *h;
    char **v;
    int k = 0, cap = 0;

    if (!w || !items || !n)
        return ZKC_EINVAL;
    pthread_mutex_lock(&w->mu);
    for (h = w->held; h; h = h->next)
        cap++;
    v = calloc((size_t)(cap ? cap : 1), sizeof(*v));
    for (h = w->held; v && h; h = h->next) {
        if (h->state == H_DEAD || h->state == H_REVOKED)
            continue;
        if (!(v[k] = strdup(h->item))) {
            zkc_strings_free(v, k);
            v = NULL;
            break;
        }
        k++;
    }
    pthread_mutex_unlock(&w->mu);
    if (!v)
        return ZKC_ENOMEM;
    qsort(v, (size_t)k, sizeof(*v), str_cmp);
    if (k == 0) {
        free(v);
        v = NULL;
    }
    *items = v;
    *n = k;
    return 0;
}

/* ------------------------------------------------------ fenced writes */

int zkc_work_fenced_multi_ex(zkc_work *w, const char *item, int64_t token, const zkc_op *ops,
                             int nops, int timeout_ms, int *failed_index)
{
    zkc__fmulti *f;
    struct held *h;
    zhandle_t *zh;
    unsigned gen;
    char *guard;
    int rc, st;

    if (failed_index)
        *failed_index = -1;
    if (!w || zkc__work_item_ok(item) != 0 || token < 0)
        return ZKC_EINVAL;
    guard = join(w->claims_path, item);
    if (!guard)
        return ZKC_ENOMEM;
    rc = zkc__fmulti_new(&f, w->s, guard, ops, nops);
    free(guard);
    if (rc)
        return rc;
    /* Held, and sent on the claim's own ZooKeeper session, all under w->mu:
     * the hold ends (REVOKED returned: run_revoked; zkc_work_free) under
     * the same lock, and the claim's delete is sent only after that on the
     * same handle, so every multi that passed here reaches the server
     * before the delete (one session's requests are served in order), and
     * none passes after it. The check op on the claim then fails only if
     * the claim went another way (by hand), and a request of a session the
     * server expired is refused by the server, whatever node is at the
     * path by then. */
    pthread_mutex_lock(&w->mu);
    for (h = w->held; h; h = h->next)
        if (strcmp(h->item, item) == 0 &&
            (h->state == H_ASSIGNING || h->state == H_DELIVERING || h->state == H_RUNNING ||
             h->state == H_REVOKING || (h->state == H_REVOKED && h->closing_told)))
            break;
    if (!h || h->claim_gone || (token != 0 && h->token != token)) {
        rc = ZKC_ENOTHELD;
    } else if (!(zh = zkc__zh_lock(w->s, &gen))) {
        rc = ZKC_ESESSIONLOST; /* between sessions: the claim's is gone */
    } else {
        st = zoo_state(zh);
        if (gen != h->gen || st == ZOO_EXPIRED_SESSION_STATE)
            rc = ZKC_ESESSIONLOST; /* LOST not told yet, or not yet heard of */
        else
            rc = zkc__fmulti_send(f, zh);
        zkc__zh_unlock(w->s);
    }
    pthread_mutex_unlock(&w->mu);
    if (rc) {
        zkc__fmulti_abandon(f);
        return rc;
    }
    return zkc__fmulti_wait(f, timeout_ms, failed_index);
}

int zkc_work_fenced_multi(zkc_work *w, const char *item, const zkc_op *ops, int nops,
                          int timeout_ms)
{
    return zkc_work_fenced_multi_ex(w, item, 0, ops, nops, timeout_ms, NULL);
}

/* -------------------------------------------------------------- items */

int zkc_work_item_add(zkc_session *s, const char *cluster_path, const char *item, const char *spec,
                      int len, int timeout_ms)
{
    char *items_path, *path;
    zkc_op op;
    int rc;
    int64_t deadline = timeout_ms < 0 ? -1 : zkc__now_ms() + timeout_ms;

    if (!s || !cluster_path || zkc__path_check(cluster_path) != 0 || zkc__work_item_ok(item) != 0 ||
        len < 0 || len > ZKC_WORK_MAX_SPEC || (len && !spec))
        return ZKC_EINVAL;
    items_path = malloc(strlen(cluster_path) + sizeof("/work/items"));
    if (!items_path)
        return ZKC_ENOMEM;
    strcpy(items_path, cluster_path);
    strcat(items_path, "/work/items");
    path = join(items_path, item);
    if (!path) {
        free(items_path);
        return ZKC_ENOMEM;
    }
    rc = zkc__mkdirs_sync(s, items_path, timeout_ms);
    if (rc == 0) {
        memset(&op, 0, sizeof(op));
        op.type = ZKC_OP_CREATE;
        op.path = path;
        op.data = spec;
        op.len = len;
        /* The items folder as guard: a plain create, no raw handle needed. */
        rc = zkc_fenced_multi(s, items_path, &op, 1, zkc__remaining(deadline));
        if (rc == ZKC_ENOTHELD)
            rc = ZKC_ENONODE; /* the folder went away meanwhile */
    }
    free(path);
    free(items_path);
    return rc;
}

int zkc_work_item_remove(zkc_session *s, const char *cluster_path, const char *item, int timeout_ms)
{
    char *items_path, *path;
    zkc_op op;
    int rc;

    if (!s || !cluster_path || zkc__path_check(cluster_path) != 0 || zkc__work_item_ok(item) != 0)
        return ZKC_EINVAL;
    items_path = malloc(strlen(cluster_path) + sizeof("/work/items"));
    if (!items_path)
        return ZKC_ENOMEM;
    strcpy(items_path, cluster_path);
    strcat(items_path, "/work/items");
    path = join(items_path, item);
    if (!path) {
        free(items_path);
        return ZKC_ENOMEM;
    }
    memset(&op, 0, sizeof(op));
    op.type = ZKC_OP_DELETE;
    op.path = path;
    op.version = -1;
    rc = zkc_fenced_multi(s, items_path, &op, 1, timeout_ms);
    if (rc == ZKC_ENOTHELD)
        rc = ZKC_ENONODE; /* no items folder: no such item */
    free(path);
    free(items_path);
    return rc;
}

/* ---------------------------------------------------------- observer view */

struct zkc_work_view {
    int n;
    zkc_work_entry *e;
    zkc_work_plan_status plan_status;
    int64_t plan_version;
    char *plan_leader;
    char plan_why[200];
    struct mem *mem;
    int n_mem;
};

struct node {
    char *name;
    char *data;
    int len;
    zkc_stat st;
};

struct rd {
    struct node *v;
    int n;
};

static void rd_free(struct rd *r)
{
    int i;

    for (i = 0; i < r->n; i++) {
        free(r->v[i].name);
        free(r->v[i].data);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

/* Children of `path` and their data; a missing folder is empty, a child
 * gone in between is skipped. */
static int read_folder(zkc_session *s, const char *path, int tmo, struct rd *out)
{
    char **names = NULL;
    int n = 0, i, rc;

    memset(out, 0, sizeof(*out));
    rc = zkc_get_children(s, path, tmo, &names, &n, NULL);
    if (rc == ZKC_ENONODE)
        return 0;
    if (rc != 0)
        return rc;
    out->v = calloc((size_t)(n ? n : 1), sizeof(*out->v));
    if (!out->v) {
        zkc_strings_free(names, n);
        return ZKC_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        char *p = join(path, names[i]);
        struct node *nd = &out->v[out->n];

        if (!p) {
            rc = ZKC_ENOMEM;
            break;
        }
        rc = zkc_get(s, p, tmo, &nd->data, &nd->len, &nd->st);
        free(p);
        if (rc == ZKC_ENONODE) {
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        nd->name = names[i];
        names[i] = NULL;
        out->n++;
    }
    zkc_strings_free(names, n);
    if (rc != 0)
        rd_free(out);
    return rc;
}

static const char *rd_name(void *ctx, int i)
{
    return ((struct rd *)ctx)->v[i].name;
}
static const char *rd_data(void *ctx, int i, int *len)
{
    *len = ((struct rd *)ctx)->v[i].len;
    return ((struct rd *)ctx)->v[i].data;
}
static int64_t rd_owner(void *ctx, int i)
{
    return ((struct rd *)ctx)->v[i].st.owner;
}

/* A claim's data as a member id: printable UTF-8-ish text of 1..255 bytes
 * without control characters. */
static int claim_data_ok(const char *d, int len)
{
    int i;

    if (!d || len <= 0 || len > ZKC_PAYLOAD_MAX_ID || (int)strlen(d) != len)
        return 0;
    for (i = 0; i < len; i++)
        if ((unsigned char)d[i] < 0x20 || d[i] == 0x7f)
            return 0;
    return 1;
}

static char *dup_cut(const char *d, int len, int max)
{
    char *p;
    int i;

    if (!d || len < 0)
        return NULL;
    if (len > max)
        len = max;
    p = malloc((size_t)len + 1);
    if (!p)
        return NULL;
    memcpy(p, d, (size_t)len);
    p[len] = '\0';
    for (i = 0; i < len; i++)
        if (p[i] == '\0')
            p[i] = '?';
    return p;
}

void zkc_work_view_free(zkc_work_view *v)
{
    int i;

    if (!v)
        return;
    for (i = 0; i < v->n; i++) {
        free((char *)v->e[i].item);
        free((char *)v->e[i].spec);
        free((char *)v->e[i].planned);
        free((char *)v->e[i].claimed_by);
    }
    free(v->e);
    free(v->plan_leader);
    members_free(v->mem, v->n_mem);
    free(v);
}

static int mem_live(const zkc_work_view *v, const char *id)
{
    int lo = 0, hi = v->n_mem - 1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(v->mem[mid].id, id);

        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

int zkc_work_view_read(zkc_session *s, const char *cluster_path, int timeout_ms,
                       zkc_work_view **out)
{
    struct rd items = {0}, claims = {0}, members = {0};
    zkc_work_view *v = NULL;
    zkc__wplan plan = {0};
    char *work = NULL, *ip = NULL, *cp = NULL, *pp = NULL, *mp = NULL, *pdata = NULL;
    int plen = 0, rc, a, b;

    if (!s || !cluster_path || !out || zkc__path_check(cluster_path) != 0)
        return ZKC_EINVAL;
    rc = zkc_get(s, cluster_path, timeout_ms, NULL, NULL, NULL);
    if (rc != 0)
        return rc;
    work = join(cluster_path, "work");
    mp = join(cluster_path, "members");
    if (work) {
        ip = join(work, "items");
        cp = join(work, "claims");
        pp = join(work, "plan");
    }
    v = calloc(1, sizeof(*v));
    rc = ZKC_ENOMEM;
    if (!work || !mp || !ip || !cp || !pp || !v)
        goto out;
    if ((rc = read_folder(s, ip, timeout_ms, &items)) != 0 ||
        (rc = read_folder(s, cp, timeout_ms, &claims)) != 0 ||
        (rc = read_folder(s, mp, timeout_ms, &members)) != 0)
        goto out;
    rc = zkc_get(s, pp, timeout_ms, &pdata, &plen, NULL);
    if (rc == ZKC_ENONODE) {
        v->plan_status = ZKC_WORK_PLAN_MISSING;
    } else if (rc != 0) {
        goto out;
    } else if (plen > ZKC_WORK_MAX_PLAN) {
        v->plan_status = ZKC_WORK_PLAN_MALFORMED;
        snprintf(v->plan_why, sizeof(v->plan_why), "larger than %d bytes", ZKC_WORK_MAX_PLAN);
    } else if (zkc__wplan_decode(pdata, plen, &plan, v->plan_why, sizeof(v->plan_why)) != 0) {
        v->plan_status = ZKC_WORK_PLAN_MALFORMED;
    } else {
        v->plan_status = ZKC_WORK_PLAN_OK;
        v->plan_version = plan.version;
        v->plan_leader = plan.leader;
        plan.leader = NULL;
    }
    rc = members_from(NULL, 0, members.n, rd_name, rd_data, rd_owner, &members, &v->mem, &v->n_mem);
    if (rc != 0)
        goto out;
    v->e = calloc((size_t)(items.n + claims.n + 1), sizeof(*v->e));
    if (!v->e) {
        rc = ZKC_ENOMEM;
        goto out;
    }
    /* merge items and claims (both sorted by name) */
    for (a = 0, b = 0; a < items.n || b < claims.n;) {
        int c = a >= items.n ? 1 : b >= claims.n ? -1 : strcmp(items.v[a].name, claims.v[b].name);
        struct node *it = c <= 0 ? &items.v[a] : NULL, *cl = c >= 0 ? &claims.v[b] : NULL;
        zkc_work_entry *e = &v->e[v->n];
        int k;

        a += c <= 0;
        b += c >= 0;
        e->item = strdup(it ? it->name : cl->name);
        if (!e->item) {
            rc = ZKC_ENOMEM;
            goto out;
        }
        v->n++;
        if (it) {
            e->exists = 1;
            e->spec_len = it->len;
            if (it->len > 0 && it->len <= ZKC_WORK_MAX_SPEC) {
                e->spec = dup_cut(it->data, it->len, it->len);
                if (!e->spec) {
                    rc = ZKC_ENOMEM;
                    goto out;
                }
            }
        }
        k = v->plan_status == ZKC_WORK_PLAN_OK ? zkc__wplan_find(&plan, e->item) : -1;
        if (k >= 0 && !(e->planned = strdup(plan.lines[k].member))) {
            rc = ZKC_ENOMEM;
            goto out;
        }
        if (cl) {
            e->token = cl->st.czxid;
            e->claim_session = cl->st.owner;
            e->claimed_by = dup_cut(cl->data ? cl->data : "", cl->len, ZKC_PAYLOAD_MAX_ID);
            if (!e->claimed_by) {
                rc = ZKC_ENOMEM;
                goto out;
            }
        }
        if (!it)
            e->state = ZKC_WORK_STRAY_CLAIM;
        else if (it->len > ZKC_WORK_MAX_SPEC)
            e->state = ZKC_WORK_BAD_SPEC;
        else if (cl && (cl->st.owner == 0 || !claim_data_ok(cl->data, cl->len)))
            e->state = ZKC_WORK_BAD_CLAIM;
        else if (!e->planned)
            e->state = cl ? ZKC_WORK_HANDOVER : ZKC_WORK_UNPLANNED;
        else if (cl)
            e->state =
                strcmp(e->claimed_by, e->planned) == 0 ? ZKC_WORK_RUNNING : ZKC_WORK_HANDOVER;
        else
            e->state = mem_live(v, e->planned) ? ZKC_WORK_WAITING : ZKC_WORK_OWNER_DOWN;
    }
    *out = v;
    v = NULL;
    rc = 0;
out:
    zkc_work_view_free(v);
    zkc__wplan_clear(&plan);
    rd_free(&items);
    rd_free(&claims);
    rd_free(&members);
    free(pdata);
    free(work);
    free(ip);
    free(cp);
    free(pp);
    free(mp);
    return rc;
}

int zkc_work_view_count(const zkc_work_view *v)
{
    return v ? v->n : 0;
}

const zkc_work_entry *zkc_work_view_at(const zkc_work_view *v, int i)
{
    return v && i >= 0 && i < v->n ? &v->e[i] : NULL;
}

zkc_work_plan_status zkc_work_view_plan(const zkc_work_view *v, int64_t *version,
                                        const char **leader, const char **why)
{
    if (version)
        *version = v ? v->plan_version : 0;
    if (leader)
        *leader = v ? v->plan_leader : NULL;
    if (why)
        *why = v && v->plan_status == ZKC_WORK_PLAN_MALFORMED ? v->plan_why : NULL;
    return v ? v->plan_status : ZKC_WORK_PLAN_MISSING;
}

int zkc_work_view_member_count(const zkc_work_view *v)
{
    return v ? v->n_mem : 0;
}

const char *zkc_work_view_member(const zkc_work_view *v, int i, int64_t *weight)
{
    if (!v || i < 0 || i >= v->n_mem)
        return NULL;
    if (weight)
        *weight = v->mem[i].weight;
    return v->mem[i].id;
}
