/*
 * Fenced writes: a ZooKeeper multi that commits only while a guard node
 * (the node of a held lock, or of a leader) still exists.
 *
 * A holder that was paused (GC, SIGSTOP, a slow disk) past its session
 * timeout may wake up believing it still holds the lock while the next
 * holder already works. Writes sent through zkc_fenced_multi() carry a
 * check op on the guard node first: when the guard is gone (its session
 * expired, or it was released), the server rejects the whole transaction.
 * This is ZooKeeper's own answer to the "fencing" problem of distributed
 * locks; the czxid of the guard is the matching fencing token for systems
 * outside ZooKeeper.
 */
#ifndef ZKCOORD_FENCE_H
#define ZKCOORD_FENCE_H

/* The op types come before zkcoord.h: it includes the recipe headers, which
 * use zkc_op, so <zkcoord/fence.h> included first must define it first. */
#ifdef __cplusplus
extern "C" {
#endif

typedef enum zkc_op_type {
    ZKC_OP_CREATE = 1, /* create `path` with `data`; `flags` below */
    ZKC_OP_SET = 2,    /* set the data of `path`; `version` -1 = any */
    ZKC_OP_DELETE = 3, /* delete `path`; `version` -1 = any */
} zkc_op_type;

/* Create flags (ZKC_OP_CREATE only); they combine with |. */
#define ZKC_CREATE_PERSISTENT 0
#define ZKC_CREATE_EPHEMERAL  1
#define ZKC_CREATE_SEQUENTIAL 2

/* One write of a fenced multi. Strings are borrowed for the call. */
typedef struct zkc_op {
    zkc_op_type type;
    const char *path; /* absolute path (relative to the session's root) */
    const char *data; /* CREATE, SET: bytes to write (may be NULL with len 0) */
    int len;          /* length of data */
    int version;      /* SET, DELETE: expected version, -1 = any; ignored for CREATE */
    int flags;        /* CREATE: ZKC_CREATE_*; 0 = persistent. Ignored otherwise. */
} zkc_op;

#ifdef __cplusplus
}
#endif

#include "zkcoord/zkcoord.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Run `ops` (nops >= 0) as one ZooKeeper multi, preceded by a check that
 * `guard_path` exists. Either everything commits or nothing does. Blocks the
 * calling thread until the server answers or `timeout_ms` passes (-1 =
 * forever); do not call from a ZooKeeper completion thread.
 * Errors: ZKC_ENOTHELD (the guard node does not exist: the lock or term it
 * stands for is over; nothing was written), ZKC_EINVAL (bad arguments),
 * ZKC_ENOMEM, ZKC_ECONNLOSS (not connected, or the connection dropped before
 * the answer: the multi may or may not have committed), ZKC_ETIMEDOUT (no
 * answer in time; same uncertainty), or the translated code of the first op
 * that failed (ZKC_ENONODE, ZKC_ENODEEXISTS, ZKC_EBADVERSION, ZKC_ENOTEMPTY,
 * ZKC_ENOAUTH, ...). */
ZKC_EXTERN int zkc_fenced_multi(zkc_session *s, const char *guard_path, const zkc_op *ops, int nops,
                                int timeout_ms);

/* As zkc_fenced_multi(); when an op of `ops` failed, `*failed_index`
 * (may be NULL) receives its index in `ops`, else -1 (also when the guard
 * check failed). */
ZKC_EXTERN int zkc_fenced_multi_ex(zkc_session *s, const char *guard_path, const zkc_op *ops,
                                   int nops, int timeout_ms, int *failed_index);

#ifdef __cplusplus
}
#endif

#endif /* ZKCOORD_FENCE_H */
