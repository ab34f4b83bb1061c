/*
 * chaos worker: one workload client process of the fault suite
 * (tests/fault/chaos.c starts several per schedule and injects faults).
 *
 * It uses only the public API (include/zkcoord/) and appends one line per
 * event to its history file: "<CLOCK_MONOTONIC ns> <event> key=value...".
 * CLOCK_MONOTONIC is system-wide on one machine, so the checker can merge
 * the files of every worker into one timeline. Each line is one write(2) to
 * an O_APPEND file, so a worker killed with SIGKILL leaves whole lines.
 *
 * Signals: SIGUSR1 = the faults are over ("quiesce": stop leaving and
 * resigning, make progress, then log "settled"); SIGTERM/SIGINT = leave
 * gracefully and exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "zkcoord/zkcoord.h"

#define OP_TIMEOUT_MS 4000

enum mode { M_MUTEX, M_ELECTION, M_RWLOCK, M_SEMAPHORE, M_GROUP, M_WORK, M_TASK };

static struct {
    enum mode mode;
    const char *servers;
    const char *root;
    const char *id;
    const char *history;
    const char *expect; /* group: file with the live member ids, read at quiesce */
    int timeout_ms;
    int wait_policy; /* election: ZKC_ELECTION_WAIT instead of STEP_DOWN */
    int leases;
    int slow_cb_ms;
    int slow_log_ms;
    const char *slow_log_match;
    int slow_log_once; /* only the first matching line is slow */
    unsigned seed;
} cfg;

static int hist_fd = -1;
static pthread_mutex_t hist_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop_flag, quiesce_flag;
static unsigned rng_state;
static long ops_done;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void hist(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void hist(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    pthread_mutex_lock(&hist_mu);
    n = snprintf(line, sizeof(line), "%" PRId64 " ", now_ns());
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(hist_fd, line, (size_t)n) < 0) {
        /* nothing better to do: the checker will see the gap */
    }
    pthread_mutex_unlock(&hist_mu);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_flag)
        ;
}

static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return n ? (rng_state >> 8) % n : 0;
}

/* A slow user callback: the dispatcher is blocked meanwhile. */
static void slow_callback(void)
{
    if (cfg.slow_cb_ms > 0)
        sleep_ms(cfg.slow_cb_ms);
}

static int slow_log_fired;
static int sink_busy;                  /* a slow log line is being "written" */
static int last_state = ZKC_CONN_NONE; /* last state the listener heard */

static void on_log(zkc_log_level level, const char *msg, void *ud)
{
    char clean[512];
    size_t i;

    (void)ud;
    for (i = 0; msg[i] != '\0' && i < sizeof(clean) - 1; i++)
        clean[i] = (msg[i] == '\n' || msg[i] == '\r') ? ' ' : msg[i];
    clean[i] = '\0';
    hist("log level=%s msg=%s", zkc_log_level_name(level), clean);
    if (cfg.slow_log_ms > 0 && (cfg.slow_log_match == NULL || strstr(msg, cfg.slow_log_match)) &&
        !(cfg.slow_log_once && __atomic_fetch_add(&slow_log_fired, 1, __ATOMIC_SEQ_CST) > 0)) {
        __atomic_add_fetch(&sink_busy, 1, __ATOMIC_SEQ_CST);
        hist("sink_slow ms=%d", cfg.slow_log_ms);
        sleep_ms(cfg.slow_log_ms);
        hist("sink_done");
        __atomic_sub_fetch(&sink_busy, 1, __ATOMIC_SEQ_CST);
    }
}

static void on_state(zkc_session *s, zkc_conn_state st, void *ud)
{
    (void)ud;
    hist("session state=%s gen=%u sid=%" PRIx64, zkc_conn_state_name(st), zkc_session_generation(s),
         (uint64_t)zkc_session_id(s));
    __atomic_store_n(&last_state, (int)st, __ATOMIC_SEQ_CST);
    slow_callback();
}

/* ------------------------------------------------------------ fenced writes */

/* The register: R/reg holds "<writer> <token>"; every fenced write also
 * appends a persistent sequential R/log/w-<seq> "<writer> <token> <n>", so
 * the server's commit order of every write that got through is on record
 * for the checker. */
static int register_ops(zkc_op ops[2], char *data, size_t len, char *logpath, size_t loglen,
                        int64_t token, long n)
{
    snprintf(data, len, "%s %" PRId64 " %ld", cfg.id, token, n);
    snprintf(logpath, loglen, "%s/log/w-", cfg.root);
    memset(ops, 0, 2 * sizeof(ops[0]));
    ops[0].type = ZKC_OP_SET;
    ops[0].path = NULL; /* set by the caller */
    ops[0].data = data;
    ops[0].len = (int)strlen(data);
    ops[0].version = -1;
    ops[1].type = ZKC_OP_CREATE;
    ops[1].path = logpath;
    ops[1].data = data;
    ops[1].len = (int)strlen(data);
    ops[1].flags = ZKC_CREATE_PERSISTENT | ZKC_CREATE_SEQUENTIAL;
    return 2;
}

static long writes_done;

static void log_write(const char *who, int64_t token, int rc)
{
    if (rc == 0)
        hist("write ok tok=%" PRId64 " n=%ld via=%s", token, writes_done, who);
    else if (rc == ZKC_ENOTHELD)
        hist("write rejected tok=%" PRId64 " n=%ld via=%s", token, writes_done, who);
    else
        hist("write error tok=%" PRId64 " n=%ld via=%s rc=%s", token, writes_done, who,
             zkc_err_name(rc));
}

