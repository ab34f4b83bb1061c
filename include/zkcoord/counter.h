/*
 * Shared counters with compare-and-set, byte-compatible with Apache Curator.
 *
 * A counter is one persistent znode at any path holding a big-endian
 * integer:
 *  - ZKC_COUNTER_INT32: 4 bytes, Curator's SharedCount;
 *  - ZKC_COUNTER_INT64: 8 bytes, Curator's DistributedAtomicLong.
 * Writes are compare-and-set on the znode's data version, so a zkcoord
 * client and a Curator client incrementing the same counter lose nothing.
 *
 * A missing node reads as value 0 with `exists` 0 (DistributedAtomicLong's
 * rule); the first write creates it (and missing parents, as persistent
 * nodes). Empty data reads as 0 for both widths (DistributedAtomicLong's
 * rule; Curator's SharedCount would throw on it). Data of any other length
 * than the width is ZKC_EBADDATA. Arithmetic wraps in two's complement at
 * the width, as Java's int and long do.
 *
 * Version overflow (CURATOR-688): the znode version is a signed 32-bit int
 * that wraps from 2147483647 to -2147483648, and the server treats an
 * expected version of -1 as "any version". zkcoord compares versions only
 * for equality (never "newer than"; change detection uses the node's mzxid,
 * which does not wrap), and never leaves a counter at version -1: a write
 * that would (expected version -2) is sent as one multi of two conditional-
 * then-plain sets, so the node goes from -2 straight to 0 and nobody ever
 * reads -1. If another client (Curator) left the node at version -1, no
 * conditional write is possible: zkc_counter_cas() returns ZKC_EBUSY and
 * zkc_counter_set() (last writer wins anyway) writes unconditionally.
 *
 * Threads: every function may be called from any thread, including the
 * session's dispatcher lanes, but not from a ZooKeeper completion thread.
 * Blocking functions take timeout_ms (-1 = forever) and return
 * ZKC_ECANCELED when zkc_counter_free() runs meanwhile.
 */
#ifndef ZKCOORD_COUNTER_H
#define ZKCOORD_COUNTER_H

#include "zkcoord/zkcoord.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zkc_counter zkc_counter;

typedef enum zkc_counter_width {
    ZKC_COUNTER_INT32 = 4, /* Curator SharedCount */
    ZKC_COUNTER_INT64 = 8, /* Curator DistributedAtomicLong */
} zkc_counter_width;

/* A value read from (or written to) the counter's node. */
typedef struct zkc_counter_value {
    int64_t value;   /* the integer (sign-extended for INT32) */
    int32_t version; /* znode data version; compare with == only, it wraps */
    int exists;      /* 0: no node (value 0, version and mzxid 0) */
    int64_t mzxid;   /* zxid of the last write; grows with every write */
} zkc_counter_value;

/* Open a counter handle on `path` (absolute, relative to the session's
 * root) with `width`. Does not talk to ZooKeeper. `path` is copied.
 * Errors: ZKC_EINVAL (NULL, bad path or width), ZKC_ENOMEM. Free with zkc_counter_free() before
 * closing the session. */
ZKC_EXTERN int zkc_counter_new(zkc_counter **out, zkc_session *s, const char *path,
                               zkc_counter_width width);

/* Read the counter into `*out`. Retries over connection loss until the
 * deadline. Errors: ZKC_EINVAL, ZKC_EBADDATA (data is not a counter of this
 * width: `*out` still gets version/mzxid, value 0), ZKC_ETIMEDOUT,
 * ZKC_ENOAUTH, ZKC_ECANCELED, ZKC_ECLOSED, ZKC_ENOMEM. */
ZKC_EXTERN int zkc_counter_get(zkc_counter *c, zkc_counter_value *out, int timeout_ms);

