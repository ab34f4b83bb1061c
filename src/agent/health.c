/* Health checking (see health.h). The checker thread sleeps in poll(2) on a
 * self-pipe, so zka_health_free() interrupts both the wait between checks
 * and a check in progress. */
#include "health.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "proc.h"

struct zka_health {
    zka_health_cfg cfg; /* args and tcp_host deep-copied */
    zka_health_fn fn;
    void *user_data;
    pthread_mutex_t mu;
    zka_health_state state;
    int wake[2];
    bool stop;
    bool threaded;
    pthread_t th;
};

const char *zka_health_state_name(zka_health_state s)
{
    switch (s) {
    case ZKA_HEALTH_HEALTHY:
        return "healthy";
    case ZKA_HEALTH_UNHEALTHY:
        return "unhealthy";
    case ZKA_HEALTH_UNKNOWN:
        break;
    }
    return "unknown";
}

static bool stopping(zka_health *h)
{
    bool s;

    pthread_mutex_lock(&h->mu);
    s = h->stop;
    pthread_mutex_unlock(&h->mu);
    return s;
}

/* Wait until fd (or fd2, may be -1) is ready for `events`, the deadline
 * passes (0) or stop is asked (-1). Returns 1 when ready. */
static int wait_fds(zka_health *h, int fd, int fd2, short events, long long deadline)
{
    struct pollfd p[3];
    long long now;

    for (;;) {
        now = zka_now_ms();
        if (now >= deadline)
            return 0;
        p[0].fd = h->wake[0];
        p[0].events = POLLIN;
        p[1].fd = fd;
        p[1].events = events;
        p[2].fd = fd2;
        p[2].events = events;
        p[0].revents = p[1].revents = p[2].revents = 0;
        if (poll(p, 3, (int)(deadline - now)) < 0 && errno != EINTR)
            return 0;
        if (p[0].revents)
            return -1;
        if (p[1].revents || p[2].revents)
            return 1;
    }
}

static int wait_fd(zka_health *h, int fd, short events, long long deadline)
{
    return wait_fds(h, fd, -1, events, deadline);
}

/* Run the command; 1 = pass, 0 = fail (reason set), -1 = stopping. */
static int check_args(zka_health *h, char *reason, size_t rlen)
{
    long long deadline = zka_now_ms() + h->cfg.timeout_ms;
    char *path = NULL, **envp = NULL;
    char out[200];
    size_t outn = 0;
    int p[2] = {-1, -1}, pidfd, outfd, st = 0, rc = 0, w, eno = 0;
    zka_child c;
    zka_spawn_opts so;

    if (!(path = zka_proc_resolve(h->cfg.args[0]))) {
        snprintf(reason, rlen, "cannot run %s: %s", h->cfg.args[0], strerror(errno));
        return 0;
    }
    if (!(envp = zka_proc_env(NULL, 0)) || pipe2(p, O_CLOEXEC) < 0) {
        snprintf(reason, rlen, "cannot start check: %s", strerror(errno));
        goto out;
    }
    zka_spawn_opts_init(&so);
    so.out_fd = so.err_fd = p[1];
    so.grace_ms = 500;
    if (zka_child_spawn(&c, path, h->cfg.args, envp, &so) != 0) {
        snprintf(reason, rlen, "fork: %s", strerror(errno));
        close(p[1]);
        goto out;
    }
    close(p[1]);
    pidfd = c.pidfd;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    outfd = p[0];
    for (;;) {
        if (zka_child_done(&c, false, &st, &eno))
            break;
        /* Keep the first bytes of output for the log; drain the rest so the
         * check never blocks on a full pipe. */
        while (outfd >= 0) {
            char buf[512];
            ssize_t n = read(outfd, buf, sizeof(buf));
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                outfd = -1; /* EOF: stop polling it (p[0] is closed below) */
            if (n <= 0)
                break;
            if (outn < sizeof(out) - 1) {
                size_t k = (size_t)n < sizeof(out) - 1 - outn ? (size_t)n : sizeof(out) - 1 - outn;
                memcpy(out + outn, buf, k);
                outn += k;
            }
        }
        /* Also wake for output, so a chatty check never blocks on a full
         * pipe until its timeout. */
        w = wait_fds(h, pidfd, outfd, POLLIN,
                     pidfd >= 0 ? deadline
                                : (zka_now_ms() + 10 < deadline ? zka_now_ms() + 10 : deadline));
        if (w < 0 || zka_now_ms() >= deadline) {
            zka_child_kill(&c);
            (void)zka_child_done(&c, true, &st, &eno);
            if (w < 0)
                rc = -1;
            else
                snprintf(reason, rlen, "timed out after %d ms", h->cfg.timeout_ms);
            goto reaped;
        }
    }
    if (eno) {
        snprintf(reason, rlen, "cannot execute %s: %s", path, strerror(eno));
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        rc = 1;
    } else {
        char how[96];
        size_t i;
        zka_proc_status_str(st, how, sizeof(how));
        out[outn] = '\0';
        for (i = 0; i < outn; i++)
            if (out[i] == '\n' || out[i] == '\r')
                out[i] = ' ';
        if (snprintf(reason, rlen, "%s%s%s", how, outn ? ": " : "", out) >= (int)rlen)
            reason[rlen - 1] = '\0'; /* cut: the head is what matters */
    }
reaped:
    zka_child_close(&c);
out:
    if (p[0] >= 0)
        close(p[0]);
    free(path);
    zka_proc_free_strv(envp);
    return rc;
}

