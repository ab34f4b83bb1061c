/* Helpers shared by the CUnit test programs: event recorders that tests wait
 * on with deadlines, and the harness cluster of the integration suites. */
#ifndef ZKC_TESTUTIL_H
#define ZKC_TESTUTIL_H

#include <pthread.h>

#include "zkcoord/zkcoord.h"
#include "harness/harness.h"

/* The cluster started by an integration program's main (NULL in unit tests). */
extern zkh_cluster *tu_zk;

/* Records connection states in arrival order. */
typedef struct tu_rec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    zkc_conn_state states[256];
    int n;
} tu_rec;

void tu_rec_init(tu_rec *r);
void tu_rec_destroy(tu_rec *r);
/* A zkc_state_fn; user_data is the tu_rec. */
void tu_rec_state(zkc_session *s, zkc_conn_state st, void *user_data);
/* Index >= from of the first recorded `st`, waiting up to timeout_ms; -1. */
int tu_rec_wait(tu_rec *r, int from, zkc_conn_state st, int timeout_ms);
int tu_rec_count(tu_rec *r);

/* Open a session to the harness cluster (or `servers`), with a quiet log,
 * and wait until connected. Returns 0 or a ZKC_* code. */
int tu_session(zkc_session **out, const char *servers, int timeout_ms, tu_rec *rec);

/* Default: log sink that drops everything below WARN and prefixes lines. */
void tu_log(zkc_log_level level, const char *msg, void *user_data);

/* Milliseconds on the monotonic clock. */
long long tu_now_ms(void);

/* Expire `s`'s ZooKeeper session the classic way: a second handle with the
 * same id and password connects, then closes; repeated until `s` reports
 * LOST. Returns 0 or -1. */
int tu_expire(zkc_session *s);

/* Close `s`'s ZooKeeper session on the server the same way, once, without
 * waiting for `s` to hear of it (e.g. while a proxy holds its connection).
 * The server removes the session (and its ephemerals) shortly after.
 * Returns 1 when the second handle connected and closed it, 0 when the
 * server said it had already expired, -1 on error. */
int tu_close_session(zkc_session *s);

/* CU_ASSERT, and on failure jump to `label` (cleanup), unlike
 * CU_ASSERT_FATAL which would leave sessions and listeners behind. */
#define TU_CHECK(cond, label)                                                                      \
    do {                                                                                           \
        int tu_ok_ = (cond) ? 1 : 0;                                                               \
        CU_ASSERT(tu_ok_ &&#cond);                                                                 \
        if (!tu_ok_)                                                                               \
            goto label;                                                                            \
    } while (0)

#endif
