/* zkcoordctl against a real server: clusters populated through the library
 * (group join, election, mutex, a malformed member written raw), the built
 * binary run with fork/exec, table and JSON output checked field by field;
 * exit codes (usage, not found, unreachable); `lock` exclusion, exit status
 * passthrough, acquire timeout and the kill on loss; `elect` hand-over;
 * `watch --once`; `elect --observe`. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/testutil.h"
#include "internal.h"
#include "zkcoord/election.h"
#include "zkcoord/group.h"
#include "zkcoord/lock.h"

/* ------------------------------------------------------ running the CLI */

#define OUT_MAX (256 * 1024)

typedef struct proc {
    pid_t pid;
    int fd[2]; /* stdout, stderr; -1 at EOF */
    char buf[2][OUT_MAX];
    size_t len[2];
    int status; /* exit code, 128 + signal, or -1 when killed on timeout */
    int exited;
} proc;

static char bin[1024];
/* Servers the CLI is pointed at instead of tu_zk's (the ensemble test). */
static const char *servers_override;

static const char *cli_bin(void)
{
    const char *top = getenv("top_builddir");

    snprintf(bin, sizeof(bin), "%s/zkcoordctl", top && *top ? top : ".");
    return bin;
}

/* argv: zkcoordctl -s <servers> [--root ROOT] args... (NULL-terminated). */
static int proc_startv(proc *p, const char *root, va_list ap)
{
    const char *argv[64];
    int n = 0, out[2], err[2];
    const char *a;

    memset(p, 0, sizeof(*p));
    argv[n++] = cli_bin();
    argv[n++] = "-s";
    argv[n++] = servers_override ? servers_override : zkh_connect_string(tu_zk);
    if (root) {
        argv[n++] = "--root";
        argv[n++] = root;
    }
    while ((a = va_arg(ap, const char *)) != NULL && n < 63)
        argv[n++] = a;
    argv[n] = NULL;
    if (pipe(out) != 0)
        return -1;
    if (pipe(err) != 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    fflush(NULL);
    p->pid = fork();
    if (p->pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(out[1]);
        close(err[0]);
        close(err[1]);
        execv(argv[0], (char *const *)argv);
        _exit(126);
    }
    close(out[1]);
    close(err[1]);
    p->fd[0] = out[0];
    p->fd[1] = err[0];
    if (p->pid < 0) {
        close(out[0]);
        close(err[0]);
        return -1;
    }
    return 0;
}

static int proc_start(proc *p, const char *root, ...)
{
    va_list ap;
    int rc;

    va_start(ap, root);
    rc = proc_startv(p, root, ap);
    va_end(ap);
    return rc;
}

/* Read what is there, waiting up to timeout_ms for something. */
static void proc_pump(proc *p, int timeout_ms)
{
    struct pollfd pfd[2];
    int i, n = 0;

    for (i = 0; i < 2; i++) {
        pfd[i].fd = p->fd[i];
        pfd[i].events = POLLIN;
        pfd[i].revents = 0;
        if (p->fd[i] >= 0)
            n++;
    }
    if (n == 0)
        return;
    if (poll(pfd, 2, timeout_ms) <= 0)
        return;
    for (i = 0; i < 2; i++) {
        ssize_t r;

        if (p->fd[i] < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        r = read(p->fd[i], p->buf[i] + p->len[i], OUT_MAX - 1 - p->len[i]);
        if (r <= 0) {
            close(p->fd[i]);
            p->fd[i] = -1;
        } else {
            p->len[i] += (size_t)r;
            p->buf[i][p->len[i]] = '\0';
        }
    }
}

/* Wait until stream `which` (0 stdout, 1 stderr) contains `needle`. */
static int proc_wait_for(proc *p, int which, const char *needle, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;

    while (!strstr(p->buf[which], needle)) {
        long long left = end - tu_now_ms();

        if (left <= 0 || (p->fd[which] < 0))
            return -1;
        proc_pump(p, (int)left);
    }
    return 0;
}

static int status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* Wait for the exit (and EOF on both streams); SIGKILL on timeout. */
static int proc_wait(proc *p, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    int st, i;

    while (!p->exited) {
        long long left = end - tu_now_ms();
        pid_t r = waitpid(p->pid, &st, WNOHANG);

        if (r == p->pid) {
            p->exited = 1;
            p->status = status_code(st);
            break;
        }
        if (left <= 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            p->exited = 1;
            p->status = -1;
            break;
        }
        if (p->fd[0] < 0 && p->fd[1] < 0) {
            struct pollfd none;

            poll(&none, 0, left < 10 ? (int)left : 10); /* nothing to read: a pause, not a sync */
        } else {
            proc_pump(p, left < 50 ? (int)left : 50);
        }
    }
    for (i = 0; i < 2; i++)
        while (p->fd[i] >= 0)
            proc_pump(p, 1000);
    /* Under ASan/UBSan builds the CLI reports on stderr: a finding is a failure. */
    CU_ASSERT_PTR_NULL(strstr(p->buf[1], "Sanitizer"));
    CU_ASSERT_PTR_NULL(strstr(p->buf[1], "runtime error:"));
    if (strstr(p->buf[1], "Sanitizer") || strstr(p->buf[1], "runtime error:"))
        fprintf(stderr, "    zkcoordctl stderr:\n%s\n", p->buf[1]);
    return p->status;
}

/* Run to completion; returns the exit code. */
static int run(proc *p, const char *root, ...)
{
    va_list ap;
    int rc;

    va_start(ap, root);
    rc = proc_startv(p, root, ap);
    va_end(ap);
    if (rc)
        return -2;
    return proc_wait(p, 20000);
}

static void proc_kill(proc *p, int sig)
{
    if (p->pid > 0 && !p->exited)
        kill(p->pid, sig);
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);

    if (!j)
        fprintf(stderr, "    bad JSON (%s, line %d): %s\n", e.text, e.line, text);
    return j;
}

static const char *jstr(json_t *o, const char *path)
{
    json_t *v = o;
    char key[128];
    const char *p = path;

    while (v && *p) {
        size_t n = strcspn(p, ".");

        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        if (json_is_array(v))
            v = json_array_get(v, (size_t)atoi(key));
        else
            v = json_object_get(v, key);
        p += n;
        if (*p == '.')
            p++;
    }
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *jget(json_t *o, const char *path)
{
    json_t *v = o;
    char key[128];
    const char *p = path;

    while (v && *p) {
        size_t n = strcspn(p, ".");

        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        if (json_is_array(v))
            v = json_array_get(v, (size_t)atoi(key));
        else
            v = json_object_get(v, key);
        p += n;
        if (*p == '.')
            p++;
    }
    return v;
}

static long long jint(json_t *o, const char *path)
{
    json_t *v = jget(o, path);

    return json_is_integer(v) ? (long long)json_integer_value(v) : -999;
}

static const char *hex(char *buf, size_t len, int64_t v)
{
    snprintf(buf, len, "0x%" PRIx64, (uint64_t)v);
    return buf;
}

/* The line of `text` that starts with `prefix` (copied into buf), or NULL. */
static const char *line_starting(const char *text, const char *prefix, char *buf, size_t len)
{
    const char *l = text;

    while (l && *l) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);

        if (strncmp(l, prefix, strlen(prefix)) == 0) {
            snprintf(buf, len, "%.*s", (int)n, l);
            return buf;
        }
        l = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* Column start of `word` in `line` (first match), -1 when absent. */
static int col(const char *line, const char *word)
{
    const char *w = line ? strstr(line, word) : NULL;

    return w ? (int)(w - line) : -1;
}

/* Number of children of `path` (-1 on error): one async getChildren. */
struct count_req {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done, count, refs;
};

static void count_unref(struct count_req *r)
{
    int last;

    pthread_mutex_lock(&r->mu);
    last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->mu);
        free(r);
    }
}

static void count_done(int zrc, const struct String_vector *sv, const void *data)
{
    struct count_req *r = (struct count_req *)data;

    pthread_mutex_lock(&r->mu);
    r->count = zrc == ZOK && sv ? sv->count : -1;
    r->done = 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    count_unref(r);
}

static int count_children(zkc_session *s, const char *path)
{
    struct count_req *r = calloc(1, sizeof(*r));
    struct timespec ts;
    zhandle_t *zh;
    int n = -1, zrc = ZCONNECTIONLOSS;

    if (!r)
        return -1;
    pthread_mutex_init(&r->mu, NULL);
    zkc__cond_init(&r->cond);
    r->refs = 2;
    zh = zkc__zh_lock(s, NULL);
    if (zh) {
        zrc = zoo_aget_children(zh, path, 0, count_done, r);
        zkc__zh_unlock(s);
    }
    if (zrc != ZOK) {
        count_unref(r);
        count_unref(r);
        return -1;
    }
    zkc__deadline(&ts, 5000);
    pthread_mutex_lock(&r->mu);
    while (!r->done && pthread_cond_timedwait(&r->cond, &r->mu, &ts) == 0)
        ;
    if (r->done)
        n = r->count;
    pthread_mutex_unlock(&r->mu);
    count_unref(r);
    return n;
}

/* Wait until `path` has n children: polled (no event to wait on from
 * another process's queue entry), with a deadline. */
static int wait_children(zkc_session *s, const char *path, int n, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;

    while (count_children(s, path) != n) {
        if (tu_now_ms() > end)
            return -1;
        poll(NULL, 0, 20);
    }
    return 0;
}

/* ------------------------------------------------------------ the tests */

