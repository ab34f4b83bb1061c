#include "common/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

zkh_cluster *tu_zk;

long long tu_now_ms(void)
{
    return (long long)zkc__now_ms();
}

void tu_rec_init(tu_rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    zkc__cond_init(&r->cond);
}

void tu_rec_destroy(tu_rec *r)
{
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
}

void tu_rec_state(zkc_session *s, zkc_conn_state st, void *user_data)
{
    tu_rec *r = user_data;

    (void)s;
    pthread_mutex_lock(&r->mu);
    if (r->n < (int)(sizeof(r->states) / sizeof(r->states[0])))
        r->states[r->n++] = st;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

int tu_rec_wait(tu_rec *r, int from, zkc_conn_state st, int timeout_ms)
{
    struct timespec ts;
    int i, found = -1;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        for (i = from; i < r->n; i++) {
            if (r->states[i] == st) {
                found = i;
                break;
            }
        }
        if (found >= 0 || pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT)
            break;
    }
    if (found < 0) {
        for (i = from; i < r->n; i++)
            if (r->states[i] == st)
                found = i;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

int tu_rec_count(tu_rec *r)
{
    int n;

    pthread_mutex_lock(&r->mu);
    n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static int debug_enabled(void)
{
    const char *e = getenv("ZKC_TEST_DEBUG");

    return e && *e && strcmp(e, "0") != 0;
}

void tu_log(zkc_log_level level, const char *msg, void *user_data)
{
    (void)user_data;
    if (level <= ZKC_LOG_WARN || debug_enabled())
        fprintf(stderr, "    [lib %s] %s\n", zkc_log_level_name(level), msg);
}

int tu_session(zkc_session **out, const char *servers, int timeout_ms, tu_rec *rec)
{
    zkc_session_opts o;
    zkc_session *s;
    int rc;

    zkc_session_opts_init(&o);
    o.servers = servers ? servers : zkh_connect_string(tu_zk);
    o.session_timeout_ms = timeout_ms;
    o.log_fn = tu_log;
    o.log_level = debug_enabled() ? ZKC_LOG_DEBUG : ZKC_LOG_ERROR;
    o.zk_log_level = ZKC_LOG_INFO;
    rc = zkc_session_new(&s, &o);
    if (rc)
        return rc;
    if (rec)
        zkc_session_add_listener(s, tu_rec_state, rec);
    rc = zkc_session_wait_connected(s, 15000);
    if (rc) {
        zkc_session_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

struct expire_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int connected;
    int expired;
};

static void expire_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct expire_wait *w = ctx;

    (void)zh;
    (void)path;
    if (type == ZOO_SESSION_EVENT &&
        (state == ZOO_CONNECTED_STATE || state == ZOO_EXPIRED_SESSION_STATE)) {
        pthread_mutex_lock(&w->mu);
        if (state == ZOO_CONNECTED_STATE)
            w->connected = 1;
        else
            w->expired = 1;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
    }
}

/* One round of the trick with a fixed client id. Returns 1 when the second
 * handle connected (and closed the session), 0 when the server said the
 * session is already expired, -1 on error. */
static int expire_once(const clientid_t *cid, int timeout_ms)
{
    zhandle_t *other;
    struct expire_wait w;
    struct timespec ts;
    int result;

    pthread_mutex_init(&w.mu, NULL);
    zkc__cond_init(&w.cond);
    w.connected = 0;
    w.expired = 0;
    other = zookeeper_init(zkh_connect_string(tu_zk), expire_watcher, timeout_ms, cid, &w, 0);
    if (!other)
        return -1;
    zkc__deadline(&ts, 10000);
    pthread_mutex_lock(&w.mu);
    while (!w.connected && !w.expired && pthread_cond_timedwait(&w.cond, &w.mu, &ts) != ETIMEDOUT)
        ;
    result = w.connected ? 1 : w.expired ? 0 : -1;
    pthread_mutex_unlock(&w.mu);
    zookeeper_close(other);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.mu);
    return result;
}

int tu_close_session(zkc_session *s)
{
    clientid_t cid;
    zhandle_t *zh = zkc__zh_lock(s, NULL);

    if (!zh)
        return -1;
    cid = *zoo_client_id(zh);
    zkc__zh_unlock(s);
    return expire_once(&cid, zkc_session_timeout_ms(s));
}

int tu_expire(zkc_session *s)
{
    clientid_t cid;
    zhandle_t *zh = zkc__zh_lock(s, NULL);
    tu_rec r;
    int attempt, rc = -1;

    if (!zh)
        return -1;
    cid = *zoo_client_id(zh);
    zkc__zh_unlock(s);
    tu_rec_init(&r);
    if (zkc_session_add_listener(s, tu_rec_state, &r) != 0)
        return -1;
    /* On loopback the first handle may win its connection back before the
     * second one's close reaches the server; the server then ignores the
     * close (session moved) and the session lives on. Repeat, with the same
     * session id, until the session reports LOST. */
    for (attempt = 0; attempt < 10 && rc != 0; attempt++) {
        int once = expire_once(&cid, zkc_session_timeout_ms(s));
        if (once < 0)
            break;
        if (tu_rec_wait(&r, 0, ZKC_CONN_LOST, once == 0 ? 10000 : 1500) >= 0)
            rc = 0;
        else if (once == 0)
            break;
    }
    zkc_session_remove_listener(s, tu_rec_state, &r);
    tu_rec_destroy(&r);
    return rc;
}
