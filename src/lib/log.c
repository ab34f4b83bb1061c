/* Logging: one sink per session; the ZooKeeper client's log joins it. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

const char *zkc_log_level_name(zkc_log_level level)
{
    switch (level) {
    case ZKC_LOG_ERROR:
        return "error";
    case ZKC_LOG_WARN:
        return "warn";
    case ZKC_LOG_INFO:
        return "info";
    case ZKC_LOG_DEBUG:
        return "debug";
    }
    return "?";
}

__attribute__((format(printf, 3, 0))) void zkc__vlog(const zkc__logger *lg, zkc_log_level level,
                                                     const char *fmt, va_list ap)
{
    char buf[1024];

    if (level > lg->level)
        return;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    if (lg->fn)
        lg->fn(level, buf, lg->user_data);
    else
        fprintf(stderr, "zkcoord: %s: %s\n", zkc_log_level_name(level), buf);
}

void zkc__logf(const zkc__logger *lg, zkc_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    zkc__vlog(lg, level, fmt, ap);
    va_end(ap);
}

void zkc__log_zk_line(const zkc__logger *lg, const char *line)
{
    /* The client logs ordinary connection loss as ZOO_ERROR; its lines are
     * demoted to the configured zk_level so a healthy program stays quiet. */
    size_t n = strlen(line);

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    zkc__logf(lg, lg->zk_level, "zookeeper: %.*s", (int)n, line);
}
