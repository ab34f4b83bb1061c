/* drain, undrain: maintenance mode of a member (see src/agent/drain.h for
 * the note in ZooKeeper; the agent obeys it). Also the drain notes shown by
 * status and members. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "agent/drain.h"
#include "cli.h"
#include "output.h"

int cli_read_drains(cli *c, const char *cluster, cli_drains *out)
{
    char path[1024];
    int rc;

    memset(out, 0, sizeof(*out));
    cli_path(c, path, sizeof(path), cluster, NULL, NULL);
    rc = zka_drain_read_all(c->s, path, c->timeout_ms, &out->ids, &out->notes, &out->n);
    return rc;
}

void cli_drains_free(cli_drains *d)
{
    if (!d)
        return;
    zkc_strings_free(d->ids, d->n);
    free(d->notes);
    memset(d, 0, sizeof(*d));
}

const zka_drain_note *cli_drain_find(const cli_drains *d, const char *id)
{
    int lo = 0, hi = d->n - 1;

    if (!id)
        return NULL;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, k = strcmp(d->ids[mid], id);
        if (k == 0)
            return &d->notes[mid];
        if (k < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

json_t *cli_drain_json(const zka_drain_note *n)
{
    json_t *o;

    if (!n)
        return json_null();
    o = json_object();
    out_jset(o, "reason", n->reason[0] ? out_jstr(n->reason) : json_null());
    out_jset(o, "since_ms", n->since_ms ? json_integer(n->since_ms) : json_null());
    out_jset(o, "by", n->by[0] ? out_jstr(n->by) : json_null());
    out_jset(o, "malformed", json_boolean(n->malformed));
    return o;
}

static int parse(cli *c, int argc, char **argv, int drain, const char **reason, int *force)
{
    static const struct option opts[] = {
        {"reason", required_argument, NULL, 'r'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", drain ? opts : opts + 2, NULL)) != -1) {
        switch (ch) {
        case 'r':
            *reason = optarg;
            break;
        case 'f':
            *force = 1;
            break;
        default:
            cli_err(c, "%s: bad or incomplete option '%s'", argv[0], argv[optind - 1]);
            return cli_usage_error(c, argv[0]);
        }
    }
    if (argc - optind != 2) {
        cli_err(c, "%s: want CLUSTER ID", argv[0]);
        return cli_usage_error(c, argv[0]);
    }
    if (cli_name_ok(argv[optind]) != 0 || cli_name_ok(argv[optind + 1]) != 0) {
        cli_err(c, "%s: bad cluster name or member id", argv[0]);
        return cli_usage_error(c, argv[0]);
    }
    if (*reason && zka_drain_reason_check(*reason)) {
        cli_err(c, "%s: --reason: %s", argv[0], zka_drain_reason_check(*reason));
        return cli_usage_error(c, argv[0]);
    }
    return 0;
}

static int report(cli *c, const char *op, const char *cluster, const char *id, int drained, int was)
{
    if (c->format == CLI_JSON) {
        json_t *doc = json_object();
        int rc;

        out_jset(doc, "cluster", out_jstr(cluster));
        out_jset(doc, "id", out_jstr(id));
        out_jset(doc, "op", json_string(op));
        out_jset(doc, "drained", json_boolean(drained));
        out_jset(doc, "was_drained", json_boolean(was));
        rc = out_json_doc(doc, stdout) ? CLI_EXIT_ERROR : 0;
        json_decref(doc);
        return rc;
    }
    if (drained)
        printf("%s %s of %s\n", was ? "still drained (note rewritten):" : "drained:", id, cluster);
    else
        printf("%s %s of %s\n", was ? "undrained:" : "was not drained:", id, cluster);
    return 0;
}

static int write_fail(cli *c, int rc, const char *op, const char *id)
{
    if (rc == ZKC_ECONNLOSS || rc == ZKC_ETIMEDOUT || rc == ZKC_ESESSIONLOST) {
        cli_err(c,
                "%s %s: ZooKeeper connection lost before the answer (%s): the drain note may "
                "or may not be %s; check with `zkcoordctl status`",
                op, id, zkc_strerror(rc), strcmp(op, "drain") == 0 ? "written" : "deleted");
        return CLI_EXIT_UNREACHABLE;
    }
    return cli_fail(c, rc, op);
}

int cmd_drain(cli *c, int argc, char **argv)
{
    zka_drain_refusal why = ZKA_DRAIN_REFUSED_NONE;
    const char *reason = NULL, *cluster, *id;
    char path[1024], by[ZKA_DRAIN_BY_MAX + 1];
    int rc, force = 0, was = 0;

    if ((rc = parse(c, argc, argv, 1, &reason, &force)))
        return rc;
    cluster = argv[optind];
    id = argv[optind + 1];
    if ((rc = cli_connect(c)))
        return rc;
    if ((rc = cli_cluster_exists(c, cluster)))
        goto out;
    cli_path(c, path, sizeof(path), cluster, NULL, NULL);
    zka_drain_by(by, sizeof(by));
    rc = zka_drain_set(c->s, path, id, reason, by, force, 1, c->timeout_ms, &why, &was);
    if (rc == ZKC_EBUSY && why == ZKA_DRAIN_REFUSED_LAST) {
        cli_err(c,
                "refused: %s is the last healthy, undrained member of %s; draining it leaves "
                "nobody to serve (--force drains it anyway)",
                id, cluster);
        rc = CLI_EXIT_REFUSED;
    } else if (rc == ZKC_EBUSY && why == ZKA_DRAIN_REFUSED_UNKNOWN) {
        cli_err(c,
                "refused: no member of %s registers the id %s (a typo?); --force drains it "
                "anyway (it takes effect when that member starts)",
                cluster, id);
        rc = CLI_EXIT_REFUSED;
    } else if (rc) {
        rc = write_fail(c, rc, "drain", id);
    } else {
        rc = report(c, "drain", cluster, id, 1, was);
    }
out:
    zkc_session_close(c->s);
    return rc;
}

int cmd_undrain(cli *c, int argc, char **argv)
{
    const char *reason = NULL, *cluster, *id;
    char path[1024];
    int rc, force = 0, was = 0;

    if ((rc = parse(c, argc, argv, 0, &reason, &force)))
        return rc;
    cluster = argv[optind];
    id = argv[optind + 1];
    if ((rc = cli_connect(c)))
        return rc;
    if ((rc = cli_cluster_exists(c, cluster)))
        goto out;
    cli_path(c, path, sizeof(path), cluster, NULL, NULL);
    rc = zka_drain_clear(c->s, path, id, c->timeout_ms, &was);
    if (rc)
        rc = write_fail(c, rc, "undrain", id);
    else
        rc = report(c, "undrain", cluster, id, 0, was);
out:
    zkc_session_close(c->s);
    return rc;
}
