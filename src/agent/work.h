/* The agent's work section (issue 12 item 4): this agent as a worker of
 * the cluster's task queue (zkcoord/task.h), and as its planner while it
 * leads.
 *
 * Worker: each task assigned to this member runs the configured task
 * handler under a guard (proc.h: the handler and everything it starts are
 * stopped together, nothing outlives the run). The task's payload, exactly
 * as submitted, is the handler's stdin; its stdout (the first
 * ZKC_TASK_OUTPUT_MAX bytes, and the library marks the result truncated
 * when there was more) is the result's output; its stderr goes to the
 * agent's stderr. The result's status is:
 *   - the exit code when the handler exited;
 *   - 128 + N when it was killed by signal N;
 *   - ZKA_WORK_STATUS_TIMEOUT (124, as timeout(1)) when it ran past
 *     tasks.timeout_ms: the whole tree got SIGTERM, SIGKILL after 2 s;
 *   - ZKA_WORK_STATUS_NOEXEC (127, as the shell) when it could not start.
 * Environment: the agent's, plus tasks.env, plus ZKCOORD_CLUSTER,
 * ZKCOORD_MEMBER_ID, ZKCOORD_TASK_ID and ZKCOORD_FENCING_TOKEN (the claim's
 * token, for a sink that refuses a stale worker's output).
 *
 * Which tasks it gets is the library's business: the planner gives a
 * member at most its capacity (member metadata "capacity", published from
 * work.capacity), and only while its member node is there with a status
 * other than STOPPING. So an unhealthy agent (deregistered) and a drained
 * one (STOPPING) take no new tasks; the tasks they already run finish
 * (within their timeout) and their results are written.
 *
 * Work items (work.items / work.partitions, zkcoord/work.h): the agent
 * makes sure its configured items exist (zkc_work_item_add at start; one
 * that exists is left as it is, spec included; items are never removed
 * here, `zkcoordctl items remove` does that) and, while
 * zka_work_items_start() was called and not undone, takes part in the
 * assignment with a zkc_work handle under its member id, planning through
 * the election participant while it leads. On ASSIGNED it starts the
 * item's own supervised process (supervise.while "item": one zka_supervise
 * per held item, so each has its own restart policy, stop grace and
 * token) and then reports the change; on REVOKED (any reason: moved,
 * removed, claim gone, session lost, handle closed) it stops that process
 * and waits until nothing of it is left (zka_supervise_stop_sync) before
 * the callback returns, so the library deletes the claim only then and the
 * next owner's process can never overlap it; then it reports the change.
 * On SUSPENDED every item's process stops at once (the server may expire
 * the session, and another member take the items, before the local timer
 * says LOST); the items stay held and their processes start again on
 * RECONNECTED, under the same tokens.
 *
 * Threads: zka_work_new/_plan/_free from the agent's threads (never a
 * ZooKeeper thread); tasks run on the library's threads, one per task.
 * Item changes are reported on the session's dispatcher lanes (ASSIGNED on
 * the ordinary one, REVOKED on the safety lane). */
#ifndef ZKA_WORK_H
#define ZKA_WORK_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "zkcoord/election.h"
#include "zkcoord/zkcoord.h"

#define ZKA_WORK_STATUS_TIMEOUT 124
#define ZKA_WORK_STATUS_NOEXEC  127

typedef struct zka_work zka_work;

/* One change of the items this agent holds. Everything is borrowed for the
 * call. */
typedef struct zka_item_change {
    bool assigned;      /* ASSIGNED (else REVOKED) */
    const char *item;   /* the item's name */
    const char *spec;   /* its spec as read at ASSIGNED (peer data, may hold any byte) */
    int spec_len;       /* its length */
    int64_t token;      /* the claim's czxid: the item's fencing token */
    const char *reason; /* REVOKED: "moved", "removed", "claim_gone", "session", "closed" */
    char *const *held;  /* the items held after the change, sorted, n_held of them */
    size_t n_held;
} zka_item_change;

/* Called once per change, after the item's process started (ASSIGNED) or
 * is gone (REVOKED). On the session's dispatcher; must not block long. */
typedef void (*zka_item_fn)(const zka_item_change *c, void *user_data);

/* Start the worker of `cfg` (copied; nothing to do unless cfg->tasks) on
 * session `s`, in the cluster folder `cluster_path` ("<root>/<cluster>"),
 * as member `member_id`, whose member node is in `members_path`, with the
 * election at `leader_path` (for the planner). Strings are copied.
 * `cluster` is the cluster's name for ZKCOORD_CLUSTER. With work items
 * configured it also adds the missing ones (each up to `timeout_ms`; a
 * failure is logged, not fatal: the items may be added by hand). `per_item`
 * (copied, may be NULL) is the supervise section when it says while
 * "item"; `fn` (may be NULL) hears item changes with `user_data`.
 * Errors: ZKC_ENOMEM, and those of zkc_tasks_new(). */
int zka_work_new(zka_work **out, zkc_session *s, const zka_work_cfg *cfg, const char *cluster,
                 const char *cluster_path, const char *members_path, const char *leader_path,
                 const char *member_id, const zka_supervise_cfg *per_item, int timeout_ms,
                 zka_item_fn fn, void *user_data);

/* Take part in the item assignment now (no-op without work items, or when
 * already taking part), planning through `el` (borrowed, may be NULL: never
 * plan) while it leads; `el` must outlive zka_work_items_stop(). Call it
 * only while the member is registered and healthy. Errors: those of
 * zkc_work_new() (logged too). */
int zka_work_items_start(zka_work *w, zkc_election *el);

/* Stop taking part: every held item is REVOKED (reason "closed"), its
 * process stopped and its claim deleted, before this returns. No-op when
 * not taking part. Not from an item callback. */
void zka_work_items_stop(zka_work *w);

/* Items held now (for the state dump); 0 for NULL. */
int zka_work_items_held(zka_work *w);

/* Plan the task queue through `el` (borrowed: our participant in the
 * cluster's election; the library plans only while it leads), or stop
 * planning with NULL. Call with NULL before `el` is closed. Errors:
 * ZKC_ENOMEM, those of zkc_tasks_new() (logged too). */
int zka_work_plan(zka_work *w, zkc_election *el);

/* Tasks running now (for the state dump); 0 for NULL. */
int zka_work_running(zka_work *w);

/* Stop taking part in the item assignment (as zka_work_items_stop), stop
 * planning and claiming tasks, let the running tasks finish (each within
 * its timeout) and their results be written, free. NULL is a no-op. */
void zka_work_free(zka_work *w);

#endif
