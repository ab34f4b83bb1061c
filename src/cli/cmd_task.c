/* submit and tasks: the task queue of a cluster (libzkcoord's
 * zkcoord/task.h). All queue logic is the library's; this file parses,
 * reads and prints. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "output.h"
#include "zkcoord/task.h"

/* Exit code when no result came within submit --timeout. */
#define EXIT_NO_RESULT CLI_EXIT_NOTACQUIRED

/* Read all of stdin, at most `max` bytes (+1 to tell it is too long). */
static char *read_stdin(size_t max, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t r;

    if (!buf)
        return NULL;
    for (;;) {
        if (n == cap) {
            char *nb;
            if (cap > max)
                break;
            cap *= 2;
            if (!(nb = realloc(buf, cap + 1))) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        r = read(0, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static json_t *result_json(const zkc_task_result *r)
{
    json_t *o = json_object();

    out_jset(o, "status", json_integer(r->status));
    out_jset(o, "output", out_jstrn(r->output, r->output_len));
    out_jset(o, "truncated", json_boolean(r->truncated));
    out_jset(o, "worker", out_jstr(r->worker));
    out_jset(o, "token", json_integer(r->token));
    return o;
}

static int status_exit(int status)
{
    return status >= 0 && status <= 255 ? status : CLI_EXIT_ERROR;
}

int cmd_submit(cli *c, int argc, char **argv)
{
    const char *cluster = NULL, *arg = NULL;
    int wait = 0, del = 0, timeout = -1, i, rc;
    char path[1024], id[ZKC_TASK_ID_MAX];
    char *payload = NULL;
    size_t len = 0;
    zkc_task_result *r = NULL;
    json_t *doc;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0) {
            wait = 1;
        } else if (strcmp(argv[i], "--delete") == 0) {
            del = 1;
        } else if (strcmp(argv[i], "--timeout") == 0) {
            if (i + 1 >= argc || (timeout = cli_parse_ms(argv[i + 1])) < 0) {
                cli_err(c, "submit: --timeout needs milliseconds");
                return cli_usage_error(c, "submit");
            }
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_err(c, "submit: unknown option '%s'", argv[i]);
            return cli_usage_error(c, "submit");
        } else if (!cluster) {
            cluster = argv[i];
        } else if (!arg) {
            arg = argv[i];
        } else {
            cli_err(c, "submit: too many arguments");
            return cli_usage_error(c, "submit");
        }
    }
    if (!cluster || cli_name_ok(cluster) != 0) {
        cli_err(c, "submit: CLUSTER missing or not a name");
        return cli_usage_error(c, "submit");
    }
    if ((timeout >= 0 || del) && !wait) {
        cli_err(c, "submit: --timeout and --delete go with --wait");
        return cli_usage_error(c, "submit");
    }
    if (!arg || strcmp(arg, "-") != 0) {
        payload = strdup(arg ? arg : "{}");
        len = payload ? strlen(payload) : 0;
    } else {
        payload = read_stdin(ZKC_TASK_PAYLOAD_MAX, &len);
    }
    if (!payload) {
        cli_err(c, "submit: out of memory");
        return CLI_EXIT_ERROR;
    }
    if (len > ZKC_TASK_PAYLOAD_MAX) {
        cli_err(c, "submit: the task is larger than %d bytes", ZKC_TASK_PAYLOAD_MAX);
        free(payload);
        return CLI_EXIT_USAGE;
    }
    /* tasks are JSON documents: refuse what a handler could not read */
    if (!(doc = json_loadb(payload, len, JSON_DECODE_ANY, NULL))) {
        cli_err(c, "submit: the task is not JSON");
        free(payload);
        return CLI_EXIT_USAGE;
    }
    json_decref(doc);
    if ((rc = cli_connect(c)) != 0) {
        free(payload);
        return rc;
    }
    cli_path(c, path, sizeof(path), cluster, NULL, NULL);
    rc = zkc_task_submit(c->s, path, payload, len, id, sizeof(id), c->timeout_ms);
    free(payload);
    if (rc) {
        rc = cli_fail(c, rc, "submit");
        goto out;
    }
    if (wait) {
        rc = zkc_task_wait(c->s, path, id, timeout, &r);
        if (rc == ZKC_ETIMEDOUT) {
            cli_err(c, "%s: no result within %d ms (the task stays queued)", id, timeout);
            if (c->format == CLI_JSON) {
                doc = json_object();
                out_jset(doc, "cluster", out_jstr(cluster));
                out_jset(doc, "task", json_string(id));
                out_jset(doc, "result", json_null());
                out_json_doc(doc, stdout);
                json_decref(doc);
            } else {
                printf("%s\n", id);
            }
            rc = EXIT_NO_RESULT;
            goto out;
        }
        if (rc == ZKC_EBADDATA) {
            cli_err(c, "%s: the result node is not a task result", id);
            rc = CLI_EXIT_ERROR;
            goto out;
        }
        if (rc) {
            rc = cli_fail(c, rc, id);
            goto out;
        }
    }
    if (c->format == CLI_JSON) {
        doc = json_object();
        out_jset(doc, "cluster", out_jstr(cluster));
        out_jset(doc, "task", json_string(id));
        if (r)
            out_jset(doc, "result", result_json(r));
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else if (r) {
        out_table *t = out_table_new("TASK", "STATUS", "WORKER", "TOKEN", NULL);
        char st[16], tok[24];
        char *text = out_printable(r->output, r->output_len, r->output_len);

        snprintf(st, sizeof(st), "%d", r->status);
        snprintf(tok, sizeof(tok), "%" PRId64, r->token);
        out_table_row(t, id, st, r->worker, tok);
        out_table_print(t, stdout, 1);
        out_table_free(t);
        if (text && *text)
            printf("%s%s\n", text, r->truncated ? "\n(output truncated)" : "");
        free(text);
        rc = 0;
    } else {
        printf("%s\n", id);
        rc = 0;
    }
    if (rc == 0 && r) {
        rc = status_exit(r->status);
        if (del && zkc_task_result_delete(c->s, path, id, c->timeout_ms) != 0)
            cli_err(c, "%s: could not delete the result", id);
    }
out:
    zkc_task_result_free(r);
    zkc_session_close(c->s);
    return rc;
}

/* ---- tasks */

struct row {
    char name[ZKC_TASK_ID_MAX];
    int queued;           /* in work/tasks */
    char *member;         /* assigned to (NULL: not assigned) */
    int claimed;          /* the assignment says claimed */
    int running;          /* a claim node exists */
    int64_t token;        /* its czxid */
    int64_t owner;        /* its session */
    zkc_task_result *res; /* the result, when there is one */
    int bad_result;       /* a result node that is not a result */
};

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct row *)a)->name, ((const struct row *)b)->name);
}

