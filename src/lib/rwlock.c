/* Read/write lock: two queue entries kinds under one path, Curator's
 * InterProcessReadWriteLock layout ("__READ__" / "__WRIT__", names of equal
 * length so one sort orders both). The write side is the mutex rule over
 * every node; the read side is granted when no writer is queued ahead of
 * it. Curator's reader watches the *first* writer ahead and re-checks when
 * it goes; ours watches the *last* writer ahead: it can only be granted once
 * that one is gone, so earlier writers leaving wake nobody. */
#include "queue.h"

#include <stdlib.h>

struct zkc_rwlock {
    zkc_lock *read;
    zkc_lock *write;
};

int zkc_rwlock_new(zkc_rwlock **out, zkc_session *s, const char *path, const zkc_lock_opts *o)
{
    zkc_rwlock *rw;
    int rc;

    if (!out)
        return ZKC_EINVAL;
    rw = calloc(1, sizeof(*rw));
    if (!rw)
        return ZKC_ENOMEM;
    rc = zkc__lock_new_kind(&rw->write, s, path, o, ZKC__LQ_WRITE, NULL);
    if (rc)
        goto fail_write;
    rc = zkc__lock_new_kind(&rw->read, s, path, o, ZKC__LQ_READ, rw->write);
    if (rc)
        goto fail_read;
    zkc__lock_set_owned(rw->write, 1);
    zkc__lock_set_owned(rw->read, 1);
    *out = rw;
    return 0;

fail_read:
    zkc__lock_free_any(rw->write);
fail_write:
    free(rw);
    return rc;
}

zkc_lock *zkc_rwlock_read(zkc_rwlock *rw)
{
    return rw ? rw->read : NULL;
}

zkc_lock *zkc_rwlock_write(zkc_rwlock *rw)
{
    return rw ? rw->write : NULL;
}

void zkc_rwlock_free(zkc_rwlock *rw)
{
    if (!rw)
        return;
    /* The read side looks at the write side: it goes first. */
    zkc__lock_free_any(rw->read);
    zkc__lock_free_any(rw->write);
    free(rw);
}
