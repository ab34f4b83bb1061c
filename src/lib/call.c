/* The library's two request helpers: a blocking "send async, wait for the
 * one reply" call (zkc__call), and a "retry once connected" slot
 * (zkc__retry). Every recipe uses these instead of a copy of its own. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* ---------------------------------------------------------------- retry */

int zkc__retry_arm(zkc__retry *r, zkc_session *s, zkc__state_hook fn, void *arg,
                   void (*ref)(void *), void (*unref)(void *))
{
    if (r->armed)
        return 0;
    r->armed = 1;
    if (ref)
        ref(arg);
    if (zkc__when_connected(s, fn, arg) != 0) {
        r->armed = 0;
        if (unref)
            unref(arg);
        return 0;
    }
    return 1;
}

void zkc__retry_fired(zkc__retry *r)
{
    r->armed = 0;
}
