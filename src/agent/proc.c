/* Process helpers (see proc.h). */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

long long zka_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *zka_proc_resolve(const char *file)
{
    const char *path, *p, *e;
    char *buf;
    size_t flen;
    int saw_eacces = 0;

    if (!file || !*file) {
        errno = ENOENT;
        return NULL;
    }
    if (strchr(file, '/'))
        return strdup(file);
    path = getenv("PATH");
    if (!path || !*path)
        path = "/bin:/usr/bin";
    flen = strlen(file);
    buf = malloc(strlen(path) + flen + 2);
    if (!buf)
        return NULL;
    for (p = path;; p = e + 1) {
        struct stat st;
        size_t dlen;

        e = strchr(p, ':');
        if (!e)
            e = p + strlen(p);
        dlen = (size_t)(e - p);
        if (dlen == 0) {
            memcpy(buf, file, flen + 1); /* empty entry = current directory */
        } else {
            memcpy(buf, p, dlen);
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, file, flen + 1);
        }
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(buf, X_OK) == 0)
                return buf;
            saw_eacces = 1;
        }
        if (!*e)
            break;
    }
    free(buf);
    errno = saw_eacces ? EACCES : ENOENT;
    return NULL;
}

static int name_in(const char *var, char *const *extra, size_t n)
{
    const char *eq = strchr(var, '=');
    size_t len = eq ? (size_t)(eq - var) : strlen(var);
    size_t i;

    for (i = 0; i < n; i++)
        if (strncmp(extra[i], var, len) == 0 && extra[i][len] == '=')
            return 1;
    return 0;
}

char **zka_proc_env(char *const *extra, size_t n)
{
    size_t ne = 0, i, k = 0;
    char **v;

    while (environ && environ[ne])
        ne++;
    v = calloc(ne + n + 1, sizeof(*v));
    if (!v)
        return NULL;
    for (i = 0; i < ne; i++) {
        if (name_in(environ[i], extra, n))
            continue;
        if (!(v[k++] = strdup(environ[i])))
            goto fail;
    }
    for (i = 0; i < n; i++)
        if (!(v[k++] = strdup(extra[i])))
            goto fail;
    return v;
fail:
    zka_proc_free_strv(v);
    return NULL;
}

