/* The member payload codec: encoding what a member writes, and decoding
 * what any peer may have written (garbage included). No server. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"

#define NODE "member_0f1e2d3c-4b5a-4697-8877-665544332211_0000000042"

static struct zkc__mbody *dec(const char *text, char *why, size_t why_len)
{
    return zkc__payload_decode(NODE, text, text ? (int)strlen(text) : 0, 65536, why, why_len);
}

static void test_roundtrip(void)
{
    zkc_endpoint eps[2] = {{"admin", "10.0.0.5", 9090}, {"grpc", "10.0.0.6", 9091}};
    zkc_member_info info = {0};
    char *text = NULL, why[200];
    size_t len = 0;
    struct zkc__mbody *b;
    zkc_member *m;
    const char *name, *host;
    int port;

    info.id = "orders-1";
    info.host = "10.0.0.5";
    info.port = 8080;
    info.endpoints = eps;
    info.n_endpoints = 2;
    info.shard = 3;
    info.metadata = "{\"zone\": \"a\", \"weight\": 2}";
    CU_ASSERT_EQUAL_FATAL(zkc__payload_encode(&info, 65536, &text, &len, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(len, strlen(text));
    /* The ServerSet fields are at the top level, exactly as Prometheus'
     * serverset_sd and Finagle read them. */
    CU_ASSERT_STRING_EQUAL(text,
                           "{\"serviceEndpoint\":{\"host\":\"10.0.0.5\",\"port\":8080},"
                           "\"additionalEndpoints\":{\"admin\":{\"host\":\"10.0.0.5\","
                           "\"port\":9090},\"grpc\":{\"host\":\"10.0.0.6\",\"port\":9091}},"
                           "\"status\":\"ALIVE\",\"shard\":3,\"zkcoord\":{\"id\":\"orders-1\","
                           "\"metadata\":{\"zone\":\"a\",\"weight\":2},\"version\":1}}");
    b = dec(text, why, sizeof(why));
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_STRING_EQUAL(why, "");
    m = zkc__member_new(b, ZKC_MEMBER_SELF);
    zkc__mbody_unref(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(zkc_member_flags(m), ZKC_MEMBER_SELF);
    CU_ASSERT_STRING_EQUAL(zkc_member_id(m), "orders-1");
    CU_ASSERT_STRING_EQUAL(zkc_member_node(m), NODE);
    CU_ASSERT_EQUAL(zkc_member_seq(m), 42);
    CU_ASSERT_STRING_EQUAL(zkc_member_host(m), "10.0.0.5");
    CU_ASSERT_EQUAL(zkc_member_port(m), 8080);
    CU_ASSERT_STRING_EQUAL(zkc_member_status(m), "ALIVE");
    CU_ASSERT_EQUAL(zkc_member_shard(m), 3);
    CU_ASSERT_STRING_EQUAL(zkc_member_metadata(m), "{\"zone\":\"a\",\"weight\":2}");
    CU_ASSERT_EQUAL(zkc_member_endpoint_count(m), 2);
    CU_ASSERT_EQUAL(zkc_member_endpoint(m, 1, &name, &host, &port), 0);
    CU_ASSERT_STRING_EQUAL(name, "grpc");
    CU_ASSERT_STRING_EQUAL(host, "10.0.0.6");
    CU_ASSERT_EQUAL(port, 9091);
    CU_ASSERT_EQUAL(zkc_member_endpoint(m, 2, &name, &host, &port), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc_member_endpoint(m, -1, NULL, NULL, NULL), ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(zkc_member_payload(m, &len), text);
    CU_ASSERT_EQUAL(len, strlen(text));
    zkc__member_unref(m);
    free(text);
}

static void test_encode_rejects(void)
{
    zkc_endpoint dup[2] = {{"a", "h", 1}, {"a", "h", 2}};
    zkc_member_info info = {0};
    char *text = NULL, why[200], big[300];
    size_t len;

    CU_ASSERT_EQUAL(zkc__payload_encode(&info, 65536, &text, &len, why, sizeof(why)), ZKC_EINVAL);
    CU_ASSERT(strstr(why, "id") != NULL);
    info.id = "x";
    info.port = 70000;
    CU_ASSERT_EQUAL(zkc__payload_encode(&info, 65536, &text, &len, why, sizeof(why)), ZKC_EINVAL);
    info.port = 1;
    info.metadata = "[1, 2]";
    CU_ASSERT_EQUAL(zkc__payload_encode(&info, 65536, &text, &len, why, sizeof(why)), ZKC_EINVAL);
    CU_ASSERT(strstr(why, "metadata") != NULL);
    info.metadata = "{not json";
    CU_ASSERT_EQUAL(zkc__payload_encode(&info, 65536, &text, &len, why, sizeof(why)), ZKC_EINVAL);
    info.metadata = NULL;
    info.endpoints = dup;
    info.n_endpoints = 2;
    CU_ASSERT_EQUAL(zkc__payload_encode(&info, 65536, &text, &len, why, sizeof(why)), ZKC_EINVAL);
    CU_ASSERT(strstr(why, "duplicate") != NULL);
    info.n_endpoints = 0;
    info.id = "bad\nid";
    CU_ASSERT_EQUAL(zkc__payload_encode(&info, 65536, &text, &len, why, sizeof(why)), ZKC_EINVAL);
    info.id = "\xff\xfe";
    CU_ASSERT_EQUAL(zkc__payload_encode(&info, 65536, &text, &len, why, sizeof(why)), ZKC_EINVAL);
    memset(big, 'i', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    info.id = big;
    CU_ASSERT_EQUAL(zkc__payload_encode(&info, 65536, &text, &len, why, sizeof(why)), ZKC_EINVAL);
    info.id = "x";
    info.metadata = "{\"blob\": \"0123456789012345678901234567890123456789\"}";
    CU_ASSERT_EQUAL(zkc__payload_encode(&info, 64, &text, &len, why, sizeof(why)), ZKC_EINVAL);
    CU_ASSERT(strstr(why, "cap") != NULL);
    CU_ASSERT_PTR_NULL(text);
}

static void test_decode_garbage(void)
{
    static const char *cases[] = {
        "",
        "not json at all",
        "[1, 2, 3]",
        "\"a string\"",
        "{\"serviceEndpoint\": ",
        "{\"serviceEndpoint\": \"x\", \"shard\": \"y\", \"status\": 7, \"zkcoord\": {\"id\": 5}}",
        "{\"zkcoord\": []}",
        "{\"zkcoord\": {\"id\": \"\"}}",
        "{\"zkcoord\": {\"id\": \"a\\u0000b\"}}",
        "{\"serviceEndpoint\": {\"host\": \"h\", \"port\": 99999}}",
        "{\"serviceEndpoint\": {\"host\": \"h\", \"port\": 1.5}}",
        "{\"shard\": 99999999999999}",
        "{\"additionalEndpoints\": [1]}",
        "{\"additionalEndpoints\": {\"a\": 1, \"b\": {\"host\": 2, \"port\": 3}}}",
        "{\"s\": \"\xff\xfe invalid utf-8\"}",
    };
    char why[200];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct zkc__mbody *b = dec(cases[i], why, sizeof(why));
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT((b->flags & ZKC_MEMBER_MALFORMED) != 0);
        CU_ASSERT(why[0] != '\0');
        CU_ASSERT_STRING_EQUAL(b->node, NODE);
        zkc__mbody_unref(b);
    }
    {
        struct zkc__mbody *b = dec(NULL, NULL, 0);
        CU_ASSERT_PTR_NOT_NULL(b);
        zkc__mbody_unref(b);
    }
}

static void test_decode_partial(void)
{
    char why[200];
    struct zkc__mbody *b =
        dec("{\"serviceEndpoint\": {\"host\": \"h1\", \"port\": 81}, \"status\": [\"x\"],"
            " \"additionalEndpoints\": {\"ok\": {\"host\": \"h2\", \"port\": 82}, \"bad\": 7},"
            " \"zkcoord\": {\"id\": \"m-1\", \"metadata\": [1], \"version\": 1}}",
            why, sizeof(why));

    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    /* Shown with what could be read. */
    CU_ASSERT_EQUAL(b->flags, ZKC_MEMBER_MALFORMED);
    CU_ASSERT_STRING_EQUAL(b->id, "m-1");
    CU_ASSERT_STRING_EQUAL(b->host, "h1");
    CU_ASSERT_EQUAL(b->port, 81);
    CU_ASSERT_PTR_NULL(b->status);
    CU_ASSERT_PTR_NULL(b->metadata);
    CU_ASSERT_EQUAL(b->n_eps, 1);
    CU_ASSERT_STRING_EQUAL(b->eps[0].name, "ok");
    CU_ASSERT_EQUAL(b->version, 1);
    zkc__mbody_unref(b);
}

static void test_decode_foreign_serverset(void)
{
    /* A member written by Finagle: no zkcoord object. Not malformed. */
    const char *text = "{\"serviceEndpoint\":{\"host\":\"h\",\"port\":1},"
                       "\"additionalEndpoints\":{},\"status\":\"ALIVE\"}";
    struct zkc__mbody *b =
        zkc__payload_decode("member_0000000007", text, (int)strlen(text), 65536, NULL, 0);

    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->flags, ZKC_MEMBER_NO_ID);
    CU_ASSERT_EQUAL(b->seq, 7);
    CU_ASSERT_EQUAL(b->shard, 0);
    zkc__mbody_unref(b);
}

