/*
 * Membership propagation: how long until N watchers (each its own session)
 * have seen one join, and how many requests the server got for it.
 *
 *   bench/bench_membership [rounds]     (default 20 rounds per N)
 *   bench/bench_membership -m SIZES [rounds]   e.g. -m 1000,10000
 *
 * The second form is the scale mode: one watcher (a zkc_group through the
 * public API) on a folder that a raw ZooKeeper client fills with SIZE
 * members; then, one at a time, the raw client adds a member and removes
 * it again. Per change it prints the requests the server got (mntr) and
 * the CPU time of this process (the watcher's threads, plus the raw
 * client's one create or delete, which does not depend on SIZE), and how
 * long until the watcher's callback saw the join. A leave is counted until
 * the watcher is idle again (its listing answered), so that each change's
 * figures hold its own work.
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
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/harness.h"
#include "cache.h"
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

/* ------------------------------------------------------------ scale mode */

struct scale {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char target[128]; /* node name awaited, without its sequence suffix */
    int joined;
    int left;
    int count; /* members in the last view */
    int64_t seen_us;
};

static void scale_event(zkc_group *g, const zkc_group_event *ev, void *ud)
{
    struct scale *sc = ud;
    int64_t t = now_us();

    (void)g;
    pthread_mutex_lock(&sc->mu);
    if (ev->type == ZKC_GROUP_CHANGED)
        sc->count = zkc_group_view_count(ev->view);
    if ((ev->type == ZKC_GROUP_JOINED || ev->type == ZKC_GROUP_LEFT) && sc->target[0] &&
        strncmp(zkc_member_node(ev->member), sc->target, strlen(sc->target)) == 0) {
        if (ev->type == ZKC_GROUP_JOINED) {
            sc->joined = 1;
            sc->seen_us = t;
        } else {
            sc->left = 1;
        }
    }
    pthread_cond_broadcast(&sc->cond);
    pthread_mutex_unlock(&sc->mu);
}

static int scale_wait(struct scale *sc, int *flag, int want, int timeout_ms)
{
    struct timespec ts;
    int ok;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&sc->mu);
    while (*flag < want && pthread_cond_timedwait(&sc->cond, &sc->mu, &ts) != ETIMEDOUT)
        ;
    ok = *flag >= want;
    pthread_mutex_unlock(&sc->mu);
    return ok;
}

/* Wait until the watcher's cache has applied a listing numbered above
 * `listed` and has nothing in flight or to deliver: a leave is seen from
 * the member's data watch before the folder's listing that follows it is
 * answered, and that listing's CPU (linear in the members) must not land
 * in the next join's figures. Polled: a bench. */
static int wait_idle(zkc_group *g, unsigned listed, int timeout_ms)
{
    struct timespec ms = {0, 1000000};
    int64_t end = now_us() + (int64_t)timeout_ms * 1000;
    int present, dirty, queued, busy;

    do {
        zkc__group_counts(g, &present, &dirty, &queued, &busy);
        if (!dirty && !queued && !busy && zkc__group_listed(g) > listed)
            return 1;
        nanosleep(&ms, NULL);
    } while (now_us() < end);
    return 0;
}

static int64_t cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

struct fill {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int left;
};

static void fill_done(int rc, const char *value, const void *data)
{
    struct fill *f = (struct fill *)data;

    (void)value;
    if (rc != ZOK)
        fprintf(stderr, "  create failed: %s\n", zerror(rc));
    pthread_mutex_lock(&f->mu);
    if (--f->left == 0)
        pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static void raw_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)type;
    (void)state;
    (void)path;
    (void)ctx;
}

#define PAYLOAD_FMT                                                                                \
    "{\"serviceEndpoint\":{\"host\":\"10.0.%d.%d\",\"port\":8080},\"additionalEndpoints\":{},"     \
    "\"status\":\"ALIVE\",\"shard\":0,\"zkcoord\":{\"id\":\"member-%d\",\"version\":1}}"

