/* zkcoordctl: what the command files share. The CLI holds no recipe logic:
 * membership, election and locks come from libzkcoord; the few raw reads it
 * needs (children, stats for `tree` and `clusters`) go through znode.c. */
#ifndef ZKC_CLI_H
#define ZKC_CLI_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "zkcoord/zkcoord.h"
#include "zkcoord/election.h"
#include "zkcoord/group.h"
#include "zkcoord/lock.h"

#include "agent/drain.h"
#include "output.h"

/* Exit codes, documented in man/zkcoordctl.1. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ERROR = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_NOTFOUND = 3,    /* no such cluster / lock / node; no leader */
    CLI_EXIT_UNREACHABLE = 4, /* ZooKeeper did not answer within --timeout */
    CLI_EXIT_LOST = 5,        /* lock / leadership lost while CMD ran: CMD was terminated */
    CLI_EXIT_NOTACQUIRED = 6, /* lock not acquired within lock --timeout */
    CLI_EXIT_REFUSED = 7      /* drain refused: last healthy member, or unknown id */
};

typedef enum cli_format { CLI_TABLE = 0, CLI_JSON = 1 } cli_format;

typedef struct cli {
    const char *prog;
    const char *servers;
    const char *root; /* "/zkcoord", no trailing slash ("" for "/") */
    cli_format format;
    int timeout_ms;         /* connect and per-request deadline */
    int session_timeout_ms; /* requested ZooKeeper session timeout */
    int verbose;
    const char *auth_file; /* --auth-file / $ZKCOORD_AUTH_FILE: digest "user:password" */
    zkc_session *s;        /* opened by cli_connect() */
} cli;

