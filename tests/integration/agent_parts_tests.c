/* The agent's process-running parts against real processes (no ZooKeeper):
 * handlers (stdin document, environment, no overlap + coalescing, timeout
 * TERM/KILL, output cap), health checks (rise/fall hysteresis), the
 * supervisor (process group stop, restart policy, fencing token) and
 * sd_notify. Waits are on callbacks (condvars) and FIFOs, with deadlines. */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/handlers.h"
#include "agent/health.h"
#include "agent/log.h"
#include "agent/notify.h"
#include "agent/supervise.h"
#include "agent/text.h"
#include "internal.h"

static char dir[200];

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void path_in(char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

static int write_file(const char *name, const char *text, mode_t mode)
{
    char p[PATH_MAX];
    FILE *f;

    path_in(p, name);
    if (!(f = fopen(p, "w")))
        return -1;
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    return chmod(p, mode);
}

/* The whole file as a string (caller frees), or NULL. */
static char *read_file(const char *name)
{
    char p[PATH_MAX], *buf;
    FILE *f;
    long n;

    path_in(p, name);
    if (!(f = fopen(p, "r")))
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static int make_fifo(const char *name)
{
    char p[PATH_MAX];

    path_in(p, name);
    unlink(p);
    return mkfifo(p, 0600);
}

/* One line written to FIFO `name` by a child, waiting up to timeout_ms. */
static int fifo_line(const char *name, char *buf, size_t len, int timeout_ms)
{
    char p[PATH_MAX];
    long long deadline = now_ms() + timeout_ms;
    size_t got = 0;
    int fd, rc = -1;

    path_in(p, name);
    if ((fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
        return -1;
    while (now_ms() < deadline) {
        struct pollfd pf = {fd, POLLIN, 0};
        ssize_t n;

        if (poll(&pf, 1, (int)(deadline - now_ms())) <= 0)
            continue;
        n = read(fd, buf + got, len - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            buf[got] = '\0';
            if (strchr(buf, '\n')) {
                *strchr(buf, '\n') = '\0';
                rc = 0;
                break;
            }
        } else if (n == 0) {
            /* EOF: a writer left (the previous one may close only after we
             * opened). Reopen, which resets the hang-up: the next writer
             * blocks in its open until we are back, so nothing is lost. */
            close(fd);
            if ((fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
                return -1;
        }
    }
    if (rc != 0)
        fprintf(stderr, "fifo_line %s: no line within %d ms (%zu bytes)\n", name, timeout_ms, got);
    close(fd);
    return rc;
}

static bool gone(pid_t pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

/* ---------------------------------------------------------- recorders */

#define MAX_REC 64

typedef struct hrec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    zka_handler_result r[MAX_REC];
    char *json[MAX_REC];
    int n;
} hrec;

static void hrec_init(hrec *h)
{
    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    zkc__cond_init(&h->cond);
}

static void hrec_destroy(hrec *h)
{
    int i;

    for (i = 0; i < h->n; i++)
        free(h->json[i]);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mu);
}

static void hrec_done(const zka_handler_result *r, void *ud)
{
    hrec *h = ud;

    pthread_mutex_lock(&h->mu);
    if (h->n < MAX_REC) {
        h->r[h->n] = *r;
        h->json[h->n] = strdup(r->json);
        h->r[h->n].json = h->json[h->n];
        h->n++;
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mu);
}

/* Wait until at least n results; returns the count. */
static int hrec_wait(hrec *h, int n, int timeout_ms)
{
    struct timespec ts;
    int got;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&h->mu);
    while (h->n < n && pthread_cond_timedwait(&h->cond, &h->mu, &ts) != ETIMEDOUT) {
    }
    got = h->n;
    pthread_mutex_unlock(&h->mu);
    return got;
}

/* Log lines seen through the tap. */
typedef struct logrec {
    pthread_mutex_t mu;
    char *lines[512];
    int n;
} logrec;

static logrec logs = {PTHREAD_MUTEX_INITIALIZER, {NULL}, 0};

static void log_tap(zkc_log_level level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    pthread_mutex_lock(&logs.mu);
    if (logs.n < 512)
        logs.lines[logs.n++] = strdup(line);
    pthread_mutex_unlock(&logs.mu);
}

static void logs_clear(void)
{
    int i;

    pthread_mutex_lock(&logs.mu);
    for (i = 0; i < logs.n; i++)
        free(logs.lines[i]);
    logs.n = 0;
    pthread_mutex_unlock(&logs.mu);
}

static int logs_count(const char *exact)
{
    int i, k = 0;

    pthread_mutex_lock(&logs.mu);
    for (i = 0; i < logs.n; i++)
        if (strcmp(logs.lines[i], exact) == 0)
            k++;
    pthread_mutex_unlock(&logs.mu);
    return k;
}

/* ------------------------------------------------------------- handlers */

static zka_handler_cfg hcfg(char **args, const char *shell, unsigned events, int timeout_ms,
                            size_t max_out)
{
    zka_handler_cfg c;

    memset(&c, 0, sizeof(c));
    c.args = args;
    c.shell = (char *)shell;
    c.events = events;
    c.timeout_ms = timeout_ms;
    c.max_output_bytes = max_out;
    return c;
}

static zka_event_info ev_info(zka_event e, const char *json)
{
    zka_event_info ev;

    memset(&ev, 0, sizeof(ev));
    ev.event = e;
    ev.json = json;
    ev.cluster = "orders";
    ev.member_id = "orders-1";
    ev.leader_id = "orders-2";
    ev.fencing_token = "4294967301";
    ev.members = "orders-1,orders-2";
    return ev;
}

static void test_handler_stdin_env(void)
{
    char script[PATH_MAX], out[PATH_MAX];
    char *args[3];
    zka_handler_cfg c[2];
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev;
    hrec rec;
    char *doc = NULL, *env = NULL;
    /* A value with shell metacharacters: it must arrive verbatim, as data. */
    const char *json = "{\"event\":\"member_joined\",\"member\":{\"id\":\"x; rm -rf /\"}}";

    hrec_init(&rec);
    o.user_data = &rec;
    path_in(script, "env.sh");
    path_in(out, "env.out");
    CU_ASSERT_EQUAL_FATAL(write_file("env.sh",
                                     "#!/bin/sh\ncat > \"$1.json\"\n"
                                     "env | grep '^ZKCOORD_' | sort > \"$1.env\"\nexit 3\n",
                                     0755),
                          0);
    args[0] = script;
    args[1] = out;
    args[2] = NULL;
    c[0] = hcfg(args, NULL, 1u << ZKA_EV_MEMBER_JOINED, 5000, 65536);
    c[1] = hcfg(NULL, "exit 0", 1u << ZKA_EV_ELECTED, 5000, 65536); /* not subscribed */
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, c, 2, &o), 0);
    ev = ev_info(ZKA_EV_MEMBER_JOINED, json);
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    CU_ASSERT_EQUAL(hrec_wait(&rec, 1, 5000), 1);
    CU_ASSERT_EQUAL(zka_handlers_wait_idle(h, 5000), 0);
    zka_handlers_free(h);
    CU_ASSERT_EQUAL(rec.n, 1);
    if (rec.n == 1) {
        CU_ASSERT_EQUAL(rec.r[0].index, 0);
        CU_ASSERT_EQUAL(rec.r[0].event, ZKA_EV_MEMBER_JOINED);
        CU_ASSERT_FALSE(rec.r[0].spawn_failed);
        CU_ASSERT_FALSE(rec.r[0].timed_out);
        CU_ASSERT_TRUE(WIFEXITED(rec.r[0].wait_status) && WEXITSTATUS(rec.r[0].wait_status) == 3);
        CU_ASSERT_EQUAL(rec.r[0].coalesced, 0);
    }
    doc = read_file("env.out.json");
    env = read_file("env.out.env");
    CU_ASSERT_PTR_NOT_NULL(doc);
    CU_ASSERT_PTR_NOT_NULL(env);
    if (doc)
        CU_ASSERT_STRING_EQUAL(doc, "{\"event\":\"member_joined\",\"member\":{\"id\":\"x; rm -rf "
                                    "/\"}}\n");
    if (env)
        CU_ASSERT_STRING_EQUAL(env, "ZKCOORD_CLUSTER=orders\n"
                                    "ZKCOORD_EVENT=member_joined\n"
                                    "ZKCOORD_FENCING_TOKEN=4294967301\n"
                                    "ZKCOORD_LEADER_ID=orders-2\n"
                                    "ZKCOORD_MEMBERS=orders-1,orders-2\n"
                                    "ZKCOORD_MEMBER_ID=orders-1\n");
    free(doc);
    free(env);
    hrec_destroy(&rec);
}

static void test_handler_coalesce(void)
{
    char script[PATH_MAX], line[64], docs_name[] = "coal.docs";
    char *args[3], *docs;
    zka_handler_cfg c;
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev;
    hrec rec;
    char json[64];
    int i, n;

    hrec_init(&rec);
    o.user_data = &rec;
    path_in(script, "slow.sh");
    CU_ASSERT_EQUAL_FATAL(make_fifo("coal.started"), 0);
    /* Appends its document, says it started, then waits for "go". */
    CU_ASSERT_EQUAL_FATAL(write_file("slow.sh",
                                     "#!/bin/sh\ncat >> \"$1/coal.docs\"\n"
                                     "echo started > \"$1/coal.started\"\n"
                                     "while [ ! -e \"$1/coal.go\" ]; do sleep 0.02; done\n",
                                     0755),
                          0);
    args[0] = script;
    args[1] = dir;
    args[2] = NULL;
    c = hcfg(args, NULL, (1u << ZKA_EV_MEMBERS_CHANGED), 20000, 65536);
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, &c, 1, &o), 0);
    ev = ev_info(ZKA_EV_MEMBERS_CHANGED, "{\"n\":0}");
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    CU_ASSERT_EQUAL(fifo_line("coal.started", line, sizeof(line), 5000), 0);
    /* The storm, while run 1 is active. */
    for (i = 1; i < 50; i++) {
        snprintf(json, sizeof(json), "{\"n\":%d}", i);
        ev = ev_info(ZKA_EV_MEMBERS_CHANGED, json);
        CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    }
    CU_ASSERT_EQUAL(write_file("coal.go", "", 0644), 0);
    /* Run 2 writes "started" too: drain it so it is not blocked. */
    CU_ASSERT_EQUAL(fifo_line("coal.started", line, sizeof(line), 5000), 0);
    n = hrec_wait(&rec, 2, 10000);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(zka_handlers_wait_idle(h, 5000), 0);
    zka_handlers_free(h);
    CU_ASSERT_EQUAL(rec.n, 2);
    if (rec.n == 2) {
        CU_ASSERT_STRING_EQUAL(rec.r[0].json, "{\"n\":0}\n");
        CU_ASSERT_EQUAL(rec.r[0].coalesced, 0);
        CU_ASSERT_STRING_EQUAL(rec.r[1].json, "{\"n\":49}\n");
        CU_ASSERT_EQUAL(rec.r[1].coalesced, 48);
    }
    docs = read_file(docs_name);
    CU_ASSERT_PTR_NOT_NULL(docs);
    if (docs)
        CU_ASSERT_STRING_EQUAL(docs, "{\"n\":0}\n{\"n\":49}\n");
    free(docs);
    hrec_destroy(&rec);
}

