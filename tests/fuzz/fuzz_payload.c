/* libFuzzer target: the member payload decoder (src/lib/payload.c).
 *
 * The input is a peer's node data, exactly as read from ZooKeeper. The
 * first byte picks the size cap (so the OVERSIZE path is reached with small
 * inputs); the rest is the data.
 *
 * Invariants checked besides "no crash":
 * - decoding never fails (no NULL without an out-of-memory);
 * - every string kept (id, host, status, endpoint names and hosts) is
 *   within its documented limit, has no control byte below 0x20 and is
 *   valid UTF-8 (jansson accepts it as a string);
 * - ports are -1 (absent) or 0-65535; at most ZKC_PAYLOAD_MAX_ENDPOINT
 *   endpoints, with unique names; metadata, when kept, is a JSON object;
 * - NO_ID is set exactly when there is no id; OVERSIZE exactly when the
 *   data is above the cap; a data copy is kept exactly when it was read;
 * - "why" is non-empty exactly when the member is flagged malformed;
 * - round trip: when the decoded fields encode again (zkc__payload_encode),
 *   decoding that encoding gives the same fields and no MALFORMED flag. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "payload.h"

#include "fuzz.h"

static void check_text(const char *s, size_t max, const char *what)
{
    size_t i, n;
    json_t *j;

    if (!s)
        return;
    n = strlen(s);
    FUZZ_CHECK(n <= max, "%s of %zu bytes above %zu", what, n, max);
    for (i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)s[i] >= 0x20, "%s has control byte 0x%02x", what,
                   (unsigned char)s[i]);
    j = json_string(s);
    FUZZ_CHECK(j != NULL, "%s is not valid UTF-8", what);
    json_decref(j);
}

static void check_body(const struct zkc__mbody *b, size_t len, size_t max, const char *why)
{
    int i, k;

    check_text(b->id, ZKC_PAYLOAD_MAX_ID, "id");
    check_text(b->host, ZKC_PAYLOAD_MAX_HOST, "host");
    check_text(b->status, ZKC_PAYLOAD_MAX_SHORT, "status");
    FUZZ_CHECK(!b->id || *b->id, "empty id kept");
    FUZZ_CHECK(b->port >= -1 && b->port <= 65535, "port %d", b->port);
    FUZZ_CHECK(b->n_eps >= 0 && b->n_eps <= ZKC_PAYLOAD_MAX_ENDPOINT, "%d endpoints", b->n_eps);
    for (i = 0; i < b->n_eps; i++) {
        check_text(b->eps[i].name, ZKC_PAYLOAD_MAX_SHORT, "endpoint name");
        check_text(b->eps[i].host, ZKC_PAYLOAD_MAX_HOST, "endpoint host");
        FUZZ_CHECK(b->eps[i].name && *b->eps[i].name, "endpoint %d without name", i);
        FUZZ_CHECK(b->eps[i].port >= 0 && b->eps[i].port <= 65535, "endpoint port %d",
                   b->eps[i].port);
        for (k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(b->eps[k].name, b->eps[i].name) != 0, "endpoint name twice");
    }
    if (b->metadata) {
        json_t *m = json_loads(b->metadata, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(m && json_is_object(m), "metadata is not a JSON object: %s", b->metadata);
        json_decref(m);
    }
    FUZZ_CHECK(!(b->flags & ZKC_MEMBER_NO_ID) == !!b->id, "NO_ID flag does not match the id");
    FUZZ_CHECK(!!(b->flags & ZKC_MEMBER_OVERSIZE) == (len > max), "OVERSIZE flag wrong");
    FUZZ_CHECK(!!(b->flags & ZKC_MEMBER_MALFORMED) == !!*why, "MALFORMED=%d but why=\"%s\"",
               !!(b->flags & ZKC_MEMBER_MALFORMED), why);
    if (len > 0 && len <= max)
        FUZZ_CHECK(b->raw && b->raw_len == len, "data read but not kept");
    else
        FUZZ_CHECK(!b->raw, "data kept although not read");
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Encode what was decoded; when that is accepted, decoding the encoding
 * must give back the same member. */
static void round_trip(const struct zkc__mbody *b)
{
    zkc_member_info info;
    zkc_endpoint eps[ZKC_PAYLOAD_MAX_ENDPOINT];
    struct zkc__mbody *b2;
    char why[256], *text = NULL;
    size_t len = 0;
    int i;

    memset(&info, 0, sizeof(info));
    info.id = b->id;
    info.host = b->host;
    info.port = b->port;
    info.status = b->status;
    info.shard = b->shard;
    info.metadata = b->metadata;
    for (i = 0; i < b->n_eps; i++) {
        eps[i].name = b->eps[i].name;
        eps[i].host = b->eps[i].host;
        eps[i].port = b->eps[i].port;
    }
    info.endpoints = eps;
    info.n_endpoints = b->n_eps;
    if (zkc__payload_encode(&info, ZKC_PAYLOAD_DEFAULT_MAX, &text, &len, why, sizeof(why)) != 0)
        return;
    b2 = zkc__payload_decode("n", text, (int)len, ZKC_PAYLOAD_DEFAULT_MAX, why, sizeof(why));
    FUZZ_CHECK(b2 != NULL, "out of memory");
    FUZZ_CHECK(!(b2->flags & ZKC_MEMBER_MALFORMED), "our own encoding is malformed: %s", why);
    FUZZ_CHECK(same(b->id, b2->id) && same(b->host, b2->host) && b->port == b2->port,
               "id/host/port changed in a round trip");
    FUZZ_CHECK(same(b->status ? b->status : "ALIVE", b2->status), "status changed");
    FUZZ_CHECK(b->shard == b2->shard, "shard %d became %d", b->shard, b2->shard);
    FUZZ_CHECK(b->n_eps == b2->n_eps, "%d endpoints became %d", b->n_eps, b2->n_eps);
    for (i = 0; i < b->n_eps; i++)
        FUZZ_CHECK(same(b->eps[i].name, b2->eps[i].name) && same(b->eps[i].host, b2->eps[i].host) &&
                       b->eps[i].port == b2->eps[i].port,
                   "endpoint %d changed", i);
    FUZZ_CHECK(same(b->metadata ? b->metadata : "{}", b2->metadata), "metadata changed");
    zkc__mbody_unref(b2);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[4] = {ZKC_PAYLOAD_DEFAULT_MAX, 64, 256, 1024};
    struct zkc__mbody *b;
    char why[256];
    size_t max;

    if (size < 1)
        return 0;
    max = caps[data[0] & 3];
    data++;
    size--;
    b = zkc__payload_decode("member_0000000042", (const char *)data, (int)size, max, why,
                            sizeof(why));
    FUZZ_CHECK(b != NULL, "decode returned NULL");
    FUZZ_CHECK(b->seq == 42, "sequence %d", (int)b->seq);
    check_body(b, size, max, why);
    if (!(b->flags & ZKC_MEMBER_MALFORMED))
        round_trip(b);
    zkc__mbody_unref(b);
    return 0;
}