static int lock_write(zkc_lock *lock, int64_t token)
{
    char data[256], logpath[512], regpath[512];
    zkc_op ops[2];
    int rc, nops;

    writes_done++;
    nops = register_ops(ops, data, sizeof(data), logpath, sizeof(logpath), token, writes_done);
    snprintf(regpath, sizeof(regpath), "%s/reg", cfg.root);
    ops[0].path = regpath;
    hist("write try tok=%" PRId64 " n=%ld", token, writes_done);
    rc = zkc_lock_fenced_multi(lock, ops, nops, OP_TIMEOUT_MS);
    log_write("lock", token, rc);
    return rc;
}

static int election_write(zkc_election *e, int64_t token)
{
    char data[256], logpath[512], regpath[512];
    zkc_op ops[2];
    int rc, nops;

    writes_done++;
    nops = register_ops(ops, data, sizeof(data), logpath, sizeof(logpath), token, writes_done);
    snprintf(regpath, sizeof(regpath), "%s/reg", cfg.root);
    ops[0].path = regpath;
    hist("write try tok=%" PRId64 " n=%ld", token, writes_done);
    rc = zkc_election_fenced_multi(e, ops, nops, OP_TIMEOUT_MS);
    log_write("election", token, rc);
    return rc;
}

/* ------------------------------------------------------------ progress */

static int settled;

/* Settled means: progress after the faults, with the session back as the
 * listener heard it and no slow log line still holding the library (a
 * worker stopped while its session manager is blocked would hide what the
 * library does next, e.g. issue 9's session swap). */
static int can_settle(void)
{
    int st = __atomic_load_n(&last_state, __ATOMIC_SEQ_CST);

    return quiesce_flag && !settled && __atomic_load_n(&sink_busy, __ATOMIC_SEQ_CST) == 0 &&
           (st == ZKC_CONN_CONNECTED || st == ZKC_CONN_RECONNECTED);
}

static void progress(void)
{
    ops_done++;
    hist("progress n=%ld%s", ops_done, quiesce_flag ? " after_quiesce=1" : "");
    /* group, work and the task submitter settle on their own condition */
    if (can_settle() && cfg.mode != M_GROUP && cfg.mode != M_WORK &&
        !(cfg.mode == M_TASK && strncmp(cfg.id, "w0", 2) == 0)) {
        settled = 1;
        hist("settled");
    }
}

static void note_quiesce(void)
{
    static int noted;

    if (quiesce_flag && !noted) {
        noted = 1;
        hist("quiesce");
    }
}

/* ------------------------------------------------------------ locks */

static void on_lock_event(zkc_lock *lock, zkc_lock_event ev, int64_t token, void *ud)
{
    (void)lock;
    hist("lock_event ev=%s tok=%" PRId64 " side=%s", zkc_lock_event_name(ev), token,
         (const char *)ud);
    slow_callback();
}

static void on_sem_event(zkc_semaphore *sem, zkc_lock_event ev, int64_t token, void *ud)
{
    (void)sem;
    (void)ud;
    hist("lock_event ev=%s tok=%" PRId64 " side=lease", zkc_lock_event_name(ev), token);
    slow_callback();
}

static void hold_pause(void)
{
    int ms = (int)rnd(40);

    if (ms > 0)
        sleep_ms(ms);
}

/* One exclusive hold: acquired, 1-2 fenced writes, releasing. */
static void exclusive_round(zkc_lock *lock, const char *side)
{
    int64_t tok = 0;
    int rc = zkc_lock_acquire(lock, OP_TIMEOUT_MS, &tok), k, nw;

    if (rc != 0) {
        hist("acquire_fail side=%s rc=%s", side, zkc_err_name(rc));
        return;
    }
    hist("acquired side=%s tok=%" PRId64, side, tok);
    nw = 1 + (int)rnd(2);
    for (k = 0; k < nw; k++) {
        lock_write(lock, tok);
        hold_pause();
    }
    hist("releasing side=%s tok=%" PRId64, side, tok);
    rc = zkc_lock_release(lock);
    if (rc != 0)
        hist("release_fail side=%s rc=%s", side, zkc_err_name(rc));
    progress();
}

static void shared_round(zkc_lock *lock)
{
    int64_t tok = 0;
    int rc = zkc_lock_acquire(lock, OP_TIMEOUT_MS, &tok);

    if (rc != 0) {
        hist("acquire_fail side=r rc=%s", zkc_err_name(rc));
        return;
    }
    hist("acquired side=r tok=%" PRId64, tok);
    hold_pause();
    hist("releasing side=r tok=%" PRId64, tok);
    rc = zkc_lock_release(lock);
    if (rc != 0)
        hist("release_fail side=r rc=%s", zkc_err_name(rc));
    progress();
}

static void run_mutex(zkc_session *s)
{
    char path[512];
    zkc_lock_opts o;
    zkc_lock *lock;
    int rc;

    snprintf(path, sizeof(path), "%s/mutex", cfg.root);
    zkc_lock_opts_init(&o);
    o.owner_id = cfg.id;
    o.on_event = on_lock_event;
    o.user_data = (void *)"m";
    rc = zkc_lock_new(&lock, s, path, &o);
    if (rc != 0) {
        hist("fatal what=lock_new rc=%s", zkc_err_name(rc));
        return;
    }
    while (!stop_flag) {
        note_quiesce();
        exclusive_round(lock, "m");
    }
    zkc_lock_free(lock);
}