/* Work item events coalesce per item (the key), not per type: while run 1
 * is active, 40 items are assigned (more than the queue's first
 * allocation) and p1 a second time. Every item gets its run, with its own
 * ZKCOORD_ITEM; p1 runs once, with its latest document. */
static void test_handler_keyed(void)
{
    char script[PATH_MAX], line[64], json[64], item[16], envs[3][32], want[1024];
    char *args[3], *got, *env[3];
    zka_handler_cfg c;
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev;
    hrec rec;
    int i, n;

    hrec_init(&rec);
    o.user_data = &rec;
    path_in(script, "keyed.sh");
    CU_ASSERT_EQUAL_FATAL(make_fifo("keyed.started"), 0);
    CU_ASSERT_EQUAL_FATAL(write_file("keyed.sh",
                                     "#!/bin/sh\ncat >/dev/null\n"
                                     "echo \"$ZKCOORD_ITEM $ZKCOORD_ITEMS\" >> \"$1/keyed.items\"\n"
                                     "[ \"$ZKCOORD_ITEM\" = p0 ] || exit 0\n"
                                     "echo started > \"$1/keyed.started\"\n"
                                     "while [ ! -e \"$1/keyed.go\" ]; do sleep 0.02; done\n",
                                     0755),
                          0);
    args[0] = script;
    args[1] = dir;
    args[2] = NULL;
    c = hcfg(args, NULL, (1u << ZKA_EV_ITEM_ASSIGNED), 20000, 65536);
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, &c, 1, &o), 0);
    for (i = 0; i <= 41; i++) {
        int k = i == 41 ? 1 : i;
        snprintf(item, sizeof(item), "p%d", k);
        snprintf(json, sizeof(json), "{\"item\":\"p%d\",\"n\":%d}", k, i);
        snprintf(envs[0], sizeof(envs[0]), "ZKCOORD_ITEM=%s", item);
        snprintf(envs[1], sizeof(envs[1]), "ZKCOORD_ITEMS=held-%d", i);
        env[0] = envs[0];
        env[1] = envs[1];
        env[2] = NULL;
        ev = ev_info(ZKA_EV_ITEM_ASSIGNED, json);
        ev.key = item;
        ev.env = env;
        CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
        if (i == 0)
            CU_ASSERT_EQUAL(fifo_line("keyed.started", line, sizeof(line), 5000), 0);
    }
    CU_ASSERT_EQUAL(write_file("keyed.go", "", 0644), 0);
    n = hrec_wait(&rec, 41, 30000);
    CU_ASSERT_EQUAL(n, 41);
    CU_ASSERT_EQUAL(zka_handlers_wait_idle(h, 10000), 0);
    zka_handlers_free(h);
    /* p0, then p2..p40 in order, then p1 (its second assignment replaced
     * the first in the queue, and went to the end) */
    snprintf(want, sizeof(want), "p0 held-0\n");
    for (i = 2; i <= 40; i++) {
        snprintf(line, sizeof(line), "p%d held-%d\n", i, i);
        strcat(want, line);
    }
    strcat(want, "p1 held-41\n");
    got = read_file("keyed.items");
    CU_ASSERT_PTR_NOT_NULL(got);
    if (got)
        CU_ASSERT_STRING_EQUAL(got, want);
    free(got);
    if (rec.n == 41) {
        CU_ASSERT_EQUAL(rec.r[40].coalesced, 1);
        CU_ASSERT_STRING_EQUAL(rec.r[40].json, "{\"item\":\"p1\",\"n\":41}\n");
    }
    hrec_destroy(&rec);
}

