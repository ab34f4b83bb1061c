/* The children cache engine (cache.c): one folder's children, each with a
 * value the consumer decodes from the child's data, kept up to date with a
 * child watch and (optionally) data watches, and delivered to the consumer
 * as coalesced batches of changes on the session's dispatcher.
 *
 * Under group membership (group.c), the semaphore's leases (semaphore.c,
 * on demand) and the public zkc_cache (cache.c).
 *
 * Cost model: a change of the folder costs one getChildren; a new child
 * costs one getData (when data is fetched); a data change of a known child
 * costs one getData of that child. Watches are per-request (zoo_awget*, the
 * engine is their context), so an event is routed by a hash lookup of the
 * child's name: O(1), no session-wide path scan.
 *
 * Delivery is coalesced: changes mark their child dirty (at most once per
 * child), and one delivery at a time is queued on the dispatcher once no
 * read is in flight. A consumer whose callback is blocked therefore holds
 * at most one pending delivery and one dirty mark per child, whatever the
 * number of changes: memory is bounded by the folder's size.
 *
 * Locking: every engine field is guarded by the engine's mutex, which the
 * consumer borrows as its own lock (zkc__cache_mutex), so the consumer's
 * hooks and the engine's callbacks run under the same lock. The engine owns
 * it: a delivery still queued when the consumer is freed (from its own
 * callback, say) holds an engine reference, so the mutex it locks is alive. */
#ifndef ZKC_CACHE_INTERNAL_H
#define ZKC_CACHE_INTERNAL_H

#include "internal.h"
#include "zkcoord/read.h"

typedef struct zkc__cache zkc__cache;

/* ---- a string-keyed hash map (chained, grows by doubling) */
typedef struct zkc__smap_item {
    struct zkc__smap_item *next;
    size_t hash;
    void *val;
    char key[]; /* inline: one cache miss per lookup, not two */
} zkc__smap_item;

typedef struct zkc__smap {
    zkc__smap_item **b;
    size_t nb; /* buckets, a power of two */
    size_t n;
} zkc__smap;

void zkc__smap_init(zkc__smap *m);
/* Frees the items and keys; values are the caller's. */
void zkc__smap_clear(zkc__smap *m);
void *zkc__smap_get(const zkc__smap *m, const char *key);
/* Insert or replace; 0 or ZKC_ENOMEM. */
int zkc__smap_put(zkc__smap *m, const char *key, void *val);
/* Remove; returns the value, NULL when absent. */
void *zkc__smap_del(zkc__smap *m, const char *key);

/* ---- immutable views whose elements are borrowed (group.c, cache.c)
 *
 * A view's elements are not referenced one by one (a reference per element
 * per view made every change O(n)). What keeps them alive is a chain of
 * lifetime records: view k's record holds the elements that left at the
 * change from view k to view k+1, and a reference to view k+1's record.
 * An element that left at change k is in views k and older only, and
 * record k goes once view k and every older view are gone (each older
 * record leads to it). The elements of the current view are held by their
 * owner and move to the current record when they leave. */
typedef struct zkc__vlife {
    int refs;                 /* atomic: its view, and the previous record */
    struct zkc__vlife *next;  /* the next view's record (referenced) */
    void (*unref)(void *elt); /* releases a kept element */
    void **gone;              /* referenced */
    int ngone;
    int capgone;
} zkc__vlife;

/* A record with one reference (its view's); NULL when out of memory. */
zkc__vlife *zkc__vlife_new(void (*unref)(void *elt));
/* `elt` (a reference, which moves here; NULL is ignored) stays alive as
 * long as the record. Out of memory: the element is leaked, never freed
 * under a reader. */
void zkc__vlife_keep(zkc__vlife *l, void *elt);
/* `newer` is the record of the view after `older`'s (set once). */
void zkc__vlife_chain(zkc__vlife *older, zkc__vlife *newer);
void zkc__vlife_unref(zkc__vlife *l);

