/* Member payload codec. The layout is the ServerSet JSON that Finagle and
 * Aurora write and Prometheus' serverset_sd_config reads (its parser,
 * discovery/zookeeper/zookeeper.go: parseServersetMember, takes
 * serviceEndpoint{host,port}, additionalEndpoints{name:{host,port}},
 * status and shard, and ignores fields it does not know, so our "zkcoord"
 * object rides along unseen).
 *
 * Decoding treats the data as hostile: any peer with write access to the
 * folder can put anything there. Size is capped before parsing, every field
 * is type- and length-checked on its own, and a bad field costs that field
 * only (the member is flagged and shown with the rest). */
#include "payload.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "naming.h"

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (!why || !len || *why)
        return; /* keep the first problem */
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- encode */

static int bad_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    size_t i;

    if (n > max)
        return 1;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return 1;
    return 0;
}

/* jansson refuses to build strings that are not UTF-8. */
static int utf8(const char *s)
{
    json_t *j = json_string(s);

    json_decref(j);
    return j != NULL;
}

static json_t *endpoint_json(const char *host, int port)
{
    json_t *o = json_object();

    if (!o)
        return NULL;
    if (json_object_set_new(o, "host", json_string(host ? host : "")) != 0 ||
        json_object_set_new(o, "port", json_integer(port)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int zkc__payload_encode(const zkc_member_info *info, size_t max, char **out, size_t *len, char *why,
                        size_t why_len)
{
    json_t *root = NULL, *eps = NULL, *zk = NULL, *meta = NULL;
    json_error_t jerr;
    char *text;
    int i, rc = ZKC_ENOMEM;

    if (why && why_len)
        *why = '\0';
    if (!info || !out || !len) {
        say(why, why_len, "missing argument");
        return ZKC_EINVAL;
    }
    if (!info->id || !*info->id || bad_text(info->id, ZKC_PAYLOAD_MAX_ID) || !utf8(info->id)) {
        say(why, why_len, "id: required, at most %d bytes of UTF-8 without control characters",
            ZKC_PAYLOAD_MAX_ID);
        return ZKC_EINVAL;
    }
    if ((info->host && (bad_text(info->host, ZKC_PAYLOAD_MAX_HOST) || !utf8(info->host))) ||
        info->port < 0 || info->port > 65535) {
        say(why, why_len, "host/port: host at most %d bytes, port 0-65535", ZKC_PAYLOAD_MAX_HOST);
        return ZKC_EINVAL;
    }
    if (info->status &&
        (!*info->status || bad_text(info->status, ZKC_PAYLOAD_MAX_SHORT) || !utf8(info->status))) {
        say(why, why_len, "status: non-empty, at most %d bytes", ZKC_PAYLOAD_MAX_SHORT);
        return ZKC_EINVAL;
    }
    if (info->shard < 0 || info->n_endpoints < 0 || info->n_endpoints > ZKC_PAYLOAD_MAX_ENDPOINT ||
        (info->n_endpoints > 0 && !info->endpoints)) {
        say(why, why_len, "shard must be >= 0, endpoints at most %d", ZKC_PAYLOAD_MAX_ENDPOINT);
        return ZKC_EINVAL;
    }
    for (i = 0; i < info->n_endpoints; i++) {
        const zkc_endpoint *e = &info->endpoints[i];
        if (!e->name || !*e->name || bad_text(e->name, ZKC_PAYLOAD_MAX_SHORT) || !utf8(e->name) ||
            (e->host && (bad_text(e->host, ZKC_PAYLOAD_MAX_HOST) || !utf8(e->host))) ||
            e->port < 0 || e->port > 65535) {
            say(why, why_len, "endpoints[%d]: name non-empty (at most %d bytes), port 0-65535", i,
                ZKC_PAYLOAD_MAX_SHORT);
            return ZKC_EINVAL;
        }
    }
    if (info->metadata) {
        meta = json_loads(info->metadata, JSON_REJECT_DUPLICATES, &jerr);
        if (!meta || !json_is_object(meta)) {
            say(why, why_len, "metadata: expected a JSON object%s%s", meta ? "" : ": ",
                meta ? "" : jerr.text);
            json_decref(meta);
            return ZKC_EINVAL;
        }
    }
    root = json_object();
    eps = json_object();
    zk = json_object();
    if (!root || !eps || !zk)
        goto fail;
    if (json_object_set_new(root, "serviceEndpoint", endpoint_json(info->host, info->port)) != 0)
        goto fail;
    for (i = 0; i < info->n_endpoints; i++) {
        const zkc_endpoint *e = &info->endpoints[i];
        if (json_object_get(eps, e->name)) {
            say(why, why_len, "endpoints[%d]: duplicate name '%s'", i, e->name);
            rc = ZKC_EINVAL;
            goto fail;
        }
        if (json_object_set_new(eps, e->name, endpoint_json(e->host, e->port)) != 0)
            goto fail;
    }
    if (json_object_set(root, "additionalEndpoints", eps) != 0 ||
        json_object_set_new(root, "status", json_string(info->status ? info->status : "ALIVE")) !=
            0 ||
        json_object_set_new(root, "shard", json_integer(info->shard)) != 0 ||
        json_object_set_new(zk, "id", json_string(info->id)) != 0 ||
        json_object_set_new(zk, "metadata", meta ? json_incref(meta) : json_object()) != 0 ||
        json_object_set_new(zk, "version", json_integer(ZKC_PAYLOAD_VERSION)) != 0 ||
        json_object_set(root, "zkcoord", zk) != 0)
        goto fail;
    text = json_dumps(root, JSON_COMPACT);
    if (!text)
        goto fail;
    if (strlen(text) > max) {
        say(why, why_len, "payload of %zu bytes above the cap of %zu", strlen(text), max);
        free(text);
        rc = ZKC_EINVAL;
        goto fail;
    }
    *len = strlen(text);
    *out = text;
    rc = 0;
fail:
    json_decref(meta);
    json_decref(zk);
    json_decref(eps);
    json_decref(root);
    if (rc == ZKC_ENOMEM)
        say(why, why_len, "out of memory");
    return rc;
}

/* ---------------------------------------------------------------- decode */

void zkc__mbody_unref(struct zkc__mbody *b)
{
    int i;

    if (!b || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(b->node);
    free(b->id);
    free(b->host);
    for (i = 0; i < b->n_eps; i++) {
        free(b->eps[i].name);
        free(b->eps[i].host);
    }
    free(b->eps);
    free(b->status);
    free(b->metadata);
    free(b->raw);
    free(b);
}

/* A string field checked for type, length and control characters. Sets
 * *dst (new string) or leaves it NULL; returns -1 on ENOMEM, 1 when the
 * field was present but unusable, 0 otherwise. */
static int take_string(json_t *v, size_t max, char **dst)
{
    const char *s;

    if (!v)
        return 0;
    if (!json_is_string(v))
        return 1;
    s = json_string_value(v);
    if (json_string_length(v) != strlen(s) || bad_text(s, max))
        return 1;
    *dst = strdup(s);
    return *dst ? 0 : -1;
}

static int take_int(json_t *v, long long lo, long long hi, int *dst)
{
    long long x;

    if (!v)
        return 0;
    if (!json_is_integer(v))
        return 1;
    x = json_integer_value(v);
    if (x < lo || x > hi)
        return 1;
    *dst = (int)x;
    return 0;
}

/* {"host": string, "port": int}. Returns -1 ENOMEM, 1 malformed, 0. */
static int take_endpoint(json_t *o, char **host, int *port)
{
    int r1, r2;

    if (!json_is_object(o))
        return 1;
    r1 = take_string(json_object_get(o, "host"), ZKC_PAYLOAD_MAX_HOST, host);
    if (r1 < 0)
        return -1;
    r2 = take_int(json_object_get(o, "port"), 0, 65535, port);
    if (!json_object_get(o, "host") || !json_object_get(o, "port"))
        return 1;
    return r1 || r2;
}

static int decode_fields(struct zkc__mbody *b, json_t *root, size_t max, char *why, size_t wl)
{
    json_t *v, *zk;
    const char *key;
    int r;

    v = json_object_get(root, "serviceEndpoint");
    if (v) {
        r = take_endpoint(v, &b->host, &b->port);
        if (r < 0)
            return -1;
        if (r) {
            b->flags |= ZKC_MEMBER_MALFORMED;
            say(why, wl, "serviceEndpoint: expected {\"host\": string, \"port\": 0-65535}");
        }
    }
    v = json_object_get(root, "additionalEndpoints");
    if (v && !json_is_object(v)) {
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, wl, "additionalEndpoints: expected an object");
    } else if (v) {
        json_t *e;
        size_t n = json_object_size(v);
        if (n > ZKC_PAYLOAD_MAX_ENDPOINT) {
            b->flags |= ZKC_MEMBER_MALFORMED;
            say(why, wl, "additionalEndpoints: %zu entries, only the first %d are read", n,
                ZKC_PAYLOAD_MAX_ENDPOINT);
            n = ZKC_PAYLOAD_MAX_ENDPOINT;
        }
        b->eps = calloc(n ? n : 1, sizeof(*b->eps));
        if (!b->eps)
            return -1;
        json_object_foreach(v, key, e)
        {
            struct zkc__endpoint *ep = &b->eps[b->n_eps];
            if ((size_t)b->n_eps == n)
                break;
            ep->port = -1;
            r = take_endpoint(e, &ep->host, &ep->port);
            if (r < 0)
                return -1;
            if (r || bad_text(key, ZKC_PAYLOAD_MAX_SHORT) || !*key) {
                free(ep->host);
                ep->host = NULL;
                b->flags |= ZKC_MEMBER_MALFORMED;
                say(why, wl, "additionalEndpoints: a malformed entry was skipped");
                continue;
            }
            ep->name = strdup(key);
            if (!ep->name)
                return -1;
            b->n_eps++;
        }
    }
    r = take_string(json_object_get(root, "status"), ZKC_PAYLOAD_MAX_SHORT, &b->status);
    if (r < 0)
        return -1;
    if (r) {
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, wl, "status: expected a short string");
    }
    if (take_int(json_object_get(root, "shard"), INT32_MIN, INT32_MAX, &b->shard)) {
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, wl, "shard: expected an integer");
    }
    zk = json_object_get(root, "zkcoord");
    if (!zk)
        return 0;
    if (!json_is_object(zk)) {
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, wl, "zkcoord: expected an object");
        return 0;
    }
    v = json_object_get(zk, "id");
    r = take_string(v, ZKC_PAYLOAD_MAX_ID, &b->id);
    if (r < 0)
        return -1;
    if (r || (b->id && !*b->id)) {
        free(b->id);
        b->id = NULL;
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, wl, "zkcoord.id: expected a non-empty string of at most %d bytes",
            ZKC_PAYLOAD_MAX_ID);
    }
    v = json_object_get(zk, "metadata");
    if (v && !json_is_object(v)) {
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, wl, "zkcoord.metadata: expected an object");
    } else if (v) {
        b->metadata = json_dumps(v, JSON_COMPACT);
        if (!b->metadata)
            return -1;
        if (strlen(b->metadata) > max) { /* cannot grow past the input, but be sure */
            free(b->metadata);
            b->metadata = NULL;
        }
    }
    if (take_int(json_object_get(zk, "version"), 0, INT32_MAX, &b->version)) {
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, wl, "zkcoord.version: expected a non-negative integer");
    }
    return 0;
}

