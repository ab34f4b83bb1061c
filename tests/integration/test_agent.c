/* The zkcoord agent end to end: the built `zkcoord` binary run as real
 * processes (fork/exec) against the harness ZooKeeper, with /bin/sh handler
 * scripts that append what they received (event, environment, the stdin
 * JSON document) to a file per agent, and supervised "apps" that append
 * start/stop lines with timestamps and fencing tokens to one shared file.
 * The test reads those files and the member folder (zkc_group_read, or a
 * watching zkc_group) and waits on conditions with deadlines. Every agent
 * started is stopped by pid and every temp dir removed, also on failure. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/proxy.h"
#include "common/testutil.h"
#include "zkcoord/election.h"
#include "zkcoord/fence.h"
#include "zkcoord/group.h"
#include "zkcoord/lock.h"
#include "zkcoord/read.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define SESSION_MS 2000 /* agents' session timeout: SIGKILL failover in ~2 s */
#define MAX_AGENTS 5

/* ------------------------------------------------------------ files */

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
    rc = fputs(text, f);
    if (fclose(f) != 0 || rc < 0)
        return -1;
    return 0;
}

/* The whole file, NUL-terminated ("" when missing); free() it. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f) {
        for (;;) {
            if (cap - len < 4096) {
                char *nb = realloc(buf, cap + 65536);
                if (!nb)
                    break;
                buf = nb;
                cap += 65536;
            }
            n = fread(buf + len, 1, cap - len - 1, f);
            if (n == 0)
                break;
            len += n;
        }
        fclose(f);
    }
    if (!buf)
        return strdup("");
    buf[len] = '\0';
    return buf;
}

static int file_has(const char *path, const char *needle)
{
    char *s = slurp(path);
    int r = s && strstr(s, needle) != NULL;

    free(s);
    return r;
}

static int wait_file_has(const char *path, const char *needle, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;

    while (!file_has(path, needle)) {
        if (tu_now_ms() > end)
            return -1;
        pause_ms(20);
    }
    return 0;
}

static int count_lines(const char *path)
{
    char *s = slurp(path), *p;
    int n = 0;

    for (p = s; p && *p; p++)
        if (*p == '\n')
            n++;
    free(s);
    return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A process is gone when it has no /proc entry or is a zombie (once its
 * parent died it is reparented to an init that may reap late). */
static int pid_alive(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

static int wait_pid_gone(pid_t pid, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;

    while (pid_alive(pid)) {
        if (tu_now_ms() > end)
            return -1;
        pause_ms(20);
    }
    return 0;
}

/* ------------------------------------------------------ the scripts */

/* $1: the record file. One line per run:
 * EVENT \t MEMBER_ID \t CLUSTER \t LEADER_ID \t FENCING_TOKEN \t MEMBERS \t JSON.
 * "$1.hang" present: the next member_joined run writes its pid to
 * "$1.hang-pid" and hangs ignoring SIGTERM. "$1.delay": seconds to sleep
 * before recording (a slow handler). */
static const char handler_sh[] =
    "#!/bin/sh\n"
    "if [ \"$ZKCOORD_EVENT\" = member_joined ] && [ -e \"$1.hang\" ]; then\n"
    "    trap '' TERM\n"
    "    doc=$(cat)\n"
    "    rm -f \"$1.hang\"\n"
    "    echo $$ >\"$1.hang-pid\"\n"
    "    sleep 30\n"
    "    exit 0\n"
    "fi\n"
    "doc=$(cat)\n"
    "if [ -e \"$1.delay\" ]; then sleep \"$(cat \"$1.delay\")\"; fi\n"
    "printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"$ZKCOORD_EVENT\" \"$ZKCOORD_MEMBER_ID\" "
    "\"$ZKCOORD_CLUSTER\" \"$ZKCOORD_LEADER_ID\" \"$ZKCOORD_FENCING_TOKEN\" "
    "\"$ZKCOORD_MEMBERS\" \"$doc\" >>\"$1\"\n";

/* $1: ok file (pass while it exists; "$1.failonce" makes exactly one check
 * fail), $2: log of results, one line per check. */
static const char health_sh[] = "#!/bin/sh\n"
                                "if [ -e \"$1.failonce\" ]; then\n"
                                "    rm -f \"$1.failonce\"; echo fail >>\"$2\"; exit 1\n"
                                "fi\n"
                                "if [ -e \"$1\" ]; then echo pass >>\"$2\"; exit 0; fi\n"
                                "echo fail >>\"$2\"; exit 1\n";

/* $1: member id, $2: shared file of "start|stop ID TOKEN NANOS PID". */
static const char app_sh[] =
    "#!/bin/sh\n"
    "echo \"start $1 $ZKCOORD_FENCING_TOKEN $(date +%s%N) $$\" >>\"$2\"\n"
    "trap 'echo \"stop $1 $ZKCOORD_FENCING_TOKEN $(date +%s%N) $$\" >>\"$2\"; exit 0' TERM\n"
    "while :; do sleep 1; done\n";

/* $1: member id, $2: shared file. An app that ignores TERM and starts a
 * child in its own session that ignores TERM too ("kid PID" line): nothing
 * but SIGKILL to each of them stops it. */
static const char nasty_sh[] =
    "#!/bin/sh\n"
    "trap '' TERM\n"
    "setsid sh -c 'echo \"kid $$\" >>\"$0\"; exec sleep 1000' \"$2\" &\n"
    "echo \"start $1 $ZKCOORD_FENCING_TOKEN $(date +%s%N) $$\" >>\"$2\"\n"
    "while :; do sleep 1; done\n";

/* ------------------------------------------------------- one test dir */

typedef struct agent_proc {
    char id[32];
    char cfg[512];
    char log[512];
    char events[512]; /* handler record file */
    pid_t pid;
    int exited;
    int status; /* exit code, 128 + signal */
} agent_proc;

typedef struct world {
    char dir[256];
    char root[64];
    agent_proc ag[MAX_AGENTS];
    int n;
    zkc_session *s; /* the test's own session */
} world;

static int world_init(world *w, const char *root)
{
    char path[512];

    memset(w, 0, sizeof(*w));
    snprintf(w->root, sizeof(w->root), "%s", root);
    snprintf(w->dir, sizeof(w->dir), "%s/zkagent.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(w->dir)) {
        w->dir[0] = '\0';
        return -1;
    }
    snprintf(path, sizeof(path), "%s/handler.sh", w->dir);
    if (write_file(path, handler_sh))
        return -1;
    snprintf(path, sizeof(path), "%s/health.sh", w->dir);
    if (write_file(path, health_sh))
        return -1;
    snprintf(path, sizeof(path), "%s/app.sh", w->dir);
    if (write_file(path, app_sh))
        return -1;
    snprintf(path, sizeof(path), "%s/nasty.sh", w->dir);
    if (write_file(path, nasty_sh))
        return -1;
    return tu_session(&w->s, NULL, 10000, NULL) == 0 ? 0 : -1;
}

static char bin[1024];

static const char *agent_bin(void)
{
    const char *top = getenv("top_builddir");

    snprintf(bin, sizeof(bin), "%s/zkcoord", top && *top ? top : ".");
    return bin;
}

/* What a test wants in one agent's configuration. */
typedef struct acfg {
    const char *servers;  /* NULL: the harness */
    int session_ms;       /* 0: SESSION_MS */
    int port;             /* member.port */
    const char *metadata; /* JSON object text, or NULL */
    int election;
    const char *on;      /* handler events, JSON array text; NULL: no handler */
    int handler_timeout; /* ms, 0: default */
    int health;          /* health.sh on <dir>/<id>.ok */
    int rise, fall;
    int supervise;            /* app.sh while leader (or while holding `lock`) */
    const char *lock;         /* locks: [{"name": lock}] (hold defaults to true) */
    int nasty;                /* supervise nasty.sh instead of app.sh */
    int stop_grace;           /* supervise.stop_grace_ms; 0: 3000 */
    const char *handler_path; /* handler args[0] instead of /bin/sh handler.sh */
    int metrics_port;         /* metrics.listen 127.0.0.1:PORT; 0: no metrics section */
} acfg;

static json_t *config_json(world *w, const char *id, const acfg *c)
{
    char buf[1024], buf2[1024];
    json_t *j = json_object(), *m;

    json_object_set_new(j, "zookeeper",
                        json_pack("{s:s, s:i, s:s}", "servers",
                                  c->servers ? c->servers : zkh_connect_string(tu_zk),
                                  "session_timeout_ms", c->session_ms ? c->session_ms : SESSION_MS,
                                  "root", w->root));
    json_object_set_new(j, "cluster", json_string("c"));
    m = json_pack("{s:s, s:s, s:i}", "id", id, "host", "127.0.0.1", "port",
                  c->port ? c->port : 7000);
    if (c->metadata)
        json_object_set_new(m, "metadata", json_loads(c->metadata, 0, NULL));
    json_object_set_new(j, "member", m);
    if (c->election)
        json_object_set_new(j, "election", json_pack("{s:b}", "enabled", 1));
    if (c->on) {
        json_t *h;
        snprintf(buf, sizeof(buf), "%s/handler.sh", w->dir);
        snprintf(buf2, sizeof(buf2), "%s/%s.events", w->dir, id);
        if (c->handler_path)
            h = json_pack("{s:o, s:[s]}", "on", json_loads(c->on, 0, NULL), "args",
                          c->handler_path);
        else
            h = json_pack("{s:o, s:[s, s, s]}", "on", json_loads(c->on, 0, NULL), "args", "/bin/sh",
                          buf, buf2);
        if (c->handler_timeout)
            json_object_set_new(h, "timeout_ms", json_integer(c->handler_timeout));
        json_object_set_new(j, "handlers", json_pack("[o]", h));
    }
    if (c->health) {
        char ok[1024], log[1024];
        snprintf(buf, sizeof(buf), "%s/health.sh", w->dir);
        snprintf(ok, sizeof(ok), "%s/%s.ok", w->dir, id);
        snprintf(log, sizeof(log), "%s/%s.checks", w->dir, id);
        json_object_set_new(j, "health",
                            json_pack("{s:[s, s, s, s], s:i, s:i, s:i, s:i}", "args", "/bin/sh",
                                      buf, ok, log, "interval_ms", 100, "timeout_ms", 2000, "rise",
                                      c->rise ? c->rise : 1, "fall", c->fall ? c->fall : 1));
    }
    if (c->lock)
        json_object_set_new(j, "locks", json_pack("[{s:s}]", "name", c->lock));
    if (c->supervise) {
        char when[128];
        snprintf(buf, sizeof(buf), "%s/%s", w->dir, c->nasty ? "nasty.sh" : "app.sh");
        snprintf(buf2, sizeof(buf2), "%s/apps", w->dir);
        snprintf(when, sizeof(when), "%s%s", c->lock ? "lock:" : "leader", c->lock ? c->lock : "");
        json_object_set_new(j, "supervise",
                            json_pack("{s:[s, s, s, s], s:s, s:i}", "args", "/bin/sh", buf, id,
                                      buf2, "while", when, "stop_grace_ms",
                                      c->stop_grace ? c->stop_grace : 3000));
    }
    json_object_set_new(j, "log", json_pack("{s:s}", "level", "info"));
    if (c->metrics_port) {
        snprintf(buf, sizeof(buf), "127.0.0.1:%d", c->metrics_port);
        json_object_set_new(j, "metrics", json_pack("{s:s}", "listen", buf));
    }
    return j;
}

static int write_config(world *w, agent_proc *ap, const char *id, const acfg *c)
{
    json_t *j = config_json(w, id, c);
    int rc;

    snprintf(ap->id, sizeof(ap->id), "%s", id);
    snprintf(ap->cfg, sizeof(ap->cfg), "%s/%s.json", w->dir, id);
    snprintf(ap->log, sizeof(ap->log), "%s/%s.log", w->dir, id);
    snprintf(ap->events, sizeof(ap->events), "%s/%s.events", w->dir, id);
    rc = json_dump_file(j, ap->cfg, JSON_INDENT(2));
    json_decref(j);
    return rc;
}

/* Run `zkcoord [extra...] -c CFG`, stdout and stderr appended to its log. */
static int agent_spawn(agent_proc *ap, const char *extra1, const char *extra2)
{
    const char *argv[8];
    int n = 0;

    argv[n++] = agent_bin();
    if (extra1)
        argv[n++] = extra1;
    if (extra2)
        argv[n++] = extra2;
    argv[n++] = "-c";
    argv[n++] = ap->cfg;
    argv[n] = NULL;
    fflush(NULL);
    ap->exited = 0;
    ap->pid = fork();
    if (ap->pid == 0) {
        int fd = open(ap->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0)
            _exit(125);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(126);
    }
    return ap->pid > 0 ? 0 : -1;
}

/* Start agent `id` of world `w` with config `c`; NULL on failure. */
static agent_proc *agent_start(world *w, const char *id, const acfg *c)
{
    agent_proc *ap;

    if (w->n >= MAX_AGENTS)
        return NULL;
    ap = &w->ag[w->n];
    if (write_config(w, ap, id, c) != 0)
        return NULL;
    w->n++;
    if (agent_spawn(ap, NULL, NULL) != 0) {
        ap->pid = 0;
        return NULL;
    }
    return ap;
}

/* Wait for the exit up to timeout_ms: the exit code (128 + signal), or -1
 * if still running. */
static int agent_wait(agent_proc *ap, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    int st;

    if (ap->pid <= 0)
        return -1;
    while (!ap->exited) {
        pid_t r = waitpid(ap->pid, &st, WNOHANG);
        if (r == ap->pid) {
            ap->exited = 1;
            ap->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (tu_now_ms() > end)
            return -1;
        pause_ms(10);
    }
    return ap->status;
}

static int agent_running(agent_proc *ap)
{
    return ap->pid > 0 && agent_wait(ap, 0) == -1;
}

/* Send `sig` and wait for the exit (SIGKILL after timeout_ms). */
static int agent_stop(agent_proc *ap, int sig, int timeout_ms)
{
    int rc;

    if (ap->pid <= 0)
        return -1;
    if (!ap->exited)
        kill(ap->pid, sig);
    rc = agent_wait(ap, timeout_ms);
    if (rc == -1) {
        fprintf(stderr, "    agent %s did not exit after signal %d: killed\n", ap->id, sig);
        kill(ap->pid, SIGKILL);
        rc = agent_wait(ap, 10000);
    }
    return rc;
}

/* Stop every agent still running, check their logs for sanitizer reports,
 * close the session, remove the dir. */
static void world_destroy(world *w)
{
    int i;

    for (i = 0; i < w->n; i++) {
        agent_proc *ap = &w->ag[i];
        char *log;
        if (ap->pid > 0 && !ap->exited)
            agent_stop(ap, SIGTERM, 8000);
        log = slurp(ap->log);
        CU_ASSERT_PTR_NULL(strstr(log, "Sanitizer"));
        CU_ASSERT_PTR_NULL(strstr(log, "runtime error:"));
        if (strstr(log, "Sanitizer") || strstr(log, "runtime error:") || getenv("ZKA_TEST_LOGS"))
            fprintf(stderr, "\n    --- %s log:\n%s\n", ap->id, log);
        free(log);
    }
    if (w->s)
        zkc_session_close(w->s);
    w->s = NULL;
    if (!getenv("ZKA_TEST_KEEP"))
        rm_rf(w->dir);
}

static void path_of(world *w, char *buf, size_t len, const char *leaf)
{
    snprintf(buf, len, "%s/%s", w->dir, leaf);
}

static int touch(world *w, const char *leaf)
{
    char p[512];

    path_of(w, p, sizeof(p), leaf);
    return write_file(p, "");
}

static void unlink_leaf(world *w, const char *leaf)
{
    char p[512];

    path_of(w, p, sizeof(p), leaf);
    unlink(p);
}

/* -------------------------------------------------------- membership */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "b,a,c" -> "a,b,c" into out. */
static void sort_csv(const char *in, char *out, size_t len)
{
    char *copy = strdup(in ? in : ""), *tok, *save = NULL, *parts[64];
    int n = 0, i;
    size_t off = 0;

    out[0] = '\0';
    if (!copy)
        return;
    for (tok = strtok_r(copy, ",", &save); tok && n < 64; tok = strtok_r(NULL, ",", &save))
        parts[n++] = tok;
    qsort(parts, (size_t)n, sizeof(char *), cmp_str);
    for (i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(out + off, len - off, "%s%s", i ? "," : "", parts[i]);
    free(copy);
}

static void members_path(world *w, char *buf, size_t len)
{
    snprintf(buf, len, "%s/c/members", w->root);
}

/* Sorted ids in the member folder now ("" when empty); -1 on error. */
static int members_now(world *w, char *out, size_t len)
{
    char path[256], csv[2048] = "";
    zkc_group_view *v = NULL;
    int i, n;
    size_t off = 0;

    members_path(w, path, sizeof(path));
    if (zkc_group_read(w->s, path, 0, &v, 5000) != 0)
        return -1;
    n = zkc_group_view_count(v);
    for (i = 0; i < n; i++)
        off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%s%s", i ? "," : "",
                                zkc_member_id(zkc_group_view_at(v, i)));
    zkc_group_view_free(v);
    sort_csv(csv, out, len);
    return 0;
}

static int wait_members(world *w, const char *want, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    char now[2048] = "", sorted[2048];

    sort_csv(want, sorted, sizeof(sorted));
    for (;;) {
        if (members_now(w, now, sizeof(now)) == 0 && strcmp(now, sorted) == 0)
            return 0;
        if (tu_now_ms() > end) {
            fprintf(stderr, "    members: want [%s], have [%s]\n", sorted, now);
            return -1;
        }
        pause_ms(30);
    }
}

/* Node name and owner session of member `id` now; -1 if absent. */
static int member_node(world *w, const char *id, char *node, size_t len, int64_t *owner)
{
    char path[256];
    zkc_group_view *v = NULL;
    const zkc_member *m;
    int rc = -1;

    members_path(w, path, sizeof(path));
    if (zkc_group_read(w->s, path, 0, &v, 5000) != 0)
        return -1;
    m = zkc_group_view_find(v, id);
    if (m) {
        snprintf(node, len, "%s", zkc_member_node(m));
        *owner = zkc_member_owner(m);
        rc = 0;
    }
    zkc_group_view_free(v);
    return rc;
}

/* ------------------------------------------------- handler records */

typedef struct rec {
    char *event, *member_id, *cluster, *leader, *token, *members;
    json_t *doc;
} rec;

typedef struct recs {
    rec r[512];
    int n;
} recs;

static void recs_free(recs *rs)
{
    int i;

    for (i = 0; i < rs->n; i++) {
        free(rs->r[i].event);
        json_decref(rs->r[i].doc);
    }
    rs->n = 0;
}

/* Parse an agent's record file into rs (replacing what it held). */
static void recs_load(recs *rs, const char *path)
{
    char *s = slurp(path), *line, *save = NULL;

    recs_free(rs);
    for (line = strtok_r(s, "\n", &save); line && rs->n < 512; line = strtok_r(NULL, "\n", &save)) {
        rec *r = &rs->r[rs->n];
        char *f[7], *p = strdup(line);
        int i;
        if (!p)
            break;
        f[0] = p;
        for (i = 1; i < 7; i++) {
            char *tab = f[i - 1] ? strchr(f[i - 1], '\t') : NULL;
            if (tab)
                *tab = '\0';
            f[i] = tab ? tab + 1 : NULL;
        }
        if (!f[6]) {
            free(p);
            continue;
        }
        r->event = f[0];
        r->member_id = f[1];
        r->cluster = f[2];
        r->leader = f[3];
        r->token = f[4];
        r->members = f[5];
        r->doc = json_loads(f[6], 0, NULL);
        rs->n++;
    }
    free(s);
}

static const char *doc_str(json_t *doc, const char *k1, const char *k2)
{
    json_t *v = json_object_get(doc, k1);

    if (k2)
        v = json_object_get(v, k2);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Does record r match event (NULL any) and doc member.id (NULL any)? */
static int rec_is(const rec *r, const char *event, const char *about)
{
    const char *mid;

    if (event && strcmp(r->event, event) != 0)
        return 0;
    if (!about)
        return 1;
    mid = doc_str(r->doc, "member", "id");
    return mid && strcmp(mid, about) == 0;
}

static int count_recs(const char *path, const char *event, const char *about)
{
    recs *rs = calloc(1, sizeof(*rs));
    int i, n = 0;

    if (!rs)
        return -1;
    recs_load(rs, path);
    for (i = 0; i < rs->n; i++)
        n += rec_is(&rs->r[i], event, about);
    recs_free(rs);
    free(rs);
    return n;
}

static int wait_recs(const char *path, const char *event, const char *about, int min,
                     int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    int n;

    while ((n = count_recs(path, event, about)) < min) {
        if (tu_now_ms() > end) {
            char *s = slurp(path);
            fprintf(stderr, "    %s: want %d x %s %s, have %d:\n%s\n", path, min, event,
                    about ? about : "", n, s);
            free(s);
            return -1;
        }
        pause_ms(20);
    }
    return n;
}

/* ZKCOORD_MEMBERS (a JSON array of ids) as sorted CSV into out; "?" when it
 * is not an array of strings. */
static void members_csv(const char *arr, char *out, size_t len)
{
    json_t *a = json_loads(arr ? arr : "", 0, NULL), *v;
    char csv[2048] = "";
    size_t i, off = 0;

    if (!json_is_array(a)) {
        snprintf(out, len, "?");
        json_decref(a);
        return;
    }
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || off >= sizeof(csv)) {
            snprintf(out, len, "?");
            json_decref(a);
            return;
        }
        off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%s%s", i ? "," : "",
                                json_string_value(v));
    }
    json_decref(a);
    sort_csv(csv, out, len);
}

