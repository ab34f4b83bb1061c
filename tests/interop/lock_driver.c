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
#include "queue.h"
#include "zkcoord/zkcoord.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A waiter on a folder's children. Its watches (per request, zkc__qwatch)
 * may outlive the wait, so it is on the heap: one reference for the
 * waiter, one per watch set. */
struct wait_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    unsigned changes;
    int refs; /* atomic */
};

static void wait_unref(struct wait_ctx *w)
{
    if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_SEQ_CST) != 0)
        return;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void on_change(zkc__qwatch *q, int type)
{
    struct wait_ctx *w = q->owner;

    if (type) {
        pthread_mutex_lock(&w->mu);
        w->changes++;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
    }
    wait_unref(w);
}

struct list_req {
    zkc__call *c;
    zkc__qwatch *q;
};

static void listed(int rc, const struct String_vector *v, const void *data)
{
    struct list_req *r = (struct list_req *)data;

    zkc__qwatch_reply(r->q, rc == ZOK);
    zkc__call_strings_done(rc, v, r->c);
    free(r);
}

/* getChildren of `path` with a watch of its own (bumps w->changes when it
 * fires). The finished call (its rc and children), or NULL when it could
 * not be sent or did not finish in time. */
static zkc__call *list(zkc_session *s, struct wait_ctx *w, const char *path, int timeout_ms)
{
    struct list_req *r = calloc(1, sizeof(*r));
    zkc__call *c;
    zhandle_t *zh;
    unsigned gen;

    if (!r || !(r->c = zkc__call_new())) {
        free(r);
        return NULL;
    }
    __atomic_add_fetch(&w->refs, 1, __ATOMIC_SEQ_CST);
    if (!(r->q = zkc__qwatch_new(s, path, on_change, w))) {
        wait_unref(w);
        zkc__call_unref(r->c);
        free(r);
        return NULL;
    }
    c = r->c;
    zkc__call_ref(c); /* the completion's; r is the completion's once sent */
    if ((zh = zkc__zh_lock(s, &gen))) {
        zkc__qwatch_sent(r->q, gen);
        if (zoo_awget_children(zh, path, zkc__qwatch_watcher, r->q, listed, r) != ZOK)
            zh = NULL;
        zkc__zh_unlock(s);
    }
    if (!zh)
        listed(ZCONNECTIONLOSS, NULL, r);
    if (!zh || zkc__call_wait(c, timeout_ms) != 0) {
        zkc__call_unref(c);
        return NULL;
    }
    return c;
}

static int waitn(zkc_session *s, const char *path, int n, int ms)
{
    struct wait_ctx *w = calloc(1, sizeof(*w));
    int64_t end = zkc__now_ms() + ms;
    int i, rc = 3;

    if (!w)
        return 2;
    pthread_mutex_init(&w->mu, NULL);
    zkc__cond_init(&w->cond);
    w->refs = 1;
    while (zkc__now_ms() < end) {
        zkc__call *c;
        unsigned snap;
        int zrc = ZCONNECTIONLOSS;
        pthread_mutex_lock(&w->mu);
        snap = w->changes;
        pthread_mutex_unlock(&w->mu);
        if ((c = list(s, w, path, (int)(end - zkc__now_ms()))))
            zrc = c->rc;
        if (zrc == ZOK && c->children.count == n) {
            for (i = 0; i < c->children.count; i++)
                printf("NODE %s\n", c->children.data[i]);
            printf("OK %d\n", n);
            zkc__call_unref(c);
            rc = 0;
            break;
        }
        if (c)
            zkc__call_unref(c);
        pthread_mutex_lock(&w->mu);
        while (w->changes == snap && zkc__now_ms() < end) {
            struct timespec ts;
            zkc__deadline(&ts, zrc == ZOK || zrc == ZNONODE ? (int)(end - zkc__now_ms()) : 100);
            if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) == ETIMEDOUT &&
                !(zrc == ZOK || zrc == ZNONODE))
                break;
        }
        pthread_mutex_unlock(&w->mu);
    }
    if (rc)
        printf("TIMEOUT\n");
    wait_unref(w);
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
