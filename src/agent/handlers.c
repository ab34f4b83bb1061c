/* The handler runner (see handlers.h for the model). All state is guarded by
 * one mutex that the worker drops only around poll(2) and the done
 * callbacks. Runs are created and freed by the worker alone, so pointers to
 * them survive a reconfigure that happens while the worker polls. */
#include "handlers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monotime.h"
#include "log.h"
#include "metrics.h"
#include "proc.h"

#define N_ENV          5           /* set when the event is queued */
#define N_ENV_RUN      (N_ENV + 2) /* ... plus the members, set when it runs */
#define LINE_MAX_BYTES 1024

/* One event, shared by every handler it was queued for. */
typedef struct evt {
    int refs; /* atomic: zka_handlers_fire drops its own after unlocking */
    zka_event event;
    char *json; /* with the trailing newline; NULL until built */
    size_t json_len;
    char *members; /* JSON array of ids; NULL until built */
    char *env[N_ENV_RUN + 1];
    char *key;   /* coalescing key (the work item), NULL when none */
    char **xenv; /* the event's own "NAME=value" variables, NULL-terminated, may be NULL */
    size_t n_xenv;
    zka_doc_build_fn build;
    void *ctx;
    void (*ctx_free)(void *ctx);
} evt;

typedef struct run {
    zka_child child;
    pid_t pid; /* the guard's */
    int pidfd, out_fd, in_fd;
    evt *ev;
    unsigned coalesced;
    size_t in_off;
    long long started, deadline, kill_at;
    int phase; /* 0 running, 1 SIGTERM sent, 2 SIGKILL sent, 3 guard killed */
    bool exited, timed_out;
    int wstatus, exec_errno;
    char line[LINE_MAX_BYTES];
    size_t line_len;
    size_t out_bytes, max_out;
} run;

typedef struct slot {
    zka_handler_cfg cfg; /* deep copy */
    size_t index;
    char label[96];
    /* Follow-up runs, oldest first, at most one per event type and key
     * (so at most ZKA_EV_COUNT + 2 per work item held or released). */
    evt **pending;
    unsigned *pending_coalesced;
    size_t npending, cap_pending;
    run *r;
} slot;

static void slot_drop_pending(slot *s);
struct zka_handlers;
static bool build_docs(struct zka_handlers *h);

struct zka_handlers {
    pthread_mutex_t mu;
    pthread_cond_t idle;
    slot **slots;
    size_t n;
    slot **retired; /* removed by reconfigure with a run still active */
    size_t n_retired;
    int wake[2];
    pthread_t th;
    bool stop;
    zka_handlers_opts o;
};

