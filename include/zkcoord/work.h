/*
 * Work assignment (zkc_work): a cluster's named work items (shards,
 * partitions, jobs that run forever) spread over its live members, each item
 * run by at most one member at a time.
 *
 * Layout under the cluster folder <cluster> (e.g. "/zkcoord/orders"):
 *  - <cluster>/work/items/<item>   persistent; data = the item's spec
 *                                  (opaque bytes, at most ZKC_WORK_MAX_SPEC)
 *  - <cluster>/work/plan           one node, written only by the leader of
 *                                  <cluster>/leader with a fenced multi (a
 *                                  deposed leader's write is refused by the
 *                                  server): JSON {"version": N, "leader":
 *                                  id, "assign": {item: member id, ...}}
 *  - <cluster>/work/claims/<item>  ephemeral; data = the member id of the
 *                                  member that runs the item. Its czxid is
 *                                  the item's fencing token.
 * Members are the ServerSet nodes of <cluster>/members (zkc_group); a
 * member's weight is the integer "weight" of its metadata (default 1; a bad
 * value counts as 1, with a warning).
 *
 * Who does what:
 *  - the leader (the handle whose borrowed election leads) plans: sticky and
 *    balanced (a join moves about items/n items to the newcomer, a leave
 *    moves only the leaver's items, each member is within one item of its
 *    weighted share), and deterministic, so a new leader agrees with the
 *    old one. It re-plans when members, weights or items change. A plan
 *    node it cannot parse is reported and replaced.
 *  - every member claims the items the plan gives it: it creates the claim
 *    and then hears ASSIGNED. An item it loses in a new plan is REVOKED
 *    first; the claim is deleted only after that callback returned, and
 *    only then can the new owner (which waits for the claim to go) create
 *    its own claim and hear ASSIGNED. So no two members ever hold an item's
 *    claim, and a member that runs an item only between ASSIGNED and the
 *    return of REVOKED never overlaps another. A member's death frees its
 *    claims with its session; the leader re-plans. A plan that members
 *    cannot parse is reported and ignored (they keep what they hold).
 *
 * Claims are the members' own: a claim deleted or planted by hand is
 * reported (CLAIM_GONE to its holder; bad_claim / stray_claim in the
 * view) and survived, but while it lasts the one-holder guarantee is only
 * as good as what was done by hand.
 *
 * Connection states, as for locks: SUSPENDED (the member can no longer be
 * sure it still holds its items), RECONNECTED (same session back, every
 * claim verified ours), LOST (the session is gone: REVOKED for every held
 * item first, then LOST; the handle re-enters with the new session by
 * itself).
 *
 * Threads: ASSIGNED runs on the session's ordinary dispatcher lane;
 * REVOKED, SUSPENDED, RECONNECTED and LOST on the safety lane (see
 * zkcoord.h), so a revocation never waits behind slow ordinary callbacks.
 * For one item, REVOKED never starts before its ASSIGNED returned: when
 * the session is lost while an ASSIGNED callback runs, that item's REVOKED
 * (reason SESSION) comes as soon as it returns, so after LOST. The
 * handle's own work (reads, plan writes, claims) runs on a thread of the
 * handle.
 */
#ifndef ZKCOORD_WORK_H
#define ZKCOORD_WORK_H
#include <stddef.h>
#include <stdint.h>
#include "zkcoord/zkcoord.h"
#include "zkcoord/election.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef struct zkc_work zkc_work;

/* Longest item spec written or accepted (bytes). */
#define ZKC_WORK_MAX_SPEC 65536
/* Longest item name (bytes). */
#define ZKC_WORK_MAX_ITEM 200
/* Longest plan node read (bytes): larger ones are reported as malformed. */
#define ZKC_WORK_MAX_PLAN (1024 * 1024)

typedef enum zkc_work_event_type {
    ZKC_WORK_ASSIGNED = 1,    /* item, spec, token: this member holds the claim: run it */
    ZKC_WORK_REVOKED = 2,     /* item, token, reason: stop running it before returning */
    ZKC_WORK_SUSPENDED = 3,   /* connection lost: can no longer be sure of any held item */
    ZKC_WORK_RECONNECTED = 4, /* same session back, every held claim verified ours */
    ZKC_WORK_LOST = 5,        /* session lost; every held item was REVOKED just before */
} zkc_work_event_type;

