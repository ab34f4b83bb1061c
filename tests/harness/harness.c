/* Local ZooKeeper servers for tests: temp dirs, ports, JVMs, readiness. */
#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define JAR_DIR          "/usr/share/java"
#define MAX_SERVERS      9
#define START_ATTEMPTS   4 /* the first try and 3 retries on new ports */
#define START_TIMEOUT_MS 30000
#define POLL_MS          50
#define PROBE_MS         1000 /* one 4lw exchange while polling */
#define FOUR_LETTER_MS   5000
#define STOP_GRACE_MS    5000
#define LOG_TAIL_BYTES   3000

/* slf4j-simple rather than slf4j-nop: with nop a server that fails to bind
 * its port exits with status 1 and an empty log. At WARN the log stays small
 * and still says why. */
static const char *const jars[] = {
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
    "netty-handler.jar",
    "netty-transport.jar",
    "netty-common.jar",
    "netty-buffer.jar",
    "netty-resolver.jar",
    "netty-codec.jar",
    "netty-transport-native-epoll.jar",
    "netty-transport-native-unix-common.jar",
    "metrics-core.jar",
};

#define NJARS (sizeof(jars) / sizeof(jars[0]))

struct server {
    int client_port;
    int peer_port;
    int election_port;
    pid_t pid;  /* 0 when not running */
    int status; /* from waitpid() once reaped, -1 if unknown */
    int paused;
    char address[32];
    char dir[PATH_MAX]; /* zoo.cfg, server.log, data/ */
};

struct zkh_cluster {
    int n;
    zkh_opts opts;
    pid_t owner; /* only this process may signal the servers */
    char *java;
    char *classpath;
    char *tmpdir;
    char *connect;
    zkh_cluster *next; /* in the list the atexit handler walks */
    struct server servers[MAX_SERVERS];
};

enum ready_what { READY_UP, READY_SERVING };
enum probe_result { PROBE_NO, PROBE_YES, PROBE_TAKEN };
enum port_state { PORT_FREE, PORT_OURS, PORT_TAKEN };
enum wait_result { WAIT_OK, WAIT_EXITED, WAIT_TAKEN, WAIT_TIMEOUT };

static zkh_cluster *clusters;

