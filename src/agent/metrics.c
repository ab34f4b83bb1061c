/* The agent's Prometheus metrics (see metrics.h). The values live in one
 * static struct under one mutex; rendering copies nothing out, it formats
 * under the mutex (a few kilobytes, microseconds), so the agent's threads
 * wait at most that long in a zka_metrics_* call. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "text.h"

#ifndef ZKC_VERSION
#define ZKC_VERSION "unknown"
#endif

/* A peer's id in a label: at most this many bytes of it. */
#define LABEL_MAX 256

/* Bucket upper bounds, in seconds (the +Inf bucket is implicit). */
static const double health_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,   1,    2.5,   5,    10};
static const double handler_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,  5,     10,   30,  60,   300};
static const double zk_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define NB_MAX 16

typedef struct histo {
    uint64_t buckets[NB_MAX]; /* per bucket, not cumulative (summed when rendered) */
    uint64_t count;
    double sum;
} histo;

static const char *const outcome_names[ZKA_RUN_OUTCOMES] = {"success", "failure", "timeout",
                                                            "spawn_error"};
static const char *const change_names[3] = {"joined", "left", "updated"};
static const zkc_conn_state states[] = {ZKC_CONN_NONE, ZKC_CONN_CONNECTED, ZKC_CONN_SUSPENDED,
                                        ZKC_CONN_RECONNECTED, ZKC_CONN_LOST};
#define N_STATES (sizeof(states) / sizeof(states[0]))

static struct {
    pthread_mutex_t mu;
    char *cluster, *member;
    zkc_conn_state conn;
    unsigned generation;
    uint64_t sessions_lost;
    int leading;
    char *leader_id; /* NULL: no leader known */
    int64_t token;
    uint64_t leader_changes;
    int members;
    uint64_t membership_changes[3];
    uint64_t health[2]; /* [0] fail, [1] pass */
    histo health_dur;
    uint64_t runs[ZKA_EV_COUNT][ZKA_RUN_OUTCOMES];
    histo handler_dur[ZKA_EV_COUNT];
    uint64_t handler_timeouts, handler_kills;
    uint64_t app_starts, app_restarts;
    int locks_held;
    int items_held;
    uint64_t item_changes[2]; /* [0] revoked, [1] assigned */
    histo zk_dur;
    struct MHD_Daemon *daemon;
} m = {.mu = PTHREAD_MUTEX_INITIALIZER};

long long zka_metrics_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void observe(histo *h, const double *bounds, size_t nb, long long us)
{
    double v = us > 0 ? (double)us / 1e6 : 0;
    size_t i;

    for (i = 0; i < nb && v > bounds[i]; i++)
        ;
    h->buckets[i]++; /* i == nb: only the +Inf bucket */
    h->count++;
    h->sum += v;
}

/* ------------------------------------------------------------ one-liners */

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

