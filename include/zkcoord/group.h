/*
 * Group membership (zkc_group): join a cluster's member folder, keep a
 * cached, sorted view of its members and hear what changed.
 *
 * A member is an ephemeral sequential node "<folder>/member_<guid>_<seq>"
 * whose data is ServerSet JSON (the format of Finagle/Aurora ServerSets,
 * which Prometheus' serverset_sd_config reads as scrape targets):
 *
 *   {"serviceEndpoint": {"host": "10.0.0.5", "port": 8080},
 *    "additionalEndpoints": {"admin": {"host": "10.0.0.5", "port": 9090}},
 *    "status": "ALIVE", "shard": 0,
 *    "zkcoord": {"id": "orders-1", "metadata": {"zone": "a"}, "version": 1}}
 *
 * Point a serverset_sd_config (`paths: [<folder>]`) at the folder and every
 * member is a target, with no change on either side.
 *
 * The view costs each watcher one getChildren per change of the folder plus
 * one get per new (or changed) member: members already known are never read
 * again. Peer payloads are untrusted: they are size-capped and parsed
 * defensively; a member whose payload is garbage is shown with what could be
 * read and flagged ZKC_MEMBER_MALFORMED, with a warning in the log.
 *
 * A joined group stays in: after LOST it creates its node again with the new
 * session; after RECONNECTED it checks that its node still exists and is
 * owned by this session, and creates it again if not.
 *
 * Threads: every function may be called from any thread, including the
 * session's dispatcher (inside a callback). Events run on the dispatcher.
 */
#ifndef ZKCOORD_GROUP_H
#define ZKCOORD_GROUP_H

#include "zkcoord/zkcoord.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------- a member */

/* One member as read from ZooKeeper: immutable, reference-counted, owned by
 * the views that contain it. Pointers it hands out live as long as the view
 * (or event) it came from. */
typedef struct zkc_member zkc_member;

/* Flags of a member (zkc_member_flags()). */
#define ZKC_MEMBER_SELF      0x01u /* the node this group handle created (current session) */
#define ZKC_MEMBER_DUPLICATE 0x02u /* another member claims the same id */
#define ZKC_MEMBER_MALFORMED 0x04u /* payload not what a member writes: partly or not read */
#define ZKC_MEMBER_OVERSIZE  0x08u /* payload above the size cap: not parsed at all */
#define ZKC_MEMBER_NO_ID     0x10u /* no zkcoord.id (e.g. a plain ServerSet member) */

/* Member id (zkcoord.id), or NULL when the payload has none. */
ZKC_EXTERN const char *zkc_member_id(const zkc_member *m);
/* Node name in the folder ("member_<guid>_0000000007"). Never NULL. */
ZKC_EXTERN const char *zkc_member_node(const zkc_member *m);
/* serviceEndpoint host (NULL when absent or malformed) and port (-1 then). */
ZKC_EXTERN const char *zkc_member_host(const zkc_member *m);
ZKC_EXTERN int zkc_member_port(const zkc_member *m);
/* Number of additionalEndpoints read, and the i-th one (0 <= i < count):
 * name, host and port (each out-pointer may be NULL). ZKC_EINVAL for a bad i. */
ZKC_EXTERN int zkc_member_endpoint_count(const zkc_member *m);
ZKC_EXTERN int zkc_member_endpoint(const zkc_member *m, int i, const char **name, const char **host,
                                   int *port);
/* "status" (e.g. "ALIVE"), or NULL when absent. */
ZKC_EXTERN const char *zkc_member_status(const zkc_member *m);
/* "shard" (0 when absent, as ServerSet readers assume). */
ZKC_EXTERN int zkc_member_shard(const zkc_member *m);
/* zkcoord.metadata as compact JSON object text, or NULL when absent. */
ZKC_EXTERN const char *zkc_member_metadata(const zkc_member *m);
/* The raw node data as read (untrusted: may be invalid JSON or binary);
 * NUL-terminated for convenience; *len (may be NULL) gets its length. NULL
 * with *len 0 when the node is empty or above the size cap. */
