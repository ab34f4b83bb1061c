/* Library-internal declarations shared between files of libzkcoord.
 * Names are zkc__*: visible to the convenience library (and so to our tests,
 * agent and CLI), hidden from libzkcoord.so. */
#ifndef ZKC_INTERNAL_H
#define ZKC_INTERNAL_H

#define THREADED 1 /* declares the synchronous API of libzookeeper_mt */
#include <zookeeper/zookeeper.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <stdint.h>

#include "zkcoord/zkcoord.h"

/* ZooKeeper return code -> ZKC_* code. */
int zkc__err_from_zk(int zrc);
/* 1 when a request ended because its connection dropped under it, so it may
 * or may not have been applied (retry once connected; a create recovers by
 * its guid). Not only ZCONNECTIONLOSS and ZOPERATIONTIMEOUT: the C client
 * ends every request still pending on a connection it drops with the code of
 * the socket error that dropped it (zookeeper.c: handle_socket_error_msg ->
 * cleanup_bufs), e.g. ZRUNTIMEINCONSISTENCY for a reply out of order and
 * ZSSLCONNECTIONERROR. zkc__err_from_zk() maps all of them to ECONNLOSS. */
int zkc__zk_connloss(int zrc);
/* The server's UNKNOWNSESSION (KeeperException.Code, -12): its reply to a
 * request of a session it has already removed (SessionTrackerImpl
 * checkSession). The C client has no name for it and passes it on as a
 * request's result, e.g. a create sent just as the session expired. */
#define ZKC__ZUNKNOWNSESSION (-12)
/* 1 when the request's session is gone: ZSESSIONEXPIRED or UNKNOWNSESSION.
 * zkc__err_from_zk() maps both to ESESSIONLOST. */
int zkc__zk_expired(int zrc);
/* zoo_aget_children2(), in a frame of its own. The 3.8 C client never frees
 * the completion entry of a request still pending at zookeeper_close() (see
 * tests/lsan.supp), and its zoo_aget_children2 tail-calls a static helper,
 * so no frame of the leak's stack names it; this one does, and allocates
 * nothing of ours. Same arguments and result. */
int zkc__zk_aget_children2(zhandle_t *zh, const char *path, int watch,
                           strings_stat_completion_t done, const void *data);

/* Monotonic clock in milliseconds. */
int64_t zkc__now_ms(void);
/* Absolute CLOCK_MONOTONIC deadline `ms` from now for pthread_cond_timedwait
 * on a condition created by zkc__cond_init(). */
void zkc__deadline(struct timespec *ts, int ms);
/* A condition variable that waits on CLOCK_MONOTONIC. */
int zkc__cond_init(pthread_cond_t *c);

/* ---- logging (log.c) */
typedef struct zkc__logger {
    zkc_log_fn fn;
    void *user_data;
    zkc_log_level level;
    zkc_log_level zk_level;
} zkc__logger;

