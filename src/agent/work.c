/* The agent's work section: run submitted tasks with the task handler, and
 * plan the queue while leading. See work.h. */
#include "work.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "proc.h"
#include "supervise.h"
#include "text.h"
#include "zkcoord/read.h"
#include "zkcoord/task.h"
#include "zkcoord/work.h"

/* One item this agent holds (between ASSIGNED and the end of REVOKED). */
struct held_item {
    char *name;
    char *spec; /* as read at ASSIGNED, NUL-terminated, spec_len bytes */
    int spec_len;
    int64_t token;
    zka_supervise *sv; /* its process (supervise.while "item"), or NULL */
};

struct zka_work {
    zkc_session *s;
    char *cluster, *cluster_path, *members_path, *leader_path, *member_id;
    char **args; /* the task handler */
    char **env;  /* tasks.env, n_env of them */
    size_t n_env;
    int timeout_ms;
    zkc_tasks *worker;  /* NULL when no task handler is configured */
    zkc_tasks *planner; /* while we have an election participant */

    /* Work items. */
    bool items_enabled;
    zka_supervise_cfg per_item; /* enabled: one process per held item */
    zka_item_fn fn;
    void *user_data;
    pthread_mutex_t life; /* serialises items_start / items_stop */
    zkc_work *items_h;    /* while taking part */
    pthread_mutex_t mu;   /* held[] */
    struct held_item *held;
    size_t n_held, cap_held;
    bool suspended; /* SUSPENDED heard, no RECONNECTED yet: item processes stay stopped */
};

static char **strv_dup(char *const *v, size_t n)
{
    char **out = calloc(n + 1, sizeof(*out));
    size_t i;

    if (!out)
        return NULL;
    for (i = 0; i < n; i++)
        if (!(out[i] = strdup(v[i]))) {
            zka_proc_free_strv(out);
            return NULL;
        }
    return out;
}

static size_t strv_len(char *const *v)
{
    size_t n = 0;

    while (v && v[n])
        n++;
    return n;
}

/* One run of the handler: its pipes and where it stands. */
struct task_run {
    zka_child child;
    int in_fd, out_fd;
    const char *in;
    size_t in_len, in_off;
    char *out;
    size_t out_len;     /* kept: at most ZKC_TASK_OUTPUT_MAX + 1 */
    size_t out_dropped; /* read past that and thrown away */
};