static void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("zkh: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(long long deadline)
{
    long long left = deadline - now_ms();

    return left < 0 ? 0 : (int)left;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int valid_index(const zkh_cluster *c, int i)
{
    if (c == NULL || i < 0 || i >= c->n) {
        err("no server %d in this cluster", i);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ files */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        err("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        err("cannot remove %s: %s", dir, strerror(errno));
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        err("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    fputs(text, f);
    if (fclose(f) != 0) {
        err("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* A test run killed by a signal cannot remove its directory, and /dev/shm is
 * memory: remove those of processes that are gone. Only our own directories,
 * and only when kill() says ESRCH, so a concurrent run (or another user's) is
 * never touched. */
static void sweep_stale(const char *base)
{
    static int swept;
    DIR *d;
    struct dirent *e;

    if (swept)
        return;
    swept = 1;
    d = opendir(base);
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX], *end;
        struct stat st;
        long pid;

        if (strncmp(e->d_name, "zkh-", 4) != 0)
            continue;
        errno = 0;
        pid = strtol(e->d_name + 4, &end, 10);
        if (errno != 0 || end == e->d_name + 4 || *end != '-' || pid <= 0 || pid == getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", base, e->d_name) >= (int)sizeof(path))
            continue;
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
            continue;
        remove_tree(path);
    }
    closedir(d);
}

/* /dev/shm first: ZooKeeper syncs its log on every write, which on a disk
 * would make the tests measure the disk. */
static char *make_tmpdir(void)
{
    const char *bases[3];
    const char *tmpdir = getenv("TMPDIR");
    struct stat st;
    size_t nb = 0, k;

    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK | X_OK) == 0)
        bases[nb++] = "/dev/shm";
    if (tmpdir != NULL && tmpdir[0] != '\0')
        bases[nb++] = tmpdir;
    bases[nb++] = "/tmp";

    for (k = 0; k < nb; k++) {
        char tmpl[PATH_MAX];
        char *dir;

        if (snprintf(tmpl, sizeof(tmpl), "%s/zkh-%ld-XXXXXX", bases[k], (long)getpid()) >=
            (int)sizeof(tmpl))
            continue;
        sweep_stale(bases[k]);
        if (mkdtemp(tmpl) == NULL) {
            err("cannot create a directory in %s: %s", bases[k], strerror(errno));
            continue;
        }
        dir = strdup(tmpl);
        if (dir == NULL)
            rmdir(tmpl);
        return dir;
    }
    return NULL;
}

static void print_log_tail(const zkh_cluster *c, int i)
{
    char path[PATH_MAX + 16], buf[LOG_TAIL_BYTES + 1];
    const char *text = buf;
    struct stat st;
    ssize_t got;
    off_t from;
    int fd;

    snprintf(path, sizeof(path), "%s/server.log", c->servers[i].dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        err("no log %s: %s", path, strerror(errno));
        goto out;
    }
    if (st.st_size == 0) {
        err("server %d wrote nothing to its log", i);
        goto out;
    }
    from = st.st_size > LOG_TAIL_BYTES ? st.st_size - LOG_TAIL_BYTES : 0;
    do
        got = pread(fd, buf, LOG_TAIL_BYTES, from);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        goto out;
    buf[got] = '\0';
    if (from > 0 && strchr(buf, '\n') != NULL)
        text = strchr(buf, '\n') + 1; /* start on a whole line */
    fprintf(stderr, "zkh: ---- end of server %d's log (%s) ----\n%s", i, path, text);
    if (got > 0 && buf[got - 1] != '\n')
        fputc('\n', stderr);
    fprintf(stderr, "zkh: ----\n");
out:
    if (fd >= 0)
        close(fd);
}

/* ------------------------------------------------------------ java */

static int executable(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Resolved here rather than by execvp() in the child: between fork() and
 * exec() a threaded test may only make async-signal-safe calls. */
static char *find_java(void)
{
    const char *name = getenv("JAVA");
    const char *path = getenv("PATH");
    const char *p;

    if (name == NULL || name[0] == '\0')
        name = "java";
    if (strchr(name, '/') != NULL) {
        if (executable(name))
            return strdup(name);
        err("JAVA=%s is not an executable file", name);
        return NULL;
    }
    if (path == NULL)
        path = "/usr/bin:/bin";
    for (p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char cand[PATH_MAX];

        if (snprintf(cand, sizeof(cand), "%.*s/%s", (int)len, len > 0 ? p : ".", name) <
                (int)sizeof(cand) &&
            executable(cand))
            return strdup(cand);
        if (end == NULL)
            break;
        p = end;
    }
    err("cannot find %s on PATH (or set JAVA); install the Debian package zookeeper, which "
        "brings a Java runtime",
        name);
    return NULL;
}

static char *build_classpath(void)
{
    size_t len = 1, k;
    char *cp;

    for (k = 0; k < NJARS; k++) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s", JAR_DIR, jars[k]);
        if (access(path, R_OK) != 0) {
            err("%s: %s; install the Debian package zookeeper", path, strerror(errno));
            return NULL;
        }
        len += strlen(JAR_DIR) + strlen(jars[k]) + 2;
    }
    cp = malloc(len);
    if (cp == NULL)
        return NULL;
    cp[0] = '\0';
    for (k = 0; k < NJARS; k++) {
        strcat(cp, k > 0 ? ":" JAR_DIR "/" : JAR_DIR "/");
        strcat(cp, jars[k]);
    }
    return cp;
}

/* ------------------------------------------------------------ processes */

/* 1 when the server has exited (reaped, pid cleared), 0 while it runs. */
static int reap(struct server *s, int i)
{
    int st;
    pid_t r;

    if (s->pid == 0)
        return 1;
    do
        r = waitpid(s->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    s->status = r < 0 ? -1 : st;
    if (r < 0)
        err("server %d (pid %ld) is gone: %s", i, (long)s->pid, strerror(errno));
    else if (WIFEXITED(st))
        err("server %d (pid %ld) exited with status %d", i, (long)s->pid, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        err("server %d (pid %ld) was killed by signal %d", i, (long)s->pid, WTERMSIG(st));
    s->pid = 0;
    s->paused = 0;
    return 1;
}

/* Wait until pid exits, up to timeout_ms; 1 if it exited (and was reaped).
 * Polled every 10 ms: a pidfd would make it one poll(), but valgrind does not
 * know pidfd_open and warns on every call. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    for (;;) {
        int st, left;
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r < 0 && errno == EINTR)
            continue;
        if (r != 0) /* ECHILD too: someone else reaped it */
            return 1;
        left = remaining_ms(deadline);
        if (left == 0)
            return 0;
        sleep_ms(left < 10 ? left : 10);
    }
}

/* Signal every listed running server first and then wait for all, so an
 * ensemble stops in the time of one JVM shutdown, not three. */
static void stop_servers(zkh_cluster *c, int from, int to)
{
    long long deadline = now_ms() + STOP_GRACE_MS;
    int i;

    for (i = from; i < to; i++) {
        struct server *s = &c->servers[i];

        if (s->pid == 0)
            continue;
        kill(s->pid, SIGTERM);
        if (s->paused)
            kill(s->pid, SIGCONT); /* a stopped JVM acts on SIGTERM only once continued */
    }
    for (i = from; i < to; i++) {
        struct server *s = &c->servers[i];

        if (s->pid == 0)
            continue;
        if (!wait_exit(s->pid, remaining_ms(deadline))) {
            err("server %d (pid %ld) ignored SIGTERM for %d ms; killing it", i, (long)s->pid,
                STOP_GRACE_MS);
            kill(s->pid, SIGKILL);
            while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        s->pid = 0;
        s->paused = 0;
    }
}

static int spawn_server(zkh_cluster *c, int i)
{
    struct server *s = &c->servers[i];
    char cfg[PATH_MAX + 16], log[PATH_MAX + 16];
    const char *main_class = c->n == 1 ? "org.apache.zookeeper.server.ZooKeeperServerMain"
                                       : "org.apache.zookeeper.server.quorum.QuorumPeerMain";
    const char *base[] = {
        c->java,
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Xshare:auto",
        /* no /tmp/hsperfdata_<user>/<pid> file, which SIGKILL would leave */
        "-XX:-UsePerfData",
        "-Djava.net.preferIPv4Stack=true",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
    };
    const char *tail[] = {"-cp", c->classpath, main_class, cfg, NULL};
    const char *argv[sizeof(base) / sizeof(base[0]) + 16 + sizeof(tail) / sizeof(tail[0])];
    size_t na = 0, k;
    static const char exec_failed[] = "zkh: cannot execute java in the server directory\n";
    pid_t parent = getpid(), pid;
    int logfd, nullfd;

    for (k = 0; k < sizeof(base) / sizeof(base[0]); k++)
        argv[na++] = base[k];
    for (k = 0; c->opts.jvm_args != NULL && c->opts.jvm_args[k] != NULL && k < 16; k++)
        argv[na++] = c->opts.jvm_args[k];
    for (k = 0; k < sizeof(tail) / sizeof(tail[0]); k++)
        argv[na++] = tail[k];
    snprintf(cfg, sizeof(cfg), "%s/zoo.cfg", s->dir);
    snprintf(log, sizeof(log), "%s/server.log", s->dir);
    logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        err("cannot open %s: %s", log, strerror(errno));
        goto fail;
    }
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0) {
        err("cannot open /dev/null: %s", strerror(errno));
        goto fail_log;
    }
    pid = fork();
    if (pid < 0) {
        err("fork: %s", strerror(errno));
        goto fail_null;
    }
    if (pid == 0) {
        struct sigaction sa;
        sigset_t none;
        int sig, fd, closed = 0;

        /* Own process group: a Ctrl-C at the terminal reaches the test
         * alone, so no server dies under a test still cleaning up. The JVMs
         * go by zkh_destroy() or, if the test dies, by the signal below. */
        setpgid(0, 0);
        /* A test that crashes must not leave a JVM holding ports and memory.
         * The parent may have died before prctl(): then we are orphaned. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        /* Inherited descriptors (a test's pipes, client sockets) would stay
         * open in the JVM: a reader waiting for EOF on one would hang. */
#ifdef SYS_close_range
        closed = syscall(SYS_close_range, 3U, ~0U, 0U) == 0;
#endif
        for (fd = 3; !closed && fd < 1024; fd++)
            close(fd);
        /* Ignored signals and the mask survive exec(); `zkharness serve`
         * blocks SIGTERM, which would leave the JVM deaf to zkh_stop_server. */
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigemptyset(&sa.sa_mask);
        for (sig = 1; sig < NSIG; sig++)
            sigaction(sig, &sa, NULL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Where a JVM crash would drop hs_err_pid*.log. */
        if (chdir(s->dir) == 0)
            execv(c->java, (char *const *)argv);
        /* Into the log, which zkh_start prints when the server is gone. */
        if (write(2, exec_failed, sizeof(exec_failed) - 1) < 0)
            _exit(126);
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so it holds whichever process runs first */
    close(nullfd);
    close(logfd);
    s->pid = pid;
    s->paused = 0;
    return 0;

fail_null:
    close(nullfd);
fail_log:
    close(logfd);
fail:
    return -1;
}

/* ------------------------------------------------------------ 4lw */

static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd pfd = {fd, events, 0};
        int r = poll(&pfd, 1, remaining_ms(deadline));

        if (r > 0)
            return 0;
        if (r == 0)
            return -1;
        if (errno != EINTR)
            return -1;
    }
}

/* Non-blocking with a deadline throughout: a SIGSTOPped server still
 * completes the TCP handshake from its backlog and then never answers. */
static int four_letter_addr(const struct sockaddr *sa, socklen_t salen, const char *cmd, char *buf,
                            size_t len, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    size_t got = 0, sent = 0, cmdlen = strlen(cmd);
    int fd, soerr;
    socklen_t sl = sizeof(soerr);

    if (len == 0)
        return -1;
    buf[0] = '\0';
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, sa, salen) != 0) {
        if (errno != EINPROGRESS && errno != EINTR)
            goto fail;
        if (wait_fd(fd, POLLOUT, deadline) != 0)
            goto fail;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
            goto fail;
    }
    while (sent < cmdlen) {
        ssize_t w = send(fd, cmd + sent, cmdlen - sent, MSG_NOSIGNAL);

        if (w >= 0)
            sent += (size_t)w;
        else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLOUT, deadline) != 0)
                goto fail;
        } else if (errno != EINTR)
            goto fail;
    }
    for (;;) {
        char scratch[512];
        int full = got >= len - 1;
        ssize_t r = recv(fd, full ? scratch : buf + got, full ? sizeof(scratch) : len - 1 - got, 0);

        if (r == 0)
            break;
        if (r > 0) {
            if (!full)
                got += (size_t)r;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLIN, deadline) != 0)
                goto fail;
        } else if (errno != EINTR)
            goto fail;
    }
    close(fd);
    buf[got] = '\0';
    return (int)got;

