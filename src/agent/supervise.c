/* The supervisor (see supervise.h). States of the app:
 *   IDLE     nothing runs (maybe a restart is due at restart_at)
 *   RUNNING  the group leader is alive
 *   STOPPING SIGTERM sent to the group (or the leader exited and leftovers
 *            of its group get the same treatment); SIGKILL at kill_at
 *   KILLING  SIGKILL sent; waiting for the group to be empty */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monotime.h"
#include "log.h"
#include "metrics.h"
#include "proc.h"

enum sv_state { IDLE, RUNNING, STOPPING, KILLING };

struct zka_supervise {
    zka_supervise_cfg cfg; /* deep copy of args/env */
    char **extra_env;
    zka_supervise_exit_fn fn;
    void *user_data;

    pthread_mutex_t mu;
    pthread_cond_t changed; /* state changes, for stop_sync */
    int wake[2];
    pthread_t th;
    bool quit;

    /* wishes */
    bool want;
    char *want_token;
    /* the app */
    enum sv_state st;
    zka_child child;
    pid_t pid; /* the guard's; 0 when IDLE */
    int pidfd;
    bool leader_reaped; /* the guard exited: nothing of the app is left */
    int wstatus;
    bool stopped_by_us;
    char *run_token;
    long long kill_at, restart_at;
    bool blocked;     /* exited and the policy says no restart until want(false) */
    bool exited_self; /* the last run exited by itself: the next start is a restart */
};

static char **strv_copy(char *const *v)
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

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static void wake(zka_supervise *sv)
{
    char b = 1;

    if (write(sv->wake[1], &b, 1) < 0) {
        /* full: a wake-up is pending anyway */
    }
}

/* Lock held. */
static void start_app(zka_supervise *sv)
{
    size_t n_cfg = sv->cfg.n_env, n_x = 0, i, k = 0;
    char **extra, **envp = NULL, *path;

    while (sv->extra_env && sv->extra_env[n_x])
        n_x++;
    extra = calloc(n_cfg + n_x + 2, sizeof(*extra));
    path = zka_proc_resolve(sv->cfg.args[0]);
    if (!path) {
        zka_log(ZKC_LOG_ERROR, "supervise: cannot run %s: %s", sv->cfg.args[0], strerror(errno));
        goto fail;
    }
    if (!extra)
        goto fail;
    for (i = 0; i < n_x; i++)
        extra[k++] = sv->extra_env[i];
    for (i = 0; i < n_cfg; i++)
        extra[k++] = sv->cfg.env[i]; /* the config's env wins over ours */
    if (asprintf(&extra[k], "ZKCOORD_FENCING_TOKEN=%s", sv->want_token ? sv->want_token : "") < 0)
        goto fail;
    envp = zka_proc_env(extra, k + 1);
    free(extra[k]);
    if (!envp)
        goto fail;
    {
        zka_spawn_opts so;
        zka_spawn_opts_init(&so);
        so.out_fd = STDOUT_FILENO;
        so.err_fd = STDERR_FILENO;
        so.grace_ms = sv->cfg.stop_grace_ms > 0 ? sv->cfg.stop_grace_ms : 1;
        if (zka_child_spawn(&sv->child, path, sv->cfg.args, envp, &so) != 0) {
            zka_log(ZKC_LOG_ERROR, "supervise: fork: %s", strerror(errno));
            sv->pid = 0;
            goto fail;
        }
    }
    sv->pid = sv->child.app_pid;
    sv->pidfd = sv->child.pidfd;
    sv->leader_reaped = false;
    sv->stopped_by_us = false;
    free(sv->run_token);
    sv->run_token = sv->want_token ? strdup(sv->want_token) : NULL;
    sv->st = RUNNING;
    zka_metrics_app_start(sv->exited_self);
    sv->exited_self = false;
    zka_log(ZKC_LOG_INFO, "supervise: started %s (pid %d, fencing token %s)", sv->cfg.args[0],
            (int)sv->pid, sv->want_token ? sv->want_token : "none");
    free(extra);
    free(path);
    zka_proc_free_strv(envp);
    return;
fail:
    /* Try again after the restart delay rather than in a tight loop. */
    sv->restart_at =
        zka_now_ms() + (sv->cfg.restart_delay_ms > 0 ? sv->cfg.restart_delay_ms : 1000);
    free(extra);
    free(path);
    zka_proc_free_strv(envp);
}

/* Lock held. Is any process of the app left? (Its guard exits only when
 * nothing below it is.) Reaps the guard when it is gone. */