typedef enum zkc_work_revoke_reason {
    ZKC_WORK_MOVED = 1,      /* the plan gives the item to another member (or nobody) */
    ZKC_WORK_REMOVED = 2,    /* the item was removed */
    ZKC_WORK_CLAIM_GONE = 3, /* our claim vanished or is no longer ours (deleted by hand) */
    ZKC_WORK_SESSION = 4,    /* the session was lost */
    ZKC_WORK_CLOSED = 5,     /* zkc_work_free() */
} zkc_work_revoke_reason;

typedef struct zkc_work_event {
    zkc_work_event_type type;
    const char *item;              /* ASSIGNED, REVOKED; else NULL */
    const char *spec;              /* ASSIGNED: the item's spec (NUL-terminated), may be NULL */
    int spec_len;                  /* its length */
    int64_t token;                 /* ASSIGNED, REVOKED: the claim's czxid */
    zkc_work_revoke_reason reason; /* REVOKED */
} zkc_work_event;

/* Event callback; everything in `ev` is borrowed for the call. */
typedef void (*zkc_work_fn)(zkc_work *w, const zkc_work_event *ev, void *user_data);

typedef struct zkc_work_opts {
    const char *member_id;         /* required: this member's id, as in its member node */
    struct zkc_election *election; /* borrowed, may be NULL: this handle plans only while
                               zkc_election_is_leader() says it leads. Must outlive the
                               handle. The election must be on <cluster>/leader. */
    zkc_work_fn on_event;          /* may be NULL */
    void *user_data;
} zkc_work_opts;

/* Defaults: all NULL. */
ZKC_EXTERN void zkc_work_opts_init(zkc_work_opts *o);

/* Take part in the work assignment of the cluster folder `cluster_path`
 * (absolute, e.g. "/zkcoord/orders"). Starts the handle's thread, which
 * creates the work folders when missing, follows the plan, claims what it
 * gives this member and, while `o->election` leads, plans. The options are
 * copied (the election is borrowed).
 * Errors: ZKC_EINVAL (NULL out/s/o, bad path, missing or over-long
 * member_id), ZKC_ENOMEM, ZKC_ESYS (thread creation failed). */
ZKC_EXTERN int zkc_work_new(zkc_work **out, zkc_session *s, const char *cluster_path,
                            const zkc_work_opts *o);

/* Stop and free. From the call on no ASSIGNED is delivered; every item
 * this member runs gets REVOKED (reason CLOSED) on the safety lane, or on
 * the calling thread when it is one of the session's callbacks, and only
 * after those returned are the claims deleted, so the new owners take the
 * items at once and never while this member still runs them. No callback
 * of `w` runs after it returns (from a callback of `w`: none after the
 * current one). Must happen before zkc_session_close(), and before the
 * borrowed election is closed. NULL is a no-op. */
ZKC_EXTERN void zkc_work_free(zkc_work *w);

/* The items this member holds now (claimed, ASSIGNED delivered or on its
 * way, not yet REVOKED): a new array of *n new strings, sorted; free with
 * zkc_strings_free(). Errors: ZKC_EINVAL, ZKC_ENOMEM. */
ZKC_EXTERN int zkc_work_held(zkc_work *w, char ***items, int *n);

/* --------------------------------------------------- fenced writes */

