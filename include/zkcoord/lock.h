/*
 * Fair distributed locks: mutex, read/write lock, counting semaphore.
 *
 * Layout in ZooKeeper (compatible with Apache Curator on the same path):
 *  - mutex:      <path>/_c_<uuid>-lock-<seq>       (InterProcessMutex)
 *  - read/write: <path>/_c_<uuid>-__READ__<seq>,
 *                <path>/_c_<uuid>-__WRIT__<seq>    (InterProcessReadWriteLock)
 *  - semaphore:  <path>/locks/_c_<uuid>-lock-<seq> (an internal mutex) and
 *                <path>/leases/_c_<uuid>-lease-<seq> (InterProcessSemaphoreV2)
 * All nodes are ephemeral sequential, written with a protected create, and
 * hold the owner id (UTF-8) as data. Waiters queue in sequence order and
 * each watches only the node it queues behind: one release wakes one waiter
 * (readers behind a writer all wake when it leaves: that is the recipe).
 * The lock's node is made a container (as Curator does), so the server
 * removes it once nobody holds or waits, and its sequence counter restarts.
 *
 * Order and eligibility (one rule for holders, waiters, zkc_lock_inspect
 * and the CLI): a node that is not ephemeral (ephemeralOwner 0, e.g. planted
 * by a foreign client) never holds and nobody waits behind it; inspection
 * reports it as foreign. Sequence numbers are compared as 32-bit serial
 * numbers (RFC 1982). Until a lock path's counter (its cversion) reaches
 * 2^31 this is exactly Curator's order (string compare of the suffix), so
 * zkcoord and Curator clients share a lock safely. Past 2^31 the server
 * prints negative numbers: our order stays first-come-first-served among
 * zkcoord clients (while the live nodes span fewer than 2^31 creations),
 * whereas Curator's puts new negative nodes ahead of an older holder and is
 * unsafe even among Curator clients; a path shared with Curator clients is
 * therefore no safer or less safe with us than without us, and must not be
 * used past the wrap. The library logs a warning, and zkc_lock_info
 * reports near_wrap, when a counter is within 2^24 of the wrap: let the
 * path empty (the container then goes and the counter starts at 0).
 *
 * Fencing token: every grant returns the czxid of the granting node. It is
 * strictly increasing across successive holders of one mutex (or write lock),
 * so a storage system outside ZooKeeper can reject writes of a stale holder.
 * zkc_lock_fenced_multi() does the same for writes into ZooKeeper.
 *
 * Connection states: while a lock is held, SUSPENDED means the holder can no
 * longer be sure it holds it (another client may get it if the session
 * expires meanwhile); RECONNECTED means the same session came back and the
 * lock node was verified to still be ours; LOST means the lock is gone. These
 * reach the holder through the handle's event callback (dispatcher thread).
 *
 * Reentrancy is per handle: a handle that holds the lock may acquire it again
 * (a count); it is released when the count returns to zero. A handle is meant
 * for one logical owner; two threads sharing one handle share the hold.
 */
#ifndef ZKCOORD_LOCK_H
#define ZKCOORD_LOCK_H

#include "zkcoord/zkcoord.h"
#include "zkcoord/fence.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ handles */

typedef struct zkc_lock zkc_lock;
typedef struct zkc_rwlock zkc_rwlock;
typedef struct zkc_semaphore zkc_semaphore;

/* What a holder hears about a lock it holds. */
typedef enum zkc_lock_event {
    ZKC_LOCK_SUSPENDED = 1,   /* connection lost while held: can no longer be sure */
    ZKC_LOCK_RECONNECTED = 2, /* same session back, node verified ours: held for sure again */
    ZKC_LOCK_LOST = 3,        /* the lock is gone (session lost or node deleted) */
} zkc_lock_event;

/* "suspended", "reconnected", "lost", or "?". Static storage. */
ZKC_EXTERN const char *zkc_lock_event_name(zkc_lock_event ev);

/* Event callback of a lock handle (mutex, or one side of a read/write lock).
 * `token` is the fencing token of the hold the event is about. Runs on the
 * session's dispatcher thread; never after zkc_lock_free() / zkc_rwlock_free()
 * returned. */