fail:
    close(fd);
    buf[0] = '\0';
    return -1;
}

static int four_letter(int port, const char *cmd, char *buf, size_t len, int timeout_ms)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return four_letter_addr((struct sockaddr *)&sin, sizeof(sin), cmd, buf, len, timeout_ms);
}

/* The word after "Mode: " in a srvr reply, compared with want. */
static int mode_is(const char *reply, const char *want)
{
    const char *m = strstr(reply, "Mode: ");
    size_t n = strlen(want);

    return m != NULL && strncmp(m + 6, want, n) == 0 && (m[6 + n] == '\n' || m[6 + n] == '\0');
}

/* Inodes of the sockets listening where a bind to 127.0.0.1:port would clash
 * (127.0.0.1, 0.0.0.0, and IPv6 :: or ::ffff:127.0.0.1). -1 when /proc cannot
 * tell. */
static int listeners(int port, unsigned long *inodes, int max)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    char lo4[9], lo6[33];
    int n = 0;
    size_t t;

    /* The kernel prints each 32-bit word of the address in host order. */
    snprintf(lo4, sizeof(lo4), "%08X", (unsigned)htonl(INADDR_LOOPBACK));
    snprintf(lo6, sizeof(lo6), "0000000000000000%08X%s", (unsigned)htonl(0xffff), lo4);
    for (t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "re");
        char line[512], addr[33];
        unsigned lport, state;
        unsigned long inode;

        if (f == NULL) {
            if (t == 0)
                return -1;
            continue;
        }
        while (fgets(line, sizeof(line), f) != NULL && n < max) {
            if (sscanf(line,
                       " %*u: %32[0-9A-F]:%X %*[0-9A-F]:%*X %X %*X:%*X %*X:%*X %*X %*u %*d %lu",
                       addr, &lport, &state, &inode) != 4)
                continue; /* the header */
            if (state != 0x0A /* TCP_LISTEN */ || (int)lport != port)
                continue;
            if (t == 0 ? strcmp(addr, lo4) == 0 || strspn(addr, "0") == 8
                       : strcmp(addr, lo6) == 0 || strspn(addr, "0") == 32)
                inodes[n++] = inode;
        }
        fclose(f);
    }
    return n;
}

