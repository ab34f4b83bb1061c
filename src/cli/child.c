/* Running CMD for `lock` and `elect`: a child in its own process group,
 * signals turned into wake-ups of the main thread through a self-pipe, and
 * the TERM-then-KILL sequence used when the lock or leadership is lost. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

static int wake_fd[2] = {-1, -1};
static volatile sig_atomic_t pending_sig;

static void on_signal(int sig)
{
    int saved = errno;

    if (sig != SIGCHLD)
        pending_sig = sig;
    cli_wake();
    errno = saved;
}

static void sigset_of(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

int cli_sig_setup(void)
{
    struct sigaction sa;
    sigset_t set;
    int i;

    if (pipe(wake_fd) != 0)
        return -1;
    for (i = 0; i < 2; i++) {
        fcntl(wake_fd[i], F_SETFL, fcntl(wake_fd[i], F_GETFL) | O_NONBLOCK);
        fcntl(wake_fd[i], F_SETFD, FD_CLOEXEC);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* Blocked here so that the library's threads, created afterwards,
     * inherit the mask and only the main thread takes these signals. */
    sigset_of(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    return 0;
}

void cli_sig_unblock(void)
{
    sigset_t set;

    sigset_of(&set);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int cli_connect_with_signals(cli *c)
{
    int rc;

    if (cli_sig_setup() != 0) {
        cli_err(c, "cannot set up signals");
        return CLI_EXIT_ERROR;
    }
    rc = cli_connect(c);
    cli_sig_unblock();
    return rc;
}

void cli_wake(void)
{
    char b = 1;
    ssize_t n;

    if (wake_fd[1] >= 0)
        n = write(wake_fd[1], &b, 1); /* full pipe: a wake-up is pending anyway */
    (void)n;
}

int cli_wait(int timeout_ms)
{
    struct pollfd pfd;
    char buf[64];
    int sig;

    if (pending_sig == 0) {
        pfd.fd = wake_fd[0];
        pfd.events = POLLIN;
        pfd.revents = 0;
        poll(&pfd, 1, timeout_ms);
    }
    while (read(wake_fd[0], buf, sizeof(buf)) > 0)
        ;
    sig = pending_sig;
    pending_sig = 0;
    return sig;
}

/* environ with `extra` ("NAME=value") replacing variables of the same name.
 * Built before fork: the child of a threaded process should not allocate. */
static char **build_env(char **extra)
{
    size_t n = 0, k = 0, i, j;
    char **envp;

    while (environ[n])
        n++;
    while (extra && extra[k])
        k++;
    envp = calloc(n + k + 1, sizeof(char *));
    if (!envp)
        return NULL;
    for (i = 0, j = 0; i < n; i++) {
        size_t e, len = strcspn(environ[i], "=");
        int replaced = 0;

        for (e = 0; e < k; e++)
            if (strncmp(extra[e], environ[i], len) == 0 && extra[e][len] == '=')
                replaced = 1;
        if (!replaced)
            envp[j++] = environ[i];
    }
    for (i = 0; i < k; i++)
        envp[j++] = extra[i];
    return envp;
}

/* Close [lo, hi] in the child: close_range() (Linux 5.9), else one by one.
 * Async-signal-safe. */
static void close_span(unsigned lo, unsigned hi, unsigned top)
{
    unsigned fd;

    if (lo > hi)
        return;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, lo, hi, 0U) == 0)
        return;
#endif
    for (fd = lo; fd <= hi && fd <= top; fd++)
        close((int)fd);
}

/* Every descriptor but stdio and `keep` (the exec-error pipe, close-on-exec):
 * the ZooKeeper socket, the client's wake-up pipes and whatever zkcoordctl
 * inherited must not reach CMD, or CMD could speak on the lock's session.
 * `top` is the highest descriptor the fallback loop closes. */
static void close_all_but(int keep, unsigned top)
{
    if (keep < 3) {
        close_span(3, ~0U, top);
        return;
    }
    close_span(3, (unsigned)keep - 1, top);
    close_span((unsigned)keep + 1, ~0U, top);
}

