/* libFuzzer target: the JSON event document the agent writes to a handler's
 * stdin, built from peer data (src/agent/main.c: member_json() and fire(),
 * and doc_build() where the agent builds documents lazily).
 *
 * The agent builds the document in static functions of its main.c; to test
 * exactly that code without changing it, this file includes main.c with
 * `main` renamed, and catches the event where the agent hands it to the
 * handler runner (zka_handlers_fire, renamed to capture(), which builds the
 * document as the runner would when the agent passes a builder). Every
 * event is wanted (zka_handlers_wants, where it exists, renamed to
 * wants()). The group view the document lists is a small fake (view_*
 * below) holding members decoded from the input by the real payload
 * decoder. The agent that passes a builder (it includes text.h) writes
 * ZKCOORD_MEMBERS as a JSON array; the one before as a comma list.
 *
 * Input layout: byte 0 picks the event, byte 1 the flags (leading, member
 * count, DUPLICATE), bytes 2..9 the fencing token; then NUL-separated
 * fields: the leader's participant id (raw bytes, as read from the
 * election node), then up to 4 member payloads.
 *
 * Invariants checked besides "no crash": the document is valid JSON, an
 * object with every key (event, cluster, member_id, time_ms, leader,
 * leading, members) and the event's name; "leader" is null exactly when no
 * leader is known and otherwise an object with a string "id" and the
 * token; "members" has one object per member of the view, each with every
 * key; member events carry a "member" object; "fencing_token" is present
 * while leading, as the decimal token; the ZKCOORD_MEMBERS list has one
 * entry per member. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"

int zka_agent_main(int argc, char **argv);

#define main                 zka_agent_main
#define zka_handlers_fire    capture
#define zka_handlers_wants   wants
#define zkc_group_view_count view_count
#define zkc_group_view_at    view_at
#define zkc_group_view_ref   view_ref
#define zkc_group_view_free  view_free
#include "main.c"
#undef main
#undef zka_handlers_fire
#undef zka_handlers_wants
#undef zkc_group_view_count
#undef zkc_group_view_at
#undef zkc_group_view_ref
#undef zkc_group_view_free

#include "payload.h"

#define MAX_MEMBERS 4

struct fake_view {
    int n;
    zkc_member *m[MAX_MEMBERS];
};

int view_count(const zkc_group_view *v)
{
    return ((const struct fake_view *)(const void *)v)->n;
}

const zkc_member *view_at(const zkc_group_view *v, int i)
{
    const struct fake_view *fv = (const void *)v;

    return i >= 0 && i < fv->n ? fv->m[i] : NULL;
}

/* The fake view belongs to the test: references are not counted. */
zkc_group_view *view_ref(const zkc_group_view *v)
{
    return (zkc_group_view *)(uintptr_t)v;
}

void view_free(zkc_group_view *v)
{
    (void)v;
}

bool wants(zka_handlers *h, zka_event ev);
bool wants(zka_handlers *h, zka_event ev)
{
    (void)h;
    (void)ev;
    return true;
}

static char *captured, *captured_members;
static int captured_count;

int capture(zka_handlers *h, const zka_event_info *ev)
{
    (void)h;
    captured_count++;
    free(captured);
    free(captured_members);
    captured = captured_members = NULL;
#ifdef ZKA_TEXT_H
    if (ev->build) {
        ev->build(ev->ctx, &captured, &captured_members);
        ev->ctx_free(ev->ctx);
        FUZZ_CHECK(captured && captured_members, "the document was not built");
        return 1;
    }
#endif
    FUZZ_CHECK(ev->json != NULL, "no document");
    captured = strdup(ev->json);
    captured_members = strdup(ev->members ? ev->members : "");
    return 1;
}

static const char *const member_keys[] = {"id",      "node",      "host",      "port",
                                          "status",  "shard",     "endpoints", "metadata",
                                          "session", "malformed", "duplicate"};