static void test_usage(void)
{
    static const char *cmds[] = {"clusters", "status", "members", "leader", "locks",
                                 "watch",    "lock",   "elect",   "tree"};
    proc p;
    size_t i;

    CU_ASSERT_EQUAL(run(&p, NULL, NULL), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[1], "usage: zkcoordctl [-s SERVERS] [--root PATH] "
                                            "[--format table|json] [--timeout MS] "
                                            "[--auth-file FILE] COMMAND"));
    CU_ASSERT_EQUAL(run(&p, NULL, "frobnicate", NULL), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[1], "unknown command 'frobnicate'"));
    CU_ASSERT_EQUAL(run(&p, NULL, "status", NULL), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[1], "usage: zkcoordctl [OPTIONS] status CLUSTER"));
    CU_ASSERT_EQUAL(run(&p, NULL, "--format", "xml", "clusters", NULL), 2);
    CU_ASSERT_EQUAL(run(&p, NULL, "--timeout", "soon", "clusters", NULL), 2);
    CU_ASSERT_EQUAL(run(&p, NULL, "lock", "/x", NULL), 2); /* no command */
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[1], "usage: zkcoordctl [OPTIONS] lock PATH"));
    CU_ASSERT_EQUAL(run(&p, NULL, "elect", "c", "--", "true", NULL), 2); /* no id */
    CU_ASSERT_EQUAL(run(&p, NULL, "members", "a/b", NULL), 2);
    CU_ASSERT_EQUAL(run(&p, NULL, "--help", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "Exit status:"));
    for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char want[64];

        /* --help never connects (nor needs its arguments). */
        CU_ASSERT_EQUAL(run(&p, NULL, cmds[i], "--help", NULL), 0);
        snprintf(want, sizeof(want), "usage: zkcoordctl [OPTIONS] %s", cmds[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], want));
    }
}

static void test_unreachable(void)
{
    proc p;
    long long t0 = tu_now_ms(), dt;
    int rc;

    memset(&p, 0, sizeof(p));
    {
        /* Not through run(): another server list. */
        const char *argv[] = {cli_bin(), "-s",     "127.0.0.1:1", "--timeout",
                              "800",     "status", "x",           NULL};
        int out[2], err[2], st;

        CU_ASSERT_EQUAL_FATAL(pipe(out), 0);
        CU_ASSERT_EQUAL_FATAL(pipe(err), 0);
        p.pid = fork();
        if (p.pid == 0) {
            dup2(out[1], 1);
            dup2(err[1], 2);
            execv(argv[0], (char *const *)argv);
            _exit(126);
        }
        close(out[1]);
        close(err[1]);
        p.fd[0] = out[0];
        p.fd[1] = err[0];
        rc = proc_wait(&p, 10000);
        (void)st;
    }
    dt = tu_now_ms() - t0;
    CU_ASSERT_EQUAL(rc, 4);
    CU_ASSERT_STRING_EQUAL(p.buf[1], "zkcoordctl: ZooKeeper unreachable: no answer from "
                                     "127.0.0.1:1 within 800 ms\n");
    CU_ASSERT_EQUAL(p.len[0], 0);
    CU_ASSERT(dt >= 790);
    CU_ASSERT(dt < 800 + 2500);
}

static void test_not_found(void)
{
    proc p;

    CU_ASSERT_EQUAL(run(&p, "/t_nf", "status", "nosuch", NULL), 3);
    CU_ASSERT_STRING_EQUAL(p.buf[1], "zkcoordctl: no cluster 'nosuch' under /t_nf\n");
    CU_ASSERT_EQUAL(run(&p, "/t_nf", "members", "nosuch", NULL), 3);
    CU_ASSERT_EQUAL(run(&p, "/t_nf", "leader", "nosuch", NULL), 3);
    CU_ASSERT_EQUAL(run(&p, "/t_nf", "locks", "nosuch", NULL), 3);
    CU_ASSERT_EQUAL(run(&p, "/t_nf", "tree", "/t_nf/nosuch", NULL), 3);
    CU_ASSERT_EQUAL(run(&p, "/t_nf", "clusters", NULL), 0); /* no root: no clusters */
    CU_ASSERT_STRING_EQUAL(p.buf[0], "CLUSTER  MEMBERS  LEADER  LOCKS\n");
}

/* A cluster "c" under /t_pop: two members, a malformed member node, a leader,
 * a held lock with one waiter. */
struct pop {
    zkc_session *s;
    zkc_group *g1, *g2;
    zkc_election *e;
    zkc_lock *holder, *waiter;
    int64_t etoken, ltoken;
};

static const char garbage[] = "\x01not json {\"serviceEndpoint\"";

/* The waiter never gets the lock while the test runs; freeing it cancels. */
static void waiter_cb(zkc_lock *l, int rc, int64_t t, void *ud)
{
    (void)l;
    (void)rc;
    (void)t;
    (void)ud;
}

static int populate(struct pop *p)
{
    static const zkc_endpoint eps[] = {{"admin", "10.0.0.1", 9090}};
    zkc_member_info mi;
    zkc_election_opts eo;
    zkc_lock_opts lo;
    zkc_op op;

    memset(p, 0, sizeof(*p));
    if (tu_session(&p->s, NULL, 10000, NULL) != 0)
        return -1;
    if (zkc_group_new(&p->g1, p->s, "/t_pop/c/members", NULL) != 0 ||
        zkc_group_new(&p->g2, p->s, "/t_pop/c/members", NULL) != 0)
        return -1;
    memset(&mi, 0, sizeof(mi));
    mi.id = "a-1";
    mi.host = "10.0.0.1";
    mi.port = 8080;
    mi.endpoints = eps;
    mi.n_endpoints = 1;
    mi.metadata = "{\"zone\":\"a\"}";
    if (zkc_group_join(p->g1, &mi) != 0 || zkc_group_wait_joined(p->g1, 10000) != 0)
        return -1;
    memset(&mi, 0, sizeof(mi));
    mi.id = "a-2";
    mi.host = "10.0.0.2";
    mi.port = 8081;
    mi.status = "STARTING";
    if (zkc_group_join(p->g2, &mi) != 0 || zkc_group_wait_joined(p->g2, 10000) != 0)
        return -1;
    /* Another tool's garbage, written raw (the members folder exists). */
    memset(&op, 0, sizeof(op));
    op.type = ZKC_OP_CREATE;
    op.path = "/t_pop/c/members/member_0000000099";
    op.data = garbage;
    op.len = (int)strlen(garbage);
    op.flags = ZKC_CREATE_EPHEMERAL;
    if (zkc_fenced_multi(p->s, "/t_pop/c/members", &op, 1, 10000) != 0)
        return -1;
    zkc_election_opts_init(&eo);
    eo.id = "a-1";
    if (zkc_election_new(&p->e, p->s, "/t_pop/c/leader", &eo) != 0 ||
        zkc_election_await_leadership(p->e, 10000, &p->etoken) != 0)
        return -1;
    zkc_lock_opts_init(&lo);
    lo.owner_id = "holder-1";
    if (zkc_lock_new(&p->holder, p->s, "/t_pop/c/locks/db", &lo) != 0 ||
        zkc_lock_acquire(p->holder, 10000, &p->ltoken) != 0)
        return -1;
    lo.owner_id = "waiter-2";
    if (zkc_lock_new(&p->waiter, p->s, "/t_pop/c/locks/db", &lo) != 0 ||
        zkc_lock_acquire_async(p->waiter, waiter_cb, NULL) != 0)
        return -1;
    return wait_children(p->s, "/t_pop/c/locks/db", 2, 10000);
}

static void unpopulate(struct pop *p)
{
    zkc_lock_free(p->waiter);
    zkc_lock_free(p->holder);
    zkc_election_close(p->e);
    zkc_group_free(p->g1);
    zkc_group_free(p->g2);
    zkc_session_close(p->s);
}