static void evt_unref(evt *e)
{
    int i;

    if (!e || __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free(e->json);
    free(e->members);
    for (i = 0; i < N_ENV_RUN; i++)
        free(e->env[i]);
    free(e->key);
    zka_proc_free_strv(e->xenv);
    if (e->ctx_free)
        e->ctx_free(e->ctx);
    free(e);
}

static char **strv_dup(char *const *v)
{
    size_t n = 0, i;
    char **d;

    if (!v)
        return NULL;
    while (v[n])
        n++;
    if (!(d = calloc(n + 1, sizeof(*d))))
        return NULL;
    for (i = 0; i < n; i++)
        if (!(d[i] = strdup(v[i]))) {
            zka_proc_free_strv(d);
            return NULL;
        }
    return d;
}

static void slot_drop_pending(slot *s)
{
    while (s->npending > 0)
        evt_unref(s->pending[--s->npending]);
}

/* mu held. When `ev` is "drained" or "undrained" and its opposite is
 * queued (not running) in `s`, drop that one and return 1. */
static int drain_pair_cancels(slot *s, zka_event ev)
{
    zka_event other;
    size_t j;

    if (ev != ZKA_EV_DRAINED && ev != ZKA_EV_UNDRAINED)
        return 0;
    other = ev == ZKA_EV_DRAINED ? ZKA_EV_UNDRAINED : ZKA_EV_DRAINED;
    for (j = 0; j < s->npending; j++) {
        if (s->pending[j]->event == other) {
            evt_unref(s->pending[j]);
            s->npending--;
            memmove(&s->pending[j], &s->pending[j + 1], (s->npending - j) * sizeof(s->pending[0]));
            memmove(&s->pending_coalesced[j], &s->pending_coalesced[j + 1],
                    (s->npending - j) * sizeof(s->pending_coalesced[0]));
            return 1;
        }
    }
    return 0;
}

/* Room for one more follow-up run; false when out of memory. */
static bool pending_grow(slot *s)
{
    size_t cap = s->cap_pending ? s->cap_pending * 2 : ZKA_EV_COUNT;
    evt **p = realloc(s->pending, cap * sizeof(*p));
    unsigned *c;

    if (!p)
        return false;
    s->pending = p;
    if (!(c = realloc(s->pending_coalesced, cap * sizeof(*c))))
        return false;
    s->pending_coalesced = c;
    s->cap_pending = cap;
    return true;
}

static void slot_free(slot *s)
{
    if (!s)
        return;
    zka_proc_free_strv(s->cfg.args);
    free(s->cfg.shell);
    slot_drop_pending(s);
    free(s->pending);
    free(s->pending_coalesced);
    free(s);
}

static slot *slot_new(const zka_handler_cfg *c, size_t index)
{
    slot *s = calloc(1, sizeof(*s));
    const char *name;

    if (!s)
        return NULL;
    s->cfg = *c;
    s->cfg.args = NULL;
    s->cfg.shell = NULL;
    if ((c->args && !(s->cfg.args = strv_dup(c->args))) ||
        (c->shell && !(s->cfg.shell = strdup(c->shell)))) {
        slot_free(s);
        return NULL;
    }
    s->index = index;
    if (c->args) {
        name = strrchr(c->args[0], '/');
        name = name ? name + 1 : c->args[0];
    } else {
        name = "sh";
    }
    snprintf(s->label, sizeof(s->label), "handler[%zu] %s", index, name);
    return s;
}

static void wake(zka_handlers *h)
{
    char b = 1;

    if (write(h->wake[1], &b, 1) < 0) {
        /* Full pipe: the worker is already due to wake. */
    }
}

/* ------------------------------------------------------------- the worker */

static void flush_line(slot *s, run *r)
{
    if (r->line_len == 0)
        return;
    zka_log(ZKC_LOG_INFO, "%s: %.*s", s->label, (int)r->line_len, r->line);
    r->line_len = 0;
}

static void take_output(slot *s, run *r, const char *buf, size_t n)
{
    size_t i, keep;

    keep = r->out_bytes >= r->max_out ? 0 : r->max_out - r->out_bytes;
    if (keep > n)
        keep = n;
    r->out_bytes += n;
    for (i = 0; i < keep; i++) {
        if (buf[i] == '\n') {
            flush_line(s, r);
            continue;
        }
        if (r->line_len == sizeof(r->line))
            flush_line(s, r);
        r->line[r->line_len++] = buf[i];
    }
}

static void read_output(slot *s, run *r)
{
    char buf[8192];
    ssize_t n;

    while (r->out_fd >= 0) {
        n = read(r->out_fd, buf, sizeof(buf));
        if (n > 0) {
            take_output(s, r, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        close(r->out_fd); /* EOF or error */
        r->out_fd = -1;
    }
}

static void write_input(run *r)
{
    ssize_t n;

    while (r->in_fd >= 0 && r->in_off < r->ev->json_len) {
        n = write(r->in_fd, r->ev->json + r->in_off, r->ev->json_len - r->in_off);
        if (n > 0) {
            r->in_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0 && errno == EPIPE) {
            /* The handler did not read its stdin: fine. SIGPIPE is blocked in
             * this thread; consume the pending one. */
            sigset_t pipe_set;
            struct timespec zero = {0, 0};
            sigemptyset(&pipe_set);
            sigaddset(&pipe_set, SIGPIPE);
            (void)sigtimedwait(&pipe_set, NULL, &zero);
        }
        break;
    }
    if (r->in_fd >= 0) {
        close(r->in_fd); /* all written (EOF for the handler) or it stopped reading */
        r->in_fd = -1;
    }
}

/* The members of `ev` for the environment: inline when short, else in a
 * memfd passed as descriptor 3 (returned; -1 when inline or on failure). */
static int members_env(slot *s, evt *ev, char **envp_extra)
{
    const char *m = ev->members ? ev->members : "[]";
    size_t len = strlen(m), off = 0;
    int fd;

    if (len <= ZKA_MEMBERS_ENV_MAX) {
        if (asprintf(&envp_extra[0], "ZKCOORD_MEMBERS=%s", m) < 0)
            envp_extra[0] = NULL;
        return -1;
    }
    envp_extra[0] = strdup("ZKCOORD_MEMBERS=");
    fd = memfd_create("zkcoord-members", MFD_CLOEXEC);
    while (fd >= 0 && off < len) {
        ssize_t n = write(fd, m + off, len - off);
        if (n <= 0 && errno != EINTR) {
            close(fd);
            fd = -1;
        } else if (n > 0) {
            off += (size_t)n;
        }
    }
    if (fd < 0 || lseek(fd, 0, SEEK_SET) != 0) {
        zka_log(ZKC_LOG_ERROR, "%s: cannot pass the %zu-byte member list: %s", s->label, len,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    envp_extra[1] = strdup("ZKCOORD_MEMBERS_FILE=/dev/fd/3");
    return fd;
}

static void start_run(zka_handlers *h, slot *s)
{
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, mfd = -1;
    char *path = NULL, *sh_argv[4], **run_env = NULL, *menv[3] = {NULL, NULL, NULL};
    char *const *argv;
    char **envp = NULL;
    evt *ev = s->pending[0];
    run *r = NULL;
    unsigned coalesced = s->pending_coalesced[0];
    zka_spawn_opts so;
    size_t i, k = 0;

    s->npending--;
    memmove(&s->pending[0], &s->pending[1], s->npending * sizeof(s->pending[0]));
    memmove(&s->pending_coalesced[0], &s->pending_coalesced[1],
            s->npending * sizeof(s->pending_coalesced[0]));
    if (s->cfg.shell) {
        sh_argv[0] = "/bin/sh";
        sh_argv[1] = "-c";
        sh_argv[2] = s->cfg.shell;
        sh_argv[3] = NULL;
        argv = sh_argv;
        path = strdup("/bin/sh");
    } else {
        argv = s->cfg.args;
        path = zka_proc_resolve(argv[0]);
        if (!path) {
            zka_log(ZKC_LOG_ERROR, "%s: cannot run %s: %s", s->label, argv[0], strerror(errno));
            goto fail;
        }
    }
    /* The fixed variables, the members (2 slots), the event's own. */
    if (!(run_env = calloc(N_ENV_RUN + ev->n_xenv + 1, sizeof(*run_env)))) {
        zka_log(ZKC_LOG_ERROR, "%s: out of memory", s->label);
        goto fail;
    }
    for (i = 0; i < N_ENV && ev->env[i]; i++)
        run_env[k++] = ev->env[i];
    mfd = members_env(s, ev, menv);
    for (i = 0; menv[i]; i++)
        run_env[k++] = menv[i];
    for (i = 0; i < ev->n_xenv; i++)
        run_env[k++] = ev->xenv[i];
    if (!path || !(r = calloc(1, sizeof(*r))) || !(envp = zka_proc_env(run_env, k))) {
        zka_log(ZKC_LOG_ERROR, "%s: out of memory", s->label);
        goto fail;
    }
    if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0) {
        zka_log(ZKC_LOG_ERROR, "%s: pipe: %s", s->label, strerror(errno));
        goto fail;
    }
    zka_spawn_opts_init(&so);
    so.in_fd = in_p[0];
    so.out_fd = so.err_fd = out_p[1];
    so.fd3 = mfd;
    so.grace_ms = h->o.kill_grace_ms;
    if (zka_child_spawn(&r->child, path, argv, envp, &so) != 0) {
        zka_log(ZKC_LOG_ERROR, "%s: fork: %s", s->label, strerror(errno));
        goto fail;
    }
    close(in_p[0]);
    close(out_p[1]);
    if (mfd >= 0)
        close(mfd);
    free(menv[0]);
    free(menv[1]);
    free(run_env);
    r->in_fd = in_p[1];
    r->out_fd = out_p[0];
    fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
    r->pid = r->child.app_pid;
    r->pidfd = r->child.pidfd;
    r->ev = ev;
    r->coalesced = coalesced;
    r->started = zka_now_ms();
    r->deadline = r->started + s->cfg.timeout_ms;
    r->max_out = s->cfg.max_output_bytes;
    s->r = r;
    zka_log(ZKC_LOG_DEBUG, "%s: started pid %d for %s%s", s->label, (int)r->pid,
            zka_event_name(ev->event), coalesced ? " (coalesced)" : "");
    write_input(r);
    free(path);
    zka_proc_free_strv(envp);
    return;

fail:
    if (in_p[0] >= 0) {
        close(in_p[0]);
        close(in_p[1]);
    }
    if (out_p[0] >= 0) {
        close(out_p[0]);
        close(out_p[1]);
    }
    if (mfd >= 0)
        close(mfd);
    free(menv[0]);
    free(menv[1]);
    free(run_env);
    free(path);
    zka_proc_free_strv(envp);
    free(r);
    zka_metrics_handler_run(ev->event, ZKA_RUN_SPAWN_ERROR, 0);
    /* Report it so a caller counting runs sees the failure. */
    if (h->o.done) {
        zka_handler_result res;
        memset(&res, 0, sizeof(res));
        res.index = s->index;
        res.event = ev->event;
        res.json = ev->json;
        res.spawn_failed = true;
        res.coalesced = coalesced;
        pthread_mutex_unlock(&h->mu);
        h->o.done(&res, h->o.user_data);
        pthread_mutex_lock(&h->mu);
    }
    evt_unref(ev);
}

/* Finish an exited run: log how it ended, report, free. Lock held; dropped
 * around the callback. */
static void finish_run(zka_handlers *h, slot *s)
{
    run *r = s->r;
    zka_handler_result res;
    char how[96], co[64];

    read_output(s, r); /* what it wrote just before exiting */
    if (r->out_fd >= 0) {
        /* A background grandchild may hold the pipe open: stop reading. */
        close(r->out_fd);
        r->out_fd = -1;
    }
    flush_line(s, r);
    if (r->out_bytes > r->max_out)
        zka_log(ZKC_LOG_WARN, "%s: [truncated %zu bytes]", s->label, r->out_bytes - r->max_out);
    if (r->in_fd >= 0)
        close(r->in_fd);
    zka_child_close(&r->child);
    if (r->exec_errno)
        snprintf(how, sizeof(how), "cannot execute: %s", strerror(r->exec_errno));
    else
        zka_proc_status_str(r->wstatus, how, sizeof(how));
    co[0] = '\0';
    if (r->coalesced)
        snprintf(co, sizeof(co), " (%u earlier events coalesced into it)", r->coalesced);
    memset(&res, 0, sizeof(res));
    res.index = s->index;
    res.event = r->ev->event;
    res.json = r->ev->json;
    res.wait_status = r->wstatus;
    res.spawn_failed = r->exec_errno != 0;
    res.timed_out = r->timed_out;
    res.coalesced = r->coalesced;
    res.output_bytes = r->out_bytes;
    res.duration_ms = zka_now_ms() - r->started;
    zka_metrics_handler_run(r->ev->event,
                            r->exec_errno  ? ZKA_RUN_SPAWN_ERROR
                            : r->timed_out ? ZKA_RUN_TIMEOUT
                            : WIFEXITED(r->wstatus) && WEXITSTATUS(r->wstatus) == 0
                                ? ZKA_RUN_SUCCESS
                                : ZKA_RUN_FAILURE,
                            res.duration_ms * 1000);
    zka_log(r->exec_errno                                                            ? ZKC_LOG_ERROR
            : r->timed_out || !WIFEXITED(r->wstatus) || WEXITSTATUS(r->wstatus) != 0 ? ZKC_LOG_WARN
                                                                                     : ZKC_LOG_INFO,
            "%s: %s: %s%s after %lld ms%s", s->label, zka_event_name(r->ev->event),
            r->timed_out ? "timed out, " : "", how, res.duration_ms, co);
    s->r = NULL;
    if (h->o.done) {
        pthread_mutex_unlock(&h->mu);
        h->o.done(&res, h->o.user_data);
        pthread_mutex_lock(&h->mu);
    }
    evt_unref(r->ev);
    free(r);
}

/* The run is over when its guard exited: the command and everything it
 * started are gone. */
static void check_exit(run *r)
{
    if (!r->exited && zka_child_done(&r->child, false, &r->wstatus, &r->exec_errno))
        r->exited = true;
}

static void check_timer(zka_handlers *h, slot *s, long long now)
{
    run *r = s->r;

    if (r->phase == 0 && now >= r->deadline) {
        zka_log(ZKC_LOG_WARN, "%s: timeout after %d ms, sending SIGTERM", s->label,
                s->cfg.timeout_ms);
        r->timed_out = true;
        zka_metrics_handler_timeout();
        zka_child_stop(&r->child);
        r->phase = 1;
        r->kill_at = now + h->o.kill_grace_ms;
    } else if (r->phase == 1 && now >= r->kill_at) {
        zka_log(ZKC_LOG_WARN, "%s: still running %d ms after SIGTERM, sending SIGKILL", s->label,
                h->o.kill_grace_ms);
        zka_child_kill(&r->child);
        zka_metrics_handler_kill();
        r->phase = 2;
        r->kill_at = now + 1000;
    } else if (r->phase == 2 && now >= r->kill_at) {
        /* The guard itself does not answer: its command dies with it
         * (parent-death signal) and leftovers come to the agent. */
        zka_log(ZKC_LOG_ERROR, "%s: guard %d does not exit: killed", s->label, (int)r->child.pid);
        kill(r->child.pid, SIGKILL);
        r->phase = 3;
    }
}

/* All slots with a run, current and retired, in a fresh array. */
static size_t active_slots(zka_handlers *h, slot ***out)
{
    size_t i, k = 0;
    slot **v = malloc((h->n + h->n_retired + 1) * sizeof(*v));

    *out = v;
    if (!v)
        return 0;
    for (i = 0; i < h->n; i++)
        if (h->slots[i]->r)
            v[k++] = h->slots[i];
    for (i = 0; i < h->n_retired; i++)
        v[k++] = h->retired[i];
    return k;
}

static bool is_idle(zka_handlers *h)
{
    size_t i;

    if (h->n_retired)
        return false;
    for (i = 0; i < h->n; i++)
        if (h->slots[i]->r || h->slots[i]->npending)
            return false;
    return true;
}

static void drop_retired_done(zka_handlers *h)
{
    size_t i = 0;

    while (i < h->n_retired) {
        if (!h->retired[i]->r) {
            slot_free(h->retired[i]);
            h->retired[i] = h->retired[--h->n_retired];
        } else {
            i++;
        }
    }
}

static void *worker(void *arg)
{
    zka_handlers *h = arg;
    sigset_t all;
    struct pollfd *pfd = NULL;
    slot **act = NULL;
    size_t i, nact, npfd;

    /* Signals belong to the agent's main thread; SIGPIPE from a handler that
     * closed its stdin must become EPIPE here, not kill the agent. */
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    pthread_mutex_lock(&h->mu);
    for (;;) {
        long long now = zka_now_ms(), next = -1;
        int timeout;
        bool poll_exit = false;

        if (!h->stop && build_docs(h))
            continue;
        if (!h->stop)
            for (i = 0; i < h->n; i++)
                if (!h->slots[i]->r && h->slots[i]->npending)
                    start_run(h, h->slots[i]);
        drop_retired_done(h);
        if (is_idle(h))
            pthread_cond_broadcast(&h->idle);
        free(act);
        nact = active_slots(h, &act);
        if (h->stop && nact == 0)
            break;
        free(pfd);
        pfd = calloc(1 + 3 * nact, sizeof(*pfd));
        if (!pfd || (!act && nact)) {
            /* Cannot even poll: retry shortly rather than spin or die. */
            pthread_mutex_unlock(&h->mu);
            usleep(10000);
            pthread_mutex_lock(&h->mu);
            continue;
        }
        npfd = 0;
        pfd[npfd].fd = h->wake[0];
        pfd[npfd++].events = POLLIN;
        for (i = 0; i < nact; i++) {
            run *r = act[i]->r;
            long long t = r->phase == 0 ? r->deadline : r->phase <= 2 ? r->kill_at : -1;

            pfd[npfd].fd = r->out_fd;
            pfd[npfd++].events = POLLIN;
            pfd[npfd].fd = r->in_fd;
            pfd[npfd++].events = POLLOUT;
            pfd[npfd].fd = r->pidfd;
            pfd[npfd++].events = POLLIN;
            if (r->pidfd < 0)
                poll_exit = true;
            if (t >= 0 && (next < 0 || t < next))
                next = t;
        }
        timeout = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
        if (poll_exit && (timeout < 0 || timeout > 20))
            timeout = 20; /* no pidfd: look for exits every 20 ms */
        pthread_mutex_unlock(&h->mu);
        (void)poll(pfd, npfd, timeout);
        pthread_mutex_lock(&h->mu);
        if (pfd[0].revents) {
            char buf[256];
            while (read(h->wake[0], buf, sizeof(buf)) > 0) {
            }
        }
        now = zka_now_ms();
        for (i = 0; i < nact; i++) {
            slot *s = act[i];
            run *r = s->r;

            if (pfd[1 + 3 * i].revents)
                read_output(s, r);
            if (pfd[2 + 3 * i].revents)
                write_input(r);
            if (r->pidfd < 0 || pfd[3 + 3 * i].revents)
                check_exit(r);
            if (r->exited)
                finish_run(h, s);
            else
                check_timer(h, s, now);
        }
    }
    pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->mu);
    free(act);
    free(pfd);
    return NULL;
}

/* ------------------------------------------------------------------ API */

static int build_slots(const zka_handler_cfg *cfgs, size_t n, slot ***out)
{
    slot **v = calloc(n + 1, sizeof(*v));
    size_t i;

    if (!v)
        return ZKC_ENOMEM;
    for (i = 0; i < n; i++)
        if (!(v[i] = slot_new(&cfgs[i], i))) {
            while (i--)
                slot_free(v[i]);
            free(v);
            return ZKC_ENOMEM;
        }
    *out = v;
    return 0;
}

int zka_handlers_new(zka_handlers **out, const zka_handler_cfg *cfgs, size_t n,
                     const zka_handlers_opts *o)
{
    zka_handlers *h = calloc(1, sizeof(*h));
    size_t i;
    int rc = ZKC_ENOMEM;

    if (!h)
        return ZKC_ENOMEM;
    if (o)
        h->o = *o;
    if (h->o.kill_grace_ms <= 0)
        h->o.kill_grace_ms = 2000;
    if ((rc = build_slots(cfgs, n, &h->slots)))
        goto fail_slots;
    h->n = n;
    rc = ZKC_ESYS;
    if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail_pipe;
    if (pthread_mutex_init(&h->mu, NULL) != 0)
        goto fail_mu;
    if (agent_cond_init(&h->idle) != 0)
        goto fail_cond;
    if (pthread_create(&h->th, NULL, worker, h) != 0)
        goto fail_thread;
    *out = h;
    return 0;

fail_thread:
    pthread_cond_destroy(&h->idle);
fail_cond:
    pthread_mutex_destroy(&h->mu);
fail_mu:
    close(h->wake[0]);
    close(h->wake[1]);
fail_pipe:
    for (i = 0; i < n; i++)
        slot_free(h->slots[i]);
    free(h->slots);
fail_slots:
    free(h);
    return rc;
}

/* Give `e` its document (json with the trailing newline, members). */
static void evt_set_doc(evt *e, char *json, char *members)
{
    size_t n;

    if (!json) {
        /* Never a handler without its document: say what happened. */
        zka_log(ZKC_LOG_ERROR, "cannot build the %s document: the handler gets a short one",
                zka_event_name(e->event));
        if (asprintf(&json, "{\"event\":\"%s\",\"error\":\"document could not be built\"}",
                     zka_event_name(e->event)) < 0)
            json = NULL;
    }
    n = json ? strlen(json) : 0;
    e->json = json ? realloc(json, n + 2) : NULL;
    if (!e->json) {
        free(json);
        e->json = strdup("{}\n");
        n = 2;
    } else {
        e->json[n] = '\n';
        e->json[n + 1] = '\0';
    }
    e->json_len = n + 1;
    e->members = members;
}

static evt *evt_new(const zka_event_info *ev)
{
    static const char *const names[N_ENV] = {"ZKCOORD_EVENT", "ZKCOORD_CLUSTER",
                                             "ZKCOORD_MEMBER_ID", "ZKCOORD_LEADER_ID",
                                             "ZKCOORD_FENCING_TOKEN"};
    const char *vals[N_ENV];
    evt *e = calloc(1, sizeof(*e));
    int i;

    if (!e)
        return NULL;
    e->refs = 1;
    e->event = ev->event;
    vals[0] = zka_event_name(ev->event);
    vals[1] = ev->cluster;
    vals[2] = ev->member_id;
    vals[3] = ev->leader_id;
    vals[4] = ev->fencing_token;
    for (i = 0; i < N_ENV; i++)
        if (asprintf(&e->env[i], "%s=%s", names[i], vals[i] ? vals[i] : "") < 0) {
            e->env[i] = NULL;
            evt_unref(e);
            return NULL;
        }
    if (ev->key && !(e->key = strdup(ev->key))) {
        evt_unref(e);
        return NULL;
    }
    while (ev->env && ev->env[e->n_xenv])
        e->n_xenv++;
    if (e->n_xenv && !(e->xenv = strv_dup(ev->env))) {
        evt_unref(e);
        return NULL;
    }
    if (ev->json) {
        char *j = strdup(ev->json), *m = strdup(ev->members ? ev->members : "[]");
        if (!j || !m) {
            free(j);
            free(m);
            evt_unref(e);
            return NULL;
        }
        evt_set_doc(e, j, m);
    } else {
        e->build = ev->build;
        e->ctx = ev->ctx;
        e->ctx_free = ev->ctx_free;
    }
    return e;
}

/* Build the document of the next run of every idle slot whose event has
 * none yet, with the lock dropped: a document of 10,000 members must not
 * hold up zka_handlers_fire() (the library's dispatcher). Returns true if
 * it dropped the lock (the caller re-reads its state). */
static bool build_docs(zka_handlers *h)
{
    size_t i;

    for (i = 0; i < h->n; i++) {
        slot *s = h->slots[i];
        evt *e;
        char *json = NULL, *members = NULL;

        if (s->r || !s->npending || s->pending[0]->json)
            continue;
        e = s->pending[0];
        __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&h->mu);
        e->build(e->ctx, &json, &members);
        pthread_mutex_lock(&h->mu);
        if (!e->json)
            evt_set_doc(e, json, members);
        else {
            free(json);
            free(members);
        }
        evt_unref(e);
        return true;
    }
    return false;
}

bool zka_handlers_wants(zka_handlers *h, zka_event ev)
{
    size_t i;
    bool w = false;

    if (!h)
        return false;
    pthread_mutex_lock(&h->mu);
    for (i = 0; i < h->n && !w; i++)
        w = (h->slots[i]->cfg.events & (1u << ev)) != 0;
    pthread_mutex_unlock(&h->mu);
    return w;
}

int zka_handlers_fire(zka_handlers *h, const zka_event_info *ev)
{
    evt *e;
    size_t i;
    int queued = 0;

    if (!ev || (!ev->json && !ev->build) || !zka_event_name(ev->event)) {
        if (ev && ev->ctx_free)
            ev->ctx_free(ev->ctx);
        return ZKC_EINVAL;
    }
    if (!(e = evt_new(ev))) {
        if (!ev->json && ev->ctx_free)
            ev->ctx_free(ev->ctx);
        return ZKC_ENOMEM;
    }
    pthread_mutex_lock(&h->mu);
    if (h->stop) {
        pthread_mutex_unlock(&h->mu);
        evt_unref(e);
        return ZKC_ECLOSED;
    }
    for (i = 0; i < h->n; i++) {
        slot *s = h->slots[i];

        if (!(s->cfg.events & (1u << ev->event)))
            continue;
        {
            /* Coalesce per event type: a burst of one kind becomes one
             * follow-up run with the latest document (the replaced ones are
             * counted, not run), while an event of another kind still gets
             * its own run -- an "elected" must not vanish behind the
             * "leader_changed" that follows it. */
            unsigned merged = 0;
            size_t j;
            /* "drained" and "undrained" toggle one state: a queued one and
             * its opposite cancel out (the last run still says how things
             * are), where per-type coalescing could run "drained" twice in
             * a row after a quick drain, undrain, drain, undrain. */
            if (drain_pair_cancels(s, ev->event))
                continue;
            for (j = 0; j < s->npending; j++) {
                /* Work item events coalesce per item: every item's change
                 * runs, a flapping one only with its latest state. */
                if (s->pending[j]->event == ev->event &&
                    (s->pending[j]->key == e->key ||
                     (s->pending[j]->key && e->key && strcmp(s->pending[j]->key, e->key) == 0))) {
                    merged = s->pending_coalesced[j] + 1;
                    evt_unref(s->pending[j]);
                    s->npending--;
                    memmove(&s->pending[j], &s->pending[j + 1],
                            (s->npending - j) * sizeof(s->pending[0]));
                    memmove(&s->pending_coalesced[j], &s->pending_coalesced[j + 1],
                            (s->npending - j) * sizeof(s->pending_coalesced[0]));
                    break;
                }
            }
            if (s->npending == s->cap_pending && !pending_grow(s)) {
                zka_log(ZKC_LOG_ERROR, "%s: out of memory: %s dropped", s->label,
                        zka_event_name(ev->event));
                continue;
            }
            __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
            s->pending[s->npending] = e;
            s->pending_coalesced[s->npending] = merged;
            s->npending++;
        }
        queued++;
    }
    pthread_mutex_unlock(&h->mu);
    evt_unref(e);
    if (queued)
        wake(h);
    return queued;
}

int zka_handlers_reconfigure(zka_handlers *h, const zka_handler_cfg *cfgs, size_t n)
{
    slot **nv, **ret;
    bool *used;
    size_t i, j, nret;
    int rc;

    pthread_mutex_lock(&h->mu);
    if ((rc = build_slots(cfgs, n, &nv))) {
        pthread_mutex_unlock(&h->mu);
        return rc;
    }
    used = calloc(h->n + 1, sizeof(*used));
    ret = realloc(h->retired, (h->n_retired + h->n + 1) * sizeof(*ret));
    if (!used || !ret) {
        if (ret)
            h->retired = ret;
        for (i = 0; i < n; i++)
            slot_free(nv[i]);
        free(nv);
        free(used);
        pthread_mutex_unlock(&h->mu);
        return ZKC_ENOMEM;
    }
    h->retired = ret;
    /* An unchanged handler keeps its slot: its run and queued follow-up
     * carry on as if nothing happened (no spurious run on reload). */
    for (i = 0; i < n; i++)
        for (j = 0; j < h->n; j++)
            if (!used[j] && zka_handler_cfg_equal(&nv[i]->cfg, &h->slots[j]->cfg)) {
                used[j] = true;
                slot_free(nv[i]);
                nv[i] = h->slots[j];
                nv[i]->index = i;
                {
                    /* Keep the label's name part, renumber. */
                    const char *name = strchr(nv[i]->label, ' ');
                    char tmp[96];
                    snprintf(tmp, sizeof(tmp), "handler[%zu]%s", i, name ? name : "");
                    memcpy(nv[i]->label, tmp, sizeof(tmp));
                }
                break;
            }
    nret = h->n_retired;
    for (j = 0; j < h->n; j++) {
        if (used[j])
            continue;
        slot_drop_pending(h->slots[j]);
        if (h->slots[j]->r)
            h->retired[nret++] = h->slots[j];
        else
            slot_free(h->slots[j]);
    }
    h->n_retired = nret;
    free(h->slots);
    free(used);
    h->slots = nv;
    h->n = n;
    pthread_mutex_unlock(&h->mu);
    wake(h);
    return 0;
}

int zka_handlers_wait_idle(zka_handlers *h, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    if (timeout_ms >= 0)
        agent_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&h->mu);
    while (!is_idle(h) && rc == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&h->idle, &h->mu);
        else if (pthread_cond_timedwait(&h->idle, &h->mu, &ts) == ETIMEDOUT)
            rc = is_idle(h) ? 0 : ZKC_ETIMEDOUT;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void zka_handlers_free(zka_handlers *h)
{
    size_t i;
    long long now = zka_now_ms();

    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    for (i = 0; i < h->n + h->n_retired; i++) {
        slot *s = i < h->n ? h->slots[i] : h->retired[i - h->n];
        slot_drop_pending(s);
        if (s->r && s->r->phase == 0) {
            /* Leaving: a run is not allowed to outlive the agent by more
             * than the grace. */
            zka_child_stop(&s->r->child);
            s->r->phase = 1;
            s->r->kill_at = now + h->o.kill_grace_ms;
        }
    }
    pthread_mutex_unlock(&h->mu);
    wake(h);
    pthread_join(h->th, NULL);
    for (i = 0; i < h->n; i++)
        slot_free(h->slots[i]);
    for (i = 0; i < h->n_retired; i++)
        slot_free(h->retired[i]);
    free(h->slots);
    free(h->retired);
    close(h->wake[0]);
    close(h->wake[1]);
    pthread_cond_destroy(&h->idle);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
