/*
 * zkcoord: the agent that runs beside a legacy app. It only wires the
 * library's recipes (membership, election, locks) to the agent's parts
 * (health checks, handlers, the supervisor, sd_notify); it holds no recipe
 * logic of its own.
 *
 * Threads: the main thread owns signals (all blocked elsewhere, taken with
 * sigtimedwait) and the systemd watchdog; the library's dispatcher runs the
 * recipe callbacks below; the health checker, the handler runner and the
 * supervisor have their own threads. `a->mu` guards the agent's view of the
 * world; no blocking call is made while holding it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "zkcoord/zkcoord.h"
#include "zkcoord/election.h"
#include "zkcoord/group.h"
#include "zkcoord/lock.h"
#include "zkcoord/read.h"

#include "config.h"
#include "drain.h"
#include "handlers.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "proc.h"
#include "supervise.h"
#include "text.h"
#include "work.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 4, EXIT_REFUSED = 7 };

/* How long the watchdog keeps being fed while the main thread reloads or
 * stops (the unit's TimeoutStopSec). */
#define RELOAD_BUDGET_MS 60000

struct held_lock {
    struct agent *a;
    zka_lock_cfg cfg; /* borrowed from a->cfg */
    zkc_lock *lock;
    int held;
    int pending; /* an acquire is queued */
    int64_t token;
};

struct agent {
    zka_config *cfg;
    zkc_session *s;
    zkc_group *group;
    zkc_election *election;
    zkc_election *observer; /* every leader change, for every agent */
    struct held_lock *locks;
    size_t n_locks;
    zka_handlers *handlers;
    zka_health *health;
    zka_supervise *sv;
    zka_work *work; /* the work section: task worker, planner while leading */
    /* Serialises the item handle's start/stop and the changes of `work` and
     * `election` it borrows (apply() on the health thread or the
     * dispatcher, reload and stop on the main thread). Before mu. */
    pthread_mutex_t wop;
    char *members_path;
    char *leader_path;
    char *drain_path;    /* <root>/<cluster>/drain */
    zkc_cache *drain;    /* the drain folder: is our note there? */
    pthread_mutex_t dmu; /* orders DEMOTED and drained/undrained (before mu) */

    /* Library callbacks (dispatcher lanes, health thread) read `cfg` under
     * the read side; reload takes the write side only to switch `cfg` and
     * to free the previous one, so no callback still reading it sees it
     * freed (a use after free TSan found). Held briefly: no waits inside. */
    pthread_rwlock_t cfg_lock;

    pthread_mutex_t mu; /* everything below */
    int eligible;       /* health passed `rise` times: may register, campaign, lock */
    int joined;         /* we want to be registered (healthy) */
    int campaigning;
    int leading;
    int64_t token; /* our term's token while leading */
    char leader_id[ZKC_ELECTION_ID_MAX + 1];
    int64_t leader_token;
    int leader_known; /* the observer's first answer is the baseline */
    zkc_group_view *view;
    int baseline;  /* the first view is the baseline: no events for it */
    int self_seen; /* our own node is in the view */
    int ready_sent;
    int connected;

    /* Maintenance (drain.h). `may_act` = healthy and known not drained:
     * may campaign and hold locks. apply() brings the registration, the
     * campaign and the locks in line with the gates, one thread at a time. */
    int drain_known; /* our drain note was read at least once */
    int drained;     /* our drain note exists (as last seen) */
    zka_drain_note drain_note;
    int may_act;
    int applying, reg_applied, stopping_applied, act_applied, drained_applied;
    int drain_deferred; /* drained/undrained runs waiting for DEMOTED (dmu) */
    int drain_fired;    /* the last one fired was "drained" (dmu) */
    int reloading;      /* a reload swaps parts: apply() leaves the items to it */
};

static long long epoch_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ------------------------------------------------------------- events */

/* Set `key` of `o` to `v`; a NULL `v` (out of memory) becomes null so the
 * key is never missing. */
static void set(json_t *o, const char *key, json_t *v)
{
    json_object_set_new(o, key, v ? v : json_null());
}

/* A member as JSON. Every string in it is a peer's: zka_json_str keeps
 * bytes that are not UTF-8 (as U+FFFD) where json_string would fail and
 * drop the key. */
static json_t *member_json(const zkc_member *m)
{
    json_t *o = json_object(), *eps = json_object(), *meta = NULL;
    const char *md = zkc_member_metadata(m);
    int i, n = zkc_member_endpoint_count(m);
    unsigned flags = zkc_member_flags(m);

    if (!o || !eps) {
        json_decref(o);
        json_decref(eps);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        const char *name, *host;
        int port;
        if (zkc_member_endpoint(m, i, &name, &host, &port) == 0) {
            json_t *ep = json_object(), *nm = zka_json_str(name);
            set(ep, "host", zka_json_str(host));
            set(ep, "port", json_integer(port));
            if (nm)
                json_object_set_new(eps, json_string_value(nm), ep);
            else
                json_decref(ep);
            json_decref(nm);
        }
    }
    if (md && !(meta = json_loads(md, JSON_DECODE_ANY, NULL)))
        meta = zka_json_str(md); /* not JSON: kept as text, not dropped */
    set(o, "id", zka_json_str(zkc_member_id(m)));
    set(o, "node", zka_json_str(zkc_member_node(m)));
    set(o, "host", zka_json_str(zkc_member_host(m)));
    set(o, "port", json_integer(zkc_member_port(m)));
    set(o, "status", zka_json_str(zkc_member_status(m)));
    set(o, "shard", json_integer(zkc_member_shard(m)));
    set(o, "endpoints", eps);
    set(o, "metadata", meta ? meta : json_object());
    set(o, "session", json_integer(zkc_member_owner(m)));
    set(o, "malformed", json_boolean(flags & (ZKC_MEMBER_MALFORMED | ZKC_MEMBER_OVERSIZE)));
    set(o, "duplicate", json_boolean(flags & ZKC_MEMBER_DUPLICATE));
    return o;
}

/* What a handler's document is built from, captured when the event
 * happens and turned into text only if a run takes it (handlers.c builds
 * it on its own thread; a coalesced event is never built). Holding the
 * view is one reference: the dispatcher's cost per event does not grow
 * with the number of members. */
struct doc_ctx {
    zka_event ev;
    char *cluster, *member_id;
    char leader_id[ZKC_ELECTION_ID_MAX + 1];
    int64_t leader_token;
    int leading;
    long long time_ms;
    zkc_group_view *view;
    json_t *extra; /* without "token" */
    char token[32];
};

static void doc_ctx_free(void *p)
{
    struct doc_ctx *c = p;

    if (!c)
        return;
    zkc_group_view_free(c->view);
    json_decref(c->extra);
    free(c->cluster);
    free(c->member_id);
    free(c);
}

static void doc_build(void *p, char **json, char **members)
{
    struct doc_ctx *c = p;
    json_t *doc = json_object(), *arr = json_array(), *ids = json_array();
    int i, n = c->view ? zkc_group_view_count(c->view) : 0;

    *json = *members = NULL;
    if (!doc || !arr || !ids)
        goto out;
    for (i = 0; i < n; i++) {
        const zkc_member *m = zkc_group_view_at(c->view, i);
        json_t *mj = member_json(m);
        if (mj)
            json_array_append_new(arr, mj);
        if (zkc_member_id(m))
            json_array_append_new(ids, zka_json_str(zkc_member_id(m)));
    }
    set(doc, "event", json_string(zka_event_name(c->ev)));
    set(doc, "cluster", zka_json_str(c->cluster));
    set(doc, "member_id", zka_json_str(c->member_id));
    set(doc, "time_ms", json_integer(c->time_ms));
    if (c->leader_id[0]) {
        json_t *l = json_object();
        if (l) {
            set(l, "id", zka_json_str(c->leader_id));
            set(l, "token", json_integer(c->leader_token));
        }
        set(doc, "leader", l);
    } else {
        set(doc, "leader", json_null());
    }
    set(doc, "leading", json_boolean(c->leading));
    json_object_set(doc, "members", arr);
    if (c->extra)
        json_object_update(doc, c->extra);
    if (c->token[0])
        set(doc, "fencing_token", json_string(c->token));
    *json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    *members = json_dumps(ids, JSON_COMPACT);
out:
    json_decref(doc);
    json_decref(arr);
    json_decref(ids);
}

/* Fire `ev` to the handlers with a document of the agent's state plus
 * `extra` (stolen; may be NULL), coalescing key `key` and extra
 * environment `env` (both may be NULL; see zka_event_info). Nothing is
 * built when no handler subscribes to `ev`. */
static void fire_ex(struct agent *a, zka_event ev, json_t *extra, const char *key, char *const *env)
{
    struct doc_ctx *c;
    zka_event_info info;
    char leader[ZKC_ELECTION_ID_MAX + 1];

    zka_log(ZKC_LOG_DEBUG, "event %s", zka_event_name(ev));
    if (!a->handlers || !zka_handlers_wants(a->handlers, ev) || !(c = calloc(1, sizeof(*c)))) {
        json_decref(extra);
        return;
    }
    c->ev = ev;
    c->cluster = strdup(a->cfg->cluster);
    c->member_id = strdup(a->cfg->member.id ? a->cfg->member.id : "");
    c->time_ms = epoch_ms();
    pthread_mutex_lock(&a->mu);
    memcpy(c->leader_id, a->leader_id, sizeof(c->leader_id));
    c->leader_token = a->leader_token;
    c->leading = a->leading;
    if (a->leading)
        snprintf(c->token, sizeof(c->token), "%" PRId64, a->token);
    c->view = a->view ? zkc_group_view_ref(a->view) : NULL;
    pthread_mutex_unlock(&a->mu);
    if (extra) {
        json_t *tok = json_object_get(extra, "token");
        if (json_is_integer(tok))
            snprintf(c->token, sizeof(c->token), "%" JSON_INTEGER_FORMAT, json_integer_value(tok));
        /* "token" only carries the event's token to fencing_token. */
        json_object_del(extra, "token");
        c->extra = extra;
    }
    memcpy(leader, c->leader_id, sizeof(leader));
    memset(&info, 0, sizeof(info));
    info.event = ev;
    info.cluster = a->cfg->cluster;
    info.member_id = a->cfg->member.id;
    info.leader_id = leader;
    info.fencing_token = c->token;
    info.key = key;
    info.env = env;
    info.build = doc_build;
    info.ctx = c;
    info.ctx_free = doc_ctx_free;
    if (!c->cluster || !c->member_id) {
        doc_ctx_free(c);
        return;
    }
    zka_handlers_fire(a->handlers, &info);
}

