/*
 * zkcoord — ZooKeeper-coordinated membership, leader election and fair locks.
 *
 * This is the one header users include. It pulls in the split headers for
 * each recipe. Conventions that hold for every function below:
 *
 *  - Functions return 0 or a negative ZKC_E* code (see zkc_strerror()).
 *  - Constructors fill an out-pointer; on failure it is left untouched.
 *  - Strings passed in are borrowed for the duration of the call and copied
 *    if kept. Strings passed to callbacks are borrowed for the duration of
 *    the callback.
 *  - User callbacks run on one of two dispatcher threads ("lanes") of the
 *    session. The safety lane runs connection-state listeners (every state)
 *    and the events after which a program must stop acting as leader or
 *    holder: election DEMOTED, lock SUSPENDED and LOST. The ordinary lane
 *    runs everything else (membership, ELECTED, LEADER_CHANGED, lock
 *    ACQUIRED, ...). Each lane runs its callbacks one at a time, in the
 *    order the library posted them; there is no order between the lanes: a
 *    safety event never waits behind ordinary callbacks, however many are
 *    queued or however long one blocks, and may overtake one posted
 *    earlier.
 *    A callback may call any library function, including blocking ones,
 *    except zkc_session_close() on its own session. Keep safety callbacks
 *    short: a blocking one delays the next safety event, and freeing a
 *    recipe handle from a safety callback waits for the callback running
 *    on the ordinary lane (and the other way round). When callbacks on
 *    both lanes free handles at the same time, neither waits for the other
 *    (no deadlock); the freed handles' callbacks still queued are then
 *    never run, but a callback that is itself freeing a handle finishes
 *    after that free returns.
 */
#ifndef ZKCOORD_ZKCOORD_H
#define ZKCOORD_ZKCOORD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ZKC_BUILDING) && defined(__GNUC__)
#define ZKC_EXTERN __attribute__((visibility("default")))
#else
#define ZKC_EXTERN
#endif

/* ---------------------------------------------------------------- errors */

/* X(name, value, message). One list generates the enum, zkc_strerror() and
 * zkc_err_name(). ZooKeeper's own codes never reach the user: they are
 * translated where the library talks to the client. */
#define ZKC_ERRNO_MAP(X)                                                                           \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(ETIMEDOUT, -3, "deadline passed")                                                            \
    X(EUNREACHABLE, -4, "ZooKeeper unreachable")                                                   \
    X(ECONNLOSS, -5, "connection to ZooKeeper lost")                                               \
    X(ESESSIONLOST, -6, "ZooKeeper session lost (expired)")                                        \
    X(ENONODE, -7, "node does not exist")                                                          \
    X(ENODEEXISTS, -8, "node already exists")                                                      \
    X(ENOTEMPTY, -9, "node has children")                                                          \
    X(EBADVERSION, -10, "version conflict")                                                        \
    X(ENOAUTH, -11, "not authorised")                                                              \
    X(EAUTHFAILED, -12, "authentication failed")                                                   \
    X(ECLOSED, -13, "handle is closed")                                                            \
    X(ECANCELED, -14, "operation canceled")                                                        \
    X(EBADDATA, -15, "malformed data")                                                             \
    X(ENOTHELD, -16, "not held")                                                                   \
    X(EBUSY, -17, "busy")                                                                          \
    X(EDUPLICATE, -18, "duplicate identity")                                                       \
    X(ESYS, -19, "system call failed")                                                             \
    X(EZOOKEEPER, -20, "ZooKeeper error")

typedef enum zkc_err {
    ZKC_OK = 0,
#define ZKC_ERR_ENUM_(name, value, msg) ZKC_##name = (value),
    ZKC_ERRNO_MAP(ZKC_ERR_ENUM_)
#undef ZKC_ERR_ENUM_
} zkc_err;

/* Human text for a ZKC_* code ("deadline passed"). Never NULL; static storage. */
ZKC_EXTERN const char *zkc_strerror(int err);
/* Symbolic name for a ZKC_* code ("ZKC_ETIMEDOUT"). Never NULL; static storage. */
ZKC_EXTERN const char *zkc_err_name(int err);

