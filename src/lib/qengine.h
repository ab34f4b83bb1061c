/* The queue engine: one entry (an ephemeral sequential node) of a line of
 * such nodes, driven as an asynchronous state machine from ZooKeeper
 * completions and watches (completion thread) and session hooks (manager
 * thread). The recipes are faces of it that differ only in their grant rule
 * and in what they tell their user (libuv's one engine, many faces:
 * STYLE.md):
 *
 *   mutex (lock.c)        first in the line of "lock-" nodes
 *   write side (rwlock.c) first in the line of "__READ__"/"__WRIT__" nodes
 *   read side (rwlock.c)  no writer ahead (or our own writer holds)
 *   election (election.c) first in the line of "latch-" nodes; the
 *                         ownership check before every grant is the
 *                         engine's; it also watches its own node
 *                         (watch_own) and re-enters after LOST
 *
 * What the engine owns: the protected create and its recovery (pcreate.c),
 * the getChildren pipelined right behind the create, the one order and the
 * skipping of foreign nodes (queue.h), the watch on the entry it waits
 * behind, the ownership check before granting, the verification of a held
 * node at RECONNECTED, LOST when the session goes, re-entry after the node
 * vanished or the session changed, the staleness checks (attempt and round)
 * and the background delete of abandoned nodes.
 *
 * Watches are per request (zoo_awget with a context of their own, holding a
 * reference on the engine until the watch fires or its handle is closed):
 * an event reaches its engine in O(1), with no session-wide path router.
 *
 * The struct is visible to the faces, which embed it (first member) and
 * read its fields under `mu`; only the engine writes the fields marked
 * "engine". */
#ifndef ZKC_QENGINE_H
#define ZKC_QENGINE_H

#include "queue.h"

enum zkc__qe_state {
    ZKC__QE_IDLE = 0,
    ZKC__QE_ACQUIRING = 1,
    ZKC__QE_HELD = 2,
    ZKC__QE_LOST = 3, /* was held; the holder has been told it is gone */
};

typedef struct zkc__qe zkc__qe;

/* What a face tells the engine. Every function runs with q->mu held (but
 * destroy) and must not block: post user callbacks with zkc__dispatch. */
typedef struct zkc__qe_ops {
    /* The grant rule. names[0..n) is the line in the one order (queue.h,
     * less foreign nodes), names[me] our node. Returns the index of the
     * entry to wait behind (its deletion or change wakes us), or -1: grant. */
    int (*rule)(zkc__qe *q, char **names, int n, int me);
    /* The acquire in progress ended: rc 0 (granted, q->token is the
     * fencing token) or a ZKC_* code (the node is gone or going). */
    void (*done)(zkc__qe *q, int rc);
    /* About a held entry: ZKC_LOCK_SUSPENDED, ZKC_LOCK_RECONNECTED (same
     * session, node verified ours) or ZKC_LOCK_LOST (state is LOST). */
    void (*event)(zkc__qe *q, zkc_lock_event ev);
    /* The last reference went (any thread, no lock held): free the face.
     * The engine's own fields are freed already. */
    void (*destroy)(zkc__qe *q);

    /* Optional (NULL: none). */
    /* Every listing that found our node, before the rule (the election
     * reports the head of the line from it). */
    void (*line)(zkc__qe *q, char **names, int n, int me);
    /* Every connection state, before the engine acts on it. */
    void (*state)(zkc__qe *q, zkc_conn_state st, unsigned gen);
    /* The watch on the entry ahead woke us (tests count them). */
    void (*woke)(zkc__qe *q);
    /* Right before the watch on the entry ahead is set, with its path
     * (a test hook of the election). */
    void (*before_watch)(zkc__qe *q, const char *path);
} zkc__qe_ops;

struct zkc__qe {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* the face's: broadcast when an acquire ends */
    int refs;            /* atomic */
    zkc_session *s;
    char *parent;
    char *data; /* node data (the owner id) */
    const char *body;
    unsigned kinds; /* the line: ZKC__Q_BIT mask of entry kinds */
    const zkc__qe_ops *ops;
    int freed; /* the face is closing: no more user callbacks */

