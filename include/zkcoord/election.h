/*
 * Leader election (zkc_election), compatible with Curator's LeaderLatch.
 *
 * Every participant owns one ephemeral sequential node
 * "<path>/_c_<uuid>-latch-<seq>" whose data is its participant id (UTF-8):
 * the layout of Curator's LeaderLatch, so C and Java participants can share
 * one election. The first node in line leads, by the one order and
 * eligibility rule of every recipe (see the note in zkcoord/lock.h):
 * sequence numbers compared as 32-bit serial numbers (Curator's order until
 * the parent's counter reaches 2^31, still first-come-first-served after
 * it), and only an ephemeral node can lead. A persistent node planted in the
 * line by a foreign client is skipped by participants, observers and
 * zkc_election_leader alike, so they always agree on the leader. The
 * election's node is made a container, as Curator's LeaderLatch does. Each
 * participant watches only the node just ahead of it: when a leader leaves,
 * one participant wakes, not all of them; it leads after one getChildren
 * (the ownership of its node is known from the create reply, and checked
 * against the current session), so a hand-off costs two requests: the old
 * leader's delete and the next one's getChildren.
 *
 * A participant declares leadership only after it has seen its node first
 * among the children AND confirmed with a fresh stat that the node's
 * ephemeralOwner is its current session. The fencing token of a term is the
 * czxid of the leader's node: every term creates a new node, so tokens grow
 * strictly from one leader to the next.
 *
 * Connection states (see zkc_conn_state):
 *  - SUSPENDED: under ZKC_ELECTION_STEP_DOWN (the default) a leader is
 *    demoted at once: it can no longer be sure it leads. Under
 *    ZKC_ELECTION_WAIT it keeps leading until LOST.
 *  - RECONNECTED: the participant checks that its node still exists and is
 *    its own, and re-evaluates. A leader that stepped down at SUSPENDED and
 *    finds its node still first is elected again WITH THE SAME TOKEN: the
 *    node never went away, so no other term can have started in between.
 *  - LOST: a leader is demoted; once the session is CONNECTED again the
 *    participant re-enters with a new node (new token) by itself.
 *
 * Threads: every event callback runs on the session's dispatcher thread, one
 * at a time, in order. A callback may call any function here, including the
 * blocking ones and zkc_election_close() on its own election.
 */
#ifndef ZKCOORD_ELECTION_H
#define ZKCOORD_ELECTION_H

#include <stdint.h>

#include "zkcoord/zkcoord.h"
#include "zkcoord/fence.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zkc_election zkc_election;

/* Longest participant id kept (bytes); longer ids read from peers are cut. */
#define ZKC_ELECTION_ID_MAX 1024

/* What a leader does when the connection is SUSPENDED. */
typedef enum zkc_election_suspend_policy {
    ZKC_ELECTION_STEP_DOWN = 0, /* default: demoted at SUSPENDED, re-evaluated at RECONNECTED */
    ZKC_ELECTION_WAIT = 1       /* keep leading through SUSPENDED; demoted at LOST */
} zkc_election_suspend_policy;

typedef enum zkc_election_event_type {
    ZKC_ELECTION_ELECTED = 1, /* this participant leads; `token` is the term's token */
    ZKC_ELECTION_DEMOTED = 2, /* this participant no longer leads; see `reason` */
    /* The leader this handle knows of changed. An observer hears every
     * change. A participant hears it when it looks at the line: on joining,
     * when the node ahead of it goes, after a reconnect, and when it is
     * elected itself; so the one next in line hears every change at once,
     * the ones further back only when the line moves up to them. Telling
     * every participant at once
     * would take a watch on the leader's node in each of them: the herd
     * the recipe avoids. */
    ZKC_ELECTION_LEADER_CHANGED = 3,
    ZKC_ELECTION_ERROR = 4 /* campaigning stopped on an error (`err`); rejoin to retry */
} zkc_election_event_type;