static int has_socket(pid_t pid, const unsigned long *inodes, int n)
{
    char dir[64];
    struct dirent *e;
    DIR *d;
    int found = 0;

    snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
    d = opendir(dir);
    if (d == NULL)
        return 0;
    while (!found && (e = readdir(d)) != NULL) {
        char path[64 + sizeof(e->d_name)], link[64];
        unsigned long inode;
        ssize_t len = -1;
        int k;

        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path))
            len = readlink(path, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &inode) != 1)
            continue;
        for (k = 0; k < n; k++)
            found |= inodes[k] == inode;
    }
    closedir(d);
    return found;
}

/* Is port listened on by the server's JVM, by nobody yet, or by another
 * process? */
static enum port_state port_state(pid_t pid, int port)
{
    unsigned long inodes[16];
    int n = listeners(port, inodes, 16);

    if (n < 0)
        return PORT_OURS; /* no /proc: trust the server's answers */
    if (n == 0)
        return PORT_FREE;
    return has_socket(pid, inodes, n) ? PORT_OURS : PORT_TAKEN;
}

/* A 4lw answer proves only that *someone* listens on the port. If our JVM
 * lost the race for a port to another process (another test run's server,
 * say), that answer may come from a foreign server; and an ensemble member
 * that cannot bind its election port still reports follower, then exits
 * with status 14 some 3 s later. So the ports must belong to the JVM. */
