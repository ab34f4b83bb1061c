/* The queue of ephemeral sequential nodes shared by every recipe (mutex,
 * read/write lock, semaphore, election): the entry kinds, the one order and
 * eligibility rule, the background delete that survives connection loss,
 * container parents, the sequence-wrap warning, and counters the tests read.
 *
 * The order (one rule for participants, observers, zkc_election_leader,
 * zkc_lock_inspect and so the CLI): entries of the queue's kinds sorted by
 * their sequence number as a 32-bit serial number (zkc__sort_by_seq, RFC
 * 1982). Before the parent's counter reaches 2^31 this is exactly Curator's
 * order (string compare of the zero-padded suffix); past the wrap Curator's
 * order puts new, negative numbers ahead of the older holder and is unsafe by
 * itself, ours stays FIFO among zkcoord participants. Parents are containers
 * so the counter restarts when the line empties, and a parent whose cversion
 * is within 2^24 of the wrap is reported (log, and zkc_lock_info for the CLI).
 *
 * Eligibility: only an ephemeral node (ephemeralOwner != 0, so owned by a
 * live session) can hold or lead. A persistent node planted in the line by a
 * foreign client is "foreign": once a read of it shows ephemeralOwner == 0 it
 * is skipped by everyone, and inspection reports it as foreign. */
#ifndef ZKC_QUEUE_H
#define ZKC_QUEUE_H

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

/* Kinds of entries by node name; -1 for a child that is none of them. */
enum {
    ZKC__Q_MUTEX = ZKC__LQ_MUTEX, /* "lock-" */
    ZKC__Q_READ = ZKC__LQ_READ,   /* "__READ__" */
    ZKC__Q_WRITE = ZKC__LQ_WRITE, /* "__WRIT__" */
    ZKC__Q_LEASE = 3,             /* "lease-" */
    ZKC__Q_LATCH = 4,             /* "latch-" (Curator's LeaderLatch) */
};
#define ZKC__Q_BIT(k) (1u << (k))
int zkc__q_kind(const char *name);

/* Names known to be foreign (read once with ephemeralOwner == 0). The owner
 * object's lock guards it. */
typedef struct zkc__q_foreign {
    char **names;
    int n;
} zkc__q_foreign;
/* 0, or ZKC_ENOMEM. Adding a name already there is a no-op. */
int zkc__q_foreign_add(zkc__q_foreign *f, const char *name);
int zkc__q_foreign_has(const zkc__q_foreign *f, const char *name);
void zkc__q_foreign_clear(zkc__q_foreign *f);

/* May the node with this Stat hold or lead? (ephemeral of a live session) */
int zkc__q_eligible(const struct Stat *st);

/* The line: the names of `v` whose kind is in `kinds` (ZKC__Q_BIT mask),
 * less the names in `f` (may be NULL), in the one order. Returns the count,
 * or -1 (ENOMEM); *out is a new array of names borrowed from `v`. */
int zkc__q_line(const struct String_vector *v, unsigned kinds, const zkc__q_foreign *f,
                char ***out);

/* Within 2^24 creations of the parent's sequence counter (its cversion)
 * reaching 2^31, or past it. */
#define ZKC__Q_WRAP_MARGIN (1 << 24)
int zkc__q_near_wrap(int32_t cversion);

/* Make `path` exist as a container node (Curator's
 * creatingParentContainersIfNeeded: the server removes it once its last
 * child is gone, which restarts its sequence counter); its parents are made
 * persistent with zkc__mkdirs. A path that exists already is left as it is.
 * done(arg, rc) runs once (completion thread, or the calling thread when
 * nothing could be sent); rc is 0 or a ZKC_* code. */
void zkc__q_container(zkc_session *s, const char *path, zkc__done_fn done, void *arg);

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

/* ---- per-request watches (issue 9, item 4)
 *
 * A watch set by one request (zoo_awget, zoo_awexists, zoo_awget_children)
 * with a context of its own (the session-wide path router this replaced is
 * gone): the client calls zkc__qwatch_watcher with it, so an event
 * reaches its owner in O(1) and no lock order with a router exists.
 *
 * The client calls a per-request watcher for the node event that fires it
 * (then forgets it), and for session events until then; it forgets it
 * without a call when the reply set no watch or its handle is closed. So
 * fn(w, type) runs exactly once per watch: with the ZOO_*_EVENT type of the
 * node event that fired it (completion thread), or with 0 when it ended
 * unfired -- the reply set none (completion thread), the request could not
 * be sent (sender's thread), or its handle was closed (the closing thread,
 * after zookeeper_close returned, no session lock held). `owner`, `tag`,
 * `kind` and `path` are the owner's, read-only once sent; the owner keeps
 * itself alive for fn (take a reference before zkc__qwatch_new, drop it in
 * fn). */
typedef struct zkc__qwatch zkc__qwatch;
typedef void (*zkc__qwatch_fn)(zkc__qwatch *w, int type);
struct zkc__qwatch {
    int refs;  /* atomic: the request's and the watch's */
    int ended; /* atomic: fn has run */
    zkc_session *s;
    zkc__qwatch_fn fn;
    void *owner;
    unsigned tag[2];
    int kind;
    char *path;
    zkc__pending pend; /* registered while the client may call it */
};
/* NULL when out of memory (fn is not called). */
zkc__qwatch *zkc__qwatch_new(zkc_session *s, const char *path, zkc__qwatch_fn fn, void *owner);
/* zh held (gen from zkc__zh_lock): right before the zoo_aw* call. */
void zkc__qwatch_sent(zkc__qwatch *w, unsigned gen);
/* The request is over: its reply came (set: it left a watch -- ZOK, or
 * ZNONODE for exists), or the zoo_aw* call failed (set = 0). Drops the
 * request's reference; w may be gone after it. */
void zkc__qwatch_reply(zkc__qwatch *w, int set);
/* Instead of zkc__qwatch_reply, under the owner's lock: the zoo_aw* call
 * failed, so no watch was set; w is freed and fn is NOT called (the owner
 * undoes, itself, what it did for w). */
void zkc__qwatch_unsent(zkc__qwatch *w);
/* The watcher to pass to zoo_aw* with w as its context. */
void zkc__qwatch_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx);

#endif /* ZKC_QUEUE_H */
