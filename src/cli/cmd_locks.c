/* locks (inspect the queues of a cluster's locks) and lock (run a command
 * while holding a mutex). Queue reading is the library's zkc_lock_inspect;
 * holding is the library's zkc_lock: no lock logic here. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "output.h"

/* ------------------------------------------------------------ reading */

static const char *kind_name(zkc_lock_entry_kind k)
{
    switch (k) {
    case ZKC_LOCK_ENTRY_MUTEX:
        return "mutex";
    case ZKC_LOCK_ENTRY_READ:
        return "read";
    case ZKC_LOCK_ENTRY_WRITE:
        return "write";
    case ZKC_LOCK_ENTRY_LEASE:
        return "lease";
    }
    return "?";
}

static int read_one(cli *c, const char *cluster, const char *name, cli_lock *l)
{
    char **kids = NULL;
    int nkids = 0, i, rc, sem = 0;

    l->name = strdup(name);
    if (!l->name)
        return ZKC_ENOMEM;
    cli_path(c, l->path, sizeof(l->path), cluster, "locks", name);
    /* A semaphore (Curator's InterProcessSemaphoreV2) keeps its holders in
     * "leases" and an internal mutex in "locks": show the leases. */
    rc = cli_zk_children(c->s, l->path, c->timeout_ms, 0, &kids, &nkids, NULL);
    if (rc)
        return rc;
    for (i = 0; i < nkids; i++)
        if (strcmp(kids[i], "leases") == 0)
            sem = 1;
    cli_names_free(kids, nkids);
    if (sem) {
        size_t n = strlen(l->path);

        snprintf(l->path + n, sizeof(l->path) - n, "/leases");
    }
    rc = zkc_lock_inspect(c->s, l->path, c->timeout_ms, &l->info);
    if (rc)
        return rc;
    if (sem) {
        l->type = "semaphore";
    } else {
        for (i = 0; i < l->info->count; i++) {
            zkc_lock_entry_kind k = l->info->entries[i].kind;

            if (k == ZKC_LOCK_ENTRY_READ || k == ZKC_LOCK_ENTRY_WRITE)
                l->type = "rwlock";
            else if (!l->type)
                l->type = "mutex";
        }
    }
    return 0;
}

int cli_read_locks(cli *c, const char *cluster, const char *name, cli_lock **out, int *n)
{
    char **names = NULL, path[1024];
    int count = 0, i, rc, k = 0;
    cli_lock *locks;

    if (name) {
        names = calloc(1, sizeof(char *));
        if (!names || !(names[0] = strdup(name))) {
            free(names);
            return ZKC_ENOMEM;
        }
        count = 1;
    } else {
        cli_path(c, path, sizeof(path), cluster, "locks", NULL);
        rc = cli_zk_children(c->s, path, c->timeout_ms, 0, &names, &count, NULL);
        if (rc == ZKC_ENONODE) {
            *out = NULL;
            *n = 0;
            return 0;
        }
        if (rc)
            return rc;
    }
    locks = calloc((size_t)(count ? count : 1), sizeof(*locks));
    if (!locks) {
        cli_names_free(names, count);
        return ZKC_ENOMEM;
    }
    for (i = 0; i < count; i++) {
        rc = read_one(c, cluster, names[i], &locks[k]);
        if (rc == ZKC_ENONODE && !name) {
            /* Removed between the listing and the read. */
            free(locks[k].name);
            memset(&locks[k], 0, sizeof(locks[k]));
            continue;
        }
        k++;
        if (rc) {
            cli_locks_free(locks, k);
            cli_names_free(names, count);
            return rc;
        }
    }
    cli_names_free(names, count);
    *out = locks;
    *n = k;
    return 0;
}

void cli_locks_free(cli_lock *locks, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        free(locks[i].name);
        zkc_lock_info_free(locks[i].info);
    }
    free(locks);
}