static void test_populated_json(void)
{
    struct pop pp;
    char sess[32], *malformed_payload = NULL;
    json_t *j = NULL, *m;
    proc p;
    size_t i;
    int found_bad = 0;

    TU_CHECK(populate(&pp) == 0, out);
    hex(sess, sizeof(sess), zkc_session_id(pp.s));

    /* members */
    CU_ASSERT_EQUAL(run(&p, "/t_pop", "--format", "json", "members", "c", NULL), 0);
    j = parse(p.buf[0]);
    TU_CHECK(j != NULL, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "cluster"), "c");
    CU_ASSERT_STRING_EQUAL(jstr(j, "path"), "/t_pop/c/members");
    TU_CHECK(json_array_size(json_object_get(j, "members")) == 3, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "members.0.id"), "a-1");
    CU_ASSERT_STRING_EQUAL(jstr(j, "members.0.host"), "10.0.0.1");
    CU_ASSERT_EQUAL(jint(j, "members.0.port"), 8080);
    CU_ASSERT_STRING_EQUAL(jstr(j, "members.0.endpoints.admin.host"), "10.0.0.1");
    CU_ASSERT_EQUAL(jint(j, "members.0.endpoints.admin.port"), 9090);
    CU_ASSERT_STRING_EQUAL(jstr(j, "members.0.status"), "ALIVE");
    CU_ASSERT_EQUAL(jint(j, "members.0.shard"), 0);
    CU_ASSERT_STRING_EQUAL(jstr(j, "members.0.metadata.zone"), "a");
    CU_ASSERT_STRING_EQUAL(jstr(j, "members.0.session"), sess);
    CU_ASSERT(jint(j, "members.0.czxid") > 0);
    CU_ASSERT(jint(j, "members.0.age_ms") >= 0);
    CU_ASSERT_EQUAL(json_array_size(jget(j, "members.0.flags")), 0);
    CU_ASSERT_PTR_NULL(jget(j, "members.0.payload"));
    CU_ASSERT_STRING_EQUAL(jstr(j, "members.1.id"), "a-2");
    CU_ASSERT_EQUAL(jint(j, "members.1.port"), 8081);
    CU_ASSERT_STRING_EQUAL(jstr(j, "members.1.status"), "STARTING");
    /* No metadata given: the library writes an empty object. */
    CU_ASSERT(json_is_object(jget(j, "members.1.metadata")) &&
              json_object_size(jget(j, "members.1.metadata")) == 0);
    for (i = 0; i < 3; i++) {
        char key[64];

        m = json_array_get(json_object_get(j, "members"), i);
        if (strcmp(jstr(m, "node") ? jstr(m, "node") : "", "member_0000000099") != 0)
            continue;
        found_bad = 1;
        CU_ASSERT(json_is_null(json_object_get(m, "id")));
        CU_ASSERT(json_is_null(json_object_get(m, "host")));
        CU_ASSERT_STRING_EQUAL(jstr(m, "flags.0"), "malformed");
        snprintf(key, sizeof(key), "payload");
        malformed_payload = jstr(m, key) ? strdup(jstr(m, key)) : NULL;
        CU_ASSERT_STRING_EQUAL(jstr(m, "session"), sess);
    }
    CU_ASSERT(found_bad);
    /* Raw bytes escaped so the JSON stays valid: \x01 shown as text. */
    CU_ASSERT(malformed_payload && strcmp(malformed_payload, garbage) == 0);
    json_decref(j);

    /* leader */
    CU_ASSERT_EQUAL(run(&p, "/t_pop", "-f", "json", "leader", "c", NULL), 0);
    j = parse(p.buf[0]);
    TU_CHECK(j != NULL, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "cluster"), "c");
    CU_ASSERT_STRING_EQUAL(jstr(j, "path"), "/t_pop/c/leader");
    CU_ASSERT_STRING_EQUAL(jstr(j, "leader.id"), "a-1");
    CU_ASSERT_EQUAL(jint(j, "leader.token"), pp.etoken);
    CU_ASSERT_STRING_EQUAL(jstr(j, "leader.session"), sess);
    CU_ASSERT(strncmp(jstr(j, "leader.node") ? jstr(j, "leader.node") : "", "_c_", 3) == 0);
    json_decref(j);

    /* locks */
    CU_ASSERT_EQUAL(run(&p, "/t_pop", "-f", "json", "locks", "c", NULL), 0);
    j = parse(p.buf[0]);
    TU_CHECK(j != NULL, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "path"), "/t_pop/c/locks");
    TU_CHECK(json_array_size(json_object_get(j, "locks")) == 1, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.name"), "db");
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.path"), "/t_pop/c/locks/db");
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.type"), "mutex");
    CU_ASSERT_EQUAL(json_array_size(jget(j, "locks.0.holders")), 1);
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.holders.0.owner"), "holder-1");
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.holders.0.kind"), "mutex");
    CU_ASSERT_EQUAL(jint(j, "locks.0.holders.0.token"), pp.ltoken);
    CU_ASSERT_EQUAL(jint(j, "locks.0.holders.0.seq"), 0);
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.holders.0.session"), sess);
    CU_ASSERT_EQUAL(jint(j, "locks.0.waiting"), 1);
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.queue.0.owner"), "waiter-2");
    CU_ASSERT_EQUAL(jint(j, "locks.0.queue.0.seq"), 1);
    CU_ASSERT(jint(j, "locks.0.queue.0.token") > pp.ltoken);
    json_decref(j);
    CU_ASSERT_EQUAL(run(&p, "/t_pop", "-f", "json", "locks", "c", "nosuch", NULL), 3);

    /* status: the three together */
    CU_ASSERT_EQUAL(run(&p, "/t_pop", "-f", "json", "status", "c", NULL), 0);
    j = parse(p.buf[0]);
    TU_CHECK(j != NULL, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "cluster"), "c");
    CU_ASSERT_STRING_EQUAL(jstr(j, "path"), "/t_pop/c");
    CU_ASSERT_STRING_EQUAL(jstr(j, "leader.id"), "a-1");
    CU_ASSERT_EQUAL(jint(j, "leader.token"), pp.etoken);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "members")), 3);
    CU_ASSERT_STRING_EQUAL(jstr(j, "members.0.id"), "a-1");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "locks")), 1);
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.holders.0.owner"), "holder-1");
    json_decref(j);

    /* clusters */
    CU_ASSERT_EQUAL(run(&p, "/t_pop", "-f", "json", "clusters", NULL), 0);
    j = parse(p.buf[0]);
    TU_CHECK(j != NULL, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "root"), "/t_pop");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "clusters")), 1);
    CU_ASSERT_STRING_EQUAL(jstr(j, "clusters.0.name"), "c");
    CU_ASSERT_EQUAL(jint(j, "clusters.0.members"), 3);
    CU_ASSERT_STRING_EQUAL(jstr(j, "clusters.0.leader"), "a-1");
    CU_ASSERT_EQUAL(jint(j, "clusters.0.locks"), 1);
    json_decref(j);

    /* tree: raw nodes */
    CU_ASSERT_EQUAL(run(&p, "/t_pop", "-f", "json", "tree", "c/members", NULL), 0);
    j = parse(p.buf[0]);
    TU_CHECK(j != NULL, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "path"), "/t_pop/c/members");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "nodes")), 4);
    CU_ASSERT_STRING_EQUAL(jstr(j, "nodes.0.path"), "/t_pop/c/members");
    CU_ASSERT_STRING_EQUAL(jstr(j, "nodes.0.type"), "persistent");
    CU_ASSERT(json_is_null(jget(j, "nodes.0.session")));
    CU_ASSERT_EQUAL(jint(j, "nodes.0.children"), 3);
    /* Names sort as "member_0000000099" < "member_<guid>...": digits first. */
    CU_ASSERT_STRING_EQUAL(jstr(j, "nodes.1.path"), "/t_pop/c/members/member_0000000099");
    CU_ASSERT_STRING_EQUAL(jstr(j, "nodes.1.type"), "ephemeral");
    CU_ASSERT_STRING_EQUAL(jstr(j, "nodes.1.session"), sess);
    CU_ASSERT_EQUAL(jint(j, "nodes.1.data_length"), (long long)strlen(garbage));
    CU_ASSERT_EQUAL(jint(j, "nodes.1.children"), 0);
    json_decref(j);
    j = NULL;
out:
    json_decref(j);
    free(malformed_payload);
    unpopulate(&pp);
}