static int check_tcp(zka_health *h, char *reason, size_t rlen)
{
    long long deadline = zka_now_ms() + h->cfg.timeout_ms;
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int rc = 0, err, w;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", h->cfg.tcp_port);
    /* getaddrinfo has no timeout: use a literal address or /etc/hosts name
     * when DNS might be slow. */
    err = getaddrinfo(h->cfg.tcp_host, port, &hints, &res);
    if (err) {
        snprintf(reason, rlen, "cannot resolve %s: %s", h->cfg.tcp_host, gai_strerror(err));
        return 0;
    }
    snprintf(reason, rlen, "connect to %s:%d failed", h->cfg.tcp_host, h->cfg.tcp_port);
    for (ai = res; ai && rc == 0; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        socklen_t sl = sizeof(err);

        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            rc = 1;
        } else if (errno == EINPROGRESS) {
            w = wait_fd(h, fd, POLLOUT, deadline);
            if (w < 0) {
                rc = -1;
            } else if (w == 0) {
                snprintf(reason, rlen, "connect to %s:%d timed out after %d ms", h->cfg.tcp_host,
                         h->cfg.tcp_port, h->cfg.timeout_ms);
            } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == 0 && err == 0) {
                rc = 1;
            } else {
                snprintf(reason, rlen, "connect to %s:%d: %s", h->cfg.tcp_host, h->cfg.tcp_port,
                         strerror(err));
            }
        } else {
            snprintf(reason, rlen, "connect to %s:%d: %s", h->cfg.tcp_host, h->cfg.tcp_port,
                     strerror(errno));
        }
        close(fd);
        if (zka_now_ms() >= deadline)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

