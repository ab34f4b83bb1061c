/* Private helpers shared by the lock recipes (lock.c, rwlock.c,
 * semaphore.c, fence.c): the queue-entry kinds, a blocking "send async,
 * wait for the reply" call object, the background delete that survives
 * connection loss, and counters the tests read. */
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

/* ---- blocking call: one object shared by the waiting caller and the
 * completion (refcounted, so a caller that gives up at its deadline leaves
 * the completion something valid to write into). */
typedef struct zkc__call {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs;
    int done;
    int rc; /* ZooKeeper return code of the reply */
    struct String_vector children;
    struct Stat stat;
    void *extra; /* freed with extra_free(extra) at the last unref */
    void (*extra_free)(void *extra);
} zkc__call;

zkc__call *zkc__call_new(void);
void zkc__call_ref(zkc__call *c);
void zkc__call_unref(zkc__call *c);
/* Mark done with ZooKeeper code rc and wake the waiter. */
void zkc__call_complete(zkc__call *c, int rc);
/* Wait until done or timeout_ms (-1 = forever). 0 or ZKC_ETIMEDOUT. */
int zkc__call_wait(zkc__call *c, int timeout_ms);
/* Completion functions for zoo_a* with a zkc__call (holding one ref) as
 * data: they fill children / stat, complete and unref. */
void zkc__call_strings_done(int rc, const struct String_vector *v, const void *data);
void zkc__call_stat_done(int rc, const struct Stat *st, const void *data);
void zkc__call_void_done(int rc, const void *data);

/* Delete `path` (a node of session generation `gen`), retrying after
 * connection loss until it succeeds, the node is gone, or the session is.
 * If `first` is not NULL, it is completed (ZOK) with the first outcome:
 * success, gone, or "handed to the background" -- then unref'd. */
void zkc__bg_delete(zkc_session *s, const char *path, unsigned gen, zkc__call *first);

/* Milliseconds left until `deadline_ms` on zkc__now_ms() (-1 = forever). */
int zkc__remaining(int64_t deadline_ms);

/* Watch notifications that woke a waiter of any lock in this process
 * (tests use it to show there is no herd). */
unsigned long zkc__lock_watch_wakeups(void);
void zkc__lock_count_wakeup(void);

#endif
