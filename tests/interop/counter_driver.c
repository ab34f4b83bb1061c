/* counter_driver: the C side of tests/interop/curator-counter.sh and of
 * the counter bench's ad-hoc runs.
 *
 *   counter_driver SERVERS PATH int|long get
 *       print "VALUE <n> VERSION <v>" (exit 3 when there is no node)
 *   counter_driver SERVERS PATH int|long add N THREADS
 *       wait (watching) until PATH exists, then THREADS sessions add 1,
 *       N times each; print "FIRST <value after the first add> LAST <value
 *       after the last>" and exit 0 when every add succeeded
 */
#include "internal.h"
#include "zkcoord/counter.h"
#include "zkcoord/zkcoord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *servers, *path;
static zkc_counter_width width;
static int each;

struct exists_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int exists;
};

static void on_change(zkc_counter *c, const zkc_counter_value *v, int err, void *ud)
{
    struct exists_wait *w = ud;

    (void)c;
    (void)err;
    pthread_mutex_lock(&w->mu);
    if (v->exists)
        w->exists = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static int open_session(zkc_session **s)
{
    zkc_session_opts o;

    zkc_session_opts_init(&o);
    o.servers = servers;
    if (zkc_session_new(s, &o) != 0)
        return -1;
    if (zkc_session_wait_connected(*s, 30000) != 0) {
        zkc_session_close(*s);
        return -1;
    }
    return 0;
}

struct adder {
    int errors;
    int64_t first, last;
};

static void *add_thread(void *p)
{
    struct adder *a = p;
    zkc_session *s;
    zkc_counter *c = NULL;
    zkc_counter_value v;
    int i;

    a->errors = each;
    if (open_session(&s) != 0)
        return NULL;
    if (zkc_counter_new(&c, s, path, width) == 0) {
        a->errors = 0;
        for (i = 0; i < each; i++) {
            int rc = zkc_counter_add(c, 1, 0, &v, 60000);
            if (rc) {
                fprintf(stderr, "counter_driver: add: %s\n", zkc_strerror(rc));
                a->errors++;
                continue;
            }
            if (i == 0)
                a->first = v.value;
            a->last = v.value;
        }
        zkc_counter_free(c);
    }
    zkc_session_close(s);
    return NULL;
}

int main(int argc, char **argv)
{
    zkc_session *s;
    zkc_counter *c = NULL;
    zkc_counter_value v;
    int rc, i, threads = 1, errors = 0;
    int64_t first = INT64_MAX, last = INT64_MIN;

    if (argc < 5 || (strcmp(argv[3], "int") && strcmp(argv[3], "long")) ||
        (strcmp(argv[4], "get") && (strcmp(argv[4], "add") || argc != 7))) {
        fprintf(stderr, "usage: counter_driver SERVERS PATH int|long get | add N THREADS\n");
        return 2;
    }
    servers = argv[1];
    path = argv[2];
    width = strcmp(argv[3], "int") == 0 ? ZKC_COUNTER_INT32 : ZKC_COUNTER_INT64;
    if (open_session(&s) != 0 || zkc_counter_new(&c, s, path, width) != 0) {
        fprintf(stderr, "counter_driver: cannot connect to %s\n", servers);
        return 1;
    }
    if (strcmp(argv[4], "get") == 0) {
        rc = zkc_counter_get(c, &v, 30000);
        if (rc == 0 && v.exists)
            printf("VALUE %lld VERSION %d\n", (long long)v.value, (int)v.version);
        else if (rc)
            fprintf(stderr, "counter_driver: get: %s\n", zkc_strerror(rc));
        zkc_counter_free(c);
        zkc_session_close(s);
        return rc ? 1 : v.exists ? 0 : 3;
    }
    each = atoi(argv[5]);
    threads = atoi(argv[6]);
    if (each <= 0 || threads <= 0 || threads > 64) {
        fprintf(stderr, "counter_driver: bad N or THREADS\n");
        return 2;
    }
    {
        struct exists_wait w;
        struct timespec ts;

        pthread_mutex_init(&w.mu, NULL);
        zkc__cond_init(&w.cond);
        w.exists = 0;
        zkc__deadline(&ts, 120000);
        rc = zkc_counter_watch(c, on_change, &w);
        pthread_mutex_lock(&w.mu);
        while (rc == 0 && !w.exists)
            if (pthread_cond_timedwait(&w.cond, &w.mu, &ts) != 0)
                break;
        rc = w.exists ? 0 : 1;
        pthread_mutex_unlock(&w.mu);
        zkc_counter_watch(c, NULL, NULL);
        pthread_cond_destroy(&w.cond);
        pthread_mutex_destroy(&w.mu);
        if (rc) {
            fprintf(stderr, "counter_driver: %s never appeared\n", path);
            zkc_counter_free(c);
            zkc_session_close(s);
            return 1;
        }
    }
    {
        pthread_t t[64];
        struct adder a[64];
        int made[64];

        memset(a, 0, sizeof(a));
        for (i = 0; i < threads; i++)
            made[i] = pthread_create(&t[i], NULL, add_thread, &a[i]) == 0;
        for (i = 0; i < threads; i++) {
            if (made[i])
                pthread_join(t[i], NULL);
            else
                a[i].errors = each;
            errors += a[i].errors;
            if (a[i].errors < each) {
                first = a[i].first < first ? a[i].first : first;
                last = a[i].last > last ? a[i].last : last;
            }
        }
    }
    printf("FIRST %lld LAST %lld ERRORS %d\n", (long long)first, (long long)last, errors);
    zkc_counter_free(c);
    zkc_session_close(s);
    return errors ? 1 : 0;
}
