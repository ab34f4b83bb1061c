/* The agent's work section end to end: real `zkcoord` agents (the built
 * binary) with a /bin/sh task handler, tasks submitted with the built
 * `zkcoordctl submit --wait`, against the harness ZooKeeper. The handler
 * appends "start"/"end" lines (task, member, pid, monotonic ns) to one
 * history file; the tests read the results and that history. Every agent
 * is stopped by pid and the temp dir removed, also on failure. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/proxy.h"
#include "common/testutil.h"

int register_agent_work_suite(void);

extern char **environ;

#define SESSION_MS 2000 /* agents' session timeout: SIGKILL failover in ~2 s */
#define MAX_AGENTS 3

/* The task handler: $1 = history file, $2 = gate file. Payload words:
 * "hang" sleeps for ever (in a child, so the tree matters), "gate" waits
 * for the gate file, "slow" sleeps 0.3 s, "exit3" exits 3. Output:
 * "<member>:<payload>". */
static const char task_sh[] =
    "#!/bin/sh\n"
    "in=$(cat)\n"
    "echo \"start $ZKCOORD_TASK_ID $ZKCOORD_MEMBER_ID $$ $(date +%s%N) $ZKCOORD_FENCING_TOKEN\" "
    ">>\"$1\"\n"
    "case \"$in\" in\n"
    "  *hang*) sleep 1000 & echo \"kid $ZKCOORD_TASK_ID $!\" >>\"$1\"; wait ;;\n"
    "  *gate*) while [ ! -e \"$2\" ]; do sleep 0.05; done ;;\n"
    "  *slow*) sleep 0.3 ;;\n"
    "  *big*) head -c 70000 /dev/zero | tr '\\000' a; exit 0 ;;\n"
    "esac\n"
    "echo \"end $ZKCOORD_TASK_ID $ZKCOORD_MEMBER_ID $$ $(date +%s%N)\" >>\"$1\"\n"
    "printf '%s:%s' \"$ZKCOORD_MEMBER_ID\" \"$in\"\n"
    "case \"$in\" in *exit3*) exit 3 ;; esac\n"
    "exit 0\n";

typedef struct agent_proc {
    char id[32];
    char cfg[512];
    char log[512];
    pid_t pid;
    int exited;
} agent_proc;

typedef struct world {
    char dir[256];
    char root[64];
    char hist[512];
    char gate[512];
    agent_proc ag[MAX_AGENTS];
    int n;
    const char *handler; /* NULL: task.sh; else the handler's only argv */
    int health;          /* item agents check health: unhealthy while <dir>/<id>.sick exists */
    const char *servers; /* item agents started now connect here (NULL: the server itself) */
} world;

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    int rc;

    if (!f)
        return -1;
    rc = fputs(text, f) < 0 ? -1 : 0;
    return fclose(f) == 0 ? rc : -1;
}

