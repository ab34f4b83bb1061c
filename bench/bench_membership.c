/*
 * Membership propagation: how long until N watchers (each its own session)
 * have seen one join, and how many requests the server got for it.
 *
 *   bench/bench_membership [rounds]     (default 20 rounds per N)
 *
 * Starts its own standalone ZooKeeper through the harness (tmpfs, loopback).
 * For N = 10 and N = 100: N sessions observe one folder; per round one more
 * session joins (time from zkc_group_join() until the last watcher's JOINED
 * callback ran), then leaves (and every watcher sees it leave before the
 * next round). Requests per join come from mntr's zk_packets_received,
 * which does not depend on machine noise. Prints figures; no pass/fail.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/harness.h"
#include "internal.h"
#include "zkcoord/group.h"

struct shared {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char target[32];
    int joined_seen;
    int left_seen;
    int64_t first_us;
    int64_t last_us;
};

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_event(zkc_group *g, const zkc_group_event *ev, void *ud)
{
    struct shared *sh = ud;
    const char *id;
    int64_t t = now_us();

    (void)g;
    if (ev->type != ZKC_GROUP_JOINED && ev->type != ZKC_GROUP_LEFT)
        return;
    id = zkc_member_id(ev->member);
    pthread_mutex_lock(&sh->mu);
    if (id && strcmp(id, sh->target) == 0) {
        if (ev->type == ZKC_GROUP_JOINED) {
            if (sh->joined_seen++ == 0)
                sh->first_us = t;
            sh->last_us = t;
        } else {
            sh->left_seen++;
        }
        pthread_cond_broadcast(&sh->cond);
    }
    pthread_mutex_unlock(&sh->mu);
}

static void quiet_log(zkc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level <= ZKC_LOG_ERROR)
        fprintf(stderr, "  [lib] %s\n", msg);
}

static int open_session(zkc_session **out, const char *servers)
{
    zkc_session_opts o;
    int rc;

    zkc_session_opts_init(&o);
    o.servers = servers;
    o.session_timeout_ms = 30000; /* pings every 10 s: none in a measured window */
    o.log_fn = quiet_log;
    o.log_level = ZKC_LOG_ERROR;
    o.zk_log_level = ZKC_LOG_INFO;
    rc = zkc_session_new(out, &o);
    if (rc)
        return rc;
    rc = zkc_session_wait_connected(*out, 15000);
    if (rc) {
        zkc_session_close(*out);
        *out = NULL;
    }
    return rc;
}

/* Wait until *counter >= want (under sh->mu). */
static int wait_count(struct shared *sh, int *counter, int want, int timeout_ms)
{
    struct timespec ts;
    int ok;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&sh->mu);
    while (*counter < want && pthread_cond_timedwait(&sh->cond, &sh->mu, &ts) != ETIMEDOUT)
        ;
    ok = *counter >= want;
    pthread_mutex_unlock(&sh->mu);
    return ok;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

static double pct(const int64_t *sorted, int n, double p)
{
    int i = (int)(p * (n - 1) + 0.5);

    return sorted[i] / 1000.0;
}

