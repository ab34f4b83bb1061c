/* tree: the raw znode tree under a path, for debugging: node type, owner
 * session, data size. One getChildren per node (its Stat comes along). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"

struct tree_out {
    cli *c;
    out_table *t;
    json_t *nodes;
};

static int walk(struct tree_out *o, const char *path, const char *name, int depth)
{
    char **kids = NULL, *child = NULL;
    cli_stat st;
    int n = 0, i, rc;

    rc = cli_zk_children(o->c->s, path, o->c->timeout_ms, 0, &kids, &n, &st);
    if (rc)
        return rc;
    if (o->nodes) {
        json_t *j = json_object();

        out_jset(j, "path", out_jstr(path));
        out_jset(j, "type", json_string(st.owner ? "ephemeral" : "persistent"));
        out_jset(j, "session", out_jsession(st.owner));
        out_jset(j, "data_length", json_integer(st.data_length));
        out_jset(j, "children", json_integer(st.num_children));
        out_jset(j, "czxid", json_integer(st.czxid));
        out_jset(j, "mzxid", json_integer(st.mzxid));
        out_jset(j, "ctime_ms", json_integer(st.ctime_ms));
        out_jset(j, "mtime_ms", json_integer(st.mtime_ms));
        out_jset(j, "version", json_integer(st.version));
        json_array_append_new(o->nodes, j);
    } else {
        char label[1200], sess[32], size[16];
        int ind = depth * 2 < 200 ? depth * 2 : 200;

        snprintf(label, sizeof(label), "%*s%s", ind, "", depth ? name : path);
        snprintf(size, sizeof(size), "%" PRId32, st.data_length);
        out_table_row(o->t, label, st.owner ? "ephemeral" : "persistent",
                      out_session(sess, sizeof(sess), st.owner), size);
    }
    for (i = 0; i < n; i++) {
        size_t len = strlen(path) + strlen(kids[i]) + 2;

        child = malloc(len);
        if (!child) {
            rc = ZKC_ENOMEM;
            break;
        }
        snprintf(child, len, "%s%s%s", path, strcmp(path, "/") == 0 ? "" : "/", kids[i]);
        rc = walk(o, child, kids[i], depth + 1);
        free(child);
        if (rc == ZKC_ENONODE) /* went away while we walked */
            rc = 0;
        if (rc)
            break;
    }
    cli_names_free(kids, n);
    return rc;
}

int cmd_tree(cli *c, int argc, char **argv)
{
    struct tree_out o;
    char path[1024];
    size_t len;
    int rc, i;

    for (i = 1; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_err(c, "tree: unknown option '%s'", argv[i]);
            return cli_usage_error(c, "tree");
        }
    if (argc > 2) {
        cli_err(c, "tree: at most one PATH");
        return cli_usage_error(c, "tree");
    }
    if (argc == 1)
        snprintf(path, sizeof(path), "%s", *c->root ? c->root : "/");
    else if (argv[1][0] == '/')
        snprintf(path, sizeof(path), "%s", argv[1]);
    else
        snprintf(path, sizeof(path), "%s/%s", c->root, argv[1]);
    len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    if (strstr(path, "//")) {
        cli_err(c, "tree: bad path '%s'", path);
        return cli_usage_error(c, "tree");
    }
    rc = cli_connect(c);
    if (rc)
        return rc;
    memset(&o, 0, sizeof(o));
    o.c = c;
    if (c->format == CLI_JSON)
        o.nodes = json_array();
    else
        o.t = out_table_new("NODE", "TYPE", "SESSION", "SIZE", NULL);
    rc = walk(&o, path, path, 0);
    if (rc == ZKC_ENONODE) {
        cli_err(c, "no node %s", path);
        rc = CLI_EXIT_NOTFOUND;
    } else if (rc) {
        rc = cli_fail(c, rc, path);
    } else if (o.nodes) {
        json_t *doc = json_object();

        out_jset(doc, "path", out_jstr(path));
        out_jset(doc, "nodes", o.nodes);
        o.nodes = NULL;
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else {
        out_table_print(o.t, stdout, 1);
    }
    json_decref(o.nodes);
    out_table_free(o.t);
    zkc_session_close(c->s);
    return rc;
}
