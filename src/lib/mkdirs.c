/* mkdir -p for the persistent parents every recipe creates under. Other
 * processes may be creating the same parents at the same moment: NODEEXISTS
 * is success, and NONODE walks one level up and back down. */
#include "internal.h"
#include "naming.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct mkdirs {
    zkc__pending pend; /* the create in flight */
    zkc_session *s;
    char *path;
    size_t len; /* of the full path */
    size_t cur; /* length of the prefix being created */
    zkc__done_fn done;
    void *arg;
};

static void step(struct mkdirs *m);

static void finish(struct mkdirs *m, int rc)
{
    m->done(m->arg, rc);
    free(m->path);
    free(m);
}

static void created(int zrc, const char *value, const void *data)
{
    struct mkdirs *m = (struct mkdirs *)data;

    (void)value;
    zkc__pending_done(m->s, &m->pend);
    if (zrc == ZCLOSING) {
        /* Its handle was closed: a connection loss to the caller, who waits
         * for the next connection (or learns the session is closing). */
        finish(m, ZKC_ECONNLOSS);
        return;
    }
    if (zrc == ZOK || zrc == ZNODEEXISTS) {
        if (m->cur == m->len) {
            finish(m, 0);
            return;
        }
        m->cur = (size_t)(strchrnul(m->path + m->cur + 1, '/') - m->path);
        step(m);
    } else if (zrc == ZNONODE) {
        char saved = m->path[m->cur];
        char *slash;
        m->path[m->cur] = '\0';
        slash = strrchr(m->path, '/');
        m->path[m->cur] = saved;
        if (!slash || slash == m->path) {
            finish(m, ZKC_ENONODE); /* "/" itself missing: a chroot vanished */
            return;
        }
        m->cur = (size_t)(slash - m->path);
        step(m);
    } else {
        finish(m, zkc__err_from_zk(zrc));
    }
}

/* The handle closed without running our completion (see zkc__pending). */
static void dropped(zkc__pending *pd)
{
    struct mkdirs *m = (struct mkdirs *)((char *)pd - offsetof(struct mkdirs, pend));

    finish(m, ZKC_ECONNLOSS);
}

static void step(struct mkdirs *m)
{
    zkc_session *s = m->s;
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(s, &gen);
    char *prefix;
    int zrc;

    if (!zh) {
        finish(m, ZKC_ECONNLOSS);
        return;
    }
    /* The reply may run (and free m) before zoo_acreate returns: send a
     * copy of the prefix and touch nothing of m afterwards. */
    prefix = strndup(m->path, m->cur);
    if (!prefix) {
        zkc__zh_unlock(s);
        finish(m, ZKC_ENOMEM);
        return;
    }
    zkc__pending_add(s, &m->pend, gen, dropped);
    zrc = zoo_acreate(zh, prefix, "", 0, zkc__acl(s), 0, created, m);
    free(prefix);
    zkc__zh_unlock(s);
    if (zrc != ZOK) {
        zkc__pending_done(s, &m->pend);
        finish(m, zkc__err_from_zk(zrc));
    }
}

void zkc__mkdirs(zkc_session *s, const char *path, zkc__done_fn done, void *arg)
{
    struct mkdirs *m;

    if (zkc__path_check(path) != 0) {
        done(arg, ZKC_EINVAL);
        return;
    }
    if (strcmp(path, "/") == 0) {
        done(arg, 0);
        return;
    }
    m = calloc(1, sizeof(*m));
    if (!m || !(m->path = strdup(path))) {
        free(m);
        done(arg, ZKC_ENOMEM);
        return;
    }
    m->s = s;
    m->len = m->cur = strlen(path);
    m->done = done;
    m->arg = arg;
    /* Optimistic: the whole path usually exists or only the leaf is new. */
    step(m);
}

/* The blocking form is the library's one sync-call helper (call.c); its
 * rc carries the ZKC_* code of zkc__mkdirs() rather than a ZooKeeper one. */
static void call_done(void *arg, int rc)
{
    zkc__call *c = arg;

    zkc__call_complete(c, rc);
    zkc__call_unref(c);
}

int zkc__mkdirs_sync(zkc_session *s, const char *path, int timeout_ms)
{
    zkc__call *c = zkc__call_new();
    int rc;

    if (!c)
        return ZKC_ENOMEM;
    zkc__call_ref(c); /* the completion's */
    zkc__mkdirs(s, path, call_done, c);
    rc = zkc__call_wait(c, timeout_ms);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        rc = c->rc;
        pthread_mutex_unlock(&c->mu);
    }
    zkc__call_unref(c);
    return rc;
}
