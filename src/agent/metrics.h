/* The agent's Prometheus metrics (issue 13 item 1).
 *
 * One process-wide set of counters, gauges and histograms under one small
 * mutex. The agent's parts call the zka_metrics_* one-liners below where
 * things happen (health.c, handlers.c, supervise.c, main.c); each takes the
 * mutex for a few stores and never blocks otherwise, so any thread may call
 * them, including the library's dispatcher. Calling them while no endpoint
 * runs only counts.
 *
 * zka_metrics_start() serves GET /metrics in the Prometheus text exposition
 * format 0.0.4 with libmicrohttpd, on libmicrohttpd's own thread (never the
 * dispatcher's or the main thread), bounded: ZKA_METRICS_MAX_CONNS
 * connections, ZKA_METRICS_TIMEOUT_S of inactivity per connection,
 * ZKA_METRICS_MAX_REQUEST bytes for a request's line and headers (larger
 * ones are answered 431 and closed by libmicrohttpd). Only GET (and HEAD)
 * of /metrics is served: another path is 404, another method 405. */
#ifndef ZKA_METRICS_H
#define ZKA_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zkcoord/zkcoord.h"

#include "config.h"

#define ZKA_METRICS_MAX_CONNS   32
#define ZKA_METRICS_TIMEOUT_S   5
#define ZKA_METRICS_MAX_REQUEST 16384

/* How a handler run ended (the `outcome` label). */
typedef enum zka_run_outcome {
    ZKA_RUN_SUCCESS = 0, /* exit status 0 */
    ZKA_RUN_FAILURE,     /* non-zero exit or killed by a signal (not the timeout) */
    ZKA_RUN_TIMEOUT,     /* stopped at its timeout */
    ZKA_RUN_SPAWN_ERROR, /* did not start (not found, not executable, fork failed) */
    ZKA_RUN_OUTCOMES
} zka_run_outcome;

/* Start serving on host:port (an IP literal; `ipv6` when it is IPv6).
 * Errors: ZKC_EINVAL (already serving), ZKC_ESYS (cannot bind or start the
 * thread; `why` says so, naming the address), ZKC_ENOMEM. Main thread. */
int zka_metrics_start(const char *host, int port, bool ipv6, char *why, size_t why_len);

/* Stop serving: closes the socket and joins libmicrohttpd's thread (an
 * answer being written is cut). Counters keep their values. No-op when not
 * serving. Main thread. */
void zka_metrics_stop(void);

/* The exposition text of the current values: a new NUL-terminated string
 * (free()) of *len bytes, or NULL when out of memory. Any thread. */
char *zka_metrics_render(size_t *len);

/* Zero everything (tests). */
void zka_metrics_reset(void);

/* A monotonic clock in microseconds, for the durations passed below. */
long long zka_metrics_now_us(void);

/* ---- the one-liners; every string is copied, any thread ---- */

/* zkcoord_info{cluster,member,version}: from the config (start, reload). */
void zka_metrics_identity(const char *cluster, const char *member_id);
/* zkcoord_connection_state{state}, zkcoord_session_generation,
 * zkcoord_sessions_lost_total (a LOST state counts one). */
void zka_metrics_conn_state(zkc_conn_state st, unsigned generation);
/* zkcoord_leader (0/1). */
void zka_metrics_leading(bool leading);
/* The current leader as seen by this agent: zkcoord_fencing_token (its
 * term's token, 0 when none) and zkcoord_leader_info{id} (a peer's id:
 * escaped, invalid UTF-8 replaced, capped). `id` NULL or "": no leader. */
void zka_metrics_leader(const char *id, int64_t token);
/* zkcoord_leader_changes_total. */
void zka_metrics_leader_changed(void);
/* zkcoord_members: members in the view. */
void zka_metrics_members(int n);
/* zkcoord_membership_changes_total{change}: ev is ZKA_EV_MEMBER_JOINED,
 * _LEFT or _UPDATED (others are ignored). */
void zka_metrics_membership_change(zka_event ev);
/* zkcoord_health_checks_total{result} and
 * zkcoord_health_check_duration_seconds. */
void zka_metrics_health_check(bool pass, long long duration_us);
/* zkcoord_handler_runs_total{event,outcome} and
 * zkcoord_handler_duration_seconds{event}. */
void zka_metrics_handler_run(zka_event ev, zka_run_outcome outcome, long long duration_us);
/* zkcoord_handler_timeouts_total (SIGTERM at the timeout) and
 * zkcoord_handler_kills_total (SIGKILL after the grace). */
void zka_metrics_handler_timeout(void);
void zka_metrics_handler_kill(void);
/* zkcoord_app_starts_total; a start after the app exited by itself also
 * counts in zkcoord_app_restarts_total. */
void zka_metrics_app_start(bool restart);
/* zkcoord_locks_held. */
void zka_metrics_locks_held(int n);
/* One change of the work items held: zkcoord_work_items_held (now `held`)
 * and zkcoord_work_item_changes_total{change="assigned"|"revoked"}. */
void zka_metrics_work_items(int held, bool assigned);
/* zkcoord_zookeeper_request_duration_seconds: one request's round trip. */
void zka_metrics_zk_request(long long duration_us);

#endif
