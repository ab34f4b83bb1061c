/* Monotonic deadlines for the agent's condition waits (the agent uses only
 * the library's public headers, so it keeps these few lines of its own). */
#ifndef ZKCOORD_AGENT_MONOTIME_H
#define ZKCOORD_AGENT_MONOTIME_H

#include <pthread.h>
#include <time.h>

/* A condition variable that waits on CLOCK_MONOTONIC; 0 or -1. */
static inline int agent_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    int rc;

    if (pthread_condattr_init(&attr) != 0)
        return -1;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

/* Absolute CLOCK_MONOTONIC time `ms` from now, for pthread_cond_timedwait. */
static inline void agent_deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

#endif
