/* The handler runner: runs the configured commands when events happen.
 *
 * Model: one worker thread with its own poll(2) loop, woken through a
 * self-pipe. zka_handlers_fire() only queues (it never forks, waits, builds
 * a document or does I/O beyond one byte to the self-pipe), so it is safe to
 * call from the library's dispatcher thread or any other thread. The worker
 * builds an event's document when a run takes it (zka_event_info.build, with
 * its lock dropped), starts each run under a guard (proc.h: the command and
 * everything it starts are stopped together), writes the document to the
 * child's stdin, reads stdout+stderr (merged) into the log line by line,
 * enforces the timeout (SIGTERM to the whole tree, SIGKILL after a grace),
 * and reaps the guard by pid through a pidfd. A run ends when nothing of it
 * is left.
 *
 * Per handler: never two runs at once. Events that arrive while a run is
 * active are coalesced per event type: a burst of one kind becomes ONE
 * follow-up run carrying the latest event of that kind (earlier ones are
 * dropped and counted, never built); follow-ups run in order of arrival.
 * Events with a key (work items) coalesce only with the same key.
 * Peer data reaches a handler only in its stdin document and its
 * environment, never in argv. */
#ifndef ZKA_HANDLERS_H
#define ZKA_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef struct zka_handlers zka_handlers;

/* Builds an event's document lazily, on the runner's thread, only for the
 * run that actually happens (a coalesced event is never built). Sets *json
 * (the document) and *members (a JSON array of member ids) to new strings
 * (free()); NULL *json is a failure to build (the runner logs it and runs
 * with a minimal document). */
typedef void (*zka_doc_build_fn)(void *ctx, char **json, char **members);

/* One event. All strings are borrowed for the call (copied). NULL strings
 * become empty environment values. Either `json` (and `members`) is given,
 * or `build` (then `ctx` is owned by the runner and freed with ctx_free). */
typedef struct zka_event_info {
    zka_event event;
    const char *json;          /* document written to stdin, followed by '\n' */
    const char *cluster;       /* ZKCOORD_CLUSTER */
    const char *member_id;     /* ZKCOORD_MEMBER_ID: this agent's member id */
    const char *leader_id;     /* ZKCOORD_LEADER_ID: current leader ("" if none) */
    const char *fencing_token; /* ZKCOORD_FENCING_TOKEN: decimal, "" if none */
    const char *members;       /* ZKCOORD_MEMBERS: member ids as a JSON array */
    /* Coalescing key, may be NULL: a queued event is replaced only by one
     * of the same type and key (work item events carry the item, so every
     * item's change gets its run). */
    const char *key;
    /* More "NAME=value" variables for this event (NULL-terminated, may be
     * NULL), e.g. ZKCOORD_ITEM. Names must not repeat the ones above. */
    char *const *env;
    zka_doc_build_fn build;
    void *ctx;
    void (*ctx_free)(void *ctx);
} zka_event_info;

/* ZKCOORD_MEMBERS longer than this goes to a file instead: the handler gets
 * ZKCOORD_MEMBERS="" and ZKCOORD_MEMBERS_FILE=/dev/fd/3 (a memfd holding the
 * same JSON array). execve refuses one string above 128 KiB, and every
 * handler would fail with it. */
#define ZKA_MEMBERS_ENV_MAX 65536

/* How one run ended, passed to zka_handlers_opts.done. */
typedef struct zka_handler_result {
    size_t index;        /* position in the handler list given to new/reconfigure */
    zka_event event;     /* the event of this run */
    const char *json;    /* its document (borrowed for the callback) */
    int wait_status;     /* as from waitpid(); meaningless if spawn_failed */
    bool spawn_failed;   /* command not found / fork failed: it did not run */
    bool timed_out;      /* killed at its timeout */
    unsigned coalesced;  /* events merged into this run (0: it ran for one event) */
    size_t output_bytes; /* bytes it wrote (stdout+stderr), including dropped ones */
    long long duration_ms;
} zka_handler_result;

typedef void (*zka_handler_done_fn)(const zka_handler_result *r, void *user_data);

typedef struct zka_handlers_opts {
    int kill_grace_ms;        /* after SIGTERM at timeout, before SIGKILL; 0 = 2000 */
    zka_handler_done_fn done; /* optional; runs on the worker thread, no lock held;
                                 it may call zka_handlers_fire but not _free */
    void *user_data;
} zka_handlers_opts;

/* Start the runner with `n` handlers (copied). `o` may be NULL.
 * Errors: ZKC_ENOMEM, ZKC_ESYS (pipe or thread creation failed). */
int zka_handlers_new(zka_handlers **out, const zka_handler_cfg *cfgs, size_t n,
                     const zka_handlers_opts *o);

/* Does any handler subscribe to `ev`? (Build nothing when none does.) */
bool zka_handlers_wants(zka_handlers *h, zka_event ev);

/* Queue `ev` for every handler subscribed to it. Never blocks on a run.
 * When no handler takes it, `ev->ctx` is freed at once.
 * Returns the number of handlers it was queued for (>= 0), or ZKC_ENOMEM,
 * ZKC_EINVAL (bad event, or neither json nor build), ZKC_ECLOSED (being freed). */
int zka_handlers_fire(zka_handlers *h, const zka_event_info *ev);

/* Replace the handler list (HUP reload). A handler whose configuration is
 * unchanged keeps its state (an active run and its queued follow-up). A
 * removed handler's active run finishes (or times out) but its queued
 * follow-up is dropped. Fires nothing by itself. Errors: ZKC_ENOMEM. */
int zka_handlers_reconfigure(zka_handlers *h, const zka_handler_cfg *cfgs, size_t n);

/* Wait until no run is active or queued, up to timeout_ms (-1 = forever).
 * Returns 0 or ZKC_ETIMEDOUT. */
int zka_handlers_wait_idle(zka_handlers *h, int timeout_ms);

/* Stop: queued events are dropped, active runs get SIGTERM, then SIGKILL
 * after the grace; waits for them and the worker thread, frees `h`.
 * NULL is a no-op. Must not be called from the done callback. */
void zka_handlers_free(zka_handlers *h);

#endif