/* --------------------------------------------------------------- logging */

typedef enum zkc_log_level {
    ZKC_LOG_ERROR = 0,
    ZKC_LOG_WARN = 1,
    ZKC_LOG_INFO = 2,
    ZKC_LOG_DEBUG = 3,
} zkc_log_level;

/* A log sink. `msg` is one line without a trailing newline, borrowed for the
 * call. It may be called from any library thread, concurrently: the sink must
 * be thread-safe. */
typedef void (*zkc_log_fn)(zkc_log_level level, const char *msg, void *user_data);

/* Name of a level ("error", "warn", "info", "debug"). */
ZKC_EXTERN const char *zkc_log_level_name(zkc_log_level level);

/* --------------------------------------------------------------- session */

typedef struct zkc_session zkc_session;

/* Connection states, in Curator's vocabulary.
 *  CONNECTED    connected with a new ZooKeeper session (the first one, or a
 *               fresh one after LOST): nothing ephemeral of ours exists.
 *  SUSPENDED    connection lost; the session may still be alive.
 *  RECONNECTED  the same session is back: our ephemeral nodes may still be
 *               there, recipes verify them.
 *  LOST         the session expired (server said so), or no reconnect
 *               happened within the session timeout (local timer). Everything
 *               ephemeral is gone; the session opens a new ZooKeeper session
 *               by itself and reports CONNECTED when it is up.
 * (Curator reports the new session after LOST as RECONNECTED; zkcoord says
 * CONNECTED so a listener can tell "same session" from "new session".) */
typedef enum zkc_conn_state {
    ZKC_CONN_NONE = 0, /* not yet connected */
    ZKC_CONN_CONNECTED = 1,
    ZKC_CONN_SUSPENDED = 2,
    ZKC_CONN_RECONNECTED = 3,
    ZKC_CONN_LOST = 4,
} zkc_conn_state;

/* "connected", "suspended", "reconnected", "lost", "none". */
ZKC_EXTERN const char *zkc_conn_state_name(zkc_conn_state state);

/* ACLs given to nodes the library creates. */
typedef enum zkc_acl_mode {
    ZKC_ACL_DEFAULT = 0,           /* OPEN without digest auth, CREATOR_WORLD_READ with it */
    ZKC_ACL_OPEN = 1,              /* world:anyone:cdrwa */
    ZKC_ACL_CREATOR_WORLD_READ = 2 /* auth:<creator>:cdrwa + world:anyone:r */
} zkc_acl_mode;

typedef struct zkc_session_opts {
    const char *servers;         /* required: "host:port[,host:port...]" */
    int session_timeout_ms;      /* requested timeout; 0 = 10000. The server may clamp it. */
    const char *root;            /* chroot, e.g. "/prod"; NULL or "" = none. Created if missing. */
    const char *digest_user;     /* digest auth user; NULL = no auth */
    const char *digest_password; /* required with digest_user */
    zkc_acl_mode acl;            /* see zkc_acl_mode */
    zkc_log_fn log_fn;           /* NULL = warnings and errors to stderr */
    void *log_user_data;
    zkc_log_level log_level; /* most verbose level passed to the sink; default WARN */
    int zk_log_level;        /* level at which the ZooKeeper client's own log is passed on:
                                its lines are logged at DEBUG unless this is raised (quiet) */
} zkc_session_opts;

/* Fill `o` with defaults (all zero but session_timeout_ms = 10000,
 * log_level = ZKC_LOG_WARN, zk_log_level = ZKC_LOG_DEBUG). */
ZKC_EXTERN void zkc_session_opts_init(zkc_session_opts *o);

/* Validate options without connecting. On ZKC_EINVAL, writes a one-line
 * reason naming the field to `why` (may be NULL). */
ZKC_EXTERN int zkc_session_opts_check(const zkc_session_opts *o, char *why, size_t why_len);