static void fire(struct agent *a, zka_event ev, json_t *extra)
{
    fire_ex(a, ev, extra, NULL, NULL);
}

/* Does a handler take `ev`? (Build its extras only then.) */
static int wanted(struct agent *a, zka_event ev)
{
    return a->handlers && zka_handlers_wants(a->handlers, ev);
}

/* ------------------------------------------------------------- drain */

/* The drain note of the document: {"reason", "since_ms", "by"}. */
static json_t *drain_json(struct agent *a)
{
    zka_drain_note n;

    pthread_mutex_lock(&a->mu);
    n = a->drain_note;
    pthread_mutex_unlock(&a->mu);
    return json_pack("{s:{s:o, s:I, s:o, s:b}}", "drain", "reason", zka_json_str(n.reason),
                     "since_ms", (json_int_t)n.since_ms, "by", zka_json_str(n.by), "malformed",
                     n.malformed);
}

/* dmu held. Fire the next of drained/undrained: they alternate, as the
 * state they report does. */
static void drain_fire_next(struct agent *a)
{
    a->drain_fired = !a->drain_fired;
    if (a->drain_fired)
        fire(a, ZKA_EV_DRAINED, wanted(a, ZKA_EV_DRAINED) ? drain_json(a) : NULL);
    else
        fire(a, ZKA_EV_UNDRAINED, NULL);
}

/* dmu held. Fire what waited for a demotion. */
static void drain_flush(struct agent *a)
{
    while (a->drain_deferred > 0) {
        a->drain_deferred--;
        drain_fire_next(a);
    }
}

/* The drain state changed (and its work is done): fire drained or
 * undrained. A leader that was just asked to resign fires it only after
 * its DEMOTED handlers are queued (the brief's order: demotion work first);
 * a->leading stays 1 until that DEMOTED is delivered, so it always comes. */
static void drain_fire(struct agent *a)
{
    int later;

    pthread_mutex_lock(&a->dmu);
    pthread_mutex_lock(&a->mu);
    later = a->leading || a->drain_deferred > 0;
    if (later)
        a->drain_deferred++;
    pthread_mutex_unlock(&a->mu);
    if (!later)
        drain_fire_next(a);
    pthread_mutex_unlock(&a->dmu);
}

/* ------------------------------------------------------- supervising */

/* Does the supervise condition hold, and under which token? mu held. */
static int condition_holds(struct agent *a, char *token, size_t len)
{
    const zka_supervise_cfg *sc = &a->cfg->supervise;
    size_t i;

    token[0] = '\0';
    switch (sc->when) {
    case ZKA_WHILE_LEADER:
        if (a->leading)
            snprintf(token, len, "%" PRId64, a->token);
        return a->leading;
    case ZKA_WHILE_MEMBER:
        return a->joined && a->connected;
    case ZKA_WHILE_LOCK:
        for (i = 0; i < a->n_locks; i++) {
            if (strcmp(a->locks[i].cfg.name, sc->lock) == 0 && a->locks[i].held) {
                snprintf(token, len, "%" PRId64, a->locks[i].token);
                return 1;
            }
        }
        return 0;
    case ZKA_WHILE_ITEM:
        return 0; /* one supervisor per held item, in work.c */
    }
    return 0;
}

static void resupervise(struct agent *a)
{
    char token[32];
    int run;

    if (!a->sv)
        return;
    pthread_mutex_lock(&a->mu);
    run = condition_holds(a, token, sizeof(token));
    pthread_mutex_unlock(&a->mu);
    zka_supervise_want(a->sv, run != 0, token[0] ? token : NULL);
}

/* Stop the app and wait until its whole process group is gone: called
 * before leadership or a lock is given up, so it is gone before another
 * member's app can start. */
static void stop_app_now(struct agent *a)
{
    if (a->sv && zka_supervise_stop_sync(a->sv, a->cfg->supervise.stop_grace_ms + 2000) != 0)
        zka_log(ZKC_LOG_ERROR, "supervised app did not stop in time");
}

static void on_app_exit(pid_t pid, int status, bool stopped, void *user_data)
{
    char buf[64];

    (void)user_data;
    zka_proc_status_str(status, buf, sizeof(buf));
    zka_log(stopped ? ZKC_LOG_INFO : ZKC_LOG_WARN, "supervised app (pid %ld) %s: %s", (long)pid,
            stopped ? "stopped" : "exited", buf);
}

/* ------------------------------------------------------------ election */

static void on_election_cfg(zkc_election *e, const zkc_election_event *ev, void *user_data)
{
    struct agent *a = user_data;
    int changed;

    (void)e;
    switch (ev->type) {
    case ZKC_ELECTION_ELECTED:
        pthread_mutex_lock(&a->mu);
        a->leading = 1;
        a->token = ev->token;
        changed = strcmp(a->leader_id, a->cfg->member.id) != 0 || a->leader_token != ev->token;
        snprintf(a->leader_id, sizeof(a->leader_id), "%s", a->cfg->member.id);
        a->leader_token = ev->token;
        /* Under mu, like the state they mirror: the last change wins. */
        zka_metrics_leading(true);
        zka_metrics_leader(a->cfg->member.id, ev->token);
        pthread_mutex_unlock(&a->mu);
        if (changed)
            zka_metrics_leader_changed();
        zka_log(ZKC_LOG_INFO, "elected leader of %s (fencing token %" PRId64 ")", a->cfg->cluster,
                ev->token);
        zka_notifyf("STATUS=leader of %s (token %" PRId64 ")", a->cfg->cluster, ev->token);
        resupervise(a);
        fire(a, ZKA_EV_ELECTED, json_pack("{s:I}", "token", (json_int_t)ev->token));
        if (changed)
            fire(a, ZKA_EV_LEADER_CHANGED, NULL);
        break;
    case ZKC_ELECTION_DEMOTED:
        /* dmu: a "drained" decided meanwhile on another thread waits for
         * this demotion's handlers to be queued first. */
        pthread_mutex_lock(&a->dmu);
        pthread_mutex_lock(&a->mu);
        a->leading = 0;
        zka_metrics_leading(false);
        pthread_mutex_unlock(&a->mu);
        zka_log(ZKC_LOG_WARN, "demoted (%s)", zkc_election_demote_reason_name(ev->reason));
        zka_notifyf("STATUS=member of %s", a->cfg->cluster);
        /* Before this callback returns: a resigning leader's node goes only
         * after it, so no other member's app can start meanwhile. */
        if (a->cfg->supervise.enabled && a->cfg->supervise.when == ZKA_WHILE_LEADER) {
            long long t0 = zka_now_ms();
            stop_app_now(a);
            /* The figure issue 11 asks for: DEMOTED heard -> app gone. */
            zka_log(ZKC_LOG_INFO, "demoted: supervised app stopped %lld ms after DEMOTED",
                    zka_now_ms() - t0);
        }
        fire(a, ZKA_EV_DEMOTED,
             json_pack("{s:s, s:I}", "reason", zkc_election_demote_reason_name(ev->reason), "token",
                       (json_int_t)ev->token));
        drain_flush(a);
        pthread_mutex_unlock(&a->dmu);
        break;
    case ZKC_ELECTION_LEADER_CHANGED:
        /* A participant hears of a new leader only when the line reaches it
         * (no herd in the recipe); the agent's observer hears every change
         * and reports them. */
        if (e != a->observer)
            break;
        pthread_mutex_lock(&a->mu);
        /* The leader found at startup is no change: nothing fires for it
         * (the known annoyance of `consul watch`). */
        changed =
            a->leader_known && (strcmp(a->leader_id, ev->leader_id ? ev->leader_id : "") != 0 ||
                                a->leader_token != ev->token);
        a->leader_known = 1;
        snprintf(a->leader_id, sizeof(a->leader_id), "%s", ev->leader_id ? ev->leader_id : "");
        a->leader_token = ev->token;
        zka_metrics_leader(ev->leader_id, ev->token);
        pthread_mutex_unlock(&a->mu);
        if (changed)
            zka_metrics_leader_changed();
        if (changed) {
            char pb[ZKA_PEER_BUF];
            zka_log(ZKC_LOG_INFO, "leader is now %s", zka_peer(pb, ev->leader_id));
            fire(a, ZKA_EV_LEADER_CHANGED, NULL);
        }
        break;
    case ZKC_ELECTION_ERROR:
        zka_log(ZKC_LOG_ERROR, "election stopped: %s; rejoining", zkc_strerror(ev->err));
        zkc_election_rejoin(e);
        break;
    }
}

static void on_election(zkc_election *e, const zkc_election_event *ev, void *user_data)
{
    struct agent *ag = ((struct agent *)user_data);

    pthread_rwlock_rdlock(&ag->cfg_lock);
    on_election_cfg(e, ev, user_data);
    pthread_rwlock_unlock(&ag->cfg_lock);
}

/* Campaign only while eligible (healthy). The participant is created on
 * the first wish to campaign, not at start: zkc_election_new() enters the
 * race at once, and an agent that has not passed its health check must never
 * be elected, not even for the moment before a resign. */
