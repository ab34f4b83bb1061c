/*
 * A task queue with results: the ZooKeeper book's master-worker.
 *
 * Clients submit tasks; the leader of the cluster assigns each to a live
 * worker with spare capacity; the worker claims it, runs it and writes its
 * result. Layout under the cluster folder C (e.g. "/zkcoord/orders"):
 *
 *   C/work/tasks/task-<seq>    persistent sequential: the task's payload
 *                              (opaque bytes, at most ZKC_TASK_PAYLOAD_MAX).
 *   C/work/assign/task-<seq>   persistent, written only by the leader with
 *                              zkc_election_fenced_multi() (a deposed leader
 *                              cannot assign): JSON {"member": ID,
 *                              "claimed": false}. The worker that claims the
 *                              task rewrites it ({"member": ID, "claimed":
 *                              true}) in the same multi that creates its
 *                              claim, with the version it read, so every
 *                              claim moves the node's version on.
 *   C/work/running/task-<seq>  ephemeral, data = the worker's member id: the
 *                              claim. Its czxid is the task's fencing token.
 *   C/work/results/task-<seq>  persistent: JSON {"task", "status" (the exit
 *                              code, 0 = success), "output" (capped at
 *                              ZKC_TASK_OUTPUT_MAX bytes; "truncated": true
 *                              when cut), "worker", "token"}.
 *
 * A worker writes the result with ONE multi that checks its claim exists,
 * deletes the assignment AT THE VERSION ITS CLAIM LEFT (so any later claim
 * of the same task, by another worker or by itself in a new session, makes
 * the write fail), creates the result and deletes the task and the claim.
 * So a result is written at most once, by the current claim holder. A
 * worker whose session dies loses its claim; the leader sees an assignment
 * marked claimed without a claim node and assigns the task again
 * (at-least-once: the task may run twice, but only one result lands, and
 * the token in it lets a sink refuse output from a stale holder).
 *
 * Liveness and capacity: a worker is live while a member node with its id
 * is in C/members (zkc_group) and its status is not "STOPPING" (a member
 * on its way out, e.g. a drained agent: it gets no new tasks, its
 * unclaimed assignments go to others, the tasks it claimed stay its own).
 * Its capacity is the integer "capacity" in its member metadata
 * (1..1000000; absent = 1; anything else = 1 with a warning). The
 * leader assigns at most `capacity` tasks to a worker (to the least
 * loaded, ties by member id), and a worker never runs more than its
 * capacity at once (a run whose claim was lost still counts until its
 * callback returns).
 *
 * Retention: results are kept until the submitter (zkc_task_result_delete)
 * or an operator deletes them; nothing deletes them by itself.
 *
 * Foreign data in the four folders (names that are not task-<10 digits>,
 * assignments or results that are not our JSON) is logged and skipped; an
 * unreadable assignment of a real task is replaced by the leader.
 */
#ifndef ZKCOORD_TASK_H
#define ZKCOORD_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "zkcoord/zkcoord.h"
#include "zkcoord/election.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest task payload: 1 MiB less 1 KiB, so that the create request
 * (payload, path, ACL, framing) fits ZooKeeper's default jute.maxbuffer of
 * 0xfffff bytes. */
#define ZKC_TASK_PAYLOAD_MAX (1048576 - 1024)
/* Largest output kept in a result (bytes); longer output is cut. */
#define ZKC_TASK_OUTPUT_MAX 65536
/* Room for a task id ("task-0000000042") with its NUL. */
#define ZKC_TASK_ID_MAX 32

/* A task's result as written by the worker, decoded. */
typedef struct zkc_task_result {
    char task[ZKC_TASK_ID_MAX]; /* "task-<seq>" */
    int status;                 /* the run callback's return value: 0 = success */
    char *output;               /* NUL-terminated, output_len bytes (may be "") */
    size_t output_len;
    int truncated;    /* 1 when the worker cut the output at ZKC_TASK_OUTPUT_MAX */
    char *worker;     /* member id of the worker that wrote it */
    int64_t token;    /* fencing token (czxid of the claim) of that worker */
    int64_t czxid;    /* czxid of the result node */
    int64_t ctime_ms; /* when it was written (server clock) */
} zkc_task_result;

/* Decode a result node's data (untrusted: capped at 1 MiB, every field
 * type-checked). On 0, *out is new (free with zkc_task_result_free()); the
 * node's czxid/ctime are left 0. Errors: ZKC_EINVAL (NULL), ZKC_EBADDATA
 * (not a result), ZKC_ENOMEM. Any thread. */
ZKC_EXTERN int zkc_task_result_parse(const char *data, size_t len, zkc_task_result **out);

/* Free a result. NULL is a no-op. */
ZKC_EXTERN void zkc_task_result_free(zkc_task_result *r);

/* 1 when `name` is a task id ("task-" and 10 digits), else 0. */
ZKC_EXTERN int zkc_task_id_valid(const char *name);

/* Submit a task to the cluster at `cluster_path` (absolute, e.g.
 * "/zkcoord/orders"): creates C/work/tasks/task-<seq> (and missing
 * parents) with `payload` (`len` bytes, may be 0). On 0, the task id is
 * copied into `id` (`id_len` >= ZKC_TASK_ID_MAX). Blocks up to
 * `timeout_ms` (-1 = forever).
 * Errors: ZKC_EINVAL (NULL, bad path, len > ZKC_TASK_PAYLOAD_MAX, id
 * buffer too small), ZKC_ECONNLOSS / ZKC_ETIMEDOUT (the create may or may
 * not have happened: a sequential create cannot be found again), ZKC_ENOAUTH,
 * ZKC_ENOMEM, ZKC_EZOOKEEPER. Any thread but a ZooKeeper completion
 * thread. */