static json_t *entry_json(const zkc_lock_entry *e)
{
    json_t *o = json_object();

    out_jset(o, "node", out_jstr(e->name));
    out_jset(o, "owner", out_jstr(e->owner_id));
    out_jset(o, "kind", json_string(kind_name(e->kind)));
    out_jset(o, "seq", json_integer(e->seq));
    out_jset(o, "token", json_integer(e->token));
    out_jset(o, "session", out_jsession(e->session_id));
    out_jset(o, "foreign", json_boolean(e->foreign));
    return o;
}

json_t *cli_lock_json(const cli_lock *l)
{
    json_t *o = json_object(), *holders = json_array(), *queue = json_array();
    json_t *foreign = json_array();
    int i, waiting = 0;

    for (i = 0; l->info && i < l->info->count; i++) {
        const zkc_lock_entry *e = &l->info->entries[i];

        /* A foreign node (not ephemeral: planted by another client) neither
         * holds nor waits: listed apart, never as a holder. */
        if (e->foreign) {
            json_array_append_new(foreign, entry_json(e));
        } else if (e->holds) {
            json_array_append_new(holders, entry_json(e));
        } else {
            json_array_append_new(queue, entry_json(e));
            waiting++;
        }
    }
    out_jset(o, "name", out_jstr(l->name));
    out_jset(o, "path", out_jstr(l->path));
    out_jset(o, "type", l->type ? json_string(l->type) : json_null());
    out_jset(o, "holders", holders);
    out_jset(o, "waiting", json_integer(waiting));
    out_jset(o, "queue", queue);
    out_jset(o, "foreign", foreign);
    out_jset(o, "cversion", l->info ? json_integer(l->info->cversion) : json_null());
    out_jset(o, "near_wrap", json_boolean(l->info && l->info->near_wrap));
    return o;
}

void cli_locks_warn(const cli_lock *locks, int n, FILE *f)
{
    int i, j, nforeign;

    for (i = 0; i < n; i++) {
        const cli_lock *l = &locks[i];

        if (!l->info)
            continue;
        for (j = nforeign = 0; j < l->info->count; j++)
            nforeign += l->info->entries[j].foreign != 0;
        if (nforeign)
            fprintf(f,
                    "warning: lock %s: %d foreign node%s in its line (not ephemeral: never a "
                    "holder, nobody waits behind %s)\n",
                    l->name, nforeign, nforeign > 1 ? "s" : "", nforeign > 1 ? "them" : "it");
        if (l->info->near_wrap)
            fprintf(f,
                    "warning: lock %s: sequence counter (cversion %" PRId32 ") within 2^24 "
                    "of the 2^31 wrap: recreate %s while it is idle\n",
                    l->name, l->info->cversion, l->path);
    }
}

char *cli_lock_signature(const cli_lock *l)
{
    size_t len = 1, off = 0;
    char *s;
    int i;

    for (i = 0; l->info && i < l->info->count; i++)
        len += strlen(l->info->entries[i].name) + 3;
    s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (i = 0; l->info && i < l->info->count; i++)
        off += (size_t)sprintf(s + off, "%s%c,", l->info->entries[i].name,
                               l->info->entries[i].foreign ? 'F'
                               : l->info->entries[i].holds ? 'H'
                                                           : 'W');
    return s;
}

out_table *cli_locks_table(const cli_lock *locks, int n)
{
    out_table *t = out_table_new("NAME", "TYPE", "HOLDER", "TOKEN", "SESSION", "WAITING", NULL);
    int i, j;

    for (i = 0; i < n; i++) {
        const cli_lock *l = &locks[i];
        const zkc_lock_entry *h = NULL;
        char tok[32] = "-", sess[32] = "-", wait[16];
        int waiting = 0, holders = 0;
        char holder[1100];

        for (j = 0; l->info && j < l->info->count; j++) {
            if (l->info->entries[j].foreign)
                continue; /* neither holds nor waits (cli_locks_warn) */
            if (l->info->entries[j].holds) {
                if (!h)
                    h = &l->info->entries[j];
                holders++;
            } else {
                waiting++;
            }
        }
        if (h) {
            snprintf(tok, sizeof(tok), "%" PRId64, h->token);
            out_session(sess, sizeof(sess), h->session_id);
            if (holders > 1)
                snprintf(holder, sizeof(holder), "%s (+%d)", h->owner_id, holders - 1);
            else
                snprintf(holder, sizeof(holder), "%s", h->owner_id);
        }
        snprintf(wait, sizeof(wait), "%d", waiting);
        out_table_row(t, l->name, l->type, h ? holder : NULL, tok, sess, wait);
    }
    return t;
}

