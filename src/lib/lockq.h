/* Private helpers shared by the lock recipes (lock.c, rwlock.c,
 * semaphore.c, fence.c): the queue-entry kinds, the background delete that
 * survives connection loss, and counters the tests read. */
#ifndef ZKC_LOCKQ_H
#define ZKC_LOCKQ_H

#include "internal.h"
#include "zkcoord/lock.h"

/* What a zkc_lock queues as. */
typedef enum zkc__lq_kind {
    ZKC__LQ_MUTEX = 0, /* "lock-": granted when first */
    ZKC__LQ_READ = 1,  /* "__READ__": granted when no writer is ahead */
    ZKC__LQ_WRITE = 2, /* "__WRIT__": granted when first */
} zkc__lq_kind;

/* Construct a lock of `kind`. For READ, `write_side` is the write lock of
 * the same rwlock (a holder of it gets the read side at once: downgrade). */
int zkc__lock_new_kind(zkc_lock **out, zkc_session *s, const char *path, const zkc_lock_opts *o,
                       zkc__lq_kind kind, zkc_lock *write_side);
/* Free without the "not a rwlock side" check. */
void zkc__lock_free_any(zkc_lock *l);
/* Mark a lock as a side of a rwlock (zkc_lock_free refuses it). */
void zkc__lock_set_owned(zkc_lock *l, int owned);

/* Default owner id "<hostname>:<pid>" into buf. */
void zkc__default_owner(char *buf, size_t len);

/* Delete `path` (a node of session generation `gen`), retrying after
 * connection loss until it succeeds, the node is gone, or the session is.
 * If `first` is not NULL, it is completed (ZOK) with the first outcome:
 * success, gone, or "handed to the background" -- then unref'd. */
void zkc__bg_delete(zkc_session *s, const char *path, unsigned gen, zkc__call *first);

/* Watch notifications that woke a waiter of any lock in this process
 * (tests use it to show there is no herd). */
unsigned long zkc__lock_watch_wakeups(void);
void zkc__lock_count_wakeup(void);

#endif