/* "drained" and "undrained" toggle one state: while run 1 ("drained") is
 * active, undrain, drain, undrain arrive. The queued pair cancels, so the
 * runs alternate and the last says "undrained"; per-type coalescing alone
 * would run drained, drained, undrained. */
static void test_handler_drain_pair(void)
{
    char script[PATH_MAX], line[64];
    char *args[3];
    zka_handler_cfg c;
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev;
    hrec rec;
    int n;

    hrec_init(&rec);
    o.user_data = &rec;
    path_in(script, "pair.sh");
    CU_ASSERT_EQUAL_FATAL(make_fifo("pair.started"), 0);
    CU_ASSERT_EQUAL_FATAL(write_file("pair.sh",
                                     "#!/bin/sh\ncat >/dev/null\n"
                                     "echo started > \"$1/pair.started\"\n"
                                     "while [ ! -e \"$1/pair.go\" ]; do sleep 0.02; done\n",
                                     0755),
                          0);
    args[0] = script;
    args[1] = dir;
    args[2] = NULL;
    c = hcfg(args, NULL, (1u << ZKA_EV_DRAINED) | (1u << ZKA_EV_UNDRAINED), 20000, 65536);
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, &c, 1, &o), 0);
    ev = ev_info(ZKA_EV_DRAINED, "{\"n\":0}");
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    CU_ASSERT_EQUAL(fifo_line("pair.started", line, sizeof(line), 5000), 0);
    ev = ev_info(ZKA_EV_UNDRAINED, "{\"n\":1}");
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    ev = ev_info(ZKA_EV_DRAINED, "{\"n\":2}");
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 0); /* cancelled with the queued undrained */
    ev = ev_info(ZKA_EV_UNDRAINED, "{\"n\":3}");
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    CU_ASSERT_EQUAL(write_file("pair.go", "", 0644), 0);
    CU_ASSERT_EQUAL(fifo_line("pair.started", line, sizeof(line), 5000), 0);
    n = hrec_wait(&rec, 2, 10000);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(zka_handlers_wait_idle(h, 5000), 0);
    zka_handlers_free(h);
    CU_ASSERT_EQUAL(rec.n, 2);
    if (rec.n == 2) {
        CU_ASSERT_EQUAL(rec.r[0].event, ZKA_EV_DRAINED);
        CU_ASSERT_EQUAL(rec.r[1].event, ZKA_EV_UNDRAINED);
        CU_ASSERT_STRING_EQUAL(rec.r[1].json, "{\"n\":3}\n");
    }
    hrec_destroy(&rec);
}

static void test_handler_timeout(void)
{
    zka_handler_cfg c[2];
    zka_handlers_opts o = {500, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev;
    hrec rec;
    int i;

    hrec_init(&rec);
    o.user_data = &rec;
    /* [0] dies of SIGTERM at its timeout; [1] ignores TERM (so does its
     * sleep, which inherits the disposition) and needs SIGKILL. */
    c[0] = hcfg(NULL, "sleep 30", 1u << ZKA_EV_SUSPENDED, 300, 65536);
    c[1] =
        hcfg(NULL, "trap '' TERM; while :; do sleep 1; done", 1u << ZKA_EV_SUSPENDED, 300, 65536);
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, c, 2, &o), 0);
    ev = ev_info(ZKA_EV_SUSPENDED, "{}");
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 2);
    CU_ASSERT_EQUAL(hrec_wait(&rec, 2, 5000), 2);
    zka_handlers_free(h);
    CU_ASSERT_EQUAL(rec.n, 2);
    for (i = 0; i < rec.n; i++) {
        const zka_handler_result *r = &rec.r[i];

        CU_ASSERT_TRUE(r->timed_out);
        CU_ASSERT_TRUE(WIFSIGNALED(r->wait_status));
        if (r->index == 0) {
            CU_ASSERT_EQUAL(WTERMSIG(r->wait_status), SIGTERM);
            CU_ASSERT_TRUE(r->duration_ms >= 300);
        } else {
            CU_ASSERT_EQUAL(WTERMSIG(r->wait_status), SIGKILL);
            CU_ASSERT_TRUE(r->duration_ms >= 300 + 500 && r->duration_ms < 5000);
        }
    }
    hrec_destroy(&rec);
}

static void test_handler_output_cap(void)
{
    zka_handler_cfg c;
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev;
    hrec rec;

    hrec_init(&rec);
    o.user_data = &rec;
    logs_clear();
    /* 100 lines of 20 bytes; only the first 100 bytes (5 lines) are logged. */
    c = hcfg(NULL,
             "i=0; while [ $i -lt 100 ]; do echo 0123456789abcdefghi; i=$((i+1)); done; "
             "echo done >&2",
             1u << ZKA_EV_ELECTED, 5000, 100);
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, &c, 1, &o), 0);
    ev = ev_info(ZKA_EV_ELECTED, "{}");
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    CU_ASSERT_EQUAL(hrec_wait(&rec, 1, 5000), 1);
    zka_handlers_free(h);
    if (rec.n == 1) {
        CU_ASSERT_EQUAL(rec.r[0].output_bytes, 2005);
        CU_ASSERT_TRUE(WIFEXITED(rec.r[0].wait_status) && WEXITSTATUS(rec.r[0].wait_status) == 0);
    }
    CU_ASSERT_EQUAL(logs_count("handler[0] sh: 0123456789abcdefghi"), 5);
    CU_ASSERT_EQUAL(logs_count("handler[0] sh: [truncated 1905 bytes]"), 1);
    CU_ASSERT_EQUAL(logs_count("handler[0] sh: done"), 0);
    logs_clear();
    hrec_destroy(&rec);
}