/* The whole file, NUL-terminated ("" when missing); free(). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!f)
        return strdup("");
    do {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap + 65536);
            if (!nb)
                break;
            buf = nb;
            cap += 65536;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    if (!buf)
        return strdup("");
    buf[len] = '\0';
    return buf;
}

/* Wait until `path` contains `needle`; 0 or -1 at the deadline. */
static int wait_file_has(const char *path, const char *needle, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;

    for (;;) {
        char *s = slurp(path);
        int found = strstr(s, needle) != NULL;
        free(s);
        if (found)
            return 0;
        if (tu_now_ms() > end)
            return -1;
        pause_ms(20);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int world_init(world *w, const char *root)
{
    char path[512];

    memset(w, 0, sizeof(*w));
    snprintf(w->root, sizeof(w->root), "%s", root);
    snprintf(w->dir, sizeof(w->dir), "%s/zkwork.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(w->dir)) {
        w->dir[0] = '\0';
        return -1;
    }
    snprintf(w->hist, sizeof(w->hist), "%s/history", w->dir);
    snprintf(w->gate, sizeof(w->gate), "%s/gate", w->dir);
    snprintf(path, sizeof(path), "%s/task.sh", w->dir);
    return write_file(path, task_sh);
}

/* An agent with election, a work section of `capacity` and the task
 * handler with `timeout_ms` (0: default). */
/* Run the agent of the build tree (top_builddir) on ap->cfg, its output
 * in ap->log; ap, or NULL when the fork failed. */
static agent_proc *agent_spawn(agent_proc *ap)
{
    const char *top = getenv("top_builddir");
    char bin[1024];

    snprintf(bin, sizeof(bin), "%s/zkcoord", top && *top ? top : ".");
    fflush(NULL);
    ap->pid = fork();
    if (ap->pid == 0) {
        int fd = open(ap->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0)
            _exit(125);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "-c", ap->cfg, (char *)NULL);
        _exit(126);
    }
    return ap->pid > 0 ? ap : NULL;
}

static agent_proc *agent_start(world *w, const char *id, int capacity, int timeout_ms)
{
    agent_proc *ap;
    json_t *j, *tasks;
    char script[512], dir[sizeof(w->dir)];

    if (w->n >= MAX_AGENTS)
        return NULL;
    ap = &w->ag[w->n++];
    memcpy(dir, w->dir, sizeof(dir)); /* not the agent's struct: gcc sees no overlap */
    snprintf(ap->id, sizeof(ap->id), "%s", id);
    snprintf(ap->cfg, sizeof(ap->cfg), "%s/%s.json", dir, id);
    snprintf(ap->log, sizeof(ap->log), "%s/%s.log", dir, id);
    snprintf(script, sizeof(script), "%s/task.sh", dir);
    if (w->handler)
        tasks = json_pack("{s:[s]}", "args", w->handler);
    else
        tasks = json_pack("{s:[s, s, s, s], s:{s:s}}", "args", "/bin/sh", script, w->hist, w->gate,
                          "env", "TASK_TEST", "1");
    if (timeout_ms)
        json_object_set_new(tasks, "timeout_ms", json_integer(timeout_ms));
    j = json_pack("{s:{s:s, s:i, s:s}, s:s, s:{s:s, s:s, s:i}, s:{s:b}, s:{s:i, s:o}, s:{s:s}}",
                  "zookeeper", "servers", zkh_connect_string(tu_zk), "session_timeout_ms",
                  SESSION_MS, "root", w->root, "cluster", "c", "member", "id", id, "host",
                  "127.0.0.1", "port", 7000, "election", "enabled", 1, "work", "capacity", capacity,
                  "tasks", tasks, "log", "level", "info");
    if (!j || json_dump_file(j, ap->cfg, JSON_INDENT(2)) != 0) {
        json_decref(j);
        return NULL;
    }
    json_decref(j);
    return agent_spawn(ap);
}

/* Send `sig`, wait for the exit (SIGKILL after timeout_ms). */
static void agent_stop(agent_proc *ap, int sig, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    int st;

    if (ap->pid <= 0 || ap->exited)
        return;
    kill(ap->pid, sig);
    while (waitpid(ap->pid, &st, WNOHANG) != ap->pid) {
        if (tu_now_ms() > end) {
            fprintf(stderr, "    agent %s did not exit after signal %d: killed\n", ap->id, sig);
            kill(ap->pid, SIGKILL);
            waitpid(ap->pid, &st, 0);
            break;
        }
        pause_ms(10);
    }
    ap->exited = 1;
}

static void world_destroy(world *w)
{
    int i;

    for (i = 0; i < w->n; i++) {
        agent_proc *ap = &w->ag[i];
        char *log;
        agent_stop(ap, SIGTERM, 15000);
        log = slurp(ap->log);
        CU_ASSERT_PTR_NULL(strstr(log, "Sanitizer"));
        CU_ASSERT_PTR_NULL(strstr(log, "runtime error:"));
        if (strstr(log, "Sanitizer") || strstr(log, "runtime error:") || getenv("ZKA_TEST_LOGS"))
            fprintf(stderr, "\n    --- %s log:\n%s\n", ap->id, log);
        free(log);
    }
    if (w->dir[0] && !getenv("ZKA_TEST_KEEP"))
        nftw(w->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* `zkcoordctl -s <zk> --root <root> --format json args...`: its exit
 * status (-1 when it did not run), stdout and stderr in out. */
static int ctl(world *w, char *out, size_t cap, ...)
{
    const char *top = getenv("top_builddir");
    char bin[1024];
    char *argv[32];
    posix_spawn_file_actions_t fa;
    va_list ap;
    pid_t pid;
    size_t got = 0;
    ssize_t r;
    int fds[2], n = 0, status;

    snprintf(bin, sizeof(bin), "%s/zkcoordctl", top && *top ? top : ".");
    argv[n++] = bin;
    argv[n++] = (char *)"-s";
    argv[n++] = (char *)zkh_connect_string(tu_zk);
    argv[n++] = (char *)"--root";
    argv[n++] = w->root;
    argv[n++] = (char *)"--format";
    argv[n++] = (char *)"json";
    va_start(ap, cap);
    while (n < 31 && (argv[n] = va_arg(ap, char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    if (posix_spawn(&pid, bin, &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    while (got < cap - 1 && (r = read(fds[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* A result as `submit --wait --format json` prints it. */
struct result {
    int exit; /* zkcoordctl's exit status */
    char task[32];
    int status;
    char output[256];
    char worker[32];
    long long token;
    size_t output_len;
    int truncated;
};

static const char *jstr(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));

    return v ? v : "";
}

static int submit(world *w, const char *payload, int timeout_ms, struct result *res)
{
    size_t cap = 256 * 1024; /* a result's output is up to 64 KiB, escaped */
    char *out = malloc(cap), tmo[32];
    json_t *doc, *r;

    memset(res, 0, sizeof(*res));
    if (!out)
        return -1;
    snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
    res->exit = ctl(w, out, cap, "submit", "c", "--wait", "--timeout", tmo, payload, NULL);
    doc = json_loads(out, 0, NULL);
    r = json_object_get(doc, "result");
    if (!r) {
        fprintf(stderr, "    submit %s: exit %d: %s\n", payload, res->exit, out);
        json_decref(doc);
        free(out);
        return -1;
    }
    snprintf(res->task, sizeof(res->task), "%s", jstr(r, "task"));
    res->status = (int)json_integer_value(json_object_get(r, "status"));
    snprintf(res->output, sizeof(res->output), "%s", jstr(r, "output"));
    snprintf(res->worker, sizeof(res->worker), "%s", jstr(r, "worker"));
    res->token = json_integer_value(json_object_get(r, "token"));
    res->output_len = json_string_length(json_object_get(r, "output"));
    res->truncated = json_is_true(json_object_get(r, "truncated"));
    json_decref(doc);
    free(out);
    return 0;
}

/* Submit in the background (for tasks that must run side by side). */
struct bg {
    world *w;
    const char *payload;
    struct result res;
    int rc;
    pthread_t th;
};

static void *bg_main(void *arg)
{
    struct bg *b = arg;

    b->rc = submit(b->w, b->payload, 60000, &b->res);
    return NULL;
}

/* The history: lines "start TASK MEMBER PID NS TOKEN", "end TASK MEMBER
 * PID NS", "kid TASK PID". */
struct hrec {
    char kind[8], task[32], member[32];
    long pid;
    long long ns;
};

static int hist_load(world *w, struct hrec *out, int max)
{
    char *s = slurp(w->hist), *line, *save = NULL;
    int n = 0;

    for (line = strtok_r(s, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
        struct hrec *h = &out[n];
        memset(h, 0, sizeof(*h));
        if (sscanf(line, "%7s %31s", h->kind, h->task) != 2)
            continue;
        if (strcmp(h->kind, "kid") == 0 && sscanf(line, "%*s %*s %ld", &h->pid) == 1)
            n++;
        else if (sscanf(line, "%*s %*s %31s %ld %lld", h->member, &h->pid, &h->ns) == 3)
            n++;
    }
    free(s);
    return n;
}

static int pid_alive(long pid)
{
    char path[64], *s;
    int alive;

    if (kill((pid_t)pid, 0) != 0)
        return 0;
    /* a zombie of someone else's is not running */
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    s = slurp(path);
    alive = *s && !strstr(s, ") Z ");
    free(s);
    return alive;
}

/* Two agents, tasks from zkcoordctl: every result comes from one of them
 * with the handler's output, status and a token. */
static void test_two_agents(void)
{
    world w;
    struct result r;
    int i, by1 = 0, by2 = 0;
    char payload[64], want[96];

    TU_CHECK(world_init(&w, "/zkwork1") == 0, out);
    TU_CHECK(agent_start(&w, "a1", 1, 0) && agent_start(&w, "a2", 1, 0), out);
    for (i = 0; i < 6; i++) {
        snprintf(payload, sizeof(payload), "{\"n\":%d%s}", i, i == 5 ? ",\"exit3\":1" : "");
        TU_CHECK(submit(&w, payload, 30000, &r) == 0, out);
        CU_ASSERT_EQUAL(r.exit, i == 5 ? 3 : 0);
        CU_ASSERT_EQUAL(r.status, i == 5 ? 3 : 0);
        snprintf(want, sizeof(want), "%s:%s", r.worker, payload);
        CU_ASSERT_STRING_EQUAL(r.output, want);
        CU_ASSERT(r.token > 0);
        by1 += strcmp(r.worker, "a1") == 0;
        by2 += strcmp(r.worker, "a2") == 0;
    }
    CU_ASSERT_EQUAL(by1 + by2, 6);
    /* the handler saw its environment */
    CU_ASSERT_EQUAL(wait_file_has(w.hist, "start task-", 1000), 0);
out:
    world_destroy(&w);
}

/* An agent SIGKILLed while its task runs: its handler dies with it, and
 * the task completes on the other agent. */
static void test_killed_mid_task(void)
{
    world w;
    struct bg b;
    struct hrec h[64];
    agent_proc *a1;
    int n, i, started = 0;
    long pid1 = 0;
    char line[64];

    memset(&b, 0, sizeof(b));
    TU_CHECK(world_init(&w, "/zkwork2") == 0, out);
    TU_CHECK((a1 = agent_start(&w, "a1", 1, 0)) != NULL, out);
    b.w = &w;
    b.payload = "{\"gate\":1}";
    TU_CHECK(pthread_create(&b.th, NULL, bg_main, &b) == 0, out);
    started = 1;
    /* a1 runs it (it is alone) */
    TU_CHECK(wait_file_has(w.hist, "start task-0000000000 a1", 20000) == 0, out);
    TU_CHECK(agent_start(&w, "a2", 1, 0) != NULL, out);
    /* a2 must be a live member before a1 dies, or the task waits for it */
    snprintf(line, sizeof(line), "registering a2");
    TU_CHECK(wait_file_has(w.ag[1].log, line, 20000) == 0, out);
    agent_stop(a1, SIGKILL, 5000);
    TU_CHECK(write_file(w.gate, "open\n") == 0, out);
    pthread_join(b.th, NULL);
    started = 0;
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(b.res.status, 0);
    CU_ASSERT_STRING_EQUAL(b.res.worker, "a2");
    CU_ASSERT_STRING_EQUAL(b.res.output, "a2:{\"gate\":1}");
    n = hist_load(&w, h, 64);
    for (i = 0; i < n; i++)
        if (strcmp(h[i].kind, "start") == 0 && strcmp(h[i].member, "a1") == 0)
            pid1 = h[i].pid;
    CU_ASSERT(pid1 > 0);
    /* a1's handler went with its guard (parent-death signal): it never
     * reached "end", and it is gone */
    for (i = 0; i < n; i++)
        CU_ASSERT(!(strcmp(h[i].kind, "end") == 0 && strcmp(h[i].member, "a1") == 0));
    if (pid1 > 0) {
        long long end = tu_now_ms() + 5000;
        while (pid_alive(pid1) && tu_now_ms() < end)
            pause_ms(20);
        CU_ASSERT_FALSE(pid_alive(pid1));
    }
out:
    if (started) {
        write_file(w.gate, "open\n");
        pthread_join(b.th, NULL);
    }
    world_destroy(&w);
}

/* A handler that hangs (and a child of it) is killed at its timeout; the
 * result says so (status 124), and nothing of it is left. Output past the
 * cap is cut and marked. */
static void test_timeout(void)
{
    world w;
    struct result r;
    struct hrec h[16];
    long long t0;
    int n, i, kids = 0;

    TU_CHECK(world_init(&w, "/zkwork3") == 0, out);
    TU_CHECK(agent_start(&w, "a1", 1, 500) != NULL, out);
    t0 = tu_now_ms();
    TU_CHECK(submit(&w, "{\"hang\":1}", 30000, &r) == 0, out);
    CU_ASSERT_EQUAL(r.status, 124);
    CU_ASSERT_EQUAL(r.exit, 124);
    CU_ASSERT_STRING_EQUAL(r.output, ""); /* it printed nothing before it hung */
    CU_ASSERT(tu_now_ms() - t0 < 15000);
    n = hist_load(&w, h, 16);
    for (i = 0; i < n; i++) {
        if (strcmp(h[i].kind, "end") == 0)
            CU_FAIL("the hanging handler reached its end");
        if (strcmp(h[i].kind, "kid") == 0 || strcmp(h[i].kind, "start") == 0) {
            kids += strcmp(h[i].kind, "kid") == 0;
            CU_ASSERT_FALSE(pid_alive(h[i].pid));
        }
    }
    CU_ASSERT_EQUAL(kids, 1);
    /* output past the cap: cut where the library cuts, and marked */
    TU_CHECK(submit(&w, "{\"big\":1}", 30000, &r) == 0, out);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.output_len, 65536);
    CU_ASSERT_EQUAL(r.truncated, 1);
    /* and the agent goes on: the next task runs */
    TU_CHECK(submit(&w, "{\"after\":1}", 30000, &r) == 0, out);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_STRING_EQUAL(r.output, "a1:{\"after\":1}");
out:
    world_destroy(&w);
}

/* Capacity 2: six slow tasks at once, never more than two running on the
 * agent (from the recorded history), and two at some point. */
static void test_capacity(void)
{
    world w;
    struct bg b[6];
    struct hrec h[64];
    int i, j, n, started = 0, maxc = 0, starts = 0;

    memset(b, 0, sizeof(b));
    TU_CHECK(world_init(&w, "/zkwork4") == 0, out);
    TU_CHECK(agent_start(&w, "a1", 2, 0) != NULL, out);
    for (i = 0; i < 6; i++) {
        b[i].w = &w;
        b[i].payload = "{\"slow\":1}";
        TU_CHECK(pthread_create(&b[i].th, NULL, bg_main, &b[i]) == 0, out);
        started++;
    }
    for (i = 0; i < started; i++)
        pthread_join(b[i].th, NULL);
    started = 0;
    for (i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(b[i].rc, 0);
        CU_ASSERT_EQUAL(b[i].res.status, 0);
        CU_ASSERT_STRING_EQUAL(b[i].res.output, "a1:{\"slow\":1}");
    }
    /* concurrency at each start: runs started before it and not ended */
    n = hist_load(&w, h, 64);
    for (i = 0; i < n; i++) {
        int cur = 0;
        if (strcmp(h[i].kind, "start") != 0)
            continue;
        starts++;
        for (j = 0; j < n; j++) {
            int k, ended = 0;
            if (strcmp(h[j].kind, "start") != 0 || h[j].ns > h[i].ns)
                continue;
            for (k = 0; k < n; k++)
                if (strcmp(h[k].kind, "end") == 0 && h[k].pid == h[j].pid && h[k].ns <= h[i].ns)
                    ended = 1;
            cur += !ended;
        }
        if (cur > maxc)
            maxc = cur;
    }
    CU_ASSERT_EQUAL(starts, 6);
    CU_ASSERT_EQUAL(maxc, 2);
out:
    for (i = 0; i < started; i++)
        pthread_join(b[i].th, NULL);
    world_destroy(&w);
}

/* A drained agent (status STOPPING) takes no new tasks: they all go to the
 * other one; undrained, it takes tasks again. */
static void test_drained_takes_none(void)
{
    world w;
    struct result r;
    char out[4096];
    int i, by1 = 0;

    TU_CHECK(world_init(&w, "/zkwork5") == 0, out);
    TU_CHECK(agent_start(&w, "a1", 1, 0) && agent_start(&w, "a2", 1, 0), out);
    TU_CHECK(wait_file_has(w.ag[0].log, "registering a1", 20000) == 0, out);
    TU_CHECK(wait_file_has(w.ag[1].log, "registering a2", 20000) == 0, out);
    CU_ASSERT_EQUAL(ctl(&w, out, sizeof(out), "drain", "c", "a1", "--reason", "test", NULL), 0);
    TU_CHECK(wait_file_has(w.ag[0].log, "drained: member status STOPPING", 20000) == 0, out);
    for (i = 0; i < 4; i++) {
        TU_CHECK(submit(&w, "{\"d\":1}", 30000, &r) == 0, out);
        CU_ASSERT_STRING_EQUAL(r.worker, "a2");
        CU_ASSERT_EQUAL(r.status, 0);
    }
    CU_ASSERT_EQUAL(ctl(&w, out, sizeof(out), "undrain", "c", "a1", NULL), 0);
    TU_CHECK(wait_file_has(w.ag[0].log, "undrained:", 20000) == 0, out);
    /* a1 has room again: with both free, some of 6 tasks land on it */
    for (i = 0; i < 6; i++) {
        TU_CHECK(submit(&w, "{\"u\":1}", 30000, &r) == 0, out);
        by1 += strcmp(r.worker, "a1") == 0;
    }
    CU_ASSERT(by1 > 0);
out:
    world_destroy(&w);
}

/* A handler that cannot be started: status 127, and the agent goes on. */
static void test_handler_missing(void)
{
    world w;
    struct result r;

    TU_CHECK(world_init(&w, "/zkwork6") == 0, out);
    w.handler = "/nonexistent/zkcoord-task-handler";
    TU_CHECK(agent_start(&w, "a1", 1, 0) != NULL, out);
    TU_CHECK(submit(&w, "{\"x\":1}", 30000, &r) == 0, out);
    CU_ASSERT_EQUAL(r.status, 127);
    CU_ASSERT_EQUAL(r.exit, 127);
    CU_ASSERT_STRING_EQUAL(r.worker, "a1");
    TU_CHECK(submit(&w, "{\"x\":2}", 30000, &r) == 0, out);
    CU_ASSERT_EQUAL(r.status, 127);
out:
    world_destroy(&w);
}

/* ------------------------------------------------------ work items */

#define N_PARTS 12

/* The per-item app: $1 = history. Records "start|stop ITEM TOKEN NS PID
 * MEMBER"; TERM (the supervisor's stop) records the stop. The trap comes
 * first, so a stop that arrives right after the start is still recorded;
 * it ignores TERM from then on (the whole tree gets one, and a second
 * would run the trap again or kill its `date`). */
static const char item_sh[] =
    "#!/bin/sh\n"
    "trap 'trap \"\" TERM; echo \"stop $ZKCOORD_ITEM $ZKCOORD_FENCING_TOKEN $(date +%s%N) $$ "
    "$ZKCOORD_MEMBER_ID\" >>\"$1\"; exit 0' TERM\n"
    "echo \"start $ZKCOORD_ITEM $ZKCOORD_FENCING_TOKEN $(date +%s%N) $$ $ZKCOORD_MEMBER_ID\" "
    ">>\"$1\"\n"
    "sleep 1000 &\n"
    "wait\n";

/* The item_assigned / item_revoked handler: $1 = file. One line of the
 * environment, then the document. */
static const char item_handler_sh[] =
    "#!/bin/sh\n"
    "doc=$(cat)\n"
    "echo \"ev $ZKCOORD_EVENT $ZKCOORD_ITEM $ZKCOORD_FENCING_TOKEN ${ZKCOORD_REVOKE_REASON:--} "
    "${ZKCOORD_ITEMS:--} $ZKCOORD_MEMBER_ID\" >>\"$1\"\n"
    "echo \"doc $doc\" >>\"$1\"\n";

/* An agent with 12 partitions, one process per held item, and the item
 * handler; its handler lines go to <dir>/<id>.events. */
static agent_proc *agent_start_items(world *w, const char *id)
{
    agent_proc *ap;
    json_t *j;
    char app[512], hsh[512], events[512], dir[sizeof(w->dir)];

    if (w->n >= MAX_AGENTS)
        return NULL;
    ap = &w->ag[w->n++];
    memcpy(dir, w->dir, sizeof(dir));
    snprintf(ap->id, sizeof(ap->id), "%s", id);
    snprintf(ap->cfg, sizeof(ap->cfg), "%s/%s.json", dir, id);
    snprintf(ap->log, sizeof(ap->log), "%s/%s.log", dir, id);
    snprintf(app, sizeof(app), "%s/item.sh", dir);
    snprintf(hsh, sizeof(hsh), "%s/item-handler.sh", dir);
    snprintf(events, sizeof(events), "%s/%s.events", dir, id);
    if (write_file(app, item_sh) != 0 || write_file(hsh, item_handler_sh) != 0)
        return NULL;
    j = json_pack("{s:{s:s, s:i, s:s}, s:s, s:{s:s, s:s, s:i}, s:{s:b}, s:{s:i},"
                  " s:{s:[s, s, s], s:s, s:i}, s:[{s:[s, s], s:[s, s, s]}], s:{s:s}}",
                  "zookeeper", "servers", w->servers ? w->servers : zkh_connect_string(tu_zk),
                  "session_timeout_ms", SESSION_MS, "root", w->root, "cluster", "c", "member", "id",
                  id, "host", "127.0.0.1", "port", 7000, "election", "enabled", 1, "work",
                  "partitions", N_PARTS, "supervise", "args", "/bin/sh", app, w->hist, "while",
                  "item", "stop_grace_ms", 3000, "handlers", "on", "item_assigned", "item_revoked",
                  "args", "/bin/sh", hsh, events, "log", "level", "info");
    if (j && w->health) {
        char sick[600];
        snprintf(sick, sizeof(sick), "test ! -e %s/%s.sick", dir, id);
        json_object_set_new(j, "health",
                            json_pack("{s:[s, s, s], s:i, s:i, s:i, s:i}", "args", "/bin/sh", "-c",
                                      sick, "interval_ms", 100, "timeout_ms", 1000, "rise", 1,
                                      "fall", 1));
    }
    if (!j || json_dump_file(j, ap->cfg, JSON_INDENT(2)) != 0) {
        json_decref(j);
        return NULL;
    }
    json_decref(j);
    return agent_spawn(ap);
}

/* One line of the item history. */
struct irec {
    int start; /* else stop */
    char item[16], member[16];
    long long token, ns;
    long pid;
};

#define MAX_IREC 512

static int ihist_load(world *w, struct irec *out, int max)
{
    char *s = slurp(w->hist), *line, *save = NULL, kind[8];
    int n = 0;

    for (line = strtok_r(s, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
        struct irec *r = &out[n];
        memset(r, 0, sizeof(*r));
        if (sscanf(line, "%7s %15s %lld %lld %ld %15s", kind, r->item, &r->token, &r->ns, &r->pid,
                   r->member) != 6)
            continue;
        r->start = strcmp(kind, "start") == 0;
        n++;
    }
    free(s);
    return n;
}

/* Who runs each item now (from the history: a start without its stop),
 * into owner[i] for item p<i> ("" when nobody); and how many items run,
 * and whether some item runs twice (returned as -1). */
static int running_now(const struct irec *h, int n, char owner[N_PARTS][16], long pids[N_PARTS],
                       long long tokens[N_PARTS])
{
    int i, j, running = 0;

    for (i = 0; i < N_PARTS; i++) {
        owner[i][0] = '\0';
        pids[i] = 0;
        tokens[i] = 0;
    }
    for (i = 0; i < n; i++) {
        int item, stopped = 0;
        if (!h[i].start || sscanf(h[i].item, "p%d", &item) != 1 || item < 0 || item >= N_PARTS)
            continue;
        for (j = 0; j < n; j++)
            if (!h[j].start && h[j].pid == h[i].pid)
                stopped = 1;
        if (stopped)
            continue;
        if (owner[item][0])
            return -1;
        snprintf(owner[item], 16, "%s", h[i].member);
        pids[item] = h[i].pid;
        tokens[item] = h[i].token;
        running++;
    }
    return running;
}

/* Wait until every item runs, once, with `per` items on each of `members`
 * (NULL-terminated) and only there. 0, or -1 at the deadline. */
static int wait_spread(world *w, const char *const *members, int per, int timeout_ms,
                       char owner[N_PARTS][16], long pids[N_PARTS], long long tokens[N_PARTS])
{
    static struct irec h[MAX_IREC];
    long long end = tu_now_ms() + timeout_ms;

    for (;;) {
        int n = ihist_load(w, h, MAX_IREC), ok = 0, i, k;
        if (running_now(h, n, owner, pids, tokens) == N_PARTS) {
            ok = 1;
            for (k = 0; members[k]; k++) {
                int c = 0;
                for (i = 0; i < N_PARTS; i++)
                    c += strcmp(owner[i], members[k]) == 0;
                ok = ok && c == per;
            }
        }
        if (ok)
            return 0;
        if (tu_now_ms() > end)
            return -1;
        pause_ms(20);
    }
}

static long long realtime_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Per item, no two runs overlap: sorted by start, each run stops (or its
 * agent was SIGKILLed, at killed_ns) before the next starts. Returns the
 * number of overlaps (each reported). */
static int overlaps(const struct irec *h, int n, const char *killed, long long killed_ns)
{
    int i, j, item, bad = 0;

    for (item = 0; item < N_PARTS; item++) {
        char name[16];
        long long last_end = 0;
        int open_run = 0;
        snprintf(name, sizeof(name), "p%d", item);
        /* the history is appended in time order per writer; sort by start */
        for (;;) {
            int next = -1;
            long long end = -1;
            for (i = 0; i < n; i++)
                if (h[i].start && strcmp(h[i].item, name) == 0 && h[i].ns >= last_end &&
                    (next < 0 || h[i].ns < h[next].ns) && h[i].pid != 0)
                    next = i;
            if (next < 0)
                break;
            if (open_run) {
                fprintf(stderr, "    %s: a run starts while the previous one never stopped\n",
                        name);
                bad++;
            }
            for (j = 0; j < n; j++)
                if (!h[j].start && h[j].pid == h[next].pid)
                    end = h[j].ns;
            if (end < 0 && killed && strcmp(h[next].member, killed) == 0)
                end = killed_ns;
            if (end < 0) {
                open_run = 1;
                end = h[next].ns + 1;
            }
            last_end = end;
            /* any other start inside [start, end) overlaps */
            for (i = 0; i < n; i++)
                if (i != next && h[i].start && strcmp(h[i].item, name) == 0 &&
                    h[i].ns >= h[next].ns && h[i].ns < end) {
                    fprintf(stderr, "    %s: %s's run (pid %ld) overlaps %s's (pid %ld)\n", name,
                            h[i].member, h[i].pid, h[next].member, h[next].pid);
                    bad++;
                }
        }
    }
    return bad;
}

/* Handler lines of one agent: "ev EVENT ITEM TOKEN REASON ITEMS MEMBER"
 * and "doc {...}". Counts the events and checks each document against its
 * environment line. */
struct ievents {
    int assigned, revoked, docs_ok;
    char last_items[256];
};

static int events_load(const char *path, struct ievents *e, const struct irec *h, int n,
                       const char *member)
{
    char *s = slurp(path), *line, *save = NULL, ev[32], item[32], reason[32], items[256], mem[32];
    long long token;
    int bad = 0, i;

    memset(e, 0, sizeof(*e));
    for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "ev ", 3) == 0) {
            int found = 0;
            if (sscanf(line, "ev %31s %31s %lld %31s %255s %31s", ev, item, &token, reason, items,
                       mem) != 6) {
                bad++;
                continue;
            }
            e->assigned += strcmp(ev, "item_assigned") == 0;
            e->revoked += strcmp(ev, "item_revoked") == 0;
            snprintf(e->last_items, sizeof(e->last_items), "%s", items);
            /* the token is the one the item's process ran under */
            for (i = 0; i < n; i++)
                if (h[i].start && strcmp(h[i].item, item) == 0 && h[i].token == token &&
                    strcmp(h[i].member, member) == 0)
                    found = 1;
            if (!found) {
                fprintf(stderr, "    %s: %s %s token %lld: no run with that token\n", member, ev,
                        item, token);
                bad++;
            }
            if (strcmp(ev, "item_revoked") == 0 && strcmp(reason, "-") == 0)
                bad++;
        } else if (strncmp(line, "doc ", 4) == 0) {
            json_t *d = json_loads(line + 4, 0, NULL);
            const char *di = json_string_value(json_object_get(d, "item"));
            const char *dt = json_string_value(json_object_get(d, "fencing_token"));
            char tok[32];
            snprintf(tok, sizeof(tok), "%lld", token);
            if (d && di && strcmp(di, item) == 0 && dt && strcmp(dt, tok) == 0 &&
                json_is_array(json_object_get(d, "items")) &&
                json_is_string(json_object_get(d, "spec")) &&
                (strcmp(ev, "item_assigned") == 0 || json_object_get(d, "reason")))
                e->docs_ok++;
            else
                bad++;
            json_decref(d);
        }
    }
    free(s);
    return bad;
}

/* Three agents share 12 partitions, one process per held item: every item
 * runs exactly once; SIGKILL of one agent moves only its items, within the
 * session timeout + 1 s, and its processes are gone; TERM of another stops
 * its processes before the new owner starts them; the item handlers fire
 * once per change with the item, its token and ZKCOORD_ITEMS. */
static void test_items(void)
{
    static struct irec h[MAX_IREC];
    world w;
    const char *three[] = {"a1", "a2", "a3", NULL}, *two[] = {"a1", "a2", NULL},
               *one[] = {"a1", NULL};
    char owner[N_PARTS][16], before[N_PARTS][16], path[600];
    long pids[N_PARTS], pids_before[N_PARTS];
    long long tokens[N_PARTS], kill_ns, worst = 0, t_term;
    struct ievents ev;
    int i, j, n, moved = 0, a2_items = 0;

    TU_CHECK(world_init(&w, "/zkwork7") == 0, out);
    TU_CHECK(agent_start_items(&w, "a1") && agent_start_items(&w, "a2") &&
                 agent_start_items(&w, "a3"),
             out);
    TU_CHECK(wait_spread(&w, three, 4, 30000, owner, pids, tokens) == 0, out);
    memcpy(before, owner, sizeof(before));
    memcpy(pids_before, pids, sizeof(pids_before));

    /* SIGKILL a3: only its 4 items move, within session timeout + 1 s */
    kill_ns = realtime_ns();
    agent_stop(&w.ag[2], SIGKILL, 5000);
    TU_CHECK(wait_spread(&w, two, 6, SESSION_MS + 15000, owner, pids, tokens) == 0, out);
    n = ihist_load(&w, h, MAX_IREC);
    for (i = 0; i < N_PARTS; i++) {
        if (strcmp(before[i], "a3") == 0) {
            moved++;
            for (j = 0; j < n; j++)
                if (h[j].start && h[j].pid == pids[i] && h[j].ns - kill_ns > worst)
                    worst = h[j].ns - kill_ns;
            /* its process went with the agent */
            {
                long long end = tu_now_ms() + 5000;
                while (pid_alive(pids_before[i]) && tu_now_ms() < end)
                    pause_ms(20);
                CU_ASSERT_FALSE(pid_alive(pids_before[i]));
            }
        } else {
            /* minimal moves: the same process still runs it */
            CU_ASSERT_STRING_EQUAL(owner[i], before[i]);
            CU_ASSERT_EQUAL(pids[i], pids_before[i]);
        }
    }
    CU_ASSERT_EQUAL(moved, 4);
    fprintf(stderr,
            "\n    SIGKILL of a3: its %d items ran elsewhere %lld ms after the kill "
            "(session timeout %d ms)\n",
            moved, worst / 1000000, SESSION_MS);
    CU_ASSERT(worst > 0 && worst / 1000000 <= SESSION_MS + 1000);

    /* TERM a2: its items stop before a1 starts them */
    memcpy(before, owner, sizeof(before));
    memcpy(pids_before, pids, sizeof(pids_before));
    t_term = realtime_ns();
    agent_stop(&w.ag[1], SIGTERM, 15000);
    TU_CHECK(wait_spread(&w, one, N_PARTS, 15000, owner, pids, tokens) == 0, out);
    n = ihist_load(&w, h, MAX_IREC);
    for (i = 0; i < N_PARTS; i++) {
        long long stop_ns = -1, start_ns = -1;
        if (strcmp(before[i], "a2") != 0) {
            CU_ASSERT_EQUAL(pids[i], pids_before[i]); /* a1's items did not move */
            continue;
        }
        a2_items++;
        for (j = 0; j < n; j++) {
            if (!h[j].start && h[j].pid == pids_before[i])
                stop_ns = h[j].ns;
            if (h[j].start && h[j].pid == pids[i])
                start_ns = h[j].ns;
        }
        CU_ASSERT(stop_ns > t_term);
        CU_ASSERT(start_ns > 0 && stop_ns > 0 && stop_ns <= start_ns);
    }
    CU_ASSERT_EQUAL(a2_items, 6);

    /* the whole history: no item ever ran twice at once */
    CU_ASSERT_EQUAL(overlaps(h, n, "a3", kill_ns), 0);

    /* handlers: once per change, with the run's token (a2's are all in:
     * the agent waits for its handlers before it exits) */
    for (i = 0; i < 2; i++) {
        const char *m = i == 0 ? "a1" : "a2";
        int starts = 0, stops = 0;
        long long end = tu_now_ms() + 10000;
        for (j = 0; j < n; j++)
            if (strcmp(h[j].member, m) == 0) {
                starts += h[j].start;
                stops += !h[j].start;
            }
        snprintf(path, sizeof(path), "%s/%s.events", w.dir, m);
        for (;;) {
            int bad = events_load(path, &ev, h, n, m);
            if ((ev.assigned == starts && ev.revoked == stops) || tu_now_ms() > end) {
                CU_ASSERT_EQUAL(bad, 0);
                break;
            }
            pause_ms(20);
        }
        CU_ASSERT_EQUAL(ev.assigned, starts);
        CU_ASSERT_EQUAL(ev.revoked, stops);
        CU_ASSERT_EQUAL(ev.docs_ok, starts + stops);
        if (i == 0) /* a1 holds all twelve after its last change */
            CU_ASSERT_STRING_EQUAL(ev.last_items, "p0,p1,p10,p11,p2,p3,p4,p5,p6,p7,p8,p9");
        if (i == 1) /* a2 held none after its last (TERM: closed) */
            CU_ASSERT_STRING_EQUAL(ev.last_items, "-");
    }
out:
    world_destroy(&w);
}

/* Never hold work while unhealthy: when a1's health check fails, its
 * items' processes stop and its claims go before its member node does,
 * and a2 runs them (never at the same time); healthy again, a1 takes its
 * share back. */
static void test_items_health(void)
{
    static struct irec h[MAX_IREC];
    world w;
    const char *two[] = {"a1", "a2", NULL}, *only2[] = {"a2", NULL};
    char owner[N_PARTS][16], before[N_PARTS][16], sick[600];
    long pids[N_PARTS], pids_before[N_PARTS];
    long long tokens[N_PARTS];
    char *log;
    const char *leave, *dereg;
    int i, j, n;

    TU_CHECK(world_init(&w, "/zkwork8") == 0, out);
    w.health = 1;
    TU_CHECK(agent_start_items(&w, "a1") && agent_start_items(&w, "a2"), out);
    TU_CHECK(wait_spread(&w, two, 6, 30000, owner, pids, tokens) == 0, out);
    memcpy(before, owner, sizeof(before));
    memcpy(pids_before, pids, sizeof(pids_before));
    snprintf(sick, sizeof(sick), "%s/a1.sick", w.dir);
    TU_CHECK(write_file(sick, "sick\n") == 0, out);
    TU_CHECK(wait_spread(&w, only2, N_PARTS, 20000, owner, pids, tokens) == 0, out);
    n = ihist_load(&w, h, MAX_IREC);
    for (i = 0; i < N_PARTS; i++) {
        long long stop_ns = -1, start_ns = -1;
        if (strcmp(before[i], "a1") != 0) {
            CU_ASSERT_EQUAL(pids[i], pids_before[i]); /* a2's own did not move */
            continue;
        }
        for (j = 0; j < n; j++) {
            if (!h[j].start && h[j].pid == pids_before[i])
                stop_ns = h[j].ns;
            if (h[j].start && h[j].pid == pids[i])
                start_ns = h[j].ns;
        }
        CU_ASSERT(stop_ns > 0 && start_ns > 0 && stop_ns <= start_ns);
    }
    /* the items went first, then the member node */
    log = slurp(w.ag[0].log);
    leave = strstr(log, "leaving the work items");
    dereg = strstr(log, "deregistering a1");
    CU_ASSERT(leave && dereg && leave < dereg);
    free(log);
    /* healthy again: a1 takes half back */
    TU_CHECK(remove(sick) == 0, out);
    TU_CHECK(wait_spread(&w, two, 6, 30000, owner, pids, tokens) == 0, out);
    n = ihist_load(&w, h, MAX_IREC);
    CU_ASSERT_EQUAL(overlaps(h, n, NULL, 0), 0);
out:
    world_destroy(&w);
}

/* Rewrite an agent's config with `key` of section `section` set to `v`
 * (stolen), then HUP it. 0 or -1. */
static int agent_reconfigure(agent_proc *ap, const char *section, const char *key, json_t *v)
{
    json_t *j = json_load_file(ap->cfg, 0, NULL);
    int rc = -1;

    if (j && json_object_set_new(json_object_get(j, section), key, v) == 0 &&
        json_dump_file(j, ap->cfg, JSON_INDENT(2)) == 0 && kill(ap->pid, SIGHUP) == 0)
        rc = 0;
    json_decref(j);
    return rc;
}

/* HUP: a change that does not touch the work part moves nothing (same
 * processes); a change of the per-item supervise section restarts a1's
 * item processes (its items are revoked and claimed again, never
 * overlapping) and leaves a2's alone. */
static void test_items_reload(void)
{
    static struct irec h[MAX_IREC];
    world w;
    const char *two[] = {"a1", "a2", NULL};
    char owner[N_PARTS][16], before[N_PARTS][16];
    long pids[N_PARTS], pids_before[N_PARTS];
    long long tokens[N_PARTS];
    int i, n;

    TU_CHECK(world_init(&w, "/zkwork9") == 0, out);
    TU_CHECK(agent_start_items(&w, "a1") && agent_start_items(&w, "a2"), out);
    TU_CHECK(wait_spread(&w, two, 6, 30000, owner, pids, tokens) == 0, out);
    memcpy(before, owner, sizeof(before));
    memcpy(pids_before, pids, sizeof(pids_before));
    /* the log level only */
    TU_CHECK(agent_reconfigure(&w.ag[0], "log", "level", json_string("debug")) == 0, out);
    TU_CHECK(wait_file_has(w.ag[0].log, "reload: applying changes", 10000) == 0, out);
    TU_CHECK(wait_spread(&w, two, 6, 10000, owner, pids, tokens) == 0, out);
    for (i = 0; i < N_PARTS; i++)
        CU_ASSERT_EQUAL(pids[i], pids_before[i]);
    /* the per-item supervise section */
    TU_CHECK(agent_reconfigure(&w.ag[0], "supervise", "stop_grace_ms", json_integer(2000)) == 0,
             out);
    {
        /* wait for a1 to run its six again, each under a new process */
        long long end = tu_now_ms() + 20000;
        int renewed;
        do {
            renewed = 0;
            if (wait_spread(&w, two, 6, 1000, owner, pids, tokens) == 0)
                for (i = 0; i < N_PARTS; i++)
                    renewed += strcmp(owner[i], "a1") == 0 && pids[i] != pids_before[i];
        } while (renewed < 6 && tu_now_ms() < end);
        CU_ASSERT_EQUAL(renewed, 6);
    }
    for (i = 0; i < N_PARTS; i++)
        if (strcmp(before[i], "a2") == 0)
            CU_ASSERT_EQUAL(pids[i], pids_before[i]);
    n = ihist_load(&w, h, MAX_IREC);
    CU_ASSERT_EQUAL(overlaps(h, n, NULL, 0), 0);
out:
    world_destroy(&w);
}

/* Cut off from ZooKeeper (SUSPENDED), a1 stops its item processes at
 * once: its session expires on the server, and a2 starts the items,
 * before a1's own timer says LOST, so waiting for LOST would run each of
 * them twice for a while. Back, a1 (a new session) takes its share again;
 * no item ever ran twice at once. */
static void test_items_suspended(void)
{
    static struct irec h[MAX_IREC];
    world w;
    const char *two[] = {"a1", "a2", NULL}, *only2[] = {"a2", NULL};
    char owner[N_PARTS][16], before[N_PARTS][16];
    long pids[N_PARTS], pids_before[N_PARTS];
    long long tokens[N_PARTS], tokens_before[N_PARTS];
    tu_proxy *px = NULL;
    long long block_ns, last_stop = 0;
    char *log;
    const char *susp, *lost;
    int i, j, n, moved = 0;

    TU_CHECK(world_init(&w, "/zkwork10") == 0, out);
    TU_CHECK(tu_proxy_start(&px, zkh_connect_string(tu_zk)) == 0, out);
    TU_CHECK(agent_start_items(&w, "a2") != NULL, out);
    w.servers = tu_proxy_address(px);
    TU_CHECK(agent_start_items(&w, "a1") != NULL, out);
    TU_CHECK(wait_spread(&w, two, 6, 30000, owner, pids, tokens) == 0, out);
    memcpy(before, owner, sizeof(before));
    memcpy(pids_before, pids, sizeof(pids_before));
    memcpy(tokens_before, tokens, sizeof(tokens_before));

    /* a short cut: stopped at SUSPENDED, started again on RECONNECTED
     * (same session, same claims, same tokens), nothing moved */
    tu_proxy_block(px, 1);
    TU_CHECK(wait_file_has(w.ag[1].log, "item processes stopped", 5000) == 0, out);
    tu_proxy_block(px, 0);
    TU_CHECK(wait_file_has(w.ag[1].log, "item processes started again", 5000) == 0, out);
    TU_CHECK(wait_spread(&w, two, 6, 10000, owner, pids, tokens) == 0, out);
    for (i = 0; i < N_PARTS; i++) {
        CU_ASSERT_STRING_EQUAL(owner[i], before[i]);
        CU_ASSERT_EQUAL(tokens[i], tokens_before[i]);
        if (strcmp(before[i], "a1") == 0) {
            CU_ASSERT_NOT_EQUAL(pids[i], pids_before[i]); /* a new process, same token */
        } else {
            CU_ASSERT_EQUAL(pids[i], pids_before[i]);
        }
    }
    memcpy(pids_before, pids, sizeof(pids_before));

    /* a long one: the session expires, a2 takes them */
    block_ns = realtime_ns();
    tu_proxy_block(px, 1);
    TU_CHECK(wait_spread(&w, only2, N_PARTS, 20000, owner, pids, tokens) == 0, out);
    n = ihist_load(&w, h, MAX_IREC);
    for (i = 0; i < N_PARTS; i++) {
        long long stop_ns = -1, start_ns = -1;
        if (strcmp(before[i], "a1") != 0)
            continue;
        moved++;
        for (j = 0; j < n; j++) {
            if (!h[j].start && h[j].pid == pids_before[i])
                stop_ns = h[j].ns;
            if (h[j].start && h[j].pid == pids[i])
                start_ns = h[j].ns;
        }
        CU_ASSERT(stop_ns > 0 && start_ns > 0 && stop_ns <= start_ns);
        if (stop_ns > last_stop)
            last_stop = stop_ns;
    }
    CU_ASSERT_EQUAL(moved, 6);
    fprintf(stderr,
            "\n    cut off: a1's item processes all stopped %lld ms after the cut "
            "(session timeout %d ms)\n",
            (last_stop - block_ns) / 1000000, SESSION_MS);
    /* the proxy closes the connection: SUSPENDED comes at once, the loss
     * (and the server's expiry) only after the session timeout */
    CU_ASSERT((last_stop - block_ns) / 1000000 < SESSION_MS / 2);
    /* stopped at SUSPENDED, not at the REVOKED (session) of the loss */
    CU_ASSERT_EQUAL(wait_file_has(w.ag[1].log, "revoked (session", 10000), 0);
    log = slurp(w.ag[1].log);
    susp = strstr(log, "item processes started again"); /* the short cut's end */
    susp = susp ? strstr(susp, "item processes stopped") : NULL;
    lost = strstr(log, "revoked (session");
    CU_ASSERT(susp && lost && susp < lost);
    free(log);
    tu_proxy_block(px, 0);
    TU_CHECK(wait_spread(&w, two, 6, 30000, owner, pids, tokens) == 0, out);
    n = ihist_load(&w, h, MAX_IREC);
    CU_ASSERT_EQUAL(overlaps(h, n, NULL, 0), 0);
out:
    world_destroy(&w);
    tu_proxy_stop(px);
}

int register_agent_work_suite(void)
{
    CU_pSuite s = CU_add_suite("agent_work", NULL, NULL);

    if (!s ||
        !CU_add_test(s, "two agents run submitted tasks; results by zkcoordctl submit --wait",
                     test_two_agents) ||
        !CU_add_test(s, "agent SIGKILLed mid-task: the task completes on the other",
                     test_killed_mid_task) ||
        !CU_add_test(s, "hanging handler killed at its timeout: status 124, nothing left",
                     test_timeout) ||
        !CU_add_test(s, "capacity 2: at most two tasks at once (recorded history)",
                     test_capacity) ||
        !CU_add_test(s, "drained agent takes no new tasks; undrained it does",
                     test_drained_takes_none) ||
        !CU_add_test(s, "handler that cannot start: status 127", test_handler_missing) ||
        !CU_add_test(s,
                     "three agents, 12 partitions, one process per item: exactly once; SIGKILL "
                     "moves only its items within session + 1 s; TERM stops before hand-over; "
                     "item handlers once per change",
                     test_items) ||
        !CU_add_test(s,
                     "unhealthy agent gives up its items before it deregisters; back when healthy",
                     test_items_health) ||
        !CU_add_test(s,
                     "HUP: unrelated change moves nothing; per-item supervise change restarts "
                     "the agent's item processes without overlap",
                     test_items_reload) ||
        !CU_add_test(s,
                     "cut off from ZooKeeper: item processes stop at SUSPENDED, before the "
                     "session expires and another agent starts them",
                     test_items_suspended))
        return -1;
    return 0;
}
