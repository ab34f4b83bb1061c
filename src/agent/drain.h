/* Maintenance (drain): the drain note of a member in ZooKeeper, shared by
 * the agent (which obeys it, and writes it for `zkcoord --drain`) and
 * zkcoordctl (`drain`, `undrain`, and the status views).
 *
 * A drained member has a persistent node <root>/<cluster>/drain/<member id>
 * whose data is a small JSON object {"reason": ..., "since": <unix ms>,
 * "by": "user@host"} (at most ZKA_DRAIN_DATA_MAX bytes). Being persistent,
 * it works from any host, survives agent restarts and sessions, and every
 * reader sees the same thing. Its data is untrusted (anyone with write
 * access to the folder can write it): parsed defensively, capped; a node
 * whose data cannot be read is still a drain, with no reason.
 *
 * Threads: every function may be called from any thread except the
 * ZooKeeper completion thread; the writes block up to `timeout_ms`. */
#ifndef ZKA_DRAIN_H
#define ZKA_DRAIN_H

#include <stdint.h>

#include "zkcoord/zkcoord.h"

#define ZKA_DRAIN_REASON_MAX 256 /* bytes of a reason, written or read */
#define ZKA_DRAIN_BY_MAX     128 /* bytes of "by" */
#define ZKA_DRAIN_DATA_MAX   1024

/* A drain note as read. Strings are NUL-terminated, cut at their caps. */
typedef struct zka_drain_note {
    char reason[ZKA_DRAIN_REASON_MAX + 1];
    char by[ZKA_DRAIN_BY_MAX + 1];
    int64_t since_ms; /* 0 when unknown */
    int malformed;    /* data was not the JSON object above (or too big) */
} zka_drain_note;

/* "<root>/<cluster>/drain" (root "/" or "" gives "/<cluster>/drain"), a new
 * string (free()), or NULL when out of memory. */
char *zka_drain_folder(const char *root, const char *cluster);

/* Parse a node's data (`len` bytes, NULL/0 for an empty node) into `out`.
 * Never fails: bad data sets out->malformed and leaves the fields empty. */
void zka_drain_parse(const char *data, int len, zka_drain_note *out);

/* NULL when `reason` can be written, else why not (static text): longer
 * than ZKA_DRAIN_REASON_MAX bytes, or not UTF-8. */
const char *zka_drain_reason_check(const char *reason);

/* "user@host" of the calling process, into buf. */
void zka_drain_by(char *buf, size_t len);

/* Why zka_drain_set() refused (with ZKC_EBUSY). */
typedef enum zka_drain_refusal {
    ZKA_DRAIN_REFUSED_NONE = 0,
    ZKA_DRAIN_REFUSED_LAST = 1,   /* the member is the last healthy, undrained one */
    ZKA_DRAIN_REFUSED_UNKNOWN = 2 /* no member registers that id, and it is not drained */
} zka_drain_refusal;

/* Drain member `id` of the cluster at `cluster_path` ("<root>/<cluster>"):
 * write (or rewrite) its drain note with `reason` (may be NULL) and `by`.
 * Unless `force`, refuses when the member is not registered and not drained
 * already (`check_unknown`), or when it is healthy (registered, status
 * ALIVE or none, not drained) and no other member is. The check and the
 * write are one transaction against other drains (a multi that also bumps
 * the drain folder's version), so two operators draining the last two
 * members at once cannot both succeed. Creates the folders it needs.
 * *refusal (may be NULL) says why on ZKC_EBUSY; *was_drained (may be NULL)
 * is 1 when the member was drained already (the note was rewritten).
 * Errors: ZKC_EBUSY (refused), ZKC_EINVAL (bad id, reason too long or not
 * UTF-8), ZKC_ECONNLOSS / ZKC_ETIMEDOUT (no answer: the note may or may not
 * be written), ZKC_ENOAUTH, ZKC_ENOMEM, other ZooKeeper errors. */
int zka_drain_set(zkc_session *s, const char *cluster_path, const char *id, const char *reason,
                  const char *by, int force, int check_unknown, int timeout_ms,
                  zka_drain_refusal *refusal, int *was_drained);

/* Undrain member `id`: delete its drain note. 0 also when it was not
 * drained (then *was_drained is 0; it may be NULL).
 * Errors: ZKC_EINVAL, ZKC_ECONNLOSS, ZKC_ETIMEDOUT, ZKC_ENOAUTH,
 * ZKC_ENOMEM, other ZooKeeper errors. */
int zka_drain_clear(zkc_session *s, const char *cluster_path, const char *id, int timeout_ms,
                    int *was_drained);

/* Every drain note of a cluster: *ids (new, zkc_strings_free()) and *notes
 * (new array, free()) of *n entries, sorted by id. A missing folder is no
 * drains (0 with *n 0). Errors: as zkc_get_children(). */
int zka_drain_read_all(zkc_session *s, const char *cluster_path, int timeout_ms, char ***ids,
                       zka_drain_note **notes, int *n);

#endif
