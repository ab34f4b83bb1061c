/* zkcoordctl: global options, the session, dispatch to the command files,
 * help texts and exit codes (documented in man/zkcoordctl.1). */
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h" /* zka_credentials_read: the agent's own reader */
#include "cli.h"
#include "config.h"

#define DEFAULT_SERVERS    "127.0.0.1:2181"
#define DEFAULT_ROOT       "/zkcoord"
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_SESSION_MS 10000

static const char usage_global[] =
    "usage: zkcoordctl [-s SERVERS] [--root PATH] [--format table|json] [--timeout MS] "
    "[--auth-file FILE] COMMAND [ARGS]\n";

struct command {
    const char *name;
    int (*fn)(cli *c, int argc, char **argv);
    const char *usage; /* after "usage: zkcoordctl " */
    const char *help;
};

static const struct command commands[] = {
    {"clusters", cmd_clusters, "clusters",
     "List the clusters under the root, with their member count, leader and\n"
     "number of locks.\n"},
    {"status", cmd_status, "status CLUSTER",
     "One screen about CLUSTER: the leader with its fencing token, the members\n"
     "(id, endpoint, status, session, age) and the locks (holder, token,\n"
     "waiters). Exit 3 when the cluster does not exist.\n"},
    {"members", cmd_members, "members CLUSTER",
     "The members of CLUSTER in join order. Member data that is not what a\n"
     "member writes is shown as malformed, with the raw bytes escaped.\n"},
    {"leader", cmd_leader, "leader CLUSTER",
     "The leader of CLUSTER: id, node, fencing token, session. Exit 3 when\n"
     "nobody leads (or the cluster does not exist).\n"},
    {"locks", cmd_locks, "locks CLUSTER [NAME]",
     "The locks of CLUSTER (under <root>/CLUSTER/locks): holder, fencing token\n"
     "and number of waiters; with NAME, the whole queue of that lock in order.\n"
     "Exit 3 when the cluster or the lock does not exist.\n"},
    {"watch", cmd_watch, "watch CLUSTER [--once]",
     "Print one JSON object per line for every membership, leadership and lock\n"
     "change of CLUSTER until interrupted (INT/TERM end it with status 0).\n"
     "The cluster need not exist yet.\n"
     "  --once   exit 0 after the first change\n"},
    {"lock", cmd_lock,
     "lock PATH [--timeout MS] [--kill-after MS] [--owner ID] [--on-suspend kill|wait] -- CMD "
     "[ARG...]",
     "Acquire the mutex at PATH (absolute, or relative to the root), run CMD\n"
     "with ZKCOORD_FENCING_TOKEN, ZKCOORD_LOCK_PATH and ZKCOORD_LOCK_NODE set,\n"
     "release when it exits and exit with its status (128+N when killed by\n"
     "signal N). If the lock is lost, CMD's process group gets TERM, then KILL\n"
     "after --kill-after, and zkcoordctl exits 5. Exit 6 when the lock is not\n"
     "acquired in time.\n"
     "  --timeout MS      give up acquiring after MS (default: wait forever)\n"
     "  --kill-after MS   grace between TERM and KILL (default 5000)\n"
     "  --owner ID        data of the lock node (default <hostname>:<pid>)\n"
     "  --on-suspend kill|wait\n"
     "                    connection to ZooKeeper lost: kill (default) stops CMD\n"
     "                    at once; wait keeps it running until the session is\n"
     "                    lost or the reconnected session finds the lock gone\n"},
    {"elect", cmd_elect,
     "elect CLUSTER ID [--kill-after MS] [--on-suspend kill|wait] -- CMD [ARG...] | "
     "elect --observe CLUSTER",
     "Campaign for leadership of CLUSTER as ID and run CMD while leading, with\n"
     "ZKCOORD_FENCING_TOKEN, ZKCOORD_CLUSTER and ZKCOORD_LEADER_ID set. When CMD\n"
     "exits, resign and exit with its status. If leadership is lost, CMD gets\n"
     "TERM, then KILL after --kill-after, and zkcoordctl exits 5.\n"
     "  --observe         do not campaign: print the leader, then every change,\n"
     "                    until interrupted\n"
     "  --kill-after MS   grace between TERM and KILL (default 5000)\n"
     "  --on-suspend kill|wait\n"
     "                    as for lock: kill (default) steps down when the\n"
     "                    connection is lost, wait leads on until the session is\n"
     "                    lost\n"},
    {"tree", cmd_tree, "tree [PATH]",
     "The raw znode tree under PATH (default: the root; relative to the root\n"
     "unless absolute): node type (ephemeral/persistent), owner session, data\n"
     "size; JSON adds children, zxids, times, version. Exit 3 when PATH does\n"
     "not exist.\n"},
    {"counter", cmd_counter, "counter PATH [get | set N | add N | cas OLD NEW] [--long]",
     "Read or change the shared counter at PATH (absolute, or relative to the\n"
     "root): a 4-byte big-endian int (Curator SharedCount), or with --long an\n"
     "8-byte long (Curator DistributedAtomicLong). Writes are compare-and-set\n"
     "on the node version, so they interleave safely with other clients.\n"
     "Prints the node after the operation (path, value, version).\n"
     "  get           the value (default); exit 3 when there is no node\n"
     "  set N         set to N (creates the node and its parents)\n"
     "  add N         add N (may be negative), retrying lost races; prints\n"
     "                the new value\n"
     "  cas OLD NEW   set to NEW only if it holds OLD (a missing node holds 0);\n"
     "                when it does not: prints the current value, exit 1\n"
     "  --long        8-byte counter\n"},
    {"work", cmd_work, "work CLUSTER",
     "The work assignment of CLUSTER: the plan (version, leader that wrote it),\n"
     "and for each item the member the plan names, the member that claims it,\n"
     "the claim's fencing token and the state: running, or why not (unplanned,\n"
     "owner_down, waiting, handover, bad_claim, bad_spec, stray_claim). Exit 3\n"
     "when the cluster does not exist.\n"},
    {"items", cmd_items, "items CLUSTER list | add ITEM [SPEC|-] | remove ITEM",
     "The work items of CLUSTER (under <root>/CLUSTER/work/items).\n"
     "  list              items and their specs\n"
     "  add ITEM [SPEC]   add an item with an opaque spec (at most 65536 bytes;\n"
     "                    - reads it from stdin); exit 1 when it exists\n"
     "  remove ITEM       remove an item (its owner is told to stop); exit 3\n"
     "                    when there is no such item\n"},
    {"drain", cmd_drain, "drain CLUSTER ID [--reason TEXT] [--force]",
     "Put member ID of CLUSTER in maintenance: its agent keeps it registered\n"
     "with status STOPPING (ServerSet readers that route to ALIVE only stop\n"
     "sending traffic), resigns leadership after its demotion work, releases\n"
     "its locks and runs its `drained` handlers. The note lives in ZooKeeper\n"
     "(<root>/CLUSTER/drain/ID): it holds across agent restarts until undrain.\n"
     "Draining a drained member rewrites its reason. Exit 7 (refused) when ID\n"
     "is the last healthy, undrained member, or when no member registers ID.\n"
     "  --reason TEXT   why (at most 256 bytes), shown by status and members\n"
     "  --force         drain anyway (the last healthy member, or an id that\n"
     "                  is not registered yet)\n"},
    {"undrain", cmd_undrain, "undrain CLUSTER ID",
     "End the maintenance of member ID: its agent sets status ALIVE, campaigns\n"
     "and queues for its locks again, and runs its `undrained` handlers.\n"
     "Undraining a member that is not drained changes nothing (exit 0).\n"},
    {"submit", cmd_submit, "submit CLUSTER [--wait [--timeout MS] [--delete]] [JSON|-]",
     "Submit a task (a JSON document; - reads it from stdin; default {}) to the\n"
     "task queue of CLUSTER and print its id. The cluster's leader assigns it to\n"
     "a live worker with capacity; the worker writes the result.\n"
     "  --wait        wait for the result, print it (status, worker, fencing\n"
     "                token, output) and exit with the task's status (0-255;\n"
     "                other values exit 1)\n"
     "  --timeout MS  with --wait: give up after MS and exit 6 (the task stays\n"
     "                queued); default: wait forever\n"
     "  --delete      with --wait: delete the result once printed (results\n"
     "                are kept until someone deletes them)\n"},
    {"tasks", cmd_tasks, "tasks CLUSTER",
     "The task queue of CLUSTER, one row per task: pending (not assigned yet),\n"
     "assigned (to MEMBER), running (claimed; TOKEN is the claim's fencing\n"
     "token), done (the result's worker, token and status). Exit 3 when the\n"
     "cluster does not exist.\n"},
};