/* Wait until the last `event` record's sorted ZKCOORD_MEMBERS is `want`. */
static int wait_last_members(const char *path, const char *event, const char *want, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    recs *rs = calloc(1, sizeof(*rs));
    char sorted[2048], have[2048];
    int i, rc = -1;

    if (!rs)
        return -1;
    sort_csv(want, sorted, sizeof(sorted));
    for (;;) {
        have[0] = '\0';
        recs_load(rs, path);
        for (i = rs->n - 1; i >= 0; i--)
            if (rec_is(&rs->r[i], event, NULL)) {
                members_csv(rs->r[i].members, have, sizeof(have));
                break;
            }
        if (strcmp(have, sorted) == 0) {
            rc = 0;
            break;
        }
        if (tu_now_ms() > end) {
            fprintf(stderr, "    %s: last %s members [%s], want [%s]\n", path, event, have, sorted);
            break;
        }
        pause_ms(20);
    }
    recs_free(rs);
    free(rs);
    return rc;
}

static const char *str_or_empty(json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "";
}

/* ------------------------------------------------------------- tests */

#define HANDLER_MEMBERSHIP "[\"member_joined\", \"member_left\", \"members_changed\"]"

/* The sorted ids of the document's "members" array. */
static const char *doc_member_ids(json_t *doc, char *out, size_t len)
{
    char csv[1024] = "";
    size_t i, off = 0;
    json_t *ms = json_object_get(doc, "members");

    for (i = 0; i < json_array_size(ms) && off < sizeof(csv); i++)
        off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%s%s", i ? "," : "",
                                str_or_empty(json_object_get(json_array_get(ms, i), "id")));
    sort_csv(csv, out, len);
    return out;
}

/* Check one member_joined record about `who` written by agent `self`. */
static int check_joined_rec(const rec *r, const char *self, const char *who, int port,
                            const char *zone, const char *all)
{
    char sorted[1024], want[1024], ids[1024];
    json_t *d = r->doc, *m = json_object_get(d, "member");
    int ok = 1;

    members_csv(r->members, sorted, sizeof(sorted));
    sort_csv(all, want, sizeof(want));
    ok &= strcmp(r->event, "member_joined") == 0;
    ok &= strcmp(r->member_id, self) == 0;
    ok &= strcmp(r->cluster, "c") == 0;
    ok &= strcmp(sorted, want) == 0;
    ok &= d != NULL;
    ok &= doc_str(d, "event", NULL) && strcmp(doc_str(d, "event", NULL), "member_joined") == 0;
    ok &= doc_str(d, "cluster", NULL) && strcmp(doc_str(d, "cluster", NULL), "c") == 0;
    ok &= doc_str(d, "member_id", NULL) && strcmp(doc_str(d, "member_id", NULL), self) == 0;
    ok &= doc_str(d, "member", "id") && strcmp(doc_str(d, "member", "id"), who) == 0;
    ok &= doc_str(d, "member", "host") && strcmp(doc_str(d, "member", "host"), "127.0.0.1") == 0;
    ok &= json_integer_value(json_object_get(m, "port")) == port;
    ok &= json_is_string(json_object_get(json_object_get(m, "metadata"), "zone")) &&
          strcmp(json_string_value(json_object_get(json_object_get(m, "metadata"), "zone")),
                 zone) == 0;
    ok &= json_array_size(json_object_get(d, "members")) == 4;
    ok &= strcmp(doc_member_ids(d, ids, sizeof(ids)), want) == 0;
    if (!ok)
        fprintf(stderr, "    unexpected record of %s about %s: %s %s %s [%s]\n", self, who,
                r->event, r->member_id, r->cluster, r->members);
    return ok;
}

/* Three agents agree on the view; a fourth joining fires member_joined
 * exactly once on each of the three with the right JSON and environment;
 * an agent started into an existing cluster fires nothing for the members
 * already there. */
