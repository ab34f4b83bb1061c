/* bench_task: task-queue figures for the README. Starts its own ZooKeeper
 * through the harness (tmpfs, loopback), or uses -s SERVERS, and prints for
 * 1 and W workers (one session each, capacity 1 unless -k):
 *  - latency: one task at a time, submit -> result (zkc_task_submit +
 *    zkc_task_wait), ms per task;
 *  - throughput: N tasks submitted back to back, then every result waited
 *    for: tasks/s end to end, and requests per task (mntr
 *    zk_packets_received delta / N: the submitter's, the leader's and the
 *    workers' requests together).
 * The leader is a planner of its own (own session and election). The task
 * itself does nothing: the figures are the queue's cost. No pass/fail on
 * time: wall time on a shared machine is noise.
 *
 *   bench/bench_task [-n TASKS] [-w WORKERS] [-k CAPACITY] [-s SERVERS]
 */
#include "harness/harness.h"
#include "internal.h"
#include "zkcoord/task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static zkh_cluster *zk;
static const char *ext_servers;
static int ntasks = 500, nworkers = 10, capacity = 1;

static const char *servers(void)
{
    return ext_servers ? ext_servers : zkh_connect_string(zk);
}

static long long packets(void)
{
    return zkh_mntr_at(servers(), "zk_packets_received");
}

static int open_session(zkc_session **s)
{
    zkc_session_opts o;

    zkc_session_opts_init(&o);
    o.servers = servers();
    o.session_timeout_ms = 20000;
    if (zkc_session_new(s, &o) != 0)
        return -1;
    if (zkc_session_wait_connected(*s, 30000) != 0) {
        zkc_session_close(*s);
        return -1;
    }
    return 0;
}

static int run_nothing(zkc_tasks *t, const zkc_task *task, char **out, size_t *len, void *ud)
{
    (void)t;
    (void)task;
    (void)ud;
    if ((*out = strdup("ok")))
        *len = 2;
    return 0;
}

struct node {
    zkc_session *s;
    zkc_group *g;
    zkc_election *e;
    zkc_tasks *t;
};

static int worker_up(struct node *n, const char *cluster, int i)
{
    char members[256], id[32], meta[64];
    zkc_member_info mi;
    zkc_tasks_opts to;

    memset(n, 0, sizeof(*n));
    if (open_session(&n->s) != 0)
        return -1;
    snprintf(members, sizeof(members), "%s/members", cluster);
    snprintf(id, sizeof(id), "worker-%d", i);
    snprintf(meta, sizeof(meta), "{\"capacity\":%d}", capacity);
    memset(&mi, 0, sizeof(mi));
    mi.id = id;
    mi.host = "127.0.0.1";
    mi.port = 1;
    mi.metadata = meta;
    if (zkc_group_new(&n->g, n->s, members, NULL) != 0 || zkc_group_join(n->g, &mi) != 0 ||
        zkc_group_wait_joined(n->g, 10000) != 0)
        return -1;
    zkc_tasks_opts_init(&to);
    to.member_id = id;
    to.run = run_nothing;
    return zkc_tasks_new(&n->t, n->s, cluster, &to);
}