typedef enum zkc_election_demote_reason {
    ZKC_DEMOTE_NONE = 0,
    ZKC_DEMOTE_RESIGNED = 1,    /* zkc_election_resign() */
    ZKC_DEMOTE_SUSPENDED = 2,   /* connection SUSPENDED under ZKC_ELECTION_STEP_DOWN */
    ZKC_DEMOTE_LOST = 3,        /* session LOST */
    ZKC_DEMOTE_NODE_DELETED = 4 /* our node vanished (deleted by someone else); we re-enter */
} zkc_election_demote_reason;

typedef struct zkc_election_event {
    zkc_election_event_type type;
    /* ELECTED, DEMOTED: the token of our term. LEADER_CHANGED: the czxid of
     * the leader's node (0 when nobody leads). */
    int64_t token;
    zkc_election_demote_reason reason; /* DEMOTED only */
    /* LEADER_CHANGED and ELECTED: the leader's participant id, NULL when
     * nobody leads. Untrusted peer data, cut at ZKC_ELECTION_ID_MAX. */
    const char *leader_id;
    /* LEADER_CHANGED and ELECTED: name of the leader's node (no parent), or
     * NULL. */
    const char *leader_node;
    int err; /* ERROR: the ZKC_* code */
} zkc_election_event;

/* Event callback. `ev` and its strings are borrowed for the call. Runs on
 * the session's dispatcher thread. */
typedef void (*zkc_election_fn)(zkc_election *e, const zkc_election_event *ev, void *user_data);

typedef struct zkc_election_opts {
    const char *id; /* required: participant id, 1..ZKC_ELECTION_ID_MAX bytes */
    zkc_election_suspend_policy on_suspend; /* default ZKC_ELECTION_STEP_DOWN */
    zkc_election_fn fn;                     /* may be NULL (poll with is_leader/await) */
    void *user_data;
} zkc_election_opts;

/* Fill `o` with defaults: everything zero (STEP_DOWN, no callback). */
ZKC_EXTERN void zkc_election_opts_init(zkc_election_opts *o);

/* Start campaigning under `path` (an absolute path; created with its
 * parents if missing). Returns at once: the node is created in the
 * background, and ELECTED arrives when this participant leads. The options
 * and strings are copied. Failures met later (no permission on `path`, no
 * randomness for the node's guid) stop the campaign with an ERROR event.
 * Errors: ZKC_EINVAL (NULL argument, bad path, missing or too long id, bad
 * policy), ZKC_ENOMEM, ZKC_ESYS (a condition variable could not be made). */
ZKC_EXTERN int zkc_election_new(zkc_election **out, zkc_session *s, const char *path,
                                const zkc_election_opts *o);

/* Leave the election and free `e`: a leader stops leading (no DEMOTED
 * event is delivered for it) and its node is deleted; this waits for the
 * server's answer, at most one session timeout (while disconnected the
 * delete is retried in the background after that). After it returns the
 * callback is not called again (if called from the callback itself, the
 * current call completes). Threads blocked in
 * zkc_election_await_leadership() return ZKC_ECANCELED first. NULL is a
 * no-op. Must happen before zkc_session_close() of the session. Returns 0. */
ZKC_EXTERN int zkc_election_close(zkc_election *e);

/* Step out: a leader hears DEMOTED (reason RESIGNED), and the node is deleted
 * only after that callback has returned, so the next leader cannot be
 * elected while this one still acts as leader. The participant stays out
 * until zkc_election_rejoin(). 0 also when not campaigning.
 * Errors: ZKC_EINVAL (NULL or an observer handle). */
ZKC_EXTERN int zkc_election_resign(zkc_election *e);

/* Campaign again after zkc_election_resign() or an ERROR event, with a new
 * node at the back of the line. 0 also when already campaigning.
 * Errors: ZKC_EINVAL (NULL or an observer handle). */
ZKC_EXTERN int zkc_election_rejoin(zkc_election *e);

/* 1 when this participant leads now, as the state machine sees it (the
 * ELECTED or DEMOTED callback may still be on its way), else 0. If
 * `token` is not NULL it receives the term's token when leading. */
ZKC_EXTERN int zkc_election_is_leader(zkc_election *e, int64_t *token);