static bool group_alive(zka_supervise *sv)
{
    int eno = 0;

    if (!sv->leader_reaped && zka_child_done(&sv->child, false, &sv->wstatus, &eno)) {
        sv->leader_reaped = true;
        if (eno)
            zka_log(ZKC_LOG_ERROR, "supervise: cannot execute %s: %s", sv->cfg.args[0],
                    strerror(eno));
    }
    return !sv->leader_reaped;
}

/* One step of the state machine; returns how long poll may sleep (ms, -1
 * forever). Lock held. Sets *report when the app's exit is to be reported. */
static int step(zka_supervise *sv, bool *report)
{
    long long now = zka_now_ms();

    switch (sv->st) {
    case IDLE:
        if (sv->quit || !sv->want || sv->blocked)
            return -1;
        if (now < sv->restart_at)
            return (int)(sv->restart_at - now);
        start_app(sv);
        return sv->st == IDLE ? (int)(sv->restart_at - now) : 0;
    case RUNNING:
        (void)group_alive(sv); /* reaps the leader if it exited */
        if (sv->leader_reaped) {
            char how[96];
            bool failed = !WIFEXITED(sv->wstatus) || WEXITSTATUS(sv->wstatus) != 0;

            zka_proc_status_str(sv->wstatus, how, sizeof(how));
            zka_log(failed ? ZKC_LOG_WARN : ZKC_LOG_INFO, "supervise: %s (pid %d) exited: %s",
                    sv->cfg.args[0], (int)sv->pid, how);
            *report = true;
            sv->exited_self = true;
            if (sv->cfg.restart == ZKA_RESTART_NEVER ||
                (sv->cfg.restart == ZKA_RESTART_ON_FAILURE && !failed))
                sv->blocked = true;
            sv->restart_at = now + sv->cfg.restart_delay_ms;
            /* Its leftovers were stopped by its guard before it exited. */
            zka_child_close(&sv->child);
            sv->pidfd = -1;
            sv->st = IDLE;
            return 0;
        }
        if (sv->quit || !sv->want || !str_eq(sv->want_token, sv->run_token)) {
            zka_log(ZKC_LOG_INFO, "supervise: stopping %s (pid %d): %s", sv->cfg.args[0],
                    (int)sv->pid,
                    sv->quit || !sv->want ? "condition no longer holds" : "new fencing token");
            sv->stopped_by_us = true;
            zka_child_stop(&sv->child); /* its guard: TERM to all, KILL after the grace */
            sv->st = STOPPING;
            sv->kill_at = now + sv->cfg.stop_grace_ms + 200;
            sv->restart_at = 0;
            return 0;
        }
        return sv->pidfd >= 0 ? -1 : 20;
    case STOPPING:
    case KILLING:
        if (!group_alive(sv)) {
            if (sv->stopped_by_us)
                *report = true;
            zka_child_close(&sv->child);
            sv->pidfd = -1;
            sv->st = IDLE;
            zka_log(ZKC_LOG_DEBUG, "supervise: the app's tree (guard %d) is gone",
                    (int)sv->child.pid);
            return 0;
        }
        if (sv->st == STOPPING && now >= sv->kill_at) {
            zka_log(ZKC_LOG_WARN,
                    "supervise: %s (guard %d) still running %d ms after SIGTERM, "
                    "sending SIGKILL to all its processes",
                    sv->cfg.args[0], (int)sv->child.pid, sv->cfg.stop_grace_ms);
            zka_child_kill(&sv->child);
            sv->st = KILLING;
            sv->kill_at = now + 1000;
            return 0;
        }
        if (sv->st == KILLING && now >= sv->kill_at) {
            /* The guard does not answer: kill it; the app dies with it
             * (parent-death signal) and leftovers come to the agent. */
            kill(sv->child.pid, SIGKILL);
            sv->kill_at = now + 60000;
        }
        if (sv->pidfd >= 0)
            return (int)(sv->kill_at - now > 0 ? sv->kill_at - now : 1);
        return 10;
    }
    return -1;
}

static void *worker(void *arg)
{
    zka_supervise *sv = arg;
    sigset_t all;

    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&sv->mu);
    for (;;) {
        bool report = false;
        enum sv_state before = sv->st;
        pid_t pid = sv->pid;
        int timeout = step(sv, &report);
        struct pollfd p[2];

        if (sv->st != before)
            pthread_cond_broadcast(&sv->changed);
        if (report && sv->fn) {
            int ws = sv->wstatus;
            bool by_us = sv->stopped_by_us;
            /* Report once: the RUNNING->STOPPING step for a self-exit,
             * the ->IDLE step for a stop we asked for. */
            pthread_mutex_unlock(&sv->mu);
            sv->fn(pid, ws, by_us, sv->user_data);
            pthread_mutex_lock(&sv->mu);
        }
        if (sv->quit && sv->st == IDLE)
            break;
        if (timeout == 0)
            continue;
        p[0].fd = sv->wake[0];
        p[0].events = POLLIN;
        p[1].fd = sv->st != IDLE ? sv->pidfd : -1;
        p[1].events = POLLIN;
        pthread_mutex_unlock(&sv->mu);
        (void)poll(p, 2, timeout);
        if (p[0].revents) {
            char buf[64];
            while (read(sv->wake[0], buf, sizeof(buf)) > 0) {
            }
        }
        pthread_mutex_lock(&sv->mu);
    }
    pthread_cond_broadcast(&sv->changed);
    pthread_mutex_unlock(&sv->mu);
    return NULL;
}

