/* The dispatcher thread. User callbacks may block (on a lock acquire, say)
 * without stalling the ZooKeeper completion thread or the session manager,
 * because they run here and nowhere else. */
#include "internal.h"
#include "dispatch.h"

#include <stdlib.h>

struct task {
    void (*fn)(void *arg);
    void *arg;
    struct task *next;
};

struct zkc__dispatcher {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct task *head, *tail;
    int stopping;
    pthread_t thread;
};

static void *dispatcher_main(void *arg)
{
    zkc__dispatcher *d = arg;

    pthread_mutex_lock(&d->mu);
    for (;;) {
        struct task *t = d->head;
        if (!t) {
            if (d->stopping)
                break;
            pthread_cond_wait(&d->cond, &d->mu);
            continue;
        }
        d->head = t->next;
        if (!d->head)
            d->tail = NULL;
        pthread_mutex_unlock(&d->mu);
        t->fn(t->arg);
        free(t);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int zkc__dispatcher_new(zkc__dispatcher **out)
{
    zkc__dispatcher *d = calloc(1, sizeof(*d));

    if (!d)
        return ZKC_ENOMEM;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cond, NULL);
    if (pthread_create(&d->thread, NULL, dispatcher_main, d) != 0) {
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->mu);
        free(d);
        return ZKC_ESYS;
    }
    *out = d;
    return 0;
}

int zkc__dispatcher_post(zkc__dispatcher *d, void (*fn)(void *arg), void *arg)
{
    struct task *t = malloc(sizeof(*t));

    if (!t)
        return ZKC_ENOMEM;
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&d->mu);
    if (d->stopping) {
        pthread_mutex_unlock(&d->mu);
        free(t);
        return ZKC_ECLOSED;
    }
    if (d->tail)
        d->tail->next = t;
    else
        d->head = t;
    d->tail = t;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

struct barrier {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
};

static void barrier_run(void *arg)
{
    struct barrier *b = arg;

    pthread_mutex_lock(&b->mu);
    b->done = 1;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

void zkc__dispatcher_barrier(zkc__dispatcher *d)
{
    struct barrier b;

    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cond, NULL);
    b.done = 0;
    if (zkc__dispatcher_post(d, barrier_run, &b) == 0) {
        pthread_mutex_lock(&b.mu);
        while (!b.done)
            pthread_cond_wait(&b.cond, &b.mu);
        pthread_mutex_unlock(&b.mu);
    }
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.mu);
}

int zkc__dispatcher_is_current(zkc__dispatcher *d)
{
    return pthread_equal(pthread_self(), d->thread);
}

void zkc__dispatcher_free(zkc__dispatcher *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