static void test_populated_table(void)
{
    struct pop pp;
    char sess[32], line[1024], hdr[1024], want[256];
    const char *row;
    proc p;

    TU_CHECK(populate(&pp) == 0, out);
    hex(sess, sizeof(sess), zkc_session_id(pp.s));

    CU_ASSERT_EQUAL(run(&p, "/t_pop", "members", "c", NULL), 0);
    TU_CHECK(line_starting(p.buf[0], "ID ", hdr, sizeof(hdr)) != NULL, out);
    row = line_starting(p.buf[0], "a-1 ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    /* Aligned: every value starts under its header. */
    CU_ASSERT_EQUAL(col(row, "10.0.0.1:8080"), col(hdr, "ENDPOINT"));
    CU_ASSERT_EQUAL(col(row, "ALIVE"), col(hdr, "STATUS"));
    CU_ASSERT_EQUAL(col(row, sess), col(hdr, "SESSION"));
    CU_ASSERT(col(hdr, "AGE") > col(hdr, "SESSION"));
    row = line_starting(p.buf[0], "a-2 ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "10.0.0.2:8081"), col(hdr, "ENDPOINT"));
    CU_ASSERT_EQUAL(col(row, "STARTING"), col(hdr, "STATUS"));
    /* The malformed member: shown as such, bytes escaped. */
    row = line_starting(p.buf[0], "- ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "MALFORMED"), col(hdr, "STATUS"));
    CU_ASSERT_EQUAL(col(row, "malformed: \\x01not json"), col(hdr, "NOTE"));

    CU_ASSERT_EQUAL(run(&p, "/t_pop", "leader", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(line_starting(p.buf[0], "ID  ", hdr, sizeof(hdr)));
    row = line_starting(p.buf[0], "a-1 ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    snprintf(want, sizeof(want), "%" PRId64, pp.etoken);
    CU_ASSERT_EQUAL(col(row, want), col(hdr, "TOKEN"));
    CU_ASSERT_EQUAL(col(row, sess), col(hdr, "SESSION"));
    CU_ASSERT_EQUAL(col(row, "_c_"), col(hdr, "NODE"));

    CU_ASSERT_EQUAL(run(&p, "/t_pop", "locks", "c", NULL), 0);
    TU_CHECK(line_starting(p.buf[0], "NAME ", hdr, sizeof(hdr)) != NULL, out);
    row = line_starting(p.buf[0], "db ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    snprintf(want, sizeof(want), " %" PRId64 " ", pp.ltoken);
    CU_ASSERT_EQUAL(col(row, "mutex"), col(hdr, "TYPE"));
    CU_ASSERT_EQUAL(col(row, "holder-1"), col(hdr, "HOLDER"));
    CU_ASSERT_EQUAL(col(row, want) + 1, col(hdr, "TOKEN"));
    CU_ASSERT_EQUAL(col(row, sess), col(hdr, "SESSION"));
    CU_ASSERT_EQUAL((int)(strrchr(row, ' ') - row) + 1, col(hdr, "WAITING"));
    CU_ASSERT_EQUAL(row[strlen(row) - 1], '1');

    CU_ASSERT_EQUAL(run(&p, "/t_pop", "locks", "c", "db", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "/t_pop/c/locks/db (mutex)\n"));
    TU_CHECK(line_starting(p.buf[0], "POS ", hdr, sizeof(hdr)) != NULL, out);
    row = line_starting(p.buf[0], "0 ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "holds"), col(hdr, "STATE"));
    CU_ASSERT_EQUAL(col(row, "holder-1"), col(hdr, "OWNER"));
    row = line_starting(p.buf[0], "1 ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "waits"), col(hdr, "STATE"));
    CU_ASSERT_EQUAL(col(row, "waiter-2"), col(hdr, "OWNER"));

    CU_ASSERT_EQUAL(run(&p, "/t_pop", "status", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "Cluster: c (/t_pop/c)\n"));
    snprintf(want, sizeof(want), "Leader:  a-1 (token %" PRId64 ", session %s)\n", pp.etoken, sess);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], want));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "\nMembers (3):\nID "));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "\nLocks (1):\nNAME "));
    CU_ASSERT_PTR_NOT_NULL(line_starting(p.buf[0], "a-1 ", line, sizeof(line)));
    CU_ASSERT_PTR_NOT_NULL(line_starting(p.buf[0], "db ", line, sizeof(line)));
    printf("\n%s", p.buf[0]); /* the README's sample */

    CU_ASSERT_EQUAL(run(&p, "/t_pop", "clusters", NULL), 0);
    TU_CHECK(line_starting(p.buf[0], "CLUSTER ", hdr, sizeof(hdr)) != NULL, out);
    row = line_starting(p.buf[0], "c ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "3"), col(hdr, "MEMBERS"));
    CU_ASSERT_EQUAL(col(row, "a-1"), col(hdr, "LEADER"));
    CU_ASSERT_EQUAL((int)strlen(row) - 1, col(hdr, "LOCKS"));
    CU_ASSERT_EQUAL(row[strlen(row) - 1], '1');

    CU_ASSERT_EQUAL(run(&p, "/t_pop", "tree", NULL), 0);
    TU_CHECK(line_starting(p.buf[0], "NODE ", hdr, sizeof(hdr)) != NULL, out);
    row = line_starting(p.buf[0], "/t_pop ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "persistent"), col(hdr, "TYPE"));
    row = line_starting(p.buf[0], "      member_0000000099 ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "ephemeral"), col(hdr, "TYPE"));
    CU_ASSERT_EQUAL(col(row, sess), col(hdr, "SESSION"));
    snprintf(want, sizeof(want), "%zu", strlen(garbage));
    CU_ASSERT_EQUAL(col(row + col(hdr, "SIZE"), want), 0);
out:
    unpopulate(&pp);
}

static void test_no_leader(void)
{
    zkc_session *s = NULL;
    zkc_group *g = NULL;
    zkc_member_info mi;
    json_t *j;
    proc p;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 10000, NULL), 0);
    TU_CHECK(zkc_group_new(&g, s, "/t_nl/c/members", NULL) == 0, out);
    memset(&mi, 0, sizeof(mi));
    mi.id = "only";
    TU_CHECK(zkc_group_join(g, &mi) == 0 && zkc_group_wait_joined(g, 10000) == 0, out);
    CU_ASSERT_EQUAL(run(&p, "/t_nl", "leader", "c", NULL), 3);
    CU_ASSERT_STRING_EQUAL(p.buf[1], "zkcoordctl: no leader in cluster 'c'\n");
    CU_ASSERT_EQUAL(run(&p, "/t_nl", "-f", "json", "leader", "c", NULL), 3);
    j = parse(p.buf[0]);
    CU_ASSERT(j && json_is_null(json_object_get(j, "leader")));
    json_decref(j);
    CU_ASSERT_EQUAL(run(&p, "/t_nl", "status", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "Leader:  none\n"));
out:
    zkc_group_free(g);
    zkc_session_close(s);
}

static void test_watch_once(void)
{
    zkc_session *s = NULL;
    zkc_group *g = NULL, *old = NULL;
    zkc_member_info mi;
    json_t *j = NULL;
    proc p;

    memset(&p, 0, sizeof(p));
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 10000, NULL), 0);
    /* One member before the watch starts: not a change. */
    TU_CHECK(zkc_group_new(&old, s, "/t_w/c/members", NULL) == 0, out);
    memset(&mi, 0, sizeof(mi));
    mi.id = "w-0";
    TU_CHECK(zkc_group_join(old, &mi) == 0 && zkc_group_wait_joined(old, 10000) == 0, out);
    TU_CHECK(proc_start(&p, "/t_w", "-v", "watch", "c", "--once", NULL) == 0, out);
    TU_CHECK(proc_wait_for(&p, 1, "watching /t_w/c", 10000) == 0, out);
    TU_CHECK(zkc_group_new(&g, s, "/t_w/c/members", NULL) == 0, out);
    mi.id = "w-1";
    mi.host = "127.0.0.1";
    mi.port = 7000;
    TU_CHECK(zkc_group_join(g, &mi) == 0, out);
    CU_ASSERT_EQUAL(proc_wait(&p, 10000), 0);
    /* Exactly one line, the join. */
    TU_CHECK(strchr(p.buf[0], '\n') == p.buf[0] + strlen(p.buf[0]) - 1, out);
    j = parse(p.buf[0]);
    TU_CHECK(j != NULL, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "event"), "member_joined");
    CU_ASSERT_STRING_EQUAL(jstr(j, "cluster"), "c");
    CU_ASSERT(jint(j, "time_ms") > 0);
    CU_ASSERT_STRING_EQUAL(jstr(j, "member.id"), "w-1");
    CU_ASSERT_EQUAL(jint(j, "member.port"), 7000);
out:
    json_decref(j);
    proc_kill(&p, SIGKILL);
    if (p.pid > 0)
        proc_wait(&p, 5000);
    zkc_group_free(g);
    zkc_group_free(old);
    zkc_session_close(s);
}

static void test_watch_stream(void)
{
    zkc_session *s = NULL;
    zkc_election *e = NULL;
    zkc_lock *l = NULL;
    zkc_election_opts eo;
    zkc_lock_opts lo;
    int64_t tok;
    json_t *j = NULL;
    char *nl;
    proc p;

    memset(&p, 0, sizeof(p));
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 10000, NULL), 0);
    TU_CHECK(proc_start(&p, "/t_ws", "-v", "watch", "c", NULL) == 0, out);
    TU_CHECK(proc_wait_for(&p, 1, "watching /t_ws/c", 10000) == 0, out);
    zkc_election_opts_init(&eo);
    eo.id = "boss";
    TU_CHECK(zkc_election_new(&e, s, "/t_ws/c/leader", &eo) == 0, out);
    TU_CHECK(zkc_election_await_leadership(e, 10000, &tok) == 0, out);
    TU_CHECK(proc_wait_for(&p, 0, "\"leader_changed\"", 10000) == 0, out);
    zkc_lock_opts_init(&lo);
    lo.owner_id = "me";
    TU_CHECK(zkc_lock_new(&l, s, "/t_ws/c/locks/x", &lo) == 0, out);
    TU_CHECK(zkc_lock_acquire(l, 10000, NULL) == 0, out);
    TU_CHECK(proc_wait_for(&p, 0, "\"holders\":[{", 10000) == 0, out);
    proc_kill(&p, SIGTERM);
    CU_ASSERT_EQUAL(proc_wait(&p, 10000), 0); /* TERM ends a watch normally */
    nl = strchr(p.buf[0], '\n');
    TU_CHECK(nl != NULL, out);
    *nl = '\0';
    j = parse(p.buf[0]);
    TU_CHECK(j != NULL, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "event"), "leader_changed");
    CU_ASSERT_STRING_EQUAL(jstr(j, "leader.id"), "boss");
    CU_ASSERT_EQUAL(jint(j, "leader.token"), tok);
    CU_ASSERT(json_is_null(json_object_get(j, "previous")));
    json_decref(j);
    j = parse(nl + 1 + strspn(nl + 1, "")); /* the rest: lock lines */
    json_decref(j);
    j = NULL;
    CU_ASSERT_PTR_NOT_NULL(strstr(nl + 1, "{\"event\":\"lock_changed\",\"cluster\":\"c\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(nl + 1, "\"owner\":\"me\""));
out:
    json_decref(j);
    proc_kill(&p, SIGKILL);
    if (p.pid > 0)
        proc_wait(&p, 5000);
    zkc_lock_free(l);
    zkc_election_close(e);
    zkc_session_close(s);
}

/* Issue 9, bugs 6 and 7 in the CLI: a persistent node planted in a lock's
 * line by another client is shown as foreign, never as the holder nor as
 * waiting; the path's sequence counter (cversion) and near_wrap are shown. */