/* Write `ops` (see zkc_fenced_multi() in zkcoord/fence.h) into ZooKeeper
 * only while this member holds `item`: one multi, a check that the item's
 * claim exists first, all or nothing.
 *
 * Why a check of the claim alone is not a fence: the claim path
 * <cluster>/work/claims/<item> is the same for every owner, so the stale
 * writer of zkc_fenced_multi(s, claim path, ...) -- a member whose session
 * expired and came back as a new ZooKeeper session of the same zkc_session,
 * or any other session -- passes the check on the NEXT owner's claim. This
 * call is a real fence because of where and when it sends:
 *  - only while the hold lasts as this handle sees it: from the claim's
 *    creation (ASSIGNED posted) until its REVOKED callback returned (for
 *    reason CLOSED: until zkc_work_free()'s REVOKED returned). A write may
 *    therefore be flushed from inside REVOKED. After a LOST the holds are
 *    over at once (ZKC_ENOTHELD), also during their REVOKED (reason
 *    SESSION): the session, and with it the claim, is gone;
 *  - only on the very ZooKeeper session that created the claim (the
 *    session's handle generation). A session the server has expired is
 *    refused by the server, whatever node is at the claim path by then; a
 *    session the client knows expired, or the local LOST timer gave up on,
 *    is refused locally (ZKC_ESESSIONLOST);
 *  - on that live session the claim (ephemeral, ours) can go only by our
 *    own delete, which the library sends only after the hold ended, on the
 *    same session, and after every multi this call let through (the check
 *    and the send happen under the lock that ends the hold). ZooKeeper
 *    serves one session's requests in order, so each of them reaches the
 *    server while the claim is ours. A reconnect of the same session
 *    (SUSPENDED, then RECONNECTED) keeps the session, its order and the
 *    claim: a multi queued meanwhile is sent once connected, or refused by
 *    the server if the session expired first.
 * Limits: a claim deleted by hand (not by the library) voids the fence
 * until this member noticed (from then on, already before its REVOKED with
 * reason CLAIM_GONE runs, the write is refused locally): if another member
 * claimed the item in between, the check passes on its claim. A multi
 * that timed out (ZKC_ETIMEDOUT, ZKC_ECONNLOSS) may still commit, but only
 * while the claim is ours (it is ordered before our delete). Systems
 * outside ZooKeeper need the token (the claim's czxid) instead.
 *
 * `token`: 0 = whichever hold of `item` this member has; else only the
 * hold whose ASSIGNED carried that token (a writer of an earlier hold of
 * the same item is refused). Blocks up to `timeout_ms` (-1 = no limit);
 * not for the ZooKeeper threads, fine from callbacks (also REVOKED).
 * `*failed_index` (may be NULL): the index in `ops` of the op that failed,
 * else -1. Thread-safe; `w` must not be freed meanwhile.
 * Errors: ZKC_EINVAL (NULL w, bad item name, negative token, bad ops),
 * ZKC_ENOTHELD (this member does not hold the item (with that token) now,
 * or the server found no claim: deleted by hand; nothing written),
 * ZKC_ESESSIONLOST (the claim's ZooKeeper session is gone: known
 * locally, or the server refused the expired session; nothing written),
 * ZKC_ENOMEM, and every error of zkc_fenced_multi_ex(). */
ZKC_EXTERN int zkc_work_fenced_multi_ex(zkc_work *w, const char *item, int64_t token,
                                        const zkc_op *ops, int nops, int timeout_ms,
                                        int *failed_index);

/* zkc_work_fenced_multi_ex() with token 0 and no failed index. */
ZKC_EXTERN int zkc_work_fenced_multi(zkc_work *w, const char *item, const zkc_op *ops, int nops,
                                     int timeout_ms);

/* ------------------------------------------------------------- items */

/* 0 when `item` is a usable item name: 1..ZKC_WORK_MAX_ITEM bytes of
 * printable ASCII without '/', not "." or "..". Else ZKC_EINVAL. */
ZKC_EXTERN int zkc_work_item_name_check(const char *item);

/* Add item `item` with spec `spec` (len bytes, may be NULL with len 0) to
 * the cluster; creates the work folders when missing. Blocks up to
 * `timeout_ms` (-1 = forever); not for the ZooKeeper threads.
 * Errors: ZKC_EINVAL (bad name, len < 0 or > ZKC_WORK_MAX_SPEC),
 * ZKC_ENODEEXISTS (already there; nothing changed), ZKC_ECONNLOSS,
 * ZKC_ETIMEDOUT, ZKC_ENOAUTH, ZKC_ENOMEM, other ZooKeeper errors. */
ZKC_EXTERN int zkc_work_item_add(zkc_session *s, const char *cluster_path, const char *item,
                                 const char *spec, int len, int timeout_ms);

/* Remove item `item`. Its owner hears REVOKED (reason REMOVED) and drops
 * its claim. Errors: ZKC_EINVAL, ZKC_ENONODE (no such item), and those of
 * zkc_work_item_add(). */
ZKC_EXTERN int zkc_work_item_remove(zkc_session *s, const char *cluster_path, const char *item,
                                    int timeout_ms);

/* ---------------------------------------------------- observer view */