static void run_rwlock(zkc_session *s)
{
    char path[512];
    zkc_lock_opts o;
    zkc_rwlock *rw;
    int rc;

    snprintf(path, sizeof(path), "%s/rw", cfg.root);
    zkc_lock_opts_init(&o);
    o.owner_id = cfg.id;
    o.on_event = on_lock_event;
    o.user_data = (void *)"rw";
    rc = zkc_rwlock_new(&rw, s, path, &o);
    if (rc != 0) {
        hist("fatal what=rwlock_new rc=%s", zkc_err_name(rc));
        return;
    }
    while (!stop_flag) {
        note_quiesce();
        if (rnd(100) < 60)
            shared_round(zkc_rwlock_read(rw));
        else
            exclusive_round(zkc_rwlock_write(rw), "w");
    }
    zkc_rwlock_free(rw);
}

static void run_semaphore(zkc_session *s)
{
    char path[512];
    zkc_semaphore_opts o;
    zkc_semaphore *sem;
    int rc;

    snprintf(path, sizeof(path), "%s/sem", cfg.root);
    zkc_semaphore_opts_init(&o);
    o.owner_id = cfg.id;
    o.on_event = on_sem_event;
    rc = zkc_semaphore_new(&sem, s, path, cfg.leases, &o);
    if (rc != 0) {
        hist("fatal what=semaphore_new rc=%s", zkc_err_name(rc));
        return;
    }
    while (!stop_flag) {
        int64_t tok = 0;

        note_quiesce();
        rc = zkc_semaphore_acquire(sem, OP_TIMEOUT_MS, &tok);
        if (rc != 0) {
            hist("acquire_fail side=lease rc=%s", zkc_err_name(rc));
            continue;
        }
        hist("acquired side=lease tok=%" PRId64, tok);
        hold_pause();
        hold_pause();
        hist("releasing side=lease tok=%" PRId64, tok);
        rc = zkc_semaphore_release(sem);
        if (rc != 0)
            hist("release_fail side=lease rc=%s", zkc_err_name(rc));
        progress();
    }
    zkc_semaphore_free(sem);
}

/* ------------------------------------------------------------ election */

static void on_election(zkc_election *e, const zkc_election_event *ev, void *ud)
{
    (void)e;
    (void)ud;
    switch (ev->type) {
    case ZKC_ELECTION_ELECTED:
        hist("elected tok=%" PRId64, ev->token);
        break;
    case ZKC_ELECTION_DEMOTED:
        hist("demoted tok=%" PRId64 " reason=%s", ev->token,
             zkc_election_demote_reason_name(ev->reason));
        break;
    case ZKC_ELECTION_LEADER_CHANGED:
        hist("leader_changed tok=%" PRId64 " leader=%s", ev->token,
             ev->leader_id ? ev->leader_id : "-");
        break;
    case ZKC_ELECTION_ERROR:
        hist("election_error rc=%s", zkc_err_name(ev->err));
        break;
    }
    slow_callback();
}

static void run_election(zkc_session *s)
{
    char path[512];
    zkc_election_opts o;
    zkc_election *e;
    int rc, writes_in_term = 0;
    int64_t term_logged = 0;

    snprintf(path, sizeof(path), "%s/leader", cfg.root);
    zkc_election_opts_init(&o);
    o.id = cfg.id;
    o.on_suspend = cfg.wait_policy ? ZKC_ELECTION_WAIT : ZKC_ELECTION_STEP_DOWN;
    o.fn = on_election;
    rc = zkc_election_new(&e, s, path, &o);
    if (rc != 0) {
        hist("fatal what=election_new rc=%s", zkc_err_name(rc));
        return;
    }
    while (!stop_flag) {
        int64_t tok = 0;

        note_quiesce();
        rc = zkc_election_await_leadership(e, 300, &tok);
        if (rc == 0 && tok != term_logged) {
            /* The state machine says we lead before the ELECTED callback
             * arrives (zkc_election_is_leader's contract): the term starts
             * for us here, as our writes do. */
            term_logged = tok;
            hist("elected tok=%" PRId64 " via=await", tok);
        }
        if (rc == 0) {
            election_write(e, tok);
            writes_in_term++;
            progress();
            hold_pause();
            /* Hand over now and then, so terms change without faults too. */
            if (writes_in_term >= 3 && rnd(100) < 25) {
                hist("resign tok=%" PRId64, tok);
                zkc_election_resign(e);
                writes_in_term = 0;
                rc = zkc_election_rejoin(e);
                hist("rejoin rc=%s", zkc_err_name(rc));
            }
        } else if (rc == ZKC_ECANCELED) {
            rc = zkc_election_rejoin(e);
            hist("rejoin rc=%s", zkc_err_name(rc));
            sleep_ms(50);
        } else {
            zkc_election_leader_info info;

            writes_in_term = 0;
            /* A follower's progress: it can see a leader. */
            rc = zkc_election_leader(e, &info, 2000);
            if (rc == 0) {
                hist("sees_leader leader=%s tok=%" PRId64, info.id, info.token);
                progress();
            } else {
                hist("no_leader rc=%s", zkc_err_name(rc));
            }
        }
    }
    /* Closing ends a term without a DEMOTED event: say so first. */
    if (zkc_election_is_leader(e, NULL))
        hist("releasing side=lead");
    zkc_election_close(e);
}

/* ------------------------------------------------------------ group */

static char expected_view[4096];
static int view_matches; /* last CHANGED view equals expected_view (when set) */
static pthread_mutex_t view_mu = PTHREAD_MUTEX_INITIALIZER;