static int run_scale(zkh_cluster *c, int size, int rounds)
{
    const char *servers = zkh_connect_string(c);
    char folder[64], p[256], made[256], data[256];
    int64_t *lat = calloc((size_t)rounds, sizeof(*lat));
    int64_t cpu_join = 0, cpu_leave = 0, f0, f1;
    long long req_join = 0, req_leave = 0, self;
    zhandle_t *zh = NULL;
    zkc_session *ws = NULL;
    zkc_group *wg = NULL;
    zkc_group_opts o;
    struct scale sc;
    struct fill fill;
    struct timespec ts;
    int i, r, done = 0, rc = 1;

    memset(&sc, 0, sizeof(sc));
    pthread_mutex_init(&sc.mu, NULL);
    zkc__cond_init(&sc.cond);
    pthread_mutex_init(&fill.mu, NULL);
    zkc__cond_init(&fill.cond);
    snprintf(folder, sizeof(folder), "/bench/scale%d/members", size);
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zh = zookeeper_init(servers, raw_watcher, 30000, NULL, NULL, 0);
    if (zh)
        zoo_set_servers_resolution_delay(zh, 60000);
    if (!lat || !zh || open_session(&ws, servers) != 0 || zkc__mkdirs_sync(ws, folder, 10000)) {
        fprintf(stderr, "scale %d: cannot start\n", size);
        goto out;
    }
    /* Fill: every create pipelined on the raw handle. */
    fill.left = size;
    for (i = 0; i < size; i++) {
        snprintf(p, sizeof(p), "%s/member_%08x-0000-4000-8000-%012d_", folder, i, i);
        snprintf(data, sizeof(data), PAYLOAD_FMT, (i >> 8) & 255, i & 255, i);
        if (zoo_acreate(zh, p, data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_EPHEMERAL_SEQUENTIAL, fill_done, &fill) != ZOK) {
            fprintf(stderr, "scale %d: create %d not sent\n", size, i);
            goto out;
        }
    }
    zkc__deadline(&ts, 120000);
    pthread_mutex_lock(&fill.mu);
    while (fill.left > 0 && pthread_cond_timedwait(&fill.cond, &fill.mu, &ts) != ETIMEDOUT)
        ;
    i = fill.left;
    pthread_mutex_unlock(&fill.mu);
    if (i > 0) {
        fprintf(stderr, "scale %d: %d creates unanswered\n", size, i);
        goto out;
    }
    zkc_group_opts_init(&o);
    o.on_event = scale_event;
    o.user_data = &sc;
    if (zkc_group_new(&wg, ws, folder, &o) != 0 || !scale_wait(&sc, &sc.count, size, 120000)) {
        fprintf(stderr, "scale %d: the watcher did not see every member\n", size);
        goto out;
    }
    if (!wait_idle(wg, 0, 30000)) {
        fprintf(stderr, "scale %d: the watcher did not settle\n", size);
        goto out;
    }
    self = zkh_mntr(c, 0, "zk_packets_received");
    self = zkh_mntr(c, 0, "zk_packets_received") - self;
    for (r = 0; r < rounds; r++) {
        long long p0, p1, p2;
        int64_t c0, c1, c2, t0;
        unsigned listed;

        snprintf(p, sizeof(p), "%s/member_ffffffff-0000-4000-8000-%012d_", folder, r);
        snprintf(data, sizeof(data), PAYLOAD_FMT, 255, r & 255, 1000000 + r);
        pthread_mutex_lock(&sc.mu);
        sc.joined = sc.left = 0;
        snprintf(sc.target, sizeof(sc.target), "%s", p + strlen(folder) + 1);
        pthread_mutex_unlock(&sc.mu);
        p0 = zkh_mntr(c, 0, "zk_packets_received");
        c0 = cpu_us();
        t0 = now_us();
        /* The name is only known from the reply, which may come after the
         * watcher saw the node: match by the sequence-less prefix. */
        if (zoo_create(zh, p, data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE,
                       ZOO_EPHEMERAL_SEQUENTIAL, made, sizeof(made)) != ZOK) {
            fprintf(stderr, "scale %d: create failed\n", size);
            goto out;
        }
        if (!scale_wait(&sc, &sc.joined, 1, 30000)) {
            fprintf(stderr, "scale %d: join not seen\n", size);
            goto out;
        }
        c1 = cpu_us();
        p1 = zkh_mntr(c, 0, "zk_packets_received");
        listed = zkc__group_listed(wg);
        if (zoo_delete(zh, made, -1) != ZOK || !scale_wait(&sc, &sc.left, 1, 30000) ||
            !wait_idle(wg, listed, 30000)) {
            fprintf(stderr, "scale %d: leave not seen\n", size);
            goto out;
        }
        c2 = cpu_us();
        p2 = zkh_mntr(c, 0, "zk_packets_received");
        lat[r] = sc.seen_us - t0;
        cpu_join += c1 - c0;
        cpu_leave += c2 - c1;
        req_join += p1 - p0 - self;
        req_leave += p2 - p1 - self;
        done++;
    }
    /* The floor: what the ZooKeeper client alone spends on one listing of
     * the folder (a raw getChildren, no watch), which every change costs a
     * watcher whatever it does with the names. */
    f0 = cpu_us();
    for (i = 0; i < 20; i++) {
        struct String_vector sv;
        if (zoo_get_children(zh, folder, 0, &sv) != ZOK) {
            fprintf(stderr, "scale %d: raw getChildren failed\n", size);
            goto out;
        }
        deallocate_String_vector(&sv);
    }
    f1 = cpu_us();
    qsort(lat, (size_t)done, sizeof(*lat), cmp_i64);
    printf("members=%-6d rounds=%d  join seen: median %.2f ms  p99 %.2f ms\n", size, done,
           pct(lat, done, 0.5), pct(lat, done, 0.99));
    printf("        per change, one watcher: requests join %.2f leave %.2f (incl. the raw "
           "create/delete: 1)  CPU join %.3f ms leave %.3f ms\n",
           (double)req_join / done, (double)req_leave / done, cpu_join / 1000.0 / done,
           cpu_leave / 1000.0 / done);
    printf("        the client alone, one raw getChildren of the folder: CPU %.3f ms\n",
           (f1 - f0) / 1000.0 / 20);
    rc = 0;
out:
    zkc_group_free(wg);
    zkc_session_close(ws);
    if (zh)
        zookeeper_close(zh);
    free(lat);
    pthread_cond_destroy(&fill.cond);
    pthread_mutex_destroy(&fill.mu);
    pthread_cond_destroy(&sc.cond);
    pthread_mutex_destroy(&sc.mu);
    return rc;
}

int main(int argc, char **argv)
{
    zkh_cluster *c = NULL;
    zkh_opts ho;
    const char *sizes = NULL;
    int rounds, rc;

    if (argc > 2 && strcmp(argv[1], "-m") == 0) {
        sizes = argv[2];
        argv += 2;
        argc -= 2;
    }
    rounds = argc > 1 ? atoi(argv[1]) : 20;
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
    if (sizes) {
        const char *q = sizes;
        rc = 0;
        while (rc == 0 && *q) {
            int size = atoi(q);
            rc = size > 0 ? run_scale(c, size, rounds) : 1;
            q += strcspn(q, ",");
            q += *q == ',';
        }
        zkh_destroy(c);
        return rc;
    }
    rc = run(c, 10, rounds);
    if (rc == 0)
        rc = run(c, 100, rounds);
    zkh_destroy(c);
    return rc;
}