static void test_handler_not_found_and_reconfigure(void)
{
    char *bad[] = {"zka-no-such-command-anywhere", NULL};
    zka_handler_cfg c[2], c2[1];
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev;
    hrec rec;

    hrec_init(&rec);
    o.user_data = &rec;
    c[0] = hcfg(bad, NULL, 1u << ZKA_EV_DEMOTED, 1000, 100);
    c[1] = hcfg(NULL, "exit 7", 1u << ZKA_EV_DEMOTED, 1000, 100);
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, c, 2, &o), 0);
    ev = ev_info(ZKA_EV_DEMOTED, "{}");
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 2);
    CU_ASSERT_EQUAL(hrec_wait(&rec, 2, 5000), 2);
    if (rec.n == 2) {
        int bi = rec.r[0].index == 0 ? 0 : 1;
        CU_ASSERT_TRUE(rec.r[bi].spawn_failed);
        CU_ASSERT_FALSE(rec.r[1 - bi].spawn_failed);
        CU_ASSERT_EQUAL(WEXITSTATUS(rec.r[1 - bi].wait_status), 7);
    }
    /* Reload: keep only the "exit 7" handler; it is now index 0. */
    c2[0] = c[1];
    CU_ASSERT_EQUAL(zka_handlers_reconfigure(h, c2, 1), 0);
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    CU_ASSERT_EQUAL(hrec_wait(&rec, 3, 5000), 3);
    if (rec.n == 3) {
        CU_ASSERT_EQUAL(rec.r[2].index, 0);
        CU_ASSERT_EQUAL(WEXITSTATUS(rec.r[2].wait_status), 7);
    }
    ev.event = ZKA_EV_ELECTED;
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 0);
    zka_handlers_free(h);
    hrec_destroy(&rec);
}

/* A document larger than a pipe buffer, to handlers that read it all and
 * that read none: the writer must neither block nor die of SIGPIPE. */
static void test_handler_big_document(void)
{
    zka_handler_cfg c[2];
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev;
    hrec rec;
    char *json;
    size_t n = 300000, i;

    hrec_init(&rec);
    o.user_data = &rec;
    json = malloc(n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    json[0] = '"';
    for (i = 1; i < n - 1; i++)
        json[i] = 'x';
    json[n - 1] = '"';
    json[n] = '\0';
    c[0] = hcfg(NULL, "test \"$(wc -c)\" -eq 300001", 1u << ZKA_EV_MEMBERS_CHANGED, 5000, 100);
    c[1] = hcfg(NULL, "exit 5", 1u << ZKA_EV_MEMBERS_CHANGED, 5000, 100);
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, c, 2, &o), 0);
    ev = ev_info(ZKA_EV_MEMBERS_CHANGED, json);
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 2);
    CU_ASSERT_EQUAL(hrec_wait(&rec, 2, 5000), 2);
    zka_handlers_free(h);
    for (i = 0; i < (size_t)rec.n; i++) {
        CU_ASSERT_TRUE(WIFEXITED(rec.r[i].wait_status));
        CU_ASSERT_EQUAL(WEXITSTATUS(rec.r[i].wait_status), rec.r[i].index == 0 ? 0 : 5);
    }
    free(json);
    hrec_destroy(&rec);
}

/* --------------------------------------------------------------- health */

typedef struct srec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    zka_health_state st[32];
    int n;
} srec;

static void srec_init(srec *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    zkc__cond_init(&s->cond);
}

static void srec_destroy(srec *s)
{
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
}

static void srec_fn(zka_health_state st, const char *reason, void *ud)
{
    srec *s = ud;

    (void)reason;
    pthread_mutex_lock(&s->mu);
    if (s->n < 32)
        s->st[s->n++] = st;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static int srec_wait(srec *s, int n, int timeout_ms)
{
    struct timespec ts;
    int got;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (s->n < n && pthread_cond_timedwait(&s->cond, &s->mu, &ts) != ETIMEDOUT) {
    }
    got = s->n;
    pthread_mutex_unlock(&s->mu);
    return got;
}

static void test_health_hysteresis(void)
{
    char script[PATH_MAX], seq[PATH_MAX];
    char *args[3];
    zka_health_cfg c;
    zka_health *h = NULL;
    srec rec;
    char *left;

    srec_init(&rec);
    path_in(script, "check.sh");
    path_in(seq, "check.seq");
    /* Each check consumes one line of the sequence (exit status); passes
     * once it is empty. */
    CU_ASSERT_EQUAL_FATAL(write_file("check.sh",
                                     "#!/bin/sh\nr=$(head -n 1 \"$1\")\nsed -i 1d \"$1\"\n"
                                     "exit ${r:-0}\n",
                                     0755),
                          0);
    /* p p -> HEALTHY; f p f f p: no change (never 3 failures in a row);
     * f f f -> UNHEALTHY; p f p: no change; p p -> HEALTHY (rise 2 after f). */
    CU_ASSERT_EQUAL_FATAL(
        write_file("check.seq", "0\n0\n1\n0\n1\n1\n0\n1\n1\n1\n0\n1\n0\n0\n", 0644), 0);
    args[0] = script;
    args[1] = seq;
    args[2] = NULL;
    memset(&c, 0, sizeof(c));
    c.kind = ZKA_HEALTH_ARGS;
    c.args = args;
    c.interval_ms = 20;
    c.timeout_ms = 2000;
    c.rise = 2;
    c.fall = 3;
    CU_ASSERT_EQUAL_FATAL(zka_health_new(&h, &c, srec_fn, &rec), 0);
    CU_ASSERT_EQUAL(srec_wait(&rec, 3, 10000), 3);
    zka_health_free(h);
    CU_ASSERT_EQUAL(rec.n, 3);
    CU_ASSERT_EQUAL(rec.st[0], ZKA_HEALTH_HEALTHY);
    CU_ASSERT_EQUAL(rec.st[1], ZKA_HEALTH_UNHEALTHY);
    CU_ASSERT_EQUAL(rec.st[2], ZKA_HEALTH_HEALTHY);
    left = read_file("check.seq");
    CU_ASSERT_PTR_NOT_NULL(left);
    if (left)
        CU_ASSERT_STRING_EQUAL(left, ""); /* the third change came at the very last line */
    free(left);
    srec_destroy(&rec);
}

static void test_health_tcp_and_timeout(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    zka_health_cfg c;
    zka_health *h = NULL;
    srec rec;
    char *sleeper[] = {"sleep", "10", NULL};
    int lfd;

    srec_init(&rec);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    CU_ASSERT_EQUAL_FATAL(listen(lfd, 16), 0);
    CU_ASSERT_EQUAL_FATAL(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    memset(&c, 0, sizeof(c));
    c.kind = ZKA_HEALTH_TCP;
    c.tcp_host = "127.0.0.1";
    c.tcp_port = ntohs(sa.sin_port);
    c.interval_ms = 20;
    c.timeout_ms = 1000;
    c.rise = 2;
    c.fall = 2;
    CU_ASSERT_EQUAL_FATAL(zka_health_new(&h, &c, srec_fn, &rec), 0);
    CU_ASSERT_EQUAL(srec_wait(&rec, 1, 5000), 1);
    CU_ASSERT_EQUAL(zka_health_get(h), ZKA_HEALTH_HEALTHY);
    close(lfd); /* now refused */
    CU_ASSERT_EQUAL(srec_wait(&rec, 2, 5000), 2);
    CU_ASSERT_EQUAL(zka_health_get(h), ZKA_HEALTH_UNHEALTHY);
    zka_health_free(h);
    CU_ASSERT_EQUAL(rec.st[0], ZKA_HEALTH_HEALTHY);
    CU_ASSERT_EQUAL(rec.st[1], ZKA_HEALTH_UNHEALTHY);

    /* A check that hangs fails at its timeout. */
    rec.n = 0;
    memset(&c, 0, sizeof(c));
    c.kind = ZKA_HEALTH_ARGS;
    c.args = sleeper;
    c.interval_ms = 20;
    c.timeout_ms = 100;
    c.rise = 1;
    c.fall = 1;
    {
        long long t0 = now_ms();
        CU_ASSERT_EQUAL_FATAL(zka_health_new(&h, &c, srec_fn, &rec), 0);
        CU_ASSERT_EQUAL(zka_health_get(h), ZKA_HEALTH_UNKNOWN);
        CU_ASSERT_EQUAL(srec_wait(&rec, 1, 5000), 1);
        CU_ASSERT_TRUE(now_ms() - t0 >= 100);
        zka_health_free(h);
        CU_ASSERT_EQUAL(rec.st[0], ZKA_HEALTH_UNHEALTHY);
    }

    /* No health section: healthy at once, no thread, no callback. */
    rec.n = 0;
    memset(&c, 0, sizeof(c));
    CU_ASSERT_EQUAL_FATAL(zka_health_new(&h, &c, srec_fn, &rec), 0);
    CU_ASSERT_EQUAL(zka_health_get(h), ZKA_HEALTH_HEALTHY);
    zka_health_free(h);
    CU_ASSERT_EQUAL(rec.n, 0);
    srec_destroy(&rec);
}

/* ------------------------------------------------------------ supervise */

typedef struct xrec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pid_t pid[32];
    int status[32];
    bool stopped[32];
    int n;
} xrec;

static void xrec_init(xrec *x)
{
    memset(x, 0, sizeof(*x));
    pthread_mutex_init(&x->mu, NULL);
    zkc__cond_init(&x->cond);
}

static void xrec_destroy(xrec *x)
{
    pthread_cond_destroy(&x->cond);
    pthread_mutex_destroy(&x->mu);
}

static void xrec_fn(pid_t pid, int status, bool stopped, void *ud)
{
    xrec *x = ud;

    pthread_mutex_lock(&x->mu);
    if (x->n < 32) {
        x->pid[x->n] = pid;
        x->status[x->n] = status;
        x->stopped[x->n] = stopped;
        x->n++;
    }
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->mu);
}