static int leader_up(struct node *n, const char *cluster)
{
    char path[256];
    zkc_election_opts eo;
    zkc_tasks_opts to;

    memset(n, 0, sizeof(*n));
    if (open_session(&n->s) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/leader", cluster);
    zkc_election_opts_init(&eo);
    eo.id = "planner";
    if (zkc_election_new(&n->e, n->s, path, &eo) != 0 ||
        zkc_election_await_leadership(n->e, 10000, NULL) != 0)
        return -1;
    zkc_tasks_opts_init(&to);
    to.election = n->e;
    return zkc_tasks_new(&n->t, n->s, cluster, &to);
}

static void node_down(struct node *n)
{
    zkc_tasks_free(n->t);
    zkc_group_free(n->g);
    zkc_election_close(n->e);
    if (n->s)
        zkc_session_close(n->s);
}

static double now_ms(void)
{
    return (double)zkc__now_ms();
}

/* One configuration: `w` workers. Prints its figures; returns failures. */
static int run(int w, int idx)
{
    char cluster[64], (*ids)[ZKC_TASK_ID_MAX] = calloc((size_t)ntasks, ZKC_TASK_ID_MAX);
    struct node leader, *workers = calloc((size_t)w, sizeof(*workers));
    zkc_session *s = NULL;
    int i, fail = 0, lat_n = 50;
    double t0, t1, lat;
    long long p0, p1;

    snprintf(cluster, sizeof(cluster), "/bench/tasks-%d", idx);
    memset(&leader, 0, sizeof(leader));
    if (!ids || !workers || open_session(&s) != 0 || leader_up(&leader, cluster) != 0) {
        fprintf(stderr, "bench_task: setup failed\n");
        fail = 1;
        goto out;
    }
    for (i = 0; i < w; i++)
        if (worker_up(&workers[i], cluster, i) != 0) {
            fprintf(stderr, "bench_task: worker %d failed\n", i);
            fail = 1;
            goto out;
        }
    /* latency: one task at a time */
    t0 = now_ms();
    for (i = 0; i < lat_n; i++) {
        zkc_task_result *r = NULL;
        char id[ZKC_TASK_ID_MAX];
        if (zkc_task_submit(s, cluster, "{}", 2, id, sizeof(id), 10000) != 0 ||
            zkc_task_wait(s, cluster, id, 30000, &r) != 0)
            fail++;
        zkc_task_result_free(r);
    }
    lat = (now_ms() - t0) / lat_n;
    /* throughput: all submitted, then all waited for */
    p0 = packets();
    t0 = now_ms();
    for (i = 0; i < ntasks; i++)
        if (zkc_task_submit(s, cluster, "{}", 2, ids[i], ZKC_TASK_ID_MAX, 10000) != 0)
            fail++;
    for (i = 0; i < ntasks; i++) {
        zkc_task_result *r = NULL;
        if (zkc_task_wait(s, cluster, ids[i], 120000, &r) != 0)
            fail++;
        zkc_task_result_free(r);
    }
    t1 = now_ms();
    p1 = packets();
    printf("%d worker%s (capacity %d each), %d tasks\n", w, w == 1 ? "" : "s", capacity, ntasks);
    printf("  latency, one at a time   %.2f ms per task (%d tasks)\n", lat, lat_n);
    printf("  throughput               %.0f tasks/s end to end\n",
           t1 > t0 ? ntasks * 1000.0 / (t1 - t0) : 0.0);
    printf("  requests per task        %.2f   (mntr zk_packets_received delta / tasks, all "
           "clients)\n",
           (double)(p1 - p0 - 1) / ntasks);
    printf("  failures                 %d\n", fail);
out:
    for (i = 0; workers && i < w; i++)
        node_down(&workers[i]);
    node_down(&leader);
    if (s)
        zkc_session_close(s);
    free(workers);
    free(ids);
    return fail;
}

int main(int argc, char **argv)
{
    int i, fail;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            ntasks = atoi(argv[++i]);
        else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc)
            nworkers = atoi(argv[++i]);
        else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc)
            capacity = atoi(argv[++i]);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            ext_servers = argv[++i];
        else
            ntasks = 0;
    }
    if (ntasks <= 0 || nworkers <= 0 || nworkers > 200 || capacity <= 0) {
        fprintf(stderr, "usage: bench_task [-n TASKS] [-w WORKERS] [-k CAPACITY] [-s SERVERS]\n");
        return 2;
    }
    if (!ext_servers) {
        zkh_opts o;

        zkh_opts_init(&o);
        o.quiet = 1;
        o.tick_time_ms = 2000;
        if (zkh_start(&zk, 1, &o) != 0) {
            fprintf(stderr, "bench_task: could not start ZooKeeper\n");
            return 1;
        }
    }
    if (packets() < 0) {
        fprintf(stderr, "bench_task: no mntr answer from %s\n", servers());
        zkh_destroy(zk);
        return 1;
    }
    printf("bench_task: ZooKeeper on %s\n\n", servers());
    fail = run(1, 1);
    fail += run(nworkers, 2);
    zkh_destroy(zk);
    return fail ? 1 : 0;
}