ZKC_EXTERN const char *zkc_member_payload(const zkc_member *m, size_t *len);
/* ZKC_MEMBER_* flags. */
ZKC_EXTERN unsigned zkc_member_flags(const zkc_member *m);
/* Sequence number of the node (its last ten digits; 0 when it has none). */
ZKC_EXTERN int32_t zkc_member_seq(const zkc_member *m);
/* ZooKeeper session that owns the (ephemeral) node; 0 for a persistent one. */
ZKC_EXTERN int64_t zkc_member_owner(const zkc_member *m);
/* czxid of the node (when it joined, in ZooKeeper's total order). */
ZKC_EXTERN int64_t zkc_member_czxid(const zkc_member *m);
/* Creation time of the node in ms since the epoch (server clock): its age. */
ZKC_EXTERN int64_t zkc_member_ctime_ms(const zkc_member *m);
/* mzxid of the payload read (changes with every update). */
ZKC_EXTERN int64_t zkc_member_mzxid(const zkc_member *m);

/* ------------------------------------------------------------- a view */

/* An immutable snapshot of the folder: members sorted by sequence number
 * (join order, correct across the 2^31 wrap). Reference-counted; whoever got
 * one from zkc_group_view_get() or zkc_group_read() frees it with
 * zkc_group_view_free(). Views passed to callbacks are borrowed. */
typedef struct zkc_group_view zkc_group_view;

/* Number of members. */
ZKC_EXTERN int zkc_group_view_count(const zkc_group_view *v);
/* The i-th member (0 <= i < count), borrowed from the view; NULL for a bad i. */
ZKC_EXTERN const zkc_member *zkc_group_view_at(const zkc_group_view *v, int i);
/* The first member (lowest sequence) with this id, or NULL. */
ZKC_EXTERN const zkc_member *zkc_group_view_find(const zkc_group_view *v, const char *id);
/* Number of members flagged ZKC_MEMBER_DUPLICATE. */
ZKC_EXTERN int zkc_group_view_duplicates(const zkc_group_view *v);
/* A new reference to `v` (e.g. to keep the view of an event past the
 * callback); free it with zkc_group_view_free(). */
ZKC_EXTERN zkc_group_view *zkc_group_view_ref(const zkc_group_view *v);
/* Drop a reference. NULL is a no-op. */
ZKC_EXTERN void zkc_group_view_free(zkc_group_view *v);

/* -------------------------------------------------------------- group */

typedef struct zkc_group zkc_group;

typedef enum zkc_group_event_type {
    ZKC_GROUP_JOINED = 1,    /* `member` is new in the view */
    ZKC_GROUP_LEFT = 2,      /* `member` left (its last state as seen) */
    ZKC_GROUP_UPDATED = 3,   /* `member` has a new payload; `previous` the old one */
    ZKC_GROUP_DUPLICATE = 4, /* `member`'s id is now claimed by more than one node */
    ZKC_GROUP_CHANGED = 5,   /* after each batch of the above: `view` is the new view */
    ZKC_GROUP_ERROR = 6      /* our own node could not be created/updated: `rc` says why */
} zkc_group_event_type;

typedef struct zkc_group_event {
    zkc_group_event_type type;
    const zkc_member *member;   /* JOINED, LEFT, UPDATED, DUPLICATE; else NULL */
    const zkc_member *previous; /* UPDATED; else NULL */
    const zkc_group_view *view; /* the view after the batch this event belongs to */
    int rc;                     /* ERROR: a ZKC_* code; else 0 */
} zkc_group_event;

/* Event callback. Runs on the session's dispatcher thread (the ordinary
 * lane). Within a batch, LEFT events come first, then JOINED, UPDATED,
 * DUPLICATE, and one CHANGED. Batches are coalesced: while a callback is
 * slow or blocked, later changes merge into one batch that says how the
 * folder is now (a member that joined and left meanwhile is not told), so
 * memory stays bounded by the folder's size, not by the number of changes.
 * While the folder keeps changing without a pause, a change is still
 * delivered within about 100 ms.
 * Everything in `ev` is borrowed for the call: keep the view with
 * zkc_group_view_ref(). */
typedef void (*zkc_group_fn)(zkc_group *g, const zkc_group_event *ev, void *user_data);

typedef struct zkc_group_opts {
    zkc_group_fn on_event; /* NULL: no events (use zkc_group_view_get) */
    void *user_data;
    size_t max_payload; /* cap on a peer's node data in bytes; 0 = 65536 */
} zkc_group_opts;

/* Fill `o` with defaults (no callback, max_payload 65536). */
ZKC_EXTERN void zkc_group_opts_init(zkc_group_opts *o);

/* Start observing the member folder `path` (absolute, e.g.
 * "/zkcoord/orders/members"); it need not exist yet. Does not join.
 * `o` may be NULL (defaults); it is copied.
 * Errors: ZKC_EINVAL (bad path or arguments), ZKC_ENOMEM, ZKC_ESYS. */
ZKC_EXTERN int zkc_group_new(zkc_group **out, zkc_session *s, const char *path,
                             const zkc_group_opts *o);