static void campaign(struct agent *a, int want)
{
    zkc_election_opts eo;
    int was, rc;

    if (!a->cfg->election.enabled || !a->s)
        return;
    pthread_mutex_lock(&a->mu);
    was = a->campaigning;
    a->campaigning = want;
    pthread_mutex_unlock(&a->mu);
    if (want && !was && !a->election) {
        zkc_election_opts_init(&eo);
        eo.id = a->cfg->member.id;
        eo.on_suspend = a->cfg->election.on_suspend == ZKA_SUSPEND_WAIT ? ZKC_ELECTION_WAIT
                                                                        : ZKC_ELECTION_STEP_DOWN;
        eo.fn = on_election;
        eo.user_data = a;
        pthread_mutex_lock(&a->wop);
        rc = zkc_election_new(&a->election, a->s, a->leader_path, &eo);
        if (rc == 0)
            zka_work_plan(a->work, a->election);
        pthread_mutex_unlock(&a->wop);
        if (rc) {
            zka_log(ZKC_LOG_ERROR, "cannot campaign at %s: %s", a->leader_path, zkc_strerror(rc));
            pthread_mutex_lock(&a->mu);
            a->campaigning = 0;
            pthread_mutex_unlock(&a->mu);
        }
    } else if (want && !was) {
        zkc_election_rejoin(a->election);
    } else if (!want && was && a->election) {
        zkc_election_resign(a->election);
    }
}

static int may_act(struct agent *a)
{
    int e;

    pthread_mutex_lock(&a->mu);
    e = a->may_act;
    pthread_mutex_unlock(&a->mu);
    return e;
}

/* The observer only watches (every agent hears every leader change); the
 * participant comes with eligibility (campaign()). */
static int start_election(struct agent *a)
{
    int rc;

    if (!a->cfg->election.enabled)
        return 0;
    rc = zkc_election_observer_new(&a->observer, a->s, a->leader_path, on_election, a);
    if (rc) {
        zka_log(ZKC_LOG_ERROR, "cannot observe %s: %s", a->leader_path, zkc_strerror(rc));
        return rc;
    }
    pthread_mutex_lock(&a->mu);
    a->campaigning = 0;
    pthread_mutex_unlock(&a->mu);
    if (may_act(a))
        campaign(a, 1);
    return 0;
}

static void stop_election(struct agent *a)
{
    if (!a->election) {
        zkc_election_close(a->observer); /* when the participant failed to start */
        a->observer = NULL;
        return;
    }
    /* The observer goes first: it would report our own leaving as a
     * leader change, after TERM. */
    zkc_election_close(a->observer);
    a->observer = NULL;
    if (a->cfg->supervise.enabled && a->cfg->supervise.when == ZKA_WHILE_LEADER)
        stop_app_now(a);
    pthread_mutex_lock(&a->wop);
    zka_work_plan(a->work, NULL); /* it borrows the election */
    zka_work_items_stop(a->work); /* so does the item handle; items_apply() restarts it */
    zkc_election_close(a->election);
    a->election = NULL;
    pthread_mutex_unlock(&a->wop);
    /* Closing delivers no DEMOTED: what waited for one fires now. */
    pthread_mutex_lock(&a->dmu);
    pthread_mutex_lock(&a->mu);
    a->leading = 0;
    a->campaigning = 0;
    zka_metrics_leading(false);
    pthread_mutex_unlock(&a->mu);
    drain_flush(a);
    pthread_mutex_unlock(&a->dmu);
}

/* --------------------------------------------------------------- locks */

static void lock_granted(zkc_lock *lock, int rc, int64_t token, void *user_data);

static int supervises_lock(struct agent *a, const struct held_lock *h)
{
    return a->cfg->supervise.enabled && a->cfg->supervise.when == ZKA_WHILE_LOCK &&
           strcmp(a->cfg->supervise.lock, h->cfg.name) == 0;
}

/* Queue for lock `h` (mu not held). Only while eligible. */
static void lock_queue(struct held_lock *h)
{
    struct agent *a = h->a;
    int go;

    pthread_mutex_lock(&a->mu);
    go = a->may_act && !h->pending && !h->held;
    if (go)
        h->pending = 1;
    pthread_mutex_unlock(&a->mu);
    if (go && zkc_lock_acquire_async(h->lock, lock_granted, h) != 0) {
        zka_log(ZKC_LOG_ERROR, "cannot queue for lock %s", h->cfg.name);
        pthread_mutex_lock(&a->mu);
        h->pending = 0;
        pthread_mutex_unlock(&a->mu);
    }
}

/* zkcoord_locks_held from the `held` flags. mu held (the metrics mutex
 * nests inside it and never the other way round), so the last change is
 * the one published. */
static void publish_locks_locked(struct agent *a)
{
    size_t i;
    int n = 0;

    for (i = 0; i < a->n_locks; i++)
        n += a->locks[i].held != 0;
    zka_metrics_locks_held(n);
}

/* Give up lock `h` (held or queued): the app it supervises stops first. */
static void lock_leave(struct held_lock *h)
{
    struct agent *a = h->a;
    int held, pending;

    pthread_mutex_lock(&a->mu);
    held = h->held;
    pending = h->pending;
    h->held = 0;
    publish_locks_locked(a);
    pthread_mutex_unlock(&a->mu);
    if (held && supervises_lock(a, h))
        stop_app_now(a);
    if (held)
        zkc_lock_release(h->lock);
    else if (pending && zkc_lock_cancel(h->lock) == 0) {
        pthread_mutex_lock(&a->mu);
        h->pending = 0;
        pthread_mutex_unlock(&a->mu);
    }
    /* A grant already on its way is released by lock_granted, which sees
     * the agent is no longer eligible. */
}

static void lock_event_cfg(zkc_lock *lock, zkc_lock_event ev, int64_t token, void *user_data)
{
    struct held_lock *h = user_data;
    struct agent *a = h->a;
    int ok;

    (void)lock;
    switch (ev) {
    case ZKC_LOCK_SUSPENDED:
        /* Can no longer be sure: the app must not act on the lock. */
        pthread_mutex_lock(&a->mu);
        h->held = 0;
        publish_locks_locked(a);
        pthread_mutex_unlock(&a->mu);
        if (supervises_lock(a, h))
            stop_app_now(a);
        break;
    case ZKC_LOCK_RECONNECTED:
        pthread_mutex_lock(&a->mu);
        ok = a->may_act;
        if (ok) {
            h->held = 1;
            h->token = token;
        }
        publish_locks_locked(a);
        pthread_mutex_unlock(&a->mu);
        if (!ok)
            zkc_lock_release(h->lock);
        resupervise(a);
        break;
    case ZKC_LOCK_LOST:
        pthread_mutex_lock(&a->mu);
        h->held = 0;
        publish_locks_locked(a);
        pthread_mutex_unlock(&a->mu);
        resupervise(a);
        zka_log(ZKC_LOG_WARN, "lock %s lost", h->cfg.name);
        fire(a, ZKA_EV_LOCK_LOST,
             json_pack("{s:{s:s, s:s, s:I}}", "lock", "name", h->cfg.name, "path", h->cfg.path,
                       "token", (json_int_t)token));
        zkc_lock_release(h->lock); /* quiet after loss; then queue again */
        lock_queue(h);
        break;
    }
}

static void lock_event(zkc_lock *lock, zkc_lock_event ev, int64_t token, void *user_data)
{
    struct agent *ag = ((struct held_lock *)user_data)->a;

    pthread_rwlock_rdlock(&ag->cfg_lock);
    lock_event_cfg(lock, ev, token, user_data);
    pthread_rwlock_unlock(&ag->cfg_lock);
}

static void lock_granted_cfg(zkc_lock *lock, int rc, int64_t token, void *user_data)
{
    struct held_lock *h = user_data;
    struct agent *a = h->a;
    int ok;

    (void)lock;
    pthread_mutex_lock(&a->mu);
    h->pending = 0;
    ok = rc == 0 && a->may_act;
    if (ok) {
        h->held = 1;
        h->token = token;
    }
    publish_locks_locked(a);
    pthread_mutex_unlock(&a->mu);
    if (rc != 0) {
        if (rc != ZKC_ECANCELED)
            zka_log(ZKC_LOG_ERROR, "lock %s: %s", h->cfg.name, zkc_strerror(rc));
        return;
    }
    if (!ok) {
        /* Health fell, or a drain came, while the grant was on its way. */
        zkc_lock_release(h->lock);
        return;
    }
    zka_log(ZKC_LOG_INFO, "holding lock %s (fencing token %" PRId64 ")", h->cfg.name, token);
    resupervise(a);
    fire(a, ZKA_EV_LOCK_ACQUIRED,
         json_pack("{s:{s:s, s:s, s:I}, s:I}", "lock", "name", h->cfg.name, "path", h->cfg.path,
                   "token", (json_int_t)token, "token", (json_int_t)token));
}

static void lock_granted(zkc_lock *lock, int rc, int64_t token, void *user_data)
{
    struct agent *ag = ((struct held_lock *)user_data)->a;

    pthread_rwlock_rdlock(&ag->cfg_lock);
    lock_granted_cfg(lock, rc, token, user_data);
    pthread_rwlock_unlock(&ag->cfg_lock);
}

/* Make the lock handles; queue for them only once eligible (locks_want). */
static int start_locks(struct agent *a)
{
    size_t i;

    a->locks = calloc(a->cfg->n_locks ? a->cfg->n_locks : 1, sizeof(*a->locks));
    if (!a->locks)
        return ZKC_ENOMEM;
    for (i = 0; i < a->cfg->n_locks; i++) {
        struct held_lock *h = &a->locks[i];
        zkc_lock_opts lo;
        int rc;
        h->a = a;
        h->cfg = a->cfg->locks[i];
        a->n_locks = i + 1;
        if (!h->cfg.hold)
            continue;
        zkc_lock_opts_init(&lo);
        lo.owner_id = a->cfg->member.id;
        lo.on_event = lock_event;
        lo.user_data = h;
        rc = zkc_lock_new(&h->lock, a->s, h->cfg.path, &lo);
        if (rc) {
            zka_log(ZKC_LOG_ERROR, "lock %s (%s): %s", h->cfg.name, h->cfg.path, zkc_strerror(rc));
            return rc;
        }
        lock_queue(h);
    }
    return 0;
}