void zka_proc_free_strv(char **v)
{
    size_t i;

    if (!v)
        return;
    for (i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

/* ------------------------------------------------------------ the guard
 *
 * Everything from here to zka_child_spawn runs in a child forked from a
 * multi-threaded process: only async-signal-safe calls (raw syscalls, no
 * malloc, no stdio, no locks). Static buffers are the guard's own copies. */

#define REPORT_MAGIC  0x7a6b6372 /* "zkcr": the command's tree is gone */
#define STARTED_MAGIC 0x7a6b6373 /* "zkcs": the command was forked */
#define MAX_SCAN      32768

struct report {
    int magic;
    int app_pid;
    int exec_errno;
    int wstatus;
};

static pid_t scan_pid[MAX_SCAN], scan_ppid[MAX_SCAN];

static int parse_int(const char *s, const char *end, long *out)
{
    long v = 0;

    if (s >= end || *s < '0' || *s > '9')
        return -1;
    while (s < end && *s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    *out = v;
    return 0;
}

/* The parent pid of `pid` from /proc/<pid>/stat, or -1. */
static pid_t read_ppid(const char *name)
{
    char path[64], buf[512], *p;
    size_t i = 0, k;
    ssize_t n;
    long v;
    int fd;

    memcpy(path, "/proc/", 6);
    i = 6;
    for (k = 0; name[k] && i < sizeof(path) - 6; k++)
        path[i++] = name[k];
    memcpy(path + i, "/stat", 6);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold anything, so the last ')'. */
    for (p = buf + n; p > buf && *p != ')'; p--) {
    }
    if (*p != ')' || p + 4 >= buf + n)
        return -1;
    p += 4; /* ") S " */
    if (parse_int(p, buf + n, &v) != 0)
        return -1;
    return (pid_t)v;
}

/* Read every process and its parent into scan_pid/scan_ppid. */
static size_t scan_procs(void)
{
    char dents[4096];
    size_t n = 0;
    long got;
    int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    while ((got = syscall(SYS_getdents64, fd, dents, sizeof(dents))) > 0) {
        long off = 0;
        while (off < got) {
            struct {
                unsigned long long ino;
                long long off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(dents + off);
            long v;
            if (parse_int(d->name, d->name + 16, &v) == 0 && n < MAX_SCAN) {
                pid_t pp = read_ppid(d->name);
                if (pp > 0) {
                    scan_pid[n] = (pid_t)v;
                    scan_ppid[n] = pp;
                    n++;
                }
            }
            off += d->reclen;
        }
    }
    close(fd);
    return n;
}

/* Signal every descendant of this process; the number found. Being a
 * subreaper, every process the command ever started and that is still
 * alive is a descendant, whatever session or group it moved to. */
static int signal_tree(int sig)
{
    size_t n = scan_procs(), i;
    int found = 0, grew = 1;
    pid_t me = getpid();

    /* Mark descendants by turning their ppid into `me`: iterate until no
     * new one is found (n is small; this is O(n * depth)). */
    while (grew) {
        grew = 0;
        for (i = 0; i < n; i++) {
            size_t j;
            if (scan_ppid[i] == me || scan_ppid[i] == 0)
                continue;
            for (j = 0; j < n; j++)
                if (scan_pid[j] == scan_ppid[i] && scan_ppid[j] == me) {
                    scan_ppid[i] = me;
                    grew = 1;
                    break;
                }
        }
    }
    for (i = 0; i < n; i++)
        if (scan_ppid[i] == me && scan_pid[i] != me) {
            kill(scan_pid[i], sig);
            found++;
        }
    return found;
}

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Move `fd` to a descriptor >= 10 (so placing 0..3 cannot clobber it). */
static int lift(int fd)
{
    return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

static void exec_command(const char *path, char *const argv[], char *const envp[], int err_fd)
{
    sigset_t none;
    int sig;

    (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* the guard died: so does the command */
    for (sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(path, argv, envp);
    sig = errno;
    if (write(err_fd, &sig, sizeof(sig)) < 0) {
        /* the guard then reports exit 127 without an errno */
    }
    _exit(127);
}

static void guard_main(pid_t agent, const char *path, char *const argv[], char *const envp[],
                       const zka_spawn_opts *o, int report_fd)
{
    int in = lift(o->in_fd), out = lift(o->out_fd), err = lift(o->err_fd), fd3 = lift(o->fd3);
    int rep = lift(report_fd), ep[2], devnull, exec_errno = 0, app_status = 0, stopping = 0;
    int killing = 0, app_done = 0;
    long long kill_at = 0;
    sigset_t all;
    pid_t app, me;
    struct report r;

    /* The agent thread that started us is gone (also SIGKILL of the
     * agent): SIGHUP, taken below as "stop everything". */
    (void)prctl(PR_SET_PDEATHSIG, SIGHUP);
    if (getppid() != agent)
        _exit(127);
    setpgid(0, 0);
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (rep < 0 || devnull < 0)
        _exit(127);
    /* The command's descriptors: 0, 1, 2 (and 3); nothing else of the
     * agent's survives (the ZooKeeper socket above all). */
    if (dup2(in >= 0 ? in : devnull, 0) < 0 || dup2(out >= 0 ? out : devnull, 1) < 0 ||
        dup2(err >= 0 ? err : devnull, 2) < 0 || (fd3 >= 0 && dup2(fd3, 3) < 0))
        _exit(127);
    rep = fcntl(rep, F_DUPFD_CLOEXEC, 4);
#ifdef SYS_close_range
    if (rep < 0 || syscall(SYS_close_range, (unsigned)rep + 1, ~0U, 0U) != 0)
#endif
    {
        int fd;
        for (fd = rep + 1; fd < 1024; fd++)
            close(fd);
    }
    for (devnull = fd3 >= 0 ? 4 : 3; devnull < rep; devnull++)
        close(devnull);
    if (pipe2(ep, O_CLOEXEC) != 0)
        _exit(127);
    me = getpid();
    app = fork();
    if (app < 0)
        _exit(127);
    if (app == 0) {
        if (getppid() != me)
            _exit(127);
        exec_command(path, argv, envp, ep[1]);
    }
    close(ep[1]);
    memset(&r, 0, sizeof(r));
    r.magic = STARTED_MAGIC;
    r.app_pid = app;
    if (write(rep, &r, sizeof(r)) < 0) {
        /* the agent then knows the guard only */
    }
    if (read(ep[0], &exec_errno, sizeof(exec_errno)) != (ssize_t)sizeof(exec_errno))
        exec_errno = 0; /* EOF: execve succeeded */
    close(ep[0]);
    /* The guard keeps none of the command's descriptors: EOF on its output
     * comes when the tree is gone. */
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    if (fd3 >= 0)
        dup2(devnull, 3);
    close(devnull);

    for (;;) {
        siginfo_t si;
        struct timespec ts = {1, 0};
        long long now, wait_ms = 1000;
        pid_t p;
        int st, sig, none_left = 0;

        for (;;) {
            p = waitpid(-1, &st, WNOHANG);
            if (p == app) {
                app_done = 1;
                app_status = st;
            } else if (p < 0 && errno == ECHILD) {
                none_left = 1;
                break;
            } else if (p <= 0) {
                break;
            }
        }
        if (app_done && none_left)
            break;
        now = mono_ms();
        if (app_done && !stopping) {
            /* The command is done; what it left running is stopped. */
            stopping = 1;
            kill_at = now + o->grace_ms;
            signal_tree(SIGTERM);
        }
        if (stopping && !killing && now >= kill_at) {
            killing = 1;
        }
        if (killing)
            signal_tree(SIGKILL); /* again each round: a fork may race the walk */
        if (killing)
            wait_ms = 20;
        else if (stopping && kill_at - now < wait_ms)
            wait_ms = kill_at - now > 0 ? kill_at - now : 1;
        ts.tv_sec = (time_t)(wait_ms / 1000);
        ts.tv_nsec = (long)(wait_ms % 1000) * 1000000L;
        sig = sigtimedwait(&all, &si, &ts);
        if ((sig == SIGTERM || sig == SIGHUP || sig == SIGINT) && !stopping) {
            stopping = 1;
            kill_at = mono_ms() + o->grace_ms;
            if (!app_done)
                kill(app, SIGTERM); /* first, before the walk of /proc */
            signal_tree(SIGTERM);
        } else if (sig == SIGUSR1) {
            killing = 1;
        }
    }
    r.magic = REPORT_MAGIC;
    r.app_pid = app;
    r.exec_errno = exec_errno;
    r.wstatus = app_status;
    if (write(rep, &r, sizeof(r)) < 0) {
        /* the agent then sees the guard's own status */
    }
    _exit(0);
}

/* Guards started by this process and not yet reaped: the adopted-orphan
 * reaper must leave them alone. Its mutex is held across fork so a guard is
 * never seen unregistered. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t *reg;
static size_t reg_n, reg_cap;

static void reg_add(pid_t p)
{
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 16;
        pid_t *nr = realloc(reg, cap * sizeof(*nr));
        if (!nr)
            return;
        reg = nr;
        reg_cap = cap;
    }
    reg[reg_n++] = p;
}

static void reg_del(pid_t p)
{
    size_t i;

    pthread_mutex_lock(&reg_mu);
    for (i = 0; i < reg_n; i++)
        if (reg[i] == p) {
            reg[i] = reg[--reg_n];
            break;
        }
    pthread_mutex_unlock(&reg_mu);
}

void zka_spawn_opts_init(zka_spawn_opts *o)
{
    o->in_fd = o->out_fd = o->err_fd = o->fd3 = -1;
    o->grace_ms = 2000;
}

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);

    if (fd >= 0) {
        (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
        return (int)fd;
    }
#else
    (void)pid;
#endif
    return -1;
}

int zka_child_spawn(zka_child *c, const char *path, char *const argv[], char *const envp[],
                    const zka_spawn_opts *o)
{
    zka_spawn_opts d;
    pid_t agent = getpid(), pid;
    int rp[2], e;

    if (!o) {
        zka_spawn_opts_init(&d);
        o = &d;
    } else if (o->grace_ms <= 0) {
        d = *o;
        d.grace_ms = 2000;
        o = &d;
    }
    if (pipe2(rp, O_CLOEXEC) != 0)
        return -1;
    pthread_mutex_lock(&reg_mu);
    pid = fork();
    if (pid == 0) {
        close(rp[0]);
        guard_main(agent, path, argv, envp, o, rp[1]);
        _exit(127);
    }
    e = errno;
    if (pid > 0) {
        reg_add(pid);
        (void)setpgid(pid, pid);
    }
    pthread_mutex_unlock(&reg_mu);
    close(rp[1]);
    if (pid < 0) {
        close(rp[0]);
        errno = e;
        return -1;
    }
    /* The guard says at once which pid the command has (for logs and
     * USR1); EOF if it failed before. */
    c->app_pid = pid;
    {
        struct report r;
        ssize_t n;
        do
            n = read(rp[0], &r, sizeof(r));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(r) && r.magic == STARTED_MAGIC)
            c->app_pid = r.app_pid;
    }
    fcntl(rp[0], F_SETFL, O_NONBLOCK);
    c->pid = pid;
    c->report_fd = rp[0];
    c->pidfd = pidfd_of(pid);
    c->reaped = false;
    return 0;
}

void zka_child_stop(zka_child *c)
{
    if (!c->reaped)
        kill(c->pid, SIGTERM);
}

void zka_child_kill(zka_child *c)
{
    if (!c->reaped)
        kill(c->pid, SIGUSR1);
}

int zka_child_done(zka_child *c, bool wait, int *wstatus, int *exec_errno)
{
    struct report r;
    int st = 0;
    pid_t p;

    *exec_errno = 0;
    if (!c->reaped) {
        do
            p = waitpid(c->pid, &st, wait ? 0 : WNOHANG);
        while (p < 0 && errno == EINTR);
        if (p == 0)
            return 0;
        c->reaped = true;
        reg_del(c->pid);
        if (p < 0)
            st = 0; /* ECHILD: someone else reaped it; nothing to report */
        if (read(c->report_fd, &r, sizeof(r)) == (ssize_t)sizeof(r) && r.magic == REPORT_MAGIC) {
            st = r.wstatus;
            *exec_errno = r.exec_errno;
        }
        *wstatus = st;
    }
    return 1;
}

void zka_child_close(zka_child *c)
{
    if (c->pidfd >= 0)
        close(c->pidfd);
    if (c->report_fd >= 0)
        close(c->report_fd);
    c->pidfd = c->report_fd = -1;
}

void zka_proc_reap_adopted(void)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    pid_t me = getpid();

    if (!d)
        return;
    pthread_mutex_lock(&reg_mu);
    while ((de = readdir(d)) != NULL) {
        long v;
        size_t i;
        int st, mine = 0;
        if (parse_int(de->d_name, de->d_name + strlen(de->d_name), &v) != 0)
            continue;
        if (read_ppid(de->d_name) != me)
            continue;
        for (i = 0; i < reg_n; i++)
            if (reg[i] == (pid_t)v)
                mine = 1;
        if (mine)
            continue;
        /* A leftover whose guard is gone: it must not outlive its grace. */
        kill((pid_t)v, SIGKILL);
        (void)waitpid((pid_t)v, &st, WNOHANG); /* or at the next SIGCHLD */
    }
    pthread_mutex_unlock(&reg_mu);
    closedir(d);
}

void zka_proc_status_str(int wstatus, char *buf, size_t len)
{
    if (WIFEXITED(wstatus))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(wstatus),
                 strsignal(WTERMSIG(wstatus)));
    else
        snprintf(buf, len, "wait status 0x%x", wstatus);
}