static void test_three_agents(void)
{
    world w;
    acfg c;
    agent_proc *a[4] = {NULL, NULL, NULL, NULL};
    recs *rs = calloc(1, sizeof(*rs));
    const char *ids[4] = {"a1", "a2", "a3", "a4"};
    int i, j, k, found;

    CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
    TU_CHECK(world_init(&w, "/e2e-three") == 0, out);
    memset(&c, 0, sizeof(c));
    c.on = HANDLER_MEMBERSHIP;
    for (i = 0; i < 3; i++) {
        char md[64], want[64];
        c.port = 7001 + i;
        snprintf(md, sizeof(md), "{\"zone\": \"z%d\"}", i + 1);
        c.metadata = md;
        TU_CHECK((a[i] = agent_start(&w, ids[i], &c)) != NULL, out);
        snprintf(want, sizeof(want), "%s", i == 0 ? "a1" : i == 1 ? "a1,a2" : "a1,a2,a3");
        TU_CHECK(wait_members(&w, want, 10000) == 0, out);
        /* The ones already running heard about it before the next starts. */
        for (j = 0; j < i; j++)
            TU_CHECK(wait_recs(a[j]->events, "member_joined", ids[i], 1, 5000) == 1, out);
    }
    /* Those that saw the others join have the three of them as last view
     * (a3 may have had itself in its first view: nothing to report). */
    for (i = 0; i < 2; i++)
        TU_CHECK(wait_last_members(a[i]->events, "members_changed", "a1,a2,a3", 5000) == 0, out);

    /* A fourth joins. */
    c.port = 7004;
    c.metadata = "{\"zone\": \"z4\"}";
    TU_CHECK((a[3] = agent_start(&w, "a4", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "a1,a2,a3,a4", 10000) == 0, out);
    for (i = 0; i < 3; i++)
        TU_CHECK(wait_recs(a[i]->events, "member_joined", "a4", 1, 5000) == 1, out);
    /* It leaves: everyone's member_left is queued after any duplicate
     * member_joined, so once it is there the count below is final. */
    CU_ASSERT_EQUAL(agent_stop(a[3], SIGTERM, 8000), 0);
    TU_CHECK(wait_members(&w, "a1,a2,a3", 5000) == 0, out);
    for (i = 0; i < 3; i++) {
        TU_CHECK(wait_recs(a[i]->events, "member_left", "a4", 1, 5000) == 1, out);
        /* Everyone's last view is the three of them again. */
        CU_ASSERT_EQUAL(wait_last_members(a[i]->events, "member_left", "a1,a2,a3", 100), 0);
        CU_ASSERT_EQUAL(wait_last_members(a[i]->events, "members_changed", "a1,a2,a3", 5000), 0);
        CU_ASSERT_EQUAL(count_recs(a[i]->events, "member_joined", "a4"), 1);
        recs_load(rs, a[i]->events);
        found = 0;
        for (k = 0; k < rs->n; k++) {
            if (!rec_is(&rs->r[k], "member_joined", "a4"))
                continue;
            found++;
            CU_ASSERT(check_joined_rec(&rs->r[k], ids[i], "a4", 7004, "z4", "a1,a2,a3,a4"));
        }
        CU_ASSERT_EQUAL(found, 1);
        /* Nobody heard of a member joining before itself. */
        for (j = 0; j < i; j++)
            CU_ASSERT_EQUAL(count_recs(a[i]->events, "member_joined", ids[j]), 0);
        CU_ASSERT_EQUAL(count_recs(a[i]->events, "member_left", NULL), 1);
        /* Each join after this agent's own start fired exactly once. */
        for (j = i + 1; j < 3; j++)
            CU_ASSERT_EQUAL(count_recs(a[i]->events, "member_joined", ids[j]), 1);
    }
    /* The fourth started into a cluster of three: no member_joined for
     * them (at most one about itself). */
    for (j = 0; j < 3; j++)
        CU_ASSERT_EQUAL(count_recs(a[3]->events, "member_joined", ids[j]), 0);
    CU_ASSERT(count_recs(a[3]->events, "member_joined", "a4") <= 1);
    for (i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(agent_stop(a[i], SIGTERM, 8000), 0);
out:
    world_destroy(&w);
    recs_free(rs);
    free(rs);
}

/* Last record of `event` in `path`: its ZKCOORD_LEADER_ID and token. */
static int last_rec_env(const char *path, const char *event, char *leader, size_t llen,
                        long long *token)
{
    recs *rs = calloc(1, sizeof(*rs));
    int i, rc = -1;

    if (!rs)
        return -1;
    recs_load(rs, path);
    for (i = rs->n - 1; i >= 0; i--)
        if (rec_is(&rs->r[i], event, NULL)) {
            snprintf(leader, llen, "%s", rs->r[i].leader);
            *token = rs->r[i].token[0] ? atoll(rs->r[i].token) : -1;
            rc = 0;
            break;
        }
    recs_free(rs);
    free(rs);
    return rc;
}

/* Records of `event` whose ZKCOORD_LEADER_ID is `leader`. */
static int count_leader_recs(const char *path, const char *event, const char *leader)
{
    recs *rs = calloc(1, sizeof(*rs));
    int i, n = 0;

    if (!rs)
        return -1;
    recs_load(rs, path);
    for (i = 0; i < rs->n; i++)
        n += rec_is(&rs->r[i], event, NULL) && strcmp(rs->r[i].leader, leader) == 0 &&
             strcmp(str_or_empty(json_object_get(json_object_get(rs->r[i].doc, "leader"), "id")),
                    leader) == 0;
    recs_free(rs);
    free(rs);
    return n;
}

static int wait_leader_recs(const char *path, const char *event, const char *leader, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    int n;

    while ((n = count_leader_recs(path, event, leader)) < 1) {
        if (tu_now_ms() > end) {
            char *s = slurp(path);
            fprintf(stderr, "    %s: no %s naming %s:\n%s\n", path, event, leader, s);
            free(s);
            return -1;
        }
        pause_ms(20);
    }
    return n;
}

/* SIGKILL of the leader agent: once its session expires exactly one other
 * is elected (larger fencing token) and every other agent fires
 * leader_changed naming it, once (each agent watches the election with an
 * observer beside its participant); the leader an agent finds at startup
 * fires nothing. Then the second leader is killed: the last one is
 * elected. */
static void test_leader_failover(void)
{
    world w;
    acfg c;
    agent_proc *a[3] = {NULL, NULL, NULL};
    const char *ids[3] = {"a1", "a2", "a3"};
    char leader[64];
    long long t1 = -1, t2 = -1, t3 = -1;
    int i;

    TU_CHECK(world_init(&w, "/e2e-failover") == 0, out);
    memset(&c, 0, sizeof(c));
    c.election = 1;
    c.on = "[\"elected\", \"demoted\", \"leader_changed\"]";
    for (i = 0; i < 3; i++) {
        c.port = 7001 + i;
        TU_CHECK((a[i] = agent_start(&w, ids[i], &c)) != NULL, out);
        TU_CHECK(wait_members(&w, i == 0 ? "a1" : i == 1 ? "a1,a2" : "a1,a2,a3", 10000) == 0, out);
        if (i == 0)
            TU_CHECK(wait_recs(a[0]->events, "elected", NULL, 1, 10000) == 1, out);
    }
    TU_CHECK(last_rec_env(a[0]->events, "elected", leader, sizeof(leader), &t1) == 0, out);
    CU_ASSERT_STRING_EQUAL(leader, "a1");
    CU_ASSERT(t1 > 0);

    /* Kill the leader: its session expires, a2 (next in line) leads. */
    CU_ASSERT_EQUAL(agent_stop(a[0], SIGKILL, 5000), 128 + SIGKILL);
    TU_CHECK(wait_recs(a[1]->events, "elected", NULL, 1, 15000) == 1, out);
    TU_CHECK(last_rec_env(a[1]->events, "elected", leader, sizeof(leader), &t2) == 0, out);
    CU_ASSERT_STRING_EQUAL(leader, "a2");
    CU_ASSERT(t2 > t1);
    TU_CHECK(wait_leader_recs(a[1]->events, "leader_changed", "a2", 5000) >= 1, out);
    TU_CHECK(wait_leader_recs(a[2]->events, "leader_changed", "a2", 5000) >= 1, out);
    TU_CHECK(last_rec_env(a[2]->events, "leader_changed", leader, sizeof(leader), &t3) == 0, out);
    CU_ASSERT_EQUAL(t3, -1); /* a3 does not lead: no token in its environment */
    CU_ASSERT_EQUAL(count_recs(a[2]->events, "elected", NULL), 0);
    CU_ASSERT_EQUAL(count_recs(a[1]->events, "demoted", NULL), 0);

    /* Kill the second leader: a3 is elected. */
    CU_ASSERT_EQUAL(agent_stop(a[1], SIGKILL, 5000), 128 + SIGKILL);
    TU_CHECK(wait_recs(a[2]->events, "elected", NULL, 1, 15000) == 1, out);
    TU_CHECK(last_rec_env(a[2]->events, "elected", leader, sizeof(leader), &t3) == 0, out);
    CU_ASSERT_STRING_EQUAL(leader, "a3");
    CU_ASSERT(t3 > t2);
    TU_CHECK(wait_leader_recs(a[2]->events, "leader_changed", "a3", 5000) >= 1, out);
    CU_ASSERT_EQUAL(agent_stop(a[2], SIGTERM, 8000), 0);

    /* Exactly once per change; nothing for the leader found at startup. */
    for (i = 1; i < 3; i++) {
        CU_ASSERT_EQUAL(count_leader_recs(a[i]->events, "leader_changed", "a1"), 0);
        CU_ASSERT_EQUAL(count_leader_recs(a[i]->events, "leader_changed", "a2"), 1);
    }
    CU_ASSERT_EQUAL(count_leader_recs(a[2]->events, "leader_changed", "a3"), 1);
    CU_ASSERT_EQUAL(count_recs(a[2]->events, "leader_changed", NULL), 2);
    CU_ASSERT_EQUAL(count_recs(a[2]->events, "elected", NULL), 1);
out:
    world_destroy(&w);
}

/* TERM deletes the member node at once (a 20 s session would keep it for
 * 20 s otherwise) and the agent exits 0. */
static void test_term_leaves_at_once(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL, *a2 = NULL;
    long long t0, took;

    TU_CHECK(world_init(&w, "/e2e-term") == 0, out);
    memset(&c, 0, sizeof(c));
    c.session_ms = 20000;
    c.election = 1;
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);
    TU_CHECK((a2 = agent_start(&w, "a2", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "a1,a2", 10000) == 0, out);
    t0 = tu_now_ms();
    kill(a1->pid, SIGTERM);
    TU_CHECK(wait_members(&w, "a2", 5000) == 0, out);
    took = tu_now_ms() - t0;
    CU_ASSERT(took < 5000);
    CU_ASSERT_EQUAL(agent_wait(a1, 5000), 0);
    CU_ASSERT_EQUAL(agent_stop(a2, SIGTERM, 5000), 0);
    TU_CHECK(wait_members(&w, "", 5000) == 0, out);
out:
    world_destroy(&w);
}

/* One line of the apps file. */
typedef struct app_line {
    int start;
    char id[32];
    long long token, ns;
    int pid;
} app_line;

static int load_apps(world *w, app_line *out, int max)
{
    char path[512], *s, *line, *save = NULL, kind[16];
    int n = 0;

    path_of(w, path, sizeof(path), "apps");
    s = slurp(path);
    for (line = strtok_r(s, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
        app_line *l = &out[n];
        if (sscanf(line, "%15s %31s %lld %lld %d", kind, l->id, &l->token, &l->ns, &l->pid) != 5)
            continue;
        l->start = strcmp(kind, "start") == 0;
        n++;
    }
    free(s);
    return n;
}

static int cmp_app(const void *x, const void *y)
{
    const app_line *a = x, *b = y;

    return a->ns < b->ns ? -1 : a->ns > b->ns;
}

/* Supervised app only on the leader: demotion (health fails) stops it
 * before the next leader's app starts; SIGKILL of the leader agent takes
 * its app down (PR_SET_PDEATHSIG); tokens increase; never two at once. */
static void test_supervise_leader(void)
{
    world w;
    acfg c;
    agent_proc *a[3] = {NULL, NULL, NULL};
    const char *ids[3] = {"a1", "a2", "a3"};
    app_line lines[64];
    char apps[512];
    int i, n, running, starts, b_pid = 0;
    long long last_token = 0;

    TU_CHECK(world_init(&w, "/e2e-supervise") == 0, out);
    path_of(&w, apps, sizeof(apps), "apps");
    memset(&c, 0, sizeof(c));
    c.election = 1;
    c.health = 1;
    c.rise = 1;
    c.fall = 1;
    c.supervise = 1;
    for (i = 0; i < 3; i++) {
        char ok[64];
        snprintf(ok, sizeof(ok), "%s.ok", ids[i]);
        TU_CHECK(touch(&w, ok) == 0, out);
        c.port = 7001 + i;
        TU_CHECK((a[i] = agent_start(&w, ids[i], &c)) != NULL, out);
        TU_CHECK(wait_members(&w, i == 0 ? "a1" : i == 1 ? "a1,a2" : "a1,a2,a3", 10000) == 0, out);
        if (i == 0)
            TU_CHECK(wait_file_has(apps, "start a1 ", 10000) == 0, out);
    }
    /* Demote a1: its health check fails, it deregisters and resigns. */
    unlink_leaf(&w, "a1.ok");
    TU_CHECK(wait_file_has(apps, "start a2 ", 15000) == 0, out);
    TU_CHECK(wait_members(&w, "a2,a3", 5000) == 0, out);
    CU_ASSERT(agent_running(a[0]));
    /* Kill a2's agent: its app must go with it at once. */
    n = load_apps(&w, lines, 64);
    for (i = 0; i < n; i++)
        if (lines[i].start && strcmp(lines[i].id, "a2") == 0)
            b_pid = lines[i].pid;
    TU_CHECK(b_pid > 0, out);
    CU_ASSERT_EQUAL(agent_stop(a[1], SIGKILL, 5000), 128 + SIGKILL);
    CU_ASSERT_EQUAL(wait_pid_gone(b_pid, 3000), 0);
    TU_CHECK(wait_file_has(apps, "start a3 ", 15000) == 0, out);
    CU_ASSERT_EQUAL(agent_stop(a[2], SIGTERM, 10000), 0);
    CU_ASSERT_EQUAL(agent_stop(a[0], SIGTERM, 10000), 0);

    /* The record: sorted by time, never two apps at once, each start under
     * a larger token, each app stopped (a2's by PDEATHSIG's SIGTERM). */
    n = load_apps(&w, lines, 64);
    qsort(lines, (size_t)n, sizeof(lines[0]), cmp_app);
    running = starts = 0;
    for (i = 0; i < n; i++) {
        if (lines[i].start) {
            CU_ASSERT_EQUAL(running, 0);
            CU_ASSERT(lines[i].token > last_token);
            last_token = lines[i].token;
            running++;
            starts++;
        } else {
            CU_ASSERT_EQUAL(running, 1);
            running--;
        }
    }
    CU_ASSERT_EQUAL(running, 0);
    CU_ASSERT_EQUAL(starts, 3);
    if (starts != 3 || running != 0) {
        char *s = slurp(apps);
        fprintf(stderr, "    apps:\n%s\n", s);
        free(s);
    }
out:
    world_destroy(&w);
}

/* Registration watched by a group in the test: joins and leaves of `id`. */
typedef struct watch {
    pthread_mutex_t mu;
    const char *id;
    int joined, left;
} watch;

static void on_watch(zkc_group *g, const zkc_group_event *ev, void *user_data)
{
    watch *wt = user_data;

    (void)g;
    if (!ev->member || !zkc_member_id(ev->member) || strcmp(zkc_member_id(ev->member), wt->id))
        return;
    pthread_mutex_lock(&wt->mu);
    if (ev->type == ZKC_GROUP_JOINED)
        wt->joined++;
    else if (ev->type == ZKC_GROUP_LEFT)
        wt->left++;
    pthread_mutex_unlock(&wt->mu);
}

static void watch_get(watch *wt, int *joined, int *left)
{
    pthread_mutex_lock(&wt->mu);
    *joined = wt->joined;
    *left = wt->left;
    pthread_mutex_unlock(&wt->mu);
}

/* Wait until the watch counted at least `joined` joins and `left` leaves;
 * their counts then in *j, *l. */
static void watch_wait(watch *wt, int joined, int left, int timeout_ms, int *j, int *l)
{
    long long end = tu_now_ms() + timeout_ms;

    for (;;) {
        watch_get(wt, j, l);
        if ((*j >= joined && *l >= left) || tu_now_ms() > end)
            return;
        pause_ms(20);
    }
}

/* How many results at the end of the checks log are `word` in a row. */
static int trailing(const char *path, const char *word)
{
    char *s = slurp(path);
    int n = 0;
    size_t len = strlen(s), wl = strlen(word);

    while (len > 0) {
        size_t end = len - 1, start; /* s[end] is '\n' */
        start = end;
        while (start > 0 && s[start - 1] != '\n')
            start--;
        if (end - start != wl || strncmp(s + start, word, wl) != 0)
            break;
        n++;
        len = start;
    }
    free(s);
    return n;
}

/* fall=3 consecutive failures deregister (one failure does not); rise=2
 * passes register again. */
static void test_health_rise_fall(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL;
    watch wt;
    zkc_group *g = NULL;
    zkc_group_opts go;
    char path[256], checks[512], failonce[512], node[256] = "", node2[256] = "";
    int64_t owner = 0, owner2 = 0;
    int joined, left, base;
    long long end;

    memset(&wt, 0, sizeof(wt));
    pthread_mutex_init(&wt.mu, NULL);
    wt.id = "a1";
    TU_CHECK(world_init(&w, "/e2e-health") == 0, out);
    path_of(&w, checks, sizeof(checks), "a1.checks");
    path_of(&w, failonce, sizeof(failonce), "a1.ok.failonce");
    members_path(&w, path, sizeof(path));
    zkc_group_opts_init(&go);
    go.on_event = on_watch;
    go.user_data = &wt;
    TU_CHECK(zkc_group_new(&g, w.s, path, &go) == 0, out);
    memset(&c, 0, sizeof(c));
    c.health = 1;
    c.rise = 2;
    c.fall = 3;
    TU_CHECK(touch(&w, "a1.ok") == 0, out);
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "a1", 10000) == 0, out);
    CU_ASSERT(count_lines(checks) >= 2); /* registered after `rise` passes */
    TU_CHECK(member_node(&w, "a1", node, sizeof(node), &owner) == 0, out);

    /* One failure among passes changes nothing. */
    TU_CHECK(touch(&w, "a1.ok.failonce") == 0, out);
    end = tu_now_ms() + 5000;
    while (access(failonce, F_OK) == 0 && tu_now_ms() < end)
        pause_ms(20);
    TU_CHECK(access(failonce, F_OK) != 0, out);
    base = count_lines(checks);
    end = tu_now_ms() + 5000;
    while (count_lines(checks) < base + 5 && tu_now_ms() < end)
        pause_ms(20);
    CU_ASSERT(count_lines(checks) >= base + 5);
    CU_ASSERT(file_has(checks, "fail"));
    /* Never deregistered: the same node as before, no leave seen. */
    TU_CHECK(member_node(&w, "a1", node2, sizeof(node2), &owner2) == 0, out);
    CU_ASSERT_STRING_EQUAL(node2, node);
    watch_get(&wt, &joined, &left);
    CU_ASSERT_EQUAL(left, 0);

    /* Failing for good: deregistered after three failures in a row. */
    unlink_leaf(&w, "a1.ok");
    TU_CHECK(wait_members(&w, "", 5000) == 0, out);
    CU_ASSERT(trailing(checks, "fail") >= 3);
    watch_wait(&wt, 1, 1, 5000, &joined, &left);
    CU_ASSERT_EQUAL(left, 1);
    CU_ASSERT(agent_running(a1));

    /* Passing again: registered after two passes in a row. */
    TU_CHECK(touch(&w, "a1.ok") == 0, out);
    TU_CHECK(wait_members(&w, "a1", 5000) == 0, out);
    CU_ASSERT(trailing(checks, "pass") >= 2);
    watch_wait(&wt, 2, 1, 5000, &joined, &left);
    CU_ASSERT_EQUAL(joined, 2);
    CU_ASSERT_EQUAL(left, 1);
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 8000), 0);
out:
    zkc_group_free(g);
    world_destroy(&w);
    pthread_mutex_destroy(&wt.mu);
}

/* Join member `id` through the library (the test's own session). */
static int lib_join(world *w, zkc_group **g, const char *id)
{
    char path[256];
    zkc_member_info mi;

    members_path(w, path, sizeof(path));
    if (zkc_group_new(g, w->s, path, NULL) != 0)
        return -1;
    memset(&mi, 0, sizeof(mi));
    mi.id = id;
    mi.host = "127.0.0.1";
    mi.port = 9000;
    return zkc_group_join(*g, &mi);
}

/* A handler that hangs (ignoring SIGTERM) is killed at its timeout and the
 * agent goes on; a storm of membership changes is coalesced into fewer
 * runs, the last of which sees the final membership. */
static void test_handler_timeout_and_storm(void)
{
    enum { STORM = 12 };
    world w;
    acfg c;
    agent_proc *a1 = NULL;
    zkc_group *gs[STORM + 2];
    char hang[600], hang_pid[600], delay[600], want[1024], *pidtext = NULL;
    int i, pid, before, runs, joins, changes;
    size_t off;

    memset(gs, 0, sizeof(gs));
    TU_CHECK(world_init(&w, "/e2e-handlers") == 0, out);
    memset(&c, 0, sizeof(c));
    c.on = HANDLER_MEMBERSHIP;
    c.handler_timeout = 1000;
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "a1", 10000) == 0, out);
    snprintf(hang, sizeof(hang), "%s.hang", a1->events);
    snprintf(hang_pid, sizeof(hang_pid), "%s.hang-pid", a1->events);
    snprintf(delay, sizeof(delay), "%s.delay", a1->events);

    /* The next member_joined run hangs. */
    TU_CHECK(write_file(hang, "") == 0, out);
    TU_CHECK(lib_join(&w, &gs[0], "x0") == 0, out);
    TU_CHECK(wait_file_has(hang_pid, "\n", 5000) == 0, out);
    pidtext = slurp(hang_pid);
    pid = atoi(pidtext);
    TU_CHECK(pid > 0, out);
    TU_CHECK(wait_file_has(a1->log, "timeout after 1000 ms, sending SIGTERM", 3000) == 0, out);
    TU_CHECK(wait_file_has(a1->log, "sending SIGKILL", 5000) == 0, out);
    CU_ASSERT_EQUAL(wait_pid_gone(pid, 3000), 0);
    TU_CHECK(wait_file_has(a1->log, "timed out", 3000) == 0, out);
    /* Still working: the next join runs the handler normally. */
    TU_CHECK(lib_join(&w, &gs[1], "x1") == 0, out);
    TU_CHECK(wait_recs(a1->events, "member_joined", "x1", 1, 5000) == 1, out);
    TU_CHECK(wait_last_members(a1->events, "members_changed", "a1,x0,x1", 5000) == 0, out);
    CU_ASSERT(agent_running(a1));

    /* Storm: a slow handler (0.1 s, well under its 1 s timeout), STORM joins and STORM/2 leaves in
     * a burst. */
    TU_CHECK(write_file(delay, "0.1\n") == 0, out);
    before = count_recs(a1->events, "members_changed", NULL);
    joins = count_recs(a1->events, "member_joined", NULL);
    for (i = 2; i < STORM + 2; i++) {
        char id[16];
        snprintf(id, sizeof(id), "x%d", i);
        TU_CHECK(lib_join(&w, &gs[i], id) == 0, out);
    }
    for (i = 2; i < STORM + 2; i += 2) {
        zkc_group_free(gs[i]);
        gs[i] = NULL;
    }
    changes = STORM + STORM / 2;
    off = (size_t)snprintf(want, sizeof(want), "a1,x0,x1");
    for (i = 3; i < STORM + 2; i += 2)
        off += (size_t)snprintf(want + off, sizeof(want) - off, ",x%d", i);
    TU_CHECK(wait_members(&w, want, 10000) == 0, out);
    TU_CHECK(wait_last_members(a1->events, "members_changed", want, 15000) == 0, out);
    runs = count_recs(a1->events, "members_changed", NULL) - before;
    CU_ASSERT(runs >= 1);
    CU_ASSERT(runs < changes);
    joins = count_recs(a1->events, "member_joined", NULL) - joins;
    CU_ASSERT(joins >= 1);
    CU_ASSERT(joins < STORM);
    CU_ASSERT(file_has(a1->log, "coalesced into it"));
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 8000), 0);
out:
    free(pidtext);
    for (i = 0; i < STORM + 2; i++)
        zkc_group_free(gs[i]);
    world_destroy(&w);
}