static void test_locks_foreign(void)
{
    zkc_session *s = NULL;
    zkc_lock *a = NULL, *b = NULL;
    zkc_lock_opts lo;
    zkc_op op;
    json_t *j = NULL;
    char hdr[256], line[256];
    const char *row;
    long long bseq;
    proc p;

    memset(&p, 0, sizeof(p));
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 10000, NULL), 0);
    zkc_lock_opts_init(&lo);
    lo.owner_id = "first";
    /* A first hold and release makes the folders (and moves the counter). */
    TU_CHECK(zkc_lock_new(&a, s, "/t_fl/c/locks/db", &lo) == 0, out);
    TU_CHECK(zkc_lock_acquire(a, 10000, NULL) == 0, out);
    TU_CHECK(zkc_lock_release(a) == 0, out);
    /* Planted raw: persistent, a lock node's name, ahead of the next one. */
    memset(&op, 0, sizeof(op));
    op.type = ZKC_OP_CREATE;
    op.path = "/t_fl/c/locks/db/_c_0123456789abcdef-lock-";
    op.data = "planted";
    op.len = 7;
    op.flags = ZKC_CREATE_PERSISTENT | ZKC_CREATE_SEQUENTIAL;
    TU_CHECK(zkc_fenced_multi(s, "/t_fl/c/locks/db", &op, 1, 10000) == 0, out);
    lo.owner_id = "holder-1";
    TU_CHECK(zkc_lock_new(&b, s, "/t_fl/c/locks/db", &lo) == 0, out);
    TU_CHECK(zkc_lock_acquire(b, 10000, NULL) == 0, out); /* the planted node is skipped */

    CU_ASSERT_EQUAL(run(&p, "/t_fl", "-f", "json", "locks", "c", NULL), 0);
    j = parse(p.buf[0]);
    TU_CHECK(j != NULL, out);
    TU_CHECK(json_array_size(json_object_get(j, "locks")) == 1, out);
    CU_ASSERT_EQUAL(json_array_size(jget(j, "locks.0.holders")), 1);
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.holders.0.owner"), "holder-1");
    CU_ASSERT(json_is_false(jget(j, "locks.0.holders.0.foreign")));
    CU_ASSERT_EQUAL(jint(j, "locks.0.waiting"), 0);
    CU_ASSERT_EQUAL(json_array_size(jget(j, "locks.0.queue")), 0);
    CU_ASSERT_EQUAL(json_array_size(jget(j, "locks.0.foreign")), 1);
    TU_CHECK(json_array_size(jget(j, "locks.0.foreign")) == 1, out);
    CU_ASSERT_STRING_EQUAL(jstr(j, "locks.0.foreign.0.owner"), "planted");
    CU_ASSERT(json_is_true(jget(j, "locks.0.foreign.0.foreign")));
    bseq = jint(j, "locks.0.holders.0.seq");
    /* planted ahead of the holder, which holds anyway */
    CU_ASSERT(jint(j, "locks.0.foreign.0.seq") < bseq);
    /* cversion: at least the sequence number the next node gets (the
     * first's delete counts too, before or after the planted create) */
    CU_ASSERT(jint(j, "locks.0.cversion") > bseq);
    CU_ASSERT(jint(j, "locks.0.cversion") <= bseq + 2);
    CU_ASSERT(json_is_false(jget(j, "locks.0.near_wrap")));
    json_decref(j);
    j = NULL;

    /* Tables: the holder is holder-1, nobody waits, a warning names the
     * foreign node; the queue of the lock shows it as foreign. */
    CU_ASSERT_EQUAL(run(&p, "/t_fl", "locks", "c", NULL), 0);
    TU_CHECK(line_starting(p.buf[0], "NAME ", hdr, sizeof(hdr)) != NULL, out);
    row = line_starting(p.buf[0], "db ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "holder-1"), col(hdr, "HOLDER"));
    CU_ASSERT_EQUAL(row[strlen(row) - 1], '0'); /* WAITING */
    CU_ASSERT_PTR_NULL(strstr(p.buf[0], "planted"));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[1], "warning: lock db: 1 foreign node in its line"));
    CU_ASSERT_PTR_NULL(strstr(p.buf[1], "wrap"));

    CU_ASSERT_EQUAL(run(&p, "/t_fl", "locks", "c", "db", NULL), 0);
    TU_CHECK(line_starting(p.buf[0], "POS ", hdr, sizeof(hdr)) != NULL, out);
    row = line_starting(p.buf[0], "0 ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "foreign"), col(hdr, "STATE"));
    CU_ASSERT_EQUAL(col(row, "planted"), col(hdr, "OWNER"));
    row = line_starting(p.buf[0], "1 ", line, sizeof(line));
    TU_CHECK(row != NULL, out);
    CU_ASSERT_EQUAL(col(row, "holds"), col(hdr, "STATE"));
    CU_ASSERT_EQUAL(col(row, "holder-1"), col(hdr, "OWNER"));

    /* status shows the same summary and warning */
    CU_ASSERT_EQUAL(run(&p, "/t_fl", "status", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[1], "warning: lock db: 1 foreign node in its line"));
out:
    json_decref(j);
    zkc_lock_free(b);
    zkc_lock_free(a);
    zkc_session_close(s);
}

/* Lines of a stamp file ("start X" / "stop X"): 0 when they alternate start,
 * stop of the same X, `n` of each. */
static int check_alternation(const char *file, int n, char *order, size_t olen)
{
    FILE *f = fopen(file, "r");
    char line[128], cur[64] = "";
    int starts = 0, stops = 0, ok = 0;

    order[0] = '\0';
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char who[64];

        line[strcspn(line, "\n")] = '\0';
        if (strlen(order) + strlen(line) + 2 < olen) {
            strcat(order, line);
            strcat(order, ";");
        }
        if (sscanf(line, "start %63s", who) == 1) {
            if (cur[0])
                ok = -1; /* two at once */
            snprintf(cur, sizeof(cur), "%s", who);
            starts++;
        } else if (sscanf(line, "stop %63s", who) == 1) {
            if (strcmp(cur, who) != 0)
                ok = -1;
            cur[0] = '\0';
            stops++;
        }
    }
    fclose(f);
    if (starts != n || stops != n || cur[0])
        return -1;
    return ok;
}

static void test_lock_exclusive(void)
{
    char file[] = "/tmp/zkc_cli_lockXXXXXX", script[512], order[512];
    proc a, b, c;
    int fd = mkstemp(file);

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    /* Each CMD stamps start and stop around a pause: overlapping holders
     * would interleave the stamps. */
    snprintf(script, sizeof(script),
             "echo \"start $1\" >> %s; sleep 0.3; echo \"stop $1\" >> %s; "
             "echo \"token $ZKCOORD_FENCING_TOKEN\"",
             file, file);
    TU_CHECK(proc_start(&a, NULL, "lock", "/t_lock/m", "--", "sh", "-c", script, "sh", "A", NULL) ==
                 0,
             out);
    TU_CHECK(proc_start(&b, NULL, "lock", "/t_lock/m", "--", "sh", "-c", script, "sh", "B", NULL) ==
                 0,
             out);
    CU_ASSERT_EQUAL(proc_wait(&a, 15000), 0);
    CU_ASSERT_EQUAL(proc_wait(&b, 15000), 0);
    CU_ASSERT_EQUAL(check_alternation(file, 2, order, sizeof(order)), 0);
    if (check_alternation(file, 2, order, sizeof(order)) != 0)
        fprintf(stderr, "    stamps: %s\n", order);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.buf[0], "token "));
    CU_ASSERT(atoll(strstr(a.buf[0], "token ") ? strstr(a.buf[0], "token ") + 6 : "0") > 0);
    CU_ASSERT(atoll(strstr(b.buf[0], "token ") ? strstr(b.buf[0], "token ") + 6 : "0") > 0);
    /* Exit status passthrough, and a signal death as 128 + N. */
    CU_ASSERT_EQUAL(run(&c, NULL, "lock", "/t_lock/m", "--", "sh", "-c", "exit 7", NULL), 7);
    CU_ASSERT_EQUAL(run(&c, NULL, "lock", "/t_lock/m", "--", "sh", "-c", "kill -9 $$", NULL),
                    128 + 9);
    CU_ASSERT_EQUAL(run(&c, NULL, "lock", "/t_lock/m", "--", "/nonexistent/cmd", NULL), 127);
    /* The lock node is gone after each run. */
    CU_ASSERT_EQUAL(run(&c, NULL, "-f", "json", "tree", "/t_lock/m", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.buf[0], "\"children\": 0"));
out:
    proc_kill(&a, SIGKILL);
    proc_kill(&b, SIGKILL);
    unlink(file);
}

static void test_lock_timeout(void)
{
    zkc_session *s = NULL;
    zkc_lock *l = NULL;
    long long t0, dt;
    proc p;

    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 10000, NULL), 0);
    TU_CHECK(zkc_lock_new(&l, s, "/t_lock/busy", NULL) == 0, out);
    TU_CHECK(zkc_lock_acquire(l, 10000, NULL) == 0, out);
    t0 = tu_now_ms();
    CU_ASSERT_EQUAL(run(&p, NULL, "lock", "/t_lock/busy", "--timeout", "300", "--", "true", NULL),
                    6);
    dt = tu_now_ms() - t0;
    CU_ASSERT(dt >= 300);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[1], "not acquired within 300 ms"));
    /* Nothing left in the queue but the holder. */
    CU_ASSERT_EQUAL(wait_children(s, "/t_lock/busy", 1, 5000), 0);
out:
    zkc_lock_free(l);
    zkc_session_close(s);
}

static void test_elect_handover(void)
{
    char file[] = "/tmp/zkc_cli_electXXXXXX", script[512], order[512];
    zkc_session *s = NULL;
    proc a, b, c;
    int fd = mkstemp(file);

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 10000, NULL), 0);
    snprintf(script, sizeof(script),
             "echo \"start $1\" >> %s; trap 'echo \"stop $1\" >> %s; exit 0' TERM; "
             "echo \"started $ZKCOORD_LEADER_ID $ZKCOORD_FENCING_TOKEN\"; "
             "while :; do sleep 0.05; done",
             file, file);
    TU_CHECK(proc_start(&a, NULL, "--session-timeout", "1000", "elect", "e", "A", "--", "sh", "-c",
                        script, "sh", "A", NULL) == 0,
             out);
    TU_CHECK(proc_wait_for(&a, 0, "started A ", 10000) == 0, out);
    TU_CHECK(proc_start(&b, NULL, "--session-timeout", "1000", "elect", "e", "B", "--", "sh", "-c",
                        script, "sh", "B", NULL) == 0,
             out);
    TU_CHECK(wait_children(s, "/zkcoord/e/leader", 2, 10000) == 0, out);
    CU_ASSERT_EQUAL(b.len[0], 0);
    /* TERM to the leader: CMD stops, then B leads. */
    proc_kill(&a, SIGTERM);
    CU_ASSERT_EQUAL(proc_wait(&a, 10000), 0); /* CMD's own status (trap: exit 0) */
    TU_CHECK(proc_wait_for(&b, 0, "started B ", 10000) == 0, out);
    TU_CHECK(proc_start(&c, NULL, "--session-timeout", "1000", "elect", "e", "C", "--", "sh", "-c",
                        script, "sh", "C", NULL) == 0,
             out);
    TU_CHECK(wait_children(s, "/zkcoord/e/leader", 2, 10000) == 0, out);
    /* SIGKILL to the leader's zkcoordctl: its CMD gets TERM from the kernel
     * at once; C leads once B's session expires. */
    proc_kill(&b, SIGKILL);
    proc_wait(&b, 10000);
    TU_CHECK(proc_wait_for(&c, 0, "started C ", 15000) == 0, out);
    proc_kill(&c, SIGTERM);
    CU_ASSERT_EQUAL(proc_wait(&c, 10000), 0);
    CU_ASSERT_EQUAL(check_alternation(file, 3, order, sizeof(order)), 0);
    CU_ASSERT_STRING_EQUAL(order, "start A;stop A;start B;stop B;start C;stop C;");
