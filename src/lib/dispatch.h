/* The dispatcher: one thread that runs user callbacks serially, in order. */
#ifndef ZKC_DISPATCH_H
#define ZKC_DISPATCH_H

typedef struct zkc__dispatcher zkc__dispatcher;

int zkc__dispatcher_new(zkc__dispatcher **out);
/* Queue fn(arg). ZKC_ECLOSED once stopping (fn is not run), ZKC_ENOMEM. */
int zkc__dispatcher_post(zkc__dispatcher *d, void (*fn)(void *arg), void *arg);
/* Wait until everything queued before this call has run. Not from the
 * dispatcher thread itself (it would wait for itself). With
 * unless_in_barrier, stop waiting as soon as d's current callback is itself
 * waiting in a barrier (see zkc__dispatcher_enter_barrier): then returns 1
 * (what was queued before may still run later), else 0. */
int zkc__dispatcher_barrier(zkc__dispatcher *d, int unless_in_barrier);
/* Called on d's own thread around a barrier its current callback waits in,
 * so that barriers of the other lane stop waiting for it. */
void zkc__dispatcher_enter_barrier(zkc__dispatcher *d);
void zkc__dispatcher_leave_barrier(zkc__dispatcher *d);
int zkc__dispatcher_is_current(zkc__dispatcher *d);
/* Run what is queued, stop the thread, free. */
void zkc__dispatcher_free(zkc__dispatcher *d);

#endif