static int run(zkh_cluster *c, int nwatch, int rounds)
{
    const char *servers = zkh_connect_string(c);
    char path[64];
    zkc_session **ws = calloc((size_t)nwatch, sizeof(*ws));
    zkc_group **wg = calloc((size_t)nwatch, sizeof(*wg));
    int64_t *all = calloc((size_t)rounds, sizeof(*all));
    int64_t *first = calloc((size_t)rounds, sizeof(*first));
    long long req_total = 0, mntr_self;
    zkc_session *js = NULL;
    zkc_group *jg = NULL;
    zkc_group_opts o;
    struct shared sh;
    int i, r, done = 0, rc = 1;

    memset(&sh, 0, sizeof(sh));
    pthread_mutex_init(&sh.mu, NULL);
    zkc__cond_init(&sh.cond);
    snprintf(path, sizeof(path), "/bench/n%d/members", nwatch);
    if (!ws || !wg || !all || !first)
        goto out;
    zkc_group_opts_init(&o);
    o.on_event = on_event;
    o.user_data = &sh;
    for (i = 0; i < nwatch; i++) {
        if (open_session(&ws[i], servers) != 0 || zkc_group_new(&wg[i], ws[i], path, &o) != 0) {
            fprintf(stderr, "watcher %d: cannot start\n", i);
            goto out;
        }
    }
    if (open_session(&js, servers) != 0 || zkc_group_new(&jg, js, path, NULL) != 0 ||
        zkc__mkdirs_sync(js, path, 10000) != 0) {
        fprintf(stderr, "joiner: cannot start\n");
        goto out;
    }
    /* Every watcher's first listing is in once a round trip on its own
     * session is (one session's requests are answered in order). */
    for (i = 0; i < nwatch; i++)
        zkc__mkdirs_sync(ws[i], path, 10000);
    mntr_self = zkh_mntr(c, 0, "zk_packets_received");
    mntr_self = zkh_mntr(c, 0, "zk_packets_received") - mntr_self;
    for (r = 0; r < rounds; r++) {
        zkc_member_info info;
        long long p0, p1;
        int64_t t0;
        memset(&info, 0, sizeof(info));
        pthread_mutex_lock(&sh.mu);
        snprintf(sh.target, sizeof(sh.target), "joiner-%d", r);
        sh.joined_seen = sh.left_seen = 0;
        pthread_mutex_unlock(&sh.mu);
        info.id = sh.target;
        info.host = "127.0.0.1";
        info.port = 8000 + r;
        p0 = zkh_mntr(c, 0, "zk_packets_received");
        t0 = now_us();
        if (zkc_group_join(jg, &info) != 0 || !wait_count(&sh, &sh.joined_seen, nwatch, 20000) ||
            zkc_group_wait_joined(jg, 10000) != 0) {
            fprintf(stderr, "round %d: not every watcher saw the join\n", r);
            goto out;
        }
        p1 = zkh_mntr(c, 0, "zk_packets_received");
        all[r] = sh.last_us - t0;
        first[r] = sh.first_us - t0;
        req_total += p1 - p0 - mntr_self;
        if (zkc_group_leave(jg, 10000) != 0 || !wait_count(&sh, &sh.left_seen, nwatch, 20000)) {
            fprintf(stderr, "round %d: not every watcher saw the leave\n", r);
            goto out;
        }
        done++;
    }
    qsort(all, (size_t)done, sizeof(*all), cmp_i64);
    qsort(first, (size_t)done, sizeof(*first), cmp_i64);
    printf("N=%-4d rounds=%d  all N saw the join: median %.2f ms  p99 %.2f ms  (max %.2f)"
           "  first watcher: median %.2f ms\n",
           nwatch, done, pct(all, done, 0.5), pct(all, done, 0.99), all[done - 1] / 1000.0,
           pct(first, done, 0.5));
    printf("        requests per join: %.2f  (= %.2f per watcher + the joiner's own; the "
           "joiner: create + its own getChildren + get = 3)\n",
           (double)req_total / done, ((double)req_total / done - 3) / nwatch);
    rc = 0;
out:
    zkc_group_free(jg);
    zkc_session_close(js);
    for (i = 0; ws && wg && i < nwatch; i++) {
        zkc_group_free(wg[i]);
        zkc_session_close(ws[i]);
    }
    free(ws);
    free(wg);
    free(all);
    free(first);
    pthread_cond_destroy(&sh.cond);
    pthread_mutex_destroy(&sh.mu);
    return rc;
}

int main(int argc, char **argv)
{
    zkh_cluster *c = NULL;
    zkh_opts ho;
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    int rc;

    if (rounds < 1)
        rounds = 20;
    zkh_opts_init(&ho);
    ho.quiet = 1;
    if (zkh_start(&c, 1, &ho) != 0) {
        fprintf(stderr, "bench_membership: cannot start ZooKeeper\n");
        return 1;
    }
    printf("membership propagation, one standalone server on loopback (%s)\n",
           zkh_connect_string(c));
    rc = run(c, 10, rounds);
    if (rc == 0)
        rc = run(c, 100, rounds);
    zkh_destroy(c);
    return rc;
}