typedef void (*zkc_lock_event_fn)(zkc_lock *lock, zkc_lock_event ev, int64_t token,
                                  void *user_data);

typedef struct zkc_lock_opts {
    const char *owner_id;       /* data of our nodes; NULL = "<hostname>:<pid>" */
    zkc_lock_event_fn on_event; /* may be NULL */
    void *user_data;            /* passed to on_event */
} zkc_lock_opts;

/* Fill `o` with defaults (all NULL). */
ZKC_EXTERN void zkc_lock_opts_init(zkc_lock_opts *o);

/* ------------------------------------------------------------- mutex */

/* A fair (FIFO), reentrant mutex on `path` (created if missing, persistent).
 * `o` may be NULL (defaults); it is copied. Creating a handle sends nothing.
 * Errors: ZKC_EINVAL (NULL out/s, bad path), ZKC_ENOMEM, ZKC_ESYS. */
ZKC_EXTERN int zkc_lock_new(zkc_lock **out, zkc_session *s, const char *path,
                            const zkc_lock_opts *o);

/* Acquire, waiting up to `timeout_ms` (-1 = forever). On success, `*token`
 * (may be NULL) receives the fencing token. If this handle already holds the
 * lock, the hold count goes up and the call returns at once.
 *
 * timeout_ms == 0 is a try: it still costs one round trip (create our node
 * and list the queue, pipelined) and, when someone else holds or waits, a
 * second request to delete our node again (3 requests in all). It waits up
 * to the session timeout for those answers.
 *
 * Errors: ZKC_ETIMEDOUT (not granted in time; our queue entry is deleted,
 * also one whose create reply had not arrived yet), ZKC_EBUSY (try: someone
 * else is ahead; or an acquire is already pending on this handle),
 * ZKC_ECANCELED (zkc_lock_cancel() was called), ZKC_ECLOSED (session
 * closing), ZKC_ENOAUTH, ZKC_EINVAL, ZKC_ENOMEM. Connection loss and session
 * loss while waiting are not errors: the acquire resumes (after LOST, with a
 * new queue entry in the new session) within the deadline.
 * Blocks the calling thread; may be called from a callback. */
ZKC_EXTERN int zkc_lock_acquire(zkc_lock *lock, int timeout_ms, int64_t *token);

/* Result of an asynchronous acquire: rc is 0 (granted; token valid) or one of
 * the errors of zkc_lock_acquire() (never ETIMEDOUT or EBUSY), or
 * ZKC_ESESSIONLOST: granted, but the hold ended (LOST, already delivered)
 * before this callback ran. Runs on the dispatcher's ordinary lane;
 * SUSPENDED and LOST events run on its safety lane (see zkcoord.h). */
typedef void (*zkc_lock_acquire_fn)(zkc_lock *lock, int rc, int64_t token, void *user_data);

/* Start acquiring without blocking; `cb` runs exactly once with the result,
 * unless the handle is freed first (then it never runs). If the handle
 * already holds the lock, the count goes up and `cb` is queued at once with
 * rc 0. Errors (cb never runs): ZKC_EINVAL, ZKC_EBUSY (an acquire is already
 * pending), ZKC_ENOMEM, ZKC_ECLOSED. */
ZKC_EXTERN int zkc_lock_acquire_async(zkc_lock *lock, zkc_lock_acquire_fn cb, void *user_data);

/* Cancel a pending acquire (sync or async): its node is deleted (or, if its
 * create is still in flight, deleted when the reply comes); the waiter gets
 * ZKC_ECANCELED. Returns 0, or ZKC_ENONODE when nothing was pending. */
ZKC_EXTERN int zkc_lock_cancel(zkc_lock *lock);

/* Release one hold. At count zero the node is deleted and the call waits for
 * the server's answer (at most the session timeout). If the delete meets a
 * connection loss, it is retried in the background after reconnecting until it
 * succeeds or the session ends (cf. CURATOR-678); the call still returns 0.
 * After the lock was LOST, release returns 0 quietly and leaves nothing.
 * Errors: ZKC_ENOTHELD (not held by this handle). */