static void view_ids(const zkc_group_view *v, char *buf, size_t len)
{
    int i, n = zkc_group_view_count(v);
    size_t used = 0;

    buf[0] = '\0';
    for (i = 0; i < n && used < len; i++) {
        const char *id = zkc_member_id(zkc_group_view_at(v, i));

        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "", id ? id : "?");
    }
}

/* Sorted, comma-separated: compare as sets. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void canonical(const char *in, char *out, size_t len)
{
    char tmp[4096], *parts[256], *save = NULL, *t;
    int n = 0, i;
    size_t used = 0;

    snprintf(tmp, sizeof(tmp), "%s", in);
    for (t = strtok_r(tmp, ",", &save); t && n < 256; t = strtok_r(NULL, ",", &save))
        parts[n++] = t;
    qsort(parts, (size_t)n, sizeof(parts[0]), cmp_str);
    out[0] = '\0';
    for (i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s", i ? "," : "", parts[i]);
}

static void on_group(zkc_group *g, const zkc_group_event *ev, void *ud)
{
    char ids[4096], canon[4096];

    (void)g;
    (void)ud;
    if (ev->type == ZKC_GROUP_CHANGED) {
        view_ids(ev->view, ids, sizeof(ids));
        hist("view n=%d dups=%d ids=%s", zkc_group_view_count(ev->view),
             zkc_group_view_duplicates(ev->view), ids);
        canonical(ids, canon, sizeof(canon));
        pthread_mutex_lock(&view_mu);
        view_matches = expected_view[0] != '\0' && strcmp(canon, expected_view) == 0 &&
                       zkc_group_view_duplicates(ev->view) == 0;
        pthread_mutex_unlock(&view_mu);
    } else if (ev->type == ZKC_GROUP_ERROR) {
        hist("group_error rc=%s", zkc_err_name(ev->rc));
    }
    slow_callback();
}

static void read_expected(void)
{
    char buf[4096] = "", canon[4096];
    FILE *f = cfg.expect ? fopen(cfg.expect, "r") : NULL;
    zkc_group_view *v = NULL;

    if (f) {
        if (fgets(buf, sizeof(buf), f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    canonical(buf, canon, sizeof(canon));
    hist("expect ids=%s", canon);
    pthread_mutex_lock(&view_mu);
    snprintf(expected_view, sizeof(expected_view), "%s", canon);
    pthread_mutex_unlock(&view_mu);
    (void)v;
}

static void run_group(zkc_session *s)
{
    char path[512], meta[64];
    zkc_group_opts o;
    zkc_member_info info;
    zkc_group *g;
    int rc, joined, expected_read = 0;
    long n = 0;

    snprintf(path, sizeof(path), "%s/members", cfg.root);
    zkc_group_opts_init(&o);
    o.on_event = on_group;
    rc = zkc_group_new(&g, s, path, &o);
    if (rc != 0) {
        hist("fatal what=group_new rc=%s", zkc_err_name(rc));
        return;
    }
    memset(&info, 0, sizeof(info));
    info.id = cfg.id;
    info.host = "127.0.0.1";
    info.port = 1000 + (int)rnd(1000);
    snprintf(meta, sizeof(meta), "{\"n\":%ld}", n);
    info.metadata = meta;
    rc = zkc_group_join(g, &info);
    hist("join rc=%s", zkc_err_name(rc));
    joined = rc == 0;
    while (!stop_flag) {
        note_quiesce();
        if (quiesce_flag && !expected_read) {
            expected_read = 1;
            read_expected();
        }
        if (!joined) {
            rc = zkc_group_join(g, &info);
            hist("join rc=%s", zkc_err_name(rc));
            joined = rc == 0;
            sleep_ms(50);
            continue;
        }
        if (!quiesce_flag && rnd(100) < 4) {
            rc = zkc_group_leave(g, 2000);
            hist("leave rc=%s", zkc_err_name(rc));
            joined = 0;
            sleep_ms(100 + (int)rnd(200));
            continue;
        }
        n++;
        snprintf(meta, sizeof(meta), "{\"n\":%ld}", n);
        rc = zkc_group_update(g, &info, 2000);
        hist("update n=%ld rc=%s", n, zkc_err_name(rc));
        if (rc == 0)
            progress();
        if (can_settle()) {
            int match;

            pthread_mutex_lock(&view_mu);
            match = view_matches;
            pthread_mutex_unlock(&view_mu);
            if (match && rc == 0) {
                settled = 1;
                hist("settled converged=1");
            }
        }
        sleep_ms(50 + (int)rnd(100));
    }
    zkc_group_free(g);
}

/* ------------------------------------------------------------ work */

/* Work assignment: every worker is a group member, an election participant
 * and a zkc_work member of the cluster folder <root> with WORK_ITEMS items.
 * ASSIGNED is logged when the callback starts (the member runs the item
 * from then on), REVOKED when its callback returns (it stopped). The main
 * loop writes, through a multi fenced by the item's claim, to the register
 * and the commit log ("<id> <token> <n> <item>"); a write holds the item's
 * run lock, which REVOKED takes too, so no write of ours lands after the
 * REVOKED line (the application's duty: stop before returning).
 *
 * The fence is zkc_work_fenced_multi_ex() with the hold's token alone: a
 * multi guarded by "the claim exists" is no fence (the claim path is the
 * same for every owner: seed 2026 schedule 3 had a member paused past its
 * timeout write under its old token, on its new session, while another
 * member held the item). The register (<root>/reg/<item>) is set
 * unconditionally, so nothing but the fence keeps a stale write out, and
 * the checker requires every commit of a hold to land before the next
 * hold of the item was claimed (server zxids). */
