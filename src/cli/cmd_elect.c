/* elect: run a command only while leading a cluster's election (the
 * library's zkc_election, Curator LeaderLatch layout), and elect --observe:
 * print the leader and every change (zkc_election_observer_new). */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"

struct elect_run {
    pthread_mutex_t mu;
    int leading;
    int64_t token;
    unsigned demotions; /* DEMOTED events so far */
    int last_reason;
    int err;                         /* ERROR event: campaigning stopped */
    unsigned suspended, reconnected; /* connection states heard */
};

/* Dispatcher thread: connection states, for the -v notices under
 * --on-suspend wait (the election itself acts on them). */
static void on_state(zkc_session *s, zkc_conn_state st, void *user_data)
{
    struct elect_run *r = user_data;

    (void)s;
    pthread_mutex_lock(&r->mu);
    if (st == ZKC_CONN_SUSPENDED)
        r->suspended++;
    else if (st == ZKC_CONN_RECONNECTED)
        r->reconnected++;
    pthread_mutex_unlock(&r->mu);
    cli_wake();
}

/* Dispatcher thread: record and wake the main thread. */
static void on_elect(zkc_election *e, const zkc_election_event *ev, void *user_data)
{
    struct elect_run *r = user_data;

    (void)e;
    pthread_mutex_lock(&r->mu);
    switch (ev->type) {
    case ZKC_ELECTION_ELECTED:
        r->leading = 1;
        r->token = ev->token;
        break;
    case ZKC_ELECTION_DEMOTED:
        r->leading = 0;
        r->demotions++;
        r->last_reason = ev->reason;
        break;
    case ZKC_ELECTION_ERROR:
        r->err = ev->err ? ev->err : ZKC_EZOOKEEPER;
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&r->mu);
    cli_wake();
}

/* ------------------------------------------------------------ observe */

struct observe_run {
    cli *c;
    const char *cluster;
};

static void on_observe(zkc_election *e, const zkc_election_event *ev, void *user_data)
{
    struct observe_run *o = user_data;

    (void)e;
    if (ev->type != ZKC_ELECTION_LEADER_CHANGED)
        return;
    if (o->c->format == CLI_JSON) {
        json_t *doc = json_object(), *l = json_null();

        if (ev->leader_id) {
            l = json_object();
            out_jset(l, "id", out_jstr(ev->leader_id));
            out_jset(l, "node", out_jstr(ev->leader_node));
            out_jset(l, "token", json_integer(ev->token));
        }
        out_jset(doc, "event", json_string("leader_changed"));
        out_jset(doc, "cluster", out_jstr(o->cluster));
        out_jset(doc, "time_ms", json_integer(out_now_ms()));
        out_jset(doc, "leader", l);
        out_json_line(doc, stdout);
        json_decref(doc);
    } else if (ev->leader_id) {
        /* The node name is the peer's choice as much as its id. */
        char *id = out_printable(ev->leader_id, strlen(ev->leader_id), 200);
        char *node =
            ev->leader_node ? out_printable(ev->leader_node, strlen(ev->leader_node), 200) : NULL;

        printf("leader: %s (token %" PRId64 ", node %s)\n", id ? id : "?", ev->token,
               node ? node : "-");
        fflush(stdout);
        free(id);
        free(node);
    } else {
        printf("leader: none\n");
        fflush(stdout);
    }
}

static int observe(cli *c, const char *cluster)
{
    struct observe_run o;
    zkc_election *e = NULL;
    char path[1024];
    int rc;

    rc = cli_connect_with_signals(c);
    if (rc)
        return rc;
    o.c = c;
    o.cluster = cluster;
    cli_path(c, path, sizeof(path), cluster, "leader", NULL);
    rc = zkc_election_observer_new(&e, c->s, path, on_observe, &o);
    if (rc) {
        rc = cli_fail(c, rc, path);
        goto out;
    }
    /* Until INT/TERM/HUP: that is how an observer ends, so status 0. */
    while (cli_wait(-1) == 0)
        ;
    rc = 0;
out:
    zkc_election_close(e);
    zkc_session_close(c->s);
    return rc;
}

/* ---------------------------------------------------------------- run */

