/* The task queue against a real server: results for every task with one
 * and three workers, capacity respected (from a recorded history), a
 * worker expired mid-task (its task completed elsewhere, its late result
 * refused), a deposed leader's write refused, the payload cap, foreign
 * data, and a seeded random schedule of expiries and joins while tasks
 * flow. */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/testutil.h"
#include "internal.h" /* the synchronous ZooKeeper API, for foreign writes */

int register_task_suite(void);
;

/* ---- a recorded history of runs */

#define MAX_RUNS 4096

struct hist {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct {
        char task[ZKC_TASK_ID_MAX];
        char worker[32];
        int64_t token;
    } runs[MAX_RUNS];
    int n;
};

static struct hist H;

static void hist_reset(void)
{
    pthread_mutex_lock(&H.mu);
    H.n = 0;
    pthread_mutex_unlock(&H.mu);
}

/* One worker process in the test: its session, membership and handle. */
struct worker {
    char id[32];
    int capacity_meta; /* 0: no capacity in the metadata; -1: garbage */
    zkc_session *s;
    zkc_group *g;
    zkc_tasks *t;
    /* what its runs did */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int cur, max, started;
    int gate; /* 1: runs wait until `open` */
    int open;
    int work_us;
};

static int run_task(zkc_tasks *t, const zkc_task *task, char **output, size_t *olen, void *ud)
{
    struct worker *w = ud;
    int i;

    (void)t;
    pthread_mutex_lock(&H.mu);
    if (H.n < MAX_RUNS) {
        snprintf(H.runs[H.n].task, sizeof(H.runs[H.n].task), "%s", task->id);
        snprintf(H.runs[H.n].worker, sizeof(H.runs[H.n].worker), "%s", w->id);
        H.runs[H.n].token = task->token;
        H.n++;
    }
    pthread_mutex_unlock(&H.mu);
    pthread_mutex_lock(&w->mu);
    w->cur++;
    w->started++;
    if (w->cur > w->max)
        w->max = w->cur;
    pthread_cond_broadcast(&w->cond);
    while (w->gate && !w->open)
        pthread_cond_wait(&w->cond, &w->mu);
    pthread_mutex_unlock(&w->mu);
    if (w->work_us)
        usleep((useconds_t)w->work_us); /* the task's work, not synchronisation */
    pthread_mutex_lock(&w->mu);
    w->cur--;
    pthread_mutex_unlock(&w->mu);
    if (task->len == 3 && memcmp(task->payload, "big", 3) == 0) {
        /* above the output cap, and not UTF-8 at its start */
        *olen = ZKC_TASK_OUTPUT_MAX + 5000;
        if ((*output = malloc(*olen))) {
            memset(*output, 'a', *olen);
            (*output)[0] = '\xff';
        }
        return 0;
    }
    /* output: "<worker>:<payload>"; status: the payload's first digit */
    *olen = strlen(w->id) + 1 + task->len;
    if ((*output = malloc(*olen + 1))) {
        snprintf(*output, *olen + 1, "%s:%s", w->id, task->payload);
    }
    for (i = 0; i < (int)task->len; i++)
        if (task->payload[i] >= '0' && task->payload[i] <= '9')
            return task->payload[i] - '0';
    return 0;
}

static int worker_start(struct worker *w, const char *cluster, const char *id, int cap_meta)
{
    zkc_group_opts go;
    zkc_member_info mi;
    zkc_tasks_opts to;
    char members[256], meta[64];

    if (!w->id[0]) {
        memset(w, 0, sizeof(*w));
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cond, NULL);
    }
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->capacity_meta = cap_meta;
    if (tu_session(&w->s, NULL, 5000, NULL) != 0)
        return -1;
    snprintf(members, sizeof(members), "%s/members", cluster);
    zkc_group_opts_init(&go);
    if (zkc_group_new(&w->g, w->s, members, &go) != 0)
        return -1;
    memset(&mi, 0, sizeof(mi));
    mi.id = w->id;
    mi.host = "127.0.0.1";
    mi.port = 1;
    if (cap_meta > 0)
        snprintf(meta, sizeof(meta), "{\"capacity\":%d}", cap_meta);
    else
        snprintf(meta, sizeof(meta), "{\"capacity\":\"many\"}");
    mi.metadata = cap_meta ? meta : NULL;
    if (zkc_group_join(w->g, &mi) != 0 || zkc_group_wait_joined(w->g, 5000) != 0)
        return -1;
    zkc_tasks_opts_init(&to);
    to.member_id = w->id;
    to.run = run_task;
    to.user_data = w;
    return zkc_tasks_new(&w->t, w->s, cluster, &to) == 0 ? 0 : -1;
}

static void worker_open(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->open = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void worker_stop(struct worker *w)
{
    if (!w->s)
        return;
    worker_open(w);
    zkc_tasks_free(w->t);
    zkc_group_free(w->g);
    CU_ASSERT_EQUAL(zkc_session_close(w->s), 0);
    w->t = NULL;
    w->g = NULL;
    w->s = NULL;
}

static void worker_destroy(struct worker *w)
{
    worker_stop(w);
    if (w->id[0]) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mu);
    }
    w->id[0] = '\0';
}