out:
    proc_kill(&a, SIGKILL);
    proc_kill(&b, SIGKILL);
    proc_kill(&c, SIGKILL);
    if (a.pid > 0)
        proc_wait(&a, 5000);
    if (b.pid > 0)
        proc_wait(&b, 5000);
    if (c.pid > 0)
        proc_wait(&c, 5000);
    zkc_session_close(s);
    unlink(file);
}

static void test_elect_observe(void)
{
    zkc_session *s = NULL;
    zkc_election *e = NULL;
    zkc_election_opts eo;
    int64_t tok;
    char want[128];
    proc p;

    memset(&p, 0, sizeof(p));
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 10000, NULL), 0);
    zkc_election_opts_init(&eo);
    eo.id = "obs-1";
    TU_CHECK(zkc_election_new(&e, s, "/t_obs/c/leader", &eo) == 0, out);
    TU_CHECK(zkc_election_await_leadership(e, 10000, &tok) == 0, out);
    TU_CHECK(proc_start(&p, "/t_obs", "elect", "--observe", "c", NULL) == 0, out);
    snprintf(want, sizeof(want), "leader: obs-1 (token %" PRId64 ", node _c_", tok);
    TU_CHECK(proc_wait_for(&p, 0, want, 10000) == 0, out);
    zkc_election_close(e);
    e = NULL;
    TU_CHECK(proc_wait_for(&p, 0, "leader: none\n", 10000) == 0, out);
    proc_kill(&p, SIGINT);
    CU_ASSERT_EQUAL(proc_wait(&p, 10000), 0);
out:
    proc_kill(&p, SIGKILL);
    if (p.pid > 0)
        proc_wait(&p, 5000);
    zkc_election_close(e);
    zkc_session_close(s);
}

/* Item 4 of issue 11: peer strings reach the table raw. U+009B is a one-byte
 * CSI for terminals taking 8-bit controls, U+202E / U+2066 reorder the rest of
 * the line. Each must be shown escaped, in the members table and in the
 * leader line of elect --observe. */
#define HOSTILE_ID                                                                                 \
    "ev\xC2\x9B"                                                                                   \
    "2Jx\xE2\x80\xAE"                                                                              \
    "gpj.exe\xE2\x81\xA6"                                                                          \
    "y\xC2\x85z"
#define HOSTILE_SHOWN "ev\\u009B2Jx\\u202Egpj.exe\\u2066y\\u0085z"

static void test_hostile_table(void)
{
    zkc_session *s = NULL;
    zkc_group *g = NULL;
    zkc_election *e = NULL;
    zkc_election_opts eo;
    zkc_member_info mi;
    char line[512];
    proc p;

    memset(&p, 0, sizeof(p));
    CU_ASSERT_EQUAL_FATAL(tu_session(&s, NULL, 10000, NULL), 0);
    TU_CHECK(zkc_group_new(&g, s, "/t_host/c/members", NULL) == 0, out);
    memset(&mi, 0, sizeof(mi));
    mi.id = HOSTILE_ID;
    mi.host = "h\xE2\x80\xAB"
              "1";
    mi.port = 1;
    TU_CHECK(zkc_group_join(g, &mi) == 0 && zkc_group_wait_joined(g, 10000) == 0, out);
    CU_ASSERT_EQUAL(run(&p, "/t_host", "members", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(line_starting(p.buf[0], HOSTILE_SHOWN " ", line, sizeof(line)));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "h\\u202B1:1"));
    /* None of the raw sequences left anywhere in the output. */
    CU_ASSERT_PTR_NULL(strstr(p.buf[0], "\xC2\x9B"));
    CU_ASSERT_PTR_NULL(strstr(p.buf[0], "\xC2\x85"));
    CU_ASSERT_PTR_NULL(strstr(p.buf[0], "\xE2\x80\xAE"));
    CU_ASSERT_PTR_NULL(strstr(p.buf[0], "\xE2\x80\xAB"));
    CU_ASSERT_PTR_NULL(strstr(p.buf[0], "\xE2\x81\xA6"));
    /* Ordinary non-ASCII text is left alone. */
    zkc_election_opts_init(&eo);
    eo.id = "caf\xC3\xA9 " HOSTILE_ID;
    TU_CHECK(zkc_election_new(&e, s, "/t_host/c/leader", &eo) == 0, out);
    TU_CHECK(zkc_election_await_leadership(e, 10000, NULL) == 0, out);
    TU_CHECK(proc_start(&p, "/t_host", "elect", "--observe", "c", NULL) == 0, out);
    TU_CHECK(proc_wait_for(&p, 0, "leader: caf\xC3\xA9 " HOSTILE_SHOWN " (token ", 10000) == 0,
             out);
    proc_kill(&p, SIGINT);
    CU_ASSERT_EQUAL(proc_wait(&p, 10000), 0);
    CU_ASSERT_PTR_NULL(strstr(p.buf[0], "\xC2\x9B"));
    CU_ASSERT_PTR_NULL(strstr(p.buf[0], "\xE2\x80\xAE"));
out:
    proc_kill(&p, SIGKILL);
    if (p.pid > 0 && !p.exited)
        proc_wait(&p, 5000);
    zkc_election_close(e);
    zkc_group_free(g);
    zkc_session_close(s);
}

/* Item 6 of issue 11: CMD sees stdin, stdout, stderr and nothing else (the
 * ZooKeeper socket and the CLI's pipes were fds 5-7 before). `ls` lists its
 * own descriptor of /proc/self/fd as 3. A descriptor the test itself holds
 * open without close-on-exec must not get through either. */
static void test_child_fds(void)
{
    int stray = open("/dev/null", O_RDONLY); /* inherited by zkcoordctl */
    proc p;

    CU_ASSERT(stray >= 3);
    CU_ASSERT_EQUAL(run(&p, NULL, "lock", "/t_fds/m", "--", "ls", "/proc/self/fd", NULL), 0);
    CU_ASSERT_STRING_EQUAL(p.buf[0], "0\n1\n2\n3\n");
    CU_ASSERT_EQUAL(run(&p, "/t_fds", "elect", "c", "me", "--", "ls", "/proc/self/fd", NULL), 0);
    CU_ASSERT_STRING_EQUAL(p.buf[0], "0\n1\n2\n3\n");
    if (stray >= 0)
        close(stray);
}

/* ------------------------------------------------ digest auth (item 5) */