/* What a member writes about itself. Strings are copied. */
typedef struct zkc_endpoint {
    const char *name; /* key in additionalEndpoints, non-empty */
    const char *host;
    int port; /* 0-65535 */
} zkc_endpoint;

typedef struct zkc_member_info {
    const char *id;                /* required, non-empty, at most 255 bytes */
    const char *host;              /* serviceEndpoint.host; NULL = "" */
    int port;                      /* serviceEndpoint.port, 0-65535 */
    const zkc_endpoint *endpoints; /* additionalEndpoints; may be NULL with 0 */
    int n_endpoints;
    const char *status;   /* NULL = "ALIVE" */
    int shard;            /* >= 0 */
    const char *metadata; /* JSON object text for zkcoord.metadata, or NULL */
} zkc_member_info;

/* Join: create our member node with `info` and keep it there (across
 * RECONNECTED and LOST, see above) until zkc_group_leave() or
 * zkc_group_free(). Returns once the create is sent; use
 * zkc_group_wait_joined() to wait for it to be in the view. Failures later
 * on are logged and reported as ZKC_GROUP_ERROR events.
 * Errors: ZKC_EINVAL (bad info, metadata not a JSON object, payload above
 * max_payload), ZKC_EBUSY (already joined), ZKC_ENOMEM, ZKC_ESYS (no
 * randomness for the guid), ZKC_ECLOSED. */
ZKC_EXTERN int zkc_group_join(zkc_group *g, const zkc_member_info *info);

/* Block until our own node is in this handle's view (joined and seen), or
 * `timeout_ms` passes (-1 = forever).
 * Errors: ZKC_ENOTHELD (not joined), ZKC_ETIMEDOUT, or the ZKC_* code of the
 * last failed create (e.g. ZKC_ENOAUTH) when it failed for good. */
ZKC_EXTERN int zkc_group_wait_joined(zkc_group *g, int timeout_ms);

/* Replace our payload (setData of our node; remembered for re-creation).
 * Waits up to `timeout_ms` (-1 forever, 0 not at all) for the server to
 * acknowledge; on ZKC_ETIMEDOUT the update still goes out when it can.
 * Errors: ZKC_EINVAL, ZKC_ENOTHELD (not joined), ZKC_ENOMEM, ZKC_ETIMEDOUT,
 * ZKC_ECLOSED. */
ZKC_EXTERN int zkc_group_update(zkc_group *g, const zkc_member_info *info, int timeout_ms);

/* Leave: delete our node and stop re-creating it. Waits up to `timeout_ms`
 * (-1 forever, 0 not at all) for the delete to be acknowledged (or the
 * session to be gone, which removes the node too). Observing goes on.
 * Errors: ZKC_ENOTHELD (not joined), ZKC_ETIMEDOUT, ZKC_ECLOSED. */
ZKC_EXTERN int zkc_group_leave(zkc_group *g, int timeout_ms);

/* The current view: a new reference the caller frees with
 * zkc_group_view_free(). May lag the server by the changes in flight.
 * Errors: ZKC_EINVAL. */
ZKC_EXTERN int zkc_group_view_get(zkc_group *g, zkc_group_view **out);

/* Stop: leave if joined (the delete is sent), stop watching, free `g`.
 * Waits, at most 2 s, for the group's requests in flight (that delete
 * included) to come back, so that closing the session right after loses
 * nothing. After it returns no callback of `g` runs (from a callback of `g`
 * itself: none after the current one). NULL is a no-op. */
ZKC_EXTERN void zkc_group_free(zkc_group *g);

/* One-shot read of a member folder (for CLIs): one getChildren and one get
 * per member, no watches, no group handle. Waits up to `timeout_ms` (-1 =
 * forever) for a connection and the replies. A missing folder is an empty
 * view. `max_payload` 0 = 65536. On success *out is a new view the caller
 * frees with zkc_group_view_free(); on failure it is untouched (after
 * ZKC_ETIMEDOUT, late replies are discarded). Member flags never include
 * ZKC_MEMBER_SELF here.
 * Errors: ZKC_EINVAL, ZKC_ENOMEM, ZKC_ETIMEDOUT, ZKC_EUNREACHABLE,
 * ZKC_ECONNLOSS (connection lost during the read), ZKC_ENOAUTH, ZKC_ECLOSED. */
ZKC_EXTERN int zkc_group_read(zkc_session *s, const char *path, size_t max_payload,
                              zkc_group_view **out, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* ZKCOORD_GROUP_H */