static void test_decode_oversize_and_deep(void)
{
    size_t n = 200000, i;
    char *big = malloc(n + 1);
    struct zkc__mbody *b;

    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    /* Above the cap: not even parsed, and not kept. */
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    b = zkc__payload_decode(NODE, big, (int)n, 65536, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->flags & (ZKC_MEMBER_OVERSIZE | ZKC_MEMBER_MALFORMED),
                    ZKC_MEMBER_OVERSIZE | ZKC_MEMBER_MALFORMED);
    CU_ASSERT_PTR_NULL(b->raw);
    zkc__mbody_unref(b);
    /* Deep nesting within the cap must not exhaust the stack. */
    for (i = 0; i < n / 2; i++)
        big[i] = '[';
    for (; i < n; i++)
        big[i] = ']';
    b = zkc__payload_decode(NODE, big, (int)n, n, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT((b->flags & ZKC_MEMBER_MALFORMED) != 0);
    zkc__mbody_unref(b);
    free(big);
}

/* Fuzz-ish: random bytes, and random mutations of a valid payload. The
 * decoder must return a body every time (ASan/UBSan watch the rest). */
static void test_decode_fuzz(void)
{
    const char *seed = "{\"serviceEndpoint\":{\"host\":\"10.0.0.5\",\"port\":8080},"
                       "\"additionalEndpoints\":{\"admin\":{\"host\":\"h\",\"port\":9}},"
                       "\"status\":\"ALIVE\",\"shard\":0,\"zkcoord\":{\"id\":\"x\","
                       "\"metadata\":{\"k\":[1,{\"z\":null}]},\"version\":1}}";
    static const char alphabet[] = "{}[]\":,0123456789-.eE truefalsnl\\u\xff\x80";
    size_t slen = strlen(seed);
    char buf[512];
    unsigned state = 12345;
    int iter, ok = 1, parsed_clean = 0;

    for (iter = 0; iter < 20000 && ok; iter++) {
        size_t len, k;
        struct zkc__mbody *b;
        state = state * 1103515245u + 12345u;
        if (iter % 2) {
            len = (state >> 8) % sizeof(buf);
            for (k = 0; k < len; k++) {
                state = state * 1103515245u + 12345u;
                buf[k] = (char)(state >> 16);
            }
        } else {
            int muts = 1 + (int)((state >> 8) % 4);
            memcpy(buf, seed, slen);
            len = slen;
            while (muts--) {
                state = state * 1103515245u + 12345u;
                buf[(state >> 8) % len] = alphabet[(state >> 20) % (sizeof(alphabet) - 1)];
            }
        }
        b = zkc__payload_decode(NODE, buf, (int)len, 65536, NULL, 0);
        if (!b) {
            ok = 0;
            break;
        }
        if (!(b->flags & ZKC_MEMBER_MALFORMED))
            parsed_clean++;
        if (b->id && (strlen(b->id) == 0 || strlen(b->id) > ZKC_PAYLOAD_MAX_ID))
            ok = 0;
        if (b->port < -1 || b->port > 65535)
            ok = 0;
        zkc__mbody_unref(b);
    }
    CU_ASSERT_EQUAL(ok, 1);
    CU_ASSERT(parsed_clean > 0); /* some mutations stay valid: the path is exercised */
}

int main(void)
{
    CU_pSuite s;
    unsigned failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("payload", NULL, NULL);
    if (!s || !CU_add_test(s, "encode, decode round trip", test_roundtrip) ||
        !CU_add_test(s, "encode rejects bad info", test_encode_rejects) ||
        !CU_add_test(s, "garbage is flagged, never fatal", test_decode_garbage) ||
        !CU_add_test(s, "partly bad: shown with what could be read", test_decode_partial) ||
        !CU_add_test(s, "a plain ServerSet member", test_decode_foreign_serverset) ||
        !CU_add_test(s, "oversize and deep nesting", test_decode_oversize_and_deep) ||
        !CU_add_test(s, "fuzz: random and mutated payloads", test_decode_fuzz)) {
        fprintf(stderr, "cannot register suites: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
