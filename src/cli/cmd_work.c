/* work, items: the work assignment of a cluster (libzkcoord's zkc_work):
 * the plan, who claims what, and why an item is not running; and the item
 * list. All logic is the library's; this file parses and prints. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "output.h"
#include "zkcoord/work.h"

#define SPEC_SHOWN 60 /* spec bytes shown in a table */

static json_t *plan_json(const zkc_work_view *v)
{
    json_t *p = json_object();
    int64_t ver = 0;
    const char *leader = NULL, *why = NULL;
    zkc_work_plan_status st = zkc_work_view_plan(v, &ver, &leader, &why);

    out_jset(p, "status",
             json_string(st == ZKC_WORK_PLAN_OK        ? "ok"
                         : st == ZKC_WORK_PLAN_MISSING ? "missing"
                                                       : "malformed"));
    out_jset(p, "version", st == ZKC_WORK_PLAN_OK ? json_integer(ver) : json_null());
    out_jset(p, "leader", out_jstr(leader));
    out_jset(p, "reason", out_jstr(why));
    return p;
}

static int print_work(const cli *c, const char *cluster, const zkc_work_view *v)
{
    int i, n = zkc_work_view_count(v), rc = 0;

    if (c->format == CLI_JSON) {
        json_t *doc = json_object(), *items = json_array(), *members = json_array();

        for (i = 0; i < zkc_work_view_member_count(v); i++) {
            json_t *m = json_object();
            int64_t w = 1;
            const char *id = zkc_work_view_member(v, i, &w);

            out_jset(m, "id", out_jstr(id));
            out_jset(m, "weight", json_integer(w));
            json_array_append_new(members, m);
        }
        for (i = 0; i < n; i++) {
            const zkc_work_entry *e = zkc_work_view_at(v, i);
            json_t *o = json_object();

            out_jset(o, "item", out_jstr(e->item));
            out_jset(o, "exists", json_boolean(e->exists));
            out_jset(o, "planned", out_jstr(e->planned));
            out_jset(o, "claimed_by", out_jstr(e->claimed_by));
            out_jset(o, "token", e->claimed_by ? json_integer(e->token) : json_null());
            out_jset(o, "session", out_jsession(e->claim_session));
            out_jset(o, "state", json_string(zkc_work_item_state_name(e->state)));
            json_array_append_new(items, o);
        }
        out_jset(doc, "cluster", out_jstr(cluster));
        out_jset(doc, "plan", plan_json(v));
        out_jset(doc, "members", members);
        out_jset(doc, "items", items);
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else {
        out_table *t = out_table_new("ITEM", "PLANNED", "CLAIMED BY", "TOKEN", "STATE", NULL);
        int64_t ver = 0;
        const char *leader = NULL, *why = NULL;
        zkc_work_plan_status st = zkc_work_view_plan(v, &ver, &leader, &why);
        char *pl = out_printable(leader ? leader : "-", strlen(leader ? leader : "-"), 255);
        char *pw = out_printable(why ? why : "", strlen(why ? why : ""), 255);
        int running = 0;

        if (st == ZKC_WORK_PLAN_OK)
            printf("plan: version %" PRId64 ", written by %s\n", ver, pl ? pl : "?");
        else if (st == ZKC_WORK_PLAN_MISSING)
            printf("plan: none yet (no leader has planned)\n");
        else
            printf("plan: malformed (%s); the leader replaces it\n", pw ? pw : "?");
        free(pl);
        free(pw);
        for (i = 0; i < n; i++) {
            const zkc_work_entry *e = zkc_work_view_at(v, i);
            char tok[32];

            snprintf(tok, sizeof(tok), "%" PRId64, e->token);
            out_table_row(t, e->item, e->planned, e->claimed_by, e->claimed_by ? tok : NULL,
                          zkc_work_item_state_name(e->state));
            running += e->state == ZKC_WORK_RUNNING;
        }
        printf("members: %d, items: %d, running as planned: %d\n", zkc_work_view_member_count(v), n,
               running);
        out_table_print(t, stdout, 0);
        out_table_free(t);
    }
    return rc;
}

int cmd_work(cli *c, int argc, char **argv)
{
    zkc_work_view *v = NULL;
    char path[1024];
    int rc;

    if (argc != 2) {
        cli_err(c, "work: %s", argc < 2 ? "CLUSTER missing" : "too many arguments");
        return cli_usage_error(c, "work");
    }
    if (cli_name_ok(argv[1]) != 0) {
        cli_err(c, "work: bad cluster name '%s'", argv[1]);
        return cli_usage_error(c, "work");
    }
    rc = cli_connect(c);
    if (rc)
        return rc;
    rc = cli_cluster_exists(c, argv[1]);
    if (rc == 0) {
        cli_path(c, path, sizeof(path), argv[1], NULL, NULL);
        rc = zkc_work_view_read(c->s, path, c->timeout_ms, &v);
        if (rc)
            rc = cli_fail(c, rc, path);
        else
            rc = print_work(c, argv[1], v);
    }
    zkc_work_view_free(v);
    zkc_session_close(c->s);
    return rc;
}

/* ---- items */

static int items_list(cli *c, const char *cluster)
{
    zkc_work_view *v = NULL;
    char path[1024];
    int rc, i;

    rc = cli_cluster_exists(c, cluster);
    if (rc)
        return rc;
    cli_path(c, path, sizeof(path), cluster, NULL, NULL);
    rc = zkc_work_view_read(c->s, path, c->timeout_ms, &v);
    if (rc)
        return cli_fail(c, rc, path);
    if (c->format == CLI_JSON) {
        json_t *doc = json_object(), *items = json_array();

        for (i = 0; i < zkc_work_view_count(v); i++) {
            const zkc_work_entry *e = zkc_work_view_at(v, i);
            json_t *o;

            if (!e->exists)
                continue;
            o = json_object();
            out_jset(o, "item", out_jstr(e->item));
            out_jset(o, "spec", e->spec ? out_jstrn(e->spec, (size_t)e->spec_len) : json_null());
            out_jset(o, "size", json_integer(e->spec_len));
            json_array_append_new(items, o);
        }
        out_jset(doc, "cluster", out_jstr(cluster));
        out_jset(doc, "items", items);
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else {
        out_table *t = out_table_new("ITEM", "SIZE", "SPEC", NULL);

        for (i = 0; i < zkc_work_view_count(v); i++) {
            const zkc_work_entry *e = zkc_work_view_at(v, i);
            char size[16], *spec;

            if (!e->exists)
                continue;
            snprintf(size, sizeof(size), "%d", e->spec_len);
            spec = e->spec ? out_printable(e->spec, (size_t)e->spec_len, SPEC_SHOWN) : NULL;
            out_table_row(t, e->item, size, spec);
            free(spec);
        }
        out_table_print(t, stdout, 0);
        out_table_free(t);
    }
    zkc_work_view_free(v);
    return rc;
}

/* SPEC "-": read stdin, at most ZKC_WORK_MAX_SPEC bytes. -1 when larger. */
static int read_stdin(char **out, int *len)
{
    size_t cap = ZKC_WORK_MAX_SPEC + 1, n = 0;
    char *buf = malloc(cap);
    ssize_t r;

    if (!buf)
        return -1;
    while (n < cap && (r = read(0, buf + n, cap - n)) > 0)
        n += (size_t)r;
    if (n > ZKC_WORK_MAX_SPEC) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = (int)n;
    return 0;
}

int cmd_items(cli *c, int argc, char **argv)
{
    const char *cluster, *op;
    char path[1024], *spec = NULL;
    int rc, len = 0;

    if (argc < 3) {
        cli_err(c, "items: %s", argc < 2 ? "CLUSTER missing" : "list, add or remove missing");
        return cli_usage_error(c, "items");
    }
    cluster = argv[1];
    op = argv[2];
    if (cli_name_ok(cluster) != 0) {
        cli_err(c, "items: bad cluster name '%s'", cluster);
        return cli_usage_error(c, "items");
    }
    if (!((strcmp(op, "list") == 0 && argc == 3) ||
          (strcmp(op, "add") == 0 && (argc == 4 || argc == 5)) ||
          (strcmp(op, "remove") == 0 && argc == 4))) {
        cli_err(c, "items: expected list, add ITEM [SPEC|-] or remove ITEM");
        return cli_usage_error(c, "items");
    }
    if (argc >= 4 && zkc_work_item_name_check(argv[3]) != 0) {
        cli_err(c, "items: bad item name '%s' (1-%d printable ASCII bytes, no '/' or space)",
                argv[3], ZKC_WORK_MAX_ITEM);
        return cli_usage_error(c, "items");
    }
    if (argc == 5) {
        if (strcmp(argv[4], "-") == 0) {
            if (read_stdin(&spec, &len) != 0) {
                cli_err(c, "items: the spec on stdin is larger than %d bytes", ZKC_WORK_MAX_SPEC);
                return CLI_EXIT_USAGE;
            }
        } else {
            len = (int)strlen(argv[4]);
            if (len > ZKC_WORK_MAX_SPEC) {
                cli_err(c, "items: the spec is larger than %d bytes", ZKC_WORK_MAX_SPEC);
                return CLI_EXIT_USAGE;
            }
            spec = strdup(argv[4]);
            if (!spec)
                return CLI_EXIT_ERROR;
        }
    }
    rc = cli_connect(c);
    if (rc) {
        free(spec);
        return rc;
    }
    cli_path(c, path, sizeof(path), cluster, NULL, NULL);
    if (strcmp(op, "list") == 0) {
        rc = items_list(c, cluster);
    } else if (strcmp(op, "add") == 0) {
        rc = zkc_work_item_add(c->s, path, argv[3], spec, len, c->timeout_ms);
        if (rc == ZKC_ENODEEXISTS) {
            cli_err(c, "items: item '%s' already exists in %s (remove it first)", argv[3], cluster);
            rc = CLI_EXIT_ERROR;
        } else if (rc) {
            rc = cli_fail(c, rc, path);
        }
    } else {
        rc = zkc_work_item_remove(c->s, path, argv[3], c->timeout_ms);
        if (rc == ZKC_ENONODE) {
            cli_err(c, "items: no item '%s' in %s", argv[3], cluster);
            rc = CLI_EXIT_NOTFOUND;
        } else if (rc) {
            rc = cli_fail(c, rc, path);
        }
    }
    if (rc == 0 && strcmp(op, "list") != 0 && c->format == CLI_JSON) {
        json_t *doc = json_object();

        out_jset(doc, "cluster", out_jstr(cluster));
        out_jset(doc, "op", json_string(op));
        out_jset(doc, "item", out_jstr(argv[3]));
        if (strcmp(op, "add") == 0)
            out_jset(doc, "size", json_integer(len));
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    }
    free(spec);
    zkc_session_close(c->s);
    return rc;
}
