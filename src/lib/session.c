/*
 * The session: one ZooKeeper handle at a time, Curator's connection states,
 * the manager thread that turns client events into those states (and opens a
 * new ZooKeeper session after LOST), and the routes by which recipes hear of
 * them (hooks). Node watches are per request (zkc__qwatch, queue.h; the
 * children cache's own): no session-wide path router (issue 9, item 4).
 *
 * Threads:
 *  - ZooKeeper's I/O and completion threads (per handle). The default watcher
 *    only queues session events for the manager; no request sets a watch
 *    on it, so it sees no node events (they are dropped if any come).
 *  - The manager thread: state machine, local LOST timer, handle replacement.
 *    It calls internal hooks; it never runs user code.
 *  - Two dispatcher threads (dispatch.c) for user callbacks: the ordinary
 *    lane (zkc__dispatch: membership, leadership gained, lock acquired, ...)
 *    and the safety lane (zkc__dispatch_safety: connection-state listeners,
 *    DEMOTED, lock SUSPENDED/LOST), so that a blocked or flooded ordinary
 *    lane never delays a safety event (issue 9, bug 8).
 *
 * Locks (outer to inner): hk_mu -> recipe locks -> zh_mu -> mu; pend_mu is
 * a leaf; mu is never held while calling out.
 *
 * Generations: s->gen names the ZooKeeper session recipes may use. It moves
 * on in the same critical section (zh_mu + mu) that sets LOST and takes the
 * old handle away from recipes, so from that instant zkc__zh_lock() never
 * hands out the dead session's handle, and events the old handle still
 * produces (a reconnect to its old session, say) are dropped by the manager:
 * each new ZooKeeper session is announced exactly once, as CONNECTED.
 */
#include "internal.h"
#include "dispatch.h"
#include "naming.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct listener {
    zkc_state_fn fn;
    void *user_data;
    struct listener *next;
};

struct hook {
    zkc__state_hook fn;
    void *arg;
    struct hook *next;
};

struct zk_event {
    int state;
    unsigned gen;
    struct zk_event *next;
};

/* Context of one ZooKeeper handle's default watcher. */
struct handle_ctx {
    zkc_session *s;
    unsigned gen;
};

struct zkc_session {
    pthread_mutex_t mu; /* everything below up to zh_mu */
    pthread_cond_t cond;
    zkc_conn_state state;
    int ever_connected;
    int auth_failed;
    int closing;
    int64_t session_id;
    int timeout_ms;       /* negotiated (or requested, before the first connect) */
    int64_t lost_at_ms;   /* local LOST deadline while SUSPENDED, 0 = none */
    int64_t reopen_at_ms; /* retry of a failed zookeeper_init, 0 = none */
    int reopen;           /* the current handle is dead: replace it */
    unsigned gen;         /* current generation (of the next handle, between handles) */
    int attached;         /* recipe handles open on this session */
    struct zk_event *evq, *evq_tail;
    struct listener *listeners;
    pthread_t manager;

    pthread_mutex_t zh_mu;
    zhandle_t *zh;
    struct handle_ctx *hctx;
    zhandle_t *dead_zh; /* taken away at LOST, closed by the manager */
    struct handle_ctx *dead_hctx;

    struct hook *oneshots; /* zkc__when_connected(), under mu */

    pthread_mutex_t pend_mu;
    zkc__pending pending; /* list head of requests in flight (zkc__pending_add) */

    pthread_mutex_t hk_mu;
    struct hook *hooks;

    zkc__dispatcher *disp;   /* ordinary lane */
    zkc__dispatcher *safety; /* safety lane */
    zkc__logger log;
    zkc_session *route_next; /* the client-log route, oldest first */

    char *servers;
    char *connect_string; /* servers + root */
    char *root;
    char *auth; /* "user:password" or NULL */
    int requested_timeout_ms;
    struct ACL acl_items[2];
    struct ACL_vector acl;
};

/* ---------------------------------------------------------------- options */

void zkc_session_opts_init(zkc_session_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->session_timeout_ms = 10000;
    o->log_level = ZKC_LOG_WARN;
    o->zk_log_level = ZKC_LOG_DEBUG;
}

static int why(char *buf, size_t len, const char *field, const char *text, const char *value)
{
    if (buf && len)
        snprintf(buf, len, "%s: %s%s%s%s", field, text, value ? " ('" : "", value ? value : "",
                 value ? "')" : "");
    return ZKC_EINVAL;
}

