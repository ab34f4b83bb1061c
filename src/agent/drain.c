/* Drain notes in ZooKeeper: see drain.h. Writes go through the public
 * fenced multi (zkcoord/fence.h), reads through zkcoord/read.h and
 * zkc_group_read: no private header. */
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "zkcoord/zkcoord.h"
#include "zkcoord/fence.h"
#include "zkcoord/group.h"
#include "zkcoord/read.h"

#include "drain.h"
#include "text.h"

/* Bounded: each retry means another drain or undrain committed in between. */
#define DRAIN_TRIES 20

char *zka_drain_folder(const char *root, const char *cluster)
{
    char *p = NULL;

    if (!root || !cluster)
        return NULL;
    if (strcmp(root, "/") == 0)
        root = "";
    if (asprintf(&p, "%s/%s/drain", root, cluster) < 0)
        return NULL;
    return p;
}

/* Copy at most `max` bytes of `s` into out, cut at a UTF-8 boundary. */
static void copy_cut(char *out, size_t max, const char *s)
{
    size_t n = 0, len = strlen(s);

    while (n < len) {
        unsigned cp;
        size_t k = zka_utf8_next((const unsigned char *)s + n, len - n, &cp);
        if (k == 0 || n + k > max)
            break;
        n += k;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

void zka_drain_parse(const char *data, int len, zka_drain_note *out)
{
    json_t *doc, *v;

    memset(out, 0, sizeof(*out));
    if (!data || len <= 0)
        return; /* an empty note is a drain without a reason */
    if (len > ZKA_DRAIN_DATA_MAX) {
        out->malformed = 1;
        return;
    }
    doc = json_loadb(data, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        out->malformed = 1;
        json_decref(doc);
        return;
    }
    if ((v = json_object_get(doc, "reason")) && json_is_string(v))
        copy_cut(out->reason, ZKA_DRAIN_REASON_MAX, json_string_value(v));
    else if (v && !json_is_null(v))
        out->malformed = 1;
    if ((v = json_object_get(doc, "by")) && json_is_string(v))
        copy_cut(out->by, ZKA_DRAIN_BY_MAX, json_string_value(v));
    else if (v && !json_is_null(v))
        out->malformed = 1;
    if ((v = json_object_get(doc, "since")) && json_is_integer(v) && json_integer_value(v) >= 0)
        out->since_ms = json_integer_value(v);
    else if (v && !json_is_null(v))
        out->malformed = 1;
    json_decref(doc);
}

void zka_drain_by(char *buf, size_t len)
{
    char host[256] = "";
    const char *user = NULL;
    struct passwd *pw = getpwuid(geteuid());

    if (pw && pw->pw_name)
        user = pw->pw_name;
    if (!user)
        user = getenv("USER");
    if (gethostname(host, sizeof(host) - 1) != 0)
        host[0] = '\0';
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, len, "%s@%s", user ? user : "?", host[0] ? host : "?");
}

const char *zka_drain_reason_check(const char *reason)
{
    json_t *t;

    if (strlen(reason) > ZKA_DRAIN_REASON_MAX)
        return "the reason is longer than 256 bytes";
    t = json_string(reason);
    if (!t)
        return "the reason is not valid UTF-8";
    json_decref(t);
    return NULL;
}

static int id_ok(const char *id)
{
    return id && *id && !strchr(id, '/') && strcmp(id, ".") != 0 && strcmp(id, "..") != 0 &&
           strlen(id) <= 255;
}

/* Create every missing folder of `path` (persistent, empty). */
static int ensure_path(zkc_session *s, const char *path, int timeout_ms)
{
    char buf[1100];
    size_t i, n = strlen(path);

    if (n >= sizeof(buf))
        return ZKC_EINVAL;
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char save = buf[i];
            zkc_op op;
            int rc;
            buf[i] = '\0';
            memset(&op, 0, sizeof(op));
            op.type = ZKC_OP_CREATE;
            op.path = buf;
            op.flags = ZKC_CREATE_PERSISTENT;
            rc = zkc_fenced_multi(s, "/", &op, 1, timeout_ms);
            buf[i] = save;
            if (rc && rc != ZKC_ENODEEXISTS)
                return rc;
        }
    }
    return 0;
}

