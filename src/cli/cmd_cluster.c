/* clusters, status, members, leader: read-only views of a cluster folder,
 * built from the library's one-shot reads (zkc_group_read,
 * zkc_election_observe_leader, zkc_lock_inspect). */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"

/* Parse the command's arguments: only --help-like flags are handled in
 * main.c, so anything starting with '-' here is a usage error. */
static int positional(cli *c, int argc, char **argv, int min, int max)
{
    int i;

    for (i = 1; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_err(c, "%s: unknown option '%s'", argv[0], argv[i]),
                   cli_usage_error(c, argv[0]);
    if (argc - 1 < min || argc - 1 > max)
        return cli_err(c, "%s: wrong number of arguments", argv[0]), cli_usage_error(c, argv[0]);
    return 0;
}

static int check_cluster_arg(cli *c, const char *cmd, const char *cluster)
{
    if (cli_name_ok(cluster) != 0) {
        cli_err(c, "bad cluster name '%s'", cluster);
        return cli_usage_error(c, cmd);
    }
    return 0;
}

/* ----------------------------------------------------------- members */

static json_t *flags_json(unsigned f)
{
    json_t *a = json_array();

    if (f & ZKC_MEMBER_MALFORMED)
        json_array_append_new(a, json_string("malformed"));
    if (f & ZKC_MEMBER_OVERSIZE)
        json_array_append_new(a, json_string("oversize"));
    if (f & ZKC_MEMBER_NO_ID)
        json_array_append_new(a, json_string("no_id"));
    if (f & ZKC_MEMBER_DUPLICATE)
        json_array_append_new(a, json_string("duplicate"));
    return a;
}

json_t *cli_member_json(const zkc_member *m, int64_t now_ms)
{
    json_t *o = json_object(), *eps = json_object(), *meta = NULL;
    const char *md = zkc_member_metadata(m);
    unsigned f = zkc_member_flags(m);
    int i, port = zkc_member_port(m);

    out_jset(o, "node", out_jstr(zkc_member_node(m)));
    out_jset(o, "id", out_jstr(zkc_member_id(m)));
    out_jset(o, "host", out_jstr(zkc_member_host(m)));
    out_jset(o, "port", port >= 0 ? json_integer(port) : json_null());
    for (i = 0; i < zkc_member_endpoint_count(m); i++) {
        const char *name = NULL, *host = NULL;
        int p = -1;
        json_t *ep;

        if (zkc_member_endpoint(m, i, &name, &host, &p) != 0 || !name)
            continue;
        ep = json_object();
        out_jset(ep, "host", out_jstr(host));
        out_jset(ep, "port", p >= 0 ? json_integer(p) : json_null());
        json_object_set_new(eps, name, ep);
    }
    out_jset(o, "endpoints", eps);
    out_jset(o, "status", out_jstr(zkc_member_status(m)));
    out_jset(o, "shard", json_integer(zkc_member_shard(m)));
    if (md) {
        meta = json_loads(md, 0, NULL);
        if (!meta)
            meta = out_jstr(md);
    }
    out_jset(o, "metadata", meta);
    out_jset(o, "session", out_jsession(zkc_member_owner(m)));
    out_jset(o, "czxid", json_integer(zkc_member_czxid(m)));
    out_jset(o, "ctime_ms", json_integer(zkc_member_ctime_ms(m)));
    out_jset(o, "age_ms",
             json_integer(now_ms > zkc_member_ctime_ms(m) ? now_ms - zkc_member_ctime_ms(m) : 0));
    out_jset(o, "flags", flags_json(f));
    if (f & ZKC_MEMBER_MALFORMED) {
        size_t len = 0;
        const char *raw = zkc_member_payload(m, &len);

        /* What the other tool wrote, so it can be found and fixed. */
        out_jset(o, "payload", raw ? out_jstrn(raw, len) : json_null());
    }
    return o;
}

static void member_endpoint(const zkc_member *m, char *buf, size_t len)
{
    const char *h = zkc_member_host(m);
    int p = zkc_member_port(m);

    if (!h || !*h)
        snprintf(buf, len, "-");
    else if (strchr(h, ':'))
        snprintf(buf, len, "[%s]:%d", h, p); /* IPv6 */
    else if (p >= 0)
        snprintf(buf, len, "%s:%d", h, p);
    else
        snprintf(buf, len, "%s", h);
}

static void member_note(const zkc_member *m, const cli_drains *d, char *buf, size_t len)
{
    unsigned f = zkc_member_flags(m);
    const zka_drain_note *dn = d ? cli_drain_find(d, zkc_member_id(m)) : NULL;

    buf[0] = '\0';
    if (dn) {
        char *r = out_printable(dn->reason, strlen(dn->reason), 60);
        size_t n;

        snprintf(buf, len, "drained%s%s", dn->reason[0] ? ": " : "", dn->reason[0] && r ? r : "");
        free(r);
        n = strlen(buf);
        if (f)
            snprintf(buf + n, len - n, "; ");
        else
            return;
    }
    if (f & ZKC_MEMBER_OVERSIZE) {
        size_t n = strlen(buf);

        snprintf(buf + n, len - n, "oversize payload (not read)");
    } else if (f & ZKC_MEMBER_MALFORMED) {
        size_t plen = 0;
        const char *raw = zkc_member_payload(m, &plen);
        char *p = raw ? out_printable(raw, plen, 40) : NULL;

        size_t n = strlen(buf);

        snprintf(buf + n, len - n, "malformed: %s", p ? p : "(empty)");
        free(p);
    } else if (f & ZKC_MEMBER_NO_ID) {
        size_t n = strlen(buf);

        snprintf(buf + n, len - n, "no zkcoord id");
    }
    if (f & ZKC_MEMBER_DUPLICATE) {
        size_t n = strlen(buf);

        snprintf(buf + n, len - n, "%sduplicate id", n ? "; " : "");
    }
}

static out_table *members_table(const zkc_group_view *v, const cli_drains *d, int64_t now)
{
    out_table *t = out_table_new("ID", "ENDPOINT", "STATUS", "SESSION", "AGE", "NOTE", NULL);
    int i;

    for (i = 0; i < zkc_group_view_count(v); i++) {
        const zkc_member *m = zkc_group_view_at(v, i);
        char ep[300], sess[32], age[32], note[200];
        unsigned f = zkc_member_flags(m);
        const char *status = zkc_member_status(m);

        member_endpoint(m, ep, sizeof(ep));
        member_note(m, d, note, sizeof(note));
        if (!status && (f & (ZKC_MEMBER_MALFORMED | ZKC_MEMBER_OVERSIZE)))
            status = "MALFORMED";
        out_table_row(t, zkc_member_id(m), ep, status,
                      out_session(sess, sizeof(sess), zkc_member_owner(m)),
                      out_age(age, sizeof(age), now - zkc_member_ctime_ms(m)), note[0] ? note : "");
    }
    return t;
}

static int read_members(cli *c, const char *cluster, zkc_group_view **v)
{
    char path[1024];
    int rc;

    cli_path(c, path, sizeof(path), cluster, "members", NULL);
    rc = zkc_group_read(c->s, path, 0, v, c->timeout_ms);
    if (rc)
        return cli_fail(c, rc, path);
    return 0;
}

static json_t *members_json(const zkc_group_view *v, const cli_drains *d, int64_t now)
{
    json_t *a = json_array();
    int i;

    for (i = 0; i < zkc_group_view_count(v); i++) {
        const zkc_member *m = zkc_group_view_at(v, i);
        json_t *o = cli_member_json(m, now);

        out_jset(o, "drained", cli_drain_json(cli_drain_find(d, zkc_member_id(m))));
        json_array_append_new(a, o);
    }
    return a;
}

/* Every drain note, registered or not: {"id", "registered", ...note}. */
static json_t *drains_json(const cli_drains *d, const zkc_group_view *v)
{
    json_t *a = json_array();
    int i;

    for (i = 0; i < d->n; i++) {
        json_t *o = cli_drain_json(&d->notes[i]);

        out_jset(o, "id", out_jstr(d->ids[i]));
        out_jset(o, "registered", json_boolean(zkc_group_view_find(v, d->ids[i]) != NULL));
        json_array_append_new(a, o);
    }
    return a;
}

/* Read the drain notes; an error is printed and returned as an exit code. */
static int read_drains(cli *c, const char *cluster, cli_drains *d)
{
    int rc = cli_read_drains(c, cluster, d);

    return rc ? cli_fail(c, rc, "reading the drain notes") : 0;
}

/* ------------------------------------------------------------ leader */

int cli_read_leader(cli *c, const char *cluster, zkc_election_leader_info *info)
{
    char path[1024];

    cli_path(c, path, sizeof(path), cluster, "leader", NULL);
    return zkc_election_observe_leader(c->s, path, info, c->timeout_ms);
}

json_t *cli_leader_json(const zkc_election_leader_info *info)
{
    json_t *o;

    if (!info)
        return json_null();
    o = json_object();
    out_jset(o, "id", out_jstr(info->id));
    out_jset(o, "node", out_jstr(info->node));
    out_jset(o, "token", json_integer(info->token));
    out_jset(o, "session", out_jsession(info->session_id));
    return o;
}

/* ------------------------------------------------------------ commands */

static int connect_cluster(cli *c, const char *cmd, const char *cluster)
{
    int rc = check_cluster_arg(c, cmd, cluster);

    if (rc)
        return rc;
    rc = cli_connect(c);
    if (rc)
        return rc;
    return cli_cluster_exists(c, cluster);
}

int cmd_members(cli *c, int argc, char **argv)
{
    const char *cluster;
    zkc_group_view *v = NULL;
    cli_drains d;
    char path[1024];
    int64_t now;
    int rc;

    rc = positional(c, argc, argv, 1, 1);
    if (rc)
        return rc;
    cluster = argv[1];
    rc = connect_cluster(c, argv[0], cluster);
    if (rc)
        goto out;
    rc = read_members(c, cluster, &v);
    if (rc)
        goto out;
    rc = read_drains(c, cluster, &d);
    if (rc)
        goto out;
    now = out_now_ms();
    if (c->format == CLI_JSON) {
        json_t *doc = json_object();

        cli_path(c, path, sizeof(path), cluster, "members", NULL);
        out_jset(doc, "cluster", out_jstr(cluster));
        out_jset(doc, "path", out_jstr(path));
        out_jset(doc, "members", members_json(v, &d, now));
        out_jset(doc, "drained", drains_json(&d, v));
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else {
        out_table *t = members_table(v, &d, now);

        out_table_print(t, stdout, 1);
        out_table_free(t);
    }
    cli_drains_free(&d);
out:
    zkc_group_view_free(v);
    zkc_session_close(c->s);
    return rc;
}

int cmd_leader(cli *c, int argc, char **argv)
{
    zkc_election_leader_info info;
    const char *cluster;
    char path[1024], sess[32];
    int rc, found;

    rc = positional(c, argc, argv, 1, 1);
    if (rc)
        return rc;
    cluster = argv[1];
    rc = connect_cluster(c, argv[0], cluster);
    if (rc)
        goto out;
    rc = cli_read_leader(c, cluster, &info);
    if (rc && rc != ZKC_ENONODE) {
        rc = cli_fail(c, rc, "reading the leader");
        goto out;
    }
    found = rc == 0;
    cli_path(c, path, sizeof(path), cluster, "leader", NULL);
    if (c->format == CLI_JSON) {
        json_t *doc = json_object();

        out_jset(doc, "cluster", out_jstr(cluster));
        out_jset(doc, "path", out_jstr(path));
        out_jset(doc, "leader", cli_leader_json(found ? &info : NULL));
        out_json_doc(doc, stdout);
        json_decref(doc);
    } else if (found) {
        out_table *t = out_table_new("ID", "TOKEN", "SESSION", "NODE", NULL);
        char tok[32];

        snprintf(tok, sizeof(tok), "%" PRId64, info.token);
        out_table_row(t, info.id, tok, out_session(sess, sizeof(sess), info.session_id), info.node);
        out_table_print(t, stdout, 1);
        out_table_free(t);
    }
    if (!found) {
        cli_err(c, "no leader in cluster '%s'", cluster);
        rc = CLI_EXIT_NOTFOUND;
    }
out:
    zkc_session_close(c->s);
    return rc;
}

int cmd_status(cli *c, int argc, char **argv)
{
    zkc_election_leader_info info;
    zkc_group_view *v = NULL;
    cli_lock *locks = NULL;
    cli_drains d;
    const char *cluster;
    char path[1024];
    int rc, found, nlocks = 0;
    int64_t now;

    memset(&d, 0, sizeof(d));
    rc = positional(c, argc, argv, 1, 1);
    if (rc)
        return rc;
    cluster = argv[1];
    rc = connect_cluster(c, argv[0], cluster);
    if (rc)
        goto out;
    rc = cli_read_leader(c, cluster, &info);
    if (rc && rc != ZKC_ENONODE) {
        rc = cli_fail(c, rc, "reading the leader");
        goto out;
    }
    found = rc == 0;
    rc = read_members(c, cluster, &v);
    if (rc)
        goto out;
    rc = cli_read_locks(c, cluster, NULL, &locks, &nlocks);
    if (rc) {
        rc = cli_fail(c, rc, "reading the locks");
        goto out;
    }
    rc = read_drains(c, cluster, &d);
    if (rc)
        goto out;
    now = out_now_ms();
    cli_path(c, path, sizeof(path), cluster, NULL, NULL);
    if (c->format == CLI_JSON) {
        json_t *doc = json_object(), *la = json_array();
        int i;

        out_jset(doc, "cluster", out_jstr(cluster));
        out_jset(doc, "path", out_jstr(path));
        out_jset(doc, "leader", cli_leader_json(found ? &info : NULL));
        out_jset(doc, "members", members_json(v, &d, now));
        out_jset(doc, "drained", drains_json(&d, v));
        for (i = 0; i < nlocks; i++)
            json_array_append_new(la, cli_lock_json(&locks[i]));
        out_jset(doc, "locks", la);
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else {
        out_table *t;
        char sess[32];

        printf("Cluster: %s (%s)\n", cluster, path);
        if (found) {
            char *id = out_printable(info.id, strlen(info.id), 200);

            printf("Leader:  %s (token %" PRId64 ", session %s)\n", id ? id : "?", info.token,
                   out_session(sess, sizeof(sess), info.session_id));
            free(id);
        } else {
            printf("Leader:  none\n");
        }
        printf("\nMembers (%d):\n", zkc_group_view_count(v));
        t = members_table(v, &d, now);
        out_table_print(t, stdout, 0);
        out_table_free(t);
        if (d.n > 0) {
            int i;

            printf("\nDrained (%d):\n", d.n);
            t = out_table_new("ID", "REGISTERED", "AGE", "BY", "REASON", NULL);
            for (i = 0; i < d.n; i++) {
                const zka_drain_note *n = &d.notes[i];
                char since[32];

                if (n->since_ms)
                    out_age(since, sizeof(since), now - n->since_ms);
                else
                    snprintf(since, sizeof(since), "-");
                out_table_row(t, d.ids[i], zkc_group_view_find(v, d.ids[i]) ? "yes" : "no", since,
                              n->by, n->malformed ? "(malformed note)" : n->reason);
            }
            out_table_print(t, stdout, 0);
            out_table_free(t);
        }
        printf("\nLocks (%d):\n", nlocks);
        t = cli_locks_table(locks, nlocks);
        out_table_print(t, stdout, 0);
        out_table_free(t);
        cli_locks_warn(locks, nlocks, stderr);
    }
out:
    cli_drains_free(&d);
    cli_locks_free(locks, nlocks);
    zkc_group_view_free(v);
    zkc_session_close(c->s);
    return rc;
}

int cmd_clusters(cli *c, int argc, char **argv)
{
    char **names = NULL, path[1024];
    int n = 0, i, rc;
    json_t *arr = NULL;
    out_table *t = NULL;

    rc = positional(c, argc, argv, 0, 0);
    if (rc)
        return rc;
    rc = cli_connect(c);
    if (rc)
        return rc;
    rc = cli_zk_children(c->s, *c->root ? c->root : "/", c->timeout_ms, 0, &names, &n, NULL);
    if (rc == ZKC_ENONODE) {
        rc = 0; /* no root yet: no clusters */
    } else if (rc) {
        rc = cli_fail(c, rc, *c->root ? c->root : "/");
        goto out;
    }
    if (c->format == CLI_JSON)
        arr = json_array();
    else
        t = out_table_new("CLUSTER", "MEMBERS", "LEADER", "LOCKS", NULL);
    for (i = 0; i < n; i++) {
        zkc_election_leader_info info;
        cli_stat st;
        int members = 0, nlocks = 0, lrc;

        if (*c->root == '\0' && strcmp(names[i], "zookeeper") == 0)
            continue; /* ZooKeeper's own folder, when the root is "/" */
        cli_path(c, path, sizeof(path), names[i], "members", NULL);
        rc = cli_zk_stat(c->s, path, c->timeout_ms, 0, &st);
        if (rc == 0)
            members = st.num_children;
        else if (rc != ZKC_ENONODE)
            goto fail;
        cli_path(c, path, sizeof(path), names[i], "locks", NULL);
        rc = cli_zk_stat(c->s, path, c->timeout_ms, 0, &st);
        if (rc == 0)
            nlocks = st.num_children;
        else if (rc != ZKC_ENONODE)
            goto fail;
        lrc = cli_read_leader(c, names[i], &info);
        if (lrc && lrc != ZKC_ENONODE) {
            rc = lrc;
            goto fail;
        }
        if (arr) {
            json_t *o = json_object();

            out_jset(o, "name", out_jstr(names[i]));
            out_jset(o, "members", json_integer(members));
            out_jset(o, "leader", lrc == 0 ? out_jstr(info.id) : json_null());
            out_jset(o, "locks", json_integer(nlocks));
            json_array_append_new(arr, o);
        } else {
            char mb[16], lb[16];

            snprintf(mb, sizeof(mb), "%d", members);
            snprintf(lb, sizeof(lb), "%d", nlocks);
            out_table_row(t, names[i], mb, lrc == 0 ? info.id : NULL, lb);
        }
    }
    rc = 0;
    if (arr) {
        json_t *doc = json_object();

        out_jset(doc, "root", out_jstr(*c->root ? c->root : "/"));
        out_jset(doc, "clusters", arr);
        arr = NULL;
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else {
        out_table_print(t, stdout, 1);
    }
    goto out;
fail:
    rc = cli_fail(c, rc, path);
out:
    json_decref(arr);
    out_table_free(t);
    cli_names_free(names, n);
    zkc_session_close(c->s);
    return rc;
}