/* SIGHUP with a broken file: the agent keeps running as it was (same node,
 * same session) and logs why; then a valid metadata change is applied
 * without re-registering (same node) and another agent hears
 * member_updated. */
static void test_reload(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL, *a2 = NULL;
    char node[256], node2[256];
    int64_t owner = 0, owner2 = 0;
    recs *rs = calloc(1, sizeof(*rs));
    json_t *md;
    int i, found = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
    TU_CHECK(world_init(&w, "/e2e-reload") == 0, out);
    memset(&c, 0, sizeof(c));
    c.metadata = "{\"zone\": \"z1\"}";
    c.port = 7001;
    c.election = 1;
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);
    /* a1 registered before a2 starts: a2's first view holds it, so any
     * member_joined for a1 below would be a re-join (what this test rules
     * out), not a2 starting before a1 had joined. */
    TU_CHECK(wait_members(&w, "a1", 10000) == 0, out);
    c.on = "[\"member_updated\", \"member_left\", \"member_joined\"]";
    c.port = 7002;
    TU_CHECK((a2 = agent_start(&w, "a2", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "a1,a2", 10000) == 0, out);
    TU_CHECK(member_node(&w, "a1", node, sizeof(node), &owner) == 0, out);

    /* Broken: a syntax error on line 3. */
    TU_CHECK(write_file(a1->cfg,
                        "{\n  \"cluster\": \"c\",\n  \"member\": {\"id\": \"a1\",, }\n}\n") == 0,
             out);
    kill(a1->pid, SIGHUP);
    TU_CHECK(wait_file_has(a1->log, "reload refused", 5000) == 0, out);
    {
        char where[600];
        snprintf(where, sizeof(where), "%s:3:", a1->cfg);
        CU_ASSERT(file_has(a1->log, where));
    }
    CU_ASSERT(agent_running(a1));
    TU_CHECK(member_node(&w, "a1", node2, sizeof(node2), &owner2) == 0, out);
    CU_ASSERT_STRING_EQUAL(node2, node);
    CU_ASSERT_EQUAL(owner2, owner);

    /* Valid: new metadata. */
    c.metadata = "{\"zone\": \"z9\"}";
    c.port = 7001;
    c.on = NULL;
    TU_CHECK(write_config(&w, a1, "a1", &c) == 0, out);
    kill(a1->pid, SIGHUP);
    TU_CHECK(wait_recs(a2->events, "member_updated", "a1", 1, 5000) == 1, out);
    recs_load(rs, a2->events);
    for (i = 0; i < rs->n; i++) {
        if (!rec_is(&rs->r[i], "member_updated", "a1"))
            continue;
        found++;
        md = json_object_get(json_object_get(rs->r[i].doc, "member"), "metadata");
        CU_ASSERT_STRING_EQUAL(str_or_empty(json_object_get(md, "zone")), "z9");
        md = json_object_get(json_object_get(rs->r[i].doc, "previous"), "metadata");
        CU_ASSERT_STRING_EQUAL(str_or_empty(json_object_get(md, "zone")), "z1");
    }
    CU_ASSERT_EQUAL(found, 1);
    TU_CHECK(member_node(&w, "a1", node2, sizeof(node2), &owner2) == 0, out);
    CU_ASSERT_STRING_EQUAL(node2, node);
    CU_ASSERT_EQUAL(owner2, owner);
    /* Membership never dropped: a2 heard no leave or re-join of a1. */
    CU_ASSERT_EQUAL(count_recs(a2->events, "member_left", "a1"), 0);
    CU_ASSERT_EQUAL(count_recs(a2->events, "member_joined", "a1"), 0);
    CU_ASSERT(agent_running(a1));
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 8000), 0);
    CU_ASSERT_EQUAL(agent_stop(a2, SIGTERM, 8000), 0);
out:
    world_destroy(&w);
    recs_free(rs);
    free(rs);
}

/* Run zkcoord with options on `ap`'s config to completion. */
static int run_agent(agent_proc *ap, const char *o1, const char *o2)
{
    if (agent_spawn(ap, o1, o2) != 0)
        return -2;
    return agent_stop(ap, 0, 15000); /* signal 0: just wait */
}

/* --check: exit 2 with FILE:LINE:COL on a bad file, 0 on a good one;
 * unreachable ZooKeeper at start: exit 4 with a clear message. */
static void test_check_and_unreachable(void)
{
    world w;
    acfg c;
    agent_proc *ap;
    char where[600];
    long long t0;

    TU_CHECK(world_init(&w, "/e2e-check") == 0, out);
    memset(&c, 0, sizeof(c));
    ap = &w.ag[w.n++];
    TU_CHECK(write_config(&w, ap, "good", &c) == 0, out);
    CU_ASSERT_EQUAL(run_agent(ap, "--check", NULL), 0);
    CU_ASSERT(file_has(ap->log, ": ok"));

    ap = &w.ag[w.n++];
    TU_CHECK(write_config(&w, ap, "bad", &c) == 0, out);
    TU_CHECK(
        write_file(ap->cfg, "{\n  \"cluster\": \"c\",\n  \"member\": {\"port\": 70000}\n}\n") == 0,
        out);
    CU_ASSERT_EQUAL(run_agent(ap, "--check", NULL), 2);
    snprintf(where, sizeof(where), "%s:3:", ap->cfg);
    CU_ASSERT(file_has(ap->log, where));
    CU_ASSERT(file_has(ap->log, "member.port"));

    ap = &w.ag[w.n++];
    TU_CHECK(write_config(&w, ap, "syntax", &c) == 0, out);
    TU_CHECK(write_file(ap->cfg, "{\n  \"cluster\": \"c\"\n  \"member\": {}\n}\n") == 0, out);
    CU_ASSERT_EQUAL(run_agent(ap, "--check", NULL), 2);
    snprintf(where, sizeof(where), "%s:3:", ap->cfg);
    CU_ASSERT(file_has(ap->log, where));

    ap = &w.ag[w.n++];
    c.servers = "127.0.0.1:1";
    TU_CHECK(write_config(&w, ap, "unreachable", &c) == 0, out);
    t0 = tu_now_ms();
    CU_ASSERT_EQUAL(run_agent(ap, "--connect-timeout", "700"), 4);
    CU_ASSERT(tu_now_ms() - t0 < 10000);
    CU_ASSERT(file_has(ap->log, "ZooKeeper unreachable"));
    CU_ASSERT(file_has(ap->log, "127.0.0.1:1"));
out:
    world_destroy(&w);
}

/* The lock queue at `path` now: the holder's owner id ("" when nobody
 * holds), token and session, and the number of entries; -1 on error. */
static int lock_now(world *w, const char *path, char *owner, size_t len, int64_t *token,
                    int64_t *session, int *count)
{
    zkc_lock_info *li = NULL;

    owner[0] = '\0';
    *token = *session = 0;
    if (zkc_lock_inspect(w->s, path, 5000, &li) != 0)
        return -1;
    *count = li->count;
    if (li->count > 0 && li->entries[0].holds) {
        snprintf(owner, len, "%s", li->entries[0].owner_id ? li->entries[0].owner_id : "");
        *token = li->entries[0].token;
        *session = li->entries[0].session_id;
    }
    zkc_lock_info_free(li);
    return 0;
}

/* Wait until the lock at `path` has `count` entries and is held by `want`
 * (NULL: anyone); the holder then in owner, *token, *session. */
static int wait_lock(world *w, const char *path, const char *want, int count, int timeout_ms,
                     char *owner, size_t len, int64_t *token, int64_t *session)
{
    long long end = tu_now_ms() + timeout_ms;
    int n = -1;

    for (;;) {
        if (lock_now(w, path, owner, len, token, session, &n) == 0 && n == count &&
            (want ? strcmp(owner, want) == 0 : owner[0] != '\0'))
            return 0;
        if (tu_now_ms() > end) {
            fprintf(stderr, "    lock %s: want %d entries held by %s, have %d held by [%s]\n", path,
                    count, want ? want : "anyone", n, owner);
            return -1;
        }
        pause_ms(30);
    }
}

/* Check the lock_acquired records of agent `self`: how many there are; the
 * last one's ZKCOORD_FENCING_TOKEN in *token (-1 if empty). */
static int check_lock_recs(const char *events, const char *self, const char *lpath,
                           long long *token)
{
    recs *rs = calloc(1, sizeof(*rs));
    int i, n = 0;

    *token = -1;
    if (!rs)
        return -1;
    recs_load(rs, events);
    for (i = 0; i < rs->n; i++) {
        const rec *r = &rs->r[i];
        json_t *lk = json_object_get(r->doc, "lock");
        if (!rec_is(r, "lock_acquired", NULL))
            continue;
        n++;
        *token = r->token[0] ? atoll(r->token) : -1;
        CU_ASSERT_STRING_EQUAL(r->member_id, self);
        CU_ASSERT(*token > 0);
        CU_ASSERT_STRING_EQUAL(str_or_empty(json_object_get(lk, "name")), "batch");
        CU_ASSERT_STRING_EQUAL(str_or_empty(json_object_get(lk, "path")), lpath);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(lk, "token")), *token);
        CU_ASSERT_STRING_EQUAL(str_or_empty(json_object_get(r->doc, "fencing_token")), r->token);
    }
    recs_free(rs);
    free(rs);
    return n;
}

/* Two agents hold lock "batch" (supervise.while "lock:batch"): exactly one
 * gets lock_acquired (token in the environment, lock.name in the JSON) and
 * runs the app, the other waits in the queue; SIGKILL of the holder takes
 * its app down and, once its session expired, the other holds under a
 * larger token and runs its app; never two apps at once. */
static void test_lock_supervise(void)
{
    world w;
    acfg c;
    agent_proc *a[2] = {NULL, NULL}, *h = NULL, *o = NULL; /* holder, other */
    app_line lines[64];
    char apps[512], lpath[256], owner[256], node[256], want[64];
    int64_t ltok = 0, lsess = 0, msess = 0;
    long long t1 = -1, t2 = -1;
    int i, n, running = 0, starts = 0, h_app = 0;

    TU_CHECK(world_init(&w, "/e2e-lock") == 0, out);
    path_of(&w, apps, sizeof(apps), "apps");
    snprintf(lpath, sizeof(lpath), "%s/c/locks/batch", w.root);
    memset(&c, 0, sizeof(c));
    c.on = "[\"lock_acquired\", \"lock_lost\"]";
    c.lock = "batch";
    c.supervise = 1;
    c.port = 7001;
    TU_CHECK((a[0] = agent_start(&w, "a1", &c)) != NULL, out);
    c.port = 7002;
    TU_CHECK((a[1] = agent_start(&w, "a2", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "a1,a2", 10000) == 0, out);
    /* Both in the queue, one holds. */
    TU_CHECK(wait_lock(&w, lpath, NULL, 2, 10000, owner, sizeof(owner), &ltok, &lsess) == 0, out);
    h = strcmp(owner, "a1") == 0 ? a[0] : a[1];
    o = h == a[0] ? a[1] : a[0];
    TU_CHECK(strcmp(owner, h->id) == 0, out);
    TU_CHECK(wait_recs(h->events, "lock_acquired", NULL, 1, 10000) == 1, out);
    CU_ASSERT_EQUAL(check_lock_recs(h->events, h->id, lpath, &t1), 1);
    CU_ASSERT_EQUAL(t1, ltok);
    /* The lock node is the holder agent's: its member node's session. */
    TU_CHECK(member_node(&w, h->id, node, sizeof(node), &msess) == 0, out);
    CU_ASSERT_EQUAL(lsess, msess);
    snprintf(want, sizeof(want), "start %s %lld ", h->id, t1);
    TU_CHECK(wait_file_has(apps, want, 10000) == 0, out);
    /* The other still waits in the queue: it never heard lock_acquired. */
    TU_CHECK(wait_lock(&w, lpath, h->id, 2, 100, owner, sizeof(owner), &ltok, &lsess) == 0, out);
    CU_ASSERT_EQUAL(count_recs(o->events, "lock_acquired", NULL), 0);
    n = load_apps(&w, lines, 64);
    for (i = 0; i < n; i++)
        if (lines[i].start) {
            starts++;
            h_app = lines[i].pid;
        }
    CU_ASSERT_EQUAL(starts, 1);
    TU_CHECK(h_app > 0, out);

    /* SIGKILL the holder: its app goes at once, the other holds once the
     * holder's session expired. */
    CU_ASSERT_EQUAL(agent_stop(h, SIGKILL, 5000), 128 + SIGKILL);
    CU_ASSERT_EQUAL(wait_pid_gone(h_app, 3000), 0);
    TU_CHECK(wait_recs(o->events, "lock_acquired", NULL, 1, 15000) == 1, out);
    CU_ASSERT_EQUAL(check_lock_recs(o->events, o->id, lpath, &t2), 1);
    CU_ASSERT(t2 > t1);
    TU_CHECK(wait_lock(&w, lpath, o->id, 1, 5000, owner, sizeof(owner), &ltok, &lsess) == 0, out);
    CU_ASSERT_EQUAL(ltok, t2);
    TU_CHECK(member_node(&w, o->id, node, sizeof(node), &msess) == 0, out);
    CU_ASSERT_EQUAL(lsess, msess);
    snprintf(want, sizeof(want), "start %s %lld ", o->id, t2);
    TU_CHECK(wait_file_has(apps, want, 10000) == 0, out);
    CU_ASSERT_EQUAL(agent_stop(o, SIGTERM, 10000), 0);
    /* TERM released the lock: the queue is empty. */
    CU_ASSERT_EQUAL(wait_lock(&w, lpath, "", 0, 5000, owner, sizeof(owner), &ltok, &lsess), 0);
    CU_ASSERT_EQUAL(count_recs(a[0]->events, "lock_lost", NULL), 0);
    CU_ASSERT_EQUAL(count_recs(a[1]->events, "lock_lost", NULL), 0);

    /* The record: never two apps at once, the holder's first under t1, the
     * other's under t2, both stopped. */
    n = load_apps(&w, lines, 64);
    qsort(lines, (size_t)n, sizeof(lines[0]), cmp_app);
    running = starts = 0;
    for (i = 0; i < n; i++) {
        if (lines[i].start) {
            CU_ASSERT_EQUAL(running, 0);
            CU_ASSERT_STRING_EQUAL(lines[i].id, starts == 0 ? h->id : o->id);
            CU_ASSERT_EQUAL(lines[i].token, starts == 0 ? t1 : t2);
            running++;
            starts++;
        } else {
            CU_ASSERT_EQUAL(running, 1);
            running--;
        }
    }
    CU_ASSERT_EQUAL(running, 0);
    CU_ASSERT_EQUAL(starts, 2);
    if (starts != 2 || running != 0) {
        char *s = slurp(apps);
        fprintf(stderr, "    apps:\n%s\n", s);
        free(s);
    }
out:
    world_destroy(&w);
}

/* Wait until the apps file has at least `n` lines. */
static int wait_apps(world *w, int n, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    char path[512];

    path_of(w, path, sizeof(path), "apps");
    while (count_lines(path) < n) {
        if (tu_now_ms() > end) {
            char *s = slurp(path);
            fprintf(stderr, "    apps: want %d lines, have:\n%s\n", n, s);
            free(s);
            return -1;
        }
        pause_ms(20);
    }
    return 0;
}

/* The server stops: the agent fires suspended and stops the app it runs
 * while holding lock "batch" (it can no longer be sure it holds it); the
 * server comes back within the agent's 20 s session: reconnected fires, the
 * member node is the same (name and session), the lock was never lost and
 * the app runs again under the same token. */
static void test_suspended_reconnected(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL;
    recs *rs = calloc(1, sizeof(*rs));
    char node[256] = "", node2[256] = "";
    int64_t owner = 0, owner2 = 0;
    char apps[512], lpath[256], want[64];
    app_line lines[16];
    long long tok = -1;
    int down = 0, i, n, order = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
    TU_CHECK(world_init(&w, "/e2e-suspend") == 0, out);
    path_of(&w, apps, sizeof(apps), "apps");
    snprintf(lpath, sizeof(lpath), "%s/c/locks/batch", w.root);
    memset(&c, 0, sizeof(c));
    c.session_ms = 20000;
    c.on = "[\"suspended\", \"reconnected\", \"session_lost\", \"lock_acquired\", "
           "\"lock_lost\"]";
    c.lock = "batch";
    c.supervise = 1;
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "a1", 10000) == 0, out);
    TU_CHECK(member_node(&w, "a1", node, sizeof(node), &owner) == 0, out);
    TU_CHECK(wait_recs(a1->events, "lock_acquired", NULL, 1, 10000) == 1, out);
    TU_CHECK(check_lock_recs(a1->events, "a1", lpath, &tok) == 1, out);
    snprintf(want, sizeof(want), "start a1 %lld ", tok);
    TU_CHECK(wait_file_has(apps, want, 10000) == 0, out);

    TU_CHECK(zkh_stop_server(tu_zk, 0) == 0, out);
    down = 1;
    TU_CHECK(wait_recs(a1->events, "suspended", NULL, 1, 10000) == 1, out);
    snprintf(want, sizeof(want), "stop a1 %lld ", tok);
    TU_CHECK(wait_file_has(apps, want, 10000) == 0, out);
    CU_ASSERT_EQUAL(count_recs(a1->events, "reconnected", NULL), 0);
    TU_CHECK(zkh_start_server(tu_zk, 0) == 0, out);
    down = 0;
    TU_CHECK(wait_recs(a1->events, "reconnected", NULL, 1, 15000) == 1, out);
    /* The test's own session reconnects on its own schedule (its backoff
     * can be seconds behind the agent's under load): wait for it before
     * reading, rather than spending the read's deadline on it. */
    TU_CHECK(zkc_session_wait_connected(w.s, 15000) == 0, out);
    TU_CHECK(member_node(&w, "a1", node2, sizeof(node2), &owner2) == 0, out);
    CU_ASSERT_STRING_EQUAL(node2, node);
    CU_ASSERT_EQUAL(owner2, owner);
    CU_ASSERT_EQUAL(count_recs(a1->events, "suspended", NULL), 1);
    CU_ASSERT_EQUAL(count_recs(a1->events, "session_lost", NULL), 0);
    /* The app runs again under the same token: start, stop, start. */
    TU_CHECK(wait_apps(&w, 3, 10000) == 0, out);
    n = load_apps(&w, lines, 16);
    qsort(lines, (size_t)n, sizeof(lines[0]), cmp_app);
    CU_ASSERT_EQUAL(n, 3);
    for (i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(lines[i].start, i != 1);
        CU_ASSERT_EQUAL(lines[i].token, tok);
    }
    CU_ASSERT_EQUAL(count_recs(a1->events, "lock_acquired", NULL), 1);
    CU_ASSERT_EQUAL(count_recs(a1->events, "lock_lost", NULL), 0);
    /* suspended, then reconnected, each about this agent. */
    recs_load(rs, a1->events);
    for (i = 0; i < rs->n; i++) {
        CU_ASSERT_STRING_EQUAL(rs->r[i].member_id, "a1");
        CU_ASSERT_STRING_EQUAL(
            doc_str(rs->r[i].doc, "event", NULL) ? doc_str(rs->r[i].doc, "event", NULL) : "",
            rs->r[i].event);
        if (rec_is(&rs->r[i], "lock_acquired", NULL))
            continue;
        if (rec_is(&rs->r[i], "suspended", NULL))
            order = order == 0 ? 1 : -1;
        else if (rec_is(&rs->r[i], "reconnected", NULL))
            order = order == 1 ? 2 : -1;
    }
    CU_ASSERT_EQUAL(order, 2);
    CU_ASSERT(agent_running(a1));
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 8000), 0);
    TU_CHECK(wait_members(&w, "", 5000) == 0, out);