static int xrec_wait(xrec *x, int n, int timeout_ms)
{
    struct timespec ts;
    int got;

    zkc__deadline(&ts, timeout_ms);
    pthread_mutex_lock(&x->mu);
    while (x->n < n && pthread_cond_timedwait(&x->cond, &x->mu, &ts) != ETIMEDOUT) {
    }
    got = x->n;
    pthread_mutex_unlock(&x->mu);
    return got;
}

static zka_supervise_cfg svcfg(char **args, zka_restart restart, int delay, int grace)
{
    zka_supervise_cfg c;

    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.args = args;
    c.when = ZKA_WHILE_LEADER;
    c.restart = restart;
    c.restart_delay_ms = delay;
    c.stop_grace_ms = grace;
    return c;
}

/* Start the app, read "pid grandchild-pid token mode" from its FIFO. */
static int app_ready(pid_t *pid, pid_t *gpid, char *token, size_t tlen, char *mode, size_t mlen)
{
    char line[256], t[64], m[64];
    int p, g;

    if (fifo_line("app.ready", line, sizeof(line), 5000) != 0)
        return -1;
    if (sscanf(line, "%d %d %63s %63s", &p, &g, t, m) != 4)
        return -1;
    *pid = p;
    *gpid = g;
    snprintf(token, tlen, "%s", t);
    snprintf(mode, mlen, "%s", m);
    return 0;
}

static void test_supervise_group_stop(void)
{
    char script[PATH_MAX], token[64], mode[64];
    char *args[4], *env[] = {"MODE=primary", NULL}, *extra[] = {"ZKCOORD_CLUSTER=orders", NULL};
    zka_supervise_cfg c;
    zka_supervise *sv = NULL;
    xrec x;
    pid_t pid = 0, gpid = 0;
    long long t0;

    xrec_init(&x);
    path_in(script, "app.sh");
    CU_ASSERT_EQUAL_FATAL(make_fifo("app.ready"), 0);
    /* $2 = "stubborn": ignore TERM (the sleep grandchild inherits that). */
    CU_ASSERT_EQUAL_FATAL(
        write_file("app.sh",
                   "#!/bin/sh\n[ \"$2\" = stubborn ] && trap '' TERM\n"
                   "sleep 1000 &\n"
                   "echo \"$$ $! ${ZKCOORD_FENCING_TOKEN:-none} $MODE-$ZKCOORD_CLUSTER\" > "
                   "\"$1/app.ready\"\n"
                   "wait\n",
                   0755),
        0);
    args[0] = script;
    args[1] = dir;
    args[2] = NULL;
    args[3] = NULL;
    c = svcfg(args, ZKA_RESTART_ALWAYS, 50, 2000);
    c.env = env;
    c.n_env = 1;
    CU_ASSERT_EQUAL_FATAL(zka_supervise_new(&sv, &c, extra, xrec_fn, &x), 0);
    CU_ASSERT_EQUAL(zka_supervise_pid(sv), 0);
    zka_supervise_want(sv, true, "17");
    CU_ASSERT_EQUAL(app_ready(&pid, &gpid, token, sizeof(token), mode, sizeof(mode)), 0);
    CU_ASSERT_STRING_EQUAL(token, "17");
    CU_ASSERT_STRING_EQUAL(mode, "primary-orders");
    CU_ASSERT_EQUAL(zka_supervise_pid(sv), pid);
    CU_ASSERT_FALSE(gone(pid));
    CU_ASSERT_FALSE(gone(gpid));
    /* TERM reaches the whole group: both go at once. */
    t0 = now_ms();
    CU_ASSERT_EQUAL(zka_supervise_stop_sync(sv, 5000), 0);
    CU_ASSERT_TRUE(now_ms() - t0 < 2000); /* no grace needed: TERM did it */
    CU_ASSERT_TRUE(gone(pid));
    CU_ASSERT_TRUE(gone(gpid));
    CU_ASSERT_EQUAL(zka_supervise_pid(sv), 0);
    CU_ASSERT_EQUAL(xrec_wait(&x, 1, 2000), 1);
    CU_ASSERT_EQUAL(x.pid[0], pid);
    CU_ASSERT_TRUE(x.stopped[0]);
    CU_ASSERT_TRUE(WIFSIGNALED(x.status[0]) && WTERMSIG(x.status[0]) == SIGTERM);

    zka_supervise_free(sv);
    sv = NULL;

    /* An app that ignores TERM is killed after the grace, group and all. */
    args[2] = "stubborn";
    c.args = args;
    c.stop_grace_ms = 300;
    CU_ASSERT_EQUAL_FATAL(zka_supervise_new(&sv, &c, extra, xrec_fn, &x), 0);
    zka_supervise_want(sv, true, "18");
    CU_ASSERT_EQUAL(app_ready(&pid, &gpid, token, sizeof(token), mode, sizeof(mode)), 0);
    CU_ASSERT_STRING_EQUAL(token, "18");
    t0 = now_ms();
    CU_ASSERT_EQUAL(zka_supervise_stop_sync(sv, 5000), 0);
    CU_ASSERT_TRUE(now_ms() - t0 >= 300);
    CU_ASSERT_TRUE(gone(pid));
    CU_ASSERT_TRUE(gone(gpid));
    CU_ASSERT_EQUAL(xrec_wait(&x, 2, 2000), 2);
    CU_ASSERT_TRUE(x.stopped[1]);
    CU_ASSERT_TRUE(WIFSIGNALED(x.status[1]) && WTERMSIG(x.status[1]) == SIGKILL);
    zka_supervise_free(sv);
    xrec_destroy(&x);
}

