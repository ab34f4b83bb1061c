/* The agent's metrics (src/agent/metrics.c): the exposition text parsed line
 * by line against the format's rules, and the endpoint's bounds (paths,
 * methods, header size, slow clients, connection limit and timeout) over
 * real loopback sockets. No ZooKeeper needed: the real agents are scraped
 * by the real Prometheus in tests/interop/prometheus-metrics.sh. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/metrics.h"
#include "agent/text.h"

/* ------------------------------------------------------------- helpers */

static long long now_ms(void)
{
    return zka_metrics_now_us() / 1000;
}

static int connect_port(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read until EOF or the deadline into a new string; *eof says which. */
static char *read_until(int fd, long long deadline, int *eof)
{
    size_t n = 0, cap = 65536;
    char *b = malloc(cap + 1);

    *eof = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        long long left = deadline - now_ms();
        ssize_t k;
        if (left <= 0)
            break;
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
        }
        k = recv(fd, b + n, cap - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            *eof = 1;
            break;
        }
        n += (size_t)k;
    }
    b[n] = '\0';
    return b;
}

/* One HTTP exchange: the status code (0 when none came within
 * timeout_ms, -1 when the connection failed) and, if `body` is not NULL,
 * the whole response as a new string. */
static int http(int port, const char *request, int timeout_ms, char **resp)
{
    int fd = connect_port(port), eof, status = 0;
    char *r;

    if (resp)
        *resp = NULL;
    if (fd < 0)
        return -1;
    if (send_all(fd, request, strlen(request)) != 0) {
        /* The server may answer (431) and close before taking it all. */
    }
    r = read_until(fd, now_ms() + timeout_ms, &eof);
    close(fd);
    if (sscanf(r, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    if (resp)
        *resp = r;
    else
        free(r);
    return status;
}

/* A free loopback port: bind 0, read it back, close. */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Start the endpoint on a free port (another process may take the port
 * between free_port() and the bind: try again). */
static int start_server(void)
{
    char why[256];
    int i, port;

    for (i = 0; i < 20; i++) {
        port = free_port();
        if (port > 0 && zka_metrics_start("127.0.0.1", port, false, why, sizeof(why)) == 0)
            return port;
    }
    fprintf(stderr, "cannot start the endpoint: %s\n", why);
    return -1;
}

/* ------------------------------------------------- the exposition parser */

#define MAXFAM 64

typedef struct family {
    char name[128];
    char type[1024];
    int help, samples;
    int closed; /* another family's line came after its samples */
} family;

typedef struct hist_state {
    char key[704]; /* family name + labels other than le */
    double last_le;
    double last_count;
    int buckets;
    double inf;
} hist_state;

typedef struct parsed {
    family fam[MAXFAM];
    int nfam;
    int cur; /* family of the last line, -1 none */
    hist_state hs[256];
    int nhs;
    char err[512];
} parsed;

static int name_ok(const char *s, size_t n, int colon)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        int alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

static family *find_family(parsed *p, const char *name)
{
    int i;

    for (i = 0; i < p->nfam; i++)
        if (strcmp(p->fam[i].name, name) == 0)
            return &p->fam[i];
    return NULL;
}

/* The family a sample belongs to: its own name, or for a histogram the
 * name without _bucket/_sum/_count. */
static family *sample_family(parsed *p, const char *name, const char **suffix)
{
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    family *f = find_family(p, name);
    size_t i, n = strlen(name);

    *suffix = "";
    if (f)
        return f;
    for (i = 0; i < 3; i++) {
        size_t k = strlen(sfx[i]);
        char base[128];
        if (n > k && n - k < sizeof(base) && strcmp(name + n - k, sfx[i]) == 0) {
            memcpy(base, name, n - k);
            base[n - k] = '\0';
            f = find_family(p, base);
            if (f && strcmp(f->type, "histogram") == 0) {
                *suffix = sfx[i];
                return f;
            }
        }
    }
    return NULL;
}

static int fail_line(parsed *p, int lineno, const char *what, const char *line)
{
    snprintf(p->err, sizeof(p->err), "line %d: %s: %.200s", lineno, what, line);
    return -1;
}

/* Labels `{a="x",b="y"}` at *s; the value of `le` (if any) into le_out,
 * the other labels (raw) into rest. Values are unescaped into the check
 * and must be valid UTF-8 with only \\ \" \n escapes. */
static int parse_labels(const char **s, char *le_out, size_t le_len, char *rest, size_t rest_len,
                        char *first_value, size_t fv_len)
{
    const char *q = *s;
    int first = 1;

    le_out[0] = rest[0] = '\0';
    if (first_value)
        first_value[0] = '\0';
    if (*q != '{')
        return 0;
    q++;
    while (*q != '}') {
        const char *ns = q;
        char name[64], val[1024];
        size_t vn = 0;
        while (*q && *q != '=')
            q++;
        if (*q != '=' || (size_t)(q - ns) >= sizeof(name) || !name_ok(ns, (size_t)(q - ns), 0))
            return -1;
        memcpy(name, ns, (size_t)(q - ns));
        name[q - ns] = '\0';
        if (q[1] != '"')
            return -1;
        q += 2;
        while (*q && *q != '"') {
            char c = *q;
            if (c == '\\') {
                q++;
                if (*q == 'n')
                    c = '\n';
                else if (*q == '\\' || *q == '"')
                    c = *q;
                else
                    return -1;
            } else if (c == '\n') {
                return -1;
            }
            if (vn + 1 < sizeof(val))
                val[vn++] = c;
            q++;
        }
        if (*q != '"')
            return -1;
        val[vn] = '\0';
        {
            size_t i = 0;
            unsigned cp;
            while (i < vn) {
                size_t k = zka_utf8_next((const unsigned char *)val + i, vn - i, &cp);
                if (k == 0)
                    return -1;
                i += k;
            }
        }
        q++;
        if (first && first_value)
            snprintf(first_value, fv_len, "%s", val);
        first = 0;
        if (strcmp(name, "le") == 0)
            snprintf(le_out, le_len, "%s", val);
        else
            snprintf(rest + strlen(rest), rest_len - strlen(rest), "%s=%s;", name, val);
        if (*q == ',')
            q++;
        else if (*q != '}')
            return -1;
    }
    *s = q + 1;
    return 0;
}

/* Parse the whole text; 0 or -1 with p->err set. */
static int parse_exposition(const char *text, parsed *p)
{
    const char *line = text;
    int lineno = 0, i;

    memset(p, 0, sizeof(*p));
    p->cur = -1;
    if (!*text || text[strlen(text) - 1] != '\n')
        return fail_line(p, 0, "does not end with a line feed", "");
    while (*line) {
        const char *end = strchr(line, '\n');
        char l[2048];
        size_t n = (size_t)(end - line);
        lineno++;
        if (n >= sizeof(l))
            return fail_line(p, lineno, "line too long", line);
        memcpy(l, line, n);
        l[n] = '\0';
        line = end + 1;
        if (strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0) {
            char name[128], rest[1024];
            family *f;
            int is_help = l[2] == 'H';
            if (sscanf(l + 7, "%127s %1023[^\n]", name, rest) != 2)
                return fail_line(p, lineno, "HELP/TYPE without a name and text", l);
            if (!name_ok(name, strlen(name), 1))
                return fail_line(p, lineno, "invalid metric name", l);
            f = find_family(p, name);
            if (!f) {
                if (p->nfam == MAXFAM)
                    return fail_line(p, lineno, "too many families", l);
                f = &p->fam[p->nfam++];
                snprintf(f->name, sizeof(f->name), "%s", name);
            }
            if (f->samples)
                return fail_line(p, lineno, "HELP/TYPE after the family's samples", l);
            if (is_help) {
                if (f->help++)
                    return fail_line(p, lineno, "second HELP", l);
            } else {
                if (f->type[0])
                    return fail_line(p, lineno, "second TYPE", l);
                if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram"))
                    return fail_line(p, lineno, "unexpected type", l);
                snprintf(f->type, sizeof(f->type), "%s", rest);
                if (strcmp(rest, "counter") == 0 &&
                    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") != 0))
                    return fail_line(p, lineno, "a counter's name must end in _total", l);
            }
            for (i = 0; i < p->nfam; i++)
                if (&p->fam[i] != f && p->cur == i)
                    p->fam[i].closed = 1;
            p->cur = (int)(f - p->fam);
        } else if (l[0] == '#') {
            return fail_line(p, lineno, "unexpected comment", l);
        } else {
            const char *q = l, *suffix;
            char name[128], le[64], rest[512], key[700], *endp;
            double v;
            family *f;
            while (*q && *q != '{' && *q != ' ')
                q++;
            if ((size_t)(q - l) >= sizeof(name) || !name_ok(l, (size_t)(q - l), 1))
                return fail_line(p, lineno, "invalid sample name", l);
            memcpy(name, l, (size_t)(q - l));
            name[q - l] = '\0';
            if (parse_labels(&q, le, sizeof(le), rest, sizeof(rest), NULL, 0) != 0)
                return fail_line(p, lineno, "invalid labels", l);
            if (*q != ' ')
                return fail_line(p, lineno, "no space before the value", l);
            v = strtod(q + 1, &endp);
            if (endp == q + 1 || *endp)
                return fail_line(p, lineno, "invalid value", l);
            f = sample_family(p, name, &suffix);
            if (!f || !f->help || !f->type[0])
                return fail_line(p, lineno, "sample without HELP and TYPE before it", l);
            if (f->closed || p->cur != (int)(f - p->fam))
                return fail_line(p, lineno, "family's samples not contiguous", l);
            f->samples++;
            if ((strcmp(f->type, "counter") == 0 || strcmp(suffix, "_count") == 0 ||
                 strcmp(suffix, "_bucket") == 0) &&
                (v < 0 || v != (double)(long long)v))
                return fail_line(p, lineno, "a count must be a non-negative integer", l);
            if (strcmp(f->type, "histogram") == 0) {
                hist_state *h = NULL;
                snprintf(key, sizeof(key), "%s|%s", f->name, rest);
                for (i = 0; i < p->nhs; i++)
                    if (strcmp(p->hs[i].key, key) == 0)
                        h = &p->hs[i];
                if (!h) {
                    if (p->nhs == 256)
                        return fail_line(p, lineno, "too many histograms", l);
                    h = &p->hs[p->nhs++];
                    snprintf(h->key, sizeof(h->key), "%s", key);
                    h->last_le = -1;
                    h->inf = -1;
                }
                if (strcmp(suffix, "_bucket") == 0) {
                    double b;
                    if (!le[0])
                        return fail_line(p, lineno, "bucket without le", l);
                    if (h->inf >= 0)
                        return fail_line(p, lineno, "bucket after +Inf", l);
                    if (strcmp(le, "+Inf") == 0) {
                        h->inf = v;
                    } else {
                        b = strtod(le, &endp);
                        if (*endp || b <= h->last_le)
                            return fail_line(p, lineno, "le not ascending", l);
                        h->last_le = b;
                    }
                    if (v < h->last_count)
                        return fail_line(p, lineno, "buckets not cumulative", l);
                    h->last_count = v;
                    h->buckets++;
                } else if (strcmp(suffix, "_count") == 0) {
                    if (h->inf < 0 || v != h->inf)
                        return fail_line(p, lineno, "_count differs from the +Inf bucket", l);
                } else if (strcmp(suffix, "_sum") != 0) {
                    return fail_line(p, lineno, "histogram sample without a suffix", l);
                }
            } else if (le[0]) {
                return fail_line(p, lineno, "le label outside a histogram", l);
            }
        }
    }
    for (i = 0; i < p->nhs; i++)
        if (p->hs[i].inf < 0)
            return fail_line(p, lineno, "histogram without a +Inf bucket", p->hs[i].key);
    return 0;
}

/* The value of the sample written exactly as `series` (name and labels as
 * rendered), or -1 when absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *l = text;

    while (*l) {
        const char *end = strchr(l, '\n');
        if (strncmp(l, series, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
        l = end ? end + 1 : l + strlen(l);
    }
    return -1;
}

/* --------------------------------------------------------------- tests */

/* The text of a busy agent: every family, histograms with observations
 * in several buckets, and a hostile leader id. */
static void feed(void)
{
    zka_metrics_reset();
    zka_metrics_identity("orders", "orders-1");
    zka_metrics_conn_state(ZKC_CONN_CONNECTED, 1);
    zka_metrics_conn_state(ZKC_CONN_LOST, 1);
    zka_metrics_conn_state(ZKC_CONN_CONNECTED, 2);
    zka_metrics_leading(true);
    zka_metrics_leader("evil\"} 1\nzkcoord_leader 7\\\xff\xc3(", 4294967301LL);
    zka_metrics_leader_changed();
    zka_metrics_leader_changed();
    zka_metrics_members(3);
    zka_metrics_membership_change(ZKA_EV_MEMBER_JOINED);
    zka_metrics_membership_change(ZKA_EV_MEMBER_JOINED);
    zka_metrics_membership_change(ZKA_EV_MEMBER_LEFT);
    zka_metrics_membership_change(ZKA_EV_ELECTED); /* not a membership change */
    zka_metrics_health_check(true, 300);
    zka_metrics_health_check(true, 7000);
    zka_metrics_health_check(false, 2000000);
    zka_metrics_health_check(false, 60000000); /* above every bound: +Inf only */
    zka_metrics_handler_run(ZKA_EV_ELECTED, ZKA_RUN_SUCCESS, 12000);
    zka_metrics_handler_run(ZKA_EV_ELECTED, ZKA_RUN_FAILURE, 40000);
    zka_metrics_handler_run(ZKA_EV_MEMBER_JOINED, ZKA_RUN_TIMEOUT, 5000000);
    zka_metrics_handler_run(ZKA_EV_MEMBER_LEFT, ZKA_RUN_SPAWN_ERROR, 0);
    zka_metrics_handler_timeout();
    zka_metrics_handler_kill();
    zka_metrics_app_start(false);
    zka_metrics_app_start(true);
    zka_metrics_locks_held(2);
    zka_metrics_work_items(1, true);
    zka_metrics_work_items(2, true);
    zka_metrics_work_items(1, false);
    zka_metrics_zk_request(800);
    zka_metrics_zk_request(1500);
}

static void test_format(void)
{
    size_t len = 0;
    char *t;
    parsed *p = malloc(sizeof(*p));

    feed();
    t = zka_metrics_render(&len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(len, strlen(t));
    if (parse_exposition(t, p) != 0) {
        fprintf(stderr, "\n%s\n%s\n", p->err, t);
        CU_FAIL("the exposition text does not parse");
    }
    /* Every family has HELP, TYPE and (but leader_info and the labelled
     * handler families, which have theirs here) samples. */
    {
        int i;
        for (i = 0; i < p->nfam; i++) {
            CU_ASSERT_EQUAL(p->fam[i].help, 1);
            CU_ASSERT_NOT_EQUAL(p->fam[i].type[0], '\0');
            CU_ASSERT(p->fam[i].samples > 0);
        }
        CU_ASSERT_EQUAL(p->nfam, 22); /* 20, and the two work item families */
    }
    CU_ASSERT_EQUAL(sample(t, "zkcoord_connection_state{state=\"connected\"}"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_connection_state{state=\"lost\"}"), 0);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_session_generation"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_sessions_lost_total"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_leader"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_leader_changes_total"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_fencing_token"), 4294967301.0);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\nzkcoord_fencing_token 4294967301\n"));
    CU_ASSERT_EQUAL(sample(t, "zkcoord_members"), 3);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_membership_changes_total{change=\"joined\"}"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_membership_changes_total{change=\"left\"}"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_membership_changes_total{change=\"updated\"}"), 0);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_health_checks_total{result=\"pass\"}"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_health_checks_total{result=\"fail\"}"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_health_check_duration_seconds_bucket{le=\"0.001\"}"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_health_check_duration_seconds_bucket{le=\"0.01\"}"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_health_check_duration_seconds_bucket{le=\"2.5\"}"), 3);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_health_check_duration_seconds_bucket{le=\"10\"}"), 3);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_health_check_duration_seconds_bucket{le=\"+Inf\"}"), 4);
    CU_ASSERT_DOUBLE_EQUAL(sample(t, "zkcoord_health_check_duration_seconds_sum"), 62.0073, 1e-9);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_handler_runs_total{event=\"elected\",outcome=\"success\"}"),
                    1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_handler_runs_total{event=\"elected\",outcome=\"failure\"}"),
                    1);
    CU_ASSERT_EQUAL(
        sample(t, "zkcoord_handler_runs_total{event=\"member_joined\",outcome=\"timeout\"}"), 1);
    CU_ASSERT_EQUAL(
        sample(t, "zkcoord_handler_runs_total{event=\"member_left\",outcome=\"spawn_error\"}"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_handler_duration_seconds_count{event=\"elected\"}"), 2);
    CU_ASSERT_EQUAL(
        sample(t, "zkcoord_handler_duration_seconds_bucket{event=\"elected\",le=\"0.025\"}"), 1);
    CU_ASSERT_EQUAL(
        sample(t, "zkcoord_handler_duration_seconds_bucket{event=\"elected\",le=\"0.05\"}"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_handler_duration_seconds_count{event=\"demoted\"}"), -1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_handler_timeouts_total"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_handler_kills_total"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_app_starts_total"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_app_restarts_total"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_locks_held"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_work_items_held"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_work_item_changes_total{change=\"assigned\"}"), 2);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_work_item_changes_total{change=\"revoked\"}"), 1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_zookeeper_request_duration_seconds_bucket{le=\"0.001\"}"),
                    1);
    CU_ASSERT_EQUAL(sample(t, "zkcoord_zookeeper_request_duration_seconds_count"), 2);
    /* The hostile id stays one label value: quote, backslash and line feed
     * escaped, the bytes that are not UTF-8 replaced (U+FFFD each), and no
     * sample forged ("zkcoord_leader 7" stays inside the value). */
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\nzkcoord_leader_info{id=\"evil\\\"} 1\\nzkcoord_leader "
                                     "7\\\\\xef\xbf\xbd\xef\xbf\xbd(\"} 1\n"));
    CU_ASSERT_EQUAL(sample(t, "zkcoord_leader"), 1);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(t, "\nzkcoord_info{cluster=\"orders\",member=\"orders-1\",version=\""));
    free(t);
    free(p);
}

static void test_parser_catches(void)
{
    /* The checker itself must fail on what it is there to catch. */
    static const char *const bad[] = {
        "x_total 1\n",                                            /* no HELP/TYPE */
        "# HELP x_total h\n# TYPE x_total counter\nx_total -1\n", /* negative */
        "# HELP x h\n# TYPE x counter\nx 1\n",                    /* no _total */
        "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
        "h_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n", /* not cumulative */
        "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", /* count != +Inf */
        "# HELP g h\n# TYPE g gauge\ng{a=\"x\ny\"} 1\n", /* raw line feed */
        "# HELP g h\n# TYPE g gauge\ng{a=\"\\q\"} 1\n",  /* bad escape */
        "# HELP g h\n# TYPE g gauge\ng{a=\"\xff\"} 1\n", /* not UTF-8 */
        "# HELP 1g h\n# TYPE 1g gauge\n1g 1\n",          /* bad name */
        "# HELP g h\n# TYPE g gauge\ng 1\n# HELP k h\n# TYPE k gauge\nk 1\ng 2\n", /* split */
    };
    parsed *p = malloc(sizeof(*p));
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_exposition(bad[i], p) == 0) {
            fprintf(stderr, "\naccepted bad text #%zu\n", i);
            CU_FAIL("the checker accepted bad text");
        }
    }
    free(p);
}

static void test_http_paths(void)
{
    int port = start_server(), st;
    char *r = NULL, big[40000 + 256];

    CU_ASSERT_FATAL(port > 0);
    feed();
    st = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5000, &r);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT(r && strstr(r, "Content-Type: text/plain; version=0.0.4") != NULL);
    CU_ASSERT(r && strstr(r, "\nzkcoord_members 3\n") != NULL);
    free(r);
    st = http(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n", 5000, NULL);
    CU_ASSERT_EQUAL(st, 200);
    st = http(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5000, NULL);
    CU_ASSERT_EQUAL(st, 404);
    st = http(port, "GET /metricsx HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5000, NULL);
    CU_ASSERT_EQUAL(st, 404);
    st = http(port,
              "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: "
              "close\r\n\r\nabc",
              5000, &r);
    CU_ASSERT_EQUAL(st, 405);
    CU_ASSERT(r && strstr(r, "Allow: GET, HEAD") != NULL);
    free(r);
    st = http(port, "DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5000, NULL);
    CU_ASSERT_EQUAL(st, 405);
    /* A header above the limit: refused (431), never served. */
    snprintf(big, sizeof(big), "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + strlen(big), 'a', 40000);
    big[sizeof(big) - 200] = '\0';
    strcat(big, "\r\nConnection: close\r\n\r\n");
    st = http(port, big, 5000, NULL);
    CU_ASSERT(st == 431 || st == 413 || st == -1 || st == 0);
    CU_ASSERT_NOT_EQUAL(st, 200);
    /* Still serving after all that. */
    CU_ASSERT_EQUAL(http(port, "GET /metrics HTTP/1.0\r\n\r\n", 5000, NULL), 200);
    zka_metrics_stop();
}

/* Slow and hostile clients hold at most a connection each, for at most
 * the inactivity timeout; a scrape beside them is answered at once; when
 * they fill the connection limit, a scrape is refused (not queued behind
 * them) and served again once the server dropped them. */
static void test_http_slow_clients(void)
{
    enum { N = ZKA_METRICS_MAX_CONNS };
    int port = start_server(), fds[N], i, st, eof;
    long long t0, took, deadline;
    char *r;

    CU_ASSERT_FATAL(port > 0);
    feed();
    /* Half a request, then silence; and a header that grows slowly. */
    fds[0] = connect_port(port);
    CU_ASSERT_FATAL(fds[0] >= 0);
    CU_ASSERT_EQUAL(send_all(fds[0], "GET /metr", 9), 0);
    fds[1] = connect_port(port);
    CU_ASSERT_FATAL(fds[1] >= 0);
    CU_ASSERT_EQUAL(send_all(fds[1], "GET /metrics HTTP/1.1\r\nX-Slow: aaaa", 35), 0);
    t0 = now_ms();
    st = http(port, "GET /metrics HTTP/1.0\r\n\r\n", 2000, NULL);
    took = now_ms() - t0;
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT(took < 1000);
    printf("\n  scrape beside two stalled clients: %lld ms\n", took);
    /* The counters are not held up either. */
    t0 = now_ms();
    for (i = 0; i < 1000; i++)
        zka_metrics_health_check(true, 10);
    CU_ASSERT(now_ms() - t0 < 500);
    /* Fill the limit with stalled clients. */
    for (i = 2; i < N; i++) {
        fds[i] = connect_port(port);
        CU_ASSERT_FATAL(fds[i] >= 0);
        CU_ASSERT_EQUAL(send_all(fds[i], "GET /", 5), 0);
    }
    /* At the limit a scrape waits in the listen queue (libmicrohttpd
     * accepts no more) until the server drops the stalled clients at
     * their timeout: bounded by ZKA_METRICS_TIMEOUT_S, below Prometheus'
     * default scrape_timeout of 10 s. */
    t0 = now_ms();
    st = http(port, "GET /metrics HTTP/1.0\r\n\r\n", (ZKA_METRICS_TIMEOUT_S + 3) * 1000, NULL);
    took = now_ms() - t0;
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT(took >= (ZKA_METRICS_TIMEOUT_S - 1) * 1000);
    printf("  scrape at the connection limit (%d stalled clients): answered after %lld ms\n", N,
           took);
    /* Every stalled client was dropped, none was answered. */
    deadline = now_ms() + 2000;
    for (i = 0; i < N; i++) {
        r = read_until(fds[i], deadline, &eof);
        CU_ASSERT_EQUAL(eof, 1);
        CU_ASSERT_EQUAL(strstr(r, "200 OK"), NULL);
        free(r);
        close(fds[i]);
    }
    CU_ASSERT_EQUAL(http(port, "GET /metrics HTTP/1.0\r\n\r\n", 2000, NULL), 200);
    zka_metrics_stop();
}

static void test_start_errors(void)
{
    char why[256];
    int port = start_server();

    CU_ASSERT_FATAL(port > 0);
    /* Serving already. */
    CU_ASSERT_EQUAL(zka_metrics_start("127.0.0.1", port, false, why, sizeof(why)), ZKC_EINVAL);
    zka_metrics_stop();
    zka_metrics_stop(); /* no-op */
    {
        /* Port taken by someone else: a clear error naming the address. */
        struct sockaddr_in a;
        socklen_t al = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 1) == 0);
        getsockname(fd, (struct sockaddr *)&a, &al);
        CU_ASSERT_EQUAL(zka_metrics_start("127.0.0.1", ntohs(a.sin_port), false, why, sizeof(why)),
                        ZKC_ESYS);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "127.0.0.1:"));
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "in use"));
        close(fd);
    }
    CU_ASSERT_EQUAL(zka_metrics_start("not-an-ip", 9, false, why, sizeof(why)), ZKC_EINVAL);
}

int main(void)
{
    CU_pSuite s;
    unsigned failed;

    signal(SIGPIPE, SIG_IGN);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("agent_metrics", NULL, NULL);
    if (!s || !CU_add_test(s, "exposition text parses, values as fed", test_format) ||
        !CU_add_test(s, "the format checker rejects bad text", test_parser_catches) ||
        !CU_add_test(s, "paths, methods, header limit", test_http_paths) ||
        !CU_add_test(s, "slow clients: bounded, never blocking", test_http_slow_clients) ||
        !CU_add_test(s, "start errors", test_start_errors)) {
        fprintf(stderr, "cannot register tests: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    zka_metrics_reset();
    return failed ? 1 : 0;
}