out:
    if (down)
        CU_ASSERT_EQUAL(zkh_start_server(tu_zk, 0), 0);
    world_destroy(&w);
    recs_free(rs);
    free(rs);
}

/* A datagram socket standing in for systemd's $NOTIFY_SOCKET. */
static int notify_open(world *w, char *path, size_t len)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    path_of(w, path, len, "notify");
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Read datagrams until one contains `needle`; everything read is appended
 * to `all` (NUL-terminated). 0 when seen within timeout_ms. */
static int notify_wait(int fd, const char *needle, char *all, size_t len, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;

    while (tu_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        char buf[1024];
        ssize_t n;
        if (poll(&p, 1, 50) <= 0)
            continue;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        if (strlen(all) + (size_t)n + 2 < len) {
            strcat(all, buf);
            strcat(all, "\n");
        }
        if (strstr(buf, needle))
            return 0;
    }
    return -1;
}

static int leader_now(world *w, char *id, size_t len)
{
    char path[128];
    zkc_election_leader_info li;
    int rc;

    snprintf(path, sizeof(path), "%s/c/leader", w->root);
    id[0] = '\0';
    rc = zkc_election_observe_leader(w->s, path, &li, 5000);
    if (rc == 0 && len > 0) {
        strncpy(id, li.id, len - 1);
        id[len - 1] = '\0';
    }
    return rc;
}

/* Entries (holder and waiters) of the lock at `path`; 0 when it does not
 * exist, -1 on error. */
static int lock_entries(world *w, const char *path)
{
    zkc_lock_info *li = NULL;
    int rc = zkc_lock_inspect(w->s, path, 5000, &li), n;

    if (rc == ZKC_ENONODE)
        return 0;
    if (rc != 0)
        return -1;
    n = li->count;
    zkc_lock_info_free(li);
    return n;
}

/* Issue 11 item 1: an agent whose health check fails never registers,
 * campaigns, queues for a lock or starts a `while: leader|lock` app; it
 * still tells systemd READY=1 ("waiting for health"). Once the check passes
 * it does all of it; when the check fails again it leaves all of it. */
static void test_unhealthy_never_leads(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL, *a2 = NULL;
    char checks1[512], checks2[512], apps[512], lpath[256], owner[256], leader[256];
    char notify_path[512], seen[4096] = "";
    int64_t ltok = 0, lsess = 0;
    int nfd = -1, n, i, starts, stops;
    app_line lines[64];
    long long end;

    TU_CHECK(world_init(&w, "/e2e-unhealthy") == 0, out);
    path_of(&w, checks1, sizeof(checks1), "a1.checks");
    path_of(&w, checks2, sizeof(checks2), "a2.checks");
    path_of(&w, apps, sizeof(apps), "apps");
    snprintf(lpath, sizeof(lpath), "%s/c/locks/batch", w.root);
    TU_CHECK((nfd = notify_open(&w, notify_path, sizeof(notify_path))) >= 0, out);

    /* a1 campaigns and runs its app while leader; a2 holds lock "batch" and
     * runs its app while holding it. Neither has its ok file: every check
     * fails, like /bin/false. */
    memset(&c, 0, sizeof(c));
    c.health = 1;
    c.rise = 2;
    c.fall = 1;
    c.election = 1;
    c.supervise = 1;
    c.on = "[\"elected\", \"demoted\", \"lock_acquired\", \"lock_lost\"]";
    c.port = 7001;
    setenv("NOTIFY_SOCKET", notify_path, 1);
    a1 = agent_start(&w, "a1", &c);
    unsetenv("NOTIFY_SOCKET");
    TU_CHECK(a1 != NULL, out);
    c.election = 0;
    c.lock = "batch";
    c.port = 7002;
    TU_CHECK((a2 = agent_start(&w, "a2", &c)) != NULL, out);

    /* Up and configured: READY=1 with the reason it is not a member. */
    TU_CHECK(notify_wait(nfd, "READY=1", seen, sizeof(seen), 15000) == 0, out);
    CU_ASSERT_PTR_NOT_NULL(strstr(seen, "STATUS=waiting for health"));
    /* Many failed checks later: nothing of the cluster is theirs. */
    end = tu_now_ms() + 20000;
    while ((count_lines(checks1) < 8 || count_lines(checks2) < 8) && tu_now_ms() < end)
        pause_ms(20);
    TU_CHECK(count_lines(checks1) >= 8 && count_lines(checks2) >= 8, out);
    CU_ASSERT_FALSE(file_has(checks1, "pass"));
    CU_ASSERT_EQUAL(members_now(&w, owner, sizeof(owner)), 0);
    CU_ASSERT_STRING_EQUAL(owner, "");
    CU_ASSERT_EQUAL(leader_now(&w, leader, sizeof(leader)), ZKC_ENONODE);
    CU_ASSERT_EQUAL(lock_entries(&w, lpath), 0);
    CU_ASSERT_EQUAL(count_recs(a1->events, "elected", NULL), 0);
    CU_ASSERT_EQUAL(count_recs(a2->events, "lock_acquired", NULL), 0);
    CU_ASSERT_EQUAL(count_lines(apps), 0);
    CU_ASSERT(agent_running(a1));
    CU_ASSERT(agent_running(a2));

    /* Healthy: registers, campaigns, leads, holds, runs the apps. */
    TU_CHECK(touch(&w, "a1.ok") == 0 && touch(&w, "a2.ok") == 0, out);
    TU_CHECK(wait_members(&w, "a1,a2", 10000) == 0, out);
    TU_CHECK(wait_recs(a1->events, "elected", NULL, 1, 10000) == 1, out);
    TU_CHECK(wait_recs(a2->events, "lock_acquired", NULL, 1, 10000) == 1, out);
    CU_ASSERT_EQUAL(leader_now(&w, leader, sizeof(leader)), 0);
    CU_ASSERT_STRING_EQUAL(leader, "a1");
    TU_CHECK(wait_lock(&w, lpath, "a2", 1, 10000, owner, sizeof(owner), &ltok, &lsess) == 0, out);
    TU_CHECK(wait_file_has(apps, "start a1 ", 10000) == 0, out);
    TU_CHECK(wait_file_has(apps, "start a2 ", 10000) == 0, out);

    /* Unhealthy again: the apps stop, leadership and lock go, not members. */
    unlink_leaf(&w, "a1.ok");
    unlink_leaf(&w, "a2.ok");
    TU_CHECK(wait_members(&w, "", 10000) == 0, out);
    TU_CHECK(wait_file_has(apps, "stop a1 ", 10000) == 0, out);
    TU_CHECK(wait_file_has(apps, "stop a2 ", 10000) == 0, out);
    TU_CHECK(wait_recs(a1->events, "demoted", NULL, 1, 10000) == 1, out);
    end = tu_now_ms() + 10000;
    while (leader_now(&w, leader, sizeof(leader)) != ZKC_ENONODE && tu_now_ms() < end)
        pause_ms(30);
    CU_ASSERT_EQUAL(leader_now(&w, leader, sizeof(leader)), ZKC_ENONODE);
    end = tu_now_ms() + 10000;
    while (lock_entries(&w, lpath) != 0 && tu_now_ms() < end)
        pause_ms(30);
    CU_ASSERT_EQUAL(lock_entries(&w, lpath), 0);
    n = load_apps(&w, lines, 64);
    for (i = starts = stops = 0; i < n; i++) {
        starts += lines[i].start;
        stops += !lines[i].start;
    }
    CU_ASSERT_EQUAL(starts, 2);
    CU_ASSERT_EQUAL(stops, 2);
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 8000), 0);
    CU_ASSERT_EQUAL(agent_stop(a2, SIGTERM, 8000), 0);
out:
    if (nfd >= 0)
        close(nfd);
    world_destroy(&w);
}

/* Pids of the n-th (1-based) "start ID" line and n-th "kid" line of the
 * shared apps file; 0 when not there yet. */
static void nasty_pids(world *w, const char *id, int n, int *app, int *kid)
{
    char path[512], *s, *line, *save = NULL, kind[16], who[32];
    int starts = 0, kids = 0, pid;
    long long tok, ns;

    *app = *kid = 0;
    path_of(w, path, sizeof(path), "apps");
    s = slurp(path);
    for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (sscanf(line, "kid %d", &pid) == 1 && ++kids == n)
            *kid = pid;
        else if (sscanf(line, "%15s %31s %lld %lld %d", kind, who, &tok, &ns, &pid) == 5 &&
                 strcmp(kind, "start") == 0 && strcmp(who, id) == 0 && ++starts == n)
            *app = pid;
    }
    free(s);
}

static int wait_nasty(world *w, const char *id, int n, int *app, int *kid, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;

    for (;;) {
        nasty_pids(w, id, n, app, kid);
        if (*app > 0 && *kid > 0)
            return 0;
        if (tu_now_ms() > end)
            return -1;
        pause_ms(20);
    }
}

/* Zombie children of `pid`. */
static int zombies_of(pid_t pid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int z = 0;

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
        if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == (int)pid && p[2] == 'Z')
            z++;
    }
    closedir(d);
    return z;
}

/* No zombie child of `pid` (a guard that just exited is one until the
 * thread that started it reaps it, a moment later): 0 once none is seen
 * within timeout_ms. */
static int wait_no_zombies(pid_t pid, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;

    while (zombies_of(pid) != 0) {
        if (tu_now_ms() > end)
            return -1;
        pause_ms(20);
    }
    return 0;
}

/* Issue 11 item 3: a supervised app that ignores TERM and has a child in
 * its own session (ignoring TERM too) is gone, child and all, within the
 * grace after demotion, SIGKILL of the agent, a HUP that drops the
 * supervise section, and TERM of the agent. */
static void test_no_process_left(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL;
    int app = 0, kid = 0, round = 0;

    TU_CHECK(world_init(&w, "/e2e-leftover") == 0, out);
    memset(&c, 0, sizeof(c));
    c.election = 1;
    c.health = 1;
    c.rise = 1;
    c.fall = 1;
    c.supervise = 1;
    c.nasty = 1;
    c.stop_grace = 500;
    TU_CHECK(touch(&w, "a1.ok") == 0, out);
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);

    /* Demotion (health falls). */
    TU_CHECK(wait_nasty(&w, "a1", ++round, &app, &kid, 15000) == 0, out);
    CU_ASSERT(pid_alive(app) && pid_alive(kid));
    unlink_leaf(&w, "a1.ok");
    CU_ASSERT_EQUAL(wait_pid_gone(app, 500 + 5000), 0);
    CU_ASSERT_EQUAL(wait_pid_gone(kid, 500 + 5000), 0);
    CU_ASSERT_EQUAL(wait_no_zombies(a1->pid, 3000), 0);

    /* SIGKILL of the agent. */
    TU_CHECK(touch(&w, "a1.ok") == 0, out);
    TU_CHECK(wait_nasty(&w, "a1", ++round, &app, &kid, 15000) == 0, out);
    CU_ASSERT_EQUAL(agent_stop(a1, SIGKILL, 5000), 128 + SIGKILL);
    CU_ASSERT_EQUAL(wait_pid_gone(app, 500 + 5000), 0);
    CU_ASSERT_EQUAL(wait_pid_gone(kid, 500 + 5000), 0);

    /* A HUP that drops the supervise section stops the app. */
    TU_CHECK(agent_spawn(a1, NULL, NULL) == 0, out);
    TU_CHECK(wait_nasty(&w, "a1", ++round, &app, &kid, 20000) == 0, out);
    c.supervise = 0;
    TU_CHECK(write_config(&w, a1, "a1", &c) == 0, out);
    kill(a1->pid, SIGHUP);
    CU_ASSERT_EQUAL(wait_pid_gone(app, 500 + 5000), 0);
    CU_ASSERT_EQUAL(wait_pid_gone(kid, 500 + 5000), 0);

    /* TERM of the agent. */
    c.supervise = 1;
    TU_CHECK(write_config(&w, a1, "a1", &c) == 0, out);
    kill(a1->pid, SIGHUP);
    TU_CHECK(wait_nasty(&w, "a1", ++round, &app, &kid, 15000) == 0, out);
    CU_ASSERT_EQUAL(wait_no_zombies(a1->pid, 3000), 0);
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 8000), 0);
    CU_ASSERT_EQUAL(wait_pid_gone(app, 1000), 0);
    CU_ASSERT_EQUAL(wait_pid_gone(kid, 1000), 0);
