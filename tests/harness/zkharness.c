/* zkharness: run a command against local ZooKeeper servers, or serve them
 * until signalled. */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Automake's test driver reports 99 as a hard ERROR rather than a test
 * failure: a harness that cannot start servers is not a failing test. */
#define EXIT_HARNESS 99
#define EXIT_USAGE   2

struct args {
    int nservers;
    zkh_opts opts;
    const char *connect_file;
    char **cmd;
};

static volatile sig_atomic_t child_pid;

static void usage(FILE *f)
{
    fputs("usage: zkharness run [-n N] [-t TICK_MS] [-q] -- CMD [ARGS...]\n"
          "       zkharness serve [-n N] [-t TICK_MS] [-q] [--connect-file FILE]\n"
          "       zkharness --help\n"
          "\n"
          "Start N local ZooKeeper servers (1: standalone, the default; 3: an ensemble;\n"
          "at most 9) on loopback ports with tickTime TICK_MS (default 100).\n"
          "\n"
          "run    exports ZKC_TEST_SERVERS (the connect string) and ZKC_TEST_SERVER_PIDS\n"
          "       (comma-separated), runs CMD, stops the servers and exits with CMD's\n"
          "       status (128+N if CMD was killed by signal N). SIGINT, SIGTERM and\n"
          "       SIGHUP are passed on to CMD. Exits 99 if the servers do not start.\n"
          "serve  prints the connect string as one line on stdout, writes it to FILE\n"
          "       if given, and serves until SIGTERM, SIGINT or SIGHUP; then stops the\n"
          "       servers and exits 0. Exits 1 if the servers do not start.\n"
          "\n"
          "  -n N                number of servers\n"
          "  -t TICK_MS          tickTime; minimum session timeout is 2 ticks\n"
          "  -q                  print only errors\n"
          "  --connect-file FILE (serve) also write the connect string to FILE\n"
          "\n"
          "Servers, logs and data live in a temporary directory under /dev/shm (or\n"
          "$TMPDIR, or /tmp) that is removed on exit. Needs the Debian package zookeeper.\n",
          f);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* argv[0] is the subcommand. Options stop at "--" or the first operand, so
 * CMD's own options are left alone. */
static int parse_args(int argc, char **argv, int serve, struct args *a)
{
    static const struct option longopts[] = {
        {"connect-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    a->nservers = 1;
    zkh_opts_init(&a->opts);
    a->connect_file = NULL;
    a->cmd = NULL;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+:n:t:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            if (parse_int(optarg, 1, 9, &a->nservers) != 0) {
                fprintf(stderr, "zkharness: -n wants 1 to 9 servers, not '%s'\n", optarg);
                return -1;
            }
            break;
        case 't':
            if (parse_int(optarg, 1, 60000, &a->opts.tick_time_ms) != 0) {
                fprintf(stderr, "zkharness: -t wants a tick of 1 to 60000 ms, not '%s'\n", optarg);
                return -1;
            }
            break;
        case 'q':
            a->opts.quiet = 1;
            break;
        case 'f':
            if (!serve) {
                fprintf(stderr, "zkharness: --connect-file is for serve\n");
                return -1;
            }
            a->connect_file = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            if (optopt != 0)
                fprintf(stderr, "zkharness: -%c needs an argument\n", optopt);
            else
                fprintf(stderr, "zkharness: %s needs an argument\n", argv[optind - 1]);
            return -1;
        default:
            if (optopt != 0)
                fprintf(stderr, "zkharness: unknown option -%c\n", optopt);
            else
                fprintf(stderr, "zkharness: unknown option '%s'\n", argv[optind - 1]);
            return -1;
        }
    }
    if (serve && optind < argc) {
        fprintf(stderr, "zkharness: serve takes no operands ('%s')\n", argv[optind]);
        return -1;
    }
    if (!serve) {
        if (optind >= argc) {
            fprintf(stderr, "zkharness: run needs a command\n");
            return -1;
        }
        a->cmd = argv + optind;
    }
    return 0;
}

static void forward_signal(int sig)
{
    if (child_pid > 0)
        kill((pid_t)child_pid, sig);
}

static int export_env(const zkh_cluster *c)
{
    char pids[16 * 10];
    size_t len = 0;
    int i;

    pids[0] = '\0';
    for (i = 0; i < zkh_size(c); i++)
        len += (size_t)snprintf(pids + len, sizeof(pids) - len, "%s%ld", i > 0 ? "," : "",
                                (long)zkh_server_pid(c, i));
    if (setenv("ZKC_TEST_SERVERS", zkh_connect_string(c), 1) != 0 ||
        setenv("ZKC_TEST_SERVER_PIDS", pids, 1) != 0) {
        fprintf(stderr, "zkharness: setenv: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int cmd_run(const struct args *a)
{
    struct sigaction sa;
    sigset_t term, old;
    zkh_cluster *c;
    pid_t pid, r;
    int st, rc = EXIT_HARNESS;

    /* Held until CMD runs, so a signal during start-up is neither lost nor
     * kills us before the servers can be stopped. */
    sigemptyset(&term);
    sigaddset(&term, SIGINT);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGHUP);
    sigprocmask(SIG_BLOCK, &term, &old);
    if (zkh_start(&c, a->nservers, &a->opts) != 0)
        goto out_mask;
    if (export_env(c) != 0)
        goto out_cluster;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "zkharness: fork: %s\n", strerror(errno));
        goto out_cluster;
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(a->cmd[0], a->cmd);
        fprintf(stderr, "zkharness: cannot run %s: %s\n", a->cmd[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    child_pid = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    do
        r = waitpid(pid, &st, 0);
    while (r < 0 && errno == EINTR);
    child_pid = 0;
    if (r < 0) {
        fprintf(stderr, "zkharness: waitpid: %s\n", strerror(errno));
        goto out_cluster;
    }
    rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);

out_cluster:
    zkh_destroy(c);
out_mask:
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Through a temporary file and rename(), so a script polling for FILE never
 * reads half a line. */
static int write_connect_file(const char *path, const char *line)
{
    char tmp[PATH_MAX];
    FILE *f;

    if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof(tmp)) {
        fprintf(stderr, "zkharness: %s: name too long\n", path);
        return -1;
    }
    f = fopen(tmp, "w");
    if (f == NULL)
        goto fail;
    fprintf(f, "%s\n", line);
    if (fclose(f) != 0)
        goto fail_unlink;
    if (rename(tmp, path) != 0)
        goto fail_unlink;
    return 0;

fail_unlink:
    unlink(tmp);
fail:
    fprintf(stderr, "zkharness: cannot write %s: %s\n", path, strerror(errno));
    return -1;
}

static int cmd_serve(const struct args *a)
{
    sigset_t term;
    zkh_cluster *c;
    int sig, rc = 1;

    /* Blocked from the start so that sigwait() sees a signal sent while the
     * servers were still starting. */
    sigemptyset(&term);
    sigaddset(&term, SIGINT);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGHUP);
    sigprocmask(SIG_BLOCK, &term, NULL);
    /* A reader that went away must not kill us before the servers stop. */
    signal(SIGPIPE, SIG_IGN);

    if (zkh_start(&c, a->nservers, &a->opts) != 0)
        return 1;
    if (printf("%s\n", zkh_connect_string(c)) < 0 || fflush(stdout) != 0)
        fprintf(stderr, "zkharness: cannot write to stdout: %s\n", strerror(errno));
    if (a->connect_file != NULL && write_connect_file(a->connect_file, zkh_connect_string(c)) != 0)
        goto out;
    while (sigwait(&term, &sig) != 0)
        ;
    if (!a->opts.quiet)
        fprintf(stderr, "zkharness: %s, stopping\n", strsignal(sig));
    rc = 0;
out:
    zkh_destroy(c);
    return rc;
}

int main(int argc, char **argv)
{
    struct args a;
    int serve;

    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        serve = 0;
    else if (strcmp(argv[1], "serve") == 0)
        serve = 1;
    else {
        fprintf(stderr, "zkharness: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (parse_args(argc - 1, argv + 1, serve, &a) != 0) {
        fprintf(stderr, "Try 'zkharness --help'.\n");
        return EXIT_USAGE;
    }
    return serve ? cmd_serve(&a) : cmd_run(&a);
}
