/* The supervisor: runs the app only while a condition holds (leader, member,
 * lock held), the `consul lock` behaviour.
 *
 * The app runs under a guard (proc.h) with the configured env plus
 * ZKCOORD_FENCING_TOKEN. When the condition stops holding it is stopped at
 * once: SIGTERM to the app and everything it started (also what called
 * setsid or ignores TERM), up to stop_grace_ms, then SIGKILL to all of it;
 * "stopped" means the guard exited, so nothing of the app is left. When the
 * app exits by itself, what it left running is stopped the same way, then
 * the exit is reported and the app restarted per the restart policy after
 * restart_delay_ms.
 *
 * A worker thread (poll on a self-pipe and the guard's pidfd) does all of
 * it; the functions below only post wishes and may be called from any
 * thread, including the library's dispatcher. */
#ifndef ZKA_SUPERVISE_H
#define ZKA_SUPERVISE_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

typedef struct zka_supervise zka_supervise;

/* The app exited: `wait_status` as from waitpid(); `stopped` is true when
 * the supervisor stopped it (condition gone, token change, shutdown), false
 * when it exited by itself. Runs on the supervisor thread, no lock held; it
 * may call zka_supervise_want but not _stop_sync or _free. */
typedef void (*zka_supervise_exit_fn)(pid_t pid, int wait_status, bool stopped, void *user_data);

/* Create the supervisor (nothing runs until zka_supervise_want(true)).
 * `cfg` is copied. `extra_env` (NULL-terminated "NAME=value", may be NULL)
 * is added to the app's environment, e.g. ZKCOORD_CLUSTER.
 * Errors: ZKC_EINVAL (cfg not enabled), ZKC_ENOMEM, ZKC_ESYS. */
int zka_supervise_new(zka_supervise **out, const zka_supervise_cfg *cfg, char *const *extra_env,
                      zka_supervise_exit_fn fn, void *user_data);

/* Say whether the app should run now and under which fencing token (decimal
 * string, may be NULL). Returns at once. should_run false stops a running
 * app (TERM, grace, KILL). A token different from the running app's stops
 * it and starts a new one (the old token is stale: another holder may have
 * been granted in between). want(false) also clears a "not restarting"
 * state left by restart policy never / on-failure. */
void zka_supervise_want(zka_supervise *sv, bool should_run, const char *fencing_token);

/* want(false) and wait until nothing of the app is left, up to
 * timeout_ms (-1 = forever). Returns 0 (nothing of the app runs) or
 * ZKC_ETIMEDOUT. Call it before giving up leadership or a lock, so the app
 * is gone before another member's app can start. */
int zka_supervise_stop_sync(zka_supervise *sv, int timeout_ms);

/* Pid of the running app, or 0. */
pid_t zka_supervise_pid(zka_supervise *sv);

/* Stop the app (as stop_sync with no timeout), join the thread, free.
 * NULL is a no-op. */
void zka_supervise_free(zka_supervise *sv);

#endif