out:
    if (kid > 0 && pid_alive(kid))
        kill(kid, SIGKILL);
    if (app > 0 && pid_alive(app))
        kill(app, SIGKILL);
    world_destroy(&w);
}

/* The last line of `path` that parses as a JSON object with "event" ==
 * `event` (new reference), or NULL. */
static json_t *last_doc(const char *path, const char *event)
{
    char *s = slurp(path), *line, *save = NULL;
    json_t *found = NULL;

    for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *d = json_loads(line, 0, NULL);
        const char *ev = json_string_value(json_object_get(d, "event"));
        if (ev && strcmp(ev, event) == 0) {
            json_decref(found);
            found = d;
        } else {
            json_decref(d);
        }
    }
    free(s);
    return found;
}

/* Issue 11 item 4: peers write hostile bytes. A member id "a,b,c" is one
 * member in ZKCOORD_MEMBERS (a JSON array); a leader id with a newline, a
 * forged journald priority, terminal escapes, C1, a bidi override and a
 * byte that is not UTF-8 is escaped in the agent's log and still present
 * (replaced, not dropped) in the handler's document. */
static void test_hostile_peer_bytes(void)
{
    static const char evil[] = "evil\n<0>zkcoord: FORGED\x1b]0;pwned\x07\xff\xc2\x9b\xe2\x80\xae";
    world w;
    acfg c;
    agent_proc *a1 = NULL;
    zkc_group *g = NULL;
    zkc_election *e = NULL;
    zkc_election_opts eo;
    char script[400], docs[512], mems[512], path[256], leader[256], *log = NULL, *m = NULL;
    json_t *d = NULL, *arr = NULL;
    long long end;
    int found = 0;
    size_t i;

    TU_CHECK(world_init(&w, "/e2e-hostile") == 0, out);
    snprintf(script, sizeof(script), "%.300s/hostile.sh", w.dir);
    snprintf(docs, sizeof(docs), "%s.docs", script);
    snprintf(mems, sizeof(mems), "%s.members", script);
    TU_CHECK(write_file(script, "#!/bin/sh\ncat >>\"$0.docs\"\n"
                                "printf '%s\\n' \"$ZKCOORD_MEMBERS\" >>\"$0.members\"\n") == 0,
             out);
    TU_CHECK(chmod(script, 0755) == 0, out);
    memset(&c, 0, sizeof(c));
    c.election = 1;
    c.health = 1;
    c.rise = 1;
    c.fall = 1;
    c.on = "[\"leader_changed\", \"member_joined\"]";
    c.handler_path = script;
    TU_CHECK(touch(&w, "a1.ok") == 0, out);
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "a1", 10000) == 0, out);
    end = tu_now_ms() + 10000;
    while ((leader_now(&w, leader, sizeof(leader)) != 0 || strcmp(leader, "a1") != 0) &&
           tu_now_ms() < end)
        pause_ms(30);
    TU_CHECK(strcmp(leader, "a1") == 0, out);

    /* One member whose id has commas. */
    TU_CHECK(lib_join(&w, &g, "a,b,c") == 0, out);
    TU_CHECK(wait_file_has(mems, "a,b,c", 10000) == 0, out);
    m = slurp(mems); /* the first line naming a,b,c: the member_joined run */
    {
        char *hit = strstr(m, "a,b,c"), *bol = hit;
        while (bol && bol > m && bol[-1] != '\n')
            bol--;
        arr = json_loads(bol ? bol : "", JSON_DISABLE_EOF_CHECK, NULL);
    }
    CU_ASSERT(json_is_array(arr));
    CU_ASSERT_EQUAL(json_array_size(arr), 2);
    for (i = 0; i < json_array_size(arr); i++)
        found += json_string_value(json_array_get(arr, i)) &&
                 strcmp(json_string_value(json_array_get(arr, i)), "a,b,c") == 0;
    CU_ASSERT_EQUAL(found, 1);

    /* A hostile participant queues behind a1, then a1 steps down. */
    snprintf(path, sizeof(path), "%s/c/leader", w.root);
    zkc_election_opts_init(&eo);
    eo.id = evil;
    TU_CHECK(zkc_election_new(&e, w.s, path, &eo) == 0, out);
    unlink_leaf(&w, "a1.ok");
    end = tu_now_ms() + 10000;
    for (;;) {
        const char *lid;
        d = last_doc(docs, "leader_changed");
        lid = json_string_value(json_object_get(json_object_get(d, "leader"), "id"));
        if ((lid && strncmp(lid, "evil", 4) == 0) || tu_now_ms() > end)
            break;
        json_decref(d);
        d = NULL;
        pause_ms(30);
    }
    TU_CHECK(d != NULL, out);
    CU_ASSERT(json_is_object(json_object_get(d, "leader")));
    {
        const char *lid = json_string_value(json_object_get(json_object_get(d, "leader"), "id"));
        CU_ASSERT_PTR_NOT_NULL(lid);
        if (lid)
            CU_ASSERT_STRING_EQUAL(
                lid, "evil\n<0>zkcoord: FORGED\x1b]0;pwned\x07\xef\xbf\xbd\xc2\x9b\xe2\x80\xae");
    }
    TU_CHECK(wait_file_has(a1->log, "leader is now evil", 10000) == 0, out);
    log = slurp(a1->log);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        log, "leader is now evil\\x0a<0>zkcoord: FORGED\\x1b]0;pwned\\x07\\xff\\u009b\\u202e"));
    CU_ASSERT_PTR_NULL(strstr(log, "\n<0>"));
    CU_ASSERT_PTR_NULL(strchr(log, 0x1b));
    CU_ASSERT_PTR_NULL(strstr(log, "\xc2\x9b"));
    CU_ASSERT_PTR_NULL(strstr(log, "\xe2\x80\xae"));
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 8000), 0);
out:
    free(log);
    free(m);
    json_decref(d);
    json_decref(arr);
    zkc_election_close(e);
    zkc_group_free(g);
    world_destroy(&w);
}

/* Start bench/bench_flood writing n members into the world's member folder
 * (a raw ZooKeeper client); it holds them until *hold is closed. */
static pid_t flood_start(world *w, int n, int *hold, const char *out)
{
    char exe[1100], folder[256], num[16];
    const char *top = getenv("top_builddir");
    int p[2];
    pid_t pid;

    snprintf(exe, sizeof(exe), "%s/bench/bench_flood", top && *top ? top : ".");
    members_path(w, folder, sizeof(folder));
    snprintf(num, sizeof(num), "%d", n);
    if (pipe(p) != 0)
        return -1;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(p[0], 0);
        if (fd >= 0)
            dup2(fd, 1);
        close(p[1]);
        execl(exe, exe, zkh_connect_string(tu_zk), folder, num, (char *)NULL);
        _exit(126);
    }
    close(p[0]);
    *hold = p[1];
    return pid;
}

/* Issue 11 item 2: 3,000 members join at once while the leader's health
 * fails: its DEMOTED callback stops the app within 100 ms (the agent logs
 * the figure), and TERM is quick with the members there. */
static void test_flood_demotion(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL;
    char out[512], *log = NULL, *hit;
    int hold = -1, ms = -1, st;
    pid_t fl = -1;
    long long t0;
    struct timespec rm_at;

    TU_CHECK(world_init(&w, "/e2e-flood") == 0, out);
    path_of(&w, out, sizeof(out), "flood.out");
    memset(&c, 0, sizeof(c));
    c.election = 1;
    c.health = 1;
    c.rise = 1;
    c.fall = 1;
    c.supervise = 1;
    TU_CHECK(touch(&w, "a1.ok") == 0, out);
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);
    {
        char apps[512];
        path_of(&w, apps, sizeof(apps), "apps");
        TU_CHECK(wait_file_has(apps, "start a1 ", 15000) == 0, out);
    }
    /* Health fails while the agent digests the 3,000 new members. */
    TU_CHECK((fl = flood_start(&w, 3000, &hold, out)) > 0, out);
    TU_CHECK(wait_file_has(out, "created 3000", 60000) == 0, out);
    clock_gettime(CLOCK_REALTIME, &rm_at);
    unlink_leaf(&w, "a1.ok");
    TU_CHECK(wait_file_has(a1->log, "ms after DEMOTED", 60000) == 0, out);
    log = slurp(a1->log);
    hit = strstr(log, "supervised app stopped ");
    TU_CHECK(hit && sscanf(hit, "supervised app stopped %d ms after DEMOTED", &ms) == 1, out);
    fprintf(stderr, "(DEMOTED -> app stopped: %d ms) ", ms);
    /* 100 ms is the requirement; a sanitizer build runs everything (the
     * guard, the shell of the app) several times slower. */
    CU_ASSERT(ms >= 0 && ms <= (SANITIZED ? 500 : 100));
    /* End to end (health file gone -> the app's stop line), generous: the
     * agent that built every member's JSON per event took tens of seconds. */
    {
        app_line lines[16];
        int i, n = load_apps(&w, lines, 16);
        long long stop_ns = 0;
        for (i = 0; i < n; i++)
            if (!lines[i].start)
                stop_ns = lines[i].ns;
        TU_CHECK(stop_ns > 0, out);
        fprintf(stderr, "(health gone -> app stopped: %lld ms) ",
                (stop_ns - ((long long)rm_at.tv_sec * 1000000000LL + rm_at.tv_nsec)) / 1000000);
        CU_ASSERT((stop_ns - ((long long)rm_at.tv_sec * 1000000000LL + rm_at.tv_nsec)) / 1000000 <
                  5000);
    }
    t0 = tu_now_ms();
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 10000), 0);
    fprintf(stderr, "(TERM with 3,000 members: %lld ms) ", tu_now_ms() - t0);
    CU_ASSERT(tu_now_ms() - t0 <= 2000);
out:
    if (hold >= 0)
        close(hold);
    if (fl > 0)
        waitpid(fl, &st, 0);
    free(log);
    world_destroy(&w);
}

/* Issue 11 item 8: a reload that takes seconds (a new ensemble that does
 * not answer) does not starve the systemd watchdog: WATCHDOG=1 keeps
 * coming every half interval. */
static void test_watchdog_during_reload(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL;
    char notify_path[512], seen[4096] = "";
    int nfd = -1, pings = 0;
    long long last = 0, gap = 0, end;

    TU_CHECK(world_init(&w, "/e2e-watchdog") == 0, out);
    TU_CHECK((nfd = notify_open(&w, notify_path, sizeof(notify_path))) >= 0, out);
    memset(&c, 0, sizeof(c));
    setenv("NOTIFY_SOCKET", notify_path, 1);
    setenv("WATCHDOG_USEC", "400000", 1);
    a1 = agent_start(&w, "a1", &c);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    TU_CHECK(a1 != NULL, out);
    TU_CHECK(notify_wait(nfd, "READY=1", seen, sizeof(seen), 15000) == 0, out);

    /* Reload into an ensemble that never answers: the reload waits its
     * session timeout (3 s) on the main thread. */
    c.servers = "127.0.0.1:1";
    c.session_ms = 3000;
    TU_CHECK(write_config(&w, a1, "a1", &c) == 0, out);
    kill(a1->pid, SIGHUP);
    end = tu_now_ms() + 5000;
    last = tu_now_ms();
    while (tu_now_ms() < end) {
        char one[256] = "";
        if (notify_wait(nfd, "WATCHDOG=1", one, sizeof(one), 200) == 0) {
            long long t = tu_now_ms();
            if (t - last > gap)
                gap = t - last;
            last = t;
            pings++;
        }
    }
    if (tu_now_ms() - last > gap)
        gap = tu_now_ms() - last;
    CU_ASSERT(file_has(a1->log, "reload: the new cluster settings did not start cleanly"));
    fprintf(stderr, "(%d pings, longest gap %lld ms) ", pings, gap);
    CU_ASSERT(pings >= 10);
    CU_ASSERT(gap < 1000);
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 15000), 0);
out:
    if (nfd >= 0)
        close(nfd);
    world_destroy(&w);
}

/* Issue 11 item 2: 10,000 members join after the agent is up; then TERM
 * exits at once (it took 60 s when every member event built the whole
 * view on the dispatcher, which TERM then waited for). */
static void test_term_with_10000_members(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL;
    char out[512], want[64];
    int hold = -1, st;
    pid_t fl = -1;
    long long t0, took, end;

    TU_CHECK(world_init(&w, "/e2e-term10k") == 0, out);
    path_of(&w, out, sizeof(out), "flood.out");
    memset(&c, 0, sizeof(c));
    c.election = 1;
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "a1", 15000) == 0, out);
    /* USR1 before the agent blocked it would kill it. */
    TU_CHECK(wait_file_has(a1->log, "running for cluster", 30000) == 0, out);
    /* The members join once the agent is up: each is an event for it. */
    TU_CHECK((fl = flood_start(&w, 10000, &hold, out)) > 0, out);
    TU_CHECK(wait_file_has(out, "created 10000", 120000) == 0, out);
    snprintf(want, sizeof(want), "\"members\":%d", 10001);
    end = tu_now_ms() + 60000;
    while (!file_has(a1->log, want) && tu_now_ms() < end) {
        kill(a1->pid, SIGUSR1);
        pause_ms(250);
    }
    TU_CHECK(file_has(a1->log, want), out);
    t0 = tu_now_ms();
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 30000), 0);
    took = tu_now_ms() - t0;
    fprintf(stderr, "(TERM with 10,000 members: %lld ms) ", took);
    /* The requirement: 1 s (a sanitizer build is several times slower). */
    CU_ASSERT(took <= (SANITIZED ? 20000 : 1000));
out:
    if (hold >= 0)
        close(hold);
    if (fl > 0)
        waitpid(fl, &st, 0);
    world_destroy(&w);
}

/* --------------------------------------------------------------- metrics */

/* A free loopback port (bind 0, read it back, close). */
static int metrics_free_port(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* GET /metrics from 127.0.0.1:port: the whole response (new string), or
 * NULL when it does not come within 2 s. */
static char *metrics_get(int port)
{
    static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    struct sockaddr_in a;
    long long end = tu_now_ms() + 2000;
    size_t n = 0, cap = 65536;
    char *b = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1) ||
        !(b = malloc(cap + 1)))
        goto fail;
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        ssize_t k;
        if (tu_now_ms() >= end || poll(&pf, 1, (int)(end - tu_now_ms())) < 0)
            goto fail;
        if (!pf.revents)
            continue;
        if (n == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb)
                goto fail;
            b = nb;
            cap *= 2;
        }
        k = recv(fd, b + n, cap - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            goto fail;
        if (k == 0)
            break;
        n += (size_t)k;
    }
    b[n] = '\0';
    close(fd);
    return b;
fail:
    if (fd >= 0)
        close(fd);
    free(b);
    return NULL;
}

/* The value of the sample written exactly as `series`, or -1 (no answer,
 * no such sample). */
static double metric(int port, const char *series)
{
    char *t = metrics_get(port), *l;
    size_t n = strlen(series);
    double v = -1;

    if (!t || !strstr(t, "HTTP/1.1 200") || !strstr(t, "version=0.0.4")) {
        free(t);
        return -1;
    }
    for (l = t; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, series, n) == 0 && l[n] == ' ') {
            v = strtod(l + n + 1, NULL);
            break;
        }
    free(t);
    return v;
}

/* Wait until `series` is `want` (scraped every 50 ms); 0, or -1 with the
 * last value said. */
