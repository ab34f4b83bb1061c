#ifndef ZKC_LOCK_SUITES_H
#define ZKC_LOCK_SUITES_H

#include <pthread.h>
#include <stdint.h>

#include "zkcoord/zkcoord.h"

int register_lock_suite(void);
int register_rwlock_suite(void);
int register_semaphore_suite(void);

/* Helpers shared by the lock test files. */

/* Number of children of `path` (-1 on error), read through session `s`.
 * ZooKeeper serves a session's requests in order, so this also waits for
 * everything `s` sent before. */
int lt_children(zkc_session *s, const char *path);
/* Wait (watching `path`, no polling) until it has `expect` children.
 * Returns 0, or -1 at the deadline. */
int lt_wait_children(zkc_session *s, const char *path, int expect, int timeout_ms);

/* Records lock events and acquire results. */
typedef struct lt_rec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int events[64];
    int nevents;
    int acquired; /* async acquire callbacks seen */
    int rc;       /* of the last one */
    int64_t token;
} lt_rec;

void lt_rec_init(lt_rec *r);
void lt_rec_destroy(lt_rec *r);
/* A zkc_lock_event_fn. */
void lt_on_event(zkc_lock *l, zkc_lock_event ev, int64_t token, void *user_data);
/* A zkc_lock_acquire_fn. */
void lt_on_acquired(zkc_lock *l, int rc, int64_t token, void *user_data);
/* Wait for event `ev` (index >= from); index or -1. */
int lt_wait_event(lt_rec *r, int from, int ev, int timeout_ms);
/* Wait until `n` acquire callbacks arrived; 0 or -1. */
int lt_wait_acquired(lt_rec *r, int n, int timeout_ms);

#endif