ZKC_EXTERN int zkc_lock_release(zkc_lock *lock);

/* 1 while this handle holds the lock (and has not heard it was lost), else 0. */
ZKC_EXTERN int zkc_lock_is_held(zkc_lock *lock);

/* Fencing token of the current (or last lost) hold, 0 when none. */
ZKC_EXTERN int64_t zkc_lock_token(zkc_lock *lock);

/* Full path of our node while held, copied into buf (NUL-terminated).
 * Errors: ZKC_ENOTHELD (no node), ZKC_EINVAL (buf too small or NULL). */
ZKC_EXTERN int zkc_lock_node_path(zkc_lock *lock, char *buf, size_t len);

/* zkc_fenced_multi() guarded by this handle's lock node: commits `ops` only
 * while the lock is still ours on the server. Sent even when the handle has
 * heard LOST (the server decides). Errors: as zkc_fenced_multi(); ZKC_ENOTHELD
 * also when this handle holds no node at all. */
ZKC_EXTERN int zkc_lock_fenced_multi(zkc_lock *lock, const zkc_op *ops, int nops, int timeout_ms);

/* Free the handle: cancels a pending acquire (its callback does not run),
 * releases a hold whatever the count (the delete proceeds in the background),
 * and waits until no callback of this handle is running (unless called from
 * one). A zkc_lock_acquire() blocked on another thread returns
 * ZKC_ECANCELED; the handle must not be used after that. Must be called before zkc_session_close().
 * NULL is a no-op. Not for the two sides of a read/write lock: use zkc_rwlock_free(). */
ZKC_EXTERN void zkc_lock_free(zkc_lock *lock);

/* ---------------------------------------------------- read/write lock */

/* A fair read/write lock on `path`, Curator's InterProcessReadWriteLock
 * layout. Readers share; a reader waits only on writers queued before it;
 * a writer waits for everything queued before it. A handle holding the write
 * side may take the read side too (downgrade: acquire read, release write).
 * The two sides are zkc_lock handles owned by the rwlock: use every zkc_lock_*
 * function on them except zkc_lock_free(). `o` applies to both sides.
 * Errors: as zkc_lock_new(). */
ZKC_EXTERN int zkc_rwlock_new(zkc_rwlock **out, zkc_session *s, const char *path,
                              const zkc_lock_opts *o);
/* The read side (borrowed; lives as long as rw). */
ZKC_EXTERN zkc_lock *zkc_rwlock_read(zkc_rwlock *rw);
/* The write side (borrowed; lives as long as rw). */
ZKC_EXTERN zkc_lock *zkc_rwlock_write(zkc_rwlock *rw);
/* Free both sides as zkc_lock_free() would. NULL is a no-op. */
ZKC_EXTERN void zkc_rwlock_free(zkc_rwlock *rw);

/* ---------------------------------------------------------- semaphore */

/* Event callback of a semaphore holding a lease (dispatcher thread). */
typedef void (*zkc_semaphore_event_fn)(zkc_semaphore *sem, zkc_lock_event ev, int64_t token,
                                       void *user_data);

typedef struct zkc_semaphore_opts {
    const char *owner_id;            /* data of our nodes; NULL = "<hostname>:<pid>" */
    zkc_semaphore_event_fn on_event; /* may be NULL */
    void *user_data;
} zkc_semaphore_opts;

/* Fill `o` with defaults (all NULL). */
ZKC_EXTERN void zkc_semaphore_opts_init(zkc_semaphore_opts *o);

/* A counting semaphore on `path` with `max_leases` (>= 1) leases, Curator's
 * InterProcessSemaphoreV2 layout: at most max_leases handles hold a lease at
 * once, provided every participant uses the same max_leases. One handle
 * holds at most one lease. `o` may be NULL. Errors: as zkc_lock_new(). */
ZKC_EXTERN int zkc_semaphore_new(zkc_semaphore **out, zkc_session *s, const char *path,
                                 int max_leases, const zkc_semaphore_opts *o);

