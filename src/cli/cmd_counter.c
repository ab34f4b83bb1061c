/* counter: read and change a shared counter (libzkcoord's zkc_counter):
 * Curator SharedCount (4 bytes) or, with --long, DistributedAtomicLong
 * (8 bytes). All logic is the library's; this file parses and prints. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"
#include "zkcoord/counter.h"

static int parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int print_value(const cli *c, const char *path, zkc_counter_width width, const char *op,
                       int won, const zkc_counter_value *v)
{
    int rc = 0;

    if (c->format == CLI_JSON) {
        json_t *doc = json_object();

        out_jset(doc, "path", out_jstr(path));
        out_jset(doc, "width", json_string(width == ZKC_COUNTER_INT32 ? "int32" : "int64"));
        out_jset(doc, "op", json_string(op));
        if (won >= 0)
            out_jset(doc, "won", json_boolean(won));
        out_jset(doc, "exists", json_boolean(v->exists));
        out_jset(doc, "value", json_integer(v->value));
        out_jset(doc, "version", v->exists ? json_integer(v->version) : json_null());
        out_jset(doc, "mzxid", v->exists ? json_integer(v->mzxid) : json_null());
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
    } else {
        out_table *t = out_table_new("PATH", "VALUE", "VERSION", NULL);
        char val[32], ver[16];

        snprintf(val, sizeof(val), "%" PRId64, v->value);
        snprintf(ver, sizeof(ver), "%" PRId32, v->version);
        out_table_row(t, path, val, v->exists ? ver : NULL);
        out_table_print(t, stdout, 1);
        out_table_free(t);
    }
    return rc;
}

int cmd_counter(cli *c, int argc, char **argv)
{
    zkc_counter_width width = ZKC_COUNTER_INT32;
    zkc_counter *k = NULL;
    zkc_counter_value v;
    const char *args[4] = {NULL, NULL, NULL, NULL};
    const char *op = "get";
    char path[1024];
    int64_t a = 0, b = 0;
    int nargs = 0, i, rc, won = -1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--long") == 0) {
            width = ZKC_COUNTER_INT64;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0' &&
                   !(argv[i][1] >= '0' && argv[i][1] <= '9')) {
            cli_err(c, "counter: unknown option '%s'", argv[i]);
            return cli_usage_error(c, "counter");
        } else if (nargs < 4) {
            args[nargs++] = argv[i];
        } else {
            cli_err(c, "counter: too many arguments");
            return cli_usage_error(c, "counter");
        }
    }
    if (nargs < 1) {
        cli_err(c, "counter: PATH missing");
        return cli_usage_error(c, "counter");
    }
    if (nargs >= 2)
        op = args[1];
    if (!((strcmp(op, "get") == 0 && nargs == 2) || (nargs == 1) ||
          ((strcmp(op, "set") == 0 || strcmp(op, "add") == 0) && nargs == 3 &&
           parse_int(args[2], &a) == 0) ||
          (strcmp(op, "cas") == 0 && nargs == 4 && parse_int(args[2], &a) == 0 &&
           parse_int(args[3], &b) == 0))) {
        cli_err(c, "counter: expected get, set N, add N or cas OLD NEW (decimal integers)");
        return cli_usage_error(c, "counter");
    }
    if (width == ZKC_COUNTER_INT32 &&
        (a < INT32_MIN || a > INT32_MAX || b < INT32_MIN || b > INT32_MAX)) {
        cli_err(c, "counter: value out of the 32-bit range (use --long for 64 bits)");
        return cli_usage_error(c, "counter");
    }
    if (args[0][0] == '/')
        snprintf(path, sizeof(path), "%s", args[0]);
    else
        snprintf(path, sizeof(path), "%s/%s", c->root, args[0]);
    rc = cli_connect(c);
    if (rc)
        return rc;
    rc = zkc_counter_new(&k, c->s, path, width);
    if (rc) {
        cli_err(c, "counter: bad path '%s'", path);
        zkc_session_close(c->s);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(op, "get") == 0) {
        rc = zkc_counter_get(k, &v, c->timeout_ms);
        if (rc == 0 && !v.exists)
            rc = ZKC_ENONODE;
    } else if (strcmp(op, "set") == 0) {
        rc = zkc_counter_set(k, a, &v, c->timeout_ms);
    } else if (strcmp(op, "add") == 0) {
        rc = zkc_counter_add(k, a, 0, &v, c->timeout_ms);
    } else {
        rc = zkc_counter_cas_value(k, a, b, &won, &v, c->timeout_ms);
    }
    if (rc == ZKC_EBADDATA) {
        cli_err(c, "%s: not a %d-byte counter%s", path, (int)width,
                width == ZKC_COUNTER_INT32 ? " (--long reads 8-byte ones)" : "");
        rc = CLI_EXIT_ERROR;
    } else if (rc) {
        rc = cli_fail(c, rc, path);
    } else {
        rc = print_value(c, path, width, op, won, &v);
        if (rc == 0 && won == 0) {
            cli_err(c, "%s: cas lost: the counter holds %" PRId64 ", not %" PRId64, path, v.value,
                    a);
            rc = CLI_EXIT_ERROR;
        }
    }
    zkc_counter_free(k);
    zkc_session_close(c->s);
    return rc;
}