/* Queue for every held lock (want) or give them all up (!want). */
static void locks_want(struct agent *a, int want)
{
    size_t i;

    for (i = 0; i < a->n_locks; i++) {
        if (!a->locks[i].lock)
            continue;
        if (want)
            lock_queue(&a->locks[i]);
        else
            lock_leave(&a->locks[i]);
    }
}

static void stop_locks(struct agent *a)
{
    size_t i;

    if (a->cfg->supervise.enabled && a->cfg->supervise.when == ZKA_WHILE_LOCK)
        stop_app_now(a);
    for (i = 0; i < a->n_locks; i++)
        zkc_lock_free(a->locks[i].lock);
    pthread_mutex_lock(&a->mu);
    free(a->locks);
    a->locks = NULL;
    a->n_locks = 0;
    publish_locks_locked(a);
    pthread_mutex_unlock(&a->mu);
}

/* ---------------------------------------------------------- membership */

static void fill_member_info(const zka_config *c, zkc_member_info *mi, zkc_endpoint *eps,
                             char **metadata)
{
    size_t i;

    memset(mi, 0, sizeof(*mi));
    mi->id = c->member.id;
    mi->host = c->member.host;
    mi->port = c->member.port;
    for (i = 0; i < c->member.n_endpoints; i++) {
        eps[i].name = c->member.endpoints[i].name;
        eps[i].host = c->member.endpoints[i].host;
        eps[i].port = c->member.endpoints[i].port;
    }
    mi->endpoints = eps;
    mi->n_endpoints = (int)c->member.n_endpoints;
    mi->shard = c->member.shard;
    *metadata = c->member.metadata ? json_dumps(c->member.metadata, JSON_COMPACT) : NULL;
    mi->metadata = *metadata;
}

/* mu held: what the gates allow now. Health is the gate of everything:
 * nothing happens before the check passed `rise` times, and it all goes
 * when health falls. A drain (or a drain state not read yet) keeps the
 * registration, as STOPPING, but no campaign and no lock. */
static void gates(struct agent *a, int *reg, int *stopping, int *act, int *drained)
{
    *reg = a->eligible && a->cfg->member.registers && a->group;
    *stopping = a->drained || !a->drain_known;
    *act = a->eligible && !*stopping;
    *drained = a->drain_known && a->drained;
    a->may_act = *act;
}

/* Take part in the work items while registered and allowed to act
 * (healthy, not drained at the time), give them up when no longer
 * registered (unhealthy). A drain alone changes nothing here: the member
 * stays, as STOPPING, and the planner moves its items away. During a
 * reload only the reload applies (from_reload), at its end. */
static void items_apply(struct agent *a, int from_reload)
{
    int skip, run, stop;

    pthread_mutex_lock(&a->wop);
    pthread_mutex_lock(&a->mu);
    skip = a->reloading && !from_reload;
    run = a->reg_applied && a->act_applied;
    stop = !a->reg_applied;
    pthread_mutex_unlock(&a->mu);
    if (!skip && run)
        zka_work_items_start(a->work, a->election);
    else if (!skip && stop)
        zka_work_items_stop(a->work);
    pthread_mutex_unlock(&a->wop);
}

static void registration(struct agent *a, int reg, int was_reg, int stopping)
{
    zkc_member_info mi;
    zkc_endpoint *eps;
    char *metadata = NULL;
    int rc;

    if (!reg) {
        zka_log(ZKC_LOG_WARN, "deregistering %s", a->cfg->member.id);
        rc = zkc_group_leave(a->group, 0);
        if (rc && rc != ZKC_ENOTHELD)
            zka_log(ZKC_LOG_ERROR, "cannot deregister: %s", zkc_strerror(rc));
        return;
    }
    eps = calloc(a->cfg->member.n_endpoints + 1, sizeof(*eps));
    if (!eps)
        return;
    fill_member_info(a->cfg, &mi, eps, &metadata);
    mi.status = stopping ? "STOPPING" : "ALIVE";
    if (was_reg) {
        zka_log(ZKC_LOG_INFO, "member status of %s: %s", a->cfg->member.id, mi.status);
        rc = zkc_group_update(a->group, &mi, 0);
        if (rc && rc != ZKC_ENOTHELD)
            zka_log(ZKC_LOG_ERROR, "cannot update our member status: %s", zkc_strerror(rc));
    } else {
        rc = zkc_group_join(a->group, &mi);
        if (rc && rc != ZKC_EBUSY)
            zka_log(ZKC_LOG_ERROR, "cannot register %s: %s", a->cfg->member.id, zkc_strerror(rc));
        else
            zka_log(ZKC_LOG_INFO, "registering %s in %s (%s)", a->cfg->member.id, a->members_path,
                    mi.status);
    }
    free(eps);
    free(metadata);
}

/* Bring the registration, the campaign and the locks in line with the
 * gates. Called after a gate changed, from the health thread, the
 * dispatcher (drain notes) or the main thread; one of them applies at a
 * time and the others leave their change to it (it looks again before it
 * stops), so a drain and a health change can never be applied out of
 * order. Leaving goes first (the supervised app stops before the
 * leadership or lock it runs under is given up), then the member status,
 * then joining; "drained"/"undrained" fire last. */
static void apply(struct agent *a)
{
    int reg, stopping, act, drained, was_reg, was_stopping, was_act, was_drained, healthy;

    pthread_mutex_lock(&a->mu);
    if (a->applying) {
        a->applying = 2; /* look again */
        pthread_mutex_unlock(&a->mu);
        return;
    }
    for (;;) {
        a->applying = 1;
        gates(a, &reg, &stopping, &act, &drained);
        if (reg == a->reg_applied && (!reg || stopping == a->stopping_applied) &&
            act == a->act_applied && drained == a->drained_applied)
            break;
        was_reg = a->reg_applied;
        was_stopping = a->stopping_applied;
        was_act = a->act_applied;
        was_drained = a->drained_applied;
        a->reg_applied = reg;
        a->stopping_applied = stopping;
        a->act_applied = act;
        a->drained_applied = drained;
        a->joined = reg;
        healthy = a->eligible;
        pthread_mutex_unlock(&a->mu);
        if (was_act && !act) {
            zka_log(ZKC_LOG_WARN, "%s: leaving the election and locks of %s",
                    healthy ? "drained" : "unhealthy", a->cfg->cluster);
            zka_notifyf("STATUS=%s", healthy ? "drained" : "waiting for health");
            /* Never hold work while unhealthy (issue 11 item 1): every
             * item's process stops and its claim goes before the member
             * node does. A drain keeps the handle: the member stays, as
             * STOPPING, and the planner moves its items away with a
             * proper hand-over (REVOKED, moved). */
            if (!reg)
                items_apply(a, 0);
            campaign(a, 0);
            locks_want(a, 0);
            resupervise(a);
        }
        if (reg != was_reg || (reg && stopping != was_stopping))
            registration(a, reg, was_reg, stopping);
        if (act && !was_act) {
            campaign(a, 1);
            locks_want(a, 1);
            resupervise(a);
            /* After campaign(): the handle plans through the participant. */
            items_apply(a, 0);
        }
        if (drained != was_drained) {
            zka_log(ZKC_LOG_WARN, "%s %s", drained ? "drained:" : "undrained:",
                    drained ? "member status STOPPING, not campaigning, no locks"
                            : "member status ALIVE, campaigning again");
            drain_fire(a);
        }
        pthread_mutex_lock(&a->mu);
    }
    a->applying = 0;
    pthread_mutex_unlock(&a->mu);
}

static int set_eligible(struct agent *a, int want)
{
    pthread_mutex_lock(&a->mu);
    a->eligible = want;
    a->may_act = a->may_act && want;
    pthread_mutex_unlock(&a->mu);
    apply(a);
    return 0;
}

static void update_payload(struct agent *a)
{
    zkc_member_info mi;
    zkc_endpoint *eps = calloc(a->cfg->member.n_endpoints + 1, sizeof(*eps));
    char *metadata = NULL;
    int rc;

    if (!eps)
        return;
    fill_member_info(a->cfg, &mi, eps, &metadata);
    pthread_mutex_lock(&a->mu);
    mi.status = a->stopping_applied ? "STOPPING" : "ALIVE";
    pthread_mutex_unlock(&a->mu);
    rc = zkc_group_update(a->group, &mi, 0);
    if (rc && rc != ZKC_ENOTHELD)
        zka_log(ZKC_LOG_ERROR, "cannot update our member data: %s", zkc_strerror(rc));
    free(eps);
    free(metadata);
}

