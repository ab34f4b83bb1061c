/* Periodic health check of the local app, with rise/fall hysteresis.
 *
 * A check is either a command (exit status 0 = pass; non-zero, a signal or
 * running past timeout_ms = fail) or a TCP connect to host:port within
 * timeout_ms. Checks run every interval_ms (measured start to start) on the
 * checker's own thread, the first one at once.
 *
 * State starts UNKNOWN. It becomes HEALTHY after `rise` consecutive passes
 * and UNHEALTHY after `fall` consecutive failures, from any state; a single
 * opposite result only resets the count, so one failed check never flaps
 * the registration. The agent registers while HEALTHY only: an app that is
 * not up yet at start is not announced, and "deregister after `fall`
 * failures, re-register after `rise` passes" holds from the first check on.
 * With no health section (ZKA_HEALTH_NONE) there is no thread, the state is
 * HEALTHY from creation and the callback never runs. */
#ifndef ZKA_HEALTH_H
#define ZKA_HEALTH_H

#include "config.h"

typedef struct zka_health zka_health;

typedef enum zka_health_state {
    ZKA_HEALTH_UNKNOWN = 0,
    ZKA_HEALTH_HEALTHY,
    ZKA_HEALTH_UNHEALTHY
} zka_health_state;

/* "unknown", "healthy", "unhealthy". */
const char *zka_health_state_name(zka_health_state s);

/* Called on every state change, on the checker thread, with a short reason
 * ("3 consecutive failures: exit status 1"), borrowed for the call. It must
 * not call zka_health_free. */
typedef void (*zka_health_fn)(zka_health_state state, const char *reason, void *user_data);

/* Start checking per `cfg` (copied). fn may be NULL.
 * Errors: ZKC_ENOMEM, ZKC_ESYS (pipe or thread creation failed). */
int zka_health_new(zka_health **out, const zka_health_cfg *cfg, zka_health_fn fn, void *user_data);

/* The current state (any thread). */
zka_health_state zka_health_get(zka_health *h);

/* Stop (a check in progress is killed), join the thread, free. NULL: no-op. */
void zka_health_free(zka_health *h);

#endif