#define WORK_ITEMS 12

static struct {
    pthread_mutex_t mu;
    int held[WORK_ITEMS];
    int64_t tok[WORK_ITEMS];
} wk = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}};

static int work_item_index(const char *item)
{
    int k;

    if (item == NULL || item[0] != 'i' || strlen(item) != 3)
        return -1;
    k = atoi(item + 1);
    return k >= 0 && k < WORK_ITEMS ? k : -1;
}

static void on_work(zkc_work *w, const zkc_work_event *ev, void *ud)
{
    int k = work_item_index(ev->item);

    (void)w;
    (void)ud;
    switch (ev->type) {
    case ZKC_WORK_ASSIGNED:
        hist("assigned item=%s tok=%" PRId64, ev->item ? ev->item : "-", ev->token);
        if (k >= 0) {
            pthread_mutex_lock(&wk.mu);
            wk.held[k] = 1;
            wk.tok[k] = ev->token;
            pthread_mutex_unlock(&wk.mu);
        }
        slow_callback();
        break;
    case ZKC_WORK_REVOKED:
        slow_callback();
        if (k >= 0) {
            pthread_mutex_lock(&wk.mu); /* waits for a write in flight */
            wk.held[k] = 0;
            pthread_mutex_unlock(&wk.mu);
        }
        hist("revoked item=%s tok=%" PRId64 " reason=%s", ev->item ? ev->item : "-", ev->token,
             zkc_work_revoke_reason_name(ev->reason));
        break;
    default:
        hist("work_event ev=%s", zkc_work_event_name(ev->type));
        slow_callback();
        break;
    }
}

/* One fenced write to a random held item; 1 when something was held. */
static int work_write(zkc_work *w)
{
    char data[256], logpath[512], regpath[512], item[8];
    zkc_op ops[2];
    int k, start = (int)rnd(WORK_ITEMS), i, rc;
    int64_t tok;

    pthread_mutex_lock(&wk.mu);
    for (i = 0; i < WORK_ITEMS; i++) {
        k = (start + i) % WORK_ITEMS;
        if (wk.held[k])
            break;
    }
    if (i == WORK_ITEMS) {
        pthread_mutex_unlock(&wk.mu);
        return 0;
    }
    tok = wk.tok[k];
    snprintf(item, sizeof(item), "i%02d", k);
    writes_done++;
    snprintf(data, sizeof(data), "%s %" PRId64 " %ld %s", cfg.id, tok, writes_done, item);
    snprintf(logpath, sizeof(logpath), "%s/log/w-", cfg.root);
    snprintf(regpath, sizeof(regpath), "%s/reg/%s", cfg.root, item);
    hist("write try tok=%" PRId64 " n=%ld item=%s", tok, writes_done, item);
    memset(ops, 0, sizeof(ops));
    ops[0].type = ZKC_OP_SET;
    ops[0].path = regpath;
    ops[0].data = data;
    ops[0].len = (int)strlen(data);
    ops[0].version = -1;
    ops[1].type = ZKC_OP_CREATE;
    ops[1].path = logpath;
    ops[1].data = data;
    ops[1].len = (int)strlen(data);
    ops[1].flags = ZKC_CREATE_PERSISTENT | ZKC_CREATE_SEQUENTIAL;
    rc = zkc_work_fenced_multi_ex(w, item, tok, ops, 2, OP_TIMEOUT_MS, NULL);
    log_write("work", tok, rc);
    pthread_mutex_unlock(&wk.mu);
    return 1;
}