static int wait_metric(int port, const char *series, double want, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    double v;

    for (;;) {
        v = metric(port, series);
        if (v == want)
            return 0;
        if (tu_now_ms() >= end)
            break;
        pause_ms(50);
    }
    fprintf(stderr, "\n    %s: %g, wanted %g\n", series, v, want);
    return -1;
}

/* What the agent does shows in its metrics, scraped over HTTP: a lock held,
 * its app started; a hung handler's timeout and kill; an app that dies
 * restarted; the ZooKeeper server stopped past the session timeout
 * (suspended, then lost, locks released, the endpoint answering all along)
 * and started again (a new session generation, the lock held again). */
static void test_metrics(void)
{
    world w;
    acfg c;
    agent_proc *a1 = NULL;
    zkc_group *g = NULL;
    char hang[600], hang_pid[600], *pidtext = NULL;
    app_line lines[16];
    double gen;
    int port, down = 0, pid, n, i, app_pid = 0;

    TU_CHECK(world_init(&w, "/e2e-metrics") == 0, out);
    TU_CHECK((port = metrics_free_port()) > 0, out);
    memset(&c, 0, sizeof(c));
    c.on = "[\"member_joined\", \"lock_acquired\"]";
    /* Long enough for the hanging run to set its TERM trap on a loaded
     * machine (CI once saw it die of the TERM instead: no kill counted). */
    c.handler_timeout = 2000;
    c.election = 1;
    c.lock = "batch";
    c.supervise = 1;
    c.metrics_port = port;
    TU_CHECK((a1 = agent_start(&w, "a1", &c)) != NULL, out);
    TU_CHECK(wait_recs(a1->events, "lock_acquired", NULL, 1, 10000) == 1, out);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_locks_held", 1, 5000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_app_starts_total", 1, 5000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_leader", 1, 5000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_members", 1, 5000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_connection_state{state=\"connected\"}", 1, 5000), 0);
    /* The run is counted when it ended, a little after its record. */
    CU_ASSERT_EQUAL(
        wait_metric(port, "zkcoord_handler_runs_total{event=\"lock_acquired\",outcome=\"success\"}",
                    1, 5000),
        0);
    gen = metric(port, "zkcoord_session_generation");
    CU_ASSERT(gen >= 1);

    /* A hung handler: SIGTERM at its timeout, SIGKILL after the grace. */
    snprintf(hang, sizeof(hang), "%s.hang", a1->events);
    snprintf(hang_pid, sizeof(hang_pid), "%s.hang-pid", a1->events);
    TU_CHECK(write_file(hang, "") == 0, out);
    TU_CHECK(lib_join(&w, &g, "x0") == 0, out);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_members", 2, 5000), 0);
    CU_ASSERT_EQUAL(
        wait_metric(port, "zkcoord_membership_changes_total{change=\"joined\"}", 1, 5000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_handler_timeouts_total", 1, 5000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_handler_kills_total", 1, 8000), 0);
    CU_ASSERT_EQUAL(
        wait_metric(port, "zkcoord_handler_runs_total{event=\"member_joined\",outcome=\"timeout\"}",
                    1, 8000),
        0);
    CU_ASSERT_EQUAL(metric(port, "zkcoord_handler_duration_seconds_count{event=\"member_joined\"}"),
                    1);
    pidtext = slurp(hang_pid);
    pid = pidtext ? atoi(pidtext) : 0;
    if (pid > 0)
        CU_ASSERT_EQUAL(wait_pid_gone(pid, 3000), 0);

    /* The app dies by itself: restarted (restart on-failure). */
    n = load_apps(&w, lines, 16);
    for (i = 0; i < n; i++)
        if (lines[i].start)
            app_pid = lines[i].pid;
    TU_CHECK(app_pid > 0, out);
    TU_CHECK(kill(app_pid, SIGKILL) == 0, out);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_app_restarts_total", 1, 8000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_app_starts_total", 2, 5000), 0);

    /* ZooKeeper away past the session timeout: suspended, then lost; the
     * endpoint answers throughout. */
    TU_CHECK(zkh_stop_server(tu_zk, 0) == 0, out);
    down = 1;
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_connection_state{state=\"suspended\"}", 1, 10000),
                    0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_locks_held", 0, 5000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_leader", 0, 5000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_sessions_lost_total", 1, SESSION_MS + 8000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_connection_state{state=\"lost\"}", 1, 5000), 0);
    TU_CHECK(zkh_start_server(tu_zk, 0) == 0, out);
    down = 0;
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_session_generation", gen + 1, 20000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_connection_state{state=\"connected\"}", 1, 20000),
                    0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_locks_held", 1, 20000), 0);
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_leader", 1, 20000), 0);
    /* The start after the new grant is a new term, not a restart. */
    CU_ASSERT_EQUAL(wait_metric(port, "zkcoord_app_starts_total", 3, 10000), 0);
    CU_ASSERT_EQUAL(metric(port, "zkcoord_app_restarts_total"), 1);
    CU_ASSERT_EQUAL(metric(port, "zkcoord_sessions_lost_total"), 1);
    CU_ASSERT(metric(port, "zkcoord_zookeeper_request_duration_seconds_count") >= 1);

    /* HUP with a new listen address: the endpoint moves, the counts stay. */
    {
        int port2 = metrics_free_port();
        TU_CHECK(port2 > 0 && port2 != port, out);
        c.metrics_port = port2;
        TU_CHECK(write_config(&w, a1, "a1", &c) == 0, out);
        TU_CHECK(kill(a1->pid, SIGHUP) == 0, out);
        CU_ASSERT_EQUAL(wait_metric(port2, "zkcoord_app_restarts_total", 1, 10000), 0);
        CU_ASSERT_EQUAL(metric(port2, "zkcoord_sessions_lost_total"), 1);
        CU_ASSERT_EQUAL(metric(port, "zkcoord_sessions_lost_total"), -1); /* old one closed */
    }
    CU_ASSERT(agent_running(a1));
    CU_ASSERT_EQUAL(agent_stop(a1, SIGTERM, 8000), 0);
out:
    if (down)
        CU_ASSERT_EQUAL(zkh_start_server(tu_zk, 0), 0);
    free(pidtext);
    zkc_group_free(g);
    world_destroy(&w);
}

/* ------------------------------------------------- maintenance (drain) */

/* Run the built zkcoordctl against the harness with `args` (NULL-ended);
 * its stdout into out (may be NULL). The exit code, 128 + signal, or -1. */
static int ctl(world *w, char *out, size_t len, ...)
{
    const char *argv[24], *top = getenv("top_builddir");
    char path[1024], srv[256];
    int n = 0, fd[2], st;
    size_t got = 0;
    pid_t pid;
    va_list ap;

    snprintf(path, sizeof(path), "%s/zkcoordctl", top && *top ? top : ".");
    snprintf(srv, sizeof(srv), "%s", zkh_connect_string(tu_zk));
    argv[n++] = path;
    argv[n++] = "-s";
    argv[n++] = srv;
    argv[n++] = "--root";
    argv[n++] = w->root;
    va_start(ap, len);
    while (n < 23 && (argv[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    if (pipe(fd) != 0)
        return -1;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(fd[1], 1);
        if (!getenv("ZKA_TEST_LOGS"))
            dup2(nul, 2);
        close(fd[0]);
        execv(argv[0], (char *const *)argv);
        _exit(126);
    }
    close(fd[1]);
    for (;;) {
        char buf[4096];
        ssize_t r = read(fd[0], buf, sizeof(buf));
        if (r <= 0)
            break;
        if (out && got + 1 < len) {
            size_t k = (size_t)r < len - 1 - got ? (size_t)r : len - 1 - got;
            memcpy(out + got, buf, k);
            got += k;
        }
    }
    if (out && len)
        out[got] = '\0';
    close(fd[0]);
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ServerSet status of member `id` now ("" when not registered). */
static void member_status(world *w, const char *id, char *out, size_t len)
{
    char path[256];
    zkc_group_view *v = NULL;
    const zkc_member *m;

    out[0] = '\0';
    members_path(w, path, sizeof(path));
    if (zkc_group_read(w->s, path, 0, &v, 5000) != 0)
        return;
    m = zkc_group_view_find(v, id);
    if (m)
        snprintf(out, len, "%s", zkc_member_status(m) ? zkc_member_status(m) : "ALIVE");
    zkc_group_view_free(v);
}

static int wait_status(world *w, const char *id, const char *want, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    char have[64];

    for (;;) {
        member_status(w, id, have, sizeof(have));
        if (strcmp(have, want) == 0)
            return 0;
        if (tu_now_ms() > end) {
            fprintf(stderr, "    status of %s: want %s, have [%s]\n", id, want, have);
            return -1;
        }
        pause_ms(20);
    }
}

/* How many election nodes (latches) of participant `id` there are now; -1
 * on error. */
static int latches_of(world *w, const char *id)
{
    char path[256], **names = NULL;
    int i, n = 0, found = 0, rc;

    snprintf(path, sizeof(path), "%s/c/leader", w->root);
    rc = zkc_get_children(w->s, path, 5000, &names, &n, NULL);
    if (rc == ZKC_ENONODE)
        return 0;
    if (rc)
        return -1;
    for (i = 0; i < n; i++) {
        char node[512], *data = NULL;
        snprintf(node, sizeof(node), "%s/%s", path, names[i]);
        if (zkc_get(w->s, node, 5000, &data, NULL, NULL) == 0 && data && strcmp(data, id) == 0)
            found++;
        free(data);
    }
    zkc_strings_free(names, n);
    return found;
}

static int wait_latches(world *w, const char *id, int want, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    int n;

    while ((n = latches_of(w, id)) != want) {
        if (tu_now_ms() > end) {
            fprintf(stderr, "    latches of %s: want %d, have %d\n", id, want, n);
            return -1;
        }
        pause_ms(20);
    }
    return 0;
}

/* The events of the records of `path`, in order, into ev (max entries). */
static int rec_events(const char *path, char ev[][32], int max)
{
    recs *rs = calloc(1, sizeof(*rs));
    int i, n = 0;

    if (!rs)
        return 0;
    recs_load(rs, path);
    for (i = 0; i < rs->n && n < max; i++)
        snprintf(ev[n++], 32, "%s", rs->r[i].event);
    recs_free(rs);
    free(rs);
    return n;
}

/* Index of the last record of `event` (-1: none). */
static int last_index(char ev[][32], int n, const char *event)
{
    int i;

    for (i = n - 1; i >= 0; i--)
        if (strcmp(ev[i], event) == 0)
            return i;
    return -1;
}

/* The drained / undrained records alternate, starting with drained, and a
 * "drained" never comes while the records say the agent leads (its
 * demotion ran first). The last of them in *last ("" when none). */
static int drain_order_ok(const char *path, char *last, size_t len)
{
    static char ev[512][32];
    int i, n = rec_events(path, ev, 512), leading = 0, drained = 0, ok = 1;

    last[0] = '\0';
    for (i = 0; i < n; i++) {
        if (strcmp(ev[i], "elected") == 0) {
            leading = 1;
        } else if (strcmp(ev[i], "demoted") == 0) {
            leading = 0;
        } else if (strcmp(ev[i], "drained") == 0) {
            ok &= !drained && !leading;
            drained = 1;
            snprintf(last, len, "drained");
        } else if (strcmp(ev[i], "undrained") == 0) {
            ok &= drained;
            drained = 0;
            snprintf(last, len, "undrained");
        }
    }
    if (!ok) {
        char *s = slurp(path);
        fprintf(stderr, "    %s: drain events out of order:\n%s\n", path, s);
        free(s);
    }
    return ok;
}

#define DRAIN_EVENTS "[\"elected\", \"demoted\", \"drained\", \"undrained\", \"lock_acquired\"]"

/* A leader drained by zkcoordctl: demoted first (its app stops, its
 * demoted handler runs), then "drained"; another agent leads; it stays
 * registered as STOPPING (payload and `zkcoordctl status`), stays drained
 * across a restart without ever campaigning, and undrain brings it back
 * (ALIVE, campaigning). The last healthy member is refused without
 * --force, and so is an unknown id. */
static void test_drain_leader(void)
{
    world w;
    acfg c;
    agent_proc *a[3] = {NULL, NULL, NULL};
    const char *ids[3] = {"a1", "a2", "a3"};
    char apps[512], st[64], *out = malloc(65536), last[32];
    static char ev[256][32];
    json_t *doc = NULL, *m;
    size_t k;
    long long t0, t1;
    int i, n, found = 0;

    TU_CHECK(out != NULL, out);
    TU_CHECK(world_init(&w, "/e2e-drain") == 0, out);
    path_of(&w, apps, sizeof(apps), "apps");
    memset(&c, 0, sizeof(c));
    c.election = 1;
    c.supervise = 1;
    c.on = DRAIN_EVENTS;
    for (i = 0; i < 3; i++) {
        c.port = 7001 + i;
        TU_CHECK((a[i] = agent_start(&w, ids[i], &c)) != NULL, out);
        TU_CHECK(wait_members(&w, i == 0 ? "a1" : i == 1 ? "a1,a2" : "a1,a2,a3", 10000) == 0, out);
        if (i == 0)
            TU_CHECK(wait_file_has(apps, "start a1 ", 10000) == 0, out);
    }
    TU_CHECK(wait_latches(&w, "a3", 1, 10000) == 0, out);

    /* Drain the leader. */
    t0 = tu_now_ms();
    CU_ASSERT_EQUAL(ctl(&w, out, 65536, "drain", "c", "a1", "--reason", "kernel 6.1", NULL), 0);
    t1 = tu_now_ms();
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "drained: a1"));
    TU_CHECK(wait_file_has(apps, "start a2 ", 10000) == 0, out);
    fprintf(stderr, "\n    drain command %lld ms; command start -> a2's app running %lld ms\n",
            t1 - t0, tu_now_ms() - t0);
    TU_CHECK(wait_recs(a[0]->events, "drained", NULL, 1, 10000) == 1, out);
    CU_ASSERT(file_has(apps, "stop a1 "));
    n = rec_events(a[0]->events, ev, 256);
    CU_ASSERT(last_index(ev, n, "demoted") >= 0);
    CU_ASSERT(last_index(ev, n, "demoted") < last_index(ev, n, "drained"));
    CU_ASSERT(drain_order_ok(a[0]->events, last, sizeof(last)));
    {
        recs *rs = calloc(1, sizeof(*rs));
        const char *reason = "";
        TU_CHECK(rs != NULL, out);
        recs_load(rs, a[0]->events);
        for (i = 0; i < rs->n; i++)
            if (strcmp(rs->r[i].event, "drained") == 0)
                reason =
                    str_or_empty(json_object_get(json_object_get(rs->r[i].doc, "drain"), "reason"));
        CU_ASSERT_STRING_EQUAL(reason, "kernel 6.1");
        recs_free(rs);
        free(rs);
    }
    TU_CHECK(wait_status(&w, "a1", "STOPPING", 5000) == 0, out);
    CU_ASSERT_EQUAL(latches_of(&w, "a1"), 0);
    member_status(&w, "a2", st, sizeof(st));
    CU_ASSERT_STRING_EQUAL(st, "ALIVE");

    /* What an operator sees: table and JSON. */
    CU_ASSERT_EQUAL(ctl(&w, out, 65536, "status", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "STOPPING"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "drained: kernel 6.1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Leader:  a2"));
    CU_ASSERT_EQUAL(ctl(&w, out, 65536, "--format", "json", "status", "c", NULL), 0);
    doc = json_loads(out, 0, NULL);
    TU_CHECK(doc != NULL, out);
    json_array_foreach(json_object_get(doc, "members"), k, m)
    {
        if (strcmp(str_or_empty(json_object_get(m, "id")), "a1") != 0)
            continue;
        found = 1;
        CU_ASSERT_STRING_EQUAL(str_or_empty(json_object_get(m, "status")), "STOPPING");
        CU_ASSERT_STRING_EQUAL(
            str_or_empty(json_object_get(json_object_get(m, "drained"), "reason")), "kernel 6.1");
    }
    CU_ASSERT(found);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(doc, "drained")), 1);
    json_decref(doc);
    doc = NULL;

    /* Restart the drained agent: still drained, never campaigns. */
    CU_ASSERT_EQUAL(agent_stop(a[0], SIGTERM, 10000), 0);
    TU_CHECK(wait_members(&w, "a2,a3", 5000) == 0, out);
    unlink(a[0]->events); /* the records of the new run only */
    TU_CHECK(agent_spawn(a[0], NULL, NULL) == 0, out);
    TU_CHECK(wait_recs(a[0]->events, "drained", NULL, 1, 10000) == 1, out);
    TU_CHECK(wait_status(&w, "a1", "STOPPING", 5000) == 0, out);
    CU_ASSERT_EQUAL(latches_of(&w, "a1"), 0);
    CU_ASSERT_EQUAL(count_recs(a[0]->events, "elected", NULL), 0);
    CU_ASSERT(file_has(a[0]->log, "is drained"));

    /* Undrain: ALIVE, campaigns again (behind a2 and a3). */
    CU_ASSERT_EQUAL(ctl(&w, out, 65536, "undrain", "c", "a1", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "undrained: a1"));
    TU_CHECK(wait_recs(a[0]->events, "undrained", NULL, 1, 10000) == 1, out);
    TU_CHECK(wait_status(&w, "a1", "ALIVE", 5000) == 0, out);
    TU_CHECK(wait_latches(&w, "a1", 1, 5000) == 0, out);
    CU_ASSERT_EQUAL(ctl(&w, out, 65536, "undrain", "c", "a1", NULL), 0); /* idempotent */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "was not drained"));

    /* The last healthy member: refused (7) unless --force. */
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "drain", "c", "a2", NULL), 0);
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "drain", "c", "a3", NULL), 0);
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "drain", "c", "a1", NULL), 7);
    TU_CHECK(wait_status(&w, "a3", "STOPPING", 5000) == 0, out);
    member_status(&w, "a1", st, sizeof(st));
    CU_ASSERT_STRING_EQUAL(st, "ALIVE");
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "drain", "c", "a1", "--force", NULL), 0);
    TU_CHECK(wait_status(&w, "a1", "STOPPING", 5000) == 0, out);
    /* Nobody may lead now. */
    TU_CHECK(wait_latches(&w, "a1", 0, 5000) == 0, out);
    TU_CHECK(wait_latches(&w, "a2", 0, 5000) == 0, out);
    TU_CHECK(wait_latches(&w, "a3", 0, 5000) == 0, out);
    /* An unknown id: refused unless --force; bad input: usage. */
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "drain", "c", "nosuch", NULL), 7);
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "drain", "c", "nosuch", "--force", NULL), 0);
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "drain", "c", "a/b", NULL), 2);
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "drain", "nocluster", "a1", NULL), 3);
    CU_ASSERT_EQUAL(ctl(&w, out, 65536, "--format", "json", "members", "c", NULL), 0);
    doc = json_loads(out, 0, NULL);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(doc, "drained")), 4);
    json_decref(doc);
    doc = NULL;
    for (i = 0; i < 3; i++)
        CU_ASSERT(drain_order_ok(a[i]->events, last, sizeof(last)));
