/* bench_counter: shared-counter figures for the README. Starts its own
 * ZooKeeper through the harness (tmpfs, loopback), or uses -s SERVERS, and
 * prints:
 *  - uncontended: one session adding 1, N times: ms per add, requests per
 *    add (mntr zk_packets_received delta / adds);
 *  - contended: SESSIONS sessions (threads) adding 1 to one counter, N
 *    times each, all at once: increments/s, requests per increment, CAS
 *    attempts per increment (each attempt is one getData + one setData),
 *    and a check that the total is exact.
 * No pass/fail on time: wall time on a shared machine is noise.
 *
 *   bench/bench_counter [-n ADDS] [-c SESSIONS] [-s SERVERS] [--long]
 * The last line, "SUMMARY ...", is for bench/peers/run.sh's table.
 */
#include "harness/harness.h"
#include "internal.h"
#include "zkcoord/counter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static zkh_cluster *zk;
static const char *ext_servers;
static zkc_counter_width width = ZKC_COUNTER_INT64;
static int adds = 500, sessions = 10;

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

struct worker {
    const char *path;
    int errors;
    pthread_t t;
    pthread_mutex_t *mu;
    pthread_cond_t *cond;
    int *ready, *go;
};

static void *work(void *p)
{
    struct worker *w = p;
    zkc_session *s = NULL;
    zkc_counter *c = NULL;
    int i;

    w->errors = adds;
    if (open_session(&s) == 0 && zkc_counter_new(&c, s, w->path, width) == 0)
        w->errors = 0;
    pthread_mutex_lock(w->mu);
    (*w->ready)++;
    pthread_cond_broadcast(w->cond);
    while (!*w->go)
        pthread_cond_wait(w->cond, w->mu);
    pthread_mutex_unlock(w->mu);
    for (i = 0; c && i < adds; i++)
        if (zkc_counter_add(c, 1, 0, NULL, 60000) != 0)
            w->errors++;
    zkc_counter_free(c);
    if (s)
        zkc_session_close(s);
    return NULL;
}

/* n sessions, `adds` increments each, started together. Fills elapsed ms
 * and request count of the adds; returns the number of failed adds. */
static int run(const char *path, int n, double *ms, long long *reqs)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    struct worker *w = calloc((size_t)n, sizeof(*w));
    int ready = 0, go = 0, i, errors = 0, made = 0;
    long long p0, p1, t0;

    if (!w)
        return -1;
    for (i = 0; i < n; i++) {
        w[i].path = path;
        w[i].mu = &mu;
        w[i].cond = &cond;
        w[i].ready = &ready;
        w[i].go = &go;
        if (pthread_create(&w[i].t, NULL, work, &w[i]) != 0)
            break;
        made++;
    }
    pthread_mutex_lock(&mu);
    while (ready < made)
        pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
    p0 = packets();
    t0 = zkc__now_ms();
    pthread_mutex_lock(&mu);
    go = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
    for (i = 0; i < made; i++) {
        pthread_join(w[i].t, NULL);
        errors += w[i].errors;
    }
    /* Sessions close after their adds: each close is one request more. */
    *ms = (double)(zkc__now_ms() - t0);
    p1 = packets();
    *reqs = p1 - p0 - 1 - made; /* one mntr, one closeSession per session */
    free(w);
    return errors + (n - made) * adds;
}

static int64_t final_value(const char *path)
{
    zkc_session *s;
    zkc_counter *c = NULL;
    zkc_counter_value v;

    v.value = -1;
    if (open_session(&s) != 0)
        return -1;
    if (zkc_counter_new(&c, s, path, width) == 0 && zkc_counter_get(c, &v, 10000) != 0)
        v.value = -1;
    zkc_counter_free(c);
    zkc_session_close(s);
    return v.value;
}

int main(int argc, char **argv)
{
    double ms1, msn;
    long long r1, rn;
    int i, e1, en;
    int64_t total;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            adds = atoi(argv[++i]);
        else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            sessions = atoi(argv[++i]);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            ext_servers = argv[++i];
        else if (strcmp(argv[i], "--long") == 0)
            width = ZKC_COUNTER_INT64;
        else if (strcmp(argv[i], "--int") == 0)
            width = ZKC_COUNTER_INT32;
        else
            adds = 0;
    }
    if (adds <= 0 || sessions <= 0 || sessions > 1000) {
        fprintf(stderr, "usage: bench_counter [-n ADDS] [-c SESSIONS] [-s SERVERS] [--int]\n");
        return 2;
    }
    if (!ext_servers) {
        zkh_opts o;

        zkh_opts_init(&o);
        o.quiet = 1;
        o.tick_time_ms = 2000; /* as bench_lock: session timeouts of the usual size */
        if (zkh_start(&zk, 1, &o) != 0) {
            fprintf(stderr, "bench_counter: could not start ZooKeeper\n");
            return 1;
        }
    }
    if (packets() < 0) {
        fprintf(stderr, "bench_counter: no mntr answer from %s\n", servers());
        zkh_destroy(zk);
        return 1;
    }
    printf("bench_counter: ZooKeeper on %s, %s counter (%d bytes)\n\n", servers(),
           width == ZKC_COUNTER_INT64 ? "long" : "int", (int)width);
    e1 = run("/bench/counter-1", 1, &ms1, &r1);
    printf("uncontended: 1 session, %d adds\n", adds);
    printf("  ms per add               %.3f\n", ms1 / adds);
    printf("  requests per add         %.2f   (mntr zk_packets_received delta / adds)\n",
           (double)r1 / adds);
    en = run("/bench/counter-n", sessions, &msn, &rn);
    total = final_value("/bench/counter-n");
    printf("contended: %d sessions x %d adds on one counter\n", sessions, adds);
    printf("  increments/s             %.0f\n", msn > 0 ? sessions * adds * 1000.0 / msn : 0.0);
    printf("  requests per increment   %.2f\n", (double)rn / (sessions * adds));
    printf("  CAS attempts / increment %.2f   (requests / 2: one read, one write each)\n",
           (double)rn / (sessions * adds) / 2);
    printf("  final value              %lld (expected %d)%s\n", (long long)total, sessions * adds,
           total == (int64_t)sessions * adds ? "" : "  MISMATCH");
    printf("  failed adds              %d\n", e1 + en);
    printf("SUMMARY zkcoord %.3f %.2f %.0f %.2f\n", ms1 / adds, (double)r1 / adds,
           msn > 0 ? sessions * adds * 1000.0 / msn : 0.0, (double)rn / (sessions * adds));
    zkh_destroy(zk);
    return e1 + en || total != (int64_t)sessions * adds ? 1 : 0;
}