static int is_healthy(const zkc_member *m)
{
    const char *st = zkc_member_status(m);

    if (zkc_member_flags(m) & (ZKC_MEMBER_MALFORMED | ZKC_MEMBER_OVERSIZE | ZKC_MEMBER_NO_ID))
        return 0;
    return !st || strcmp(st, "ALIVE") == 0;
}

static int in_sorted(char **names, int n, const char *id)
{
    int lo = 0, hi = n - 1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(names[mid], id);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

/* Is the drain of `id` refused? Reads members; `drained` are the drain
 * notes (sorted). */
static int decide(zkc_session *s, const char *cluster_path, const char *id, char **drained,
                  int ndrained, int check_unknown, int timeout_ms, zka_drain_refusal *why)
{
    zkc_group_view *v = NULL;
    char *members = NULL;
    int rc, i, known = 0, self_healthy = 0, others = 0;

    *why = ZKA_DRAIN_REFUSED_NONE;
    if (in_sorted(drained, ndrained, id))
        return 0; /* drained already: a new reason changes nothing else */
    if (asprintf(&members, "%s/members", cluster_path) < 0)
        return ZKC_ENOMEM;
    rc = zkc_group_read(s, members, 0, &v, timeout_ms);
    free(members);
    if (rc)
        return rc;
    for (i = 0; i < zkc_group_view_count(v); i++) {
        const zkc_member *m = zkc_group_view_at(v, i);
        const char *mid = zkc_member_id(m);
        if (!mid)
            continue;
        if (strcmp(mid, id) == 0) {
            known = 1;
            self_healthy |= is_healthy(m);
        } else if (is_healthy(m) && !in_sorted(drained, ndrained, mid)) {
            others++;
        }
    }
    zkc_group_view_free(v);
    if (!known && check_unknown)
        *why = ZKA_DRAIN_REFUSED_UNKNOWN;
    else if (self_healthy && others == 0)
        *why = ZKA_DRAIN_REFUSED_LAST;
    return 0;
}

int zka_drain_set(zkc_session *s, const char *cluster_path, const char *id, const char *reason,
                  const char *by, int force, int check_unknown, int timeout_ms,
                  zka_drain_refusal *refusal, int *was_drained)
{
    char *folder = NULL, *node = NULL, *data = NULL;
    json_t *doc = NULL;
    struct timeval tv;
    int rc, tries;

    if (refusal)
        *refusal = ZKA_DRAIN_REFUSED_NONE;
    if (!s || !cluster_path || !id_ok(id))
        return ZKC_EINVAL;
    if (reason && zka_drain_reason_check(reason) != NULL)
        return ZKC_EINVAL; /* checked by the callers first, with a message */
    gettimeofday(&tv, NULL);
    doc = json_pack("{s:s?, s:I, s:s?}", "reason", reason, "since",
                    (json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, "by", by);
    if (!doc || !(data = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS)) ||
        asprintf(&folder, "%s/drain", cluster_path) < 0 ||
        asprintf(&node, "%s/drain/%s", cluster_path, id) < 0) {
        rc = ZKC_ENOMEM;
        goto out;
    }
    if (strlen(data) > ZKA_DRAIN_DATA_MAX) {
        rc = ZKC_EINVAL;
        goto out;
    }
    rc = ensure_path(s, folder, timeout_ms);
    for (tries = 0; rc == 0 && tries < DRAIN_TRIES; tries++) {
        char **names = NULL;
        int n = 0, exists, failed = -1;
        zkc_stat st;
        zka_drain_refusal why = ZKA_DRAIN_REFUSED_NONE;
        zkc_op ops[2];

        rc = zkc_get_children(s, folder, timeout_ms, &names, &n, &st);
        if (rc)
            break;
        exists = in_sorted(names, n, id);
        if (!force)
            rc = decide(s, cluster_path, id, names, n, check_unknown, timeout_ms, &why);
        zkc_strings_free(names, n);
        if (rc)
            break;
        if (why != ZKA_DRAIN_REFUSED_NONE) {
            if (refusal)
                *refusal = why;
            rc = ZKC_EBUSY;
            break;
        }
        /* The folder's version is the serial point of every drain: another
         * drain between our read and this write fails the multi, and the
         * check runs again on what it wrote. */
        memset(ops, 0, sizeof(ops));
        ops[0].type = ZKC_OP_SET;
        ops[0].path = folder;
        ops[0].data = "";
        ops[0].len = 0;
        ops[0].version = st.version;
        ops[1].type = exists ? ZKC_OP_SET : ZKC_OP_CREATE;
        ops[1].path = node;
        ops[1].data = data;
        ops[1].len = (int)strlen(data);
        ops[1].version = -1;
        ops[1].flags = ZKC_CREATE_PERSISTENT;
        rc = zkc_fenced_multi_ex(s, folder, ops, 2, timeout_ms, &failed);
        if (rc == 0) {
            if (was_drained)
                *was_drained = exists;
            break;
        }
        if (rc == ZKC_EBADVERSION || rc == ZKC_ENODEEXISTS || (rc == ZKC_ENONODE && failed == 1))
            rc = 0; /* raced with another drain or undrain: look again */
        else
            break;
        if (tries + 1 == DRAIN_TRIES)
            rc = ZKC_EBUSY;
    }
out:
    json_decref(doc);
    free(data);
    free(folder);
    free(node);
    return rc;
}

int zka_drain_clear(zkc_session *s, const char *cluster_path, const char *id, int timeout_ms,
                    int *was_drained)
{
    char *node = NULL;
    zkc_op op;
    int rc;

    if (was_drained)
        *was_drained = 0;
    if (!s || !cluster_path || !id_ok(id))
        return ZKC_EINVAL;
    if (asprintf(&node, "%s/drain/%s", cluster_path, id) < 0)
        return ZKC_ENOMEM;
    memset(&op, 0, sizeof(op));
    op.type = ZKC_OP_DELETE;
    op.path = node;
    op.version = -1;
    rc = zkc_fenced_multi(s, "/", &op, 1, timeout_ms);
    free(node);
    if (rc == 0 && was_drained)
        *was_drained = 1;
    return rc == ZKC_ENONODE ? 0 : rc;
}

int zka_drain_read_all(zkc_session *s, const char *cluster_path, int timeout_ms, char ***ids,
                       zka_drain_note **notes, int *n)
{
    char *folder = NULL, **names = NULL;
    zka_drain_note *out = NULL;
    int rc, count = 0, i;

    if (asprintf(&folder, "%s/drain", cluster_path) < 0)
        return ZKC_ENOMEM;
    rc = zkc_get_children(s, folder, timeout_ms, &names, &count, NULL);
    if (rc == ZKC_ENONODE) {
        rc = 0;
        names = NULL;
        count = 0;
    }
    if (rc)
        goto out;
    out = calloc(count ? (size_t)count : 1, sizeof(*out));
    if (!out) {
        rc = ZKC_ENOMEM;
        goto out;
    }
    for (i = 0; i < count; i++) {
        char *path = NULL, *data = NULL;
        int len = 0, grc;
        if (asprintf(&path, "%s/%s", folder, names[i]) < 0) {
            rc = ZKC_ENOMEM;
            goto out;
        }
        grc = zkc_get(s, path, timeout_ms, &data, &len, NULL);
        free(path);
        if (grc == ZKC_ENONODE) {
            /* undrained since the listing: still shown, as it was */
            out[i].malformed = 0;
            continue;
        }
        if (grc) {
            rc = grc;
            goto out;
        }
        zka_drain_parse(data, len, &out[i]);
        free(data);
    }
    *ids = names;
    *notes = out;
    *n = count;
    names = NULL;
    out = NULL;
out:
    if (names)
        zkc_strings_free(names, count);
    free(out);
    free(folder);
    return rc;
}