/* The highest descriptor number that can be open, for the fallback. */
static unsigned fd_top(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 0)
        return rl.rlim_cur > 65536 ? 65535u : (unsigned)rl.rlim_cur - 1;
    return 65535u;
}

int cli_spawn(const cli *c, cli_child *ch, char **argv, char **env)
{
    int errpipe[2], err = 0;
    char **envp;
    sigset_t set;
    ssize_t n;
    pid_t pid, parent;
    unsigned top = fd_top();

    envp = build_env(env);
    if (!envp) {
        cli_err(c, "cannot run %s: out of memory", argv[0]);
        return CLI_EXIT_ERROR;
    }
    if (pipe(errpipe) != 0) {
        cli_err(c, "cannot run %s: pipe: %s", argv[0], strerror(errno));
        free(envp);
        return CLI_EXIT_ERROR;
    }
    fcntl(errpipe[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL);
    parent = getpid();
    pid = fork();
    if (pid < 0) {
        cli_err(c, "cannot run %s: fork: %s", argv[0], strerror(errno));
        free(envp);
        close(errpipe[0]);
        close(errpipe[1]);
        return CLI_EXIT_ERROR;
    }
    if (pid == 0) {
        close(errpipe[0]);
        /* Its own group, so TERM/KILL reach what CMD started too. */
        setpgid(0, 0);
        /* Should zkcoordctl itself die (SIGKILL), CMD must not go on
         * believing it holds the lock. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) /* died before prctl took effect */
            _exit(CLI_EXIT_LOST);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        sigset_of(&set);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        close_all_but(errpipe[1], top);
        execvpe(argv[0], argv, envp);
        err = errno;
        n = write(errpipe[1], &err, sizeof(err));
        (void)n;
        _exit(err == ENOENT ? 127 : 126);
    }
    /* Also from here, so that a TERM sent before the child ran setpgid()
     * still finds the group. */
    setpgid(pid, pid);
    free(envp);
    close(errpipe[1]);
    do {
        n = read(errpipe[0], &err, sizeof(err));
    } while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    ch->pid = pid;
    ch->exited = 0;
    ch->status = 0;
    if (n == (ssize_t)sizeof(err)) {
        cli_err(c, "cannot run %s: %s", argv[0], strerror(err));
        while (waitpid(pid, &ch->status, 0) < 0 && errno == EINTR)
            ;
        ch->exited = 1;
        return err == ENOENT ? 127 : 126;
    }
    return 0;
}

int cli_reap(cli_child *ch)
{
    pid_t r;

    if (ch->exited)
        return 1;
    if (ch->pid <= 0)
        return 0;
    r = waitpid(ch->pid, &ch->status, WNOHANG);
    if (r == ch->pid) {
        ch->exited = 1;
        return 1;
    }
    return 0;
}

void cli_forward(cli_child *ch, int sig)
{
    if (ch->pid > 0 && !ch->exited)
        kill(-ch->pid, sig);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_terminate(cli_child *ch, int kill_after_ms)
{
    int64_t deadline = mono_ms() + kill_after_ms;

    if (ch->pid <= 0)
        return;
    cli_forward(ch, SIGTERM);
    cli_forward(ch, SIGCONT); /* a stopped CMD would never see the TERM */
    while (!cli_reap(ch)) {
        int64_t left = deadline - mono_ms();

        if (left <= 0)
            break;
        cli_wait((int)left);
    }
    if (!ch->exited) {
        cli_forward(ch, SIGKILL);
        while (waitpid(ch->pid, &ch->status, 0) < 0 && errno == EINTR)
            ;
        ch->exited = 1;
    }
    /* Whatever CMD left running in its group works on a resource that is no
     * longer ours. ESRCH when the group is empty. */
    kill(-ch->pid, SIGKILL);
}

int cli_status_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return CLI_EXIT_ERROR;
}