/* Take a lease, waiting up to timeout_ms (-1 = forever; 0 = one attempt,
 * which still waits for the answers, at most the session timeout). Waiters
 * are served in order. `*token` (may be NULL) receives the czxid of our lease
 * node. Connection loss and session loss while waiting are not errors: the
 * acquire waits for the connection, and after a lost session queues again
 * on the new one (its lease died with the old), within the deadline.
 * Errors: ZKC_ETIMEDOUT (nothing left behind), ZKC_EBUSY (this handle
 * holds a lease or is acquiring), ZKC_ECANCELED (zkc_semaphore_free() was
 * called meanwhile), ZKC_ECLOSED, ZKC_ENOAUTH, ZKC_ENOMEM.
 * Blocks; not for a ZooKeeper completion thread. */
ZKC_EXTERN int zkc_semaphore_acquire(zkc_semaphore *sem, int timeout_ms, int64_t *token);

/* Return the lease (delete as zkc_lock_release() does, with background
 * retry). 0 quietly after LOST. Errors: ZKC_ENOTHELD. */
ZKC_EXTERN int zkc_semaphore_release(zkc_semaphore *sem);

/* 1 while this handle holds a lease (and has not heard it was lost). */
ZKC_EXTERN int zkc_semaphore_is_held(zkc_semaphore *sem);

/* Free: returns a held lease, waits for running callbacks (unless called from
 * one). A zkc_semaphore_acquire() blocked on another thread returns
 * ZKC_ECANCELED (within about half a second) before this returns, leaving
 * nothing behind; the handle must not be used after that. NULL is a no-op. */
ZKC_EXTERN void zkc_semaphore_free(zkc_semaphore *sem);

/* --------------------------------------------------------- inspection */

typedef enum zkc_lock_entry_kind {
    ZKC_LOCK_ENTRY_MUTEX = 1, /* "lock-" */
    ZKC_LOCK_ENTRY_READ = 2,  /* "__READ__" */
    ZKC_LOCK_ENTRY_WRITE = 3, /* "__WRIT__" */
    ZKC_LOCK_ENTRY_LEASE = 4, /* "lease-" (a semaphore's leases folder) */
} zkc_lock_entry_kind;

typedef struct zkc_lock_entry {
    char *name;         /* node name (not the full path) */
    char *owner_id;     /* node data, NUL-terminated (at most 1023 bytes kept) */
    int64_t token;      /* czxid */
    int64_t session_id; /* ephemeralOwner */
    int32_t seq;        /* sequence number */
    zkc_lock_entry_kind kind;
    int holds; /* 1 if this entry holds (for leases: every lease that is not foreign) */
    /* 1: not an ephemeral node (ephemeralOwner 0), e.g. a persistent node a
     * foreign client planted in the line. It never holds, and every
     * participant skips it as if it were not there. */
    int foreign;
} zkc_lock_entry;

typedef struct zkc_lock_info {
    int count;
    zkc_lock_entry *entries; /* queue order: holders first */
    /* The parent's cversion: the sequence counter the next node gets. */
    int32_t cversion;
    /* 1 when cversion is within 2^24 of the 2^31 wrap, or past it (see the
     * note on sequence numbers at the top of this file). */
    int near_wrap;
} zkc_lock_info;

/* Read the queue of the lock at `path` (mutex or read/write lock; for a
 * semaphore pass "<path>/leases"): the lock nodes in the order every
 * participant uses (other children are skipped), with owner, token, session
 * and whether each is foreign (never a holder). Blocks up to
 * timeout_ms (-1 = forever). On success *out is new; free it with
 * zkc_lock_info_free(). Errors: ZKC_ENONODE (no such path), ZKC_ETIMEDOUT,
 * ZKC_ECONNLOSS, ZKC_EINVAL, ZKC_ENOMEM, ZKC_ENOAUTH. */
ZKC_EXTERN int zkc_lock_inspect(zkc_session *s, const char *path, int timeout_ms,
                                zkc_lock_info **out);

/* Free a result of zkc_lock_inspect(). NULL is a no-op. */
ZKC_EXTERN void zkc_lock_info_free(zkc_lock_info *info);

#ifdef __cplusplus
}
#endif

#endif /* ZKCOORD_LOCK_H */
