/* lock_driver: the C side of tests/interop/curator-mutex.sh.
 *
 *   lock_driver SERVERS PATH hold        acquire, print "HELD <token>", wait for a
 *                                        line on stdin, release, print "RELEASED"
 *   lock_driver SERVERS PATH try MS      print "WAITING", acquire with a timeout,
 *                                        print "ACQUIRED" (exit 0) or "TIMEOUT" (exit 3)
 *   lock_driver SERVERS PATH waitn N MS  wait (watching) until PATH has N lock
 *                                        nodes; print the queue; exit 0, or 3 on timeout
 */
#include "internal.h"
#include "zkcoord/zkcoord.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wait_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    unsigned changes;
};

static void on_change(void *arg, int type, const char *path)
{
    struct wait_ctx *w = arg;

    (void)type;
    (void)path;
    pthread_mutex_lock(&w->mu);
    w->changes++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static int waitn(zkc_session *s, const char *path, int n, int ms)
{
    struct wait_ctx w;
    int64_t end = zkc__now_ms() + ms;
    int i, rc = 3;

    pthread_mutex_init(&w.mu, NULL);
    zkc__cond_init(&w.cond);
    w.changes = 0;
    zkc__watch(s, path, on_change, &w);
    while (zkc__now_ms() < end) {
        struct String_vector v = {0, NULL};
        zhandle_t *zh = zkc__zh_lock(s, NULL);
        unsigned snap;
        int zrc = ZCONNECTIONLOSS;
        pthread_mutex_lock(&w.mu);
        snap = w.changes;
        pthread_mutex_unlock(&w.mu);
        if (zh) {
            zkc__zh_unlock(s);
            /* main thread: the synchronous API is fine here */
            zrc = zoo_get_children(zh, path, 1, &v);
        }
        if (zrc == ZOK && v.count == n) {
            for (i = 0; i < v.count; i++)
                printf("NODE %s\n", v.data[i]);
            printf("OK %d\n", n);
            deallocate_String_vector(&v);
            rc = 0;
            break;
        }
        if (zrc == ZOK)
            deallocate_String_vector(&v);
        pthread_mutex_lock(&w.mu);
        while (w.changes == snap && zkc__now_ms() < end) {
            struct timespec ts;
            zkc__deadline(&ts, zrc == ZOK || zrc == ZNONODE ? (int)(end - zkc__now_ms()) : 100);
            if (pthread_cond_timedwait(&w.cond, &w.mu, &ts) == ETIMEDOUT &&
                !(zrc == ZOK || zrc == ZNONODE))
                break;
        }
        pthread_mutex_unlock(&w.mu);
    }
    if (rc)
        printf("TIMEOUT\n");
    zkc__unwatch(s, path, on_change, &w);
    return rc;
}

int main(int argc, char **argv)
{
    zkc_session_opts so;
    zkc_lock_opts lo;
    zkc_session *s = NULL;
    zkc_lock *l = NULL;
    int64_t token = 0;
    char line[64];
    int rc = 1;

    if (argc < 4) {
        fprintf(stderr, "usage: lock_driver SERVERS PATH hold|try MS|waitn N MS\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    zkc_session_opts_init(&so);
    so.servers = argv[1];
    so.session_timeout_ms = 10000;
    so.zk_log_level = ZKC_LOG_INFO;
    if (zkc_session_new(&s, &so) != 0 || zkc_session_wait_connected(s, 30000) != 0) {
        printf("UNREACHABLE\n");
        goto out;
    }
    zkc_lock_opts_init(&lo);
    lo.owner_id = "zkcoord-interop";
    if (zkc_lock_new(&l, s, argv[2], &lo) != 0)
        goto out;
    if (strcmp(argv[3], "hold") == 0) {
        if (zkc_lock_acquire(l, -1, &token) != 0)
            goto out;
        printf("HELD %lld\n", (long long)token);
        if (!fgets(line, sizeof(line), stdin))
            line[0] = '\0';
        zkc_lock_release(l);
        printf("RELEASED\n");
        rc = 0;
    } else if (strcmp(argv[3], "try") == 0 && argc == 5) {
        int r;
        printf("WAITING\n");
        r = zkc_lock_acquire(l, atoi(argv[4]), &token);
        if (r == 0) {
            printf("ACQUIRED %lld\n", (long long)token);
            zkc_lock_release(l);
            rc = 0;
        } else {
            printf("TIMEOUT %s\n", zkc_err_name(r));
            rc = 3;
        }
    } else if (strcmp(argv[3], "waitn") == 0 && argc == 6) {
        rc = waitn(s, argv[2], atoi(argv[4]), atoi(argv[5]));
    } else {
        fprintf(stderr, "lock_driver: bad arguments\n");
        rc = 2;
    }
out:
    zkc_lock_free(l);
    zkc_session_close(s);
    return rc;
}
