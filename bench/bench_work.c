/* bench_work: figures for the README's work assignment section. Starts its
 * own ZooKeeper through the harness (tmpfs, loopback), adds N items (1,000)
 * and M members (10), one of them a child process, waits until every item
 * runs, then measures:
 *  - a join: an 11th member starts; time until every item runs as the new
 *    plan says, items moved, and server requests (mntr
 *    zk_packets_received) in that window;
 *  - a death: the child member gets SIGKILL; time until its items run
 *    elsewhere (the server notices the death after the session timeout),
 *    and requests in that window.
 * No pass/fail: wall time on a shared machine is noise; requests are not.
 *
 *   bench/bench_work [-n ITEMS] [-m MEMBERS] [-t SESSION_TIMEOUT_MS]
 *   (bench/bench_work --member ID SERVERS CLUSTER TIMEOUT_MS: the child)
 */
#include "harness/harness.h"
#include "zkcoord/zkcoord.h"

#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAXM 64

static zkh_cluster *zk;
static const char *cluster = "/zkcoord/bench-work";

struct member {
    char id[32];
    zkc_session *s;
    zkc_group *g;
    zkc_election *e;
    zkc_work *w;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long assigned, revoked;
static int view_reads;
static long long first_new_ms, last_new_ms;
/* the newcomer's ASSIGNED (monotonic ms) */ /* confirming reads: their requests are taken out
                                              */

static void on_work(zkc_work *w, const zkc_work_event *ev, void *ud)
{
    (void)w;
    pthread_mutex_lock(&mu);
    if (ev->type == ZKC_WORK_ASSIGNED && ud) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        last_new_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (!first_new_ms)
            first_new_ms = last_new_ms;
    }
    if (ev->type == ZKC_WORK_ASSIGNED)
        assigned++;
    else if (ev->type == ZKC_WORK_REVOKED)
        revoked++;
    pthread_mutex_unlock(&mu);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static void quiet_log(zkc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level <= ZKC_LOG_ERROR)
        fprintf(stderr, "  [lib] %s\n", msg);
}