out:
    json_decref(doc);
    free(out);
    world_destroy(&w);
}

/* A lock holder drained: its `while: lock` app stops, it releases the lock
 * to the other agent; undrained it queues again. The agent-side command
 * (`zkcoord -c FILE --drain/--undrain`) writes the same note; drain while
 * ZooKeeper is unreachable: exit 4, nothing changed. */
static void test_drain_lock(void)
{
    world w;
    acfg c;
    agent_proc *a[2] = {NULL, NULL}, *tool;
    char apps[512], lpath[256], owner[128], out[4096], tlog[512];
    int64_t token, session;

    TU_CHECK(world_init(&w, "/e2e-drainlock") == 0, out);
    path_of(&w, apps, sizeof(apps), "apps");
    snprintf(lpath, sizeof(lpath), "%s/c/locks/batch", w.root);
    memset(&c, 0, sizeof(c));
    c.supervise = 1;
    c.lock = "batch";
    c.on = DRAIN_EVENTS;
    c.port = 7001;
    TU_CHECK((a[0] = agent_start(&w, "b1", &c)) != NULL, out);
    TU_CHECK(wait_lock(&w, lpath, "b1", 1, 10000, owner, sizeof(owner), &token, &session) == 0,
             out);
    c.port = 7002;
    TU_CHECK((a[1] = agent_start(&w, "b2", &c)) != NULL, out);
    TU_CHECK(wait_lock(&w, lpath, "b1", 2, 10000, owner, sizeof(owner), &token, &session) == 0,
             out);
    TU_CHECK(wait_file_has(apps, "start b1 ", 10000) == 0, out);

    /* The agent-side command, with b1's own config. */
    tool = &w.ag[w.n++];
    *tool = *a[0];
    tool->pid = 0;
    path_of(&w, tlog, sizeof(tlog), "tool.log");
    snprintf(tool->log, sizeof(tool->log), "%s", tlog);
    TU_CHECK(agent_spawn(tool, "--drain", "--reason=disk swap") == 0, out);
    CU_ASSERT_EQUAL(agent_stop(tool, 0, 15000), 0);
    CU_ASSERT(file_has(tool->log, "drained: b1"));
    TU_CHECK(wait_lock(&w, lpath, "b2", 1, 10000, owner, sizeof(owner), &token, &session) == 0,
             out);
    CU_ASSERT(file_has(apps, "stop b1 "));
    TU_CHECK(wait_file_has(apps, "start b2 ", 10000) == 0, out);
    TU_CHECK(wait_recs(a[0]->events, "drained", NULL, 1, 10000) == 1, out);
    TU_CHECK(wait_status(&w, "b1", "STOPPING", 5000) == 0, out);
    CU_ASSERT_EQUAL(ctl(&w, out, sizeof(out), "members", "c", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "drained: disk swap"));

    /* b2 is the last healthy member now: the agent side refuses too. */
    *tool = *a[1];
    tool->pid = 0;
    path_of(&w, tlog, sizeof(tlog), "tool2.log");
    snprintf(tool->log, sizeof(tool->log), "%s", tlog);
    TU_CHECK(agent_spawn(tool, "--drain", NULL) == 0, out);
    CU_ASSERT_EQUAL(agent_stop(tool, 0, 15000), 7);
    CU_ASSERT(file_has(tool->log, "last healthy"));

    /* Undrain from the agent side: b1 queues behind b2 again. */
    *tool = *a[0];
    tool->pid = 0;
    path_of(&w, tlog, sizeof(tlog), "tool3.log");
    snprintf(tool->log, sizeof(tool->log), "%s", tlog);
    TU_CHECK(agent_spawn(tool, "--undrain", NULL) == 0, out);
    CU_ASSERT_EQUAL(agent_stop(tool, 0, 15000), 0);
    TU_CHECK(wait_recs(a[0]->events, "undrained", NULL, 1, 10000) == 1, out);
    TU_CHECK(wait_lock(&w, lpath, "b2", 2, 10000, owner, sizeof(owner), &token, &session) == 0,
             out);
    TU_CHECK(wait_status(&w, "b1", "ALIVE", 5000) == 0, out);

    /* ZooKeeper unreachable: a clear error, exit 4. */
    {
        const char *top = getenv("top_builddir");
        char path[1024], cmd[1400];
        int rc;
        snprintf(path, sizeof(path), "%s/zkcoordctl", top && *top ? top : ".");
        snprintf(cmd, sizeof(cmd), "%s -s 127.0.0.1:1 --timeout 500 drain c b2 2>%s/unreach.err",
                 path, w.dir);
        rc = system(cmd);
        CU_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 4);
        snprintf(path, sizeof(path), "%s/unreach.err", w.dir);
        CU_ASSERT(file_has(path, "unreachable"));
    }
out:
    world_destroy(&w);
}

/* Write or delete f1's drain note straight from the test's session: a
 * flip in about one round trip, much faster than a zkcoordctl run. */
static int raw_flip(world *w, int drain)
{
    char path[256];
    zkc_op op;

    snprintf(path, sizeof(path), "%s/c/drain/f1", w->root);
    memset(&op, 0, sizeof(op));
    op.type = drain ? ZKC_OP_CREATE : ZKC_OP_DELETE;
    op.path = path;
    op.data = "{\"reason\":\"flap\"}";
    op.len = drain ? (int)strlen(op.data) : 0;
    op.version = -1;
    return zkc_fenced_multi(w->s, "/", &op, 1, 5000);
}

/* An adversary flaps drain/undrain of the leader many times at seeded
 * random intervals: 40 zkcoordctl commands, then 300 raw flips (0-2 ms
 * apart) while each handler run takes 30 ms, so changes coalesce in the
 * agent's cache and queued handler runs cancel. At the end the agent's
 * state is the last command's, and its handlers saw drained/undrained
 * alternate, never a "drained" while leading. */
static void test_drain_flap(void)
{
    world w;
    acfg c;
    agent_proc *a[2] = {NULL, NULL};
    char last[32] = "", want[32] = "", delay[600];
    unsigned seed = getenv("ZKA_SEED") ? (unsigned)atoi(getenv("ZKA_SEED")) : 13u;
    int i, flips = 40, raw = 300, drained = 0;

    TU_CHECK(world_init(&w, "/e2e-drainflap") == 0, out);
    memset(&c, 0, sizeof(c));
    c.election = 1;
    c.on = "[\"elected\", \"demoted\", \"drained\", \"undrained\", \"member_left\"]";
    c.port = 7001;
    TU_CHECK((a[0] = agent_start(&w, "f1", &c)) != NULL, out);
    TU_CHECK(wait_recs(a[0]->events, "elected", NULL, 1, 10000) == 1, out);
    c.port = 7002;
    TU_CHECK((a[1] = agent_start(&w, "f2", &c)) != NULL, out);
    TU_CHECK(wait_latches(&w, "f2", 1, 10000) == 0, out);
    fprintf(stderr, "\n    flap seed %u (ZKA_SEED)\n", seed);
    for (i = 0; i < flips; i++) {
        unsigned r = (unsigned)rand_r(&seed);
        drained = !drained;
        CU_ASSERT_EQUAL(ctl(&w, NULL, 0, drained ? "drain" : "undrain", "c", "f1", NULL), 0);
        if (r % 3 == 0)
            pause_ms((int)(r % 40)); /* the adversary's timing, not a synchronisation */
    }
    snprintf(delay, sizeof(delay), "%s.delay", a[0]->events);
    TU_CHECK(write_file(delay, "0.03") == 0, out);
    for (i = 0; i < raw; i++) {
        unsigned r = (unsigned)rand_r(&seed);
        drained = !drained;
        CU_ASSERT_EQUAL(raw_flip(&w, drained), 0);
        if (r % 2 == 0)
            pause_ms((int)(r % 3));
    }
    /* One more flip or not, by the seed, so both end states occur. */
    if (rand_r(&seed) % 2) {
        drained = !drained;
        CU_ASSERT_EQUAL(ctl(&w, NULL, 0, drained ? "drain" : "undrain", "c", "f1", NULL), 0);
    }
    snprintf(want, sizeof(want), "%s", drained ? "drained" : "undrained");
    TU_CHECK(wait_status(&w, "f1", drained ? "STOPPING" : "ALIVE", 10000) == 0, out);
    TU_CHECK(wait_latches(&w, "f1", drained ? 0 : 1, 10000) == 0, out);
    /* A marker queued behind every drain event f1 fired: f2 leaves. Its
     * run comes after theirs (one handler runs its events in order). */
    CU_ASSERT_EQUAL(agent_stop(a[1], SIGTERM, 10000), 0);
    TU_CHECK(wait_recs(a[0]->events, "member_left", "f2", 1, 15000) == 1, out);
    CU_ASSERT(drain_order_ok(a[0]->events, last, sizeof(last)));
    CU_ASSERT_STRING_EQUAL(last, want);
    CU_ASSERT(agent_running(a[0]));
    fprintf(stderr, "    %d drained, %d undrained runs for %d flips; ends %s\n",
            count_recs(a[0]->events, "drained", NULL), count_recs(a[0]->events, "undrained", NULL),
            flips + raw, want);
out:
    world_destroy(&w);
}

/* Drain while the agent is cut off from ZooKeeper: the CLI (connected)
 * writes the note; the agent applies it when it is back. */
static void test_drain_disconnected(void)
{
    world w;
    acfg c;
    agent_proc *a[2] = {NULL, NULL};
    tu_proxy *px = NULL;

    TU_CHECK(world_init(&w, "/e2e-draincut") == 0, out);
    TU_CHECK(tu_proxy_start(&px, zkh_connect_string(tu_zk)) == 0, out);
    memset(&c, 0, sizeof(c));
    c.election = 1;
    c.on = "[\"elected\", \"demoted\", \"drained\", \"undrained\", \"suspended\", "
           "\"reconnected\", \"session_lost\"]";
    c.port = 7002;
    TU_CHECK((a[1] = agent_start(&w, "d2", &c)) != NULL, out);
    TU_CHECK(wait_recs(a[1]->events, "elected", NULL, 1, 10000) == 1, out);
    c.servers = tu_proxy_address(px);
    c.port = 7001;
    TU_CHECK((a[0] = agent_start(&w, "d1", &c)) != NULL, out);
    TU_CHECK(wait_members(&w, "d1,d2", 10000) == 0, out);
    TU_CHECK(wait_latches(&w, "d1", 1, 10000) == 0, out);

    tu_proxy_block(px, 1);
    TU_CHECK(wait_recs(a[0]->events, "suspended", NULL, 1, 10000) == 1, out);
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "drain", "c", "d1", "--reason", "while away", NULL), 0);
    CU_ASSERT_EQUAL(count_recs(a[0]->events, "drained", NULL), 0);
    tu_proxy_block(px, 0);
    TU_CHECK(wait_recs(a[0]->events, "drained", NULL, 1, 15000) == 1, out);
    TU_CHECK(wait_status(&w, "d1", "STOPPING", 10000) == 0, out);
    TU_CHECK(wait_latches(&w, "d1", 0, 10000) == 0, out);
    CU_ASSERT_EQUAL(ctl(&w, NULL, 0, "undrain", "c", "d1", NULL), 0);
    TU_CHECK(wait_status(&w, "d1", "ALIVE", 10000) == 0, out);
    TU_CHECK(wait_latches(&w, "d1", 1, 10000) == 0, out);
out:
    world_destroy(&w);
    tu_proxy_stop(px);
}

int register_agent_suite(void);

/* ZKA_TEST_ONLY=substring runs only the tests whose name contains it. */
static int add(CU_pSuite s, const char *name, CU_TestFunc fn)
{
    const char *only = getenv("ZKA_TEST_ONLY");

    if (only && *only && !strstr(name, only))
        return 1;
    return CU_add_test(s, name, fn) != NULL;
}

int register_agent_suite(void)
{
    CU_pSuite s = CU_add_suite("agent", NULL, NULL);

    if (!s)
        return -1;
    if (!add(s, "three agents: one view, handlers once per change", test_three_agents) ||
        !add(s, "SIGKILL of the leader moves leadership", test_leader_failover) ||
        !add(s, "TERM removes the member node at once", test_term_leaves_at_once) ||
        !add(s, "supervised app only on the leader", test_supervise_leader) ||
        !add(s, "health fall deregisters, rise re-registers", test_health_rise_fall) ||
        !add(s, "hung handler killed, storm coalesced", test_handler_timeout_and_storm) ||
        !add(s, "HUP with a broken file keeps running", test_reload) ||
        !add(s, "--check and unreachable exit codes", test_check_and_unreachable) ||
        !add(s, "lock:batch supervises on the holder only", test_lock_supervise) ||
        !add(s, "server restart: suspended, reconnected", test_suspended_reconnected) ||
        !add(s, "unhealthy: never a member, leader or lock holder", test_unhealthy_never_leads) ||
        !add(s, "no process left: demotion, SIGKILL, HUP, TERM", test_no_process_left) ||
        !add(s, "hostile peer bytes: members, log, document", test_hostile_peer_bytes) ||
        !add(s, "3,000 members join: demotion stops the app at once", test_flood_demotion) ||
        !add(s, "a slow reload does not starve the watchdog", test_watchdog_during_reload) ||
        !add(s, "TERM exits within 1 s with 10,000 members", test_term_with_10000_members) ||
        !add(s, "metrics follow locks, handlers, the app and the session", test_metrics) ||
        !add(s, "drain: leader demoted first, STOPPING, restart, undrain", test_drain_leader) ||
        !add(s, "drain: a lock holder releases; agent-side command", test_drain_lock) ||
        !add(s, "drain: drain/undrain flapping, seeded", test_drain_flap) ||
        !add(s, "drain: written while the agent is cut off", test_drain_disconnected))
        return -1;
    return 0;
}