void zka_metrics_identity(const char *cluster, const char *member_id)
{
    char *c = dup_or_null(cluster), *mb = dup_or_null(member_id);

    pthread_mutex_lock(&m.mu);
    free(m.cluster);
    free(m.member);
    m.cluster = c;
    m.member = mb;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_conn_state(zkc_conn_state st, unsigned generation)
{
    pthread_mutex_lock(&m.mu);
    if (st == ZKC_CONN_LOST && m.conn != ZKC_CONN_LOST)
        m.sessions_lost++;
    m.conn = st;
    m.generation = generation;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_leading(bool leading)
{
    pthread_mutex_lock(&m.mu);
    m.leading = leading;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_leader(const char *id, int64_t token)
{
    char *copy = NULL;

    if (id && *id)
        copy = strndup(id, LABEL_MAX);
    pthread_mutex_lock(&m.mu);
    free(m.leader_id);
    m.leader_id = copy;
    m.token = copy ? token : 0;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_leader_changed(void)
{
    pthread_mutex_lock(&m.mu);
    m.leader_changes++;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_members(int n)
{
    pthread_mutex_lock(&m.mu);
    m.members = n;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_membership_change(zka_event ev)
{
    int i = ev == ZKA_EV_MEMBER_JOINED ? 0 : ev == ZKA_EV_MEMBER_LEFT ? 1 : 2;

    if (ev != ZKA_EV_MEMBER_JOINED && ev != ZKA_EV_MEMBER_LEFT && ev != ZKA_EV_MEMBER_UPDATED)
        return;
    pthread_mutex_lock(&m.mu);
    m.membership_changes[i]++;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_health_check(bool pass, long long duration_us)
{
    pthread_mutex_lock(&m.mu);
    m.health[pass ? 1 : 0]++;
    observe(&m.health_dur, health_bounds, sizeof(health_bounds) / sizeof(double), duration_us);
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_handler_run(zka_event ev, zka_run_outcome outcome, long long duration_us)
{
    if ((int)ev < 0 || ev >= ZKA_EV_COUNT || (int)outcome < 0 || outcome >= ZKA_RUN_OUTCOMES)
        return;
    pthread_mutex_lock(&m.mu);
    m.runs[ev][outcome]++;
    observe(&m.handler_dur[ev], handler_bounds, sizeof(handler_bounds) / sizeof(double),
            duration_us);
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_handler_timeout(void)
{
    pthread_mutex_lock(&m.mu);
    m.handler_timeouts++;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_handler_kill(void)
{
    pthread_mutex_lock(&m.mu);
    m.handler_kills++;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_app_start(bool restart)
{
    pthread_mutex_lock(&m.mu);
    m.app_starts++;
    if (restart)
        m.app_restarts++;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_locks_held(int n)
{
    pthread_mutex_lock(&m.mu);
    m.locks_held = n;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_work_items(int held, bool assigned)
{
    pthread_mutex_lock(&m.mu);
    m.items_held = held;
    m.item_changes[assigned ? 1 : 0]++;
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_zk_request(long long duration_us)
{
    pthread_mutex_lock(&m.mu);
    observe(&m.zk_dur, zk_bounds, sizeof(zk_bounds) / sizeof(double), duration_us);
    pthread_mutex_unlock(&m.mu);
}

void zka_metrics_reset(void)
{
    struct MHD_Daemon *d;

    pthread_mutex_lock(&m.mu);
    free(m.cluster);
    free(m.member);
    free(m.leader_id);
    d = m.daemon;
    /* Everything after the mutex (the struct's first member) to zero. */
    memset((char *)&m + sizeof(m.mu), 0, sizeof(m) - sizeof(m.mu));
    m.daemon = d;
    pthread_mutex_unlock(&m.mu);
}

/* -------------------------------------------------------------- rendering */

typedef struct buf {
    char *p;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        {
            size_t cap = (b->cap + (size_t)k + 1) * 2;
            char *np = realloc(b->p, cap);
            if (!np) {
                b->oom = 1;
                return;
            }
            b->p = np;
            b->cap = cap;
        }
    }
}

/* A label value per the exposition format: backslash, double quote and
 * line feed escaped; bytes that are not UTF-8 become U+FFFD (Prometheus
 * refuses the whole scrape for one invalid label value). */
static void put_label(buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);

    while (n > 0) {
        unsigned cp;
        size_t k = zka_utf8_next(p, n, &cp);
        if (k == 0) {
            put(b, "\xef\xbf\xbd");
            k = 1;
        } else if (*p == '\\') {
            put(b, "\\\\");
        } else if (*p == '"') {
            put(b, "\\\"");
        } else if (*p == '\n') {
            put(b, "\\n");
        } else {
            put(b, "%.*s", (int)k, (const char *)p);
        }
        p += k;
        n -= k;
    }
}

static void head(buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_le(buf *b, double bound)
{
    put(b, "%g", bound);
}

/* The series of one histogram; `label` is `name="value"` or "". */
static void put_histo(buf *b, const char *name, const char *label, const histo *h,
                      const double *bounds, size_t nb)
{
    uint64_t cum = 0;
    size_t i;
    const char *sep = label[0] ? "," : "";

    for (i = 0; i < nb; i++) {
        cum += h->buckets[i];
        put(b, "%s_bucket{%s%sle=\"", name, label, sep);
        put_le(b, bounds[i]);
        put(b, "\"} %llu\n", (unsigned long long)cum);
    }
    put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, sep, (unsigned long long)h->count);
    put(b, "%s_sum%s%s%s %.9g\n", name, label[0] ? "{" : "", label, label[0] ? "}" : "", h->sum);
    put(b, "%s_count%s%s%s %llu\n", name, label[0] ? "{" : "", label, label[0] ? "}" : "",
        (unsigned long long)h->count);
}

static void render_locked(buf *b)
{
    size_t i, j;
    char label[64];

    head(b, "zkcoord_info", "gauge",
         "The agent's identity (cluster, member id, version); always 1.");
    put(b, "zkcoord_info{cluster=\"");
    put_label(b, m.cluster);
    put(b, "\",member=\"");
    put_label(b, m.member);
    put(b, "\",version=\"%s\"} 1\n", ZKC_VERSION);

    head(b, "zkcoord_connection_state", "gauge",
         "ZooKeeper connection state: 1 for the current state, 0 for the others.");
    for (i = 0; i < N_STATES; i++)
        put(b, "zkcoord_connection_state{state=\"%s\"} %d\n", zkc_conn_state_name(states[i]),
            m.conn == states[i]);
    head(b, "zkcoord_session_generation", "gauge",
         "ZooKeeper session generation (grows by one with every new session).");
    put(b, "zkcoord_session_generation %u\n", m.generation);
    head(b, "zkcoord_sessions_lost_total", "counter", "ZooKeeper sessions lost (expired).");
    put(b, "zkcoord_sessions_lost_total %llu\n", (unsigned long long)m.sessions_lost);

    head(b, "zkcoord_leader", "gauge", "Whether this agent leads its cluster (1) or not (0).");
    put(b, "zkcoord_leader %d\n", m.leading);
    head(b, "zkcoord_leader_changes_total", "counter", "Leader changes seen by this agent.");
    put(b, "zkcoord_leader_changes_total %llu\n", (unsigned long long)m.leader_changes);
    head(b, "zkcoord_fencing_token", "gauge",
         "Fencing token of the current leader's term (0 when no leader is known).");
    put(b, "zkcoord_fencing_token %lld\n", (long long)m.token);
    head(b, "zkcoord_leader_info", "gauge", "The current leader's participant id; always 1.");
    if (m.leader_id) {
        put(b, "zkcoord_leader_info{id=\"");
        put_label(b, m.leader_id);
        put(b, "\"} 1\n");
    }

    head(b, "zkcoord_members", "gauge", "Members in this agent's view of the cluster.");
    put(b, "zkcoord_members %d\n", m.members);
    head(b, "zkcoord_membership_changes_total", "counter",
         "Members that joined, left or changed their data.");
    for (i = 0; i < 3; i++)
        put(b, "zkcoord_membership_changes_total{change=\"%s\"} %llu\n", change_names[i],
            (unsigned long long)m.membership_changes[i]);

    head(b, "zkcoord_health_checks_total", "counter", "Health checks run, by result.");
    put(b, "zkcoord_health_checks_total{result=\"pass\"} %llu\n", (unsigned long long)m.health[1]);
    put(b, "zkcoord_health_checks_total{result=\"fail\"} %llu\n", (unsigned long long)m.health[0]);
    head(b, "zkcoord_health_check_duration_seconds", "histogram", "Health check duration.");
    put_histo(b, "zkcoord_health_check_duration_seconds", "", &m.health_dur, health_bounds,
              sizeof(health_bounds) / sizeof(double));

    head(b, "zkcoord_handler_runs_total", "counter", "Handler runs, by event and outcome.");
    for (i = 0; i < ZKA_EV_COUNT; i++)
        for (j = 0; j < ZKA_RUN_OUTCOMES; j++)
            if (m.runs[i][j])
                put(b, "zkcoord_handler_runs_total{event=\"%s\",outcome=\"%s\"} %llu\n",
                    zka_event_name((zka_event)i), outcome_names[j],
                    (unsigned long long)m.runs[i][j]);
    head(b, "zkcoord_handler_duration_seconds", "histogram", "Handler run duration, by event.");
    for (i = 0; i < ZKA_EV_COUNT; i++) {
        if (!m.handler_dur[i].count)
            continue;
        snprintf(label, sizeof(label), "event=\"%s\"", zka_event_name((zka_event)i));
        put_histo(b, "zkcoord_handler_duration_seconds", label, &m.handler_dur[i], handler_bounds,
                  sizeof(handler_bounds) / sizeof(double));
    }
    head(b, "zkcoord_handler_timeouts_total", "counter",
         "Handler runs stopped at their timeout (SIGTERM).");
    put(b, "zkcoord_handler_timeouts_total %llu\n", (unsigned long long)m.handler_timeouts);
    head(b, "zkcoord_handler_kills_total", "counter",
         "Handler runs killed (SIGKILL) after ignoring SIGTERM for the grace period.");
    put(b, "zkcoord_handler_kills_total %llu\n", (unsigned long long)m.handler_kills);

    head(b, "zkcoord_app_starts_total", "counter", "Starts of the supervised app.");
    put(b, "zkcoord_app_starts_total %llu\n", (unsigned long long)m.app_starts);
    head(b, "zkcoord_app_restarts_total", "counter",
         "Starts of the supervised app after it exited by itself.");
    put(b, "zkcoord_app_restarts_total %llu\n", (unsigned long long)m.app_restarts);

    head(b, "zkcoord_locks_held", "gauge", "Locks this agent holds.");
    put(b, "zkcoord_locks_held %d\n", m.locks_held);

    head(b, "zkcoord_work_items_held", "gauge", "Work items this agent holds (claimed and run).");
    put(b, "zkcoord_work_items_held %d\n", m.items_held);
    head(b, "zkcoord_work_item_changes_total", "counter",
         "Work items assigned to and revoked from this agent.");
    put(b, "zkcoord_work_item_changes_total{change=\"assigned\"} %llu\n",
        (unsigned long long)m.item_changes[1]);
    put(b, "zkcoord_work_item_changes_total{change=\"revoked\"} %llu\n",
        (unsigned long long)m.item_changes[0]);

    head(b, "zkcoord_zookeeper_request_duration_seconds", "histogram",
         "Round trip of the agent's getData probe of its members node (every 5 s while "
         "connected).");
    put_histo(b, "zkcoord_zookeeper_request_duration_seconds", "", &m.zk_dur, zk_bounds,
              sizeof(zk_bounds) / sizeof(double));
}

char *zka_metrics_render(size_t *len)
{
    buf b = {NULL, 0, 0, 0};

    if (!(b.p = malloc(b.cap = 8192)))
        return NULL;
    b.p[0] = '\0';
    pthread_mutex_lock(&m.mu);
    render_locked(&b);
    pthread_mutex_unlock(&m.mu);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.n;
    return b.p;
}

/* ------------------------------------------------------------ the server */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* On libmicrohttpd's thread. Answers on the first call (no request body is
 * wanted: a body sent with another method is discarded with the 405). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **ctx)
{
    struct MHD_Response *r;
    enum MHD_Result rc;
    size_t len = 0;
    char *text;

    (void)cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)ctx;
    if (strcmp(url, "/metrics") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n");
    if (!(text = zka_metrics_render(&len)))
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    zka_log(ZKC_LOG_DEBUG, "metrics endpoint: %s", line);
}

int zka_metrics_start(const char *host, int port, bool ipv6, char *why, size_t why_len)
{
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct sockaddr *sa;
    struct MHD_Daemon *d;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;

    if (why && why_len)
        why[0] = '\0';
    pthread_mutex_lock(&m.mu);
    d = m.daemon;
    pthread_mutex_unlock(&m.mu);
    if (d)
        return ZKC_EINVAL;
    memset(&a4, 0, sizeof(a4));
    memset(&a6, 0, sizeof(a6));
    if (ipv6) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a6.sin6_addr) != 1)
            goto bad_addr;
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a4.sin_addr) != 1)
            goto bad_addr;
        sa = (struct sockaddr *)&a4;
    }
    errno = 0;
    d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
                         sa, MHD_OPTION_CONNECTION_LIMIT, (unsigned)ZKA_METRICS_MAX_CONNS,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ZKA_METRICS_TIMEOUT_S,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ZKA_METRICS_MAX_REQUEST,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!d) {
        if (why)
            snprintf(why, why_len, "cannot serve metrics on %s%s%s:%d: %s", ipv6 ? "[" : "", host,
                     ipv6 ? "]" : "", port, errno ? strerror(errno) : "libmicrohttpd failed");
        return ZKC_ESYS;
    }
    pthread_mutex_lock(&m.mu);
    m.daemon = d;
    pthread_mutex_unlock(&m.mu);
    return 0;

bad_addr:
    if (why)
        snprintf(why, why_len, "metrics: not an IP address: %s", host);
    return ZKC_EINVAL;
}

void zka_metrics_stop(void)
{
    struct MHD_Daemon *d;

    pthread_mutex_lock(&m.mu);
    d = m.daemon;
    m.daemon = NULL;
    pthread_mutex_unlock(&m.mu);
    if (d)
        MHD_stop_daemon(d); /* joins its thread; not under m.mu (a render takes it) */
}