/* Create a session and start connecting in the background; returns at once.
 * The options are copied. Starts two threads: the session manager and the
 * dispatcher for user callbacks.
 * Errors: ZKC_EINVAL (bad options; the reason is logged), ZKC_ENOMEM,
 * ZKC_ESYS (thread creation failed). */
ZKC_EXTERN int zkc_session_new(zkc_session **out, const zkc_session_opts *o);

/* Block until the session is CONNECTED or RECONNECTED, or `timeout_ms`
 * passes (-1 = forever). Any thread but the dispatcher of this session
 * should use it; from a callback it still works.
 * Errors: ZKC_EUNREACHABLE (never connected within the deadline; the servers
 * tried are logged), ZKC_ETIMEDOUT (connected before, but not now),
 * ZKC_EAUTHFAILED, ZKC_ECLOSED. */
ZKC_EXTERN int zkc_session_wait_connected(zkc_session *s, int timeout_ms);

/* Connection-state listener. Runs on the session's safety lane (see the top
 * of this file), so LOST and SUSPENDED reach it promptly whatever other
 * callbacks are doing; every listener hears every state in order. */
typedef void (*zkc_state_fn)(zkc_session *s, zkc_conn_state state, void *user_data);

/* Register a listener; it hears every state change after this call, in
 * order. The pair (fn, user_data) identifies it. Errors: ZKC_EINVAL, ZKC_ENOMEM. */
ZKC_EXTERN int zkc_session_add_listener(zkc_session *s, zkc_state_fn fn, void *user_data);

/* Unregister; returns ZKC_ENONODE if not registered. After it returns, the
 * listener is not called again (unless called from that listener itself, in
 * which case the current call completes). */
ZKC_EXTERN int zkc_session_remove_listener(zkc_session *s, zkc_state_fn fn, void *user_data);

/* Current state as the session manager sees it (may be ahead of what
 * listeners have heard so far). */
ZKC_EXTERN zkc_conn_state zkc_session_state(zkc_session *s);

/* ZooKeeper session id of the current session (0 when none). */
ZKC_EXTERN int64_t zkc_session_id(zkc_session *s);

/* Negotiated session timeout in ms (requested one before first connect). */
ZKC_EXTERN int zkc_session_timeout_ms(zkc_session *s);

/* Number of ZooKeeper sessions this handle has opened or is opening (1 at
 * first; +1 at each LOST, at the moment LOST is set, before the next one
 * connects). Each generation is announced CONNECTED exactly once; a
 * ZooKeeper session that was declared LOST is never announced again, even
 * if its handle reconnected meanwhile (that handle is closed instead). */
ZKC_EXTERN unsigned zkc_session_generation(zkc_session *s);

/* Log through the session's sink (for programs built on the library). */
ZKC_EXTERN void zkc_session_log(zkc_session *s, zkc_log_level level, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Close the ZooKeeper session (ephemeral nodes go at once), stop the threads,
 * deliver queued callbacks, free `s`. Returns 0 when done.
 * ZKC_EBUSY, doing nothing (the session and every handle on it keep
 * working): while recipe handles made on this session (group, election or
 * observer, lock, rwlock, semaphore) are still open -- free / close them
 * first, then call this again -- or when called from one of this session's
 * callbacks. NULL is a no-op returning 0. */
ZKC_EXTERN int zkc_session_close(zkc_session *s);

#ifdef __cplusplus
}
#endif

/* Recipes (each header documents its own API). */
#include "zkcoord/group.h"    /* recipe headers: group */
#include "zkcoord/election.h" /* recipe headers: election */
#include "zkcoord/lock.h"     /* recipe headers: lock */
#include "zkcoord/fence.h"
#include "zkcoord/read.h"    /* reads and the children cache */
#include "zkcoord/counter.h" /* recipe headers: counter */
#include "zkcoord/work.h"    /* recipe headers: work assignment */
#include "zkcoord/task.h"    /* recipe headers: task queue */

#endif /* ZKCOORD_ZKCOORD_H */
