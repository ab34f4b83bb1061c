/* Agent logging (see log.h). */
#include "log.h"

#include "text.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static zkc_log_level cur_level = ZKC_LOG_INFO;
static int to_syslog;
static int syslog_open;
static zka_log_tap_fn tap;
static void *tap_ud;

void zka_log_setup(zkc_log_level level, int use_syslog)
{
    pthread_mutex_lock(&mu);
    cur_level = level;
    if (use_syslog && !syslog_open) {
        openlog("zkcoord", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        syslog_open = 1;
    }
    to_syslog = use_syslog;
    pthread_mutex_unlock(&mu);
}

zkc_log_level zka_log_level(void)
{
    zkc_log_level l;

    pthread_mutex_lock(&mu);
    l = cur_level;
    pthread_mutex_unlock(&mu);
    return l;
}

void zka_log_set_tap(zka_log_tap_fn fn, void *user_data)
{
    pthread_mutex_lock(&mu);
    tap = fn;
    tap_ud = user_data;
    pthread_mutex_unlock(&mu);
}

static int syslog_prio(zkc_log_level level)
{
    switch (level) {
    case ZKC_LOG_ERROR:
        return LOG_ERR;
    case ZKC_LOG_WARN:
        return LOG_WARNING;
    case ZKC_LOG_INFO:
        return LOG_INFO;
    case ZKC_LOG_DEBUG:
        break;
    }
    return LOG_DEBUG;
}

static void emit(zkc_log_level level, const char *raw)
{
    char line[2048], msg[1800];
    int n;

    /* Whatever reached the message (peer ids, handler output, library
     * lines quoting peer data) cannot start a new line, forge a journald
     * priority prefix or send terminal escapes: escape it as a whole. */
    zka_text_escape(msg, sizeof(msg), raw, strlen(raw));
    /* Checked per line, not cached: stderr may be redirected by a test. */
    if (to_syslog) {
        syslog(syslog_prio(level), "%s", msg);
    } else {
        if (isatty(STDERR_FILENO))
            n = snprintf(line, sizeof(line), "zkcoord: %s: %s\n", zkc_log_level_name(level), msg);
        else
            n = snprintf(line, sizeof(line), "<%d>%s\n", syslog_prio(level), msg);
        if (n < 0)
            return;
        if ((size_t)n >= sizeof(line)) {
            n = sizeof(line) - 1;
            line[n - 1] = '\n';
        }
        /* One write(2) per line so concurrent writers never interleave. */
        if (write(STDERR_FILENO, line, (size_t)n) < 0) {
            /* Nowhere left to complain to. */
        }
    }
    if (tap)
        tap(level, msg, tap_ud);
}

void zka_vlog(zkc_log_level level, const char *fmt, va_list ap)
{
    char msg[1600];

    pthread_mutex_lock(&mu);
    if (level <= cur_level) {
        vsnprintf(msg, sizeof(msg), fmt, ap);
        emit(level, msg);
    }
    pthread_mutex_unlock(&mu);
}

void zka_log(zkc_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    zka_vlog(level, fmt, ap);
    va_end(ap);
}

void zka_log_zkc(zkc_log_level level, const char *msg, void *user_data)
{
    (void)user_data;
    zka_log(level, "%s", msg);
}