static enum probe_result check_ports(const zkh_cluster *c, int i, int election, int leader)
{
    const struct server *s = &c->servers[i];
    int ports[3], np = 0, k;

    ports[np++] = s->client_port;
    if (election)
        ports[np++] = s->election_port;
    if (leader)
        ports[np++] = s->peer_port; /* only the leader listens on it */
    for (k = 0; k < np; k++) {
        switch (port_state(s->pid, ports[k])) {
        case PORT_FREE:
            return PROBE_NO;
        case PORT_TAKEN:
            err("port %d of server %d is taken by another process", ports[k], i);
            return PROBE_TAKEN;
        case PORT_OURS:
            break;
        }
    }
    return PROBE_YES;
}

static enum probe_result probe(const zkh_cluster *c, int i, enum ready_what what,
                               long long deadline)
{
    char buf[1024];
    int port = c->servers[i].client_port;
    int t = remaining_ms(deadline), leader;

    if (t > PROBE_MS)
        t = PROBE_MS;
    /* Standalone and a quorum peer both answer imok as soon as the port is
     * open, before the database is loaded; only srvr's Mode says serving. */
    if (four_letter(port, "ruok", buf, sizeof(buf), t) < 0 || strcmp(buf, "imok") != 0)
        return PROBE_NO;
    if (what == READY_UP)
        return check_ports(c, i, 0, 0);
    if (four_letter(port, "srvr", buf, sizeof(buf), t) < 0)
        return PROBE_NO;
    if (c->n == 1)
        return mode_is(buf, "standalone") ? check_ports(c, i, 0, 0) : PROBE_NO;
    leader = mode_is(buf, "leader");
    if (!leader && !mode_is(buf, "follower"))
        return PROBE_NO;
    return check_ports(c, i, 1, leader);
}

/* Poll servers [from, to) until all are ready in the same round, so an
 * ensemble that re-elects during start-up is not reported serving. */
static enum wait_result wait_ready(zkh_cluster *c, int from, int to, enum ready_what what,
                                   int timeout_ms, int *failed)
{
    long long deadline = now_ms() + timeout_ms;

    for (;;) {
        int i, ready = 0, left;

        for (i = from; i < to; i++) {
            if (reap(&c->servers[i], i)) {
                *failed = i;
                return WAIT_EXITED;
            }
            switch (probe(c, i, what, deadline)) {
            case PROBE_YES:
                ready++;
                continue;
            case PROBE_TAKEN:
                *failed = i;
                return WAIT_TAKEN;
            case PROBE_NO:
                break;
            }
            *failed = i;
            break;
        }
        if (ready == to - from)
            return WAIT_OK;
        left = remaining_ms(deadline);
        if (left == 0)
            return WAIT_TIMEOUT;
        sleep_ms(left < POLL_MS ? left : POLL_MS);
    }
}

/* ------------------------------------------------------------ start */

/* The kernel hands out distinct ports while all the sockets are bound; they
 * are closed before the JVMs bind them, so another process may take one in
 * between: zkh_start then sees a server exit, or a port held by another
 * process, and tries again. */
static int pick_ports(int *ports, int count)
{
    int fds[3 * MAX_SERVERS], k, opened = 0, rc = -1;

    for (k = 0; k < count; k++) {
        struct sockaddr_in sin;
        socklen_t sl = sizeof(sin);

        fds[k] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[k] < 0) {
            err("socket: %s", strerror(errno));
            goto out;
        }
        opened++;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fds[k], (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
            getsockname(fds[k], (struct sockaddr *)&sin, &sl) != 0) {
            err("cannot get a free port on 127.0.0.1: %s", strerror(errno));
            goto out;
        }
        ports[k] = ntohs(sin.sin_port);
    }
    rc = 0;
out:
    for (k = 0; k < opened; k++)
        close(fds[k]);
    return rc;
}