/* Block until this participant leads, at most `timeout_ms` (-1 = no limit).
 * On 0, `*token` (may be NULL) is the term's token.
 * Errors: ZKC_ETIMEDOUT, ZKC_ECANCELED (not campaigning: resigned, or
 * stopped on an error, or closed meanwhile), ZKC_EINVAL (NULL or an
 * observer handle). */
ZKC_EXTERN int zkc_election_await_leadership(zkc_election *e, int timeout_ms, int64_t *token);

/* Path of this participant's node, copied into buf (NUL-terminated).
 * Errors: ZKC_ENONODE (no node right now), ZKC_EINVAL (buf too small,
 * NULL). */
ZKC_EXTERN int zkc_election_node_path(zkc_election *e, char *buf, size_t len);

/* Write `ops` (see zkc_fenced_multi() in zkcoord/fence.h) only while this
 * participant leads: it must lead now as the state machine sees it, and the
 * multi carries a check that its node still exists, so the server refuses
 * the writes once the term is over (session expired, resigned) even if this
 * process has not heard of it yet. Blocks up to `timeout_ms` (-1 = no
 * limit); not for the ZooKeeper threads, fine from callbacks.
 * Errors: ZKC_ENOTHELD (not leading; nothing written), ZKC_EINVAL, and
 * every error of zkc_fenced_multi(). */
ZKC_EXTERN int zkc_election_fenced_multi(zkc_election *e, const zkc_op *ops, int nops,
                                         int timeout_ms);

/* Who leads an election. */
typedef struct zkc_election_leader_info {
    char id[ZKC_ELECTION_ID_MAX + 1]; /* participant id (untrusted, cut, NUL-terminated) */
    char node[128];                   /* name of the leader's node */
    int64_t token;                    /* czxid of the leader's node */
    int64_t session_id;               /* ephemeralOwner of the leader's node */
} zkc_election_leader_info;

/* Read once who leads the election at `path`, without taking part: one
 * getChildren and one get of the first node (repeated if that node goes
 * away in between). Blocks at most `timeout_ms` (-1 = no limit). Not for
 * the ZooKeeper threads; fine from callbacks.
 * Errors: ZKC_ENONODE (nobody leads: no participant, or no such path),
 * ZKC_ETIMEDOUT, ZKC_EINVAL, ZKC_ENOMEM, ZKC_ECONNLOSS (not connected, or
 * the connection dropped before the answer), and other ZooKeeper errors as
 * ZKC_* codes (ZKC_ENOAUTH...). */
ZKC_EXTERN int zkc_election_observe_leader(zkc_session *s, const char *path,
                                           zkc_election_leader_info *info, int timeout_ms);

/* zkc_election_observe_leader() on the election `e` takes part in. */
ZKC_EXTERN int zkc_election_leader(zkc_election *e, zkc_election_leader_info *info, int timeout_ms);

/* An observer: a handle that watches the election at `path` without
 * campaigning and delivers LEADER_CHANGED for every change of leader
 * (leader_id NULL when nobody leads), the first one as soon as it has read
 * the children. It watches the children of `path`, so every observer wakes
 * at every change: meant for tools (zkcoordctl), not for many processes.
 * Free it with zkc_election_close(). resign/rejoin/await on it fail.
 * `*out` is stored before the first callback can run, so `fn` may compare
 * its handle with the caller's copy.
 * Errors: ZKC_EINVAL (NULL s/path/fn, bad path), ZKC_ENOMEM. */
ZKC_EXTERN int zkc_election_observer_new(zkc_election **out, zkc_session *s, const char *path,
                                         zkc_election_fn fn, void *user_data);

/* "elected", "demoted", "leader_changed", "error". */
ZKC_EXTERN const char *zkc_election_event_name(zkc_election_event_type t);
/* "none", "resigned", "suspended", "lost", "node_deleted". */
ZKC_EXTERN const char *zkc_election_demote_reason_name(zkc_election_demote_reason r);

#ifdef __cplusplus
}
#endif

#endif /* ZKCOORD_ELECTION_H */
