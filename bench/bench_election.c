/*
 * bench_election: leader hand-off time. A leader resigns gracefully; the
 * time until the next participant hears ELECTED is one hand-off. Runs with
 * 2 and 10 participants (one session each) against a standalone server that
 * it starts through the test harness, and prints median / p90 / max and the
 * server requests per hand-off (zk_packets_received from mntr). No pass or
 * fail: figures only.
 *
 *   usage: bench_election [ROUNDS]      (default 200)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/harness.h"
#include "internal.h"
#include "zkcoord/election.h"

#define MAXN 10

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int elected;       /* ELECTED events so far */
    int last;          /* who heard the last one */
    int changed[MAXN]; /* LEADER_CHANGED events per participant */
} ev;

struct part {
    int idx;
    zkc_session *s;
    zkc_election *e;
    char id[16];
};

static void on_event(zkc_election *e, const zkc_election_event *x, void *ud)
{
    struct part *p = ud;

    (void)e;
    pthread_mutex_lock(&ev.mu);
    if (x->type == ZKC_ELECTION_ELECTED) {
        ev.elected++;
        ev.last = p->idx;
    } else if (x->type == ZKC_ELECTION_LEADER_CHANGED) {
        ev.changed[p->idx]++;
    }
    pthread_cond_broadcast(&ev.cond);
    pthread_mutex_unlock(&ev.mu);
}

/* Wait until more than `count` ELECTED events were heard; returns who
 * heard the last one, or -1 after 10 s. */
static int wait_elected(int count)
{
    struct timespec ts;
    int who = -1;

    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&ev.mu);
    while (ev.elected <= count && pthread_cond_timedwait(&ev.cond, &ev.mu, &ts) != ETIMEDOUT)
        ;
    if (ev.elected > count)
        who = ev.last;
    pthread_mutex_unlock(&ev.mu);
    return who;
}

static int wait_changed(int idx, int count)
{
    struct timespec ts;
    int ok;

    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&ev.mu);
    while (ev.changed[idx] <= count && pthread_cond_timedwait(&ev.cond, &ev.mu, &ts) != ETIMEDOUT)
        ;
    ok = ev.changed[idx] > count;
    pthread_mutex_unlock(&ev.mu);
    return ok ? 0 : -1;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return x < y ? -1 : x > y;
}

static void quiet(zkc_log_level level, const char *msg, void *user_data)
{
    (void)user_data;
    if (level <= ZKC_LOG_WARN)
        fprintf(stderr, "  [lib] %s\n", msg);
}

static int run(zkh_cluster *zk, int n, int rounds)
{
    struct part ps[MAXN];
    long long *us = calloc((size_t)rounds, sizeof(long long));
    long long *req = calloc((size_t)rounds, sizeof(long long));
    long long p_start, p_end, self;
    char path[64];
    int i, r, leader, rc = -1;

    memset(ps, 0, sizeof(ps));
    if (!us || !req)
        goto out;
    snprintf(path, sizeof(path), "/bench/handoff-%d", n);
    for (i = 0; i < n; i++) {
        zkc_session_opts so;
        zkc_election_opts eo;
        int before;
        ps[i].idx = i;
        snprintf(ps[i].id, sizeof(ps[i].id), "p%d", i);
        zkc_session_opts_init(&so);
        so.servers = zkh_connect_string(zk);
        so.session_timeout_ms = 10000;
        so.log_fn = quiet;
        if (zkc_session_new(&ps[i].s, &so) != 0 || zkc_session_wait_connected(ps[i].s, 10000))
            goto out;
        zkc_election_opts_init(&eo);
        eo.id = ps[i].id;
        eo.fn = on_event;
        eo.user_data = &ps[i];
        pthread_mutex_lock(&ev.mu);
        before = ev.changed[i];
        pthread_mutex_unlock(&ev.mu);
        if (zkc_election_new(&ps[i].e, ps[i].s, path, &eo) != 0 || wait_changed(i, before) != 0)
            goto out;
    }
    if (zkc_election_await_leadership(ps[0].e, 10000, NULL) != 0)
        goto out;
    leader = 0;
    /* mntr itself counts as one received packet: measure what it costs. */
    p_start = zkh_mntr(zk, 0, "zk_packets_received");
    self = zkh_mntr(zk, 0, "zk_packets_received") - p_start;
    p_start += self;
    for (r = 0; r < rounds; r++) {
        long long before_pk, after_pk;
        struct timespec a, b;
        int count, changed, next;
        pthread_mutex_lock(&ev.mu);
        count = ev.elected;
        changed = ev.changed[leader];
        pthread_mutex_unlock(&ev.mu);
        before_pk = zkh_mntr(zk, 0, "zk_packets_received");
        clock_gettime(CLOCK_MONOTONIC, &a);
        zkc_election_resign(ps[leader].e);
        next = wait_elected(count);
        clock_gettime(CLOCK_MONOTONIC, &b);
        us[r] = (b.tv_sec - a.tv_sec) * 1000000LL + (b.tv_nsec - a.tv_nsec) / 1000;
        after_pk = zkh_mntr(zk, 0, "zk_packets_received");
        req[r] = after_pk - before_pk - self;
        if (next < 0) {
            fprintf(stderr, "round %d: no new leader within 10 s\n", r);
            goto out;
        }
        /* The old leader queues again at the back; wait until it has looked
         * (it reports the new leader) so the next round starts quiet. */
        zkc_election_rejoin(ps[leader].e);
        if (wait_changed(leader, changed) != 0)
            goto out;
        leader = next;
    }
    p_end = zkh_mntr(zk, 0, "zk_packets_received");
    qsort(us, (size_t)rounds, sizeof(us[0]), cmp_ll);
    qsort(req, (size_t)rounds, sizeof(req[0]), cmp_ll);
    printf("participants %2d  rounds %d  hand-off ms: median %.2f  p90 %.2f  max %.2f  "
           "requests per hand-off: median %lld (whole round with rejoin: %.1f)\n",
           n, rounds, us[rounds / 2] / 1000.0, us[rounds * 9 / 10] / 1000.0,
           us[rounds - 1] / 1000.0, req[rounds / 2],
           (double)(p_end - p_start - self * (2 * rounds + 1)) / rounds);
    fflush(stdout);
    rc = 0;
out:
    for (i = 0; i < n; i++) {
        zkc_election_close(ps[i].e);
        zkc_session_close(ps[i].s);
    }
    free(us);
    free(req);
    return rc;
}

int main(int argc, char **argv)
{
    zkh_cluster *zk = NULL;
    zkh_opts o;
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    int rc;

    if (rounds < 1) {
        fprintf(stderr, "usage: %s [ROUNDS]\n", argv[0]);
        return 2;
    }
    pthread_mutex_init(&ev.mu, NULL);
    zkc__cond_init(&ev.cond);
    zkh_opts_init(&o);
    o.quiet = 1;
    if (zkh_start(&zk, 1, &o) != 0)
        return 1;
    printf("bench_election: standalone ZooKeeper at %s\n", zkh_connect_string(zk));
    fflush(stdout);
    rc = run(zk, 2, rounds);
    if (rc == 0)
        rc = run(zk, 10, rounds);
    zkh_destroy(zk);
    return rc ? 1 : 0;
}