/* Wait until `w` has started `n` runs in all; 0 or -1 at the deadline. */
static int worker_wait_started(struct worker *w, int n, int timeout_ms)
{
    struct timespec ts;
    int ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&w->mu);
    while (w->started < n)
        if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) != 0)
            break;
    ok = w->started >= n;
    pthread_mutex_unlock(&w->mu);
    return ok ? 0 : -1;
}

/* The planner: its own session, an election, a handle that only plans. */
struct leader {
    zkc_session *s;
    zkc_election *e;
    zkc_tasks *t;
};

static int leader_start(struct leader *l, const char *cluster, const char *id)
{
    zkc_election_opts eo;
    zkc_tasks_opts to;
    char path[256];

    memset(l, 0, sizeof(*l));
    if (tu_session(&l->s, NULL, 5000, NULL) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/leader", cluster);
    zkc_election_opts_init(&eo);
    eo.id = id;
    if (zkc_election_new(&l->e, l->s, path, &eo) != 0)
        return -1;
    zkc_tasks_opts_init(&to);
    to.election = l->e;
    return zkc_tasks_new(&l->t, l->s, cluster, &to) == 0 ? 0 : -1;
}

static void leader_stop(struct leader *l)
{
    zkc_tasks_free(l->t);
    zkc_election_close(l->e);
    if (l->s)
        CU_ASSERT_EQUAL(zkc_session_close(l->s), 0);
    memset(l, 0, sizeof(*l));
}

/* Number of children of `path` now (-1 on error; 0 when missing). */
static int nchildren(zkc_session *s, const char *cluster, const char *sub)
{
    char path[256], **names = NULL;
    int n = 0, rc;

    snprintf(path, sizeof(path), "%s/work/%s", cluster, sub);
    rc = zkc_get_children(s, path, 5000, &names, &n, NULL);
    zkc_strings_free(names, n);
    return rc == ZKC_ENONODE ? 0 : rc ? -1 : n;
}

/* Submit `n` tasks with payloads "p<i>" and wait for every result; checks
 * each result against the history. Returns the number of results that
 * matched. */
static int submit_and_check(zkc_session *s, const char *cluster, int n, int timeout_ms)
{
    char(*ids)[ZKC_TASK_ID_MAX] = calloc((size_t)n, ZKC_TASK_ID_MAX);
    int i, j, good = 0;

    if (!ids)
        return 0;
    for (i = 0; i < n; i++) {
        char payload[32];
        snprintf(payload, sizeof(payload), "p%d", i % 3);
        CU_ASSERT_EQUAL(
            zkc_task_submit(s, cluster, payload, strlen(payload), ids[i], ZKC_TASK_ID_MAX, 5000),
            0);
    }
    for (i = 0; i < n; i++) {
        zkc_task_result *r = NULL;
        int rc = zkc_task_wait(s, cluster, ids[i], timeout_ms, &r), ran = 0;
        char want[64];

        CU_ASSERT_EQUAL(rc, 0);
        if (rc)
            continue;
        CU_ASSERT_STRING_EQUAL(r->task, ids[i]);
        CU_ASSERT_EQUAL(r->status, i % 3);
        snprintf(want, sizeof(want), "%s:p%d", r->worker, i % 3);
        CU_ASSERT_STRING_EQUAL(r->output, want);
        CU_ASSERT_EQUAL(r->truncated, 0);
        /* the result's token is the token of a run of this task by its
         * worker */
        pthread_mutex_lock(&H.mu);
        for (j = 0; j < H.n; j++)
            if (!strcmp(H.runs[j].task, ids[i]) && H.runs[j].token == r->token &&
                !strcmp(H.runs[j].worker, r->worker))
                ran = 1;
        pthread_mutex_unlock(&H.mu);
        CU_ASSERT_EQUAL(ran, 1);
        good += ran;
        zkc_task_result_free(r);
    }
    free(ids);
    return good;
}

static uint64_t completed(struct worker *w, int n)
{
    uint64_t sum = 0;
    int i;

    for (i = 0; i < n; i++) {
        zkc_tasks_stats st;
        if (w[i].t && zkc_tasks_stats_get(w[i].t, &st) == 0)
            sum += st.completed;
    }
    return sum;
}

/* Wait until the workers' result writes add up to `want` (a worker counts
 * its write after the server's reply, so a waiter may see the result
 * first). The sum, at the deadline or as soon as it is `want`. */
static uint64_t wait_completed(struct worker *w, int n, uint64_t want)
{
    long long end = tu_now_ms() + 10000;
    uint64_t got;

    while ((got = completed(w, n)) != want && tu_now_ms() < end)
        sched_yield();
    return got;
}

/* ---- tests */

static void test_one_worker(void)
{
    const char *cluster = "/zkcoord/tq1";
    struct worker w;
    struct leader l;
    zkc_session *s = NULL;

    memset(&w, 0, sizeof(w));
    hist_reset();
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(leader_start(&l, cluster, "leader-1") == 0, out);
    TU_CHECK(worker_start(&w, cluster, "w1", 0) == 0, out);
    CU_ASSERT_EQUAL(submit_and_check(s, cluster, 20, 20000), 20);
    CU_ASSERT_EQUAL(wait_completed(&w, 1, 20), 20);
    pthread_mutex_lock(&H.mu);
    CU_ASSERT_EQUAL(H.n, 20); /* no task ran twice */
    pthread_mutex_unlock(&H.mu);
    CU_ASSERT_EQUAL(w.max, 1); /* default capacity 1 */
    CU_ASSERT_EQUAL(nchildren(s, cluster, "tasks"), 0);
    CU_ASSERT_EQUAL(nchildren(s, cluster, "assign"), 0);
    CU_ASSERT_EQUAL(nchildren(s, cluster, "running"), 0);
    CU_ASSERT_EQUAL(nchildren(s, cluster, "results"), 20);
    /* output above the cap is cut, bytes that are not UTF-8 become '?' */
    {
        char id[ZKC_TASK_ID_MAX];
        zkc_task_result *r = NULL;
        CU_ASSERT_EQUAL(zkc_task_submit(s, cluster, "big", 3, id, sizeof(id), 5000), 0);
        CU_ASSERT_EQUAL(zkc_task_wait(s, cluster, id, 20000, &r), 0);
        if (r) {
            CU_ASSERT_EQUAL(r->truncated, 1);
            CU_ASSERT_EQUAL(r->output_len, ZKC_TASK_OUTPUT_MAX);
            CU_ASSERT_EQUAL(r->output[0], '?');
            CU_ASSERT_EQUAL(r->output[ZKC_TASK_OUTPUT_MAX - 1], 'a');
        }
        zkc_task_result_free(r);
    }
out:
    worker_destroy(&w);
    leader_stop(&l);
    if (s)
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

static void test_three_workers_capacity(void)
{
    const char *cluster = "/zkcoord/tq3";
    struct worker w[3];
    struct leader l;
    zkc_session *s = NULL;
    int i;

    memset(w, 0, sizeof(w));
    memset(&l, 0, sizeof(l));
    hist_reset();
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(leader_start(&l, cluster, "leader-1") == 0, out);
    TU_CHECK(worker_start(&w[0], cluster, "w1", 3) == 0, out);
    TU_CHECK(worker_start(&w[1], cluster, "w2", 2) == 0, out);
    TU_CHECK(worker_start(&w[2], cluster, "w3", -1) == 0, out); /* garbage: 1 */
    for (i = 0; i < 3; i++)
        w[i].work_us = 20000;
    CU_ASSERT_EQUAL(submit_and_check(s, cluster, 60, 60000), 60);
    CU_ASSERT_EQUAL(wait_completed(w, 3, 60), 60);
    pthread_mutex_lock(&H.mu);
    CU_ASSERT_EQUAL(H.n, 60);
    pthread_mutex_unlock(&H.mu);
    /* capacity respected, and used */
    CU_ASSERT(w[0].max <= 3);
    CU_ASSERT(w[1].max <= 2);
    CU_ASSERT_EQUAL(w[2].max, 1);
    CU_ASSERT(w[0].max >= 2);
    for (i = 0; i < 3; i++)
        CU_ASSERT(w[i].started > 0);
out:
    for (i = 0; i < 3; i++)
        worker_destroy(&w[i]);
    leader_stop(&l);
    if (s)
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

static void test_worker_expired_mid_task(void)
{
    const char *cluster = "/zkcoord/tqx";
    struct worker a, b;
    struct leader l;
    zkc_session *s = NULL;
    zkc_task_result *r = NULL, *r0 = NULL;
    zkc_tasks_stats st;
    char id[ZKC_TASK_ID_MAX], path[256];
    int64_t a_token = 0, end;
    zkc_stat nst;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&l, 0, sizeof(l));
    hist_reset();
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(leader_start(&l, cluster, "leader-1") == 0, out);
    TU_CHECK(worker_start(&a, cluster, "w-a", 0) == 0, out);
    a.gate = 1;
    TU_CHECK(zkc_task_submit(s, cluster, "5", 1, id, sizeof(id), 5000) == 0, out);
    /* only w-a is there: it gets the task and blocks in it */
    TU_CHECK(worker_wait_started(&a, 1, 10000) == 0, out);
    pthread_mutex_lock(&H.mu);
    a_token = H.runs[0].token;
    pthread_mutex_unlock(&H.mu);
    TU_CHECK(worker_start(&b, cluster, "w-b", 0) == 0, out);
    b.gate = 1;
    CU_ASSERT_EQUAL(zkc_task_wait(s, cluster, id, 0, &r), ZKC_ETIMEDOUT);
    /* w-a's session expires while it runs the task: its claim goes, the
     * leader gives the task to w-b, which claims it and blocks in it */
    TU_CHECK(tu_expire(a.s) == 0, out);
    TU_CHECK(worker_wait_started(&b, 1, 20000) == 0, out);
    /* w-a finishes late, while w-b holds a claim of the same task: its
     * result write is refused (a check of "a claim exists" would pass: the
     * assignment's version is what tells the claims apart) */
    worker_open(&a);
    end = tu_now_ms() + 10000;
    do {
        CU_ASSERT_EQUAL(zkc_tasks_stats_get(a.t, &st), 0);
        if (st.fenced + st.completed >= 1)
            break;
        sched_yield();
    } while (tu_now_ms() < end);
    CU_ASSERT_EQUAL(st.fenced, 1);
    CU_ASSERT_EQUAL(st.completed, 0);
    CU_ASSERT_EQUAL(zkc_task_wait(s, cluster, id, 0, &r), ZKC_ETIMEDOUT);
    /* w-b completes it */
    worker_open(&b);
    TU_CHECK(zkc_task_wait(s, cluster, id, 20000, &r) == 0, out);
    CU_ASSERT_STRING_EQUAL(r->worker, "w-b");
    CU_ASSERT(r->token > a_token);
    CU_ASSERT_EQUAL(r->status, 5);
    CU_ASSERT_STRING_EQUAL(r->output, "w-b:5");
    /* and the result is still w-b's, written once */
    snprintf(path, sizeof(path), "%s/work/results/%s", cluster, id);
    CU_ASSERT_EQUAL(zkc_get(s, path, 5000, NULL, NULL, &nst), 0);
    CU_ASSERT_EQUAL(nst.version, 0);
    CU_ASSERT_EQUAL(nst.czxid, r->czxid);
    CU_ASSERT_EQUAL(nchildren(s, cluster, "running"), 0);
    CU_ASSERT_EQUAL(nchildren(s, cluster, "tasks"), 0);
    /* "look once" (timeout 0) finds the result that is there: found by the
     * fault suite's task workload, it used to give up before the server
     * answered and said ZKC_ETIMEDOUT */
    CU_ASSERT_EQUAL(zkc_task_wait(s, cluster, id, 0, &r0), 0);
    if (r0 != NULL)
        CU_ASSERT_EQUAL(r0->czxid, r->czxid);
    CU_ASSERT_EQUAL(zkc_task_result_delete(s, cluster, id, 5000), 0);
    CU_ASSERT_EQUAL(zkc_task_result_delete(s, cluster, id, 5000), ZKC_ENONODE);
out:
    zkc_task_result_free(r);
    zkc_task_result_free(r0);
    worker_destroy(&a);
    worker_destroy(&b);
    leader_stop(&l);
    if (s)
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

static void test_deposed_leader(void)
{
    const char *cluster = "/zkcoord/tqd";
    struct leader l, l2;
    struct worker w;
    zkc_session *s = NULL;
    zkc_task_result *r = NULL;
    char node[512], apath[256], id[ZKC_TASK_ID_MAX];
    zkc_op op;

    memset(&w, 0, sizeof(w));
    memset(&l, 0, sizeof(l));
    memset(&l2, 0, sizeof(l2));
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(leader_start(&l, cluster, "leader-1") == 0, out);
    TU_CHECK(zkc_election_await_leadership(l.e, 10000, NULL) == 0, out);
    TU_CHECK(leader_start(&l2, cluster, "leader-2") == 0, out);
    TU_CHECK(zkc_election_node_path(l.e, node, sizeof(node)) == 0, out);
    TU_CHECK(zkc_task_submit(s, cluster, "x", 1, id, sizeof(id), 5000) == 0, out);
    snprintf(apath, sizeof(apath), "%s/work/assign/%s", cluster, id);
    /* with no live worker nothing is assigned */
    CU_ASSERT_EQUAL(zkc_get(s, apath, 5000, NULL, NULL, NULL), ZKC_ENONODE);
    memset(&op, 0, sizeof(op));
    op.type = ZKC_OP_CREATE;
    op.path = apath;
    op.data = "{\"member\":\"w\",\"claimed\":false}";
    op.len = (int)strlen(op.data);
    TU_CHECK(tu_expire(l.s) == 0, out);
    /* leader-2 takes over (leader-1 re-enters behind it) */
    TU_CHECK(zkc_election_await_leadership(l2.e, 10000, NULL) == 0, out);
    /* the deposed leader's own write path refuses (it knows)... */
    CU_ASSERT_EQUAL(zkc_election_fenced_multi(l.e, &op, 1, 5000), ZKC_ENOTHELD);
    /* ...and the server refuses a write guarded by its old term's node even
     * from a client that does not know (a paused leader) */
    CU_ASSERT_EQUAL(zkc_fenced_multi(s, node, &op, 1, 5000), ZKC_ENOTHELD);
    CU_ASSERT_EQUAL(zkc_get(s, apath, 5000, NULL, NULL, NULL), ZKC_ENONODE);
    /* the new leader plans: a worker joins and the queued task runs */
    TU_CHECK(worker_start(&w, cluster, "w1", 0) == 0, out);
    TU_CHECK(zkc_task_wait(s, cluster, id, 20000, &r) == 0, out);
    CU_ASSERT_STRING_EQUAL(r->output, "w1:x");
out:
    zkc_task_result_free(r);
    worker_destroy(&w);
    leader_stop(&l2);
    leader_stop(&l);
    if (s)
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

static void test_payload_cap_and_args(void)
{
    const char *cluster = "/zkcoord/tqp";
    zkc_session *s = NULL;
    zkc_task_result *r = NULL;
    char id[ZKC_TASK_ID_MAX], path[256], *big = NULL, *data = NULL;
    int len = 0;

    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK((big = malloc(ZKC_TASK_PAYLOAD_MAX + 1)) != NULL, out);
    memset(big, 'x', ZKC_TASK_PAYLOAD_MAX + 1);
    CU_ASSERT_EQUAL(
        zkc_task_submit(s, cluster, big, ZKC_TASK_PAYLOAD_MAX + 1, id, sizeof(id), 5000),
        ZKC_EINVAL);
    CU_ASSERT_EQUAL(nchildren(s, cluster, "tasks"), 0);
    /* the largest payload fits the server's default jute.maxbuffer */
    TU_CHECK(zkc_task_submit(s, cluster, big, ZKC_TASK_PAYLOAD_MAX, id, sizeof(id), 10000) == 0,
             out);
    CU_ASSERT_EQUAL(zkc_task_id_valid(id), 1);
    snprintf(path, sizeof(path), "%s/work/tasks/%s", cluster, id);
    CU_ASSERT_EQUAL(zkc_get(s, path, 5000, &data, &len, NULL), 0);
    CU_ASSERT_EQUAL(len, ZKC_TASK_PAYLOAD_MAX);
    CU_ASSERT_EQUAL(zkc_task_submit(s, cluster, "a", 1, id, 8, 5000), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc_task_submit(s, "rel", "a", 1, id, sizeof(id), 5000), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc_task_wait(s, cluster, "task-12", 0, &r), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc_task_wait(s, cluster, "task-0000000999", 0, &r), ZKC_ETIMEDOUT);
    CU_ASSERT_EQUAL(zkc_task_id_valid("task-000000001x"), 0);
    CU_ASSERT_EQUAL(zkc_task_id_valid("junk"), 0);
out:
    free(big);
    free(data);
    if (s)
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

/* A foreign client's node (raw handle of `s`'s client is not public: use
 * a fenced multi guarded by the folder itself). */
static int foreign_put(zkc_session *s, const char *cluster, const char *sub, const char *name,
                       const char *data)
{
    char dir[256], path[300];
    zkc_op op;

    snprintf(dir, sizeof(dir), "%s/work/%s", cluster, sub);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    memset(&op, 0, sizeof(op));
    op.type = ZKC_OP_CREATE;
    op.path = path;
    op.data = data;
    op.len = data ? (int)strlen(data) : 0;
    return zkc_fenced_multi(s, dir, &op, 1, 5000);
}

static void test_foreign_data(void)
{
    const char *cluster = "/zkcoord/tqf";
    struct worker w;
    struct leader l;
    zkc_session *s = NULL;
    zkc_task_result *r = NULL;
    char id[ZKC_TASK_ID_MAX], id2[ZKC_TASK_ID_MAX];

    memset(&w, 0, sizeof(w));
    memset(&l, 0, sizeof(l));
    hist_reset();
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    /* a task whose assignment a foreign client wrote as garbage */
    TU_CHECK(zkc_task_submit(s, cluster, "1", 1, id, sizeof(id), 5000) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, "/zkcoord/tqf/work/assign", 5000) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, "/zkcoord/tqf/work/results", 5000) == 0, out);
    TU_CHECK(foreign_put(s, cluster, "assign", id, "\xff{not json") == 0, out);
    TU_CHECK(foreign_put(s, cluster, "tasks", "junk", "zzz") == 0, out);
    TU_CHECK(foreign_put(s, cluster, "assign", "junk2", "{}") == 0, out);
    TU_CHECK(foreign_put(s, cluster, "results", "task-0000000777", "[1,2") == 0, out);
    TU_CHECK(leader_start(&l, cluster, "leader-1") == 0, out);
    TU_CHECK(worker_start(&w, cluster, "w1", 0) == 0, out);
    /* the garbage assignment is replaced, the task runs */
    TU_CHECK(zkc_task_wait(s, cluster, id, 20000, &r) == 0, out);
    CU_ASSERT_STRING_EQUAL(r->output, "w1:1");
    zkc_task_result_free(r);
    r = NULL;
    /* and the queue still works */
    TU_CHECK(zkc_task_submit(s, cluster, "2", 1, id2, sizeof(id2), 5000) == 0, out);
    TU_CHECK(zkc_task_wait(s, cluster, id2, 20000, &r) == 0, out);
    CU_ASSERT_EQUAL(r->status, 2);
    /* a result that is not ours */
    CU_ASSERT_EQUAL(zkc_task_wait(s, cluster, "task-0000000777", 1000, &r), ZKC_EBADDATA);
    /* foreign nodes are left alone */
    CU_ASSERT_EQUAL(nchildren(s, cluster, "tasks"), 1);
    CU_ASSERT_EQUAL(nchildren(s, cluster, "assign"), 1);
out:
    zkc_task_result_free(r);
    worker_destroy(&w);
    leader_stop(&l);
    if (s)
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

static void test_result_codec(void)
{
    zkc_task_result *r = NULL;
    const char *ok = "{\"task\":\"task-0000000001\",\"status\":3,\"output\":\"a\\u0000b\","
                     "\"truncated\":false,\"worker\":\"w\",\"token\":42}";

    CU_ASSERT_EQUAL(zkc_task_result_parse(ok, strlen(ok), &r), 0);
    if (r) {
        CU_ASSERT_EQUAL(r->status, 3);
        CU_ASSERT_EQUAL(r->output_len, 3);
        CU_ASSERT_EQUAL(memcmp(r->output, "a\0b", 3), 0);
        CU_ASSERT_EQUAL(r->token, 42);
        zkc_task_result_free(r);
        r = NULL;
    }
    CU_ASSERT_EQUAL(zkc_task_result_parse("{\"task\":\"x\"}", 12, &r), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc_task_result_parse("", 0, &r), ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc_task_result_parse("{\"task\":\"task-0000000001\",\"status\":1e99,"
                                          "\"worker\":\"w\",\"token\":1}",
                                          63, &r),
                    ZKC_EBADDATA);
}

/* Seeded random schedule: worker expiries, joins and departures while
 * tasks flow. After it settles: every task has exactly one result, whose
 * token is one of its runs', and the folders are empty. */
static void test_adversary(void)
{
    const char *cluster = "/zkcoord/tqa";
    struct worker w[6];
    struct leader l;
    zkc_session *s = NULL;
    char ids[120][ZKC_TASK_ID_MAX];
    unsigned seed = 12345, rng;
    const char *env = getenv("ZKC_TASK_SEED");
    int i, n = 0, step, nw = 3, expiries = 0, joins = 0, leaves = 0;

    if (env)
        seed = (unsigned)strtoul(env, NULL, 10);
    printf("\n  adversary seed %u (ZKC_TASK_SEED)\n", seed);
    /* rand_r: the ZooKeeper client draws from rand() too, which would make
     * the schedule differ between runs of one seed */
    rng = seed;
    memset(w, 0, sizeof(w));
    memset(&l, 0, sizeof(l));
    hist_reset();
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(leader_start(&l, cluster, "leader-1") == 0, out);
    for (i = 0; i < nw; i++) {
        char wid[16];
        snprintf(wid, sizeof(wid), "w%d", i);
        TU_CHECK(worker_start(&w[i], cluster, wid, 1 + i % 2) == 0, out);
        w[i].work_us = 20000;
    }
    for (step = 0; step < 12; step++) {
        /* half the steps expire a worker */
        int k, act = rand_r(&rng) % 4, who = rand_r(&rng) % 6;

        act = act == 3 ? 0 : act;
        for (k = 0; k < 10 && n < 120; k++, n++) {
            char payload[8];
            snprintf(payload, sizeof(payload), "%d", n % 7);
            TU_CHECK(zkc_task_submit(s, cluster, payload, strlen(payload), ids[n], ZKC_TASK_ID_MAX,
                                     5000) == 0,
                     out);
        }
        if (act == 0 && w[who].s) {
            /* The same worker may have been expired at the previous step:
             * expire its next session, once it has one (tu_expire of a
             * session still reopening failed: seeds 11 and 27). */
            CU_ASSERT_EQUAL(zkc_session_wait_connected(w[who].s, 20000), 0);
            CU_ASSERT_EQUAL(tu_expire(w[who].s), 0);
            expiries++;
        } else if (act == 1 && !w[who].s) {
            char wid[16];
            snprintf(wid, sizeof(wid), "w%d", who);
            TU_CHECK(worker_start(&w[who], cluster, wid, 1 + who % 2) == 0, out);
            w[who].work_us = 20000;
            joins++;
        } else if (act == 2 && w[who].s && who != 0) {
            worker_stop(&w[who]); /* w0 always stays, so the queue drains */
            leaves++;
        }
        /* let some results land before the next fault */
        if (n > 0) {
            zkc_task_result *r = NULL;
            if (zkc_task_wait(s, cluster, ids[n - 1 - rand_r(&rng) % 10], 300, &r) == 0)
                zkc_task_result_free(r);
        }
    }
    for (i = 0; i < n; i++) {
        zkc_task_result *r = NULL;
        int j, ran = 0;
        CU_ASSERT_EQUAL(zkc_task_wait(s, cluster, ids[i], 30000, &r), 0);
        if (!r)
            continue;
        CU_ASSERT_EQUAL(r->status, i % 7);
        pthread_mutex_lock(&H.mu);
        for (j = 0; j < H.n; j++)
            if (!strcmp(H.runs[j].task, ids[i]) && H.runs[j].token == r->token &&
                !strcmp(H.runs[j].worker, r->worker))
                ran++;
        pthread_mutex_unlock(&H.mu);
        CU_ASSERT_EQUAL(ran, 1); /* one run per token */
        zkc_task_result_free(r);
    }
    CU_ASSERT_EQUAL(nchildren(s, cluster, "results"), n);
    CU_ASSERT_EQUAL(nchildren(s, cluster, "tasks"), 0);
    CU_ASSERT_EQUAL(nchildren(s, cluster, "assign"), 0);
    for (i = 0; i < 6; i++)
        worker_stop(&w[i]);
    /* every successful result write is counted by the worker that made it:
     * exactly one per task (stopped workers' counts are gone, so this is
     * checked through the result folder above and the runs here) */
    pthread_mutex_lock(&H.mu);
    CU_ASSERT(H.n >= n);
    printf("  %d tasks, %d runs; %d expiries, %d joins, %d leaves\n", n, H.n, expiries, joins,
           leaves);
    pthread_mutex_unlock(&H.mu);
out:
    for (i = 0; i < 6; i++)
        worker_destroy(&w[i]);
    leader_stop(&l);
    if (s)
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

/* ---- regression: a fenced multi on a handle whose session just expired
 *
 * ZooKeeper's C client 3.8.0 zoo_amulti(): once one op's request cannot
 * be built (the handle is unrecoverable: session expired), every later op
 * frees the path of a request struct it never initialised -- in practice
 * the previous op's path, a string of the caller's: a double free
 * (SIGABRT "free(): double free detected in tcache 2"; ASan: double-free
 * in claim() after zoo_amulti()). task_tests' adversary hit it (seeds 24
 * and 36) in the window between the client marking the handle expired and
 * the session manager replacing it. This test holds that window open: the
 * client's completion thread (which delivers the expiry to the session) is
 * kept busy in a completion of ours while the session is expired behind
 * its back, and the multi is sent then. Without the fix it aborts. */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int entered, open;
};

static void gate_completion(int rc, const struct Stat *st, const void *data)
{
    struct gate *g = (struct gate *)data;

    (void)rc;
    (void)st;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void other_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)type;
    (void)state;
    (void)path;
    (void)ctx;
}

static void test_multi_on_expired_handle(void)
{
    const char *cluster = "/zkcoord/tqx";
    struct gate g;
    zkc_session *s = NULL;
    zhandle_t *zh;
    clientid_t cid;
    zkc_op ops[2];
    char guard[64], p1[64], p2[64];
    long long end;
    int attempt, expired = 0, zrc, gated = 0;

    memset(&g, 0, sizeof(g));
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cond, NULL);
    snprintf(guard, sizeof(guard), "%s/guard", cluster);
    snprintf(p1, sizeof(p1), "%s/a", cluster);
    snprintf(p2, sizeof(p2), "%s/b", cluster);
    TU_CHECK(tu_session(&s, NULL, 4000, NULL) == 0, out);
    TU_CHECK(zkc__mkdirs_sync(s, guard, 5000) == 0, out);
    /* keep the client's completion thread in our completion */
    zh = zkc__zh_lock(s, NULL);
    TU_CHECK(zh != NULL, out);
    cid = *zoo_client_id(zh);
    zrc = zoo_aexists(zh, "/", 0, gate_completion, &g);
    zkc__zh_unlock(s);
    TU_CHECK(zrc == ZOK, out);
    gated = 1;
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cond, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* expire the session with a second handle on the same id; on loopback
     * the first handle may win the connection back first: try again */
    for (attempt = 0; attempt < 10 && !expired; attempt++) {
        zhandle_t *other =
            zookeeper_init(zkh_connect_string(tu_zk), other_watcher, 4000, &cid, NULL, 0);
        TU_CHECK(other != NULL, out);
        end = tu_now_ms() + 5000;
        while (zoo_state(other) != ZOO_CONNECTED_STATE && tu_now_ms() < end)
            usleep(10000); /* the second handle's connect: no event to wait on here */
        zookeeper_close(other);
        end = tu_now_ms() + 3000;
        while (!(expired = zoo_state(zh) == ZOO_EXPIRED_SESSION_STATE) && tu_now_ms() < end)
            usleep(10000);
    }
    TU_CHECK(expired, out);
    /* the session has not heard of it yet: its handle is the expired one */
    memset(ops, 0, sizeof(ops));
    ops[0].type = ZKC_OP_CREATE;
    ops[0].path = p1;
    ops[0].data = "x";
    ops[0].len = 1;
    ops[1].type = ZKC_OP_DELETE;
    ops[1].path = p2;
    ops[1].version = -1;
    CU_ASSERT_EQUAL(zkc_fenced_multi(s, guard, ops, 2, 1000), ZKC_ECONNLOSS);
out:
    if (gated) {
        pthread_mutex_lock(&g.mu);
        g.open = 1;
        pthread_cond_broadcast(&g.cond);
        pthread_mutex_unlock(&g.mu);
    }
    if (s)
        zkc_session_close(s);
    pthread_cond_destroy(&g.cond);
    pthread_mutex_destroy(&g.mu);
}

/* ---- zkcoordctl submit / tasks: the built binary, run with posix_spawn */

extern char **environ;

/* Run `zkcoordctl -s <servers> args...` (NULL-terminated) with stdin from
 * `in_file` (NULL: inherited); stdout and stderr into out (NUL-terminated,
 * truncated). Exit status, or -1. */
static int ctl(const char *in_file, char *out, size_t cap, ...)
{
    const char *top = getenv("top_builddir");
    char bin[1024];
    char *argv[32];
    posix_spawn_file_actions_t fa;
    va_list ap;
    pid_t pid;
    size_t got = 0;
    ssize_t r;
    int fds[2], n = 0, status;

    snprintf(bin, sizeof(bin), "%s/zkcoordctl", top && *top ? top : ".");
    argv[n++] = bin;
    argv[n++] = (char *)"-s";
    argv[n++] = (char *)zkh_connect_string(tu_zk);
    va_start(ap, cap);
    while (n < 31 && (argv[n] = va_arg(ap, char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    if (in_file)
        posix_spawn_file_actions_addopen(&fa, 0, in_file, O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    if (posix_spawn(&pid, bin, &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    while (got < cap - 1 && (r = read(fds[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void test_cli(void)
{
    const char *cluster = "/zkcoord/tqc";
    struct worker w;
    struct leader l;
    zkc_session *s = NULL;
    char out[8192], in_file[] = "/tmp/zkc-task-in-XXXXXX";
    json_t *doc = NULL, *res;
    int fd = -1;

    memset(&w, 0, sizeof(w));
    memset(&l, 0, sizeof(l));
    TU_CHECK(tu_session(&s, NULL, 5000, NULL) == 0, out);
    TU_CHECK(leader_start(&l, cluster, "leader-1") == 0, out);
    TU_CHECK(worker_start(&w, cluster, "w1", 0) == 0, out);

    /* submit --wait: the result, and the task's status as exit code */
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "submit", "tqc", "--wait", "--timeout", "20000",
                        "{\"n\":3}", NULL),
                    3);
    CU_ASSERT(strstr(out, "task-") != NULL);
    CU_ASSERT(strstr(out, "w1:{\"n\":3}") != NULL);
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "--format", "json", "submit", "tqc", "--wait",
                        "--delete", "[0]", NULL),
                    0);
    doc = json_loads(out, 0, NULL);
    TU_CHECK(doc != NULL, out);
    res = json_object_get(doc, "result");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(res, "status")), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(res, "worker")), "w1");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(res, "output")), "w1:[0]");
    CU_ASSERT(json_integer_value(json_object_get(res, "token")) > 0);
    /* --delete removed that result */
    {
        zkc_task_result *r = NULL;
        CU_ASSERT_EQUAL(
            zkc_task_wait(s, cluster, json_string_value(json_object_get(doc, "task")), 0, &r),
            ZKC_ETIMEDOUT);
        zkc_task_result_free(r);
    }
    json_decref(doc);
    doc = NULL;
    /* stdin */
    TU_CHECK((fd = mkstemp(in_file)) >= 0, out);
    TU_CHECK(write(fd, "{\"x\": 7}", 8) == 8, out);
    CU_ASSERT_EQUAL(ctl(in_file, out, sizeof(out), "submit", "tqc", "--wait", "-", NULL), 7);
    CU_ASSERT(strstr(out, "w1:{\"x\": 7}") != NULL);
    /* usage errors */
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "submit", "tqc", "not json", NULL), 2);
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "submit", "tqc", "--timeout", "5", "{}", NULL), 2);
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "submit", NULL), 2);
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "tasks", NULL), 2);
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "tasks", "nosuchcluster", NULL), 3);

    /* no worker: the task stays pending, --wait gives up with 6 */
    worker_stop(&w);
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "submit", "tqc", "--wait", "--timeout", "300",
                        "{\"later\":1}", NULL),
                    6);
    CU_ASSERT(strstr(out, "no result within 300 ms") != NULL);
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "tasks", "tqc", NULL), 0);
    CU_ASSERT(strstr(out, "TASK") != NULL && strstr(out, "pending") != NULL &&
              strstr(out, "done") != NULL);
    CU_ASSERT_EQUAL(ctl(NULL, out, sizeof(out), "--format", "json", "tasks", "tqc", NULL), 0);
    doc = json_loads(out, 0, NULL);
    TU_CHECK(doc != NULL, out);
    {
        json_t *arr = json_object_get(doc, "tasks"), *t;
        size_t k;
        int pending = 0, done = 0;
        json_array_foreach(arr, k, t)
        {
            const char *st = json_string_value(json_object_get(t, "state"));
            pending += st && !strcmp(st, "pending");
            if (st && !strcmp(st, "done")) {
                done++;
                CU_ASSERT_STRING_EQUAL(
                    json_string_value(json_object_get(json_object_get(t, "result"), "worker")),
                    "w1");
            }
        }
        CU_ASSERT_EQUAL(pending, 1);
        CU_ASSERT_EQUAL(done, 2); /* the --delete one is gone */
    }