static int read_expect_file(char *out, size_t len)
{
    char buf[4096] = "";
    FILE *f = cfg.expect ? fopen(cfg.expect, "r") : NULL;

    if (f == NULL)
        return -1;
    if (fgets(buf, sizeof(buf), f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    canonical(buf, out, len);
    return 0;
}

/* After the faults: every item claimed by a live member (one of the expect
 * file), every claim the planned owner's, and the items claimed by us the
 * ones our callbacks hold. */
static int work_converged(zkc_session *s, const char *expect)
{
    zkc_work_view *v = NULL;
    int i, n, ok = 1, mine = 0, held = 0;
    char needle[64];

    if (zkc_work_view_read(s, cfg.root, 2000, &v) != 0)
        return 0;
    n = zkc_work_view_count(v);
    for (i = 0; i < n; i++) {
        const zkc_work_entry *e = zkc_work_view_at(v, i);

        if (e->state != ZKC_WORK_RUNNING || e->claimed_by == NULL) {
            ok = 0;
            break;
        }
        snprintf(needle, sizeof(needle), ",%s,", e->claimed_by);
        if (strstr(expect, needle) == NULL) {
            ok = 0;
            break;
        }
        if (strcmp(e->claimed_by, cfg.id) == 0) {
            int k = work_item_index(e->item);

            mine++;
            pthread_mutex_lock(&wk.mu);
            if (k < 0 || !wk.held[k])
                ok = 0;
            pthread_mutex_unlock(&wk.mu);
        }
    }
    pthread_mutex_lock(&wk.mu);
    for (i = 0; i < WORK_ITEMS; i++)
        held += wk.held[i];
    pthread_mutex_unlock(&wk.mu);
    if (n != WORK_ITEMS || held != mine)
        ok = 0;
    zkc_work_view_free(v);
    return ok;
}

static int join_cluster(zkc_session *s, zkc_group **g, const char *meta)
{
    char path[512];
    zkc_member_info info;
    int rc;

    snprintf(path, sizeof(path), "%s/members", cfg.root);
    rc = zkc_group_new(g, s, path, NULL);
    if (rc != 0) {
        hist("fatal what=group_new rc=%s", zkc_err_name(rc));
        return rc;
    }
    memset(&info, 0, sizeof(info));
    info.id = cfg.id;
    info.host = "127.0.0.1";
    info.port = 1000 + (int)rnd(1000);
    info.metadata = meta;
    rc = zkc_group_join(*g, &info);
    hist("join rc=%s", zkc_err_name(rc));
    return rc;
}

static int start_election(zkc_session *s, zkc_election **e)
{
    char path[512];
    zkc_election_opts eo;
    int rc;

    snprintf(path, sizeof(path), "%s/leader", cfg.root);
    zkc_election_opts_init(&eo);
    eo.id = cfg.id;
    eo.on_suspend = cfg.wait_policy ? ZKC_ELECTION_WAIT : ZKC_ELECTION_STEP_DOWN;
    rc = zkc_election_new(e, s, path, &eo);
    if (rc != 0)
        hist("fatal what=election_new rc=%s", zkc_err_name(rc));
    return rc;
}

static void run_work(zkc_session *s)
{
    zkc_group *g = NULL;
    zkc_election *e = NULL;
    zkc_work *w = NULL;
    zkc_work_opts wo;
    char expect[4200] = "", item[8];
    int rc = 0, k, have_expect = 0, tries;

    hist("items n=%d", WORK_ITEMS);
    for (k = 0; k < WORK_ITEMS; k++) {
        char regdir[512], reg[520], init[32];
        zkc_op op;

        snprintf(item, sizeof(item), "i%02d", k);
        /* the item's register (a sink), created once by whoever comes first */
        snprintf(regdir, sizeof(regdir), "%s/reg", cfg.root);
        snprintf(reg, sizeof(reg), "%s/%s", regdir, item);
        snprintf(init, sizeof(init), "- 0 0 %s", item);
        memset(&op, 0, sizeof(op));
        op.type = ZKC_OP_CREATE;
        op.path = reg;
        op.data = init;
        op.len = (int)strlen(init);
        /* Faults may already run: connection errors are waited out (a
         * create that did happen says NODEEXISTS the next time). */
        for (tries = 0; tries < 20 && !stop_flag; tries++) {
            rc = zkc_fenced_multi(s, regdir, &op, 1, OP_TIMEOUT_MS);
            if (rc != ZKC_ECONNLOSS && rc != ZKC_ETIMEDOUT)
                break;
            zkc_session_wait_connected(s, 2000);
        }
        if (rc != 0 && rc != ZKC_ENODEEXISTS)
            hist("reg_create item=%s rc=%s", item, zkc_err_name(rc));
        for (tries = 0; tries < 20 && !stop_flag; tries++) {
            rc = zkc_work_item_add(s, cfg.root, item, item, 3, OP_TIMEOUT_MS);
            if (rc != ZKC_ECONNLOSS && rc != ZKC_ETIMEDOUT)
                break;
            zkc_session_wait_connected(s, 2000);
        }
        if (rc != 0 && rc != ZKC_ENODEEXISTS)
            hist("item_add item=%s rc=%s", item, zkc_err_name(rc));
    }
    if (join_cluster(s, &g, "{\"weight\":1}") != 0 && g == NULL)
        return;
    if (start_election(s, &e) != 0)
        goto out;
    zkc_work_opts_init(&wo);
    wo.member_id = cfg.id;
    wo.election = e;
    wo.on_event = on_work;
    rc = zkc_work_new(&w, s, cfg.root, &wo);
    if (rc != 0) {
        hist("fatal what=work_new rc=%s", zkc_err_name(rc));
        goto out;
    }
    while (!stop_flag) {
        note_quiesce();
        if (work_write(w))
            progress();
        if (quiesce_flag && !have_expect) {
            char canon[4096] = "";

            have_expect = 1;
            if (read_expect_file(canon, sizeof(canon)) == 0)
                snprintf(expect, sizeof(expect), ",%s,", canon);
            hist("expect ids=%s", canon);
        }
        if (can_settle() && have_expect && work_converged(s, expect)) {
            settled = 1;
            hist("settled converged=1");
        }
        sleep_ms(50 + (int)rnd(100));
    }
out:
    zkc_work_free(w);
    if (e)
        zkc_election_close(e);
    zkc_group_free(g);
}

/* ------------------------------------------------------------ task */

/* Task queue: the worker whose id starts with "w0" (and its replacements)
 * submits tasks and records their results; the others are group members
 * with capacity 2 that run tasks through zkc_tasks (each also an election
 * participant, so one of them plans). A run is logged when it starts and
 * when it ends; the result the library writes carries the token. */
static int task_run(zkc_tasks *t, const zkc_task *task, char **output, size_t *output_len, void *ud)
{
    char buf[128];
    int n;

    (void)t;
    (void)ud;
    hist("task_run id=%s tok=%" PRId64, task->id, task->token);
    sleep_ms(10 + (int)rnd(60)); /* the task's own work */
    slow_callback();
    n = snprintf(buf, sizeof(buf), "%s %s %" PRId64, cfg.id, task->id, task->token);
    *output = malloc((size_t)n);
    if (*output != NULL) {
        memcpy(*output, buf, (size_t)n);
        *output_len = (size_t)n;
    }
    hist("task_done id=%s tok=%" PRId64, task->id, task->token);
    return 0;
}

static void log_result(const zkc_task_result *r, const char *via)
{
    hist("result id=%s worker=%s tok=%" PRId64 " status=%d via=%s", r->task,
         r->worker ? r->worker : "-", r->token, r->status, via);
}

#define MAX_PENDING 64

static void run_submitter(zkc_session *s)
{
    char pending[MAX_PENDING][ZKC_TASK_ID_MAX], path[512], payload[64];
    int npending = 0, rc, i;
    long n = 0;
    int64_t deadline;

    while (!stop_flag && !quiesce_flag) {
        zkc_task_result *r = NULL;
        char id[ZKC_TASK_ID_MAX];

        if (npending < MAX_PENDING) {
            n++;
            snprintf(payload, sizeof(payload), "{\"n\":%ld,\"by\":\"%s\"}", n, cfg.id);
            rc = zkc_task_submit(s, cfg.root, payload, strlen(payload), id, sizeof(id),
                                 OP_TIMEOUT_MS);
            if (rc == 0) {
                hist("submitted id=%s n=%ld", id, n);
                snprintf(pending[npending++], ZKC_TASK_ID_MAX, "%s", id);
            } else {
                hist("submit_fail n=%ld rc=%s", n, zkc_err_name(rc));
            }
        }
        /* the oldest pending result, for a while */
        if (npending > 0) {
            rc = zkc_task_wait(s, cfg.root, pending[0], 300, &r);
            if (rc == 0) {
                log_result(r, "wait");
                zkc_task_result_free(r);
                memmove(pending[0], pending[1], sizeof(pending[0]) * (size_t)(npending - 1));
                npending--;
                progress();
            } else if (rc != ZKC_ETIMEDOUT) {
                hist("wait_fail id=%s rc=%s", pending[0], zkc_err_name(rc));
            }
        }
    }
    note_quiesce();
    /* After the faults: every task still in the queue (ours, and those of a
     * killed submitter) gets its result within the deadline. */
    deadline = now_ns() / 1000000 + 20000;
    snprintf(path, sizeof(path), "%s/work/tasks", cfg.root);
    while (!stop_flag) {
        char **names = NULL;
        int count = 0;

        rc = zkc_get_children(s, path, 2000, &names, &count, NULL);
        if (rc == ZKC_ENONODE || (rc == 0 && count == 0)) {
            zkc_strings_free(names, count);
            break;
        }
        for (i = 0; rc == 0 && i < count && !stop_flag; i++) {
            zkc_task_result *r = NULL;
            int64_t left = deadline - now_ns() / 1000000;

            if (!zkc_task_id_valid(names[i]) || left <= 0)
                continue;
            if (zkc_task_wait(s, cfg.root, names[i], (int)left, &r) == 0) {
                log_result(r, "drain");
                zkc_task_result_free(r);
            }
        }
        zkc_strings_free(names, count);
        if (now_ns() / 1000000 >= deadline) {
            hist("drain_timeout");
            break;
        }
    }
    /* Every result there is, once. */
    snprintf(path, sizeof(path), "%s/work/results", cfg.root);
    while (!stop_flag) {
        char **names = NULL;
        int count = 0;

        rc = zkc_get_children(s, path, 2000, &names, &count, NULL);
        if (rc == 0 || rc == ZKC_ENONODE) {
            for (i = 0; i < count; i++) {
                zkc_task_result *r = NULL;

                /* exists: answers at once (a timeout of 0 gives up before
                 * the server answers: see the README) */
                if (zkc_task_id_valid(names[i]) &&
                    zkc_task_wait(s, cfg.root, names[i], 2000, &r) == 0) {
                    log_result(r, "scan");
                    zkc_task_result_free(r);
                }
            }
            zkc_strings_free(names, count);
            hist("results_scan n=%d", count);
            progress();
            break;
        }
        hist("scan_fail rc=%s", zkc_err_name(rc));
        sleep_ms(200);
    }
    while (!stop_flag) {
        if (can_settle()) {
            settled = 1;
            hist("settled");
        }
        sleep_ms(50);
    }
}

static void run_task(zkc_session *s)
{
    zkc_group *g = NULL;
    zkc_election *e = NULL;
    zkc_tasks *t = NULL;
    zkc_tasks_opts to;
    zkc_tasks_stats st;
    uint64_t seen = 0;
    int rc;

    if (strncmp(cfg.id, "w0", 2) == 0) {
        hist("role submitter");
        run_submitter(s);
        return;
    }
    hist("role worker");
    if (join_cluster(s, &g, "{\"capacity\":2}") != 0 && g == NULL)
        return;
    if (start_election(s, &e) != 0)
        goto out;
    zkc_tasks_opts_init(&to);
    to.member_id = cfg.id;
    to.run = task_run;
    to.election = e;
    rc = zkc_tasks_new(&t, s, cfg.root, &to);
    if (rc != 0) {
        hist("fatal what=tasks_new rc=%s", zkc_err_name(rc));
        goto out;
    }
    while (!stop_flag) {
        note_quiesce();
        if (zkc_tasks_stats_get(t, &st) == 0 && st.completed + st.fenced != seen) {
            seen = st.completed + st.fenced;
            hist("tasks_stats completed=%" PRIu64 " fenced=%" PRIu64 " claimed=%" PRIu64,
                 st.completed, st.fenced, st.claimed);
            progress();
        } else if (can_settle()) {
            /* nothing left to run is progress too: the submitter checks
             * that every task got its result */
            progress();
        }
        sleep_ms(100);
    }
out:
    zkc_tasks_free(t);
    if (e)
        zkc_election_close(e);
    zkc_group_free(g);
}

/* ------------------------------------------------------------ main */

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        quiesce_flag = 1;
    else
        stop_flag = 1;
}

static void usage(void)
{
    fputs("usage: chaos-worker --mode mutex|election|rwlock|semaphore|group|work|task\n"
          "         --servers S\n"
          "         --root PATH --id ID --history FILE [--timeout-ms MS] [--wait-policy]\n"
          "         [--leases N] [--slow-cb MS] [--slow-log MS] [--slow-log-match TEXT]\n"
          "         [--slow-log-once]\n"
          "         [--expect FILE] [--seed N]\n",
          stderr);
}

static int parse(int argc, char **argv)
{
    static const struct option lo[] = {
        {"mode", required_argument, NULL, 'm'},
        {"servers", required_argument, NULL, 's'},
        {"root", required_argument, NULL, 'r'},
        {"id", required_argument, NULL, 'i'},
        {"history", required_argument, NULL, 'h'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"wait-policy", no_argument, NULL, 'w'},
        {"leases", required_argument, NULL, 'l'},
        {"slow-cb", required_argument, NULL, 'c'},
        {"slow-log", required_argument, NULL, 'g'},
        {"slow-log-match", required_argument, NULL, 'G'},
        {"slow-log-once", no_argument, NULL, 'O'},
        {"expect", required_argument, NULL, 'e'},
        {"seed", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    cfg.timeout_ms = 2000;
    cfg.leases = 2;
    cfg.mode = M_MUTEX;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (strcmp(optarg, "mutex") == 0)
                cfg.mode = M_MUTEX;
            else if (strcmp(optarg, "election") == 0)
                cfg.mode = M_ELECTION;
            else if (strcmp(optarg, "rwlock") == 0)
                cfg.mode = M_RWLOCK;
            else if (strcmp(optarg, "semaphore") == 0)
                cfg.mode = M_SEMAPHORE;
            else if (strcmp(optarg, "group") == 0)
                cfg.mode = M_GROUP;
            else if (strcmp(optarg, "work") == 0)
                cfg.mode = M_WORK;
            else if (strcmp(optarg, "task") == 0)
                cfg.mode = M_TASK;
            else
                return -1;
            break;
        case 's':
            cfg.servers = optarg;
            break;
        case 'r':
            cfg.root = optarg;
            break;
        case 'i':
            cfg.id = optarg;
            break;
        case 'h':
            cfg.history = optarg;
            break;
        case 't':
            cfg.timeout_ms = atoi(optarg);
            break;
        case 'w':
            cfg.wait_policy = 1;
            break;
        case 'l':
            cfg.leases = atoi(optarg);
            break;
        case 'c':
            cfg.slow_cb_ms = atoi(optarg);
            break;
        case 'g':
            cfg.slow_log_ms = atoi(optarg);
            break;
        case 'G':
            cfg.slow_log_match = optarg;
            break;
        case 'O':
            cfg.slow_log_once = 1;
            break;
        case 'e':
            cfg.expect = optarg;
            break;
        case 'S':
            cfg.seed = (unsigned)strtoul(optarg, NULL, 10);
            break;
        default:
            return -1;
        }
    }
    if (!cfg.servers || !cfg.root || !cfg.id || !cfg.history || cfg.leases < 1)
        return -1;
    return 0;
}

static const char *const mode_names[] = {"mutex", "election", "rwlock", "semaphore",
                                         "group", "work",     "task"};

int main(int argc, char **argv)
{
    struct sigaction sa;
    zkc_session_opts so;
    zkc_session *s;
    int rc;

    if (parse(argc, argv) != 0) {
        usage();
        return 2;
    }
    /* The orchestrator going away must not leave workers behind. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    hist_fd = open(cfg.history, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (hist_fd < 0) {
        perror(cfg.history);
        return 1;
    }
    rng_state = cfg.seed ^ (unsigned)getpid();
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    hist("start id=%s pid=%ld mode=%s policy=%s slow_cb=%d slow_log=%d", cfg.id, (long)getpid(),
         mode_names[cfg.mode], cfg.wait_policy ? "wait" : "step_down", cfg.slow_cb_ms,
         cfg.slow_log_ms);
    zkc_session_opts_init(&so);
    so.servers = cfg.servers;
    so.session_timeout_ms = cfg.timeout_ms;
    so.log_fn = on_log;
    so.log_level = ZKC_LOG_WARN;
    rc = zkc_session_new(&s, &so);
    if (rc != 0) {
        hist("fatal what=session_new rc=%s", zkc_err_name(rc));
        return 1;
    }
    rc = zkc_session_add_listener(s, on_state, NULL);
    if (rc != 0)
        hist("fatal what=add_listener rc=%s", zkc_err_name(rc));
    rc = zkc_session_wait_connected(s, 30000);
    hist("connected rc=%s", zkc_err_name(rc));

    switch (cfg.mode) {
    case M_MUTEX:
        run_mutex(s);
        break;
    case M_ELECTION:
        run_election(s);
        break;
    case M_RWLOCK:
        run_rwlock(s);
        break;
    case M_SEMAPHORE:
        run_semaphore(s);
        break;
    case M_GROUP:
        run_group(s);
        break;
    case M_WORK:
        run_work(s);
        break;
    case M_TASK:
        run_task(s);
        break;
    }
    hist("final gen=%u sid=%" PRIx64 " state=%s ops=%ld", zkc_session_generation(s),
         (uint64_t)zkc_session_id(s), zkc_conn_state_name(zkc_session_state(s)), ops_done);
    rc = zkc_session_close(s);
    hist("exit rc=%s", zkc_err_name(rc));
    close(hist_fd);
    return 0;
}
