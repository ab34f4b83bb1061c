/* bench_lock: figures for the README's performance section. Starts its own
 * ZooKeeper through the harness (tmpfs, loopback) and prints:
 *  - uncontended acquire+release: cycles/s, server requests per cycle (from
 *    mntr zk_packets_received), and the round trips that implies against a
 *    measured one-request round trip;
 *  - contended hand-off (holder's release -> next holder's grant) with 2, 10
 *    and 50 waiters, each on its own session: median and p90, and watch
 *    notifications per release (1.0 = no herd).
 * No pass/fail: wall time on a shared machine is noise; requests are not.
 *
 *   bench/bench_lock [-n CYCLES] [-k HANDOFFS] [-s SERVERS]
 *
 * -s SERVERS uses an existing server (a connect string, loopback) instead of
 * starting one; mntr is then read from the first host:port in SERVERS.
 */
#include "harness/harness.h"
#include "internal.h"
#include "queue.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static zkh_cluster *zk;
static const char *ext_servers; /* -s: an existing server, not the harness's */

static const char *servers(void)
{
    return ext_servers ? ext_servers : zkh_connect_string(zk);
}

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static zkc_session *open_session(void)
{
    zkc_session_opts o;
    zkc_session *s = NULL;

    zkc_session_opts_init(&o);
    o.servers = servers();
    o.session_timeout_ms = 30000;
    o.log_level = ZKC_LOG_ERROR;
    o.zk_log_level = ZKC_LOG_INFO;
    if (zkc_session_new(&s, &o) != 0)
        return NULL;
    if (zkc_session_wait_connected(s, 30000) != 0) {
        zkc_session_close(s);
        return NULL;
    }
    return s;
}

