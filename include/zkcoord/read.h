/*
 * Reading ZooKeeper through a zkcoord session: one-shot reads of a node's
 * data and children, and a children cache that keeps a folder's children
 * (and optionally their data) up to date and tells what changed.
 *
 * These exist so that programs built on the library (the zkcoord agent and
 * zkcoordctl among them) never need the raw ZooKeeper handle.
 *
 * Threads: every function may be called from any thread, including the
 * session's dispatcher (inside a callback), except where it says otherwise.
 * Cache events run on the session's dispatcher thread.
 */
#ifndef ZKCOORD_READ_H
#define ZKCOORD_READ_H

#include "zkcoord/zkcoord.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A node's metadata, as ZooKeeper's Stat. */
typedef struct zkc_stat {
    int64_t czxid;    /* zxid of the create */
    int64_t mzxid;    /* zxid of the last data change */
    int64_t pzxid;    /* zxid of the last change of the children */
    int64_t ctime_ms; /* creation time, ms since the epoch (server clock) */
    int64_t mtime_ms; /* last data change, ms since the epoch */
    int64_t owner;    /* ephemeralOwner: session id, 0 for a persistent node */
    int32_t version;  /* data version */
    int32_t cversion; /* children version (the next sequence number) */
    int32_t aversion; /* ACL version */
    int32_t data_length;
    int32_t num_children;
} zkc_stat;

/* ------------------------------------------------------ one-shot reads */

/* The children of `path`, sorted by name (strcmp), and the node's stat.
 * Sets no watch. Waits up to `timeout_ms` (-1 = forever) for the reply.
 * On 0, *names is a new array of *count new strings (free with
 * zkc_strings_free(); NULL when there are none); `st` may be NULL. On
 * failure the out-parameters are untouched.
 * Errors: ZKC_EINVAL, ZKC_ENONODE, ZKC_ENOAUTH, ZKC_ECONNLOSS (not
 * connected, or the connection was lost before the reply), ZKC_ETIMEDOUT,
 * ZKC_ENOMEM, ZKC_EZOOKEEPER. */
ZKC_EXTERN int zkc_get_children(zkc_session *s, const char *path, int timeout_ms, char ***names,
                                int *count, zkc_stat *st);

/* The data and stat of `path`. Sets no watch. Waits up to `timeout_ms`
 * (-1 = forever). On 0, if `data` is not NULL, *data is a new buffer of *len
 * bytes plus a terminating NUL (free() it; NULL with *len 0 for an empty
 * node); `len` and `st` may be NULL. On failure the out-parameters are
 * untouched. Errors: as zkc_get_children(). */
ZKC_EXTERN int zkc_get(zkc_session *s, const char *path, int timeout_ms, char **data, int *len,
                       zkc_stat *st);

/* Free what zkc_get_children() returned. NULL is a no-op. */
ZKC_EXTERN void zkc_strings_free(char **names, int count);

/* -------------------------------------------------------- children cache */

typedef struct zkc_cache zkc_cache;

/* An immutable snapshot of the cached folder: children sorted by name.
 * Reference-counted; views from zkc_cache_view_get() are the caller's to
 * free with zkc_cache_view_free(); views in events are borrowed. */
typedef struct zkc_cache_view zkc_cache_view;

ZKC_EXTERN int zkc_cache_view_count(const zkc_cache_view *v);
/* Name of the i-th child (0 <= i < count), borrowed from the view; NULL for
 * a bad i. */
ZKC_EXTERN const char *zkc_cache_view_name(const zkc_cache_view *v, int i);
/* Data of the i-th child (NUL-terminated; NULL when the cache does not fetch
 * data or the node is empty) and its length in *len (may be NULL). */
ZKC_EXTERN const char *zkc_cache_view_data(const zkc_cache_view *v, int i, int *len);
/* Stat of the i-th child (NULL when the cache does not fetch data). */
ZKC_EXTERN const zkc_stat *zkc_cache_view_stat(const zkc_cache_view *v, int i);
/* A new reference; free with zkc_cache_view_free(). */
ZKC_EXTERN zkc_cache_view *zkc_cache_view_ref(const zkc_cache_view *v);
/* Drop a reference. NULL is a no-op. */
ZKC_EXTERN void zkc_cache_view_free(zkc_cache_view *v);

typedef enum zkc_cache_event_type {
    ZKC_CACHE_ADDED = 1,   /* `name` is new */
    ZKC_CACHE_REMOVED = 2, /* `name` went away (data: as last seen) */
    ZKC_CACHE_UPDATED = 3, /* `name` has new data */
    ZKC_CACHE_CHANGED = 4  /* after each batch of the above: `view` is the new view */
} zkc_cache_event_type;

typedef struct zkc_cache_event {
    zkc_cache_event_type type;
    const char *name;           /* ADDED, REMOVED, UPDATED; else NULL */
    const char *data;           /* the child's data (see zkc_cache_view_data), or NULL */
    int len;                    /* its length */
    const zkc_stat *stat;       /* the child's stat, or NULL */
    const zkc_cache_view *view; /* the view after the batch */
} zkc_cache_event;

/* Event callback. Runs on the session's dispatcher. Changes are coalesced:
 * a burst is one batch, and while a callback is slow, later changes are
 * merged into one batch that says how things are now (a child added and
 * removed in between is not told at all). While the folder keeps changing
 * without a pause, a change is still delivered within about 100 ms. Within
 * a batch REMOVED come first, then the rest in name order, then one
 * CHANGED. Everything in `ev` is borrowed for the call. */
typedef void (*zkc_cache_fn)(zkc_cache *c, const zkc_cache_event *ev, void *user_data);

typedef struct zkc_cache_opts {
    zkc_cache_fn on_event; /* NULL: none (use zkc_cache_view_get) */
    void *user_data;
    int fetch_data; /* read each new child's data (one get per new child) */
    int watch_data; /* and re-read it when it changes (a data watch each) */
} zkc_cache_opts;

/* Defaults: no callback, names only (no data). */
ZKC_EXTERN void zkc_cache_opts_init(zkc_cache_opts *o);

/* A cache of the children of `path` (absolute; it need not exist yet: the
 * cache waits for it). `o` may be NULL (defaults); it is copied. Does not
 * read until zkc_cache_start().
 * Errors: ZKC_EINVAL (bad path or arguments), ZKC_ENOMEM. */
ZKC_EXTERN int zkc_cache_new(zkc_cache **out, zkc_session *s, const char *path,
                             const zkc_cache_opts *o);

/* Start reading and watching. Costs one getChildren per change of the
 * folder, plus one get per new (and, with watch_data, changed) child. A new
 * session (after LOST) is followed by itself.
 * Errors: ZKC_EINVAL, ZKC_EBUSY (already started). */
ZKC_EXTERN int zkc_cache_start(zkc_cache *c);

/* The view as last delivered to the callback (or, with none, as last
 * batched): a new reference for the caller. Errors: ZKC_EINVAL. */
ZKC_EXTERN int zkc_cache_view_get(zkc_cache *c, zkc_cache_view **out);

/* Stop and free. Waits, bounded (about 2 s each), for the cache's requests
 * in flight and for its watches to be gone from the client. After it
 * returns no callback of `c` runs (from a callback of `c` itself: none after
 * the current one). Must not be called on the ZooKeeper completion thread.
 * NULL is a no-op. */
ZKC_EXTERN void zkc_cache_free(zkc_cache *c);

#ifdef __cplusplus
}
#endif

#endif /* ZKCOORD_READ_H */