/* The next view's elements: `n` elements of `old` (sorted) with the ones
 * at positions dpos[0..nd) (any order) left out and ins[0..ni) put before
 * the element at ipos[j] (nondecreasing; n = at the end), in one copy of
 * each unchanged run. `out` has room for n + ni. Returns its count. */
int zkc__view_merge(void **out, void *const *old, int n, int *dpos, int nd, const int *ipos,
                    void *const *ins, int ni);

/* ---- one child as the engine holds it */
typedef struct zkc__centry {
    char *name;
    void *value;               /* current value (consumer's, refcounted), NULL until read */
    void *delivered;           /* value as of the last delivery, NULL = was absent */
    void *user;                /* consumer's per-child slot (e.g. its member wrapper) */
    unsigned listed;           /* listing number that last saw it */
    int present;               /* in the folder (else a tombstone awaiting delivery) */
    int reading;               /* a getData is in flight */
    int stale;                 /* read again once it is back */
    int dirty;                 /* on the dirty list */
    int touched;               /* redeliver even when the value did not change */
    struct zkc__centry *dnext; /* the dirty list, doubly linked */
    struct zkc__centry *dprev;
} zkc__centry;

/* Kinds of change in a delivered batch. */
enum { ZKC__CH_ADDED = 1, ZKC__CH_REMOVED = 2, ZKC__CH_CHANGED = 3, ZKC__CH_TOUCHED = 4 };

typedef struct zkc__change {
    int kind;
    zkc__centry *e;  /* valid during the batch() call */
    void *old_value; /* referenced for the call; NULL for ADDED */
    void *new_value; /* referenced for the call; NULL for REMOVED */
} zkc__change;

typedef struct zkc__cache_ops {
    /* Order of children (qsort-style on names); NULL = strcmp. */
    int (*cmp)(const char *a, const char *b);
    /* Completion thread, lock held: a new value for child `name` from its
     * data (NULL data, len 0, st NULL when data is not fetched; NULL data,
     * len -1 when it could not be read for good, e.g. no auth).
     * NULL = out of memory. */
    void *(*decode)(void *ctx, const char *name, const char *data, int len, const struct Stat *st);
    void (*ref)(void *value);
    void (*unref)(void *value);
    /* The mzxid a value was decoded from (a read of an unchanged node then
     * keeps the value and tells nothing). May be NULL. */
    int64_t (*mzxid)(void *value);
    /* Dispatcher thread, lock held: one coalesced batch of `n` changes
     * (removals first, then the rest in child order). Make what the user
     * is to be told from it (the changes' references are dropped after it
     * returns, tombstones freed) and return it; NULL = nothing to tell. */
    void *(*batch)(void *ctx, const zkc__change *ch, int n);
    /* Dispatcher thread, lock NOT held: tell the user what batch() made
     * (and free it). */
    void (*deliver)(void *ctx, void *batch);
    /* Lock held: a child left the folder (listing or NONODE), or a child's
     * first value arrived. Must not block. May be NULL. */
    void (*gone)(void *ctx, zkc__centry *e);
    /* Release a child's `user` slot when the engine frees the child. */
    void (*forget)(void *user);
    void (*arrived)(void *ctx, zkc__centry *e);
    /* Completion thread, lock held: a listing was applied (its children
     * may or may not differ from the last). Must not block. May be NULL. */
    void (*listed)(void *ctx);
} zkc__cache_ops;

typedef struct zkc__cache_cfg {
    int fetch_data; /* read each new child's data */
    int watch_data; /* and leave a data watch (re-read on change) */
    int on_demand;  /* list only while wanted (zkc__cache_want) */
} zkc__cache_cfg;

/* New engine on `path` (copied), with its own mutex. Does not start.
 * ZKC_ENOMEM. */
int zkc__cache_new(zkc__cache **out, zkc_session *s, const char *path, const zkc__cache_ops *ops,
                   void *ctx, const zkc__cache_cfg *cfg);