static void test_supervise_token_change(void)
{
    char script[PATH_MAX], token[64], mode[64];
    char *args[] = {script, dir, NULL};
    zka_supervise_cfg c;
    zka_supervise *sv = NULL;
    xrec x;
    pid_t pid1 = 0, gpid1 = 0, pid2 = 0, gpid2 = 0;

    xrec_init(&x);
    path_in(script, "app.sh"); /* written by the previous test */
    c = svcfg(args, ZKA_RESTART_ON_FAILURE, 50, 1000);
    CU_ASSERT_EQUAL_FATAL(zka_supervise_new(&sv, &c, NULL, xrec_fn, &x), 0);
    zka_supervise_want(sv, true, "5");
    CU_ASSERT_EQUAL(app_ready(&pid1, &gpid1, token, sizeof(token), mode, sizeof(mode)), 0);
    CU_ASSERT_STRING_EQUAL(token, "5");
    /* A new term: the old app (stale token) goes before the new one starts. */
    zka_supervise_want(sv, true, "9");
    CU_ASSERT_EQUAL(app_ready(&pid2, &gpid2, token, sizeof(token), mode, sizeof(mode)), 0);
    CU_ASSERT_STRING_EQUAL(token, "9");
    CU_ASSERT_NOT_EQUAL(pid1, pid2);
    CU_ASSERT_TRUE(gone(pid1));
    CU_ASSERT_TRUE(gone(gpid1));
    CU_ASSERT_EQUAL(xrec_wait(&x, 1, 2000), 1);
    CU_ASSERT_EQUAL(x.pid[0], pid1);
    CU_ASSERT_TRUE(x.stopped[0]);
    zka_supervise_free(sv); /* stops the second one too */
    CU_ASSERT_TRUE(gone(pid2));
    CU_ASSERT_TRUE(gone(gpid2));
    CU_ASSERT_EQUAL(x.n, 2);
    xrec_destroy(&x);
}

static void test_supervise_restart_policy(void)
{
    char script[PATH_MAX];
    char *args[] = {script, dir, NULL};
    zka_supervise_cfg c;
    zka_supervise *sv = NULL;
    xrec x;
    int i;

    xrec_init(&x);
    path_in(script, "fail.sh");
    CU_ASSERT_EQUAL_FATAL(
        write_file("fail.sh", "#!/bin/sh\nexit \"$(cat \"$1/fail.code\")\"\n", 0755), 0);
    CU_ASSERT_EQUAL_FATAL(write_file("fail.code", "1\n", 0644), 0);

    /* on-failure: exit 1 -> restarted after the delay, again and again. */
    c = svcfg(args, ZKA_RESTART_ON_FAILURE, 30, 1000);
    CU_ASSERT_EQUAL_FATAL(zka_supervise_new(&sv, &c, NULL, xrec_fn, &x), 0);
    zka_supervise_want(sv, true, "1");
    CU_ASSERT_EQUAL(xrec_wait(&x, 3, 5000), 3);
    /* ...but not after a clean exit. */
    CU_ASSERT_EQUAL_FATAL(write_file("fail.code", "0\n", 0644), 0);
    CU_ASSERT_EQUAL(zka_supervise_stop_sync(sv, 2000), 0);
    pthread_mutex_lock(&x.mu);
    x.n = 0;
    pthread_mutex_unlock(&x.mu);
    zka_supervise_want(sv, true, "2");
    CU_ASSERT_EQUAL(xrec_wait(&x, 1, 5000), 1);
    CU_ASSERT_EQUAL(xrec_wait(&x, 2, 300), 1); /* 10 restart delays: no second run */
    CU_ASSERT_TRUE(WIFEXITED(x.status[0]) && WEXITSTATUS(x.status[0]) == 0);
    CU_ASSERT_FALSE(x.stopped[0]);
    /* A new term (want false -> true) runs it again. */
    zka_supervise_want(sv, false, NULL);
    zka_supervise_want(sv, true, "3");
    CU_ASSERT_EQUAL(xrec_wait(&x, 2, 5000), 2);
    zka_supervise_free(sv);
    sv = NULL;

    /* never: one run even when it fails. */
    CU_ASSERT_EQUAL_FATAL(write_file("fail.code", "2\n", 0644), 0);
    pthread_mutex_lock(&x.mu);
    x.n = 0;
    pthread_mutex_unlock(&x.mu);
    c = svcfg(args, ZKA_RESTART_NEVER, 30, 1000);
    CU_ASSERT_EQUAL_FATAL(zka_supervise_new(&sv, &c, NULL, xrec_fn, &x), 0);
    zka_supervise_want(sv, true, "4");
    CU_ASSERT_EQUAL(xrec_wait(&x, 1, 5000), 1);
    CU_ASSERT_EQUAL(xrec_wait(&x, 2, 300), 1);
    CU_ASSERT_EQUAL(WEXITSTATUS(x.status[0]), 2);
    zka_supervise_free(sv);

    /* always: restarts after a clean exit too. */
    CU_ASSERT_EQUAL_FATAL(write_file("fail.code", "0\n", 0644), 0);
    pthread_mutex_lock(&x.mu);
    x.n = 0;
    pthread_mutex_unlock(&x.mu);
    c = svcfg(args, ZKA_RESTART_ALWAYS, 30, 1000);
    CU_ASSERT_EQUAL_FATAL(zka_supervise_new(&sv, &c, NULL, xrec_fn, &x), 0);
    zka_supervise_want(sv, true, "5");
    CU_ASSERT_EQUAL(xrec_wait(&x, 3, 5000), 3);
    zka_supervise_free(sv);
    for (i = 0; i < 3; i++)
        CU_ASSERT_FALSE(x.stopped[i]);
    xrec_destroy(&x);
}

/* --------------------------------------------------------------- notify */

