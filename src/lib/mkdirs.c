/* mkdir -p for the persistent parents every recipe creates under. Other
 * processes may be creating the same parents at the same moment: NODEEXISTS
 * is success, and NONODE walks one level up and back down. */
#include "internal.h"
#include "naming.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct mkdirs {
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

static void step(struct mkdirs *m)
{
    zkc_session *s = m->s;
    zhandle_t *zh = zkc__zh_lock(s, NULL);
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
    zrc = zoo_acreate(zh, prefix, "", 0, zkc__acl(s), 0, created, m);
    free(prefix);
    zkc__zh_unlock(s);
    if (zrc != ZOK)
        finish(m, zkc__err_from_zk(zrc));
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

struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
    int rc;
    int refs; /* the waiter and the callback: the last one frees */
};

static void sync_release(struct sync_wait *w)
{
    int last;

    pthread_mutex_lock(&w->mu);
    last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (last) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
}

static void sync_done(void *arg, int rc)
{
    struct sync_wait *w = arg;

    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->rc = rc;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    sync_release(w);
}

int zkc__mkdirs_sync(zkc_session *s, const char *path, int timeout_ms)
{
    struct sync_wait *w = calloc(1, sizeof(*w));
    struct timespec ts;
    int rc;

    if (!w)
        return ZKC_ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    zkc__cond_init(&w->cond);
    w->refs = 2;
    zkc__deadline(&ts, timeout_ms);
    zkc__mkdirs(s, path, sync_done, w);
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) == ETIMEDOUT)
            break;
    rc = w->done ? w->rc : ZKC_ETIMEDOUT;
    pthread_mutex_unlock(&w->mu);
    sync_release(w);
    return rc;
}