static struct row *row_get(struct row **rows, int *n, int *cap, const char *name)
{
    int i;

    for (i = 0; i < *n; i++)
        if (strcmp((*rows)[i].name, name) == 0)
            return &(*rows)[i];
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        struct row *nr = realloc(*rows, (size_t)nc * sizeof(*nr));
        if (!nr)
            return NULL;
        *rows = nr;
        *cap = nc;
    }
    memset(&(*rows)[*n], 0, sizeof(struct row));
    snprintf((*rows)[*n].name, ZKC_TASK_ID_MAX, "%s", name);
    return &(*rows)[(*n)++];
}

static const char *state_of(const struct row *r)
{
    if (r->res || r->bad_result)
        return "done";
    if (r->running)
        return "running";
    if (r->member)
        return "assigned";
    return "pending";
}

int cmd_tasks(cli *c, int argc, char **argv)
{
    static const char *subs[4] = {"tasks", "assign", "running", "results"};
    const char *cluster = NULL;
    struct row *rows = NULL;
    int nrows = 0, cap = 0, i, k, rc, foreign = 0;
    char dir[1024], path[1200];

    for (i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_err(c, "tasks: unknown option '%s'", argv[i]);
            return cli_usage_error(c, "tasks");
        } else if (!cluster) {
            cluster = argv[i];
        } else {
            cli_err(c, "tasks: too many arguments");
            return cli_usage_error(c, "tasks");
        }
    }
    if (!cluster || cli_name_ok(cluster) != 0) {
        cli_err(c, "tasks: CLUSTER missing or not a name");
        return cli_usage_error(c, "tasks");
    }
    if ((rc = cli_connect(c)) != 0)
        return rc;
    if ((rc = cli_cluster_exists(c, cluster)) != 0)
        goto out;
    for (k = 0; k < 4; k++) {
        char **names = NULL;
        int n = 0;

        cli_path(c, dir, sizeof(dir), cluster, "work", subs[k]);
        rc = zkc_get_children(c->s, dir, c->timeout_ms, &names, &n, NULL);
        if (rc == ZKC_ENONODE) {
            rc = 0;
            continue;
        }
        if (rc) {
            rc = cli_fail(c, rc, dir);
            goto out;
        }
        for (i = 0; i < n && rc == 0; i++) {
            struct row *r;
            char *data = NULL;
            int len = 0, grc = 0;
            zkc_stat st;

            if (!zkc_task_id_valid(names[i])) {
                foreign++;
                continue;
            }
            if (!(r = row_get(&rows, &nrows, &cap, names[i]))) {
                rc = CLI_EXIT_ERROR;
                break;
            }
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            if (k == 0) {
                r->queued = 1;
                continue;
            }
            grc = zkc_get(c->s, path, c->timeout_ms, k == 2 ? NULL : &data, &len, &st);
            if (grc == ZKC_ENONODE)
                continue; /* went away meanwhile */
            if (grc) {
                rc = cli_fail(c, grc, path);
                break;
            }
            if (k == 1 && data && len < 4096) {
                json_t *a = json_loadb(data, (size_t)len, 0, NULL);
                json_t *m = a ? json_object_get(a, "member") : NULL;
                if (json_is_string(m) && (r->member = strdup(json_string_value(m))))
                    r->claimed = json_is_true(json_object_get(a, "claimed"));
                json_decref(a);
                if (!r->member)
                    r->member = strdup("?");
            } else if (k == 1) {
                r->member = strdup("?");
            } else if (k == 2) {
                r->running = 1;
                r->token = st.czxid;
                r->owner = st.owner;
            } else if (zkc_task_result_parse(data, (size_t)len, &r->res) != 0) {
                r->bad_result = 1;
            }
            free(data);
        }
        zkc_strings_free(names, n);
        if (rc)
            goto out;
    }
    if (nrows > 1)
        qsort(rows, (size_t)nrows, sizeof(*rows), row_cmp);
    if (c->format == CLI_JSON) {
        json_t *doc = json_object(), *arr = json_array();

        out_jset(doc, "cluster", out_jstr(cluster));
        for (i = 0; i < nrows; i++) {
            json_t *o = json_object();
            struct row *r = &rows[i];

            out_jset(o, "task", json_string(r->name));
            out_jset(o, "state", json_string(state_of(r)));
            out_jset(o, "queued", json_boolean(r->queued));
            out_jset(o, "member", out_jstr(r->member));
            out_jset(o, "claimed", json_boolean(r->claimed));
            out_jset(o, "token", r->running ? json_integer(r->token) : json_null());
            out_jset(o, "session", r->running ? out_jsession(r->owner) : json_null());
            out_jset(o, "result", r->res ? result_json(r->res) : json_null());
            if (r->bad_result)
                out_jset(o, "malformed_result", json_true());
            json_array_append_new(arr, o);
        }
        out_jset(doc, "tasks", arr);
        out_jset(doc, "foreign", json_integer(foreign));
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else {
        out_table *t = out_table_new("TASK", "STATE", "MEMBER", "TOKEN", "STATUS", NULL);

        for (i = 0; i < nrows; i++) {
            struct row *r = &rows[i];
            char tok[24], st[16];

            snprintf(tok, sizeof(tok), "%" PRId64, r->res ? r->res->token : r->token);
            snprintf(st, sizeof(st), "%d", r->res ? r->res->status : 0);
            out_table_row(t, r->name, state_of(r), r->res ? r->res->worker : r->member,
                          (r->res || r->running) ? tok : NULL,
                          r->res          ? st
                          : r->bad_result ? "malformed"
                                          : NULL);
        }
        out_table_print(t, stdout, 1);
        out_table_free(t);
        if (foreign)
            cli_err(c, "%d foreign node(s) under %s/work skipped", foreign, cluster);
        rc = 0;
    }
out:
    for (i = 0; i < nrows; i++) {
        free(rows[i].member);
        zkc_task_result_free(rows[i].res);
    }
    free(rows);
    zkc_session_close(c->s);
    return rc;
}