static void test_notify(void)
{
    struct sockaddr_un sa;
    char name[64], buf[256], pid[32];
    ssize_t n;
    int fd;

    /* Abstract namespace ("@..."). */
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(name, sizeof(name), "@zka-notify-test-%d", (int)getpid());
    memcpy(sa.sun_path, name, strlen(name));
    sa.sun_path[0] = '\0';
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa,
                               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))),
                          0);
    setenv("NOTIFY_SOCKET", name, 1);
    CU_ASSERT_EQUAL(zka_notify("READY=1\nSTATUS=member of orders"), 1);
    n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    CU_ASSERT_EQUAL(n, 31);
    if (n >= 0) {
        buf[n] = '\0';
        CU_ASSERT_STRING_EQUAL(buf, "READY=1\nSTATUS=member of orders");
    }
    CU_ASSERT_EQUAL(zka_notifyf("STATUS=%s %d", "leader", 3), 1);
    n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    if (n >= 0) {
        buf[n] = '\0';
        CU_ASSERT_STRING_EQUAL(buf, "STATUS=leader 3");
    }
    close(fd);

    /* A filesystem socket. */
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    CU_ASSERT_TRUE_FATAL(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify.sock", dir) <
                         (int)sizeof(sa.sun_path));
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    CU_ASSERT_EQUAL(zka_notify("WATCHDOG=1"), 1);
    n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    CU_ASSERT_EQUAL(n, 10);
    close(fd);
    unlink(sa.sun_path);

    setenv("NOTIFY_SOCKET", "relative/path", 1);
    CU_ASSERT_EQUAL(zka_notify("READY=1"), -EINVAL);
    unsetenv("NOTIFY_SOCKET");
    CU_ASSERT_EQUAL(zka_notify("READY=1"), 0);

    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "2000000", 1);
    CU_ASSERT_EQUAL(zka_notify_watchdog_usec(), 2000000);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    CU_ASSERT_EQUAL(zka_notify_watchdog_usec(), 2000000);
    setenv("WATCHDOG_PID", "1", 1);
    CU_ASSERT_EQUAL(zka_notify_watchdog_usec(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "x", 1);
    CU_ASSERT_EQUAL(zka_notify_watchdog_usec(), 0);
    unsetenv("WATCHDOG_USEC");
    CU_ASSERT_EQUAL(zka_notify_watchdog_usec(), 0);
}

/* ----------------------------------------------------------------- main */

static int suite_init(void)
{
    snprintf(dir, sizeof(dir), "%s/zka_parts_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    zka_log_set_tap(log_tap, NULL);
    return 0;
}

/* ------------------------------------------- issue 11: processes, peers */

/* Children of this process right now: all of them, and the zombies. */
static int my_children(int *zombies)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    *zombies = 0;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char path[300], buf[512], *p;
        FILE *f;
        size_t k;
        int ppid;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        k = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[k] = '\0';
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1 || ppid != (int)getpid())
            continue;
        n++;
        if (p[2] == 'Z')
            (*zombies)++;
    }
    closedir(d);
    return n;
}

/* 1,000 runs of a handler that leaves a background child and a setsid'd
 * one behind: every run's leftovers are stopped with it and reaped, so this
 * process (a subreaper, as the agent is) ends with no child and no zombie. */
static void test_handler_no_zombies(void)
{
    enum { RUNS = 1000 };
    zka_handler_cfg c =
        hcfg(NULL, "sleep 1 & setsid sleep 2 & exit 0", 1u << ZKA_EV_MEMBER_JOINED, 5000, 4096);
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev = ev_info(ZKA_EV_MEMBER_JOINED, "{}");
    hrec rec;
    int i, ok = 0, n, z;

    hrec_init(&rec);
    o.user_data = &rec;
    o.kill_grace_ms = 500;
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, &c, 1, &o), 0);
    for (i = 0; i < RUNS; i++) {
        if (zka_handlers_fire(h, &ev) != 1 || zka_handlers_wait_idle(h, 10000) != 0)
            break;
        ok++;
    }
    CU_ASSERT_EQUAL(ok, RUNS);
    zka_handlers_free(h);
    n = my_children(&z);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(z, 0);
    if (n || z)
        fprintf(stderr, "    after %d runs: %d children, %d zombies\n", ok, n, z);
    (void)prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
    hrec_destroy(&rec);
}

/* execve's errno reaches the log (close-on-exec pipe from the guard), and
 * the run counts as not started. */
static void test_handler_exec_errno(void)
{
    char script[PATH_MAX], *args[2];
    zka_handler_cfg c;
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev = ev_info(ZKA_EV_ELECTED, "{}");
    hrec rec;
    int i, seen = 0;

    hrec_init(&rec);
    o.user_data = &rec;
    path_in(script, "noexec.sh");
    CU_ASSERT_EQUAL_FATAL(write_file("noexec.sh", "#!/bin/sh\nexit 0\n", 0644), 0);
    args[0] = script;
    args[1] = NULL;
    c = hcfg(args, NULL, 1u << ZKA_EV_ELECTED, 5000, 4096);
    logs_clear();
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, &c, 1, &o), 0);
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    CU_ASSERT_EQUAL(hrec_wait(&rec, 1, 5000), 1);
    zka_handlers_free(h);
    if (rec.n == 1)
        CU_ASSERT_TRUE(rec.r[0].spawn_failed);
    pthread_mutex_lock(&logs.mu);
    for (i = 0; i < logs.n; i++)
        seen += strstr(logs.lines[i], "cannot execute: Permission denied") != NULL;
    pthread_mutex_unlock(&logs.mu);
    CU_ASSERT_EQUAL(seen, 1);
    hrec_destroy(&rec);
}

struct big_members {
    size_t n;
};

static void big_build(void *ctx, char **json, char **members)
{
    struct big_members *b = ctx;
    size_t i, off = 1;
    char *m = malloc(b->n * 12 + 8);

    *json = strdup("{\"event\":\"members_changed\"}");
    m[0] = '[';
    for (i = 0; i < b->n; i++)
        off += (size_t)sprintf(m + off, "%s\"m%08zu\"", i ? "," : "", i);
    m[off++] = ']';
    m[off] = '\0';
    *members = m;
}

/* ZKCOORD_MEMBERS is a JSON array; past ZKA_MEMBERS_ENV_MAX it comes in a
 * file (/dev/fd/3) named by ZKCOORD_MEMBERS_FILE, and the handler runs (it
 * used to exit 127: E2BIG from execve). */