static void on_group_cfg(zkc_group *g, const zkc_group_event *ev, void *user_data)
{
    struct agent *a = user_data;
    int baseline, self;

    (void)g;
    pthread_mutex_lock(&a->mu);
    baseline = a->baseline;
    pthread_mutex_unlock(&a->mu);
    switch (ev->type) {
    case ZKC_GROUP_CHANGED:
        pthread_mutex_lock(&a->mu);
        zkc_group_view_free(a->view);
        a->view = zkc_group_view_ref(ev->view);
        a->baseline = 0;
        zka_metrics_members(ev->view ? zkc_group_view_count(ev->view) : 0);
        /* Our own node was seen in a JOINED event of this or an earlier
         * batch: no walk of the view (O(members) per change). */
        self = a->self_seen;
        if (self && !a->ready_sent) {
            a->ready_sent = 1;
            pthread_mutex_unlock(&a->mu);
            zka_notifyf("READY=1\nSTATUS=member of %s", a->cfg->cluster);
        } else {
            pthread_mutex_unlock(&a->mu);
        }
        if (!baseline)
            fire(a, ZKA_EV_MEMBERS_CHANGED, NULL);
        break;
    case ZKC_GROUP_JOINED:
    case ZKC_GROUP_LEFT:
    case ZKC_GROUP_UPDATED:
        if (ev->member && (zkc_member_flags(ev->member) & ZKC_MEMBER_SELF)) {
            pthread_mutex_lock(&a->mu);
            a->self_seen = ev->type != ZKC_GROUP_LEFT;
            pthread_mutex_unlock(&a->mu);
        }
        if (baseline)
            break; /* members already there at start: no change to report */
        {
            /* O(1) per member event: a view reference, and the member's
             * JSON only when a handler takes the event. */
            zka_event kind = ev->type == ZKC_GROUP_JOINED ? ZKA_EV_MEMBER_JOINED
                             : ev->type == ZKC_GROUP_LEFT ? ZKA_EV_MEMBER_LEFT
                                                          : ZKA_EV_MEMBER_UPDATED;
            json_t *extra = NULL;
            /* The view of the batch, not the one before it. */
            pthread_mutex_lock(&a->mu);
            zkc_group_view_free(a->view);
            a->view = zkc_group_view_ref(ev->view);
            zka_metrics_members(ev->view ? zkc_group_view_count(ev->view) : 0);
            pthread_mutex_unlock(&a->mu);
            zka_metrics_membership_change(kind);
            if (!wanted(a, kind))
                break;
            extra = json_object();
            set(extra, "member", member_json(ev->member));
            if (ev->previous)
                set(extra, "previous", member_json(ev->previous));
            fire(a, kind, extra);
        }
        break;
    case ZKC_GROUP_DUPLICATE: {
        char pb[ZKA_PEER_BUF];
        zka_log(ZKC_LOG_ERROR, "member id %s is claimed by more than one node",
                zka_peer(pb, zkc_member_id(ev->member)));
        break;
    }
    case ZKC_GROUP_ERROR:
        zka_log(ZKC_LOG_ERROR, "our member node: %s", zkc_strerror(ev->rc));
        break;
    }
}

static void on_group(zkc_group *g, const zkc_group_event *ev, void *user_data)
{
    struct agent *ag = ((struct agent *)user_data);

    pthread_rwlock_rdlock(&ag->cfg_lock);
    on_group_cfg(g, ev, user_data);
    pthread_rwlock_unlock(&ag->cfg_lock);
}

static void on_health_cfg(zka_health_state st, const char *reason, void *user_data)
{
    struct agent *a = user_data;

    zka_log(st == ZKA_HEALTH_HEALTHY ? ZKC_LOG_INFO : ZKC_LOG_WARN, "health: %s (%s)",
            zka_health_state_name(st), reason);
    if (st == ZKA_HEALTH_HEALTHY)
        set_eligible(a, 1);
    else if (st == ZKA_HEALTH_UNHEALTHY)
        set_eligible(a, 0);
}

static void on_health(zka_health_state st, const char *reason, void *user_data)
{
    struct agent *ag = ((struct agent *)user_data);

    pthread_rwlock_rdlock(&ag->cfg_lock);
    on_health_cfg(st, reason, user_data);
    pthread_rwlock_unlock(&ag->cfg_lock);
}

static void on_state_cfg(zkc_session *s, zkc_conn_state st, void *user_data)
{
    struct agent *a = user_data;

    pthread_mutex_lock(&a->mu);
    a->connected = (st == ZKC_CONN_CONNECTED || st == ZKC_CONN_RECONNECTED);
    pthread_mutex_unlock(&a->mu);
    zka_metrics_conn_state(st, zkc_session_generation(s));
    switch (st) {
    case ZKC_CONN_SUSPENDED:
        zka_log(ZKC_LOG_WARN, "ZooKeeper connection suspended");
        fire(a, ZKA_EV_SUSPENDED, NULL);
        break;
    case ZKC_CONN_RECONNECTED:
        zka_log(ZKC_LOG_INFO, "ZooKeeper connection back (same session)");
        fire(a, ZKA_EV_RECONNECTED, NULL);
        break;
    case ZKC_CONN_LOST:
        zka_log(ZKC_LOG_WARN, "ZooKeeper session lost; opening a new one");
        fire(a, ZKA_EV_SESSION_LOST, NULL);
        break;
    default:
        break;
    }
    if (a->cfg->supervise.enabled && a->cfg->supervise.when == ZKA_WHILE_MEMBER)
        resupervise(a);
}

static void on_state(zkc_session *s, zkc_conn_state st, void *user_data)
{
    struct agent *ag = ((struct agent *)user_data);

    pthread_rwlock_rdlock(&ag->cfg_lock);
    on_state_cfg(s, st, user_data);
    pthread_rwlock_unlock(&ag->cfg_lock);
}

/* ------------------------------------------------------ drain notes */

