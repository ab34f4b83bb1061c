/* Raw reads for zkcoordctl: the children and stat of a node, for `tree`,
 * `clusters` and the lock part of `watch`. Not a recipe: one request, one
 * answer. The public API has no raw read, so these use the library's
 * internal handle access (internal.h), asynchronously as it demands, and
 * wait for the answer on a condition variable. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "internal.h"

struct req {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs; /* the waiter and the completion */
    int done;
    int zrc;
    struct Stat st;
    char **names;
    int n;
};

static void req_unref(struct req *r)
{
    int last;

    pthread_mutex_lock(&r->mu);
    last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (!last)
        return;
    cli_names_free(r->names, r->n);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static struct req *req_new(void)
{
    struct req *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    zkc__cond_init(&r->cond);
    r->refs = 2;
    return r;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void finish(struct req *r, int zrc, const struct Stat *st)
{
    pthread_mutex_lock(&r->mu);
    r->zrc = zrc;
    if (st)
        r->st = *st;
    r->done = 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    req_unref(r);
}

/* Completion thread: copy, never block. */
static void children_done(int zrc, const struct String_vector *sv, const struct Stat *st,
                          const void *data)
{
    struct req *r = (struct req *)data;
    int i;

    if (zrc == ZOK && sv && sv->count > 0) {
        r->names = calloc((size_t)sv->count, sizeof(char *));
        if (!r->names) {
            zrc = ZSYSTEMERROR;
        } else {
            for (i = 0; i < sv->count; i++) {
                r->names[i] = strdup(sv->data[i]);
                if (!r->names[i]) {
                    zrc = ZSYSTEMERROR;
                    break;
                }
                r->n++;
            }
        }
    }
    finish(r, zrc, st);
}

static void stat_done(int zrc, const struct Stat *st, const void *data)
{
    finish((struct req *)data, zrc, st);
}

static void to_cli_stat(const struct Stat *z, cli_stat *st)
{
    st->czxid = z->czxid;
    st->mzxid = z->mzxid;
    st->ctime_ms = z->ctime;
    st->mtime_ms = z->mtime;
    st->owner = z->ephemeralOwner;
    st->data_length = z->dataLength;
    st->num_children = z->numChildren;
    st->version = z->version;
}

/* Send the request and wait for its answer; 0 or a ZKC_* code. The caller
 * still holds its own reference on `r` afterwards. */
static int run(zkc_session *s, struct req *r, int timeout_ms, int is_children, const char *path,
               int watch)
{
    struct timespec ts;
    zhandle_t *zh;
    int zrc, rc;

    zh = zkc__zh_lock(s, NULL);
    if (!zh) {
        req_unref(r); /* the completion's reference: it will never run */
        return ZKC_ECONNLOSS;
    }
    if (is_children)
        zrc = zoo_aget_children2(zh, path, watch, children_done, r);
    else
        zrc = zoo_aexists(zh, path, watch, stat_done, r);
    zkc__zh_unlock(s);
    if (zrc != ZOK) {
        req_unref(r);
        return zkc__err_from_zk(zrc);
    }
    zkc__deadline(&ts, timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (!r->done) {
        if (timeout_ms < 0)
            pthread_cond_wait(&r->cond, &r->mu);
        else if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT)
            break;
    }
    if (!r->done)
        rc = ZKC_ETIMEDOUT;
    else if (r->zrc == ZSYSTEMERROR)
        rc = ZKC_ENOMEM;
    else
        rc = r->zrc == ZOK ? 0 : zkc__err_from_zk(r->zrc);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int cli_zk_children(zkc_session *s, const char *path, int timeout_ms, int watch, char ***names,
                    int *n, cli_stat *st)
{
    struct req *r = req_new();
    int rc;

    if (!r)
        return ZKC_ENOMEM;
    rc = run(s, r, timeout_ms, 1, path, watch);
    if (rc == 0) {
        pthread_mutex_lock(&r->mu);
        if (r->n > 0)
            qsort(r->names, (size_t)r->n, sizeof(char *), cmp_names);
        *names = r->names;
        *n = r->n;
        r->names = NULL;
        r->n = 0;
        if (st)
            to_cli_stat(&r->st, st);
        pthread_mutex_unlock(&r->mu);
    }
    req_unref(r);
    return rc;
}

int cli_zk_stat(zkc_session *s, const char *path, int timeout_ms, int watch, cli_stat *st)
{
    struct req *r = req_new();
    int rc;

    if (!r)
        return ZKC_ENOMEM;
    rc = run(s, r, timeout_ms, 0, path, watch);
    if (rc == 0 && st) {
        pthread_mutex_lock(&r->mu);
        to_cli_stat(&r->st, st);
        pthread_mutex_unlock(&r->mu);
    }
    req_unref(r);
    return rc;
}

void cli_names_free(char **names, int n)
{
    int i;

    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