static void test_handler_members_bounded(void)
{
    char script[PATH_MAX], out[PATH_MAX], *args[3], *env = NULL, *file = NULL;
    zka_handler_cfg c;
    zka_handlers_opts o = {0, hrec_done, NULL};
    zka_handlers *h = NULL;
    zka_event_info ev;
    struct big_members *b = malloc(sizeof(*b));
    hrec rec;

    hrec_init(&rec);
    o.user_data = &rec;
    b->n = 20000; /* 12 bytes each: 240 KB */
    path_in(script, "members.sh");
    path_in(out, "members.out");
    CU_ASSERT_EQUAL_FATAL(write_file("members.sh",
                                     "#!/bin/sh\n"
                                     "printf '%s|%s' \"$ZKCOORD_MEMBERS\" "
                                     "\"$ZKCOORD_MEMBERS_FILE\" > \"$1.env\"\n"
                                     "cat \"$ZKCOORD_MEMBERS_FILE\" > \"$1.file\"\n",
                                     0755),
                          0);
    args[0] = script;
    args[1] = out;
    args[2] = NULL;
    c = hcfg(args, NULL, 1u << ZKA_EV_MEMBERS_CHANGED, 5000, 4096);
    CU_ASSERT_EQUAL_FATAL(zka_handlers_new(&h, &c, 1, &o), 0);
    memset(&ev, 0, sizeof(ev));
    ev.event = ZKA_EV_MEMBERS_CHANGED;
    ev.cluster = "orders";
    ev.member_id = "m1";
    ev.build = big_build;
    ev.ctx = b;
    ev.ctx_free = free;
    CU_ASSERT_EQUAL(zka_handlers_fire(h, &ev), 1);
    CU_ASSERT_EQUAL(hrec_wait(&rec, 1, 10000), 1);
    zka_handlers_free(h);
    if (rec.n == 1) {
        CU_ASSERT_FALSE(rec.r[0].spawn_failed);
        CU_ASSERT_TRUE(WIFEXITED(rec.r[0].wait_status) && WEXITSTATUS(rec.r[0].wait_status) == 0);
        CU_ASSERT_STRING_EQUAL(rec.r[0].json, "{\"event\":\"members_changed\"}\n");
    }
    env = read_file("members.out.env");
    file = read_file("members.out.file");
    CU_ASSERT_PTR_NOT_NULL(env);
    CU_ASSERT_PTR_NOT_NULL(file);
    if (env)
        CU_ASSERT_STRING_EQUAL(env, "|/dev/fd/3");
    if (file) {
        CU_ASSERT_EQUAL(strlen(file), 20000 * 12 + 1);
        CU_ASSERT_EQUAL(strncmp(file, "[\"m00000000\",\"m00000001\",", 25), 0);
        CU_ASSERT_EQUAL(strcmp(file + strlen(file) - 13, ",\"m00019999\"]"), 0);
    }
    free(env);
    free(file);
    hrec_destroy(&rec);
}

/* A log line cannot be forged or garbled by peer text: control characters,
 * C1 (CSI U+009B), bidi overrides and invalid UTF-8 are escaped, and a peer
 * string is cut. */
static void test_log_escapes_peer_text(void)
{
    const char *evil = "evil\n<0>zkcoord: FORGED\x1b]0;pwned\x07 \xc2\x9b"
                       "31m \xe2\x80\xae"
                       "rev \xe2\x81\xa6x \xff\xfe ok \xc3\xa9";
    char pb[ZKA_PEER_BUF], longid[600];
    int i;

    logs_clear();
    zka_log(ZKC_LOG_WARN, "leader is now %s", zka_peer(pb, evil));
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    zka_log(ZKC_LOG_WARN, "member id %s", zka_peer(pb, longid));
    /* Raw text straight into zka_log (e.g. a handler's output) too. */
    zka_log(ZKC_LOG_INFO, "handler[0] x: %s", "a\rb\x1b[2Jc\xc2\x85");
    CU_ASSERT_EQUAL(logs_count("leader is now evil\\x0a<0>zkcoord: FORGED\\x1b]0;pwned\\x07 "
                               "\\u009b31m \\u202erev \\u2066x \\xff\\xfe ok \xc3\xa9"),
                    1);
    CU_ASSERT_EQUAL(logs_count("handler[0] x: a\\x0db\\x1b[2Jc\\u0085"), 1);
    pthread_mutex_lock(&logs.mu);
    for (i = 0; i < logs.n; i++) {
        if (strncmp(logs.lines[i], "member id ", 10) == 0) {
            CU_ASSERT_EQUAL(strlen(logs.lines[i]), 10 + ZKA_PEER_LOG_MAX + 3);
            CU_ASSERT_STRING_EQUAL(logs.lines[i] + strlen(logs.lines[i]) - 3, "...");
        }
    }
    pthread_mutex_unlock(&logs.mu);
}

/* Invalid UTF-8 in peer data still makes a JSON string: replaced, not
 * dropped (json_string would fail and the key would go missing). */
static void test_json_str_invalid_utf8(void)
{
    json_t *j = zka_json_str("ab\xff"
                             "c\xc3");
    json_t *ok = zka_json_str("caf\xc3\xa9");
    char *txt;

    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(j), "ab\xef\xbf\xbd"
                                                 "c\xef\xbf\xbd");
    CU_ASSERT_STRING_EQUAL(json_string_value(ok), "caf\xc3\xa9");
    txt = json_dumps(j, JSON_ENCODE_ANY);
    CU_ASSERT_PTR_NOT_NULL(txt);
    free(txt);
    json_decref(j);
    json_decref(ok);
    CU_ASSERT_PTR_NULL(json_string("ab\xff"));
}

static int suite_clean(void)
{
    char cmd[PATH_MAX + 16];

    zka_log_set_tap(NULL, NULL);
    logs_clear();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    CU_pSuite s;
    unsigned failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("agent_parts", suite_init, suite_clean);
    if (!s || !CU_add_test(s, "handler gets JSON on stdin and env", test_handler_stdin_env) ||
        !CU_add_test(s, "handler storm coalesced, no overlap", test_handler_coalesce) ||
        !CU_add_test(s, "item events coalesce per item, with their own environment",
                     test_handler_keyed) ||
        !CU_add_test(s, "drained/undrained queued pair cancels", test_handler_drain_pair) ||
        !CU_add_test(s, "handler timeout: TERM, then KILL", test_handler_timeout) ||
        !CU_add_test(s, "handler output capped", test_handler_output_cap) ||
        !CU_add_test(s, "handler not found; reconfigure", test_handler_not_found_and_reconfigure) ||
        !CU_add_test(s, "handler stdin larger than a pipe", test_handler_big_document) ||
        !CU_add_test(s, "health rise/fall hysteresis", test_health_hysteresis) ||
        !CU_add_test(s, "health tcp, timeout, none", test_health_tcp_and_timeout) ||
        !CU_add_test(s, "supervise stops the whole group", test_supervise_group_stop) ||
        !CU_add_test(s, "supervise restarts on a new token", test_supervise_token_change) ||
        !CU_add_test(s, "supervise restart policy", test_supervise_restart_policy) ||
        !CU_add_test(s, "sd_notify", test_notify) ||
        !CU_add_test(s, "1,000 handler runs leave no process, no zombie",
                     test_handler_no_zombies) ||
        !CU_add_test(s, "execve errno reported", test_handler_exec_errno) ||
        !CU_add_test(s, "ZKCOORD_MEMBERS bounded: file past the limit",
                     test_handler_members_bounded) ||
        !CU_add_test(s, "log lines escape peer text", test_log_escapes_peer_text) ||
        !CU_add_test(s, "JSON strings from invalid UTF-8", test_json_str_invalid_utf8)) {
        fprintf(stderr, "cannot register tests: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
             CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
