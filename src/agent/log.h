/* Agent logging: one process-wide sink shared by every agent thread and, via
 * zka_log_zkc(), by the library.
 *
 * Destinations:
 *  - stderr, not a tty: each line is "<N>msg" with a syslog priority prefix
 *    (sd-daemon(3) style) so journald files it at the right level;
 *  - stderr, a tty: "zkcoord: level: msg" for a human;
 *  - syslog(3) (ident "zkcoord", facility daemon) when configured.
 * All functions are thread-safe; a line is written with one write(2).
 * Every message is escaped before it is written (zka_text_escape: control
 * characters, C1, bidi overrides, invalid UTF-8), so no text that reaches a
 * line -- a peer's id, a handler's output -- can end it, forge a priority
 * prefix or carry terminal escapes. Peer strings are also cut to
 * ZKA_PEER_LOG_MAX bytes where they are logged (zka_peer, text.h). */
#ifndef ZKA_LOG_H
#define ZKA_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "zkcoord/zkcoord.h"

/* Set the most verbose level written (default ZKC_LOG_INFO) and the
 * destination. May be called again at any time (HUP reload). */
void zka_log_setup(zkc_log_level level, int use_syslog);

/* The current level. */
zkc_log_level zka_log_level(void);

/* Tests: also pass every line that is written (after level filtering) to
 * `fn`, from the logging thread, under the log mutex (fn must not log).
 * NULL removes it. */
typedef void (*zka_log_tap_fn)(zkc_log_level level, const char *line, void *user_data);
void zka_log_set_tap(zka_log_tap_fn fn, void *user_data);

void zka_log(zkc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void zka_vlog(zkc_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* A zkc_log_fn: put as zkc_session_opts.log_fn (user_data unused) so the
 * library's lines join the agent's log. */
void zka_log_zkc(zkc_log_level level, const char *msg, void *user_data);

#endif