static int check_servers(const char *servers, char *buf, size_t len)
{
    const char *p = servers;

    if (!servers || !*servers)
        return why(buf, len, "servers", "empty; expected host:port[,host:port...]", NULL);
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        size_t i, digits;
        long port = 0;
        if (n == 0 || !colon || colon == p)
            return why(buf, len, "servers", "expected host:port[,host:port...]", servers);
        digits = n - (size_t)(colon - p) - 1;
        if (digits == 0 || digits > 5)
            return why(buf, len, "servers", "port must be a number", servers);
        for (i = 1; i <= digits; i++) {
            if (colon[i] < '0' || colon[i] > '9')
                return why(buf, len, "servers", "port must be a number", servers);
            port = port * 10 + (colon[i] - '0');
        }
        if (port < 1 || port > 65535)
            return why(buf, len, "servers", "port must be 1-65535", servers);
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

int zkc_session_opts_check(const zkc_session_opts *o, char *buf, size_t len)
{
    int rc;

    if (!o)
        return why(buf, len, "options", "NULL", NULL);
    rc = check_servers(o->servers, buf, len);
    if (rc)
        return rc;
    if (o->session_timeout_ms < 0)
        return why(buf, len, "session_timeout_ms", "must be >= 0 (0 = default 10000)", NULL);
    if (o->root && *o->root && (zkc__path_check(o->root) != 0 || strcmp(o->root, "/") == 0))
        return why(buf, len, "root", "expected an absolute path like /prod", o->root);
    if (o->digest_user) {
        if (!*o->digest_user || strchr(o->digest_user, ':'))
            return why(buf, len, "digest_user", "must be non-empty and without ':'", NULL);
        if (!o->digest_password)
            return why(buf, len, "digest_password", "required with digest_user", NULL);
    } else if (o->digest_password) {
        return why(buf, len, "digest_user", "required with digest_password", NULL);
    }
    if (o->acl < ZKC_ACL_DEFAULT || o->acl > ZKC_ACL_CREATOR_WORLD_READ)
        return why(buf, len, "acl", "unknown mode", NULL);
    if (o->acl == ZKC_ACL_CREATOR_WORLD_READ && !o->digest_user)
        return why(buf, len, "acl", "creator ACL needs digest_user", NULL);
    if (o->log_level < ZKC_LOG_ERROR || o->log_level > ZKC_LOG_DEBUG)
        return why(buf, len, "log_level", "out of range", NULL);
    if (o->zk_log_level < ZKC_LOG_ERROR || o->zk_log_level > ZKC_LOG_DEBUG)
        return why(buf, len, "zk_log_level", "out of range", NULL);
    return 0;
}

/* ------------------------------------------------- the client's own log */

/* The client's log callback carries no context, and some lines are written
 * with no handle at all, so its log goes to one process-wide route: the
 * logger of the oldest open session. The route is a list threaded through
 * the sessions themselves, so there is no cap on how many are open (a fixed
 * array of 64 used to drop later sessions, whose lines then went nowhere
 * once the first 64 had closed: issue 9, bug 10). */
static pthread_mutex_t route_mu = PTHREAD_MUTEX_INITIALIZER;
static zkc_session *route_head, *route_tail;
static pthread_once_t route_once = PTHREAD_ONCE_INIT;

static void zk_log_line(const char *msg)
{
    pthread_mutex_lock(&route_mu);
    if (route_head)
        zkc__log_zk_line(&route_head->log, msg);
    pthread_mutex_unlock(&route_mu);
}

static ssize_t zk_stream_write(void *cookie, const char *buf, size_t size)
{
    char line[1024];
    size_t n = size < sizeof(line) - 1 ? size : sizeof(line) - 1;

    (void)cookie;
    memcpy(line, buf, n);
    line[n] = '\0';
    zk_log_line(line);
    return (ssize_t)size;
}

static void route_init(void)
{
    cookie_io_functions_t io = {NULL, zk_stream_write, NULL, NULL};
    FILE *f = fopencookie(NULL, "w", io);

    /* Lines the client writes before a handle exists go to its log stream,
     * not to the callback: route that stream too. */
    if (f) {
        setvbuf(f, NULL, _IOLBF, 0);
        zoo_set_log_stream(f);
    }
}

static void route_add(zkc_session *s)
{
    pthread_once(&route_once, route_init);
    pthread_mutex_lock(&route_mu);
    s->route_next = NULL;
    if (route_tail)
        route_tail->route_next = s;
    else
        route_head = s;
    route_tail = s;
    pthread_mutex_unlock(&route_mu);
}

static void route_remove(zkc_session *s)
{
    zkc_session **pp, *prev = NULL;

    pthread_mutex_lock(&route_mu);
    for (pp = &route_head; *pp; prev = *pp, pp = &(*pp)->route_next) {
        if (*pp == s) {
            *pp = s->route_next;
            if (route_tail == s)
                route_tail = prev;
            s->route_next = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&route_mu);
}

const zkc__logger *zkc__session_logger(zkc_session *s)
{
    return &s->log;
}

void zkc_session_log(zkc_session *s, zkc_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    zkc__vlog(&s->log, level, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------- names, misc */

const char *zkc_conn_state_name(zkc_conn_state state)
{
    switch (state) {
    case ZKC_CONN_NONE:
        return "none";
    case ZKC_CONN_CONNECTED:
        return "connected";
    case ZKC_CONN_SUSPENDED:
        return "suspended";
    case ZKC_CONN_RECONNECTED:
        return "reconnected";
    case ZKC_CONN_LOST:
        return "lost";
    }
    return "?";
}

const struct ACL_vector *zkc__acl(zkc_session *s)
{
    return &s->acl;
}

int zkc__dispatch(zkc_session *s, void (*fn)(void *arg), void *arg)
{
    return zkc__dispatcher_post(s->disp, fn, arg);
}

int zkc__dispatch_safety(zkc_session *s, void (*fn)(void *arg), void *arg)
{
    return zkc__dispatcher_post(s->safety, fn, arg);
}

int zkc__on_dispatcher(zkc_session *s)
{
    return zkc__dispatcher_is_current(s->disp) || zkc__dispatcher_is_current(s->safety);
}

/* The lane the caller runs on, or NULL. */
static zkc__dispatcher *own_lane(zkc_session *s)
{
    if (zkc__dispatcher_is_current(s->disp))
        return s->disp;
    if (zkc__dispatcher_is_current(s->safety))
        return s->safety;
    return NULL;
}

/* Wait for `other` (a lane of s) as a barrier: from a lane thread, say so
 * while waiting and stop waiting for a lane whose current callback is
 * itself in a barrier (the two would wait for each other forever). */
static void lane_barrier(zkc__dispatcher *own, zkc__dispatcher *other)
{
    if (own)
        zkc__dispatcher_enter_barrier(own);
    zkc__dispatcher_barrier(other, own != NULL);
    if (own)
        zkc__dispatcher_leave_barrier(own);
}

void zkc__dispatch_barrier(zkc_session *s)
{
    zkc__dispatcher *own = own_lane(s);

    /* Each lane but the caller's own (it would wait for itself). */
    if (own != s->disp)
        lane_barrier(own, s->disp);
    if (own != s->safety)
        lane_barrier(own, s->safety);
}

/* --------------------------------------------------------- the handle */

zhandle_t *zkc__zh_lock(zkc_session *s, unsigned *gen)
{
    pthread_mutex_lock(&s->zh_mu);
    if (!s->zh) {
        pthread_mutex_unlock(&s->zh_mu);
        return NULL;
    }
    if (gen)
        *gen = s->hctx->gen;
    return s->zh;
}

void zkc__zh_unlock(zkc_session *s)
{
    pthread_mutex_unlock(&s->zh_mu);
}

void zkc__pending_add(zkc_session *s, zkc__pending *pd, unsigned gen,
                      void (*dropped)(zkc__pending *pd))
{
    pd->gen = gen;
    pd->dropped = dropped;
    pthread_mutex_lock(&s->pend_mu);
    pd->next = s->pending.next;
    pd->prev = &s->pending;
    s->pending.next->prev = pd;
    s->pending.next = pd;
    pthread_mutex_unlock(&s->pend_mu);
}

void zkc__pending_done(zkc_session *s, zkc__pending *pd)
{
    pthread_mutex_lock(&s->pend_mu);
    pd->prev->next = pd->next;
    pd->next->prev = pd->prev;
    pd->next = pd->prev = pd;
    pthread_mutex_unlock(&s->pend_mu);
}

/* After the handle of generation `gen` was closed: what it still owed. The
 * client's threads are joined, so no completion of that handle can race
 * with this. Newest first is fine: requests of one generation are
 * independent once their handle is gone. */
/* ---- test hooks: never called by the library itself */

int zkc__test_pending_count(zkc_session *s)
{
    zkc__pending *pd;
    int n = 0;

    pthread_mutex_lock(&s->pend_mu);
    for (pd = s->pending.next; pd != &s->pending; pd = pd->next)
        n++;
    pthread_mutex_unlock(&s->pend_mu);
    return n;
}

void zkc__test_expire_now(zkc_session *s)
{
    pthread_mutex_lock(&s->mu);
    s->lost_at_ms = zkc__now_ms();
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void sweep_pending(zkc_session *s, unsigned gen)
{
    zkc__pending *pd;

    for (;;) {
        pthread_mutex_lock(&s->pend_mu);
        for (pd = s->pending.next; pd != &s->pending; pd = pd->next)
            if (pd->gen == gen)
                break;
        if (pd == &s->pending) {
            pthread_mutex_unlock(&s->pend_mu);
            return;
        }
        pd->prev->next = pd->next;
        pd->next->prev = pd->prev;
        pd->next = pd->prev = pd;
        pthread_mutex_unlock(&s->pend_mu);
        pd->dropped(pd);
    }
}

static void default_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct handle_ctx *h = ctx;
    zkc_session *s = h->s;
    struct zk_event *ev;

    (void)zh;
    (void)path;
    if (type != ZOO_SESSION_EVENT)
        return;
    ev = calloc(1, sizeof(*ev));
    if (!ev) {
        zkc__log(s, ZKC_LOG_ERROR, "out of memory queueing a session event");
        return;
    }
    ev->state = state;
    ev->gen = h->gen;
    pthread_mutex_lock(&s->mu);
    if (s->evq_tail)
        s->evq_tail->next = ev;
    else
        s->evq = ev;
    s->evq_tail = ev;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void auth_done(int rc, const void *data)
{
    const struct handle_ctx *h = data;

    /* Digest auth is accepted by the server whatever the password (it only
     * records the identity), so a failure here means something else broke. */
    if (rc != ZOK && rc != ZCLOSING)
        zkc__log(h->s, ZKC_LOG_ERROR, "digest auth failed: %s", zerror(rc));
}

/* Open a ZooKeeper handle for a new session. Manager thread, or
 * zkc_session_new before the manager exists. */
static int open_handle(zkc_session *s)
{
    struct handle_ctx *h = calloc(1, sizeof(*h));
    zhandle_t *zh;
    int err;

    if (!h)
        return ZKC_ENOMEM;
    pthread_mutex_lock(&s->mu);
    h->s = s;
    h->gen = s->gen; /* moved on at LOST already */
    pthread_mutex_unlock(&s->mu);
    errno = 0;
    zh = zookeeper_init2(s->connect_string, default_watcher, s->requested_timeout_ms, NULL, h, 0,
                         zk_log_line);
    if (!zh) {
        err = errno;
        free(h);
        zkc__log(s, ZKC_LOG_ERROR, "cannot open a ZooKeeper handle for '%s': %s", s->connect_string,
                 err ? strerror(err) : "unknown error");
        return err == EINVAL ? ZKC_EINVAL : ZKC_ESYS;
    }
    /* The 3.8 client re-resolves the server names at every turn of its I/O
     * loop by default (resolve delay 0): a getaddrinfo per read, so a large
     * reply (getChildren of 10,000 members) costs CPU in proportion. Once
     * a minute is plenty. */
    zoo_set_servers_resolution_delay(zh, 60000);
    if (s->auth && zoo_add_auth(zh, "digest", s->auth, (int)strlen(s->auth), auth_done, h) != ZOK)
        zkc__log(s, ZKC_LOG_ERROR, "cannot queue digest auth");
    pthread_mutex_lock(&s->zh_mu);
    s->zh = zh;
    s->hctx = h;
    pthread_mutex_unlock(&s->zh_mu);
    return 0;
}

/* Close the current handle and the one taken away at LOST, if any
 * (ephemeral nodes go with a handle that is still connected).
 *
 * What the 3.8 C client does with pending completions at zookeeper_close()
 * (read in its source, release-3.8.0 zookeeper.c free_completions() and
 * mt_adaptor.c do_completion(); pinned by "completions at handle close" in
 * test_session.c): the closing thread fails every request still awaiting a
 * reply with ZCLOSING and queues it, one at a time, for the handle's
 * completion thread -- but that thread leaves its loop as soon as it has
 * drained what was queued when it looked, because close was requested
 * first. So only the first completion (or the first few) runs, with
 * ZCLOSING, on the completion thread, and the rest are DROPPED: never
 * called, their memory leaked (ZOOKEEPER-2894). Measured: 1 of 50 run in
 * most rounds, all 50 in some. Nothing runs on the closing thread and
 * nothing runs after zookeeper_close() returns (it joins the threads).
 * Recipes must therefore never wait for a ZCLOSING completion to clear
 * in-flight state: a request pending when its handle closes may simply never
 * complete. No lock of ours may be held here: completions take them. */
static void close_handle(zkc_session *s)
{
    zhandle_t *zh, *dead;
    struct handle_ctx *h, *dead_h;

    pthread_mutex_lock(&s->zh_mu);
    zh = s->zh;
    h = s->hctx;
    s->zh = NULL;
    s->hctx = NULL;
    dead = s->dead_zh;
    dead_h = s->dead_hctx;
    s->dead_zh = NULL;
    s->dead_hctx = NULL;
    pthread_mutex_unlock(&s->zh_mu);
    if (dead) {
        zookeeper_close(dead);
        sweep_pending(s, dead_h->gen);
    }
    free(dead_h);
    if (zh) {
        zookeeper_close(zh);
        sweep_pending(s, h->gen);
    }
    free(h);
}

/* ------------------------------------------------------ state machine */

struct state_note {
    zkc_session *s;
    zkc_conn_state state;
};

static int listener_registered(zkc_session *s, zkc_state_fn fn, void *ud)
{
    struct listener *l;

    for (l = s->listeners; l; l = l->next)
        if (l->fn == fn && l->user_data == ud)
            return 1;
    return 0;
}

/* Safety lane: tell every listener registered now. */
static void deliver_state(void *arg)
{
    struct state_note *n = arg;
    zkc_session *s = n->s;
    struct listener *snap = NULL, *l, **tail = &snap;

    pthread_mutex_lock(&s->mu);
    for (l = s->listeners; l; l = l->next) {
        struct listener *c = malloc(sizeof(*c));
        if (!c)
            break;
        *c = *l;
        c->next = NULL;
        *tail = c;
        tail = &c->next;
    }
    pthread_mutex_unlock(&s->mu);
    while (snap) {
        int still;
        l = snap;
        snap = l->next;
        /* A listener removed by an earlier one in this round is skipped. */
        pthread_mutex_lock(&s->mu);
        still = listener_registered(s, l->fn, l->user_data);
        pthread_mutex_unlock(&s->mu);
        if (still)
            l->fn(s, n->state, l->user_data);
        free(l);
    }
    free(n);
}

/* Manager thread, mu held: record the change and wake waiters. Returns 1
 * when the state changed. */
static int set_state(zkc_session *s, zkc_conn_state st)
{
    if (s->state == st)
        return 0;
    s->state = st;
    pthread_cond_broadcast(&s->cond);
    return 1;
}

/* Run and forget every zkc__when_connected() request. mu not held. */
static void run_oneshots(zkc_session *s, zkc_conn_state st, unsigned gen)
{
    struct hook *list, *h;

    pthread_mutex_lock(&s->mu);
    list = s->oneshots;
    s->oneshots = NULL;
    pthread_mutex_unlock(&s->mu);
    while ((h = list)) {
        list = h->next;
        h->fn(h->arg, st, gen);
        free(h);
    }
}

/* Manager thread, mu not held: listeners first (queued in order), then the
 * recipes' hooks, which may queue their own user callbacks behind. */
static void announce(zkc_session *s, zkc_conn_state st, unsigned gen)
{
    struct state_note *n = malloc(sizeof(*n));
    struct hook *h;

    zkc__log(s, st == ZKC_CONN_LOST ? ZKC_LOG_WARN : ZKC_LOG_INFO,
             "connection state %s (session 0x%llx)", zkc_conn_state_name(st),
             (unsigned long long)zkc_session_id(s));
    if (n) {
        n->s = s;
        n->state = st;
        /* Every state goes on the safety lane, so listeners hear states in
         * order and LOST never waits behind ordinary callbacks. */
        if (zkc__dispatch_safety(s, deliver_state, n) != 0)
            free(n);
    }
    pthread_mutex_lock(&s->hk_mu);
    for (h = s->hooks; h; h = h->next)
        h->fn(h->arg, st, gen);
    pthread_mutex_unlock(&s->hk_mu);
    if (st != ZKC_CONN_SUSPENDED)
        run_oneshots(s, st, gen);
}

struct plain_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int connected;
};

static void plain_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct plain_wait *w = ctx;

    (void)zh;
    (void)path;
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
        pthread_mutex_lock(&w->mu);
        w->connected = 1;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
    }
}

/* The chroot must exist before recipes create under it. The chrooted
 * handle cannot name the root's parents, so a missing root is created
 * through a short-lived handle without chroot. Manager thread only: sync
 * calls are safe there (it is not a completion thread, and only the manager
 * closes handles). */
static void ensure_root(zkc_session *s)
{
    zhandle_t *zh, *plain;
    struct Stat st;
    struct plain_wait w;
    struct timespec ts;
    int rc;
    char *p;

    if (!s->root)
        return;
    zh = zkc__zh_lock(s, NULL);
    if (!zh)
        return;
    zkc__zh_unlock(s);
    if (zoo_exists(zh, "/", 0, &st) != ZNONODE)
        return;
    pthread_mutex_init(&w.mu, NULL);
    zkc__cond_init(&w.cond);
    w.connected = 0;
    plain = zookeeper_init2(s->servers, plain_watcher, s->requested_timeout_ms, NULL, &w, 0,
                            zk_log_line);
    if (!plain)
        goto out;
    if (s->auth)
        zoo_add_auth(plain, "digest", s->auth, (int)strlen(s->auth), NULL, NULL);
    zkc__deadline(&ts, s->requested_timeout_ms);
    pthread_mutex_lock(&w.mu);
    while (!w.connected && pthread_cond_timedwait(&w.cond, &w.mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&w.mu);
    for (p = strchr(s->root + 1, '/');; p = strchr(p + 1, '/')) {
        if (p)
            *p = '\0';
        rc = zoo_create(plain, s->root, "", 0, &s->acl, 0, NULL, 0);
        if (p)
            *p = '/';
        if (rc != ZOK && rc != ZNODEEXISTS) {
            zkc__log(s, ZKC_LOG_ERROR, "cannot create root %s: %s", s->root, zerror(rc));
            break;
        }
        if (!p)
            break;
    }
    zookeeper_close(plain);
out:
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
}

/* Manager thread, no lock held. The current ZooKeeper session is gone
 * (expired, or the local timer ran out): in one critical section LOST is set,
 * the generation moves on and the old handle is taken from recipes. It is
 * closed (with the ephemerals of ours it still holds, should it have
 * reconnected meanwhile) before the next one opens. `timer`: only if the
 * local deadline is still due. Returns the generation lost, 0 for none. */
static unsigned lose_session(zkc_session *s, int timer)
{
    unsigned lost = 0;

    pthread_mutex_lock(&s->zh_mu);
    pthread_mutex_lock(&s->mu);
    if (!s->closing && (!timer || (s->lost_at_ms && zkc__now_ms() >= s->lost_at_ms))) {
        lost = s->gen++;
        s->lost_at_ms = 0;
        s->session_id = 0;
        s->reopen = 1;
        set_state(s, ZKC_CONN_LOST);
        if (s->zh) {
            s->dead_zh = s->zh;
            s->dead_hctx = s->hctx;
            s->zh = NULL;
            s->hctx = NULL;
        }
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->zh_mu);
    return lost;
}

static void handle_event(zkc_session *s, const struct zk_event *ev)
{
    zkc_conn_state announce_st = ZKC_CONN_NONE;
    zhandle_t *zh;
    unsigned gen = ev->gen;

    if (ev->state == ZOO_CONNECTED_STATE) {
        int64_t sid = 0;
        int tmo = 0;
        int fresh;
        zh = zkc__zh_lock(s, NULL);
        if (zh) {
            sid = zoo_client_id(zh)->client_id;
            tmo = zoo_recv_timeout(zh);
            zkc__zh_unlock(s);
        }
        pthread_mutex_lock(&s->mu);
        fresh = (s->state == ZKC_CONN_NONE || s->state == ZKC_CONN_LOST);
        pthread_mutex_unlock(&s->mu);
        if (fresh)
            ensure_root(s);
        pthread_mutex_lock(&s->mu);
        s->session_id = sid;
        if (tmo > 0)
            s->timeout_ms = tmo;
        s->lost_at_ms = 0;
        s->ever_connected = 1;
        if (fresh && set_state(s, ZKC_CONN_CONNECTED))
            announce_st = ZKC_CONN_CONNECTED;
        else if (s->state == ZKC_CONN_SUSPENDED && set_state(s, ZKC_CONN_RECONNECTED))
            announce_st = ZKC_CONN_RECONNECTED;
        pthread_mutex_unlock(&s->mu);
    } else if (ev->state == ZOO_CONNECTING_STATE || ev->state == ZOO_ASSOCIATING_STATE ||
               ev->state == ZOO_NOTCONNECTED_STATE) {
        pthread_mutex_lock(&s->mu);
        if (s->state == ZKC_CONN_CONNECTED || s->state == ZKC_CONN_RECONNECTED) {
            set_state(s, ZKC_CONN_SUSPENDED);
            /* Curator's rule: a client that has not heard from the ensemble
             * for a whole session timeout must assume the session is gone,
             * without waiting for a server to confirm it. */
            s->lost_at_ms = zkc__now_ms() + s->timeout_ms;
            announce_st = ZKC_CONN_SUSPENDED;
        }
        pthread_mutex_unlock(&s->mu);
    } else if (ev->state == ZOO_EXPIRED_SESSION_STATE) {
        gen = lose_session(s, 0);
        if (gen)
            announce_st = ZKC_CONN_LOST;
    } else if (ev->state == ZOO_AUTH_FAILED_STATE) {
        pthread_mutex_lock(&s->mu);
        s->auth_failed = 1;
        zkc__log(s, ZKC_LOG_ERROR, "authentication failed; not reconnecting");
        s->lost_at_ms = 0;
        s->session_id = 0;
        if (set_state(s, ZKC_CONN_LOST))
            announce_st = ZKC_CONN_LOST;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
    }
    if (announce_st != ZKC_CONN_NONE)
        announce(s, announce_st, gen);
}

static void *manager_main(void *arg)
{
    zkc_session *s = arg;

    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        int64_t now = zkc__now_ms();
        if (s->evq) {
            struct zk_event *ev = s->evq;
            s->evq = ev->next;
            if (!s->evq)
                s->evq_tail = NULL;
            if (ev->gen == s->gen) {
                pthread_mutex_unlock(&s->mu);
                handle_event(s, ev);
                pthread_mutex_lock(&s->mu);
            }
            free(ev);
        } else if (s->oneshots &&
                   (s->state == ZKC_CONN_CONNECTED || s->state == ZKC_CONN_RECONNECTED)) {
            /* Asked while already connected: run now. */
            zkc_conn_state st = s->state;
            unsigned gen = s->gen;
            pthread_mutex_unlock(&s->mu);
            run_oneshots(s, st, gen);
            pthread_mutex_lock(&s->mu);
        } else if (s->lost_at_ms && now >= s->lost_at_ms) {
            unsigned gen;
            pthread_mutex_unlock(&s->mu);
            gen = lose_session(s, 1);
            if (gen) {
                zkc__log(s, ZKC_LOG_WARN, "no reconnect within the session timeout: session lost");
                announce(s, ZKC_CONN_LOST, gen);
            }
            pthread_mutex_lock(&s->mu);
        } else if (s->reopen || (s->reopen_at_ms && now >= s->reopen_at_ms)) {
            int rc;
            s->reopen = 0;
            s->reopen_at_ms = 0;
            pthread_mutex_unlock(&s->mu);
            close_handle(s);
            rc = open_handle(s);
            pthread_mutex_lock(&s->mu);
            if (rc != 0 && !s->closing)
                s->reopen_at_ms = zkc__now_ms() + 1000;
        } else {
            int64_t wake = s->lost_at_ms;
            if (s->reopen_at_ms && (!wake || s->reopen_at_ms < wake))
                wake = s->reopen_at_ms;
            if (wake) {
                struct timespec ts;
                zkc__deadline(&ts, (int)(wake - now));
                pthread_cond_timedwait(&s->cond, &s->mu, &ts);
            } else {
                pthread_cond_wait(&s->cond, &s->mu);
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------------------------------------------------------- lifecycle */

static char *dup_or_null(const char *p)
{
    return p && *p ? strdup(p) : NULL;
}

static void session_free(zkc_session *s)
{
    struct zk_event *ev;
    struct listener *l;

    while ((ev = s->evq)) {
        s->evq = ev->next;
        free(ev);
    }
    while ((l = s->listeners)) {
        s->listeners = l->next;
        free(l);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->zh_mu);
    pthread_mutex_destroy(&s->hk_mu);
    pthread_mutex_destroy(&s->pend_mu);
    free(s->servers);
    free(s->connect_string);
    free(s->root);
    if (s->auth) {
        memset(s->auth, 0, strlen(s->auth));
        free(s->auth);
    }
    free(s);
}

int zkc_session_new(zkc_session **out, const zkc_session_opts *o)
{
    zkc_session *s;
    char reason[256];
    int rc;
    size_t n;
    zkc__logger lg;

    if (!out)
        return ZKC_EINVAL;
    rc = zkc_session_opts_check(o, reason, sizeof(reason));
    if (rc) {
        lg.fn = o ? o->log_fn : NULL;
        lg.user_data = o ? o->log_user_data : NULL;
        lg.level = ZKC_LOG_ERROR;
        lg.zk_level = ZKC_LOG_DEBUG;
        zkc__logf(&lg, ZKC_LOG_ERROR, "invalid session options: %s", reason);
        return rc;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return ZKC_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->zh_mu, NULL);
    pthread_mutex_init(&s->hk_mu, NULL);
    pthread_mutex_init(&s->pend_mu, NULL);
    s->pending.next = s->pending.prev = &s->pending;
    if (zkc__cond_init(&s->cond) != 0) {
        rc = ZKC_ESYS;
        goto fail_cond;
    }
    s->log.fn = o->log_fn;
    s->log.user_data = o->log_user_data;
    s->log.level = o->log_level;
    s->log.zk_level = o->zk_log_level;
    s->requested_timeout_ms = o->session_timeout_ms ? o->session_timeout_ms : 10000;
    s->timeout_ms = s->requested_timeout_ms;
    s->servers = strdup(o->servers);
    s->root = dup_or_null(o->root);
    n = strlen(o->servers) + (s->root ? strlen(s->root) : 0) + 1;
    s->connect_string = malloc(n);
    if (!s->servers || !s->connect_string || (o->root && *o->root && !s->root)) {
        rc = ZKC_ENOMEM;
        goto fail_alloc;
    }
    snprintf(s->connect_string, n, "%s%s", s->servers, s->root ? s->root : "");
    if (o->digest_user) {
        n = strlen(o->digest_user) + strlen(o->digest_password) + 2;
        s->auth = malloc(n);
        if (!s->auth) {
            rc = ZKC_ENOMEM;
            goto fail_alloc;
        }
        snprintf(s->auth, n, "%s:%s", o->digest_user, o->digest_password);
    }
    if (o->acl == ZKC_ACL_CREATOR_WORLD_READ || (o->acl == ZKC_ACL_DEFAULT && o->digest_user)) {
        s->acl_items[0].perms = ZOO_PERM_ALL;
        s->acl_items[0].id.scheme = "auth";
        s->acl_items[0].id.id = "";
        s->acl_items[1].perms = ZOO_PERM_READ;
        s->acl_items[1].id.scheme = "world";
        s->acl_items[1].id.id = "anyone";
        s->acl.count = 2;
        s->acl.data = s->acl_items;
    } else {
        s->acl = ZOO_OPEN_ACL_UNSAFE;
    }
    s->gen = 1;
    rc = zkc__dispatcher_new(&s->disp);
    if (rc)
        goto fail_alloc;
    rc = zkc__dispatcher_new(&s->safety);
    if (rc)
        goto fail_safety;
    route_add(s);
    rc = open_handle(s);
    if (rc)
        goto fail_open;
    if (pthread_create(&s->manager, NULL, manager_main, s) != 0) {
        rc = ZKC_ESYS;
        goto fail_thread;
    }
    *out = s;
    return 0;

fail_thread:
    close_handle(s);
fail_open:
    route_remove(s);
    zkc__dispatcher_free(s->safety);
fail_safety:
    zkc__dispatcher_free(s->disp);
fail_alloc:
fail_cond:
    session_free(s);
    return rc;
}

int zkc_session_wait_connected(zkc_session *s, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    if (!s)
        return ZKC_EINVAL;
    if (timeout_ms >= 0)
        zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (!s->closing && !s->auth_failed && s->state != ZKC_CONN_CONNECTED &&
           s->state != ZKC_CONN_RECONNECTED) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->cond, &s->mu);
        } else if (pthread_cond_timedwait(&s->cond, &s->mu, &ts) == ETIMEDOUT) {
            rc = s->ever_connected ? ZKC_ETIMEDOUT : ZKC_EUNREACHABLE;
            break;
        }
    }
    if (s->closing)
        rc = ZKC_ECLOSED;
    else if (s->auth_failed)
        rc = ZKC_EAUTHFAILED;
    pthread_mutex_unlock(&s->mu);
    if (rc == ZKC_EUNREACHABLE)
        zkc__log(s, ZKC_LOG_ERROR, "ZooKeeper unreachable: no connection to %s within %d ms",
                 s->servers, timeout_ms);
    return rc;
}

int zkc_session_add_listener(zkc_session *s, zkc_state_fn fn, void *user_data)
{
    struct listener *l, **pp;

    if (!s || !fn)
        return ZKC_EINVAL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return ZKC_ENOMEM;
    l->fn = fn;
    l->user_data = user_data;
    pthread_mutex_lock(&s->mu);
    for (pp = &s->listeners; *pp; pp = &(*pp)->next)
        ;
    *pp = l;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int zkc_session_remove_listener(zkc_session *s, zkc_state_fn fn, void *user_data)
{
    struct listener **pp, *l = NULL;

    if (!s || !fn)
        return ZKC_EINVAL;
    pthread_mutex_lock(&s->mu);
    for (pp = &s->listeners; *pp; pp = &(*pp)->next) {
        if ((*pp)->fn == fn && (*pp)->user_data == user_data) {
            l = *pp;
            *pp = l->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!l)
        return ZKC_ENONODE;
    free(l);
    /* A delivery may be running on the safety lane with this listener in
     * its snapshot; once a barrier behind it has run, none is. Listeners run
     * nowhere else, so the ordinary lane (maybe blocked) is not waited for. */
    if (!zkc__dispatcher_is_current(s->safety))
        lane_barrier(own_lane(s), s->safety);
    return 0;
}

zkc_conn_state zkc_session_state(zkc_session *s)
{
    zkc_conn_state st;

    pthread_mutex_lock(&s->mu);
    st = s->state;
    pthread_mutex_unlock(&s->mu);
    return st;
}

int64_t zkc_session_id(zkc_session *s)
{
    int64_t id;

    pthread_mutex_lock(&s->mu);
    id = s->session_id;
    pthread_mutex_unlock(&s->mu);
    return id;
}

int zkc_session_timeout_ms(zkc_session *s)
{
    int t;

    pthread_mutex_lock(&s->mu);
    t = s->timeout_ms;
    pthread_mutex_unlock(&s->mu);
    return t;
}

unsigned zkc_session_generation(zkc_session *s)
{
    unsigned g;

    pthread_mutex_lock(&s->mu);
    g = s->gen;
    pthread_mutex_unlock(&s->mu);
    return g;
}

void zkc__session_attach(zkc_session *s)
{
    pthread_mutex_lock(&s->mu);
    s->attached++;
    pthread_mutex_unlock(&s->mu);
}

void zkc__session_detach(zkc_session *s)
{
    pthread_mutex_lock(&s->mu);
    s->attached--;
    pthread_mutex_unlock(&s->mu);
}

int zkc_session_close(zkc_session *s)
{
    int open;

    if (!s)
        return 0;
    if (zkc__on_dispatcher(s))
        return ZKC_EBUSY;
    pthread_mutex_lock(&s->mu);
    open = s->attached;
    if (open > 0) {
        /* Freeing the session under open recipe handles was a use after
         * free (issue 9, bug 9): refuse, and leave everything running. */
        pthread_mutex_unlock(&s->mu);
        zkc__log(s, ZKC_LOG_ERROR,
                 "zkc_session_close: %d recipe handle%s still open; free %s first", open,
                 open == 1 ? "" : "s", open == 1 ? "it" : "them");
        return ZKC_EBUSY;
    }
    s->closing = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->manager, NULL);
    close_handle(s);
    run_oneshots(s, ZKC_CONN_NONE, 0);
    /* Run what is queued (callbacks already promised), then stop. The
     * ordinary lane first: what it runs may still post to the safety lane. */
    zkc__dispatcher_free(s->disp);
    zkc__dispatcher_free(s->safety);
    route_remove(s);
    session_free(s);
    return 0;
}

/* --------------------------------------------------------------- hooks */

int zkc__when_connected(zkc_session *s, zkc__state_hook fn, void *arg)
{
    struct hook *h = calloc(1, sizeof(*h)), **pp;

    if (!h)
        return ZKC_ENOMEM;
    h->fn = fn;
    h->arg = arg;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        free(h);
        return ZKC_ECLOSED;
    }
    for (pp = &s->oneshots; *pp; pp = &(*pp)->next)
        ;
    *pp = h;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int zkc__add_hook(zkc_session *s, zkc__state_hook fn, void *arg)
{
    struct hook *h = calloc(1, sizeof(*h));

    if (!h)
        return ZKC_ENOMEM;
    h->fn = fn;
    h->arg = arg;
    pthread_mutex_lock(&s->hk_mu);
    h->next = s->hooks;
    s->hooks = h;
    pthread_mutex_unlock(&s->hk_mu);
    return 0;
}

void zkc__remove_hook(zkc_session *s, zkc__state_hook fn, void *arg)
{
    struct hook **pp, *h;

    pthread_mutex_lock(&s->hk_mu);
    for (pp = &s->hooks; *pp; pp = &(*pp)->next) {
        if ((*pp)->fn == fn && (*pp)->arg == arg) {
            h = *pp;
            *pp = h->next;
            free(h);
            break;
        }
    }
    pthread_mutex_unlock(&s->hk_mu);
}