static int write_config(zkh_cluster *c, int i)
{
    struct server *s = &c->servers[i];
    char path[PATH_MAX + 16], text[4096], myid[16];
    int len, k, min_to = c->opts.min_session_timeout_ms;

    if (min_to == 0)
        min_to = 2 * c->opts.tick_time_ms;
    /* forceSync=no: tests never survive a power cut, and with $TMPDIR on a
     * disk every write would otherwise wait for fsync. */
    len = snprintf(text, sizeof(text),
                   "tickTime=%d\n"
                   "initLimit=10\n"
                   "syncLimit=5\n"
                   "dataDir=%s/data\n"
                   "clientPort=%d\n"
                   "clientPortAddress=127.0.0.1\n"
                   "minSessionTimeout=%d\n"
                   "maxSessionTimeout=%d\n"
                   "admin.enableServer=false\n"
                   "4lw.commands.whitelist=*\n"
                   "maxClientCnxns=0\n" /* no cap of 60 per IP: benches open 100+ */
                   "forceSync=no\n",
                   c->opts.tick_time_ms, s->dir, s->client_port, min_to,
                   c->opts.max_session_timeout_ms);
    for (k = 0; c->n > 1 && k < c->n && len < (int)sizeof(text); k++) {
        int peer = c->servers[k].peer_port, election = c->servers[k].election_port;

        if (k != i && c->opts.quorum_route != NULL) {
            peer = c->opts.quorum_route(c->opts.quorum_route_data, i, k, 0, peer);
            election = c->opts.quorum_route(c->opts.quorum_route_data, i, k, 1, election);
            if (peer <= 0 || election <= 0) {
                err("no quorum route from server %d to server %d", i, k);
                return -1;
            }
        }
        len += snprintf(text + len, sizeof(text) - (size_t)len, "server.%d=127.0.0.1:%d:%d\n",
                        k + 1, peer, election);
    }
    if (len >= (int)sizeof(text)) {
        err("zoo.cfg for server %d too long", i);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/zoo.cfg", s->dir);
    if (write_file(path, text) != 0)
        return -1;
    if (c->n > 1) {
        snprintf(path, sizeof(path), "%s/data/myid", s->dir);
        snprintf(myid, sizeof(myid), "%d\n", i + 1);
        if (write_file(path, myid) != 0)
            return -1;
    }
    return 0;
}

/* Fresh ports, directories and JVMs for every server. 1 when a server
 * exited or found a port taken during start-up (its index in *which; worth
 * another try on new ports), -1 on other errors. */
static int start_attempt(zkh_cluster *c, int *which)
{
    int ports[3 * MAX_SERVERS], i, failed = 0;
    enum wait_result w;

    if (pick_ports(ports, 3 * c->n) != 0)
        return -1;
    for (i = 0; i < c->n; i++) {
        struct server *s = &c->servers[i];
        char data[PATH_MAX + 8];

        s->client_port = ports[3 * i];
        s->peer_port = ports[3 * i + 1];
        s->election_port = ports[3 * i + 2];
        snprintf(s->address, sizeof(s->address), "127.0.0.1:%d", s->client_port);
        if (snprintf(s->dir, sizeof(s->dir), "%s/s%d", c->tmpdir, i + 1) >= (int)sizeof(s->dir)) {
            err("temporary directory name too long");
            return -1;
        }
        remove_tree(s->dir); /* a previous attempt's */
        snprintf(data, sizeof(data), "%s/data", s->dir);
        if (mkdir(s->dir, 0755) != 0 || mkdir(data, 0755) != 0) {
            err("cannot create %s: %s", data, strerror(errno));
            return -1;
        }
    }
    for (i = 0; i < c->n; i++)
        if (write_config(c, i) != 0)
            return -1;
    for (i = 0; i < c->n; i++)
        if (spawn_server(c, i) != 0)
            return -1;
    w = wait_ready(c, 0, c->n, READY_SERVING, START_TIMEOUT_MS, &failed);
    if (w == WAIT_OK)
        return 0;
    if (w == WAIT_TIMEOUT)
        err("server %d not serving after %d ms", failed, START_TIMEOUT_MS);
    /* 127: the child could not run java; new ports will not help. */
    if (w == WAIT_TIMEOUT ||
        (w == WAIT_EXITED && c->servers[failed].status != -1 &&
         WIFEXITED(c->servers[failed].status) && WEXITSTATUS(c->servers[failed].status) == 127)) {
        print_log_tail(c, failed);
        return -1;
    }
    *which = failed;
    return 1;
}

static void destroy_all(void)
{
    while (clusters != NULL)
        zkh_destroy(clusters);
}

void zkh_opts_init(zkh_opts *o)
{
    o->tick_time_ms = 100;
    o->min_session_timeout_ms = 0;
    o->max_session_timeout_ms = 60000;
    o->quiet = 0;
    o->quorum_route = NULL;
    o->quorum_route_data = NULL;
    o->jvm_args = NULL;
}

int zkh_start(zkh_cluster **out, int nservers, const zkh_opts *opts)
{
    static int atexit_done;
    zkh_cluster *c;
    long long t0 = now_ms();
    int attempt, rc = -1, i, which = 0;
    size_t len;

    if (nservers < 1 || nservers > MAX_SERVERS) {
        err("%d servers asked for; 1 to %d are possible", nservers, MAX_SERVERS);
        return -1;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        err("out of memory");
        return -1;
    }
    if (opts != NULL)
        c->opts = *opts;
    else
        zkh_opts_init(&c->opts);
    if (c->opts.tick_time_ms <= 0 || c->opts.min_session_timeout_ms < 0 ||
        c->opts.max_session_timeout_ms <= 0) {
        err("bad options: tick %d ms, session timeouts %d..%d ms", c->opts.tick_time_ms,
            c->opts.min_session_timeout_ms, c->opts.max_session_timeout_ms);
        goto fail_free;
    }
    c->n = nservers;
    c->owner = getpid();
    if (!atexit_done) {
        if (atexit(destroy_all) != 0) {
            err("atexit failed");
            goto fail_free;
        }
        atexit_done = 1;
    }
    c->java = find_java();
    if (c->java == NULL)
        goto fail_free;
    c->classpath = build_classpath();
    if (c->classpath == NULL)
        goto fail_java;
    c->tmpdir = make_tmpdir();
    if (c->tmpdir == NULL)
        goto fail_classpath;

    for (attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
        rc = start_attempt(c, &which);
        if (rc == 0)
            break;
        /* The log goes with the next attempt's directories: show it now if
         * this was the last one. */
        if (rc > 0 && attempt == START_ATTEMPTS)
            print_log_tail(c, which);
        stop_servers(c, 0, c->n);
        if (rc < 0)
            goto fail_tmpdir;
        if (attempt < START_ATTEMPTS)
            err("trying again on new ports (%d of %d)", attempt + 1, START_ATTEMPTS);
    }
    if (rc != 0) {
        err("giving up after %d attempts to start %d server%s", START_ATTEMPTS, c->n,
            c->n > 1 ? "s" : "");
        goto fail_tmpdir;
    }

    len = 1;
    for (i = 0; i < c->n; i++)
        len += strlen(c->servers[i].address) + 1;
    c->connect = malloc(len);
    if (c->connect == NULL) {
        err("out of memory");
        goto fail_servers;
    }
    c->connect[0] = '\0';
    for (i = 0; i < c->n; i++) {
        if (i > 0)
            strcat(c->connect, ",");
        strcat(c->connect, c->servers[i].address);
    }
    if (!c->opts.quiet)
        fprintf(stderr, "zkh: %s up in %.2f s at %s (%s)\n",
                c->n == 1 ? "standalone server" : "ensemble", (double)(now_ms() - t0) / 1000.0,
                c->connect, c->tmpdir);
    c->next = clusters;
    clusters = c;
    *out = c;
    return 0;

fail_servers:
    stop_servers(c, 0, c->n);
fail_tmpdir:
    remove_tree(c->tmpdir);
    free(c->tmpdir);
fail_classpath:
    free(c->classpath);
fail_java:
    free(c->java);
fail_free:
    free(c);
    return -1;
}

/* ------------------------------------------------------------ accessors */

const char *zkh_connect_string(const zkh_cluster *c)
{
    return c->connect;
}

const char *zkh_server_address(const zkh_cluster *c, int i)
{
    return c != NULL && i >= 0 && i < c->n ? c->servers[i].address : NULL;
}

int zkh_size(const zkh_cluster *c)
{
    return c->n;
}

pid_t zkh_server_pid(const zkh_cluster *c, int i)
{
    return c != NULL && i >= 0 && i < c->n ? c->servers[i].pid : -1;
}

/* ------------------------------------------------------------ control */

int zkh_stop_server(zkh_cluster *c, int i)
{
    if (!valid_index(c, i))
        return -1;
    stop_servers(c, i, i + 1);
    return 0;
}

int zkh_start_server(zkh_cluster *c, int i)
{
    enum ready_what what = READY_SERVING;
    int k, running = 0, failed;
    enum wait_result w;

    if (!valid_index(c, i))
        return -1;
    if (c->servers[i].pid != 0 && !reap(&c->servers[i], i)) {
        err("server %d is already running (pid %ld)", i, (long)c->servers[i].pid);
        return -1;
    }
    if (spawn_server(c, i) != 0)
        return -1;
    for (k = 0; k < c->n; k++)
        running += c->servers[k].pid != 0 && !c->servers[k].paused;
    if (c->n > 1 && running <= c->n / 2)
        what = READY_UP;
    w = wait_ready(c, i, i + 1, what, START_TIMEOUT_MS, &failed);
    if (w == WAIT_OK)
        return 0;
    if (w == WAIT_TIMEOUT)
        err("server %d not %s after %d ms", i, what == READY_UP ? "up" : "serving",
            START_TIMEOUT_MS);
    print_log_tail(c, i);
    return -1;
}

int zkh_pause_server(zkh_cluster *c, int i)
{
    struct server *s;
    int st;
    pid_t r;

    if (!valid_index(c, i))
        return -1;
    s = &c->servers[i];
    if (s->pid == 0) {
        err("server %d is not running", i);
        return -1;
    }
    if (s->paused)
        return 0;
    if (kill(s->pid, SIGSTOP) != 0) {
        err("kill(%ld, SIGSTOP): %s", (long)s->pid, strerror(errno));
        return -1;
    }
    /* kill() returns before the target has stopped; WUNTRACED waits for it. */
    do
        r = waitpid(s->pid, &st, WUNTRACED);
    while (r < 0 && errno == EINTR);
    if (r == s->pid && WIFSTOPPED(st)) {
        s->paused = 1;
        return 0;
    }
    err("server %d (pid %ld) exited instead of pausing", i, (long)s->pid);
    s->pid = 0;
    return -1;
}

int zkh_resume_server(zkh_cluster *c, int i)
{
    struct server *s;
    int st;
    pid_t r;

    if (!valid_index(c, i))
        return -1;
    s = &c->servers[i];
    if (s->pid == 0) {
        err("server %d is not running", i);
        return -1;
    }
    if (!s->paused)
        return 0;
    if (kill(s->pid, SIGCONT) != 0) {
        err("kill(%ld, SIGCONT): %s", (long)s->pid, strerror(errno));
        return -1;
    }
    do
        r = waitpid(s->pid, &st, WCONTINUED);
    while (r < 0 && errno == EINTR);
    s->paused = 0;
    if (r == s->pid && WIFCONTINUED(st))
        return 0;
    err("server %d (pid %ld) exited instead of resuming", i, (long)s->pid);
    s->pid = 0;
    return -1;
}

int zkh_wait_serving(zkh_cluster *c, int i, int timeout_ms)
{
    int failed;
    enum wait_result w;

    if (!valid_index(c, i))
        return -1;
    if (c->servers[i].pid == 0) {
        err("server %d is not running", i);
        return -1;
    }
    w = wait_ready(c, i, i + 1, READY_SERVING, timeout_ms, &failed);
    if (w == WAIT_TIMEOUT)
        err("server %d not serving after %d ms", i, timeout_ms);
    return w == WAIT_OK ? 0 : -1;
}

int zkh_four_letter(const zkh_cluster *c, int i, const char *cmd, char *buf, size_t len)
{
    if (c == NULL || i < 0 || i >= c->n || cmd == NULL || buf == NULL)
        return -1;
    return four_letter(c->servers[i].client_port, cmd, buf, len, FOUR_LETTER_MS);
}

/* The value of key in an mntr reply, or -1. */
static long long mntr_value(const char *buf, const char *key)
{
    size_t klen = strlen(key);
    const char *line;

    for (line = buf; line != NULL; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, key, klen) == 0 && line[klen] == '\t')
            return strtoll(line + klen + 1, NULL, 10);
    }
    return -1;
}

