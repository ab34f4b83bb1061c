/* Helpers shared by the lock recipes: see lockq.h. */
#include "lockq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long wakeups;

unsigned long zkc__lock_watch_wakeups(void)
{
    return __atomic_load_n(&wakeups, __ATOMIC_SEQ_CST);
}

void zkc__lock_count_wakeup(void)
{
    __atomic_add_fetch(&wakeups, 1, __ATOMIC_SEQ_CST);
}

void zkc__default_owner(char *buf, size_t len)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, len, "%s:%ld", host, (long)getpid());
}

/* -------------------------------------------------- background delete */

/* A release whose delete meets connection loss must not give up: the node
 * would stay and block the queue until the session expires, or forever if
 * the session survives (CURATOR-678, Curator's "guaranteed" delete). The
 * retry is bound to the node's session generation: once that session is
 * gone, so is the ephemeral node. */
struct bgdel {
    zkc_session *s;
    char *path;
    unsigned gen;
    zkc__call *first;
};

static void bg_send(struct bgdel *d);

static void bg_finish(struct bgdel *d)
{
    if (d->first) {
        zkc__call_complete(d->first, ZOK);
        zkc__call_unref(d->first);
    }
    free(d->path);
    free(d);
}

/* The caller of release may go on; the retry continues on its own. */
static void bg_first_done(struct bgdel *d)
{
    if (d->first) {
        zkc__call_complete(d->first, ZOK);
        zkc__call_unref(d->first);
        d->first = NULL;
    }
}

static void bg_retry(void *arg, zkc_conn_state st, unsigned gen)
{
    struct bgdel *d = arg;

    if (st == ZKC_CONN_NONE || st == ZKC_CONN_LOST || gen != d->gen) {
        bg_finish(d); /* session gone (or closing): the node went with it */
        return;
    }
    bg_send(d);
}

static void bg_later(struct bgdel *d)
{
    bg_first_done(d);
    if (zkc__when_connected(d->s, bg_retry, d) != 0)
        bg_finish(d);
}

static void bg_deleted(int rc, const void *data)
{
    struct bgdel *d = (struct bgdel *)data;

    if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) {
        zkc__log(d->s, ZKC_LOG_INFO, "delete of %s: connection lost, retrying after reconnect",
                 d->path);
        bg_later(d);
        return;
    }
    if (rc != ZOK && rc != ZNONODE && rc != ZCLOSING && rc != ZSESSIONEXPIRED)
        zkc__log(d->s, ZKC_LOG_WARN, "cannot delete %s: %s", d->path, zerror(rc));
    bg_finish(d);
}

static void bg_send(struct bgdel *d)
{
    zkc_session *s = d->s; /* the reply may free d before we unlock */
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(s, &gen);
    int rc;

    if (!zh) {
        bg_later(d);
        return;
    }
    if (gen != d->gen) {
        zkc__zh_unlock(s);
        bg_finish(d);
        return;
    }
    rc = zoo_adelete(zh, d->path, -1, bg_deleted, d);
    zkc__zh_unlock(s);
    if (rc == ZINVALIDSTATE || rc == ZCONNECTIONLOSS)
        bg_later(d);
    else if (rc != ZOK)
        bg_finish(d);
}

void zkc__bg_delete(zkc_session *s, const char *path, unsigned gen, zkc__call *first)
{
    struct bgdel *d = calloc(1, sizeof(*d));

    if (!d || !(d->path = strdup(path))) {
        free(d);
        zkc__log(s, ZKC_LOG_ERROR, "out of memory deleting %s", path);
        if (first) {
            zkc__call_complete(first, ZOK);
            zkc__call_unref(first);
        }
        return;
    }
    d->s = s;
    d->gen = gen;
    d->first = first;
    bg_send(d);
}