/* The whole queue of one lock. */
static out_table *queue_table(const cli_lock *l)
{
    out_table *t = out_table_new("POS", "STATE", "OWNER", "KIND", "TOKEN", "SESSION", "NODE", NULL);
    int i;

    for (i = 0; l->info && i < l->info->count; i++) {
        const zkc_lock_entry *e = &l->info->entries[i];
        char pos[16], tok[32], sess[32];

        snprintf(pos, sizeof(pos), "%d", i);
        snprintf(tok, sizeof(tok), "%" PRId64, e->token);
        out_table_row(t, pos,
                      e->foreign ? "foreign"
                      : e->holds ? "holds"
                                 : "waits",
                      e->owner_id, kind_name(e->kind), tok,
                      out_session(sess, sizeof(sess), e->session_id), e->name);
    }
    return t;
}

int cmd_locks(cli *c, int argc, char **argv)
{
    const char *cluster, *name = NULL;
    cli_lock *locks = NULL;
    char path[1024];
    int n = 0, rc, i;

    for (i = 1; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_err(c, "locks: unknown option '%s'", argv[i]);
            return cli_usage_error(c, argv[0]);
        }
    if (argc < 2 || argc > 3) {
        cli_err(c, "locks: wrong number of arguments");
        return cli_usage_error(c, argv[0]);
    }
    cluster = argv[1];
    if (argc == 3)
        name = argv[2];
    if (cli_name_ok(cluster) != 0 || (name && cli_name_ok(name) != 0)) {
        cli_err(c, "bad cluster or lock name");
        return cli_usage_error(c, argv[0]);
    }
    rc = cli_connect(c);
    if (rc)
        return rc;
    rc = cli_cluster_exists(c, cluster);
    if (rc)
        goto out;
    rc = cli_read_locks(c, cluster, name, &locks, &n);
    if (rc == ZKC_ENONODE) {
        cli_err(c, "no lock '%s' in cluster '%s'", name, cluster);
        rc = CLI_EXIT_NOTFOUND;
        goto out;
    } else if (rc) {
        rc = cli_fail(c, rc, "reading the locks");
        goto out;
    }
    if (c->format == CLI_JSON) {
        json_t *doc = json_object(), *arr = json_array();

        cli_path(c, path, sizeof(path), cluster, "locks", NULL);
        out_jset(doc, "cluster", out_jstr(cluster));
        out_jset(doc, "path", out_jstr(path));
        for (i = 0; i < n; i++)
            json_array_append_new(arr, cli_lock_json(&locks[i]));
        out_jset(doc, "locks", arr);
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else {
        out_table *t = name ? queue_table(&locks[0]) : cli_locks_table(locks, n);

        if (name)
            printf("%s (%s)\n", locks[0].path, locks[0].type ? locks[0].type : "empty");
        out_table_print(t, stdout, 1);
        out_table_free(t);
        cli_locks_warn(locks, n, stderr);
    }
out:
    cli_locks_free(locks, n);
    zkc_session_close(c->s);
    return rc;
}

/* --------------------------------------------------------------- lock */

struct lock_run {
    pthread_mutex_t mu;
    int granted; /* the async acquire answered */
    int acq_rc;
    int64_t token;
    int lost; /* 0, or the zkc_lock_event that ends the hold */
    cli_on_suspend policy;
    unsigned suspended, reconnected; /* events heard under CLI_SUSPEND_WAIT */
};

/* Dispatcher thread: record and wake the main thread. */
static void on_acquired(zkc_lock *lock, int rc, int64_t token, void *user_data)
{
    struct lock_run *r = user_data;

    (void)lock;
    pthread_mutex_lock(&r->mu);
    r->granted = 1;
    r->acq_rc = rc;
    r->token = token;
    pthread_mutex_unlock(&r->mu);
    cli_wake();
}

static void on_lock_event(zkc_lock *lock, zkc_lock_event ev, int64_t token, void *user_data)
{
    struct lock_run *r = user_data;

    (void)lock;
    (void)token;
    pthread_mutex_lock(&r->mu);
    if (ev == ZKC_LOCK_LOST) {
        /* Session gone, or the reconnected session found our node gone. */
        if (!r->lost)
            r->lost = ev;
    } else if (ev == ZKC_LOCK_SUSPENDED) {
        /* kill: the session may expire while we cannot hear it, and another
         * client may then take the lock (Curator's advice for
         * InterProcessMutex holders; see TN10 "Error handling"). wait: the
         * session usually lives on through another server; the library
         * turns a SUSPENDED that lasts a whole session timeout into LOST. */
        if (r->policy == CLI_SUSPEND_KILL && !r->lost)
            r->lost = ev;
        r->suspended++;
    } else if (ev == ZKC_LOCK_RECONNECTED) {
        r->reconnected++;
    }
    pthread_mutex_unlock(&r->mu);
    cli_wake();
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cmd_lock(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"kill-after", required_argument, NULL, 'k'},
        {"owner", required_argument, NULL, 'o'},
        {"on-suspend", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    cli_on_suspend policy = CLI_SUSPEND_KILL;
    unsigned seen_suspended = 0, seen_reconnected = 0;
    struct lock_run run;
    zkc_lock_opts lo;
    zkc_lock *lock = NULL;
    cli_child child;
    char path[1024], node[1024], env_tok[64], env_path[1100], env_node[1100];
    char *env[4];
    const char *owner = NULL;
    int dd, ch, rc, timeout = -1, kill_after = 5000, granted, lost = 0, acq_timeout;
    int64_t deadline = 0, token = 0;

    memset(&child, 0, sizeof(child));
    dd = cli_split_dashdash(argc, argv);
    opterr = 0;
    while ((ch = getopt_long(dd, argv, "t:k:o:", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            timeout = cli_parse_ms(optarg);
            if (timeout < 0)
                return cli_err(c, "lock: bad --timeout '%s'", optarg), cli_usage_error(c, "lock");
            break;
        case 'k':
            kill_after = cli_parse_ms(optarg);
            if (kill_after < 0)
                return cli_err(c, "lock: bad --kill-after '%s'", optarg),
                       cli_usage_error(c, "lock");
            break;
        case 'o':
            owner = optarg;
            break;
        case 'p':
            if (cli_parse_on_suspend(optarg, &policy) != 0)
                return cli_err(c, "lock: --on-suspend wants kill or wait, not '%s'", optarg),
                       cli_usage_error(c, "lock");
            break;
        default:
            cli_err(c, "lock: bad or incomplete option '%s'", argv[optind - 1]);
            return cli_usage_error(c, "lock");
        }
    }
    if (optind != dd - 1 || dd >= argc - 1) {
        cli_err(c, "lock: want PATH, then -- and a command");
        return cli_usage_error(c, "lock");
    }
    if (argv[optind][0] == '/')
        snprintf(path, sizeof(path), "%s", argv[optind]);
    else
        snprintf(path, sizeof(path), "%s/%s", c->root, argv[optind]);
    rc = cli_connect_with_signals(c);
    if (rc)
        return rc;
    memset(&run, 0, sizeof(run));
    pthread_mutex_init(&run.mu, NULL);
    run.policy = policy;
    zkc_lock_opts_init(&lo);
    lo.owner_id = owner;
    lo.on_event = on_lock_event;
    lo.user_data = &run;
    rc = zkc_lock_new(&lock, c->s, path, &lo);
    if (rc == 0)
        rc = zkc_lock_acquire_async(lock, on_acquired, &run);
    if (rc) {
        if (rc == ZKC_EINVAL)
            cli_err(c, "lock: bad lock path '%s'", path);
        rc = rc == ZKC_EINVAL ? CLI_EXIT_USAGE : cli_fail(c, rc, path);
        goto out;
    }
    acq_timeout = timeout;
    if (timeout >= 0)
        deadline = mono_ms() + timeout;
    for (;;) {
        int sig, left = -1;

        pthread_mutex_lock(&run.mu);
        granted = run.granted;
        pthread_mutex_unlock(&run.mu);
        if (granted)
            break;
        if (timeout >= 0) {
            int64_t l = deadline - mono_ms();

            if (l <= 0) {
                /* Cancel; a grant that crossed the cancel still counts. */
                zkc_lock_cancel(lock);
                deadline = mono_ms() + 3600 * 1000;
                timeout = -1;
                continue;
            }
            left = (int)l;
        }
        sig = cli_wait(left);
        if (sig) {
            cli_err(c, "interrupted while waiting for %s", path);
            rc = 128 + sig;
            goto out;
        }
    }
    pthread_mutex_lock(&run.mu);
    rc = run.acq_rc;
    token = run.token;
    pthread_mutex_unlock(&run.mu);
    if (rc == ZKC_ECANCELED) {
        cli_err(c, "lock %s not acquired within %d ms", path, acq_timeout);
        rc = CLI_EXIT_NOTACQUIRED;
        goto out;
    }
    if (rc) {
        rc = cli_fail(c, rc, path);
        goto out;
    }
    if (zkc_lock_node_path(lock, node, sizeof(node)) != 0)
        node[0] = '\0';
    if (c->verbose)
        cli_err(c, "acquired %s (node %s, fencing token %" PRId64 ")", path, node, token);
    snprintf(env_tok, sizeof(env_tok), "ZKCOORD_FENCING_TOKEN=%" PRId64, token);
    snprintf(env_path, sizeof(env_path), "ZKCOORD_LOCK_PATH=%s", path);
    snprintf(env_node, sizeof(env_node), "ZKCOORD_LOCK_NODE=%s", node);
    env[0] = env_tok;
    env[1] = env_path;
    env[2] = env_node;
    env[3] = NULL;
    pthread_mutex_lock(&run.mu);
    lost = run.lost;
    pthread_mutex_unlock(&run.mu);
    if (lost) {
        cli_err(c, "lock %s lost (%s) before the command started", path,
                zkc_lock_event_name((zkc_lock_event)lost));
        rc = CLI_EXIT_LOST;
        goto out;
    }
    rc = cli_spawn(c, &child, argv + dd + 1, env);
    if (rc)
        goto out;
    for (;;) {
        unsigned susp, reconn;
        int sig;

        if (cli_reap(&child))
            break;
        pthread_mutex_lock(&run.mu);
        lost = run.lost;
        susp = run.suspended;
        reconn = run.reconnected;
        pthread_mutex_unlock(&run.mu);
        if (!lost && c->verbose && susp != seen_suspended)
            cli_err(c, "lock %s: connection suspended, command left running (--on-suspend wait)",
                    path);
        if (!lost && c->verbose && reconn != seen_reconnected)
            cli_err(c, "lock %s: reconnected, the lock is still ours", path);
        seen_suspended = susp;
        seen_reconnected = reconn;
        if (lost) {
            cli_terminate(&child, kill_after);
            cli_err(c, "lock %s lost (%s): command terminated (its status: %d)", path,
                    zkc_lock_event_name((zkc_lock_event)lost), cli_status_code(child.status));
            rc = CLI_EXIT_LOST;
            goto out;
        }
        sig = cli_wait(-1);
        if (sig)
            cli_forward(&child, sig); /* CMD decides; we wait for it */
    }
    rc = cli_status_code(child.status);
out:
    if (lock) {
        if (zkc_lock_is_held(lock))
            zkc_lock_release(lock);
        zkc_lock_free(lock);
    }
    zkc_session_close(c->s);
    pthread_mutex_destroy(&run.mu);
    return rc;
}
