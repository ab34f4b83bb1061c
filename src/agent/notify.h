/* sd_notify(3) spoken directly over $NOTIFY_SOCKET (no libsystemd): an
 * AF_UNIX datagram to a filesystem path or, with a leading '@', to the
 * abstract namespace. Thread-safe (one sendto per message). */
#ifndef ZKA_NOTIFY_H
#define ZKA_NOTIFY_H

#include <stdint.h>

/* Send `state` ("READY=1", "STATUS=...", "STOPPING=1", "WATCHDOG=1",
 * several separated by '\n'). Returns 1 if sent, 0 if $NOTIFY_SOCKET is not
 * set (not run by systemd: not an error), or -errno on failure
 * (-EINVAL for a malformed socket address). */
int zka_notify(const char *state);

/* printf-style zka_notify ("STATUS=leader of %s"). */
int zka_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval in microseconds from $WATCHDOG_USEC, or 0 when the
 * watchdog is off or meant for another process ($WATCHDOG_PID set and not
 * ours). Send "WATCHDOG=1" about every half of it. */
uint64_t zka_notify_watchdog_usec(void);

#endif