#define NCOMMANDS (int)(sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
    int i;

    for (i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

void cli_err(const cli *c, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", c && c->prog ? c->prog : "zkcoordctl");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage_error(const cli *c, const char *cmd)
{
    const struct command *k = cmd ? find_command(cmd) : NULL;

    (void)c;
    if (k)
        fprintf(stderr, "usage: zkcoordctl [OPTIONS] %s\n", k->usage);
    else
        fputs(usage_global, stderr);
    if (k)
        fprintf(stderr, "Try 'zkcoordctl %s --help'.\n", k->name);
    else
        fprintf(stderr, "Try 'zkcoordctl --help'.\n");
    return CLI_EXIT_USAGE;
}

int cli_help(const cli *c, const char *cmd)
{
    const struct command *k = cmd ? find_command(cmd) : NULL;
    int i;

    (void)c;
    if (k) {
        printf("usage: zkcoordctl [OPTIONS] %s\n\n%s", k->usage, k->help);
        return CLI_EXIT_OK;
    }
    fputs(usage_global, stdout);
    printf("\nInspect and script zkcoord clusters in ZooKeeper.\n\nCommands:\n");
    for (i = 0; i < NCOMMANDS; i++)
        printf("  %s\n", commands[i].usage);
    printf("\nOptions:\n"
           "  -s, --servers LIST      ZooKeeper servers host:port[,...] (default\n"
           "                          $ZKCOORD_SERVERS, then " DEFAULT_SERVERS ")\n"
           "      --root PATH         zkcoord root folder (default " DEFAULT_ROOT ")\n"
           "  -f, --format FORMAT     table (default) or json\n"
           "  -t, --timeout MS        connect / request deadline (default 5000)\n"
           "      --session-timeout MS  ZooKeeper session timeout (default 10000)\n"
           "      --auth-file FILE    digest credentials, one line user:password, owned\n"
           "                          by you or root, mode 600 (default\n"
           "                          $ZKCOORD_AUTH_FILE; none: read-only on secured\n"
           "                          clusters)\n"
           "  -v, --verbose           library log on stderr (-vv: debug)\n"
           "  -h, --help              this text; COMMAND --help for a command\n"
           "      --version           print the version\n"
           "\nExit status: 0 ok, 1 error, 2 usage, 3 not found / no leader,\n"
           "4 ZooKeeper unreachable, 5 lock or leadership lost while CMD ran,\n"
           "6 lock not acquired in time, 7 drain refused (last healthy member or\n"
           "unknown id, without --force); lock and elect pass CMD's status through.\n"
           "See zkcoordctl(1).\n");
    return CLI_EXIT_OK;
}

/* The library's log, on stderr only with -v: without it the CLI reports what
 * went wrong itself, in one line (a NULL sink would print warnings). */
static void log_sink(zkc_log_level level, const char *msg, void *user_data)
{
    const int *verbose = user_data;

    if (*verbose)
        fprintf(stderr, "zkcoordctl: [%s] %s\n", zkc_log_level_name(level), msg);
}

/* Forget a password: wiped before it is freed. */
static void wipe(char *p)
{
    if (p) {
        memset(p, 0, strlen(p));
        free(p);
    }
}

int cli_connect(cli *c)
{
    zkc_session_opts o;
    zkc_session *s;
    char *user = NULL, *password = NULL, why[1200];
    int rc;

    zkc_session_opts_init(&o);
    if (c->auth_file) {
        /* The agent's reader and rules: same format, same owner and mode
         * checks, same messages. */
        rc = zka_credentials_read(c->auth_file, &user, &password, why, sizeof(why));
        if (rc) {
            cli_err(c, "auth file: %s", rc == ZKC_EINVAL ? why : zkc_strerror(rc));
            return CLI_EXIT_ERROR;
        }
        /* The library's default ACL with digest auth: what we create is ours
         * (auth:cdrwa) and world-readable, like the agent's nodes. */
        o.digest_user = user;
        o.digest_password = password;
    }
    o.servers = c->servers;
    o.session_timeout_ms = c->session_timeout_ms;
    o.log_fn = log_sink;
    o.log_user_data = &c->verbose;
    o.log_level = c->verbose >= 2 ? ZKC_LOG_DEBUG : c->verbose ? ZKC_LOG_INFO : ZKC_LOG_ERROR;
    o.zk_log_level = c->verbose >= 2 ? ZKC_LOG_INFO : ZKC_LOG_DEBUG;
    rc = zkc_session_new(&s, &o);
    /* The session copied the options. */
    free(user);
    wipe(password);
    if (rc) {
        cli_err(c, "cannot open a session to %s: %s", c->servers, zkc_strerror(rc));
        return rc == ZKC_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    }
    rc = zkc_session_wait_connected(s, c->timeout_ms);
    if (rc) {
        zkc_session_close(s);
        if (rc == ZKC_EAUTHFAILED) {
            cli_err(c, "ZooKeeper refused the credentials of %s", c->auth_file);
            return CLI_EXIT_ERROR;
        }
        if (rc == ZKC_EUNREACHABLE || rc == ZKC_ETIMEDOUT) {
            cli_err(c, "ZooKeeper unreachable: no answer from %s within %d ms", c->servers,
                    c->timeout_ms);
            return CLI_EXIT_UNREACHABLE;
        }
        cli_err(c, "cannot connect to %s: %s", c->servers, zkc_strerror(rc));
        return CLI_EXIT_ERROR;
    }
    c->s = s;
    return 0;
}

int cli_fail(const cli *c, int rc, const char *what)
{
    switch (rc) {
    case ZKC_ENONODE:
        cli_err(c, "%s: not found", what);
        return CLI_EXIT_NOTFOUND;
    case ZKC_ETIMEDOUT:
    case ZKC_ECONNLOSS:
    case ZKC_EUNREACHABLE:
    case ZKC_ESESSIONLOST:
        cli_err(c, "ZooKeeper unreachable: no answer from %s within %d ms (%s: %s)", c->servers,
                c->timeout_ms, what, zkc_strerror(rc));
        return CLI_EXIT_UNREACHABLE;
    default:
        cli_err(c, "%s: %s", what, zkc_strerror(rc));
        return CLI_EXIT_ERROR;
    }
}

void cli_path(const cli *c, char *buf, size_t len, const char *a, const char *b, const char *c2)
{
    snprintf(buf, len, "%s/%s%s%s%s%s", c->root, a, b ? "/" : "", b ? b : "", c2 ? "/" : "",
             c2 ? c2 : "");
}

int cli_name_ok(const char *name)
{
    if (!name || !*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        strlen(name) > 255)
        return -1;
    return 0;
}

int cli_cluster_exists(cli *c, const char *cluster)
{
    char path[1024];
    int rc;

    cli_path(c, path, sizeof(path), cluster, NULL, NULL);
    rc = cli_zk_stat(c->s, path, c->timeout_ms, 0, NULL);
    if (rc == ZKC_ENONODE) {
        cli_err(c, "no cluster '%s' under %s", cluster, *c->root ? c->root : "/");
        return CLI_EXIT_NOTFOUND;
    }
    if (rc)
        return cli_fail(c, rc, path);
    return 0;
}

int cli_parse_ms(const char *s)
{
    char *end;
    long v;

    if (!s || !*s)
        return -1;
    v = strtol(s, &end, 10);
    if (*end || v < 0 || v > INT_MAX)
        return -1;
    return (int)v;
}

int cli_parse_on_suspend(const char *s, cli_on_suspend *out)
{
    if (strcmp(s, "kill") == 0)
        *out = CLI_SUSPEND_KILL;
    else if (strcmp(s, "wait") == 0)
        *out = CLI_SUSPEND_WAIT;
    else
        return -1;
    return 0;
}

int cli_split_dashdash(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0)
            return i;
    return argc;
}

/* Keep the root as "/a/b" (no trailing slash; "" for "/"). */
static int set_root(cli *c, const char *root, char *buf, size_t len)
{
    size_t n;

    if (!root || root[0] != '/' || strlen(root) >= len)
        return -1;
    strcpy(buf, root);
    n = strlen(buf);
    while (n > 0 && buf[n - 1] == '/')
        buf[--n] = '\0';
    if (strstr(buf, "//"))
        return -1;
    c->root = buf;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"servers", required_argument, NULL, 's'},
        {"root", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},
        {"timeout", required_argument, NULL, 't'},
        {"session-timeout", required_argument, NULL, 'S'},
        {"auth-file", required_argument, NULL, 'A'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    static char rootbuf[1024];
    const struct command *k;
    cli c;
    int ch, i, cmd;

    memset(&c, 0, sizeof(c));
    c.prog = "zkcoordctl";
    c.servers = getenv("ZKCOORD_SERVERS");
    if (!c.servers || !*c.servers)
        c.servers = DEFAULT_SERVERS;
    c.root = DEFAULT_ROOT;
    c.timeout_ms = DEFAULT_TIMEOUT_MS;
    c.session_timeout_ms = DEFAULT_SESSION_MS;
    c.auth_file = getenv("ZKCOORD_AUTH_FILE");
    if (c.auth_file && !*c.auth_file)
        c.auth_file = NULL;

    opterr = 0;
    /* '+': stop at the command; its own options are parsed by the command. */
    while ((ch = getopt_long(argc, argv, "+s:f:t:vh", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            c.servers = optarg;
            break;
        case 'r':
            if (set_root(&c, optarg, rootbuf, sizeof(rootbuf)) != 0) {
                cli_err(&c, "--root must be an absolute path: '%s'", optarg);
                return cli_usage_error(&c, NULL);
            }
            break;
        case 'f':
            if (strcmp(optarg, "table") == 0) {
                c.format = CLI_TABLE;
            } else if (strcmp(optarg, "json") == 0) {
                c.format = CLI_JSON;
            } else {
                cli_err(&c, "--format must be table or json, not '%s'", optarg);
                return cli_usage_error(&c, NULL);
            }
            break;
        case 't':
        case 'S': {
            int v = cli_parse_ms(optarg);

            if (v <= 0) {
                cli_err(&c, "%s wants a positive number of milliseconds, not '%s'",
                        ch == 't' ? "--timeout" : "--session-timeout", optarg);
                return cli_usage_error(&c, NULL);
            }
            if (ch == 't')
                c.timeout_ms = v;
            else
                c.session_timeout_ms = v;
            break;
        }
        case 'A':
            c.auth_file = *optarg ? optarg : NULL;
            break;
        case 'v':
            c.verbose++;
            break;
        case 'h':
            return cli_help(&c, NULL);
        case 'V':
            printf("zkcoordctl %s\n", PACKAGE_VERSION);
            return CLI_EXIT_OK;
        default:
            if (optopt)
                cli_err(&c, "bad or incomplete option '-%c'", optopt);
            else
                cli_err(&c, "unknown option '%s'", argv[optind - 1]);
            return cli_usage_error(&c, NULL);
        }
    }
    if (optind >= argc) {
        cli_err(&c, "no command given");
        return cli_usage_error(&c, NULL);
    }
    if (strcmp(argv[optind], "help") == 0)
        return cli_help(&c, optind + 1 < argc ? argv[optind + 1] : NULL);
    k = find_command(argv[optind]);
    if (!k) {
        cli_err(&c, "unknown command '%s'", argv[optind]);
        return cli_usage_error(&c, NULL);
    }
    /* "COMMAND --help" (before any "--") never connects. */
    for (i = optind + 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return cli_help(&c, k->name);
    cmd = optind;
    optind = 0; /* full re-initialisation of getopt for the command */
    return k->fn(&c, argc - cmd, argv + cmd);
}