/* Our note in a view of the drain folder (names sorted): its index or -1. */
static int drain_find(const zkc_cache_view *v, const char *id)
{
    int lo = 0, hi = zkc_cache_view_count(v) - 1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(zkc_cache_view_name(v, mid), id);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Set the drain state as read (data NULL when not drained). */
static void drain_seen(struct agent *a, int drained, const char *data, int len)
{
    zka_drain_note n;

    memset(&n, 0, sizeof(n));
    if (drained)
        zka_drain_parse(data, len, &n);
    if (drained && n.malformed)
        zka_log(ZKC_LOG_WARN,
                "our drain note in %s is not what zkcoordctl writes: drained, "
                "with no reason",
                a->drain_path);
    pthread_mutex_lock(&a->mu);
    a->drain_known = 1;
    a->drained = drained;
    a->drain_note = n;
    /* At once, not when apply() gets to it: a grant arriving meanwhile is
     * given back (lock_granted) rather than held for a moment. */
    a->may_act = a->may_act && !drained;
    pthread_mutex_unlock(&a->mu);
    apply(a);
}

static void on_drain_cfg(zkc_cache *c, const zkc_cache_event *ev, void *user_data)
{
    struct agent *a = user_data;
    int i, len = 0;
    const char *data = NULL;

    (void)c;
    if (ev->type != ZKC_CACHE_CHANGED || !ev->view)
        return;
    i = drain_find(ev->view, a->cfg->member.id);
    if (i >= 0)
        data = zkc_cache_view_data(ev->view, i, &len);
    drain_seen(a, i >= 0, data, len);
}

static void on_drain(zkc_cache *c, const zkc_cache_event *ev, void *user_data)
{
    struct agent *ag = ((struct agent *)user_data);

    pthread_rwlock_rdlock(&ag->cfg_lock);
    on_drain_cfg(c, ev, user_data);
    pthread_rwlock_unlock(&ag->cfg_lock);
}

/* Read our drain note once (so a drained agent never campaigns, not even
 * for a moment after a restart), then follow the folder. When the first
 * read fails, the member registers as STOPPING and waits for the cache. */
static int start_drain(struct agent *a)
{
    zkc_cache_opts co;
    char *node = NULL, *data = NULL;
    int rc, len = 0;

    a->drain_path = zka_drain_folder(a->cfg->zookeeper.root, a->cfg->cluster);
    if (!a->drain_path || asprintf(&node, "%s/%s", a->drain_path, a->cfg->member.id) < 0)
        return ZKC_ENOMEM;
    rc = zkc_get(a->s, node, a->cfg->zookeeper.session_timeout_ms, &data, &len, NULL);
    if (rc == 0 || rc == ZKC_ENONODE) {
        if (rc == 0)
            zka_log(ZKC_LOG_WARN, "%s is drained (%s): not campaigning until undrained",
                    a->cfg->member.id, node);
        drain_seen(a, rc == 0, data, len);
    } else {
        zka_log(ZKC_LOG_WARN, "cannot read %s (%s): staying out until it is read", node,
                zkc_strerror(rc));
    }
    free(data);
    free(node);
    zkc_cache_opts_init(&co);
    co.on_event = on_drain;
    co.user_data = a;
    co.fetch_data = 1;
    co.watch_data = 1;
    rc = zkc_cache_new(&a->drain, a->s, a->drain_path, &co);
    if (rc == 0)
        rc = zkc_cache_start(a->drain);
    if (rc)
        zka_log(ZKC_LOG_ERROR, "cannot follow %s: %s", a->drain_path, zkc_strerror(rc));
    return rc;
}

/* ------------------------------------------------------- work items */

/* ZKCOORD_ITEMS longer than this is passed empty (the document's "items"
 * has them all), as execve refuses one string above 128 KiB. */
#define ITEMS_ENV_MAX ZKA_MEMBERS_ENV_MAX

/* An item was assigned (its process started) or revoked (its process
 * gone): fire item_assigned / item_revoked. The spec is a peer's bytes:
 * in the document as JSON text (invalid UTF-8 replaced), in the
 * environment only when it holds no NUL byte. */
static void on_item_change(const zka_item_change *c, void *user_data)
{
    struct agent *a = user_data;
    zka_event ev = c->assigned ? ZKA_EV_ITEM_ASSIGNED : ZKA_EV_ITEM_REVOKED;
    json_t *extra, *items;
    char *env[5] = {NULL, NULL, NULL, NULL, NULL}, *csv = NULL;
    size_t i, len = 0, k = 0;
    int spec_ok = !c->spec || strlen(c->spec) == (size_t)c->spec_len;

    pthread_rwlock_rdlock(&a->cfg_lock);
    if (!wanted(a, ev))
        goto out;
    for (i = 0; i < c->n_held; i++)
        len += strlen(c->held[i]) + 1;
    items = json_array();
    csv = calloc(1, len + 1);
    if (!items || !csv) {
        json_decref(items);
        goto nomem;
    }
    for (i = 0; i < c->n_held; i++) {
        json_array_append_new(items, zka_json_str(c->held[i]));
        if (i)
            strcat(csv, ",");
        strcat(csv, c->held[i]);
    }
    if (len > ITEMS_ENV_MAX)
        csv[0] = '\0';
    extra = json_pack("{s:o, s:o, s:o, s:I}", "item", zka_json_str(c->item), "spec",
                      zka_json_str(c->spec ? c->spec : ""), "items", items, "token",
                      (json_int_t)c->token);
    if (!extra)
        goto nomem;
    if (!c->assigned)
        set(extra, "reason", json_string(c->reason));
    if (asprintf(&env[k++], "ZKCOORD_ITEM=%s", c->item) < 0 ||
        asprintf(&env[k++], "ZKCOORD_ITEM_SPEC=%s", spec_ok && c->spec ? c->spec : "") < 0 ||
        asprintf(&env[k++], "ZKCOORD_ITEMS=%s", csv) < 0 ||
        (!c->assigned && asprintf(&env[k++], "ZKCOORD_REVOKE_REASON=%s", c->reason) < 0)) {
        env[k - 1] = NULL;
        json_decref(extra);
        goto nomem;
    }
    fire_ex(a, ev, extra, c->item, env);
    goto out;
nomem:
    zka_log(ZKC_LOG_ERROR, "%s: out of memory, not fired", zka_event_name(ev));
out:
    for (i = 0; i < 5; i++)
        free(env[i]);
    free(csv);
    pthread_rwlock_unlock(&a->cfg_lock);
}

/* ------------------------------------------------------ set-up, tear-down */

static char *join_path(const char *root, const char *cluster, const char *leaf)
{
    char *p = NULL;

    if (asprintf(&p, "%s/%s/%s", strcmp(root, "/") == 0 ? "" : root, cluster, leaf) < 0)
        return NULL;
    return p;
}

static int start_health(struct agent *a)
{
    int rc = zka_health_new(&a->health, &a->cfg->health, on_health, a);

    if (rc) {
        zka_log(ZKC_LOG_ERROR, "cannot start health checks: %s", zkc_strerror(rc));
        return rc;
    }
    /* Without a health section the state is HEALTHY from the start and no
     * callback comes: register now. */
    if (zka_health_get(a->health) == ZKA_HEALTH_HEALTHY)
        set_eligible(a, 1);
    return 0;
}

static int start_supervise(struct agent *a)
{
    char *env[3] = {NULL, NULL, NULL};
    int rc;

    /* While "item": work.c runs one supervisor per held item. */
    if (!a->cfg->supervise.enabled || a->cfg->supervise.when == ZKA_WHILE_ITEM)
        return 0;
    if (asprintf(&env[0], "ZKCOORD_CLUSTER=%s", a->cfg->cluster) < 0 ||
        asprintf(&env[1], "ZKCOORD_MEMBER_ID=%s", a->cfg->member.id) < 0)
        return ZKC_ENOMEM;
    rc = zka_supervise_new(&a->sv, &a->cfg->supervise, env, on_app_exit, a);
    free(env[0]);
    free(env[1]);
    if (rc)
        zka_log(ZKC_LOG_ERROR, "cannot start the supervisor: %s", zkc_strerror(rc));
    return rc;
}

/* The work section: the task worker (and the planner, attached to the
 * election participant when there is one). */
static int start_work(struct agent *a)
{
    char *cluster_path = NULL;
    int rc;

    if (!a->cfg->work.enabled)
        return 0;
    if (asprintf(&cluster_path, "%s/%s",
                 strcmp(a->cfg->zookeeper.root, "/") == 0 ? "" : a->cfg->zookeeper.root,
                 a->cfg->cluster) < 0)
        return ZKC_ENOMEM;
    pthread_mutex_lock(&a->wop);
    rc = zka_work_new(&a->work, a->s, &a->cfg->work, a->cfg->cluster, cluster_path, a->members_path,
                      a->leader_path, a->cfg->member.id,
                      a->cfg->supervise.when == ZKA_WHILE_ITEM ? &a->cfg->supervise : NULL,
                      a->cfg->zookeeper.session_timeout_ms, on_item_change, a);
    free(cluster_path);
    if (rc == 0 && a->election)
        zka_work_plan(a->work, a->election);
    pthread_mutex_unlock(&a->wop);
    if (rc == 0 && !a->cfg->election.enabled)
        zka_log(ZKC_LOG_WARN, "work: election.enabled is false: this agent never plans the task "
                              "queue or the work items (another agent or client of the cluster "
                              "must lead it)");
    return rc;
}

/* Running tasks finish (within their timeout) and write their results;
 * held items are revoked, their processes stopped first. */
static void stop_work(struct agent *a)
{
    pthread_mutex_lock(&a->wop);
    zka_work_free(a->work);
    a->work = NULL;
    pthread_mutex_unlock(&a->wop);
}

/* Everything that lives on the ZooKeeper session. */
static int start_cluster(struct agent *a, int connect_timeout_ms)
{
    zkc_session_opts so;
    zkc_group_opts go;
    int rc;

    a->members_path = join_path(a->cfg->zookeeper.root, a->cfg->cluster, "members");
    a->leader_path = join_path(a->cfg->zookeeper.root, a->cfg->cluster, "leader");
    if (!a->members_path || !a->leader_path)
        return ZKC_ENOMEM;
    zkc_session_opts_init(&so);
    so.servers = a->cfg->zookeeper.servers;
    so.session_timeout_ms = a->cfg->zookeeper.session_timeout_ms;
    so.digest_user = a->cfg->zookeeper.digest_user;
    so.digest_password = a->cfg->zookeeper.digest_password;
    so.log_fn = zka_log_zkc;
    so.log_level = a->cfg->log.level;
    rc = zkc_session_new(&a->s, &so);
    if (rc)
        return rc;
    zkc_session_add_listener(a->s, on_state, a);
    rc = zkc_session_wait_connected(a->s, connect_timeout_ms);
    if (rc)
        return rc;
    pthread_mutex_lock(&a->mu);
    a->baseline = 1;
    pthread_mutex_unlock(&a->mu);
    zkc_group_opts_init(&go);
    go.on_event = on_group;
    go.user_data = a;
    rc = zkc_group_new(&a->group, a->s, a->members_path, &go);
    if (rc)
        return rc;
    if ((rc = start_drain(a)) || (rc = start_work(a)))
        return rc;
    if ((rc = start_election(a)) || (rc = start_locks(a)))
        return rc;
    if (!a->cfg->member.registers) {
        zka_notify("READY=1");
        pthread_mutex_lock(&a->mu);
        a->ready_sent = 1;
        pthread_mutex_unlock(&a->mu);
    }
    if ((rc = start_health(a)))
        return rc;
    /* Up and configured but not healthy yet: systemd must not take the
     * wait for a failing check as a failed start (and restart in a loop). */
    pthread_mutex_lock(&a->mu);
    if (!a->ready_sent && !a->eligible) {
        a->ready_sent = 1;
        pthread_mutex_unlock(&a->mu);
        zka_notify("READY=1\nSTATUS=waiting for health");
        zka_log(ZKC_LOG_INFO, "waiting for the health check to pass %d times", a->cfg->health.rise);
    } else {
        pthread_mutex_unlock(&a->mu);
    }
    return 0;
}

static void stop_cluster(struct agent *a)
{
    zka_health_free(a->health);
    a->health = NULL;
    zkc_cache_free(a->drain);
    a->drain = NULL;
    stop_election(a);
    stop_work(a);
    stop_locks(a);
    if (a->sv)
        stop_app_now(a);
    zkc_group_free(a->group); /* deletes our member node at once */
    a->group = NULL;
    pthread_mutex_lock(&a->mu);
    a->eligible = 0;
    pthread_mutex_unlock(&a->mu);
    if (a->s)
        zkc_session_close(a->s);
    a->s = NULL;
    pthread_mutex_lock(&a->mu);
    zkc_group_view_free(a->view);
    a->view = NULL;
    a->joined = 0;
    a->self_seen = 0;
    a->leader_id[0] = '\0';
    zka_metrics_members(0);
    zka_metrics_leader(NULL, 0);
    /* A new identity or ensemble starts from its own drain note. */
    a->drain_known = a->drained = a->may_act = 0;
    a->reg_applied = a->stopping_applied = a->act_applied = a->drained_applied = 0;
    pthread_mutex_unlock(&a->mu);
    zka_metrics_conn_state(ZKC_CONN_NONE, 0);
    pthread_mutex_lock(&a->dmu);
    a->drain_deferred = a->drain_fired = 0;
    pthread_mutex_unlock(&a->dmu);
    free(a->members_path);
    free(a->leader_path);
    free(a->drain_path);
    a->members_path = a->leader_path = a->drain_path = NULL;
}

/* ------------------------------------------------------------- metrics */

/* Serve the metrics section of `c` (none: nothing). 0 or the error, said. */
static int start_metrics(const zka_config *c)
{
    char why[256];
    int rc;

    zka_metrics_identity(c->cluster, c->member.id);
    if (!c->metrics.enabled)
        return 0;
    rc = zka_metrics_start(c->metrics.host, c->metrics.port, c->metrics.ipv6, why, sizeof(why));
    if (rc)
        zka_log(ZKC_LOG_ERROR, "%s", why);
    else
        zka_log(ZKC_LOG_INFO, "metrics: serving http://%s/metrics", c->metrics.listen);
    return rc;
}

/* ZooKeeper request latency: the library has no per-request hook (its
 * requests are sent from 38 places in 11 files), so the agent times a
 * request of its own: a getData of the members node, every
 * PROBE_INTERVAL_MS while connected, from the main thread (the only thread
 * that may use a->s across a reload). Bounded by PROBE_TIMEOUT_MS; a
 * failure other than "no node" is not a latency and is not counted. */
#define PROBE_INTERVAL_MS 5000
#define PROBE_TIMEOUT_MS  500

static void probe_zookeeper(struct agent *a)
{
    zkc_conn_state st;
    long long t0;
    int rc;

    if (!a->s || !a->members_path)
        return;
    st = zkc_session_state(a->s);
    if (st != ZKC_CONN_CONNECTED && st != ZKC_CONN_RECONNECTED)
        return;
    t0 = zka_metrics_now_us();
    rc = zkc_get(a->s, a->members_path, PROBE_TIMEOUT_MS, NULL, NULL, NULL);
    if (rc == 0 || rc == ZKC_ENONODE)
        zka_metrics_zk_request(zka_metrics_now_us() - t0);
}

/* ------------------------------------------------------- HUP, USR1 */

static void set_cfg(struct agent *a, zka_config *next)
{
    pthread_rwlock_wrlock(&a->cfg_lock);
    a->cfg = next;
    pthread_rwlock_unlock(&a->cfg_lock);
}

/* Waits for callbacks that began before the switch and may still read it. */
static void free_cfg(struct agent *a, zka_config *prev)
{
    pthread_rwlock_wrlock(&a->cfg_lock);
    zka_config_free(prev);
    pthread_rwlock_unlock(&a->cfg_lock);
}

static void reload(struct agent *a, const char *file)
{
    zka_config *next = NULL, *prev;
    zka_config_error err;
    unsigned diff;
    int items_sv;

    if (zka_config_load(file, &next, &err) != 0) {
        zka_log(ZKC_LOG_ERROR, "reload refused, still running the previous config: %s", err.text);
        return;
    }
    diff = zka_config_diff(a->cfg, next);
    if (!diff) {
        zka_log(ZKC_LOG_INFO, "reload: nothing changed");
        zka_config_free(next);
        return;
    }
    zka_log(ZKC_LOG_INFO, "reload: applying changes (0x%x)", diff);
    prev = a->cfg;
    pthread_mutex_lock(&a->mu);
    a->reloading = 1;
    pthread_mutex_unlock(&a->mu);
    if (diff & ZKA_DIFF_METRICS) {
        /* A failure to bind the new address leaves the endpoint off (the
         * error is logged); counting goes on either way. */
        zka_metrics_stop();
        (void)start_metrics(next);
    } else if (diff & ZKA_DIFF_IDENTITY) {
        zka_metrics_identity(next->cluster, next->member.id);
    }
    if (diff & (ZKA_DIFF_ZOOKEEPER | ZKA_DIFF_IDENTITY)) {
        /* A new identity or ensemble: leave as the old one, join as the new. */
        stop_cluster(a);
        zka_supervise_free(a->sv);
        a->sv = NULL;
        set_cfg(a, next);
        zka_handlers_reconfigure(a->handlers, next->handlers, next->n_handlers);
        if (start_supervise(a) || start_cluster(a, next->zookeeper.session_timeout_ms))
            zka_log(ZKC_LOG_ERROR, "reload: the new cluster settings did not start cleanly");
        pthread_mutex_lock(&a->mu);
        a->reloading = 0;
        pthread_mutex_unlock(&a->mu);
        items_apply(a, 1);
        free_cfg(a, prev);
        return;
    }
    /* Same session, same membership: change only what differs. The parts
     * below borrow strings from the config, so each is stopped before the
     * switch and started after it. */
    if (diff & ZKA_DIFF_HEALTH) {
        zka_health_free(a->health);
        a->health = NULL;
    }
    if (diff & (ZKA_DIFF_ELECTION | ZKA_DIFF_SUPERVISE))
        stop_election(a);
    if (diff & (ZKA_DIFF_LOCKS | ZKA_DIFF_SUPERVISE))
        stop_locks(a);
    /* The item handle runs one copy of the supervise section per item. */
    items_sv = (diff & ZKA_DIFF_SUPERVISE) &&
               ((prev->supervise.enabled && prev->supervise.when == ZKA_WHILE_ITEM) ||
                (next->supervise.enabled && next->supervise.when == ZKA_WHILE_ITEM));
    if ((diff & ZKA_DIFF_WORK) || items_sv)
        stop_work(a);
    if (diff & ZKA_DIFF_SUPERVISE) {
        zka_supervise_free(a->sv);
        a->sv = NULL;
    }
    set_cfg(a, next);
    if (diff & ZKA_DIFF_LOG)
        zka_log_setup(next->log.level, next->log.syslog);
    if (diff & ZKA_DIFF_HANDLERS)
        zka_handlers_reconfigure(a->handlers, next->handlers, next->n_handlers);
    if (diff & ZKA_DIFF_SUPERVISE)
        start_supervise(a);
    if (diff & (ZKA_DIFF_ELECTION | ZKA_DIFF_SUPERVISE))
        start_election(a);
    if (diff & (ZKA_DIFF_LOCKS | ZKA_DIFF_SUPERVISE))
        start_locks(a);
    if (((diff & ZKA_DIFF_WORK) || items_sv) && start_work(a))
        zka_log(ZKC_LOG_ERROR, "reload: the work section did not start");
    if (diff & ZKA_DIFF_PAYLOAD)
        update_payload(a);
    if (diff & ZKA_DIFF_HEALTH)
        start_health(a);
    resupervise(a);
    pthread_mutex_lock(&a->mu);
    a->reloading = 0;
    pthread_mutex_unlock(&a->mu);
    items_apply(a, 1);
    free_cfg(a, prev);
}

static void dump_state(struct agent *a)
{
    json_t *st = json_object(), *locks = json_array();
    char *text;
    size_t i;

    pthread_mutex_lock(&a->mu);
    json_object_set_new(st, "cluster", json_string(a->cfg->cluster));
    json_object_set_new(st, "member_id", json_string(a->cfg->member.id));
    json_object_set_new(st, "registered", json_boolean(a->joined));
    json_object_set_new(st, "connected", json_boolean(a->connected));
    json_object_set_new(st, "leading", json_boolean(a->leading));
    json_object_set_new(st, "drained", a->drain_known ? json_boolean(a->drained) : json_null());
    json_object_set_new(st, "token", json_integer(a->leading ? a->token : 0));
    set(st, "leader", zka_json_str(a->leader_id));
    json_object_set_new(st, "members", json_integer(a->view ? zkc_group_view_count(a->view) : 0));
    for (i = 0; i < a->n_locks; i++)
        json_array_append_new(locks,
                              json_pack("{s:s, s:b, s:I}", "name", a->locks[i].cfg.name, "held",
                                        a->locks[i].held, "token", (json_int_t)a->locks[i].token));
    pthread_mutex_unlock(&a->mu);
    json_object_set_new(st, "locks", locks);
    json_object_set_new(st, "session", json_integer(a->s ? zkc_session_id(a->s) : 0));
    json_object_set_new(
        st, "health",
        json_string(a->health ? zka_health_state_name(zka_health_get(a->health)) : "none"));
    json_object_set_new(st, "app_pid", json_integer(a->sv ? zka_supervise_pid(a->sv) : 0));
    json_object_set_new(st, "items_held", json_integer(zka_work_items_held(a->work)));
    text = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
    /* Asked for explicitly: logged at warn so the default level shows it. */
    zka_log(ZKC_LOG_WARN, "state %s", text ? text : "{}");
    free(text);
    json_decref(st);
}

/* ------------------------------------------------------------ watchdog */

/* WATCHDOG=1 comes from a thread of its own, every half interval, while
 * the main loop beats (it wakes at least every second) or is busy in a
 * reload or a stop, each with a bound: a slow reload (a config of 80k
 * elements, a cluster change that waits for the server) or a long stop
 * (stop_grace_ms) must not get the agent killed, but a main loop stuck
 * for good must. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t usec;
    long long beat, busy_until;
    int quit;
    pthread_t th;
} wd = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0};

static void wd_beat(long long busy_ms)
{
    pthread_mutex_lock(&wd.mu);
    wd.beat = zka_now_ms();
    wd.busy_until = busy_ms ? wd.beat + busy_ms : 0;
    pthread_mutex_unlock(&wd.mu);
}

static void *wd_main(void *arg)
{
    long long half = (long long)(wd.usec / 2000);

    (void)arg;
    pthread_mutex_lock(&wd.mu);
    while (!wd.quit) {
        struct timespec ts;
        long long now = zka_now_ms();
        int ok = now - wd.beat < (long long)(wd.usec / 1000) || now < wd.busy_until;
        pthread_mutex_unlock(&wd.mu);
        if (ok)
            zka_notify("WATCHDOG=1");
        else
            zka_log(ZKC_LOG_ERROR, "main loop stuck: not feeding the watchdog");
        pthread_mutex_lock(&wd.mu);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(half / 1000);
        ts.tv_nsec += (long)(half % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!wd.quit)
            pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
    }
    pthread_mutex_unlock(&wd.mu);
    return NULL;
}

static int wd_start(void)
{
    pthread_condattr_t ca;

    wd.usec = zka_notify_watchdog_usec();
    if (!wd.usec)
        return 0;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&wd.cv);
    pthread_cond_init(&wd.cv, &ca);
    pthread_condattr_destroy(&ca);
    wd_beat(0);
    if (pthread_create(&wd.th, NULL, wd_main, NULL) != 0) {
        wd.usec = 0;
        return -1;
    }
    return 0;
}

static void wd_stop(void)
{
    if (!wd.usec)
        return;
    pthread_mutex_lock(&wd.mu);
    wd.quit = 1;
    pthread_cond_broadcast(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
    pthread_join(wd.th, NULL);
    wd.usec = 0;
}

/* ---------------------------------------------------------------- main */

/* `zkcoord -c FILE --drain [--reason TEXT] [--force]` / `--undrain`: write
 * or delete this member's drain note with the agent's own servers, auth,
 * root, cluster and id (the running agent follows the note), then exit. The
 * same checks as `zkcoordctl drain`, except that the id is never unknown:
 * it is this host's. */
static int local_drain(const zka_config *cfg, int drain, const char *reason, int force,
                       int connect_timeout_ms)
{
    zkc_session_opts so;
    zkc_session *s = NULL;
    zka_drain_refusal why = ZKA_DRAIN_REFUSED_NONE;
    char *folder = NULL, *cluster_path = NULL, by[ZKA_DRAIN_BY_MAX + 1];
    int rc, was = 0, status = EXIT_OK;

    if (reason && zka_drain_reason_check(reason)) {
        fprintf(stderr, "zkcoord: --reason: %s\n", zka_drain_reason_check(reason));
        return EXIT_USAGE;
    }
    folder = zka_drain_folder(cfg->zookeeper.root, cfg->cluster);
    if (!folder || !(cluster_path = strdup(folder))) {
        free(folder);
        return EXIT_RUNTIME;
    }
    *strrchr(cluster_path, '/') = '\0';
    zkc_session_opts_init(&so);
    so.servers = cfg->zookeeper.servers;
    so.session_timeout_ms = cfg->zookeeper.session_timeout_ms;
    so.digest_user = cfg->zookeeper.digest_user;
    so.digest_password = cfg->zookeeper.digest_password;
    so.log_level = ZKC_LOG_ERROR;
    rc = zkc_session_new(&s, &so);
    if (rc == 0)
        rc = zkc_session_wait_connected(s, connect_timeout_ms);
    if (rc == ZKC_EUNREACHABLE || rc == ZKC_ETIMEDOUT) {
        fprintf(stderr,
                "zkcoord: ZooKeeper unreachable: no answer from %s within %d ms; "
                "nothing changed\n",
                cfg->zookeeper.servers, connect_timeout_ms);
        status = EXIT_UNREACHABLE;
        goto out;
    } else if (rc) {
        fprintf(stderr, "zkcoord: cannot connect to %s: %s\n", cfg->zookeeper.servers,
                zkc_strerror(rc));
        status = EXIT_RUNTIME;
        goto out;
    }
    if (drain) {
        zka_drain_by(by, sizeof(by));
        rc = zka_drain_set(s, cluster_path, cfg->member.id, reason, by, force, 0,
                           connect_timeout_ms, &why, &was);
    } else {
        rc = zka_drain_clear(s, cluster_path, cfg->member.id, connect_timeout_ms, &was);
    }
    if (rc == ZKC_EBUSY && why == ZKA_DRAIN_REFUSED_LAST) {
        fprintf(stderr,
                "zkcoord: refused: %s is the last healthy, undrained member of %s "
                "(--force drains it anyway)\n",
                cfg->member.id, cfg->cluster);
        status = EXIT_REFUSED;
    } else if (rc == ZKC_ECONNLOSS || rc == ZKC_ETIMEDOUT) {
        fprintf(stderr,
                "zkcoord: ZooKeeper connection lost before the answer: the drain note may or "
                "may not be %s; check with zkcoordctl status %s\n",
                drain ? "written" : "deleted", cfg->cluster);
        status = EXIT_UNREACHABLE;
    } else if (rc) {
        fprintf(stderr, "zkcoord: %s %s: %s\n", drain ? "drain" : "undrain", cfg->member.id,
                zkc_strerror(rc));
        status = EXIT_RUNTIME;
    } else if (drain) {
        printf("%s %s of %s\n",
               was ? "still drained (reason updated):" : "drained:", cfg->member.id, cfg->cluster);
    } else {
        printf("%s %s of %s\n", was ? "undrained:" : "was not drained:", cfg->member.id,
               cfg->cluster);
    }
out:
    zkc_session_close(s);
    free(folder);
    free(cluster_path);
    return status;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: zkcoord -c FILE [--check] [-v] [--connect-timeout MS]\n"
               "       zkcoord -c FILE --drain [--reason TEXT] [--force] | --undrain\n"
               "       zkcoord --help | --version\n"
               "Runs beside an app: registers it in a ZooKeeper cluster, campaigns for\n"
               "leadership, fires handlers on changes, supervises it. See zkcoord(8).\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"verbose", no_argument, NULL, 'v'},
        {"connect-timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"drain", no_argument, NULL, 'D'},
        {"undrain", no_argument, NULL, 'U'},
        {"reason", required_argument, NULL, 'r'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    struct agent agent, *a = &agent;
    const char *file = NULL, *reason = NULL;
    int drain_cmd = 0, force = 0;
    int check = 0, verbose = 0, connect_timeout_ms = 15000, opt, rc, status = EXIT_OK;
    long long next_probe = 0;
    zka_config_error err;
    zka_handlers_opts ho;
    sigset_t sigs;

    memset(a, 0, sizeof(*a));
    while ((opt = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 't':
            connect_timeout_ms = atoi(optarg);
            if (connect_timeout_ms <= 0) {
                fprintf(stderr, "zkcoord: --connect-timeout: expected milliseconds > 0\n");
                return EXIT_USAGE;
            }
            break;
        case 'D':
        case 'U':
            if (drain_cmd && drain_cmd != opt) {
                fprintf(stderr, "zkcoord: --drain and --undrain exclude each other\n");
                return EXIT_USAGE;
            }
            drain_cmd = opt;
            break;
        case 'r':
            reason = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("zkcoord %s\n", ZKC_VERSION);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if ((reason || force) && drain_cmd != 'D') {
        fprintf(stderr, "zkcoord: --reason and --force go with --drain\n");
        return EXIT_USAGE;
    }
    if (!file || optind != argc || (drain_cmd && check)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (zka_config_load(file, &a->cfg, &err) != 0) {
        fprintf(stderr, "zkcoord: %s\n", err.text);
        return EXIT_USAGE;
    }
    if (check) {
        printf("%s: ok\n", file);
        zka_config_free(a->cfg);
        return EXIT_OK;
    }
    if (drain_cmd) {
        status = local_drain(a->cfg, drain_cmd == 'D', reason, force, connect_timeout_ms);
        zka_config_free(a->cfg);
        return status;
    }
    zka_log_setup(verbose ? ZKC_LOG_DEBUG : a->cfg->log.level, a->cfg->log.syslog);
    if (zka_config_security_warning(a->cfg)) /* issue 11 item 5: once, at startup */
        zka_log(ZKC_LOG_WARN, "%s", zka_config_security_warning(a->cfg));

    /* Signals are taken by this thread only; every thread created from now
     * on inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGPIPE);
    sigaddset(&sigs, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    /* Every command runs under a guard that is itself a subreaper (proc.h);
     * the agent is one too, so what is left of a killed guard comes here,
     * is killed and reaped (SIGCHLD below), and never becomes a zombie of
     * an init that might not reap. */
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->dmu, NULL);
    pthread_mutex_init(&a->wop, NULL);
    pthread_rwlock_init(&a->cfg_lock, NULL);
    /* After the signal mask: libmicrohttpd's thread inherits it. */
    if (start_metrics(a->cfg) != 0) {
        status = EXIT_RUNTIME;
        goto out;
    }
    memset(&ho, 0, sizeof(ho));
    rc = zka_handlers_new(&a->handlers, a->cfg->handlers, a->cfg->n_handlers, &ho);
    if (rc == 0)
        rc = start_supervise(a);
    if (rc) {
        status = EXIT_RUNTIME;
        goto out;
    }
    rc = start_cluster(a, connect_timeout_ms);
    if (rc == ZKC_EUNREACHABLE) {
        fprintf(stderr, "zkcoord: ZooKeeper unreachable: no answer from %s within %d ms\n",
                a->cfg->zookeeper.servers, connect_timeout_ms);
        status = EXIT_UNREACHABLE;
        goto out;
    } else if (rc) {
        zka_log(ZKC_LOG_ERROR, "cannot start: %s", zkc_strerror(rc));
        status = EXIT_RUNTIME;
        goto out;
    }
    zka_log(ZKC_LOG_INFO, "running for cluster %s as %s", a->cfg->cluster, a->cfg->member.id);

    if (wd_start() != 0)
        zka_log(ZKC_LOG_ERROR, "cannot start the watchdog thread");
    for (;;) {
        siginfo_t si;
        struct timespec ts = {1, 0};
        int sig;
        if (a->cfg->metrics.enabled && zka_now_ms() >= next_probe) {
            probe_zookeeper(a);
            next_probe = zka_now_ms() + PROBE_INTERVAL_MS;
        }
        /* Beat at least four times per watchdog interval. */
        if (wd.usec && wd.usec < 4000000) {
            ts.tv_sec = 0;
            ts.tv_nsec = (long)(wd.usec / 4) * 1000;
        }
        wd_beat(0);
        sig = sigtimedwait(&sigs, &si, &ts);
        if (sig < 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            zka_log(ZKC_LOG_INFO, "%s: leaving the cluster", sig == SIGTERM ? "TERM" : "INT");
            break;
        } else if (sig == SIGHUP) {
            /* Bounded like a stop: the worst case of a reload is leaving
             * the cluster and joining it again. */
            wd_beat(RELOAD_BUDGET_MS);
            reload(a, file);
        } else if (sig == SIGUSR1) {
            dump_state(a);
        } else if (sig == SIGCHLD) {
            zka_proc_reap_adopted();
        }
    }

out:
    zka_notify("STOPPING=1");
    wd_beat(RELOAD_BUDGET_MS);
    stop_cluster(a);
    zka_supervise_free(a->sv);
    if (a->handlers && zka_handlers_wait_idle(a->handlers, 3000) != 0)
        zka_log(ZKC_LOG_WARN, "handlers still running at exit: stopped");
    zka_handlers_free(a->handlers);
    zka_metrics_stop();
    zka_proc_reap_adopted();
    wd_stop();
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->dmu);
    pthread_mutex_destroy(&a->wop);
    pthread_rwlock_destroy(&a->cfg_lock);
    zka_config_free(a->cfg);
    return status;
}