    /* engine */
    enum zkc__qe_state state;
    unsigned attempt; /* bumped when an acquire starts, ends or is abandoned */
    /* Bumped when an attempt starts over on a new session: requests of the
     * old round may never complete (the 3.8 client can drop completions at
     * zookeeper_close), so nothing waits for them. */
    unsigned round;
    int try_only;
    int creating;      /* protected create of this attempt in flight */
    int gc_inflight;   /* getChildren of this attempt in flight (or reserved) */
    zkc__retry resume; /* "continue once connected" is pending */
    char *node;        /* full path of our node */
    const char *name;  /* its last segment (points into node) */
    unsigned node_gen; /* session generation of node */
    int64_t token;     /* czxid of our node */
    int64_t owner_sid; /* ephemeralOwner of our node, from its create reply */
    int held_flag;     /* atomic mirror of state == HELD (read by other entries) */
    char *watching;    /* full path of the entry we wait behind */
    /* The live watch on `watching` (set, or its getData in flight): a look
     * again in the same round and session (a RECONNECTED re-evaluates, and
     * the client re-registers the watch itself) sets no second one, so
     * reconnects never pile up watches on one path. NULL once it ended. */
    struct zkc__qwatch *pw;
    zkc__q_foreign foreign;
    int wrap_warned;
    int parent_ok; /* the container parent was made (or tried) */
    /* Watch our own node from its create on (the election: a held node
     * deleted by someone else is noticed at once, and a hand-off needs no
     * request of its own to set the watch). Costs one request per node. */
    int watch_own;
    int own_armed; /* that watch is set */
    int lost_node; /* the last LOST: 1 = our node vanished, 0 = the session went */
};

/* Set up `q` (embedded in its face) and register it with the session.
 * `body` (static) names our nodes ("lock-"), `data` is copied, `kinds` the
 * entries that make up the line. Returns 0, ZKC_ENOMEM, ZKC_ESYS, or the
 * error of zkc__add_hook (ZKC_ECLOSED). On failure nothing is left. */
int zkc__qe_init(zkc__qe *q, zkc_session *s, const char *parent, const char *body, const char *data,
                 unsigned kinds, const zkc__qe_ops *ops);

void zkc__qe_ref(zkc__qe *q);
/* The last unref frees the engine's fields and calls ops->destroy. */
void zkc__qe_unref(zkc__qe *q);

/* mu held, state IDLE or LOST: start an acquire. Returns the attempt to
 * pass to zkc__qe_launch() once mu is released. try_only: fail with
 * ZKC_EBUSY instead of waiting behind another entry. */
unsigned zkc__qe_begin(zkc__qe *q, int try_only);
/* mu NOT held: create our node and list the line behind it. */
void zkc__qe_launch(zkc__qe *q, unsigned attempt);
/* mu held: end the acquire in progress with rc (ops->done(rc)); the node,
 * made or in the making, is deleted in the background. */
void zkc__qe_fail(zkc__qe *q, int rc);
/* mu held, state HELD: let go; the node is deleted in the background.
 * Returns a call completed with the delete's first outcome (wait on it
 * after unlocking, then unref it), or NULL. */
zkc__call *zkc__qe_release(zkc__qe *q);
/* mu held, state LOST: back to IDLE (the node went with the session). */
void zkc__qe_forget(zkc__qe *q);
/* mu held: queue again (a new acquire, not try-only) as soon as connected;
 * what is in progress is abandoned (a held node is forgotten, not deleted:
 * call it after LOST). */
void zkc__qe_requeue(zkc__qe *q);
/* mu held: while acquiring, list the line again (the face learned
 * something the last listing did not show, e.g. a foreign node at its
 * head). */
void zkc__qe_relist(zkc__qe *q);
/* mu held, state HELD: let go without deleting the node, which the caller
 * now owns (*node, of session generation *gen; free it). */
void zkc__qe_abandon(zkc__qe *q, char **node, unsigned *gen);

/* Closing, in three steps: zkc__qe_close_begin() (mu NOT held: no hook
 * runs for q after it returns); then the face, under mu, sets q->freed and
 * ends what is in progress (zkc__qe_fail / zkc__qe_release); then
 * zkc__qe_close_end() (mu NOT held): waits for callbacks already queued,
 * detaches from the session and drops the face's reference. */
void zkc__qe_close_begin(zkc__qe *q);
void zkc__qe_close_end(zkc__qe *q);

#endif /* ZKC_QENGINE_H */