out:
    if (fd >= 0) {
        close(fd);
        unlink(in_file);
    }
    json_decref(doc);
    worker_destroy(&w);
    leader_stop(&l);
    if (s)
        CU_ASSERT_EQUAL(zkc_session_close(s), 0);
}

int register_task_suite(void)
{
    CU_pSuite s = CU_add_suite("task", NULL, NULL);

    pthread_mutex_init(&H.mu, NULL);
    pthread_cond_init(&H.cond, NULL);
    if (!s || !CU_add_test(s, "result codec", test_result_codec) ||
        !CU_add_test(s, "payload cap and arguments", test_payload_cap_and_args) ||
        !CU_add_test(s, "one worker: 20 tasks, one result each", test_one_worker) ||
        !CU_add_test(s, "three workers: 60 tasks, capacity from the history",
                     test_three_workers_capacity) ||
        !CU_add_test(s, "worker expired mid-task: re-assigned, late result fenced",
                     test_worker_expired_mid_task) ||
        !CU_add_test(s, "deposed leader's assignment refused; the next leader plans",
                     test_deposed_leader) ||
        !CU_add_test(s, "foreign data reported and skipped", test_foreign_data) ||
        !CU_add_test(s, "adversary: seeded expiries and joins while tasks flow", test_adversary) ||
        !CU_add_test(s, "zkcoordctl submit and tasks", test_cli) ||
        !CU_add_test(s, "fenced multi on a just-expired handle: refused, no double free",
                     test_multi_on_expired_handle))
        return -1;
    return 0;
}