/* Print "zkcoordctl: <msg>" on stderr. */
void cli_err(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "usage: ..." of `cmd` (NULL: the global one) on stderr; returns 2. */
int cli_usage_error(const cli *c, const char *cmd);
/* Print the help of `cmd` (NULL: global) on stdout; returns 0. */
int cli_help(const cli *c, const char *cmd);

/* Open the session and wait up to --timeout for it. Returns 0, or prints the
 * reason and returns the exit code (4 when unreachable). */
int cli_connect(cli *c);
/* Exit code for a library error met while reading, after printing `what`
 * and the reason: 3 for ZKC_ENONODE, 4 for connection trouble, else 1. */
int cli_fail(const cli *c, int rc, const char *what);

/* "<root>/<a>[/<b>[/<c>]]" into buf; b and c may be NULL. */
void cli_path(const cli *c, char *buf, size_t len, const char *a, const char *b, const char *c2);
/* 0 when `name` is a usable cluster / lock name (no '/', not "", ".", ".."). */
int cli_name_ok(const char *name);
/* 0 when the cluster folder exists; else prints why and returns the exit code
 * (3 when it does not exist). */
int cli_cluster_exists(cli *c, const char *cluster);

/* Parse a non-negative decimal of milliseconds; -1 when invalid. */
int cli_parse_ms(const char *s);

/* What `lock` and `elect` do with CMD when the connection is SUSPENDED. */
typedef enum cli_on_suspend {
    CLI_SUSPEND_KILL = 0, /* default: stop CMD at once (the hold is no longer certain) */
    CLI_SUSPEND_WAIT = 1  /* keep CMD running; stop it on LOST or a vanished node */
} cli_on_suspend;

/* "kill" or "wait" into *out: 0, or -1 when neither. */
int cli_parse_on_suspend(const char *s, cli_on_suspend *out);

/* Split cmd args at the first "--": returns its index in argv, or argc. */
int cli_split_dashdash(int argc, char **argv);

/* ---- raw reads (znode.c), for `tree`, `clusters` and `watch` */

typedef struct cli_stat {
    int64_t czxid;
    int64_t mzxid;
    int64_t ctime_ms;
    int64_t mtime_ms;
    int64_t owner; /* ephemeralOwner, 0 for a persistent node */
    int32_t data_length;
    int32_t num_children;
    int32_t version;
} cli_stat;

/* Children of `path` (sorted by name) and the node's own stat. On 0, *names
 * is a malloc'd array of `*n` malloc'd strings: free with cli_names_free().
 * `watch` must be 0 (ZKC_EINVAL otherwise: watch with a zkc_cache, see
 * zkcoord/read.h). Errors: ZKC_ENONODE, ZKC_ECONNLOSS, ZKC_ETIMEDOUT,
 * ZKC_ENOAUTH, ZKC_ENOMEM. */
int cli_zk_children(zkc_session *s, const char *path, int timeout_ms, int watch, char ***names,
                    int *n, cli_stat *st);
/* Stat of `path`; `watch` must be 0, as above. */
int cli_zk_stat(zkc_session *s, const char *path, int timeout_ms, int watch, cli_stat *st);
void cli_names_free(char **names, int n);

/* ---- pieces shared by the command files */

/* A member as JSON (cmd_cluster.c); `now_ms` is the wall clock for age_ms. */
json_t *cli_member_json(const zkc_member *m, int64_t now_ms);
/* A leader as JSON ({"id","node","token","session"}), NULL info -> null. */
json_t *cli_leader_json(const zkc_election_leader_info *info);
/* Read the leader of a cluster: 0 (found), ZKC_ENONODE (nobody leads) or an
 * error code. */
int cli_read_leader(cli *c, const char *cluster, zkc_election_leader_info *info);

/* One lock folder under <root>/<cluster>/locks (cmd_locks.c). */
typedef struct cli_lock {
    char *name;
    char path[1024];     /* the folder inspected (a semaphore's leases folder) */
    const char *type;    /* "mutex", "rwlock", "semaphore", or NULL when empty */
    zkc_lock_info *info; /* queue order, holders first */
} cli_lock;

/* Read the locks of a cluster (only `name` when not NULL) into a new array.
 * A missing locks folder is no locks. Errors: ZKC_ENONODE (only `name`
 * given and it does not exist), connection errors, ZKC_ENOMEM. */
int cli_read_locks(cli *c, const char *cluster, const char *name, cli_lock **out, int *n);
void cli_locks_free(cli_lock *locks, int n);
json_t *cli_lock_json(const cli_lock *l);
/* Summary table: one row per lock (status, `locks CLUSTER`). */
out_table *cli_locks_table(const cli_lock *locks, int n);
/* Warnings for a table reader: foreign nodes in a line, a sequence counter
 * near its wrap (JSON carries them as "foreign", "near_wrap"). */
void cli_locks_warn(const cli_lock *locks, int n, FILE *f);
/* A string that changes whenever the queue of `l` changes (for watch). */
char *cli_lock_signature(const cli_lock *l);

/* The drain notes of a cluster (cmd_drain.c), sorted by id. */
typedef struct cli_drains {
    char **ids;
    zka_drain_note *notes;
    int n;
} cli_drains;

/* Read them; a missing folder is none. Errors: as zkc_get_children(). */
int cli_read_drains(cli *c, const char *cluster, cli_drains *out);
void cli_drains_free(cli_drains *d);
/* The note of `id`, or NULL when it is not drained. */
const zka_drain_note *cli_drain_find(const cli_drains *d, const char *id);
/* {"reason", "since_ms", "by", "malformed"}, or null for NULL. */
json_t *cli_drain_json(const zka_drain_note *n);

/* ---- commands; argv[0] is the command name */
int cmd_clusters(cli *c, int argc, char **argv);
int cmd_status(cli *c, int argc, char **argv);
int cmd_members(cli *c, int argc, char **argv);
int cmd_leader(cli *c, int argc, char **argv);
int cmd_locks(cli *c, int argc, char **argv);
int cmd_lock(cli *c, int argc, char **argv);
int cmd_elect(cli *c, int argc, char **argv);
int cmd_watch(cli *c, int argc, char **argv);
int cmd_tree(cli *c, int argc, char **argv);
int cmd_counter(cli *c, int argc, char **argv);
int cmd_work(cli *c, int argc, char **argv);  /* cmd_work.c */
int cmd_items(cli *c, int argc, char **argv); /* cmd_work.c */
int cmd_drain(cli *c, int argc, char **argv);
int cmd_undrain(cli *c, int argc, char **argv);
int cmd_submit(cli *c, int argc, char **argv);
int cmd_tasks(cli *c, int argc, char **argv);

/* ---- running CMD under a lock or leadership (cmd_locks.c) */

/* A child command in its own process group, with a self-pipe that wakes
 * the main thread on SIGCHLD, SIGINT/TERM/HUP and recipe events. */
typedef struct cli_child {
    pid_t pid; /* 0 when none */
    int status;
    int exited;
} cli_child;

/* Install the signal handlers and the wake pipe; block the signals in the
 * calling thread (call before cli_connect() so library threads inherit the
 * mask). Returns 0 or -1. */
int cli_sig_setup(void);
/* Unblock the signals in the calling thread (the main thread). */
void cli_sig_unblock(void);
/* For commands that wait on signals: cli_sig_setup(), cli_connect() (its
 * threads inherit the blocked mask), cli_sig_unblock(). Returns 0 or the
 * exit code to use (the message is printed). */
int cli_connect_with_signals(cli *c);
/* Wake the main thread (any thread, async-signal-safe). */
void cli_wake(void);
/* Wait for a wake-up up to timeout_ms (-1 = forever). Returns the number of
 * a signal that arrived (INT/TERM/HUP), else 0. Drains the pipe. */
int cli_wait(int timeout_ms);
/* fork + exec argv in a new process group with extra environment `env`
 * ("NAME=value" strings, NULL-terminated). Returns 0, or the exit code to
 * use (126/127) after printing why. */
int cli_spawn(const cli *c, cli_child *ch, char **argv, char **env);
/* Reap the child if it has exited (non-blocking). Returns 1 when exited. */
int cli_reap(cli_child *ch);
/* TERM the child's group, wait up to kill_after_ms, then KILL; reaps it. */
void cli_terminate(cli_child *ch, int kill_after_ms);
/* Send `sig` to the child's process group. */
void cli_forward(cli_child *ch, int sig);
/* Shell-style exit code of a wait status (code, or 128 + signal). */
int cli_status_code(int status);

#endif
