/* The member payload: ServerSet JSON with a "zkcoord" object, its encoder
 * and its defensive decoder, and the zkc_member record the decoder fills.
 * Shared by the group recipe, the agent and the CLI. Pure functions: unit
 * tested without a server. */
#ifndef ZKC_PAYLOAD_H
#define ZKC_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "zkcoord/group.h"

#define ZKC_PAYLOAD_VERSION      1     /* zkcoord.version written */
#define ZKC_PAYLOAD_DEFAULT_MAX  65536 /* default cap on a node's data */
#define ZKC_PAYLOAD_MAX_ID       255
#define ZKC_PAYLOAD_MAX_HOST     255
#define ZKC_PAYLOAD_MAX_SHORT    64 /* status, endpoint names */
#define ZKC_PAYLOAD_MAX_ENDPOINT 32

struct zkc__endpoint {
    char *name;
    char *host;
    int port;
};

/* What was read from one node: immutable once built, shared (refcounted)
 * by every zkc_member wrapper that shows it. */
struct zkc__mbody {
    int refs;
    unsigned flags; /* MALFORMED, OVERSIZE, NO_ID */
    char *node;
    int32_t seq;
    char *id;
    char *host;
    int port;
    struct zkc__endpoint *eps;
    int n_eps;
    char *status;
    int shard;
    char *metadata; /* compact JSON object text */
    int version;
    char *raw;
    size_t raw_len;
    int64_t owner;
    int64_t czxid;
    int64_t mzxid;
    int64_t ctime;
};

/* A member as one view shows it: the body plus the flags that depend on
 * the rest of the view (SELF, DUPLICATE). */
struct zkc_member {
    int refs;
    unsigned flags; /* view flags | body->flags */
    struct zkc__mbody *b;
};

/* Encode `info` as the node data. On success *out is a new NUL-terminated
 * string (free()) of *len bytes. Errors: ZKC_EINVAL (reason in `why`, may be
 * NULL: the field at fault, or the size above `max`), ZKC_ENOMEM. */
int zkc__payload_encode(const zkc_member_info *info, size_t max, char **out, size_t *len, char *why,
                        size_t why_len);

/* Decode untrusted node data into a new body named `node` (refs 1). Never
 * fails on bad data: what could be read is kept, the rest flagged
 * (ZKC_MEMBER_MALFORMED / OVERSIZE / NO_ID) and the first problem described
 * in `why` (may be NULL; "" when none). `data` may be NULL with len <= 0.
 * Returns NULL only when out of memory. */
struct zkc__mbody *zkc__payload_decode(const char *node, const char *data, int len, size_t max,
                                       char *why, size_t why_len);

struct zkc__mbody *zkc__mbody_ref(struct zkc__mbody *b);
void zkc__mbody_unref(struct zkc__mbody *b);

/* A new member wrapper over `b` (takes a reference on b) with view flags
 * `vflags`; refs 1. NULL on ENOMEM. */
zkc_member *zkc__member_new(struct zkc__mbody *b, unsigned vflags);
zkc_member *zkc__member_ref(zkc_member *m);
void zkc__member_unref(zkc_member *m);

#endif