static int auth_session(zkc_session **out, const char *user, const char *password)
{
    zkc_session_opts o;
    zkc_session *s;
    int rc;

    zkc_session_opts_init(&o);
    o.servers = zkh_connect_string(tu_zk);
    o.digest_user = user;
    o.digest_password = password;
    o.log_fn = tu_log;
    rc = zkc_session_new(&s, &o);
    if (rc)
        return rc;
    rc = zkc_session_wait_connected(s, 10000);
    if (rc) {
        zkc_session_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* A plain ZooKeeper client: with no credentials at all (auth NULL), what
 * anyone on the network can open; or with digest "user:password". */
static zhandle_t *raw_connect(const char *auth)
{
    zhandle_t *zh;
    long long end = tu_now_ms() + 10000;

    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zh = zookeeper_init(zkh_connect_string(tu_zk), NULL, 10000, NULL, NULL, 0);
    if (!zh)
        return NULL;
    while (zoo_state(zh) != ZOO_CONNECTED_STATE && tu_now_ms() < end)
        poll(NULL, 0, 20);
    if (zoo_state(zh) != ZOO_CONNECTED_STATE) {
        zookeeper_close(zh);
        return NULL;
    }
    /* Requests are answered in order: what follows runs authenticated. */
    if (auth && zoo_add_auth(zh, "digest", auth, (int)strlen(auth), NULL, NULL) != ZOK) {
        zookeeper_close(zh);
        return NULL;
    }
    return zh;
}

/* "<folder>/<its first child>" into buf; -1 when it has none. */
static int first_child(zhandle_t *zh, const char *folder, char *buf, size_t len)
{
    struct String_vector sv;
    int ok;

    memset(&sv, 0, sizeof(sv));
    if (zoo_get_children(zh, folder, 0, &sv) != ZOK)
        return -1;
    ok = sv.count > 0;
    if (ok)
        snprintf(buf, len, "%s/%s", folder, sv.data[0]);
    deallocate_String_vector(&sv);
    return ok ? 0 : -1;
}

/* Everything the unauthenticated client tries on a secured cluster must be
 * refused, reads aside. */
static void check_locked_down(zhandle_t *zh, const char *const *folders, const char *const *nodes)
{
    char path[512], buf[64];
    int i, len;
    struct Stat st;

    for (i = 0; folders[i]; i++) {
        snprintf(path, sizeof(path), "%s/planted", folders[i]);
        CU_ASSERT_EQUAL(zoo_create(zh, path, "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZNOAUTH);
        CU_ASSERT_EQUAL(zoo_create(zh, path, "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0),
                        ZNOAUTH);
        CU_ASSERT_EQUAL(zoo_set(zh, folders[i], "x", 1, -1), ZNOAUTH);
        CU_ASSERT_EQUAL(zoo_set_acl(zh, folders[i], -1, &ZOO_OPEN_ACL_UNSAFE), ZNOAUTH);
        /* Readable by anyone: monitoring and zkcoordctl without credentials. */
        len = sizeof(buf);
        CU_ASSERT_EQUAL(zoo_get(zh, folders[i], 0, buf, &len, &st), ZOK);
    }
    for (i = 0; nodes[i]; i++) {
        CU_ASSERT_EQUAL(zoo_delete(zh, nodes[i], -1), ZNOAUTH);
        CU_ASSERT_EQUAL(zoo_set(zh, nodes[i], "evil", 4, -1), ZNOAUTH);
        CU_ASSERT_EQUAL(zoo_set_acl(zh, nodes[i], -1, &ZOO_OPEN_ACL_UNSAFE), ZNOAUTH);
        len = sizeof(buf);
        CU_ASSERT_EQUAL(zoo_get(zh, nodes[i], 0, buf, &len, &st), ZOK);
    }
}

static void test_secured(void)
{
    static const char *const folders[] = {"/t_sec",
                                          "/t_sec/c",
                                          "/t_sec/c/members",
                                          "/t_sec/c/leader",
                                          "/t_sec/c/locks",
                                          "/t_sec/c/locks/db",
                                          NULL};
    char secret[] = "/tmp/zkc_cli_authXXXXXX", arg[64];
    char member[256], leader[256], locknode[256], want[300];
    const char *nodes[8];
    zkc_session *s = NULL;
    zkc_group *g = NULL;
    zkc_election *e = NULL;
    zkc_lock *l = NULL;
    zkc_election_opts eo;
    zkc_member_info mi;
    zhandle_t *zh = NULL, *other = NULL;
    proc p;
    int fd = mkstemp(secret);

    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, "app:s3cret\n", 11) == 11);
    close(fd);
    snprintf(arg, sizeof(arg), "--auth-file=%s", secret);
    /* The cluster as an agent with zookeeper.auth makes it. */
    TU_CHECK(auth_session(&s, "app", "s3cret") == 0, out);
    TU_CHECK(zkc_group_new(&g, s, "/t_sec/c/members", NULL) == 0, out);
    memset(&mi, 0, sizeof(mi));
    mi.id = "m-1";
    mi.host = "10.0.0.1";
    mi.port = 80;
    TU_CHECK(zkc_group_join(g, &mi) == 0 && zkc_group_wait_joined(g, 10000) == 0, out);
    zkc_election_opts_init(&eo);
    eo.id = "m-1";
    TU_CHECK(zkc_election_new(&e, s, "/t_sec/c/leader", &eo) == 0, out);
    TU_CHECK(zkc_election_await_leadership(e, 10000, NULL) == 0, out);
    TU_CHECK(zkc_lock_new(&l, s, "/t_sec/c/locks/db", NULL) == 0, out);
    TU_CHECK(zkc_lock_acquire(l, 10000, NULL) == 0, out);

    zh = raw_connect(NULL);
    TU_CHECK(zh != NULL, out);
    other = raw_connect("mallory:pw");
    TU_CHECK(other != NULL, out);
    TU_CHECK(first_child(zh, "/t_sec/c/members", member, sizeof(member)) == 0, out);
    TU_CHECK(first_child(zh, "/t_sec/c/leader", leader, sizeof(leader)) == 0, out);
    TU_CHECK(first_child(zh, "/t_sec/c/locks/db", locknode, sizeof(locknode)) == 0, out);
    nodes[0] = member;
    nodes[1] = leader;
    nodes[2] = locknode;
    nodes[3] = "/t_sec/c/locks/db";
    nodes[4] = "/t_sec/c/members";
    nodes[5] = "/t_sec/c";
    nodes[6] = NULL;
    check_locked_down(zh, folders, nodes);
    /* Another identity fares no better than no identity. */
    check_locked_down(other, folders, nodes);

    /* Readers need no credentials. */
    CU_ASSERT_EQUAL(run(&p, "/t_sec", "members", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "m-1  10.0.0.1:80  ALIVE"));
    CU_ASSERT_EQUAL(run(&p, "/t_sec", "-f", "json", "leader", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "\"id\": \"m-1\""));
    CU_ASSERT_EQUAL(run(&p, "/t_sec", "locks", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "db    mutex"));
    CU_ASSERT_EQUAL(run(&p, "/t_sec", "status", "c", NULL), 0);
    /* ...but cannot take a lock there. */
    CU_ASSERT_EQUAL(run(&p, "/t_sec", "lock", "c/locks/x", "--timeout", "5000", "--", "true", NULL),
                    1);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[1], "not authorised"));
    /* With the credentials (option, then environment) lock and elect work. */
    CU_ASSERT_EQUAL(run(&p, "/t_sec", arg, "lock", "c/locks/x", "--", "sh", "-c",
                        "echo held $ZKCOORD_FENCING_TOKEN", NULL),
                    0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.buf[0], "held "));
    setenv("ZKCOORD_AUTH_FILE", secret, 1);
    CU_ASSERT_EQUAL(run(&p, "/t_sec", "elect", "c2", "cli-1", "--", "sh", "-c",
                        "echo leading $ZKCOORD_LEADER_ID", NULL),
                    0);
    unsetenv("ZKCOORD_AUTH_FILE");
    CU_ASSERT_STRING_EQUAL(p.buf[0], "leading cli-1\n");
    /* What the CLI created is locked down as well. */
    {
        static const char *const f2[] = {"/t_sec/c2", "/t_sec/c2/leader", "/t_sec/c/locks/x", NULL};
        static const char *const n2[] = {"/t_sec/c2/leader", "/t_sec/c/locks/x", NULL};

        check_locked_down(zh, f2, n2);
        check_locked_down(other, f2, n2);
    }
    /* The authenticated CLI can hold the lock the unauthenticated one could
     * not, while the test's session still holds "db": it waits its turn. */
    CU_ASSERT_EQUAL(
        run(&p, "/t_sec", arg, "lock", "c/locks/db", "--timeout", "300", "--", "true", NULL), 6);

    /* The file is checked like the agent's: mode, then owner. */
    TU_CHECK(chmod(secret, 0644) == 0, out);
    CU_ASSERT_EQUAL(run(&p, "/t_sec", arg, "members", "c", NULL), 1);
    snprintf(want, sizeof(want),
             "zkcoordctl: auth file: %s has mode 0644: it must not be world-readable or "
             "group-writable (chmod 600 it)\n",
             secret);
    CU_ASSERT_STRING_EQUAL(p.buf[1], want);
    TU_CHECK(chmod(secret, 0600) == 0, out);
    if (geteuid() == 0) {
        TU_CHECK(chown(secret, 12345, (gid_t)-1) == 0, out);
        CU_ASSERT_EQUAL(run(&p, "/t_sec", arg, "members", "c", NULL), 1);
        snprintf(want, sizeof(want),
                 "zkcoordctl: auth file: %s is owned by uid 12345: it must belong to uid 0 or to "
                 "root\n",
                 secret);
        CU_ASSERT_STRING_EQUAL(p.buf[1], want);
    }
out:
    if (zh)
        zookeeper_close(zh);
    if (other)
        zookeeper_close(other);
    zkc_lock_free(l);
    zkc_election_close(e);
    zkc_group_free(g);
    zkc_session_close(s);
    unlink(secret);
}

/* ------------------------------------------------- --on-suspend (item 9) */

static int count_str(const char *hay, const char *needle)
{
    int n = 0;

    while ((hay = strstr(hay, needle)) != NULL) {
        n++;
        hay += strlen(needle);
    }
    return n;
}

/* The ensemble server that session `sid` is connected to (from `cons`),
 * waiting up to timeout_ms while the client is between servers; -1. */
static int server_of(zkh_cluster *ens, int64_t sid, int timeout_ms)
{
    static char buf[64 * 1024];
    long long end = tu_now_ms() + timeout_ms;
    char want[64];
    int i;

    snprintf(want, sizeof(want), "sid=0x%" PRIx64 ",", (uint64_t)sid);
    do {
        for (i = 0; i < zkh_size(ens); i++)
            if (zkh_server_pid(ens, i) > 0 &&
                zkh_four_letter(ens, i, "cons", buf, sizeof(buf)) > 0 && strstr(buf, want))
                return i;
        poll(NULL, 0, 50);
    } while (tu_now_ms() < end);
    return -1;
}

static int64_t lock_holder_session(zkc_session *s, const char *path)
{
    zkc_lock_info *info = NULL;
    int64_t sid = 0;

    if (zkc_lock_inspect(s, path, 5000, &info) == 0 && info->count > 0 && info->entries[0].holds)
        sid = info->entries[0].session_id;
    zkc_lock_info_free(info);
    return sid;
}

static int64_t leader_session(zkc_session *s, const char *path)
{
    zkc_election_leader_info li;

    if (zkc_election_observe_leader(s, path, &li, 5000) != 0)
        return 0;
    return li.session_id;
}

/* Stop the server `sid` is on; 0 and its index in *idx, or -1. */
static int stop_server_of(zkh_cluster *ens, int64_t sid, int *idx)
{
    *idx = sid ? server_of(ens, sid, 10000) : -1;
    if (*idx < 0)
        return -1;
    return zkh_stop_server(ens, *idx);
}

/* Still running? Looks without reaping (proc_wait() reaps). */
static int alive(const proc *p)
{
    siginfo_t si;

    if (p->pid <= 0 || p->exited)
        return 0;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return 0;
    return si.si_pid == 0;
}

/* A rolling restart of a 3-server ensemble: the server each CLI is connected
 * to is stopped (and started again). With --on-suspend wait, CMD runs on
 * through SUSPENDED and RECONNECTED, once, from start to end; with the
 * default (kill) CMD gets TERM and zkcoordctl exits 5. */
