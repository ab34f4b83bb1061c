/* Helpers shared by the lock recipes: see lockq.h. */
#include "lockq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long wakeups;

unsigned long zkc__lock_watch_wakeups(void)
{
    return __atomic_load_n(&wakeups, __ATOMIC_SEQ_CST);
}

void zkc__lock_count_wakeup(void)
{
    __atomic_add_fetch(&wakeups, 1, __ATOMIC_SEQ_CST);
}

void zkc__default_owner(char *buf, size_t len)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, len, "%s:%ld", host, (long)getpid());
}

int zkc__remaining(int64_t deadline_ms)
{
    int64_t left;

    if (deadline_ms < 0)
        return -1;
    left = deadline_ms - zkc__now_ms();
    if (left < 0)
        return 0;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* ---------------------------------------------------------------- calls */

zkc__call *zkc__call_new(void)
{
    zkc__call *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    if (zkc__cond_init(&c->cond) != 0) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    c->refs = 1;
    return c;
}

void zkc__call_ref(zkc__call *c)
{
    pthread_mutex_lock(&c->mu);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
}

void zkc__call_unref(zkc__call *c)
{
    int left;

    pthread_mutex_lock(&c->mu);
    left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left)
        return;
    deallocate_String_vector(&c->children);
    if (c->extra_free)
        c->extra_free(c->extra);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void zkc__call_complete(zkc__call *c, int rc)
{
    pthread_mutex_lock(&c->mu);
    if (!c->done) {
        c->done = 1;
        c->rc = rc;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

int zkc__call_wait(zkc__call *c, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    if (timeout_ms >= 0)
        zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (!c->done) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&c->cond, &c->mu);
        } else if (pthread_cond_timedwait(&c->cond, &c->mu, &ts) == ETIMEDOUT) {
            rc = c->done ? 0 : ZKC_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void zkc__call_strings_done(int rc, const struct String_vector *v, const void *data)
{
    zkc__call *c = (zkc__call *)data;
    int i;

    if (rc == ZOK && v && v->count > 0) {
        pthread_mutex_lock(&c->mu);
        if (!c->done && allocate_String_vector(&c->children, v->count) == 0) {
            for (i = 0; i < v->count; i++) {
                c->children.data[i] = strdup(v->data[i]);
                if (!c->children.data[i]) {
                    c->children.count = i;
                    rc = ZSYSTEMERROR;
                    break;
                }
            }
        } else if (!c->done) {
            rc = ZSYSTEMERROR;
        }
        pthread_mutex_unlock(&c->mu);
    }
    zkc__call_complete(c, rc);
    zkc__call_unref(c);
}

void zkc__call_stat_done(int rc, const struct Stat *st, const void *data)
{
    zkc__call *c = (zkc__call *)data;

    if (rc == ZOK && st) {
        pthread_mutex_lock(&c->mu);
        if (!c->done)
            c->stat = *st;
        pthread_mutex_unlock(&c->mu);
    }
    zkc__call_complete(c, rc);
    zkc__call_unref(c);
}

void zkc__call_void_done(int rc, const void *data)
{
    zkc__call *c = (zkc__call *)data;

    zkc__call_complete(c, rc);
    zkc__call_unref(c);
}

/* -------------------------------------------------- background delete */

/* A release whose delete meets connection loss must not give up: the node
 * would stay and block the queue until the session expires, or forever if
 * the session survives (CURATOR-678, Curator's "guaranteed" delete). The
 * retry is bound to the node's session generation: once that session is
 * gone, so is the ephemeral node. */
struct bgdel {
    zkc_session *s;
    char *path;
    unsigned gen;
    zkc__call *first;
};

static void bg_send(struct bgdel *d);

static void bg_finish(struct bgdel *d)
{
    if (d->first) {
        zkc__call_complete(d->first, ZOK);
        zkc__call_unref(d->first);
    }
    free(d->path);
    free(d);
}

/* The caller of release may go on; the retry continues on its own. */
static void bg_first_done(struct bgdel *d)
{
    if (d->first) {
        zkc__call_complete(d->first, ZOK);
        zkc__call_unref(d->first);
        d->first = NULL;
    }
}

static void bg_retry(void *arg, zkc_conn_state st, unsigned gen)
{
    struct bgdel *d = arg;

    if (st == ZKC_CONN_NONE || st == ZKC_CONN_LOST || gen != d->gen) {
        bg_finish(d); /* session gone (or closing): the node went with it */
        return;
    }
    bg_send(d);
}

static void bg_later(struct bgdel *d)
{
    bg_first_done(d);
    if (zkc__when_connected(d->s, bg_retry, d) != 0)
        bg_finish(d);
}

static void bg_deleted(int rc, const void *data)
{
    struct bgdel *d = (struct bgdel *)data;

    if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) {
        zkc__log(d->s, ZKC_LOG_INFO, "delete of %s: connection lost, retrying after reconnect",
                 d->path);
        bg_later(d);
        return;
    }
    if (rc != ZOK && rc != ZNONODE && rc != ZCLOSING && rc != ZSESSIONEXPIRED)
        zkc__log(d->s, ZKC_LOG_WARN, "cannot delete %s: %s", d->path, zerror(rc));
    bg_finish(d);
}

static void bg_send(struct bgdel *d)
{
    zkc_session *s = d->s; /* the reply may free d before we unlock */
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(s, &gen);
    int rc;

    if (!zh) {
        bg_later(d);
        return;
    }
    if (gen != d->gen) {
        zkc__zh_unlock(s);
        bg_finish(d);
        return;
    }
    rc = zoo_adelete(zh, d->path, -1, bg_deleted, d);
    zkc__zh_unlock(s);
    if (rc == ZINVALIDSTATE || rc == ZCONNECTIONLOSS)
        bg_later(d);
    else if (rc != ZOK)
        bg_finish(d);
}

void zkc__bg_delete(zkc_session *s, const char *path, unsigned gen, zkc__call *first)
{
    struct bgdel *d = calloc(1, sizeof(*d));

    if (!d || !(d->path = strdup(path))) {
        free(d);
        zkc__log(s, ZKC_LOG_ERROR, "out of memory deleting %s", path);
        if (first) {
            zkc__call_complete(first, ZOK);
            zkc__call_unref(first);
        }
        return;
    }
    d->s = s;
    d->gen = gen;
    d->first = first;
    bg_send(d);
}
