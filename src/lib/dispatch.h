/* The dispatcher: one thread that runs user callbacks serially, in order. */
#ifndef ZKC_DISPATCH_H
#define ZKC_DISPATCH_H

typedef struct zkc__dispatcher zkc__dispatcher;

int zkc__dispatcher_new(zkc__dispatcher **out);
/* Queue fn(arg). ZKC_ECLOSED once stopping (fn is not run), ZKC_ENOMEM. */
int zkc__dispatcher_post(zkc__dispatcher *d, void (*fn)(void *arg), void *arg);
/* Wait until everything queued before this call has run. Not from the
 * dispatcher thread itself (it would wait for itself). */
void zkc__dispatcher_barrier(zkc__dispatcher *d);
int zkc__dispatcher_is_current(zkc__dispatcher *d);
/* Run what is queued, stop the thread, free. */
void zkc__dispatcher_free(zkc__dispatcher *d);

#endif