static long long packets(void)
{
    return ext_servers ? zkh_mntr_at(ext_servers, "zk_packets_received")
                       : zkh_mntr(zk, 0, "zk_packets_received");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------ uncontended */

static int uncontended(int cycles)
{
    zkc_session *s = open_session();
    zkc_lock *l = NULL;
    zhandle_t *zh;
    struct Stat st;
    long long calib, p0, p1;
    double t0, t1, rtt_us, seq_us, cycle_us;
    int i, n_rtt = 200;

    if (!s || zkc_lock_new(&l, s, "/bench/uncontended", NULL) != 0)
        return -1;
    /* warm-up: parent nodes, JIT of the server */
    for (i = 0; i < 200; i++)
        if (zkc_lock_acquire(l, 10000, NULL) != 0 || zkc_lock_release(l) != 0)
            return -1;
    /* one request, one round trip: the yardstick */
    zh = zkc__zh_lock(s, NULL);
    zkc__zh_unlock(s);
    t0 = now_us();
    for (i = 0; i < n_rtt; i++)
        zoo_exists(zh, "/bench", 0, &st);
    rtt_us = (now_us() - t0) / n_rtt;

    /* the same three requests, each waited for (Curator's pattern) */
    zoo_create(zh, "/bench/seq", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    t0 = now_us();
    for (i = 0; i < n_rtt; i++) {
        char made[128];
        struct String_vector v;
        zoo_create2(zh, "/bench/seq/n-", "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL,
                    made, sizeof(made), &st);
        if (zoo_get_children(zh, "/bench/seq", 0, &v) == ZOK)
            deallocate_String_vector(&v);
        zoo_delete(zh, made, -1);
    }
    seq_us = (now_us() - t0) / n_rtt;

    calib = packets();
    p0 = packets();
    t0 = now_us();
    for (i = 0; i < cycles; i++)
        if (zkc_lock_acquire(l, 10000, NULL) != 0 || zkc_lock_release(l) != 0)
            return -1;
    t1 = now_us();
    p1 = packets() - (p0 - calib); /* mntr's own connection counts once */
    cycle_us = (t1 - t0) / cycles;
    printf("uncontended acquire+release (%d cycles, one session)\n", cycles);
    printf("  cycles/s                 %.0f\n", 1e6 / cycle_us);
    printf("  time per cycle           %.3f ms\n", cycle_us / 1000);
    printf("  requests per cycle       %.2f   (mntr zk_packets_received delta / cycles)\n",
           (double)(p1 - p0) / cycles);
    printf("  one-request round trip   %.3f ms (zoo_exists)\n", rtt_us / 1000);
    printf("  same 3 requests, each waited for (3 round trips): %.3f ms\n", seq_us / 1000);
    printf("  implied round trips      %.2f   (3 x cycle time / that)\n", 3 * cycle_us / seq_us);
    zkc_lock_free(l);
    zkc_session_close(s);
    return 0;
}

/* --------------------------------------------------------- hand-off */

struct shared {
    pthread_mutex_t mu;
    double last_release;
    double *samples;
    int nsamples;
    int want;
    int stop;
    int releases;
    int errors;
};

struct worker {
    struct shared *sh;
    zkc_session *s;
    zkc_lock *l;
};

static void *work(void *p)
{
    struct worker *w = p;
    struct shared *sh = w->sh;

    for (;;) {
        double t;
        int stop;
        if (zkc_lock_acquire(w->l, 60000, NULL) != 0) {
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
            return NULL;
        }
        t = now_us();
        pthread_mutex_lock(&sh->mu);
        if (sh->last_release > 0 && sh->nsamples < sh->want)
            sh->samples[sh->nsamples++] = t - sh->last_release;
        if (sh->nsamples >= sh->want)
            sh->stop = 1;
        stop = sh->stop;
        sh->releases++;
        sh->last_release = now_us();
        pthread_mutex_unlock(&sh->mu);
        zkc_lock_release(w->l);
        if (stop)
            return NULL;
    }
}

static int handoff(int waiters, int want)
{
    int n = waiters + 1, i, started = 0;
    struct worker *w = calloc((size_t)n, sizeof(*w));
    pthread_t *t = calloc((size_t)n, sizeof(*t));
    struct shared sh;
    char path[64];
    unsigned long wake0, wake1;
    int rc = -1;

    memset(&sh, 0, sizeof(sh));
    pthread_mutex_init(&sh.mu, NULL);
    sh.want = want;
    sh.samples = calloc((size_t)want, sizeof(double));
    snprintf(path, sizeof(path), "/bench/handoff-%d", waiters);
    if (!w || !t || !sh.samples)
        goto out;
    for (i = 0; i < n; i++) {
        w[i].sh = &sh;
        w[i].s = open_session();
        if (!w[i].s || zkc_lock_new(&w[i].l, w[i].s, path, NULL) != 0)
            goto out;
    }
    wake0 = zkc__lock_watch_wakeups();
    for (i = 0; i < n; i++, started++)
        pthread_create(&t[i], NULL, work, &w[i]);
    for (i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    wake1 = zkc__lock_watch_wakeups();
    qsort(sh.samples, (size_t)sh.nsamples, sizeof(double), cmp_double);
    if (sh.nsamples > 0) {
        printf("  %2d waiters  median %6.3f ms  p90 %6.3f ms  (%d hand-offs)  "
               "notifications/release %.2f\n",
               waiters, sh.samples[sh.nsamples / 2] / 1000,
               sh.samples[(sh.nsamples * 9) / 10] / 1000, sh.nsamples,
               (double)(wake1 - wake0) / (sh.releases ? sh.releases : 1));
    }
    rc = sh.errors ? -1 : 0;
out:
    for (i = 0; w && i < n; i++) {
        zkc_lock_free(w[i].l);
        zkc_session_close(w[i].s);
    }
    free(w);
    free(t);
    free(sh.samples);
    pthread_mutex_destroy(&sh.mu);
    return rc;
}

int main(int argc, char **argv)
{
    zkh_opts o;
    int cycles = 2000, want = 300, opt, rc = 0;

    while ((opt = getopt(argc, argv, "n:k:s:")) != -1) {
        if (opt == 'n')
            cycles = atoi(optarg);
        else if (opt == 'k')
            want = atoi(optarg);
        else if (opt == 's')
            ext_servers = optarg;
        else {
            fprintf(stderr, "usage: bench_lock [-n CYCLES] [-k HANDOFFS] [-s SERVERS]\n");
            return 2;
        }
    }
    if (ext_servers) {
        if (zkh_mntr_at(ext_servers, "zk_packets_received") < 0) {
            fprintf(stderr, "bench_lock: no mntr answer from %s\n", ext_servers);
            return 1;
        }
        printf("bench_lock: existing ZooKeeper on %s (-s)\n\n", ext_servers);
    } else {
        zkh_opts_init(&o);
        o.quiet = 1;
        o.tick_time_ms = 2000; /* ordinary ticks: no pings during the loops */
        if (zkh_start(&zk, 1, &o) != 0)
            return 1;
        printf("bench_lock: standalone ZooKeeper on %s (tmpfs, loopback)\n\n",
               zkh_connect_string(zk));
    }
    if (uncontended(cycles) != 0) {
        fprintf(stderr, "bench_lock: uncontended run failed\n");
        rc = 1;
    }
    printf("\ncontended hand-off (holder's release -> next holder's grant; one session each)\n");
    if (handoff(2, want) || handoff(10, want) || handoff(50, want)) {
        fprintf(stderr, "bench_lock: hand-off run failed\n");
        rc = 1;
    }
    zkh_destroy(zk);
    return rc;
}