/* The engine's mutex, for the consumer to use as its lock. Valid until the
 * engine's last reference goes (zkc__cache_unref), not the consumer's. */
pthread_mutex_t *zkc__cache_mutex(zkc__cache *c);
/* Lock NOT held (it adds a session hook, and the session's hook list lock
 * is taken before `mu`): list and watch (idempotent). */
void zkc__cache_start(zkc__cache *c);
/* Lock NOT held, not on the completion thread. Stop: no consumer op runs
 * after it returns (deliveries queued see the engine closed). Waits, bounded,
 * for requests in flight; removes the engine's watches from the client. */
void zkc__cache_close(zkc__cache *c);
/* Drop the consumer's reference (after close). */
void zkc__cache_unref(zkc__cache *c);

/* Lock held. An on-demand engine (cfg.on_demand; e.g. the semaphore's
 * leases, which only the head of the internal mutex queue counts) starts
 * not wanted: a change of the folder then only notes that a listing is
 * due, sends nothing and leaves no watch, so idle handles cost the server
 * nothing (no herd). Wanted again, it lists at once if a change (or none
 * yet) came meanwhile, else its watch is still set and the next change
 * lists. Returns the number the next listing sent will have: a listing
 * applied with at least that number (zkc__cache_listed) was sent after
 * this call. */
unsigned zkc__cache_want(zkc__cache *c, int want);
/* Lock held. The number of the last listing applied (0: none). */
unsigned zkc__cache_listed(zkc__cache *c);
/* Lock held. Lookup by child name, O(1); NULL when not present. */
zkc__centry *zkc__cache_find(zkc__cache *c, const char *name);
/* Lock held. Present children in order; valid until the lock is released. */
zkc__centry *const *zkc__cache_sorted(zkc__cache *c, int *n);
/* Lock held. Redeliver `e` at the next batch even if its value is the same. */
void zkc__cache_touch(zkc__cache *c, zkc__centry *e);
/* Lock held. What the engine holds now (for tests of its bounds): children
 * present, children waiting for delivery (dirty, tombstones included),
 * deliveries queued on the dispatcher (0 or 1), requests in flight. */
void zkc__cache_counts(zkc__cache *c, int *present, int *dirty, int *queued, int *busy);

/* For tests: zkc__cache_counts() of a group's cache (group.c). */
void zkc__group_counts(zkc_group *g, int *present, int *dirty, int *queued, int *busy);
/* For tests and benches: zkc__cache_listed() of a group's cache. */
unsigned zkc__group_listed(zkc_group *g);
/* For tests: syncs sent by every cache in this process, ever. A cache sends
 * one right before the first folder read of each new ZooKeeper session
 * (after LOST), none per change (see send_folder_req in cache.c). */
unsigned long zkc__cache_syncs(void);

/* ---- a data read through zkc__call (zkc_get, zkc_group_read) */
struct zkc__got {
    int len;
    char data[]; /* len bytes and a NUL */
};
/* zoo_aget completion with a zkc__call (holding one ref) as data: the data
 * goes to call->extra as a struct zkc__got, the stat to call->stat. */
void zkc__call_data_done(int zrc, const char *value, int len, const struct Stat *st,
                         const void *data);

/* Send one read for `c` on `zh` (locked, of generation `gen`): getData,
 * getChildren2 (children and stat) or exists, no watch. Takes a reference
 * on `c` for the completion, which fills c (data in extra as struct
 * zkc__got, children, stat) and completes it exactly once, with ZCLOSING
 * if the handle is closed first. Returns the zoo_a* code (not ZOK: nothing
 * was sent, no reference taken). */
enum { ZKC__READ_DATA, ZKC__READ_CHILDREN, ZKC__READ_STAT };
int zkc__read_send(zkc_session *s, zhandle_t *zh, unsigned gen, int kind, const char *path,
                   zkc__call *c);

#endif