static void *checker(void *arg)
{
    zka_health *h = arg;
    int passes = 0, fails = 0;
    sigset_t all;

    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    while (!stopping(h)) {
        long long start = zka_now_ms(), t0 = zka_metrics_now_us();
        char reason[256] = "", why[320];
        zka_health_state old, nst;
        int ok;

        ok = h->cfg.kind == ZKA_HEALTH_TCP ? check_tcp(h, reason, sizeof(reason))
                                           : check_args(h, reason, sizeof(reason));
        if (ok < 0)
            break;
        zka_metrics_health_check(ok != 0, zka_metrics_now_us() - t0);
        if (ok) {
            passes++;
            fails = 0;
        } else {
            fails++;
            passes = 0;
            zka_log(ZKC_LOG_DEBUG, "health check failed (%d in a row): %s", fails, reason);
        }
        pthread_mutex_lock(&h->mu);
        old = nst = h->state;
        if (ok && passes >= h->cfg.rise && old != ZKA_HEALTH_HEALTHY)
            nst = ZKA_HEALTH_HEALTHY;
        else if (!ok && fails >= h->cfg.fall && old != ZKA_HEALTH_UNHEALTHY)
            nst = ZKA_HEALTH_UNHEALTHY;
        h->state = nst;
        pthread_mutex_unlock(&h->mu);
        if (nst != old) {
            if (ok)
                snprintf(why, sizeof(why), "%d consecutive passes", passes);
            else
                snprintf(why, sizeof(why), "%d consecutive failures: %s", fails, reason);
            zka_log(ok ? ZKC_LOG_INFO : ZKC_LOG_WARN, "health: %s -> %s (%s)",
                    zka_health_state_name(old), zka_health_state_name(nst), why);
            if (h->fn)
                h->fn(nst, why, h->user_data);
        }
        if (wait_fd(h, -1, 0, start + h->cfg.interval_ms) < 0)
            break;
    }
    return NULL;
}

int zka_health_new(zka_health **out, const zka_health_cfg *cfg, zka_health_fn fn, void *user_data)
{
    zka_health *h = calloc(1, sizeof(*h));
    size_t n = 0, i;
    int rc = ZKC_ENOMEM;

    if (!h)
        return ZKC_ENOMEM;
    h->cfg = *cfg;
    h->cfg.args = NULL;
    h->cfg.tcp_host = NULL;
    h->fn = fn;
    h->user_data = user_data;
    h->wake[0] = h->wake[1] = -1;
    if (cfg->args) {
        while (cfg->args[n])
            n++;
        if (!(h->cfg.args = calloc(n + 1, sizeof(char *))))
            goto fail;
        for (i = 0; i < n; i++)
            if (!(h->cfg.args[i] = strdup(cfg->args[i])))
                goto fail;
    }
    if (cfg->tcp_host && !(h->cfg.tcp_host = strdup(cfg->tcp_host)))
        goto fail;
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        rc = ZKC_ESYS;
        goto fail;
    }
    if (cfg->kind == ZKA_HEALTH_NONE) {
        h->state = ZKA_HEALTH_HEALTHY;
        *out = h;
        return 0;
    }
    rc = ZKC_ESYS;
    if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail_mu;
    if (pthread_create(&h->th, NULL, checker, h) != 0)
        goto fail_pipe;
    h->threaded = true;
    *out = h;
    return 0;

fail_pipe:
    close(h->wake[0]);
    close(h->wake[1]);
fail_mu:
    pthread_mutex_destroy(&h->mu);
fail:
    zka_proc_free_strv(h->cfg.args);
    free(h->cfg.tcp_host);
    free(h);
    return rc;
}

zka_health_state zka_health_get(zka_health *h)
{
    zka_health_state s;

    pthread_mutex_lock(&h->mu);
    s = h->state;
    pthread_mutex_unlock(&h->mu);
    return s;
}

void zka_health_free(zka_health *h)
{
    char b = 1;

    if (!h)
        return;
    if (h->threaded) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_mutex_unlock(&h->mu);
        if (write(h->wake[1], &b, 1) < 0) {
            /* non-blocking pipe already full: the thread is waking anyway */
        }
        pthread_join(h->th, NULL);
        close(h->wake[0]);
        close(h->wake[1]);
    }
    pthread_mutex_destroy(&h->mu);
    zka_proc_free_strv(h->cfg.args);
    free(h->cfg.tcp_host);
    free(h);
}