long long zkh_mntr(const zkh_cluster *c, int i, const char *key)
{
    char buf[16384];

    if (zkh_four_letter(c, i, "mntr", buf, sizeof(buf)) < 0)
        return -1;
    return mntr_value(buf, key);
}

long long zkh_mntr_at(const char *connect, const char *key)
{
    char host[256], port[16], buf[16384];
    size_t hlen = connect ? strcspn(connect, ",") : 0;
    const char *colon = connect ? memchr(connect, ':', hlen) : NULL;
    struct addrinfo hints, *ai = NULL;
    long long v = -1;

    if (!colon || (size_t)(colon - connect) >= sizeof(host) ||
        hlen - (size_t)(colon - connect) > sizeof(port))
        return -1;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - connect), connect);
    snprintf(port, sizeof(port), "%.*s", (int)(hlen - (size_t)(colon - connect) - 1), colon + 1);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    if (four_letter_addr(ai->ai_addr, ai->ai_addrlen, "mntr", buf, sizeof(buf), FOUR_LETTER_MS) >=
        0)
        v = mntr_value(buf, key);
    freeaddrinfo(ai);
    return v;
}

void zkh_destroy(zkh_cluster *c)
{
    zkh_cluster **p;

    if (c == NULL)
        return;
    for (p = &clusters; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    /* In a forked child the servers and the directory are the parent's. */
    if (c->owner == getpid()) {
        stop_servers(c, 0, c->n);
        remove_tree(c->tmpdir);
    }
    free(c->connect);
    free(c->tmpdir);
    free(c->classpath);
    free(c->java);
    free(c);
}