int zka_supervise_new(zka_supervise **out, const zka_supervise_cfg *cfg, char *const *extra_env,
                      zka_supervise_exit_fn fn, void *user_data)
{
    zka_supervise *sv;
    int rc = ZKC_ENOMEM;

    if (!cfg->enabled || !cfg->args || !cfg->args[0])
        return ZKC_EINVAL;
    if (!(sv = calloc(1, sizeof(*sv))))
        return ZKC_ENOMEM;
    sv->cfg = *cfg;
    sv->cfg.args = strv_copy(cfg->args);
    sv->cfg.env = strv_copy(cfg->env);
    sv->cfg.lock = NULL;
    sv->extra_env = strv_copy(extra_env);
    sv->fn = fn;
    sv->user_data = user_data;
    sv->pidfd = -1;
    if (!sv->cfg.args || (cfg->env && !sv->cfg.env) || (extra_env && !sv->extra_env))
        goto fail;
    /* See supervise.h: orphaned grandchildren must come back to us so the
     * group can be seen empty. Harmless if already set. */
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    rc = ZKC_ESYS;
    if (pipe2(sv->wake, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail;
    if (pthread_mutex_init(&sv->mu, NULL) != 0)
        goto fail_mu;
    if (agent_cond_init(&sv->changed) != 0)
        goto fail_cond;
    if (pthread_create(&sv->th, NULL, worker, sv) != 0)
        goto fail_thread;
    *out = sv;
    return 0;

fail_thread:
    pthread_cond_destroy(&sv->changed);
fail_cond:
    pthread_mutex_destroy(&sv->mu);
fail_mu:
    close(sv->wake[0]);
    close(sv->wake[1]);
fail:
    zka_proc_free_strv(sv->cfg.args);
    zka_proc_free_strv(sv->cfg.env);
    zka_proc_free_strv(sv->extra_env);
    free(sv);
    return rc;
}

void zka_supervise_want(zka_supervise *sv, bool should_run, const char *fencing_token)
{
    char *tok = fencing_token ? strdup(fencing_token) : NULL;

    pthread_mutex_lock(&sv->mu);
    if (!should_run) {
        sv->blocked = false;
        sv->exited_self = false; /* the next start is a new term's, not a restart */
        sv->restart_at = 0;
    } else if (!sv->want) {
        sv->restart_at = 0; /* a new term starts at once, no restart delay */
    }
    sv->want = should_run;
    free(sv->want_token);
    sv->want_token = tok;
    pthread_mutex_unlock(&sv->mu);
    wake(sv);
}

int zka_supervise_stop_sync(zka_supervise *sv, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    zka_supervise_want(sv, false, NULL);
    if (timeout_ms >= 0)
        agent_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&sv->mu);
    while (sv->st != IDLE && rc == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&sv->changed, &sv->mu);
        else if (pthread_cond_timedwait(&sv->changed, &sv->mu, &ts) == ETIMEDOUT)
            rc = sv->st == IDLE ? 0 : ZKC_ETIMEDOUT;
    }
    pthread_mutex_unlock(&sv->mu);
    return rc;
}

pid_t zka_supervise_pid(zka_supervise *sv)
{
    pid_t p;

    pthread_mutex_lock(&sv->mu);
    p = sv->st == RUNNING ? sv->pid : 0;
    pthread_mutex_unlock(&sv->mu);
    return p;
}

void zka_supervise_free(zka_supervise *sv)
{
    if (!sv)
        return;
    pthread_mutex_lock(&sv->mu);
    sv->quit = true;
    pthread_mutex_unlock(&sv->mu);
    wake(sv);
    pthread_join(sv->th, NULL);
    close(sv->wake[0]);
    close(sv->wake[1]);
    pthread_cond_destroy(&sv->changed);
    pthread_mutex_destroy(&sv->mu);
    zka_proc_free_strv(sv->cfg.args);
    zka_proc_free_strv(sv->cfg.env);
    zka_proc_free_strv(sv->extra_env);
    free(sv->want_token);
    free(sv->run_token);
    free(sv);
}