static int member_start(struct member *m, const char *servers, const char *id, int timeout_ms)
{
    zkc_session_opts so;
    zkc_member_info info;
    zkc_election_opts eo;
    zkc_work_opts wo;
    char path[256];

    memset(m, 0, sizeof(*m));
    snprintf(m->id, sizeof(m->id), "%s", id);
    zkc_session_opts_init(&so);
    so.servers = servers;
    so.session_timeout_ms = timeout_ms;
    so.log_fn = quiet_log;
    so.log_level = ZKC_LOG_ERROR;
    if (zkc_session_new(&m->s, &so) != 0 || zkc_session_wait_connected(m->s, 15000) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/members", cluster);
    if (zkc_group_new(&m->g, m->s, path, NULL) != 0)
        return -1;
    memset(&info, 0, sizeof(info));
    info.id = m->id;
    if (zkc_group_join(m->g, &info) != 0 || zkc_group_wait_joined(m->g, 15000) != 0)
        return -1;
    zkc_election_opts_init(&eo);
    eo.id = m->id;
    snprintf(path, sizeof(path), "%s/leader", cluster);
    if (zkc_election_new(&m->e, m->s, path, &eo) != 0)
        return -1;
    zkc_work_opts_init(&wo);
    wo.member_id = m->id;
    wo.election = m->e;
    wo.on_event = on_work;
    wo.user_data = strcmp(id, "w-new") == 0 ? (void *)m : NULL;
    return zkc_work_new(&m->w, m->s, cluster, &wo);
}

static void member_stop(struct member *m)
{
    zkc_work_free(m->w);
    zkc_election_close(m->e);
    zkc_group_free(m->g);
    zkc_session_close(m->s);
}

/* The child: one member until killed. */
static int child_main(const char *id, const char *servers, int timeout_ms)
{
    struct member m;

    if (member_start(&m, servers, id, timeout_ms) != 0)
        return 1;
    for (;;)
        pause();
    return 0;
}

static int held(const struct member *m)
{
    char **items = NULL;
    int n = 0;

    if (zkc_work_held(m->w, &items, &n) != 0)
        return -1;
    zkc_strings_free(items, n);
    return n;
}

/* Every item runs where the plan says: the in-process members hold their
 * shares (from `lo` to `hi` items each) and the cluster's view (read only
 * when the local counts fit, as its reads count as requests too) shows
 * every item running. */
static int settled(zkc_session *admin, struct member *ms, int nm, int n_items, int lo, int hi)
{
    zkc_work_view *v = NULL;
    int i, ok = 1, running = 0;

    for (i = 0; i < nm && ok; i++) {
        int h = held(&ms[i]);

        ok = h >= lo && h <= hi;
    }
    if (!ok)
        return 0;
    view_reads++;
    if (zkc_work_view_read(admin, cluster, 10000, &v) != 0)
        return 0;
    for (i = 0; i < zkc_work_view_count(v); i++)
        running += zkc_work_view_at(v, i)->state == ZKC_WORK_RUNNING;
    zkc_work_view_free(v);
    return running == n_items;
}

static long long packets(void)
{
    return zkh_mntr(zk, 0, "zk_packets_received");
}

/* Poll until settled; the time of the first local fit is the figure (the
 * view read that confirms it comes after). */
static long long wait_settled(zkc_session *admin, struct member *ms, int nm, int n_items, int lo,
                              int hi, long long t0, long long *fit_ms, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;

    *fit_ms = -1;
    while (now_ms() < end) {
        int i, ok = 1;

        for (i = 0; i < nm && ok; i++) {
            int h = held(&ms[i]);

            ok = h >= lo && h <= hi;
        }
        if (ok && *fit_ms < 0)
            *fit_ms = now_ms() - t0;
        if (ok && settled(admin, ms, nm, n_items, lo, hi))
            return 0;
        if (!ok)
            *fit_ms = -1;
        pause_ms(2); /* polling local counters, no requests */
    }
    return -1;
}

int main(int argc, char **argv)
{
    static struct member ms[MAXM];
    zkh_opts o;
    zkc_session_opts so;
    zkc_session *admin = NULL;
    int n_items = 1000, nm = 10, timeout_ms = 2000, opt, i, rc = 1;
    long long t0, fit, p0, p1, calib, view_cost, mntr_cost;
    long a0, r0;
    pid_t child = -1;
    char tmo[16], item[32];

    if (argc == 5 && strcmp(argv[1], "--member") == 0)
        return child_main(argv[2], argv[3], atoi(argv[4]));
    while ((opt = getopt(argc, argv, "n:m:t:")) != -1) {
        if (opt == 'n')
            n_items = atoi(optarg);
        else if (opt == 'm')
            nm = atoi(optarg);
        else if (opt == 't')
            timeout_ms = atoi(optarg);
        else {
            fprintf(stderr, "usage: bench_work [-n ITEMS] [-m MEMBERS] [-t SESSION_TIMEOUT_MS]\n");
            return 2;
        }
    }
    if (nm < 2 || nm + 1 > MAXM || n_items < 1) {
        fprintf(stderr, "bench_work: 2 <= members < %d, items >= 1\n", MAXM);
        return 2;
    }
    zkh_opts_init(&o);
    o.quiet = 1;
    o.tick_time_ms = 200; /* session timeouts from 400 ms */
    if (zkh_start(&zk, 1, &o) != 0)
        return 1;
    printf("bench_work: standalone ZooKeeper on %s (tmpfs, loopback); %d items, %d members "
           "(one a child process), session timeout %d ms\n",
           zkh_connect_string(zk), n_items, nm, timeout_ms);

    /* the member that dies runs in its own process (so it dies for real) */
    snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
    {
        char *cargv[] = {argv[0], "--member", "w-child", (char *)zkh_connect_string(zk), tmo, NULL};
        if (posix_spawn(&child, argv[0], NULL, NULL, cargv, environ) != 0) {
            fprintf(stderr, "bench_work: cannot start the child member\n");
            goto out;
        }
    }
    zkc_session_opts_init(&so);
    so.servers = zkh_connect_string(zk);
    so.log_fn = quiet_log;
    so.log_level = ZKC_LOG_ERROR;
    if (zkc_session_new(&admin, &so) != 0 || zkc_session_wait_connected(admin, 15000) != 0)
        goto out;
    t0 = now_ms();
    for (i = 0; i < n_items; i++) {
        snprintf(item, sizeof(item), "p%04d", i);
        if (zkc_work_item_add(admin, cluster, item, "{}", 2, 10000) != 0) {
            fprintf(stderr, "bench_work: adding %s failed\n", item);
            goto out;
        }
    }
    printf("  %d items added in %lld ms\n", n_items, now_ms() - t0);
    t0 = now_ms();
    for (i = 0; i < nm - 1; i++) {
        char id[32];

        snprintf(id, sizeof(id), "w%02d", i);
        if (member_start(&ms[i], zkh_connect_string(zk), id, timeout_ms) != 0) {
            fprintf(stderr, "bench_work: member %s failed to start\n", id);
            goto out;
        }
    }
    /* everyone (the child included) holds its share */
    if (wait_settled(admin, ms, nm - 1, n_items, n_items / nm, (n_items + nm - 1) / nm, t0, &fit,
                     60000) != 0) {
        fprintf(stderr, "bench_work: the first plan did not settle\n");
        goto out;
    }
    printf("  first assignment: %d members running %d items after %lld ms\n\n", nm, n_items,
           now_ms() - t0);

    /* what one confirming view read costs, at rest */
    calib = packets();
    p0 = packets();
    {
        zkc_work_view *v = NULL;

        if (zkc_work_view_read(admin, cluster, 10000, &v) != 0)
            goto out;
        zkc_work_view_free(v);
    }
    mntr_cost = p0 - calib; /* mntr's own connection */
    view_cost = packets() - p0 - mntr_cost;

    /* join */
    p0 = packets();
    view_reads = 0;
    pthread_mutex_lock(&mu);
    a0 = assigned;
    r0 = revoked;
    pthread_mutex_unlock(&mu);
    t0 = now_ms();
    if (member_start(&ms[nm - 1], zkh_connect_string(zk), "w-new", timeout_ms) != 0)
        goto out;
    if (wait_settled(admin, ms, nm, n_items, n_items / (nm + 1), (n_items + nm) / (nm + 1), t0,
                     &fit, 60000) != 0) {
        fprintf(stderr, "bench_work: the join did not settle\n");
        goto out;
    }
    p1 = packets() - mntr_cost - view_reads * view_cost;
    pthread_mutex_lock(&mu);
    printf("  (the newcomer's first ASSIGNED after %lld ms, its last after %lld ms)\n",
           first_new_ms - t0, last_new_ms - t0);
    printf("join of an %dth member: every item running as planned after %lld ms; %ld items "
           "moved to it (ideal %d); %ld REVOKED in this process (the child's not counted)\n",
           nm + 1, fit, assigned - a0, n_items / (nm + 1), revoked - r0);
    pthread_mutex_unlock(&mu);
    printf("  server requests from the join to settled: %lld (the newcomer's session, member "
           "node, election and first reads of %d items included; %d confirming view reads of "
           "%lld requests each taken out)\n\n",
           p1 - p0, n_items, view_reads, view_cost);

    /* death of the child */
    p0 = packets();
    view_reads = 0;
    pthread_mutex_lock(&mu);
    a0 = assigned;
    pthread_mutex_unlock(&mu);
    t0 = now_ms();
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    child = -1;
    if (wait_settled(admin, ms, nm, n_items, n_items / nm, (n_items + nm - 1) / nm, t0, &fit,
                     60000) != 0) {
        fprintf(stderr, "bench_work: the death did not settle\n");
        goto out;
    }
    p1 = packets() - mntr_cost - view_reads * view_cost;
    pthread_mutex_lock(&mu);
    printf("SIGKILL of a member: its %ld items running elsewhere after %lld ms (session timeout "
           "%d ms)\n",
           assigned - a0, fit, timeout_ms);
    pthread_mutex_unlock(&mu);
    printf("  server requests from the kill to settled: %lld (%d confirming view reads taken "
           "out)\n",
           p1 - p0, view_reads);
    rc = 0;
out:
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    for (i = 0; i < nm; i++)
        if (ms[i].s)
            member_stop(&ms[i]);
    zkc_session_close(admin);
    zkh_destroy(zk);
    return rc;
}