/* Why an item is not run by its planned owner. */
typedef enum zkc_work_item_state {
    ZKC_WORK_RUNNING = 0,     /* claimed by the member the plan names */
    ZKC_WORK_UNPLANNED = 1,   /* in no valid plan yet (no leader, new item, no members) */
    ZKC_WORK_OWNER_DOWN = 2,  /* the planned member is not in the member folder */
    ZKC_WORK_WAITING = 3,     /* planned owner is up but has not claimed it (yet) */
    ZKC_WORK_HANDOVER = 4,    /* claimed by another member than the planned one */
    ZKC_WORK_BAD_CLAIM = 5,   /* the claim is not an ephemeral node or its data is garbage */
    ZKC_WORK_BAD_SPEC = 6,    /* the spec is larger than ZKC_WORK_MAX_SPEC: never planned */
    ZKC_WORK_STRAY_CLAIM = 7, /* a claim for an item that does not exist */
} zkc_work_item_state;

/* One item (or stray claim) of a view. Strings are borrowed from the view;
 * peer data is cut to a sane length and may be anything. */
typedef struct zkc_work_entry {
    const char *item;
    int exists;                /* the item node exists */
    const char *spec;          /* its spec (NULL when none, or over the cap) */
    int spec_len;              /* its length (the full length when over the cap) */
    const char *planned;       /* member id the plan names, NULL when none */
    const char *claimed_by;    /* claim data, NULL when no claim */
    int64_t token;             /* claim czxid, 0 when no claim */
    int64_t claim_session;     /* claim ephemeralOwner, 0 when no claim */
    zkc_work_item_state state; /* see above */
} zkc_work_entry;

typedef struct zkc_work_view zkc_work_view;

typedef enum zkc_work_plan_status {
    ZKC_WORK_PLAN_OK = 0,
    ZKC_WORK_PLAN_MISSING = 1,   /* no plan node yet */
    ZKC_WORK_PLAN_MALFORMED = 2, /* the plan node is not a plan (see the reason) */
} zkc_work_plan_status;

/* Read the whole assignment of a cluster once: items, plan, claims and
 * members (one getChildren per folder, one get per item, claim and member,
 * and one of the plan). Blocks up to `timeout_ms` per request (-1 =
 * forever); not for the ZooKeeper threads. On 0, *out is a new view (free
 * with zkc_work_view_free()); items sorted by name.
 * Errors: ZKC_EINVAL, ZKC_ENONODE (the cluster folder does not exist),
 * ZKC_ECONNLOSS, ZKC_ETIMEDOUT, ZKC_ENOAUTH, ZKC_ENOMEM. */
ZKC_EXTERN int zkc_work_view_read(zkc_session *s, const char *cluster_path, int timeout_ms,
                                  zkc_work_view **out);
ZKC_EXTERN void zkc_work_view_free(zkc_work_view *v);
ZKC_EXTERN int zkc_work_view_count(const zkc_work_view *v);
/* The i-th entry (borrowed from the view), NULL for a bad i. */
ZKC_EXTERN const zkc_work_entry *zkc_work_view_at(const zkc_work_view *v, int i);
/* Plan status, version (0 when none), the leader id that wrote it (NULL
 * when none) and, for MALFORMED, a reason (NULL otherwise). */
ZKC_EXTERN zkc_work_plan_status zkc_work_view_plan(const zkc_work_view *v, int64_t *version,
                                                   const char **leader, const char **why);
/* Live member ids (members folder, sorted, duplicates once) and weights. */
ZKC_EXTERN int zkc_work_view_member_count(const zkc_work_view *v);
ZKC_EXTERN const char *zkc_work_view_member(const zkc_work_view *v, int i, int64_t *weight);

/* "running", "unplanned", "owner_down", "waiting", "handover", "bad_claim",
 * "bad_spec", "stray_claim". Static storage. */
ZKC_EXTERN const char *zkc_work_item_state_name(zkc_work_item_state st);
/* "assigned", "revoked", "suspended", "reconnected", "lost". */
ZKC_EXTERN const char *zkc_work_event_name(zkc_work_event_type t);
/* "moved", "removed", "claim_gone", "session", "closed". */
ZKC_EXTERN const char *zkc_work_revoke_reason_name(zkc_work_revoke_reason r);

#ifdef __cplusplus
}
#endif
#endif /* ZKCOORD_WORK_H */