ZKC_EXTERN int zkc_task_submit(zkc_session *s, const char *cluster_path, const char *payload,
                               size_t len, char *id, size_t id_len, int timeout_ms);

/* Wait until the result of task `id` exists, at most `timeout_ms` (-1 =
 * forever, 0 = look once), with one exists watch on the result node (no
 * polling, no watch on the folder). On 0, *out is the decoded result (free
 * with zkc_task_result_free()); the result stays in ZooKeeper.
 * Errors: ZKC_EINVAL (NULL, bad path or id), ZKC_ETIMEDOUT (no result
 * yet), ZKC_EBADDATA (the node is not a result), ZKC_ENOAUTH, ZKC_ENOMEM,
 * ZKC_ECLOSED. Connection losses are waited out until the deadline. Any
 * thread but a ZooKeeper completion thread. */
ZKC_EXTERN int zkc_task_wait(zkc_session *s, const char *cluster_path, const char *id,
                             int timeout_ms, zkc_task_result **out);

/* Delete the result of task `id` (the retention rule: results stay until
 * deleted). Errors: ZKC_ENONODE (no such result), ZKC_EINVAL, ZKC_ECONNLOSS,
 * ZKC_ETIMEDOUT, ZKC_ENOAUTH, ZKC_ENOMEM. Blocks up to `timeout_ms`. */
ZKC_EXTERN int zkc_task_result_delete(zkc_session *s, const char *cluster_path, const char *id,
                                      int timeout_ms);

/* ------------------------------------------------ workers and the leader */

typedef struct zkc_tasks zkc_tasks;

/* The task a worker runs: borrowed for the run call. */
typedef struct zkc_task {
    const char *id;      /* "task-<seq>" */
    const char *payload; /* the payload (NUL-terminated for convenience) */
    size_t len;
    int64_t token; /* fencing token: czxid of our claim */
} zkc_task;

/* Run one task. Return its status (0 = success; written to the result as
 * is). Output: set *output to a malloc()ed buffer of *output_len bytes (or
 * leave NULL); the library frees it and keeps at most ZKC_TASK_OUTPUT_MAX
 * bytes (invalid UTF-8 bytes are written as '?'). Runs on a thread of its
 * own per task (never on the dispatcher), up to the worker's capacity at
 * once; it may block as long as the task takes. */
typedef int (*zkc_task_run_fn)(zkc_tasks *t, const zkc_task *task, char **output,
                               size_t *output_len, void *user_data);

typedef struct zkc_tasks_opts {
    /* Worker: the member id this process joined C/members with (through
     * zkc_group), and the callback that runs tasks. NULL member_id: not a
     * worker. */
    const char *member_id;
    zkc_task_run_fn run;
    void *user_data;
    /* Leader side: an election of the cluster, borrowed (its owner keeps
     * its callbacks). This handle plans only while
     * zkc_election_is_leader(election) and writes assignments only with
     * zkc_election_fenced_multi(). NULL: never plans. (Spelt with its
     * struct tag: zkcoord.h includes this header before election.h has
     * declared the typedef when election.h is included first.) */
    struct zkc_election *election;
    /* The folder of that election (watched to learn of leader changes);
     * NULL = C/leader. */
    const char *election_path;
    /* The members folder; NULL = C/members. */
    const char *members_path;
} zkc_tasks_opts;

/* Defaults: everything NULL. */
ZKC_EXTERN void zkc_tasks_opts_init(zkc_tasks_opts *o);

/* Take part in the task queue of the cluster at `cluster_path` as a worker,
 * a planner (leader side), or both. Starts one thread of its own (it
 * plans, claims and writes results; tasks run on threads of their own) and
 * children caches of the folders it needs. Returns at once. Strings are
 * copied; the election stays borrowed and must outlive the handle.
 * Errors: ZKC_EINVAL (NULL, bad path, member_id without run or neither a
 * worker nor an election), ZKC_ENOMEM, ZKC_ESYS (thread). */
ZKC_EXTERN int zkc_tasks_new(zkc_tasks **out, zkc_session *s, const char *cluster_path,
                             const zkc_tasks_opts *o);

/* Counters for tests and tools. */
typedef struct zkc_tasks_stats {
    uint64_t claimed;   /* claims this handle won */
    uint64_t completed; /* results it wrote */
    uint64_t fenced;    /* results refused because the claim was no longer ours */
    uint64_t assigned;  /* assignment writes the planner made */
    int running;        /* run callbacks in progress now */
} zkc_tasks_stats;

/* Copy the counters. Errors: ZKC_EINVAL. Any thread. */
ZKC_EXTERN int zkc_tasks_stats_get(zkc_tasks *t, zkc_tasks_stats *out);

/* Stop: no new claims or plans, wait until every run callback returned and
 * its result was written (or refused), stop the caches, free. Not from a
 * run callback or a ZooKeeper thread. Before zkc_session_close() and before
 * the borrowed election is closed. NULL is a no-op. */
ZKC_EXTERN void zkc_tasks_free(zkc_tasks *t);

#ifdef __cplusplus
}
#endif

#endif /* ZKCOORD_TASK_H */