static void test_on_suspend(void)
{
    const char *script = "trap 'echo got-term; exit 0' TERM; echo started; "
                         "while :; do sleep 0.05; done";
    zkh_cluster *ens = NULL;
    zkh_opts o;
    zkc_session *s = NULL;
    proc lw, ew, lk, ek;
    int idx = -1, down = -1;

    memset(&lw, 0, sizeof(lw));
    memset(&ew, 0, sizeof(ew));
    memset(&lk, 0, sizeof(lk));
    memset(&ek, 0, sizeof(ek));
    zkh_opts_init(&o);
    o.quiet = 1;
    CU_ASSERT_EQUAL_FATAL(zkh_start(&ens, 3, &o), 0);
    servers_override = zkh_connect_string(ens);
    TU_CHECK(tu_session(&s, servers_override, 20000, NULL) == 0, out);

    /* wait: two restarts, one under each command's connection. */
    TU_CHECK(proc_start(&lw, NULL, "-v", "lock", "/t_susp/w", "--on-suspend", "wait", "--", "sh",
                        "-c", script, NULL) == 0,
             out);
    TU_CHECK(proc_start(&ew, NULL, "-v", "elect", "susp", "E", "--on-suspend", "wait", "--", "sh",
                        "-c", script, NULL) == 0,
             out);
    TU_CHECK(proc_wait_for(&lw, 0, "started", 20000) == 0, out);
    TU_CHECK(proc_wait_for(&ew, 0, "started", 20000) == 0, out);

    TU_CHECK(stop_server_of(ens, lock_holder_session(s, "/t_susp/w"), &idx) == 0, out);
    down = idx;
    TU_CHECK(proc_wait_for(&lw, 1, "connection suspended, command left running", 20000) == 0, out);
    TU_CHECK(proc_wait_for(&lw, 1, "reconnected, the lock is still ours", 20000) == 0, out);
    TU_CHECK(zkh_start_server(ens, down) == 0, out);
    down = -1;

    TU_CHECK(stop_server_of(ens, leader_session(s, "/zkcoord/susp/leader"), &idx) == 0, out);
    down = idx;
    TU_CHECK(proc_wait_for(&ew, 1, "susp: connection suspended, command left running", 20000) == 0,
             out);
    TU_CHECK(proc_wait_for(&ew, 1, "susp: reconnected, still leading", 20000) == 0, out);
    TU_CHECK(zkh_start_server(ens, down) == 0, out);
    down = -1;

    CU_ASSERT(alive(&lw));
    CU_ASSERT(alive(&ew));
    proc_kill(&lw, SIGTERM); /* forwarded to CMD: its trap exits 0 */
    proc_kill(&ew, SIGTERM);
    CU_ASSERT_EQUAL(proc_wait(&lw, 15000), 0);
    CU_ASSERT_EQUAL(proc_wait(&ew, 15000), 0);
    /* One CMD from start to end, stopped only by our TERM. */
    CU_ASSERT_EQUAL(count_str(lw.buf[0], "started"), 1);
    CU_ASSERT_EQUAL(count_str(ew.buf[0], "started"), 1);
    CU_ASSERT_EQUAL(count_str(lw.buf[0], "got-term"), 1);
    CU_ASSERT_EQUAL(count_str(ew.buf[0], "got-term"), 1);
    CU_ASSERT_PTR_NULL(strstr(lw.buf[1], " lost "));
    CU_ASSERT_PTR_NULL(strstr(ew.buf[1], " lost "));

    /* kill (the default): the same restart stops CMD. */
    TU_CHECK(proc_start(&lk, NULL, "lock", "/t_susp/k", "--", "sh", "-c", script, NULL) == 0, out);
    TU_CHECK(proc_start(&ek, NULL, "elect", "suspk", "K", "--on-suspend", "kill", "--", "sh", "-c",
                        script, NULL) == 0,
             out);
    TU_CHECK(proc_wait_for(&lk, 0, "started", 20000) == 0, out);
    TU_CHECK(proc_wait_for(&ek, 0, "started", 20000) == 0, out);
    TU_CHECK(stop_server_of(ens, lock_holder_session(s, "/t_susp/k"), &idx) == 0, out);
    down = idx;
    CU_ASSERT_EQUAL(proc_wait(&lk, 15000), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(lk.buf[0], "got-term"));
    CU_ASSERT_PTR_NOT_NULL(strstr(lk.buf[1], "lock /t_susp/k lost (suspended): command "
                                             "terminated"));
    TU_CHECK(zkh_start_server(ens, down) == 0, out);
    down = -1;
    if (alive(&ek)) { /* unless it shared the server just stopped */
        TU_CHECK(stop_server_of(ens, leader_session(s, "/zkcoord/suspk/leader"), &idx) == 0, out);
        down = idx;
    }
    CU_ASSERT_EQUAL(proc_wait(&ek, 15000), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(ek.buf[0], "got-term"));
    CU_ASSERT_PTR_NOT_NULL(strstr(ek.buf[1], "leadership of suspk lost (suspended)"));
out:
    proc_kill(&lw, SIGKILL);
    proc_kill(&ew, SIGKILL);
    proc_kill(&lk, SIGKILL);
    proc_kill(&ek, SIGKILL);
    if (lw.pid > 0 && !lw.exited)
        proc_wait(&lw, 5000);
    if (ew.pid > 0 && !ew.exited)
        proc_wait(&ew, 5000);
    if (lk.pid > 0 && !lk.exited)
        proc_wait(&lk, 5000);
    if (ek.pid > 0 && !ek.exited)
        proc_wait(&ek, 5000);
    servers_override = NULL;
    zkc_session_close(s);
    zkh_destroy(ens);
}

/* Last: stops the server. The CLI hears SUSPENDED when the connection goes:
 * CMD gets TERM, zkcoordctl exits 5. With --on-suspend wait, CMD runs on
 * until the session is LOST (no server for a whole session timeout), then
 * gets TERM the same way. */
static void test_lost(void)
{
    const char *script = "trap 'echo got-term; exit 0' TERM; echo started; "
                         "while :; do sleep 0.05; done";
    proc l, e, lw, ew;
    int stopped = 0;

    memset(&l, 0, sizeof(l));
    memset(&e, 0, sizeof(e));
    memset(&lw, 0, sizeof(lw));
    memset(&ew, 0, sizeof(ew));
    TU_CHECK(proc_start(&l, NULL, "--session-timeout", "1000", "lock", "/t_lost/m", "--kill-after",
                        "2000", "--", "sh", "-c", script, NULL) == 0,
             out);
    TU_CHECK(proc_start(&e, NULL, "--session-timeout", "1000", "elect", "lost", "L", "--", "sh",
                        "-c", script, NULL) == 0,
             out);
    TU_CHECK(proc_start(&lw, NULL, "--session-timeout", "1000", "lock", "/t_lost/w", "--on-suspend",
                        "wait", "--", "sh", "-c", script, NULL) == 0,
             out);
    TU_CHECK(proc_start(&ew, NULL, "--session-timeout", "1000", "elect", "lostw", "W",
                        "--on-suspend", "wait", "--", "sh", "-c", script, NULL) == 0,
             out);
    TU_CHECK(proc_wait_for(&l, 0, "started", 10000) == 0, out);
    TU_CHECK(proc_wait_for(&e, 0, "started", 10000) == 0, out);
    TU_CHECK(proc_wait_for(&lw, 0, "started", 10000) == 0, out);
    TU_CHECK(proc_wait_for(&ew, 0, "started", 10000) == 0, out);
    TU_CHECK(zkh_stop_server(tu_zk, 0) == 0, out);
    stopped = 1;
    CU_ASSERT_EQUAL(proc_wait(&l, 10000), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.buf[0], "got-term"));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.buf[1], "lock /t_lost/m lost (suspended): command terminated"));
    CU_ASSERT_EQUAL(proc_wait(&e, 10000), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.buf[0], "got-term"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.buf[1], "leadership of lost lost"));
    CU_ASSERT_EQUAL(proc_wait(&lw, 10000), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(lw.buf[0], "got-term"));
    CU_ASSERT_PTR_NOT_NULL(strstr(lw.buf[1], "lock /t_lost/w lost (lost): command terminated"));
    CU_ASSERT_EQUAL(proc_wait(&ew, 10000), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(ew.buf[0], "got-term"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(ew.buf[1], "leadership of lostw lost (lost): command terminated"));
out:
    proc_kill(&l, SIGKILL);
    proc_kill(&e, SIGKILL);
    proc_kill(&lw, SIGKILL);
    proc_kill(&ew, SIGKILL);
    if (lw.pid > 0 && !lw.exited)
        proc_wait(&lw, 5000);
    if (ew.pid > 0 && !ew.exited)
        proc_wait(&ew, 5000);
    if (l.pid > 0)
        proc_wait(&l, 5000);
    if (e.pid > 0)
        proc_wait(&e, 5000);
    if (stopped)
        CU_ASSERT_EQUAL(zkh_start_server(tu_zk, 0), 0);
}

int register_cli_suite(void); /* cli_main.c */

int register_cli_suite(void)
{
    CU_pSuite s = CU_add_suite("zkcoordctl", NULL, NULL);

    if (!s)
        return -1;
    if (!CU_add_test(s, "usage and help: exit 2 / 0", test_usage) ||
        !CU_add_test(s, "unreachable: exit 4 within the timeout", test_unreachable) ||
        !CU_add_test(s, "unknown cluster, lock, node: exit 3", test_not_found) ||
        !CU_add_test(s, "populated cluster, JSON field by field", test_populated_json) ||
        !CU_add_test(s, "populated cluster, aligned tables", test_populated_table) ||
        !CU_add_test(s, "leader: exit 3 when nobody leads", test_no_leader) ||
        !CU_add_test(s, "watch --once returns on the next join", test_watch_once) ||
        !CU_add_test(s, "watch streams leader and lock changes", test_watch_stream) ||
        !CU_add_test(s, "lock: no overlap, status passthrough", test_lock_exclusive) ||
        !CU_add_test(s, "lock --timeout: exit 6, queue clean", test_lock_timeout) ||
        !CU_add_test(s, "elect: one CMD at a time, hand-over", test_elect_handover) ||
        !CU_add_test(s, "elect --observe prints each change", test_elect_observe) ||
        !CU_add_test(s, "tables escape C1 controls and bidi overrides", test_hostile_table) ||
        !CU_add_test(s, "lock/elect: CMD gets only fds 0, 1, 2", test_child_fds) ||
        !CU_add_test(s, "--on-suspend wait/kill across server restarts", test_on_suspend) ||
        !CU_add_test(s, "digest auth: secured cluster, readers, --auth-file", test_secured) ||
        !CU_add_test(s, "lost lock / leadership: TERM, exit 5", test_lost) ||
        !CU_add_test(s, "locks: foreign nodes, cversion", test_locks_foreign))
        return -1;
    return 0;
}