static void check_member(json_t *m, const char *where)
{
    size_t i;

    FUZZ_CHECK(json_is_object(m), "%s is not an object", where);
    for (i = 0; i < sizeof(member_keys) / sizeof(member_keys[0]); i++)
        FUZZ_CHECK(json_object_get(m, member_keys[i]) != NULL, "%s has no key \"%s\"", where,
                   member_keys[i]);
    FUZZ_CHECK(json_is_string(json_object_get(m, "id")), "%s.id is not a string", where);
    FUZZ_CHECK(json_is_object(json_object_get(m, "endpoints")), "%s.endpoints", where);
    FUZZ_CHECK(json_is_object(json_object_get(m, "metadata")), "%s.metadata", where);
}

static zka_config *config(void)
{
    static zka_config *c;
    zka_config_error err;

    if (!c) {
        int rc = zka_config_load_string(
            "{\"zookeeper\": {\"servers\": \"127.0.0.1:2181\"}, \"cluster\": \"fuzz\","
            " \"member\": {\"id\": \"self\", \"host\": \"127.0.0.1\", \"port\": 1}}",
            "fuzz.json", &c, &err);
        FUZZ_CHECK(rc == 0, "fixed config: %s", err.text);
        zka_log_setup(ZKC_LOG_ERROR, 0);
    }
    return c;
}

/* The next NUL-terminated field of the input (the rest when there is no
 * NUL), as a new string; *p and *n advance past it. */
