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
 * Threads: zka_work_new/_plan/_free from the agent's threads (never a
 * ZooKeeper thread); tasks run on the library's threads, one per task. */
#ifndef ZKA_WORK_H
#define ZKA_WORK_H

#include "config.h"
#include "zkcoord/election.h"
#include "zkcoord/zkcoord.h"

#define ZKA_WORK_STATUS_TIMEOUT 124
#define ZKA_WORK_STATUS_NOEXEC  127

typedef struct zka_work zka_work;

/* Start the worker of `cfg` (copied; nothing to do unless cfg->tasks) on
 * session `s`, in the cluster folder `cluster_path` ("<root>/<cluster>"),
 * as member `member_id`, whose member node is in `members_path`, with the
 * election at `leader_path` (for the planner). Strings are copied.
 * `cluster` is the cluster's name for ZKCOORD_CLUSTER.
 * Errors: ZKC_ENOMEM, and those of zkc_tasks_new(). */
int zka_work_new(zka_work **out, zkc_session *s, const zka_work_cfg *cfg, const char *cluster,
                 const char *cluster_path, const char *members_path, const char *leader_path,
                 const char *member_id);

/* Plan the task queue through `el` (borrowed: our participant in the
 * cluster's election; the library plans only while it leads), or stop
 * planning with NULL. Call with NULL before `el` is closed. Errors:
 * ZKC_ENOMEM, those of zkc_tasks_new() (logged too). */
int zka_work_plan(zka_work *w, zkc_election *el);

/* Tasks running now (for the state dump); 0 for NULL. */
int zka_work_running(zka_work *w);

/* Stop planning and claiming, let the running tasks finish (each within
 * its timeout) and their results be written, free. NULL is a no-op. */
void zka_work_free(zka_work *w);

#endif
