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
    /* Barriers: markers run and the lane's own callback entering or leaving
     * a barrier broadcast bcond (under mu). in_barrier counts the barriers
     * this lane's current callback is waiting in. */
    pthread_cond_t bcond;
    int in_barrier;
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
    pthread_cond_init(&d->bcond, NULL);
    if (pthread_create(&d->thread, NULL, dispatcher_main, d) != 0) {
        pthread_cond_destroy(&d->bcond);
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

/* A barrier marker, on the waiter's stack. */
struct marker {
    zkc__dispatcher *d;
    int done;
};

static void marker_run(void *arg)
{
    struct marker *m = arg;
    zkc__dispatcher *d = m->d;

    pthread_mutex_lock(&d->mu);
    m->done = 1;
    pthread_cond_broadcast(&d->bcond);
    pthread_mutex_unlock(&d->mu);
}

int zkc__dispatcher_barrier(zkc__dispatcher *d, int unless_in_barrier)
{
    struct marker m;
    struct task *t, **pp;
    int skipped = 0;

    m.d = d;
    m.done = 0;
    if (zkc__dispatcher_post(d, marker_run, &m) != 0)
        return 0; /* stopping (the lane runs nothing new) or out of memory */
    pthread_mutex_lock(&d->mu);
    while (!m.done && !(unless_in_barrier && d->in_barrier > 0))
        pthread_cond_wait(&d->bcond, &d->mu);
    if (!m.done) {
        /* The lane's current callback waits in a barrier, so our marker is
         * still queued behind it (the lane dequeues the next task only
         * after that callback returned): take it out, it lives on our
         * stack. */
        for (pp = &d->head; (t = *pp) != NULL; pp = &t->next) {
            if (t->arg == &m && t->fn == marker_run)
                break;
        }
        if (t) {
            *pp = t->next;
            if (d->tail == t) {
                struct task *last = d->head;

                while (last && last->next)
                    last = last->next;
                d->tail = last;
            }
            free(t);
            skipped = 1;
        } else {
            /* cannot happen (see above); never leave it to a dangling m */
            while (!m.done)
                pthread_cond_wait(&d->bcond, &d->mu);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return skipped;
}

void zkc__dispatcher_enter_barrier(zkc__dispatcher *d)
{
    pthread_mutex_lock(&d->mu);
    d->in_barrier++;
    pthread_cond_broadcast(&d->bcond);
    pthread_mutex_unlock(&d->mu);
}

void zkc__dispatcher_leave_barrier(zkc__dispatcher *d)
{
    pthread_mutex_lock(&d->mu);
    d->in_barrier--;
    pthread_mutex_unlock(&d->mu);
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
    pthread_cond_destroy(&d->bcond);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