static void feed_input(struct task_run *r)
{
    while (r->in_fd >= 0 && r->in_off < r->in_len) {
        ssize_t n = write(r->in_fd, r->in + r->in_off, r->in_len - r->in_off);
        if (n > 0) {
            r->in_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        break; /* EPIPE: the handler does not read its stdin, which is its right */
    }
    if (r->in_fd >= 0) {
        close(r->in_fd); /* all written: EOF for the handler */
        r->in_fd = -1;
    }
}

/* Read what the handler wrote; 1 at end of file. The result keeps one
 * byte more than the library's cap, so that the library marks it cut. */
static int read_output(struct task_run *r)
{
    char buf[8192];

    for (;;) {
        ssize_t n = read(r->out_fd, buf, sizeof(buf));
        size_t keep;
        if (n == 0)
            return 1;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 0 : 1;
        keep = ZKC_TASK_OUTPUT_MAX + 1 - r->out_len;
        if (keep > (size_t)n)
            keep = (size_t)n;
        memcpy(r->out + r->out_len, buf, keep);
        r->out_len += keep;
        r->out_dropped += (size_t)n - keep;
    }
}

/* SIGPIPE from a handler that closed its stdin must become EPIPE on this
 * thread (the library's, one per task), never kill the agent; other
 * signals belong to the agent's main thread. */
static void block_signals(void)
{
    sigset_t all;

    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* "NAME=value", new, or NULL. */
static char *env_str(const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 2;
    char *e = malloc(len);

    if (e)
        snprintf(e, len, "%s=%s", name, value);
    return e;
}

/* The run callback: the handler with the payload on stdin, until it and
 * everything it started are gone, or its timeout. */
static int run_task(zkc_tasks *t, const zkc_task *task, char **output, size_t *output_len,
                    void *user_data)
{
    zka_work *w = user_data;
    struct task_run r;
    zka_spawn_opts so;
    char **extra = NULL, tok[32], why[64], *path = NULL, **envp = NULL;
    size_t k = 0, i;
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, status = ZKA_WORK_STATUS_NOEXEC;
    int wstatus = 0, exec_errno = 0, timed_out = 0, eof = 0, done = 0;
    long long start = zka_now_ms(), deadline = start + w->timeout_ms, kill_at = -1;

    (void)t;
    block_signals();
    memset(&r, 0, sizeof(r));
    r.in_fd = r.out_fd = -1;
    r.in = task->payload;
    r.in_len = task->len;
    snprintf(tok, sizeof(tok), "%" PRId64, task->token);
    if (!(extra = calloc(w->n_env + 5, sizeof(*extra))))
        goto fail;
    for (i = 0; i < w->n_env; i++)
        if (!(extra[k++] = strdup(w->env[i])))
            goto fail;
    if (!(extra[k++] = env_str("ZKCOORD_CLUSTER", w->cluster)) ||
        !(extra[k++] = env_str("ZKCOORD_MEMBER_ID", w->member_id)) ||
        !(extra[k++] = env_str("ZKCOORD_TASK_ID", task->id)) ||
        !(extra[k++] = env_str("ZKCOORD_FENCING_TOKEN", tok)))
        goto fail;
    if (!(r.out = malloc(ZKC_TASK_OUTPUT_MAX + 1)) || !(envp = zka_proc_env(extra, k)))
        goto fail;
    if (!(path = zka_proc_resolve(w->args[0]))) {
        zka_log(ZKC_LOG_ERROR, "task %s: cannot run %s: %s", task->id, w->args[0], strerror(errno));
        goto fail;
    }
    if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0) {
        zka_log(ZKC_LOG_ERROR, "task %s: pipe: %s", task->id, strerror(errno));
        goto fail;
    }
    zka_spawn_opts_init(&so);
    so.in_fd = in_p[0];
    so.out_fd = out_p[1];
    so.err_fd = STDERR_FILENO;
    if (zka_child_spawn(&r.child, path, w->args, envp, &so) != 0) {
        zka_log(ZKC_LOG_ERROR, "task %s: fork: %s", task->id, strerror(errno));
        goto fail;
    }
    close(in_p[0]);
    close(out_p[1]);
    in_p[0] = out_p[1] = -1;
    r.in_fd = in_p[1];
    r.out_fd = out_p[0];
    in_p[1] = out_p[0] = -1;
    fcntl(r.in_fd, F_SETFL, O_NONBLOCK);
    fcntl(r.out_fd, F_SETFL, O_NONBLOCK);
    zka_log(ZKC_LOG_INFO, "task %s (token %s): started pid %d", task->id, tok,
            (int)r.child.app_pid);
    feed_input(&r);
    /* Until the guard reported (nothing of the tree is left) and the
     * output reached its end. */
    while (!done || !eof) {
        struct pollfd pfd[3];
        long long now = zka_now_ms(), next = done ? -1 : timed_out ? kill_at : deadline;
        int n = 0, timeout, i_out = -1, i_in = -1;

        if (!eof) {
            pfd[n].fd = r.out_fd;
            pfd[n].events = POLLIN;
            i_out = n++;
        }
        if (r.in_fd >= 0) {
            pfd[n].fd = r.in_fd;
            pfd[n].events = POLLOUT;
            i_in = n++;
        }
        if (!done && r.child.pidfd >= 0) {
            pfd[n].fd = r.child.pidfd;
            pfd[n].events = POLLIN;
            n++;
        }
        timeout = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
        if (!done && r.child.pidfd < 0 && (timeout < 0 || timeout > 20))
            timeout = 20; /* no pidfd: look for the guard's exit every 20 ms */
        (void)poll(pfd, (nfds_t)n, timeout);
        if (i_out >= 0 && pfd[i_out].revents)
            eof = read_output(&r);
        if (i_in >= 0 && pfd[i_in].revents)
            feed_input(&r);
        if (!done)
            done = zka_child_done(&r.child, false, &wstatus, &exec_errno);
        if (done && !eof)
            eof = read_output(&r); /* the tree is gone: what is left is in the pipe */
        now = zka_now_ms();
        if (!done && !timed_out && now >= deadline) {
            zka_log(ZKC_LOG_WARN, "task %s: still running after %d ms: stopping it", task->id,
                    w->timeout_ms);
            zka_child_stop(&r.child); /* TERM to the tree, KILL after the grace */
            timed_out = 1;
            kill_at = now + 5000;
        } else if (!done && timed_out && kill_at >= 0 && now >= kill_at) {
            zka_child_kill(&r.child); /* the guard itself is stuck: the tree now */
            kill_at = -1;
        }
    }
    zka_child_close(&r.child);
    if (timed_out)
        status = ZKA_WORK_STATUS_TIMEOUT;
    else if (exec_errno)
        status = ZKA_WORK_STATUS_NOEXEC;
    else if (WIFEXITED(wstatus))
        status = WEXITSTATUS(wstatus);
    else if (WIFSIGNALED(wstatus))
        status = 128 + WTERMSIG(wstatus);
    else
        status = 1;
    if (exec_errno)
        zka_log(ZKC_LOG_ERROR, "task %s: cannot run %s: %s", task->id, path, strerror(exec_errno));
    zka_proc_status_str(wstatus, why, sizeof(why));
    zka_log(status ? ZKC_LOG_WARN : ZKC_LOG_INFO,
            "task %s: %s after %lld ms: status %d, %zu bytes of output%s", task->id,
            timed_out ? "timed out" : why, zka_now_ms() - start, status, r.out_len + r.out_dropped,
            r.out_dropped ? " (cut)" : "");
    *output = r.out;
    *output_len = r.out_len;
    r.out = NULL;
fail:
    if (r.in_fd >= 0)
        close(r.in_fd);
    if (r.out_fd >= 0)
        close(r.out_fd);
    for (i = 0; i < 2; i++) {
        if (in_p[i] >= 0)
            close(in_p[i]);
        if (out_p[i] >= 0)
            close(out_p[i]);
    }
    free(r.out);
    free(path);
    zka_proc_free_strv(envp);
    for (i = 0; extra && i < k; i++)
        free(extra[i]);
    free(extra);
    return status;
}

/* ------------------------------------------------------------ items */

/* Index of `item` in held[], or where it goes (*found 0). mu held. */
static size_t held_find(zka_work *w, const char *item, int *found)
{
    size_t lo = 0, hi = w->n_held;

    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w->held[mid].name, item);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The item's process environment: the spec goes in only when it is safe
 * there (no NUL byte, within the library's cap; execve takes one string
 * of up to 128 KiB); else it is left out, and said. */
static int item_env(zka_work *w, const struct held_item *h, char *env[5])
{
    char pb[ZKA_PEER_BUF];
    bool spec_ok =
        h->spec_len <= ZKC_WORK_MAX_SPEC && (!h->spec || strlen(h->spec) == (size_t)h->spec_len);

    memset(env, 0, 5 * sizeof(*env));
    if (!spec_ok)
        zka_log(ZKC_LOG_WARN,
                "item %s: its spec (%d bytes) holds a NUL byte or is over %d bytes: not passed "
                "in ZKCOORD_ITEM_SPEC",
                zka_peer(pb, h->name), h->spec_len, ZKC_WORK_MAX_SPEC);
    if (!(env[0] = env_str("ZKCOORD_CLUSTER", w->cluster)) ||
        !(env[1] = env_str("ZKCOORD_MEMBER_ID", w->member_id)) ||
        !(env[2] = env_str("ZKCOORD_ITEM", h->name)) ||
        !(env[3] = env_str("ZKCOORD_ITEM_SPEC", spec_ok && h->spec ? h->spec : "")))
        return ZKC_ENOMEM;
    return 0;
}

/* Count the change and tell the agent, with a copy of the held set (the
 * other dispatcher lane may change held[] meanwhile). */
static void report(zka_work *w, bool assigned, const char *item, const char *spec, int spec_len,
                   int64_t token, const char *reason)
{
    zka_item_change c;
    char **names;
    size_t i, n;

    pthread_mutex_lock(&w->mu);
    n = w->n_held;
    zka_metrics_work_items((int)n, assigned);
    names = w->fn ? calloc(n + 1, sizeof(*names)) : NULL;
    for (i = 0; names && i < n; i++)
        if (!(names[i] = strdup(w->held[i].name))) {
            zka_proc_free_strv(names);
            names = NULL;
        }
    pthread_mutex_unlock(&w->mu);
    if (!names) {
        if (w->fn)
            zka_log(ZKC_LOG_ERROR, "item change not reported: out of memory");
        return;
    }
    memset(&c, 0, sizeof(c));
    c.assigned = assigned;
    c.item = item;
    c.spec = spec;
    c.spec_len = spec_len;
    c.token = token;
    c.reason = reason;
    c.held = names;
    c.n_held = n;
    w->fn(&c, w->user_data);
    zka_proc_free_strv(names);
}

static void on_item_exit(pid_t pid, int status, bool stopped, void *user_data)
{
    char buf[64];

    (void)user_data;
    zka_proc_status_str(status, buf, sizeof(buf));
    zka_log(stopped ? ZKC_LOG_INFO : ZKC_LOG_WARN, "item process (pid %ld) %s: %s", (long)pid,
            stopped ? "stopped" : "exited", buf);
}

static void item_assigned(zka_work *w, const zkc_work_event *ev)
{
    struct held_item h;
    char pb[ZKA_PEER_BUF], tok[32], *env[5];
    int found, rc;
    size_t at, i;

    memset(&h, 0, sizeof(h));
    h.token = ev->token;
    h.spec_len = ev->spec ? ev->spec_len : 0;
    if (!(h.name = strdup(ev->item)) || !(h.spec = malloc((size_t)h.spec_len + 1))) {
        zka_log(ZKC_LOG_ERROR, "item %s: out of memory", zka_peer(pb, ev->item));
        free(h.name);
        return;
    }
    if (h.spec_len)
        memcpy(h.spec, ev->spec, (size_t)h.spec_len);
    h.spec[h.spec_len] = '\0';
    snprintf(tok, sizeof(tok), "%" PRId64, ev->token);
    zka_log(ZKC_LOG_INFO, "item %s assigned (fencing token %s)", zka_peer(pb, ev->item), tok);
    if (w->per_item.enabled) {
        if ((rc = item_env(w, &h, env)) == 0)
            rc = zka_supervise_new(&h.sv, &w->per_item, env, on_item_exit, NULL);
        for (i = 0; i < 5; i++)
            free(env[i]);
        if (rc)
            zka_log(ZKC_LOG_ERROR, "item %s: cannot supervise its process: %s",
                    zka_peer(pb, ev->item), zkc_strerror(rc));
    }
    pthread_mutex_lock(&w->mu);
    /* Under mu: a SUSPENDED on the other lane either sees this item in
     * held[] and stops it, or comes before and this one waits for
     * RECONNECTED. */
    if (h.sv && !w->suspended)
        zka_supervise_want(h.sv, true, tok);
    at = held_find(w, h.name, &found);
    if (found) {
        /* Never: ASSIGNED twice without REVOKED. Keep the one held. */
        zka_log(ZKC_LOG_ERROR, "item %s assigned twice", zka_peer(pb, ev->item));
        pthread_mutex_unlock(&w->mu);
        zka_supervise_free(h.sv);
        free(h.name);
        free(h.spec);
        return;
    }
    if (w->n_held == w->cap_held) {
        size_t cap = w->cap_held ? w->cap_held * 2 : 16;
        struct held_item *v = realloc(w->held, cap * sizeof(*v));
        if (!v) {
            pthread_mutex_unlock(&w->mu);
            zka_log(ZKC_LOG_ERROR, "item %s: out of memory", zka_peer(pb, ev->item));
            zka_supervise_free(h.sv);
            free(h.name);
            free(h.spec);
            return;
        }
        w->held = v;
        w->cap_held = cap;
    }
    memmove(&w->held[at + 1], &w->held[at], (w->n_held - at) * sizeof(*w->held));
    w->held[at] = h;
    w->n_held++;
    pthread_mutex_unlock(&w->mu);
    report(w, true, ev->item, h.spec, h.spec_len, ev->token, NULL);
}

/* Before this returns, the item's process and everything it started are
 * gone: only then does the library delete the claim. */
static void item_revoked(zka_work *w, const zkc_work_event *ev)
{
    struct held_item h;
    char pb[ZKA_PEER_BUF];
    int found;
    size_t at;
    long long t0 = zka_now_ms();

    pthread_mutex_lock(&w->mu);
    at = held_find(w, ev->item, &found);
    if (!found) {
        pthread_mutex_unlock(&w->mu);
        zka_log(ZKC_LOG_ERROR, "item %s revoked but not held", zka_peer(pb, ev->item));
        return;
    }
    h = w->held[at];
    pthread_mutex_unlock(&w->mu);
    if (h.sv) {
        if (zka_supervise_stop_sync(h.sv, w->per_item.stop_grace_ms + 2000) != 0)
            zka_log(ZKC_LOG_ERROR, "item %s: its process did not stop in time",
                    zka_peer(pb, h.name));
        zka_supervise_free(h.sv); /* waits for what is left, if anything */
        zka_log(ZKC_LOG_INFO, "item %s: process stopped %lld ms after REVOKED",
                zka_peer(pb, h.name), zka_now_ms() - t0);
    }
    pthread_mutex_lock(&w->mu);
    at = held_find(w, ev->item, &found);
    if (found) {
        w->n_held--;
        memmove(&w->held[at], &w->held[at + 1], (w->n_held - at) * sizeof(*w->held));
    }
    pthread_mutex_unlock(&w->mu);
    zka_log(ZKC_LOG_INFO, "item %s revoked (%s, fencing token %" PRId64 ")", zka_peer(pb, h.name),
            zkc_work_revoke_reason_name(ev->reason), ev->token);
    report(w, false, h.name, h.spec, h.spec_len, ev->token,
           zkc_work_revoke_reason_name(ev->reason));
    free(h.name);
    free(h.spec);
}

/* SUSPENDED: the member can no longer be sure it holds any claim (the
 * server may expire the session, and another member take the items,
 * before the local timer says LOST), so every item's process stops now,
 * as a lock's app does; the items stay held. RECONNECTED (every claim
 * verified ours): they start again under the same tokens. Both on the
 * safety lane, as REVOKED, so no held entry goes away meanwhile. */
static void items_suspend(zka_work *w, bool suspend)
{
    zka_supervise **sv;
    char(*tok)[32];
    size_t i, n = 0;
    long long t0 = zka_now_ms();

    pthread_mutex_lock(&w->mu);
    w->suspended = suspend;
    sv = calloc(w->n_held + 1, sizeof(*sv));
    tok = calloc(w->n_held + 1, sizeof(*tok));
    for (i = 0; sv && tok && i < w->n_held; i++) {
        if (!w->held[i].sv)
            continue;
        sv[n] = w->held[i].sv;
        snprintf(tok[n], sizeof(tok[n]), "%" PRId64, w->held[i].token);
        n++;
        if (suspend)
            zka_supervise_want(w->held[i].sv, false, NULL); /* TERM to all at once */
        else
            zka_supervise_want(w->held[i].sv, true, tok[n - 1]);
    }
    pthread_mutex_unlock(&w->mu);
    if (!sv || !tok) {
        zka_log(ZKC_LOG_ERROR, "work items: out of memory");
    } else if (suspend) {
        for (i = 0; i < n; i++)
            if (zka_supervise_stop_sync(sv[i], w->per_item.stop_grace_ms + 2000) != 0)
                zka_log(ZKC_LOG_ERROR, "an item's process did not stop in time");
        if (n)
            zka_log(ZKC_LOG_WARN, "work items: %zu item processes stopped %lld ms after SUSPENDED",
                    n, zka_now_ms() - t0);
    } else if (n) {
        zka_log(ZKC_LOG_INFO, "work items: %zu item processes started again", n);
    }
    free(sv);
    free(tok);
}

static void on_item_event(zkc_work *wh, const zkc_work_event *ev, void *user_data)
{
    zka_work *w = user_data;

    (void)wh;
    switch (ev->type) {
    case ZKC_WORK_ASSIGNED:
        item_assigned(w, ev);
        break;
    case ZKC_WORK_REVOKED:
        item_revoked(w, ev);
        break;
    case ZKC_WORK_SUSPENDED:
        zka_log(ZKC_LOG_WARN, "work items: connection suspended: stopping the item processes");
        items_suspend(w, true);
        break;
    case ZKC_WORK_RECONNECTED:
        zka_log(ZKC_LOG_INFO, "work items: connection back, every claim verified ours");
        items_suspend(w, false);
        break;
    case ZKC_WORK_LOST:
        /* Every item was REVOKED just before. */
        pthread_mutex_lock(&w->mu);
        w->suspended = false;
        pthread_mutex_unlock(&w->mu);
        zka_log(ZKC_LOG_WARN, "work items: session lost, every item revoked; claiming again");
        break;
    }
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The configured items that are missing are added; one already there is
 * left as it is (its spec may have been changed by hand). One getChildren
 * first, so a restart with every item there costs one request, not one
 * per item. */
static void ensure_items(zka_work *w, const zka_work_cfg *cfg, int timeout_ms)
{
    size_t i, added = 0;
    char pb[ZKA_PEER_BUF], *folder = NULL, **have = NULL;
    int n_have = 0;

    if (asprintf(&folder, "%s/work/items", w->cluster_path) < 0)
        folder = NULL;
    if (!folder || zkc_get_children(w->s, folder, timeout_ms, &have, &n_have, NULL) != 0) {
        have = NULL; /* unknown (or no folder yet): try every item */
        n_have = 0;
    }
    free(folder);
    if (have)
        qsort(have, (size_t)n_have, sizeof(*have), cmp_str);
    for (i = 0; i < cfg->n_items; i++) {
        const char *spec = cfg->item_specs[i];
        int rc;
        if (have && bsearch(&cfg->items[i], have, (size_t)n_have, sizeof(*have), cmp_str))
            continue;
        rc = zkc_work_item_add(w->s, w->cluster_path, cfg->items[i], spec,
                               spec ? (int)strlen(spec) : 0, timeout_ms);
        if (rc == 0)
            added++;
        else if (rc != ZKC_ENODEEXISTS)
            zka_log(ZKC_LOG_ERROR, "cannot add work item %s: %s", zka_peer(pb, cfg->items[i]),
                    zkc_strerror(rc));
    }
    zkc_strings_free(have, n_have);
    zka_log(ZKC_LOG_INFO, "work items: %zu configured, %zu added to %s/work/items", cfg->n_items,
            added, w->cluster_path);
}

int zka_work_items_start(zka_work *w, zkc_election *el)
{
    zkc_work_opts o;
    int rc = 0;

    if (!w || !w->items_enabled)
        return 0;
    pthread_mutex_lock(&w->life);
    if (!w->items_h) {
        zkc_work_opts_init(&o);
        o.member_id = w->member_id;
        o.election = el;
        o.on_event = on_item_event;
        o.user_data = w;
        rc = zkc_work_new(&w->items_h, w->s, w->cluster_path, &o);
        if (rc)
            zka_log(ZKC_LOG_ERROR, "cannot take part in the work items of %s: %s", w->cluster_path,
                    zkc_strerror(rc));
        else
            zka_log(ZKC_LOG_INFO, "taking part in the work items of %s as %s%s", w->cluster_path,
                    w->member_id, el ? "" : " (never planning: no election)");
    }
    pthread_mutex_unlock(&w->life);
    return rc;
}

void zka_work_items_stop(zka_work *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->life);
    if (w->items_h) {
        zka_log(ZKC_LOG_INFO, "leaving the work items of %s", w->cluster_path);
        zkc_work_free(w->items_h); /* REVOKED (closed) for each: processes stop first */
        w->items_h = NULL;
    }
    pthread_mutex_unlock(&w->life);
}

int zka_work_items_held(zka_work *w)
{
    int n;

    if (!w)
        return 0;
    pthread_mutex_lock(&w->mu);
    n = (int)w->n_held;
    pthread_mutex_unlock(&w->mu);
    return n;
}

int zka_work_new(zka_work **out, zkc_session *s, const zka_work_cfg *cfg, const char *cluster,
                 const char *cluster_path, const char *members_path, const char *leader_path,
                 const char *member_id, const zka_supervise_cfg *per_item, int timeout_ms,
                 zka_item_fn fn, void *user_data)
{
    zka_work *w = calloc(1, sizeof(*w));
    zkc_tasks_opts to;
    int rc;

    if (!w)
        return ZKC_ENOMEM;
    pthread_mutex_init(&w->life, NULL);
    pthread_mutex_init(&w->mu, NULL);
    w->items_enabled = cfg->items_enabled;
    w->fn = fn;
    w->user_data = user_data;
    if (per_item && per_item->enabled) {
        /* Borrowed strings: the supervisor copies what it keeps, and the
         * config outlives this handle (reload stops the work first). */
        w->per_item = *per_item;
    }
    w->s = s;
    w->timeout_ms = cfg->task_timeout_ms;
    w->n_env = cfg->n_task_env;
    if (!(w->cluster = strdup(cluster)) || !(w->cluster_path = strdup(cluster_path)) ||
        !(w->members_path = strdup(members_path)) || !(w->leader_path = strdup(leader_path)) ||
        !(w->member_id = strdup(member_id)) ||
        (cfg->tasks && !(w->args = strv_dup(cfg->task_args, strv_len(cfg->task_args)))) ||
        !(w->env = strv_dup(cfg->task_env, cfg->n_task_env))) {
        zka_work_free(w);
        return ZKC_ENOMEM;
    }
    if (cfg->tasks) {
        zkc_tasks_opts_init(&to);
        to.member_id = w->member_id;
        to.run = run_task;
        to.user_data = w;
        to.members_path = w->members_path;
        to.election_path = w->leader_path;
        rc = zkc_tasks_new(&w->worker, s, w->cluster_path, &to);
        if (rc) {
            zka_log(ZKC_LOG_ERROR, "cannot start the task worker in %s: %s", w->cluster_path,
                    zkc_strerror(rc));
            zka_work_free(w);
            return rc;
        }
        zka_log(ZKC_LOG_INFO, "running tasks of %s/work/tasks with %s (capacity %d, timeout %d ms)",
                w->cluster_path, w->args[0], cfg->capacity, w->timeout_ms);
    }
    if (w->items_enabled)
        ensure_items(w, cfg, timeout_ms);
    *out = w;
    return 0;
}

int zka_work_plan(zka_work *w, zkc_election *el)
{
    zkc_tasks_opts to;
    int rc;

    if (!w)
        return 0;
    if (!el) {
        zkc_tasks_free(w->planner);
        w->planner = NULL;
        return 0;
    }
    if (w->planner)
        return 0;
    zkc_tasks_opts_init(&to);
    to.election = el;
    to.election_path = w->leader_path;
    to.members_path = w->members_path;
    rc = zkc_tasks_new(&w->planner, w->s, w->cluster_path, &to);
    if (rc)
        zka_log(ZKC_LOG_ERROR, "cannot plan the task queue of %s: %s", w->cluster_path,
                zkc_strerror(rc));
    return rc;
}

int zka_work_running(zka_work *w)
{
    zkc_tasks_stats st;

    if (!w || !w->worker || zkc_tasks_stats_get(w->worker, &st) != 0)
        return 0;
    return st.running;
}

void zka_work_free(zka_work *w)
{
    if (!w)
        return;
    zka_work_items_stop(w);
    zkc_tasks_free(w->planner);
    zkc_tasks_free(w->worker); /* waits for the running tasks and their results */
    free(w->cluster);
    free(w->cluster_path);
    free(w->members_path);
    free(w->leader_path);
    free(w->member_id);
    zka_proc_free_strv(w->args);
    zka_proc_free_strv(w->env);
    free(w->held);
    pthread_mutex_destroy(&w->life);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
