/* A flood of members written by a raw ZooKeeper client (no libzkcoord):
 * what a large cluster joining at once looks like to the agents.
 *
 *   bench_flood SERVERS FOLDER N [CHURN]
 *
 * Creates N ephemeral sequential ServerSet member nodes under FOLDER (ids
 * "flood-<i>"), all pipelined, prints "created N in MS ms", then performs
 * CHURN changes one at a time (a join, then its leave: 2 changes per
 * round, each waited for) and prints "churned K changes in MS ms". It then
 * holds the session (the members stay) until stdin reaches EOF, and exits
 * (the members go with the session). */
#define THREADED
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int connected, done, failed;

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    (void)ctx;
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
        pthread_mutex_lock(&mu);
        connected = 1;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
}

static void created(int rc, const char *value, const void *data)
{
    (void)value;
    (void)data;
    pthread_mutex_lock(&mu);
    done++;
    if (rc != ZOK)
        failed++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void wait_done(int n)
{
    pthread_mutex_lock(&mu);
    while (done < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static int payload(char *buf, size_t len, long i)
{
    return snprintf(buf, len,
                    "{\"serviceEndpoint\":{\"host\":\"127.0.0.1\",\"port\":%ld},"
                    "\"additionalEndpoints\":{},\"status\":\"ALIVE\",\"shard\":0,"
                    "\"zkcoord\":{\"id\":\"flood-%ld\",\"metadata\":{},\"version\":1}}",
                    10000 + i % 50000, i);
}

static void node_name(char *buf, size_t len, const char *folder, long i)
{
    snprintf(buf, len, "%s/member_%08lx-f00d-4000-8000-%012lx_", folder, (long)getpid(), i);
}

/* Create the folder and its parents (persistent), ignoring "exists". */
static void mkdirs(zhandle_t *zh, const char *folder)
{
    char p[1024];
    size_t i;

    snprintf(p, sizeof(p), "%s", folder);
    for (i = 1; p[i]; i++) {
        if (p[i] != '/')
            continue;
        p[i] = '\0';
        zoo_create(zh, p, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        p[i] = '/';
    }
    zoo_create(zh, p, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
}

int main(int argc, char **argv)
{
    zhandle_t *zh;
    long n, churn = 0, i;
    long long t0;
    char path[1024], data[512], made[1024];
    int len;

    if (argc < 4) {
        fprintf(stderr, "usage: bench_flood SERVERS FOLDER N [CHURN]\n");
        return 2;
    }
    n = atol(argv[3]);
    if (argc > 4)
        churn = atol(argv[4]);
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zh = zookeeper_init(argv[1], watcher, 30000, NULL, NULL, 0);
    if (!zh)
        return 1;
    pthread_mutex_lock(&mu);
    while (!connected)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    mkdirs(zh, argv[2]);
    t0 = now_ms();
    for (i = 0; i < n; i++) {
        node_name(path, sizeof(path), argv[2], i);
        len = payload(data, sizeof(data), i);
        if (zoo_acreate(zh, path, data, len, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL | ZOO_SEQUENCE,
                        created, NULL) != ZOK)
            created(ZSYSTEMERROR, NULL, NULL);
    }
    wait_done((int)n);
    printf("created %ld in %lld ms (%d failed)\n", n, now_ms() - t0, failed);
    fflush(stdout);
    t0 = now_ms();
    for (i = 0; i < churn; i++) {
        node_name(path, sizeof(path), argv[2], n + i);
        len = payload(data, sizeof(data), n + i);
        if (zoo_create(zh, path, data, len, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL | ZOO_SEQUENCE,
                       made, sizeof(made)) == ZOK)
            zoo_delete(zh, made, -1);
    }
    if (churn) {
        printf("churned %ld changes in %lld ms\n", 2 * churn, now_ms() - t0);
        fflush(stdout);
    }
    /* Hold the members until stdin reaches EOF (a signal kills us; the
     * members then go when the session expires). */
    {
        char b[64];
        while (read(0, b, sizeof(b)) > 0) {
        }
    }
    zookeeper_close(zh);
    return 0;
}
