/* Process helpers (see proc.h). */
#include "proc.h"

#include <errno.h>
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

/* Only async-signal-safe calls between fork and execve: the agent is
 * multi-threaded and another thread may hold malloc's or stdio's lock. */
static void child_setup_and_exec(const char *path, char *const argv[], char *const envp[],
                                 int in_fd, int out_fd, int err_fd)
{
    sigset_t none;
    int sig, devnull = -1;

    setpgid(0, 0);
    sigemptyset(&none);
    for (sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0)
        devnull = open("/dev/null", O_RDWR);
    /* Move the sources above 2 first so one dup2 cannot clobber another. */
    if (in_fd < 0)
        in_fd = devnull;
    if (out_fd < 0)
        out_fd = devnull;
    if (err_fd < 0)
        err_fd = devnull;
    if (in_fd >= 0 && in_fd < 3)
        in_fd = fcntl(in_fd, F_DUPFD, 3);
    if (out_fd >= 0 && out_fd < 3)
        out_fd = fcntl(out_fd, F_DUPFD, 3);
    if (err_fd >= 0 && err_fd < 3)
        err_fd = fcntl(err_fd, F_DUPFD, 3);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(127);
#ifdef SYS_close_range
    /* Keep the ZooKeeper socket and every other descriptor of the agent out
     * of handlers and the supervised app. */
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
    {
        int fd;
        for (fd = 3; fd < 1024; fd++)
            close(fd);
    }
    execve(path, argv, envp);
    _exit(127);
}

pid_t zka_proc_spawn(const char *path, char *const argv[], char *const envp[], int in_fd,
                     int out_fd, int err_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();

    if (pid == 0) {
        /* If the agent dies without cleaning up (SIGKILL, OOM), its
         * children must not outlive it: a supervised app left running by a
         * dead leader is two leaders' apps at once. */
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127); /* the agent died before the line above */
        child_setup_and_exec(path, argv, envp, in_fd, out_fd, err_fd);
    }
    if (pid > 0) {
        /* Both sides set the group (the classic shell idiom), so kill(-pid)
         * works as soon as fork returns, whichever runs first. */
        (void)setpgid(pid, pid);
    }
    return pid;
}

int zka_proc_pidfd(pid_t pid)
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

void zka_proc_reap_group(pid_t pgid)
{
    int st;

    while (waitpid(-pgid, &st, WNOHANG) > 0) {
    }
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