static char *field(const uint8_t **p, size_t *n, size_t *len)
{
    const uint8_t *end = memchr(*p, '\0', *n);
    size_t l = end ? (size_t)(end - *p) : *n;
    char *s = malloc(l + 1);

    FUZZ_CHECK(s != NULL, "out of memory");
    memcpy(s, *p, l);
    s[l] = '\0';
    *len = l;
    *p += end ? l + 1 : l;
    *n -= end ? l + 1 : l;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct agent a;
    struct fake_view view;
    zka_event ev;
    int64_t token = 0;
    unsigned flags;
    char *leader, node[64];
    size_t len, i;
    json_t *doc, *v, *extra = NULL;
    int k, members_event;

    if (size < 10)
        return 0;
    ev = (zka_event)(data[0] % ZKA_EV_COUNT);
    flags = data[1];
    memcpy(&token, data + 2, sizeof(token));
    data += 10;
    size -= 10;

    memset(&a, 0, sizeof(a));
    memset(&view, 0, sizeof(view));
    pthread_mutex_init(&a.mu, NULL);
    a.cfg = config();
    a.handlers = (zka_handlers *)(void *)&a; /* only compared with NULL, then captured */
    leader = field(&data, &size, &len);
    snprintf(a.leader_id, sizeof(a.leader_id), "%s", leader);
    a.leader_token = token;
    a.leading = flags & 1;
    a.token = token;
    view.n = (int)((flags >> 1) & 7) % (MAX_MEMBERS + 1);
    for (k = 0; k < view.n; k++) {
        char *payload = field(&data, &size, &len);
        struct zkc__mbody *b;
        snprintf(node, sizeof(node), "member_%d_%010d", k, k);
        b = zkc__payload_decode(node, payload, (int)len, ZKC_PAYLOAD_DEFAULT_MAX, NULL, 0);
        FUZZ_CHECK(b != NULL, "out of memory");
        view.m[k] = zkc__member_new(b, (flags & 0x80) ? ZKC_MEMBER_DUPLICATE : 0);
        FUZZ_CHECK(view.m[k] != NULL, "out of memory");
        zkc__mbody_unref(b);
        free(payload);
    }
    a.view = (zkc_group_view *)(void *)&view;
    members_event = view.n > 0 && (ev == ZKA_EV_MEMBER_JOINED || ev == ZKA_EV_MEMBER_LEFT ||
                                   ev == ZKA_EV_MEMBER_UPDATED);
    /* The extras the agent's callbacks add for these events (on_group,
     * on_election). */
    if (members_event)
        extra = json_pack("{s:o}", "member", member_json(view.m[0]));
    else if (ev == ZKA_EV_ELECTED)
        extra = json_pack("{s:I}", "token", (json_int_t)token);

    captured_count = 0;
    fire(&a, ev, extra);
    FUZZ_CHECK(captured_count == 1, "fire reached the handlers %d times", captured_count);

    doc = json_loads(captured, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(doc && json_is_object(doc), "not a JSON object: %s", captured);
    FUZZ_CHECK(json_is_string(v = json_object_get(doc, "event")) &&
                   strcmp(json_string_value(v), zka_event_name(ev)) == 0,
               "no event name: %s", captured);
    FUZZ_CHECK(json_is_string(json_object_get(doc, "cluster")), "no cluster: %s", captured);
    FUZZ_CHECK(json_is_string(json_object_get(doc, "member_id")), "no member_id: %s", captured);
    FUZZ_CHECK(json_is_integer(json_object_get(doc, "time_ms")), "no time_ms: %s", captured);
    FUZZ_CHECK(json_is_boolean(json_object_get(doc, "leading")), "no leading: %s", captured);
    v = json_object_get(doc, "leader");
    FUZZ_CHECK(v != NULL, "no \"leader\" key (leader id of %zu bytes): %s", strlen(a.leader_id),
               captured);
    if (!a.leader_id[0])
        FUZZ_CHECK(json_is_null(v), "leader not null without a leader: %s", captured);
    else
        FUZZ_CHECK(json_is_object(v) && json_is_string(json_object_get(v, "id")) &&
                       json_is_integer(json_object_get(v, "token")) &&
                       json_integer_value(json_object_get(v, "token")) == token,
                   "leader is not {id, token}: %s", captured);
    v = json_object_get(doc, "members");
    FUZZ_CHECK(json_is_array(v) && json_array_size(v) == (size_t)view.n,
               "members is not an array of %d: %s", view.n, captured);
    for (i = 0; i < json_array_size(v); i++)
        check_member(json_array_get(v, i), "members[i]");
    if (members_event)
        check_member(json_object_get(doc, "member"), "member");
    if (a.leading || ev == ZKA_EV_ELECTED) {
        char want[32];
        snprintf(want, sizeof(want), "%" PRId64, token);
        v = json_object_get(doc, "fencing_token");
        FUZZ_CHECK(json_is_string(v) && strcmp(json_string_value(v), want) == 0,
                   "fencing_token is not %s: %s", want, captured);
    }
    FUZZ_CHECK(json_object_get(doc, "token") == NULL, "stray top-level token: %s", captured);
    for (k = 0, i = 0; k < view.n; k++)
        i += zkc_member_id(view.m[k]) != NULL;
#ifdef ZKA_TEXT_H
    /* ZKCOORD_MEMBERS: a JSON array, one string per member with an id. */
    v = json_loads(captured_members, 0, NULL);
    FUZZ_CHECK(json_is_array(v) && json_array_size(v) == i,
               "ZKCOORD_MEMBERS %s for %zu members with ids", captured_members, i);
    for (k = 0; k < (int)i; k++)
        FUZZ_CHECK(json_is_string(json_array_get(v, (size_t)k)), "ZKCOORD_MEMBERS[%d]", k);
    json_decref(v);
#else
    /* ZKCOORD_MEMBERS: one comma-separated entry per member with an id. */
    {
        size_t commas = 0;
        const char *c;
        for (c = captured_members; *c; c++)
            commas += *c == ',';
        FUZZ_CHECK(i == 0 ? captured_members[0] == '\0' : commas + 1 == i,
                   "ZKCOORD_MEMBERS \"%s\" for %zu members with ids", captured_members, i);
    }
#endif

    json_decref(doc);
    free(captured);
    free(captured_members);
    captured = captured_members = NULL;
    for (k = 0; k < view.n; k++)
        zkc__member_unref(view.m[k]);
    pthread_mutex_destroy(&a.mu);
    free(leader);
    return 0;
}