struct zkc__mbody *zkc__payload_decode(const char *node, const char *data, int len, size_t max,
                                       char *why, size_t why_len)
{
    struct zkc__mbody *b = calloc(1, sizeof(*b));
    json_error_t jerr;
    json_t *root = NULL;

    if (why && why_len)
        *why = '\0';
    if (!b)
        return NULL;
    b->refs = 1;
    b->port = -1;
    b->node = strdup(node ? node : "");
    if (!b->node)
        goto nomem;
    if (zkc__seq_parse(b->node, &b->seq) != 0)
        b->seq = 0;
    if (!data || len <= 0) {
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, why_len, "empty payload");
        goto out;
    }
    if ((size_t)len > max) {
        /* A peer may fill its node up to jute.maxbuffer (1 MB by default);
         * parsing and keeping that for every watcher is what the cap stops. */
        b->flags |= ZKC_MEMBER_MALFORMED | ZKC_MEMBER_OVERSIZE;
        say(why, why_len, "payload of %d bytes above the cap of %zu: not read", len, max);
        goto out;
    }
    b->raw = malloc((size_t)len + 1);
    if (!b->raw)
        goto nomem;
    memcpy(b->raw, data, (size_t)len);
    b->raw[len] = '\0';
    b->raw_len = (size_t)len;
    /* jansson rejects invalid UTF-8 and NUL in strings, and bounds nesting
     * depth (JSON_PARSER_MAX_DEPTH), so hostile input cannot blow the stack. */
    root = json_loadb(data, (size_t)len, 0, &jerr);
    if (!root) {
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, why_len, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        goto out;
    }
    if (!json_is_object(root)) {
        b->flags |= ZKC_MEMBER_MALFORMED;
        say(why, why_len, "expected a JSON object");
        goto out;
    }
    if (decode_fields(b, root, max, why, why_len) < 0)
        goto nomem;