/* Compare-and-set on the version: write `value` only if the node is still
 * at `expected->version` (or, when `!expected->exists`, does not exist yet:
 * it is created). `*won` is 1 when written, 0 when someone else wrote first.
 * `current` (may be NULL) receives the node after the call: the value just
 * written when won, a fresh read when lost. Returns 0 in both cases.
 * Errors: ZKC_EINVAL (value out of range for INT32, NULL args), ZKC_EBUSY
 * (node at version -1, left there by another client: no conditional write
 * is possible, see above), ZKC_ECONNLOSS (connection lost after the write
 * was sent: it may or may not have been applied), ZKC_ETIMEDOUT (same
 * uncertainty), ZKC_EBADDATA (of the re-read when lost), ZKC_ENOAUTH,
 * ZKC_ECANCELED, ZKC_ECLOSED, ZKC_ENOMEM. */
ZKC_EXTERN int zkc_counter_cas(zkc_counter *c, const zkc_counter_value *expected, int64_t value,
                               int *won, zkc_counter_value *current, int timeout_ms);

/* Compare-and-set on the value: write `value` only if the counter holds
 * `old` (a missing node holds 0). Loops over version races while the value
 * stays `old`. `*won` and `current` as for zkc_counter_cas(); errors as
 * zkc_counter_cas(), plus ZKC_EBADVERSION (1000 version races in a row
 * with the value still `old`: nothing was written). */
ZKC_EXTERN int zkc_counter_cas_value(zkc_counter *c, int64_t old, int64_t value, int *won,
                                     zkc_counter_value *current, int timeout_ms);

/* Set the counter to `value` whatever it holds (read, then CAS until it
 * wins: the write never lands at version -1). `out` (may be NULL) receives
 * the node written. Errors as zkc_counter_cas(), but ZKC_EBADDATA is not
 * returned (a malformed node is overwritten) and ZKC_EBUSY never; plus
 * ZKC_EBADVERSION (lost 1000 races in a row). */
ZKC_EXTERN int zkc_counter_set(zkc_counter *c, int64_t value, zkc_counter_value *out,
                               int timeout_ms);

/* Add `delta` (may be negative) with a CAS loop: read, write value+delta at
 * that version, repeat on a lost race, at most `max_tries` writes (<= 0:
 * 1000). `out` (may be NULL) receives the node written (its `value` is the
 * new value). Errors as zkc_counter_cas(), plus ZKC_EBADVERSION (lost
 * `max_tries` races in a row: nothing was added). */
ZKC_EXTERN int zkc_counter_add(zkc_counter *c, int64_t delta, int max_tries, zkc_counter_value *out,
                               int timeout_ms);

/* Change callback: `v` is the node as read after a change (borrowed for the
 * call; `v->exists` 0 after a delete). `err` is 0, or ZKC_EBADDATA when the
 * data is not a counter of this width (then v->value is 0). */
typedef void (*zkc_counter_fn)(zkc_counter *c, const zkc_counter_value *v, int err,
                               void *user_data);

/* Watch the counter: `fn` runs on the session's ordinary lane once with the
 * state when the watch is armed, then after every change seen (changes in
 * quick succession may be coalesced into the latest value; the same write
 * is never reported twice). The watch is re-armed after each event and
 * after reconnects and new sessions (it re-reads, so a change made while
 * disconnected is reported). One watch per handle; `fn` NULL stops it.
 * After zkc_counter_watch(c, NULL, NULL) returns, `fn` is not running and
 * will not run again (unless called from `fn` itself).
 * Errors: ZKC_EINVAL, ZKC_EBUSY (a watch is set: stop it first),
 * ZKC_ECLOSED, ZKC_ENOMEM. */
ZKC_EXTERN int zkc_counter_watch(zkc_counter *c, zkc_counter_fn fn, void *user_data);

/* The path and width the handle was opened with (borrowed, valid until
 * free). */
ZKC_EXTERN const char *zkc_counter_path(const zkc_counter *c);
ZKC_EXTERN zkc_counter_width zkc_counter_get_width(const zkc_counter *c);

/* Stop the watch, wake blocking callers in other threads with ZKC_ECANCELED,
 * wait until they returned and no request or callback of the handle is in
 * flight, free. Must be called before zkc_session_close(); not from the
 * handle's own watch callback. NULL is a no-op. */
ZKC_EXTERN void zkc_counter_free(zkc_counter *c);

#ifdef __cplusplus
}
#endif

#endif /* ZKCOORD_COUNTER_H */