void zkc__vlog(const zkc__logger *lg, zkc_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void zkc__logf(const zkc__logger *lg, zkc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Route one line of the ZooKeeper client's log through `lg`. */
void zkc__log_zk_line(const zkc__logger *lg, const char *line);

#define zkc__log(s, lvl, ...) zkc__logf(zkc__session_logger(s), (lvl), __VA_ARGS__)

/* ---- session internals (session.c), for recipes */

/* User callbacks run on two dispatcher threads per session ("lanes"):
 *
 *  - the ordinary lane (zkc__dispatch): everything that may queue up or
 *    block: membership batches, ELECTED / LEADER_CHANGED, lock ACQUIRED,
 *    recipe RECONNECTED notes, ...
 *  - the safety lane (zkc__dispatch_safety): events after which a user must
 *    stop acting as leader / holder: election DEMOTED, lock SUSPENDED and
 *    LOST, and every connection-state listener call (CONNECTED, SUSPENDED,
 *    RECONNECTED, LOST: all of them, so a listener hears states in order).
 *    Nothing else goes there, so what is queued is short; it reaches its
 *    callback within milliseconds of being posted whatever the ordinary
 *    lane is doing (issue 9, bug 8: < 100 ms with the ordinary lane blocked
 *    and 3,000 callbacks queued, test_session.c "safety lane").
 *
 * Ordering: each lane runs its callbacks one at a time, in the order they
 * were posted. There is NO order between the lanes: a safety event may run
 * before (or while) an ordinary callback posted earlier runs. A recipe whose
 * ordinary callback must not be seen after its safety event (ACQUIRED after
 * LOST, ELECTED after DEMOTED) checks, when that callback runs, that it is
 * still current (its generation / epoch / state under its own lock), and
 * drops it otherwise. zkc__dispatch_barrier() waits for both lanes.
 *
 * Both post functions run fn(arg) later on their lane, after everything
 * posted before on the same lane, and return 0, ZKC_ENOMEM, or ZKC_ECLOSED
 * once the session is closing (fn is then not run). At zkc_session_close
 * both lanes run what was queued before stopping (the ordinary lane first,
 * then the safety lane). */
int zkc__dispatch(zkc_session *s, void (*fn)(void *arg), void *arg);
int zkc__dispatch_safety(zkc_session *s, void (*fn)(void *arg), void *arg);
/* True when called on either lane of this session. */
int zkc__on_dispatcher(zkc_session *s);
/* Wait until every callback posted to either lane before this call has run:
 * after it, a recipe being freed knows none of its callbacks is running. On
 * a lane thread it does not wait for that lane (it would wait for itself),
 * only for the other one -- and only until that lane's current callback is
 * itself waiting in a barrier (zkc__dispatch_barrier or a listener
 * removal): both lanes freeing a handle at once would otherwise wait for
 * each other forever. In that case what is queued behind the other lane's
 * blocked callback runs after the barrier returned, so every recipe
 * callback holds a reference to its recipe and checks, under the recipe's
 * lock when it runs, that the recipe was not freed (freed / closed /
 * closing) before it calls the user; the flag is set before the barrier.
 * That was already needed for the caller's own lane. The blocked callback
 * itself resumes after the barrier returned: if it belongs to the recipe
 * being freed (two callbacks freeing each other's handles), the user code
 * after its free call still runs. From a thread that is not a lane the
 * barrier waits for both lanes fully, as before. */
void zkc__dispatch_barrier(zkc_session *s);

/* Open recipe handles of a session: every recipe constructor calls attach
 * once it succeeded, its free/close calls detach as the last thing it does
 * with the session. zkc_session_close() returns ZKC_EBUSY while the count
 * is not zero (issue 9, bug 9). Any thread. */
void zkc__session_attach(zkc_session *s);
void zkc__session_detach(zkc_session *s);

const zkc__logger *zkc__session_logger(zkc_session *s);

/* The current ZooKeeper handle, locked so it cannot be closed underneath the
 * caller. Between lock and unlock, call only non-blocking zoo_a* functions.
 * Returns NULL (and keeps nothing locked) when there is no live handle: the
 * session is between ZooKeeper sessions or closing. `*gen` (may be NULL)
 * receives the session generation the handle belongs to. From the instant
 * the session is LOST (expired or local timer) the old handle is never
 * returned again: LOST, the generation change and taking the handle away
 * are one atomic step. */
zhandle_t *zkc__zh_lock(zkc_session *s, unsigned *gen);
void zkc__zh_unlock(zkc_session *s);

/* A request in flight on one ZooKeeper handle whose completion the 3.8
 * client may never run: zookeeper_close() drops most completions still
 * pending (see close_handle() in session.c). Embed one in the request's
 * context. Register it with zkc__pending_add() while holding the handle
 * (between zkc__zh_lock and the zoo_a* call; `gen` from zkc__zh_lock), and
 * call zkc__pending_done() first thing in the completion -- or when the
 * zoo_a* call failed, so no completion will come. If the handle is closed
 * with the request still registered, the session calls dropped(pd) once,
 * after zookeeper_close() returned (so the completion can no longer run), on
 * the thread that closed the handle (the manager, or zkc_session_close's
 * caller), with no session lock held: treat it like ZCLOSING. So every
 * registered request completes exactly once. */
typedef struct zkc__pending {
    struct zkc__pending *prev, *next;
    unsigned gen;
    void (*dropped)(struct zkc__pending *pd);
} zkc__pending;
void zkc__pending_add(zkc_session *s, zkc__pending *pd, unsigned gen,
                      void (*dropped)(zkc__pending *pd));
void zkc__pending_done(zkc_session *s, zkc__pending *pd);

/* Test hooks (tests only; the library never calls them, so they cost
 * nothing in production). pending_count: requests registered now.
 * expire_now: act as if the local session timer ran out now -- the
 * manager announces LOST and closes the handle, connected or not, as it
 * does when a disconnection outlasts the session timeout. */
int zkc__test_pending_count(zkc_session *s);
void zkc__test_expire_now(zkc_session *s);
/* Hook pointers, NULL but in tests (one load where they sit).
 * test_grant_sid: the session id lock.c's grant() compares the node's
 * owner with (given the real one). test_sem_counted: called after the
 * semaphore counted its lease among the first `max`, before it checks the
 * generation and grants. */
extern int64_t (*zkc__test_grant_sid)(int64_t sid);
extern void (*zkc__test_sem_counted)(zkc_session *s);

/* ACL for nodes the library creates. */
const struct ACL_vector *zkc__acl(zkc_session *s);

/* Internal state hooks: called on the session manager thread, in order,
 * after listeners were queued for the same change. They must not block:
 * flip state, issue async requests, queue user callbacks. `gen` is the
 * session generation the state belongs to: for LOST, the generation that
 * was lost (zkc_session_generation() already returns the next one, whose
 * handle is not open yet; its CONNECTED comes with that next gen). */
typedef void (*zkc__state_hook)(void *arg, zkc_conn_state state, unsigned gen);
int zkc__add_hook(zkc_session *s, zkc__state_hook fn, void *arg);
/* After it returns, the hook is not running and will not run again. */
void zkc__remove_hook(zkc_session *s, zkc__state_hook fn, void *arg);

/* One-shot: run fn(arg, state, gen) once on the manager thread at the next
 * CONNECTED, RECONNECTED or LOST -- or soon, if connected now. At session
 * close it runs with ZKC_CONN_NONE (give up, free). For retrying a request
 * after connection loss without spinning. ZKC_ECLOSED when closing (fn is
 * not run), ZKC_ENOMEM. */
int zkc__when_connected(zkc_session *s, zkc__state_hook fn, void *arg);

/* Node watches are per request (zkc__qwatch in queue.h, or the children
 * cache's own context): there is no session-wide path router, and no
 * request may set a watch on the session's default watcher (watch=1), which
 * drops node events. */

/* mkdir -p of `path`'s persistent nodes (path itself included), tolerating
 * concurrent creators. Asynchronous: done(arg, rc) runs on the completion
 * thread, or at once on the calling thread when the request could not be
 * sent. rc is a ZKC_* code. */
typedef void (*zkc__done_fn)(void *arg, int rc);
void zkc__mkdirs(zkc_session *s, const char *path, zkc__done_fn done, void *arg);
/* Blocking mkdir -p; not for the completion thread. */
int zkc__mkdirs_sync(zkc_session *s, const char *path, int timeout_ms);

/* ---- request helpers (call.c) */

/* Milliseconds left until `deadline_ms` on zkc__now_ms() (-1 = forever). */
int zkc__remaining(int64_t deadline_ms);

/* A blocking call: "send one async request, wait for its one reply". One
 * object shared by the waiting caller and the completion (refcounted, so a
 * caller that gives up at its deadline leaves the completion something
 * valid to write into). The only sync-call helper of the library: recipes,
 * the public read API and the CLI's needs all go through it. */
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
/* Mark done with ZooKeeper code rc and wake the waiter (first call wins). */
void zkc__call_complete(zkc__call *c, int rc);
/* Wait until done or timeout_ms (-1 = forever). 0 or ZKC_ETIMEDOUT. */
int zkc__call_wait(zkc__call *c, int timeout_ms);
/* Completion functions for zoo_a* with a zkc__call (holding one ref) as
 * data: they fill children / stat, complete and unref. */
void zkc__call_strings_done(int rc, const struct String_vector *v, const void *data);
void zkc__call_stat_done(int rc, const struct Stat *st, const void *data);
void zkc__call_void_done(int rc, const void *data);

/* ---- fenced multi in parts (fence.c), for a recipe that must choose the
 * ZooKeeper handle itself and send under its own lock (work.c: only on the
 * session that made a claim, ordered before the claim's delete).
 * zkc__fmulti_new: build it (check that guard_path exists, then ops;
 * everything copied or serialised later, so the arguments are borrowed for
 * the call): 0, ZKC_EINVAL, ZKC_ENOMEM.
 * zkc__fmulti_send: send it on `zh`, locked by the caller (zkc__zh_lock);
 * non-blocking. 0, or nothing was sent: ZKC_ECONNLOSS (the handle is
 * unrecoverable: expired or auth failed) or the client's refusal.
 * zkc__fmulti_wait: after a successful send, wait up to timeout_ms (-1 =
 * forever) for the answer and free; the codes of zkc_fenced_multi_ex().
 * zkc__fmulti_abandon: free one that was not sent, or not waited for. */
typedef struct zkc__fmulti zkc__fmulti;
int zkc__fmulti_new(zkc__fmulti **out, zkc_session *s, const char *guard_path, const zkc_op *ops,
                    int nops);
int zkc__fmulti_send(zkc__fmulti *f, zhandle_t *zh);
int zkc__fmulti_wait(zkc__fmulti *f, int timeout_ms, int *failed_index);
void zkc__fmulti_abandon(zkc__fmulti *f);

/* "Retry once connected": one slot embedded in a recipe object, so a burst
 * of failures arms one zkc__when_connected() and nothing spins while the
 * connection is down. The object's own lock guards the slot.
 * zkc__retry_arm: when not armed, arms it, takes ref(arg) for the pending
 * run and returns 1; returns 0 when already armed, or when the session is
 * closing (then nothing is pending and the reference is dropped again with
 * unref(arg): the caller must hold a reference of its own). fn must call
 * zkc__retry_fired() under the object's lock before anything else, and drop
 * the reference taken here when done. */
typedef struct zkc__retry {
    int armed;
} zkc__retry;
int zkc__retry_arm(zkc__retry *r, zkc_session *s, zkc__state_hook fn, void *arg,
                   void (*ref)(void *), void (*unref)(void *));
void zkc__retry_fired(zkc__retry *r);

#endif