out:
    if (!b->id)
        b->flags |= ZKC_MEMBER_NO_ID;
    json_decref(root);
    return b;
nomem:
    json_decref(root);
    zkc__mbody_unref(b);
    return NULL;
}

/* --------------------------------------------------------------- members */

zkc_member *zkc__member_new(struct zkc__mbody *b, unsigned vflags)
{
    zkc_member *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->refs = 1;
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    m->b = b;
    m->flags = b->flags | (vflags & (ZKC_MEMBER_SELF | ZKC_MEMBER_DUPLICATE));
    return m;
}

zkc_member *zkc__member_ref(zkc_member *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

void zkc__member_unref(zkc_member *m)
{
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    zkc__mbody_unref(m->b);
    free(m);
}

const char *zkc_member_id(const zkc_member *m)
{
    return m->b->id;
}

const char *zkc_member_node(const zkc_member *m)
{
    return m->b->node;
}

const char *zkc_member_host(const zkc_member *m)
{
    return m->b->host;
}

int zkc_member_port(const zkc_member *m)
{
    return m->b->port;
}

int zkc_member_endpoint_count(const zkc_member *m)
{
    return m->b->n_eps;
}

int zkc_member_endpoint(const zkc_member *m, int i, const char **name, const char **host, int *port)
{
    if (!m || i < 0 || i >= m->b->n_eps)
        return ZKC_EINVAL;
    if (name)
        *name = m->b->eps[i].name;
    if (host)
        *host = m->b->eps[i].host;
    if (port)
        *port = m->b->eps[i].port;
    return 0;
}

const char *zkc_member_status(const zkc_member *m)
{
    return m->b->status;
}

int zkc_member_shard(const zkc_member *m)
{
    return m->b->shard;
}

const char *zkc_member_metadata(const zkc_member *m)
{
    return m->b->metadata;
}

const char *zkc_member_payload(const zkc_member *m, size_t *len)
{
    if (len)
        *len = m->b->raw_len;
    return m->b->raw;
}

unsigned zkc_member_flags(const zkc_member *m)
{
    return m->flags;
}

int32_t zkc_member_seq(const zkc_member *m)
{
    return m->b->seq;
}

int64_t zkc_member_owner(const zkc_member *m)
{
    return m->b->owner;
}

int64_t zkc_member_czxid(const zkc_member *m)
{
    return m->b->czxid;
}

int64_t zkc_member_ctime_ms(const zkc_member *m)
{
    return m->b->ctime;
}

int64_t zkc_member_mzxid(const zkc_member *m)
{
    return m->b->mzxid;
}

struct zkc__mbody *zkc__mbody_ref(struct zkc__mbody *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}