int cmd_elect(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"observe", no_argument, NULL, 'O'},
        {"kill-after", required_argument, NULL, 'k'},
        {"on-suspend", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    cli_on_suspend policy = CLI_SUSPEND_KILL;
    unsigned seen_suspended = 0, seen_reconnected = 0;
    int listening = 0;
    struct elect_run run;
    zkc_election_opts eo;
    zkc_election *e = NULL;
    cli_child child;
    const char *cluster, *id;
    char path[1024], env_tok[64], env_cluster[300], env_id[ZKC_ELECTION_ID_MAX + 32];
    char *env[4];
    int dd, ch, rc, obs = 0, kill_after = 5000, npos;
    unsigned demotions_at_start = 0;

    memset(&child, 0, sizeof(child));
    dd = cli_split_dashdash(argc, argv);
    opterr = 0;
    while ((ch = getopt_long(dd, argv, "k:", opts, NULL)) != -1) {
        switch (ch) {
        case 'O':
            obs = 1;
            break;
        case 'k':
            kill_after = cli_parse_ms(optarg);
            if (kill_after < 0) {
                cli_err(c, "elect: bad --kill-after '%s'", optarg);
                return cli_usage_error(c, "elect");
            }
            break;
        case 'p':
            if (cli_parse_on_suspend(optarg, &policy) != 0) {
                cli_err(c, "elect: --on-suspend wants kill or wait, not '%s'", optarg);
                return cli_usage_error(c, "elect");
            }
            break;
        default:
            cli_err(c, "elect: bad or incomplete option '%s'", argv[optind - 1]);
            return cli_usage_error(c, "elect");
        }
    }
    npos = dd - optind;
    if (obs) {
        if (npos != 1 || dd != argc) {
            cli_err(c, "elect --observe: want CLUSTER only");
            return cli_usage_error(c, "elect");
        }
    } else if (npos != 2 || dd >= argc - 1) {
        cli_err(c, "elect: want CLUSTER ID, then -- and a command");
        return cli_usage_error(c, "elect");
    }
    cluster = argv[optind];
    if (cli_name_ok(cluster) != 0) {
        cli_err(c, "bad cluster name '%s'", cluster);
        return cli_usage_error(c, "elect");
    }
    if (obs)
        return observe(c, cluster);
    id = argv[optind + 1];
    if (!*id || strlen(id) > ZKC_ELECTION_ID_MAX) {
        cli_err(c, "elect: the id must have 1 to %d bytes", ZKC_ELECTION_ID_MAX);
        return cli_usage_error(c, "elect");
    }
    rc = cli_connect_with_signals(c);
    if (rc)
        return rc;
    memset(&run, 0, sizeof(run));
    pthread_mutex_init(&run.mu, NULL);
    cli_path(c, path, sizeof(path), cluster, "leader", NULL);
    zkc_election_opts_init(&eo);
    eo.id = id;
    /* kill: step down at SUSPENDED (the library demotes us, CMD is
     * stopped); wait: lead on until LOST, or until the reconnected session
     * finds our node gone (both demote). */
    eo.on_suspend = policy == CLI_SUSPEND_WAIT ? ZKC_ELECTION_WAIT : ZKC_ELECTION_STEP_DOWN;
    if (policy == CLI_SUSPEND_WAIT && c->verbose)
        listening = zkc_session_add_listener(c->s, on_state, &run) == 0;
    eo.fn = on_elect;
    eo.user_data = &run;
    rc = zkc_election_new(&e, c->s, path, &eo);
    if (rc) {
        rc = cli_fail(c, rc, path);
        goto out;
    }
    for (;;) {
        int leading, err, sig, reason;
        unsigned demotions;
        int64_t token;

        unsigned susp, reconn;

        pthread_mutex_lock(&run.mu);
        leading = run.leading;
        token = run.token;
        demotions = run.demotions;
        err = run.err;
        reason = run.last_reason;
        susp = run.suspended;
        reconn = run.reconnected;
        pthread_mutex_unlock(&run.mu);
        if (child.pid > 0 && demotions == demotions_at_start && susp != seen_suspended)
            cli_err(c, "%s: connection suspended, command left running (--on-suspend wait)",
                    cluster);
        if (child.pid > 0 && demotions == demotions_at_start && reconn != seen_reconnected)
            cli_err(c, "%s: reconnected, still leading", cluster);
        seen_suspended = susp;
        seen_reconnected = reconn;
        if (child.pid > 0 && cli_reap(&child))
            break;
        if (child.pid > 0 && (demotions != demotions_at_start || err)) {
            cli_terminate(&child, kill_after);
            cli_err(c, "leadership of %s lost (%s): command terminated (its status: %d)", cluster,
                    err ? zkc_strerror(err)
                        : zkc_election_demote_reason_name((zkc_election_demote_reason)reason),
                    cli_status_code(child.status));
            rc = CLI_EXIT_LOST;
            goto out;
        }
        if (err) {
            rc = cli_fail(c, err, "campaigning");
            goto out;
        }
        if (child.pid == 0 && leading) {
            if (c->verbose)
                cli_err(c, "elected in %s as %s (fencing token %" PRId64 ")", cluster, id, token);
            snprintf(env_tok, sizeof(env_tok), "ZKCOORD_FENCING_TOKEN=%" PRId64, token);
            snprintf(env_cluster, sizeof(env_cluster), "ZKCOORD_CLUSTER=%s", cluster);
            snprintf(env_id, sizeof(env_id), "ZKCOORD_LEADER_ID=%s", id);
            env[0] = env_tok;
            env[1] = env_cluster;
            env[2] = env_id;
            env[3] = NULL;
            demotions_at_start = demotions;
            rc = cli_spawn(c, &child, argv + dd + 1, env);
            if (rc)
                goto out;
            continue;
        }
        sig = cli_wait(-1);
        if (sig) {
            if (child.pid == 0) {
                rc = 128 + sig;
                goto out;
            }
            cli_forward(&child, sig);
        }
    }
    rc = cli_status_code(child.status);
out:
    if (listening)
        zkc_session_remove_listener(c->s, on_state, &run);
    /* Closing deletes our node: the next participant leads only after CMD
     * is gone. */
    zkc_election_close(e);
    zkc_session_close(c->s);
    pthread_mutex_destroy(&run.mu);
    return rc;
}
