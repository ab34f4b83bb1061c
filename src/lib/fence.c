/* Fenced multi: see fence.h. A check op on the guard node goes first, so
 * the server applies the caller's writes only while the lock (or term of
 * leadership) the guard stands for is alive -- the ZooKeeper form of the
 * fencing token Kleppmann describes for lock services. */
#include "queue.h"
#include "naming.h"

#include <stdlib.h>
#include <string.h>

#define PATH_BUF 1024

struct multi {
    int n; /* ops including the check */
    zoo_op_t *ops;
    zoo_op_result_t *results;
    struct Stat *stats;
    char *paths; /* n * PATH_BUF for create results */
};

static void multi_free(void *arg)
{
    struct multi *m = arg;

    if (!m)
        return;
    free(m->ops);
    free(m->results);
    free(m->stats);
    free(m->paths);
    free(m);
}

static int check_ops(const char *guard, const zkc_op *ops, int nops)
{
    int i;

    if (!guard || zkc__path_check(guard) != 0 || nops < 0 || (nops > 0 && !ops))
        return ZKC_EINVAL;
    for (i = 0; i < nops; i++) {
        if (!ops[i].path || ops[i].len < 0 || (ops[i].len > 0 && !ops[i].data))
            return ZKC_EINVAL;
        if (ops[i].type != ZKC_OP_CREATE && ops[i].type != ZKC_OP_SET &&
            ops[i].type != ZKC_OP_DELETE)
            return ZKC_EINVAL;
        if (ops[i].type == ZKC_OP_CREATE &&
            (ops[i].flags & ~(ZKC_CREATE_EPHEMERAL | ZKC_CREATE_SEQUENTIAL)) != 0)
            return ZKC_EINVAL;
    }
    return 0;
}

int zkc_fenced_multi_ex(zkc_session *s, const char *guard_path, const zkc_op *ops, int nops,
                        int timeout_ms, int *failed_index)
{
    struct multi *m;
    zkc__call *c;
    zhandle_t *zh;
    int i, rc, zrc;

    if (failed_index)
        *failed_index = -1;
    if (!s)
        return ZKC_EINVAL;
    rc = check_ops(guard_path, ops, nops);
    if (rc)
        return rc;
    c = zkc__call_new();
    if (!c)
        return ZKC_ENOMEM;
    m = calloc(1, sizeof(*m));
    if (!m) {
        zkc__call_unref(c);
        return ZKC_ENOMEM;
    }
    c->extra = m;
    c->extra_free = multi_free;
    m->n = nops + 1;
    m->ops = calloc((size_t)m->n, sizeof(*m->ops));
    m->results = calloc((size_t)m->n, sizeof(*m->results));
    m->stats = calloc((size_t)m->n, sizeof(*m->stats));
    m->paths = calloc((size_t)m->n, PATH_BUF);
    if (!m->ops || !m->results || !m->stats || !m->paths) {
        zkc__call_unref(c);
        return ZKC_ENOMEM;
    }
    zoo_check_op_init(&m->ops[0], guard_path, -1);
    for (i = 0; i < nops; i++) {
        const zkc_op *o = &ops[i];
        zoo_op_t *z = &m->ops[i + 1];
        switch (o->type) {
        case ZKC_OP_CREATE:
            zoo_create_op_init(z, o->path, o->data, o->data ? o->len : -1, zkc__acl(s),
                               ((o->flags & ZKC_CREATE_EPHEMERAL) ? ZOO_EPHEMERAL : 0) |
                                   ((o->flags & ZKC_CREATE_SEQUENTIAL) ? ZOO_SEQUENCE : 0),
                               m->paths + (size_t)(i + 1) * PATH_BUF, PATH_BUF);
            break;
        case ZKC_OP_SET:
            zoo_set_op_init(z, o->path, o->data, o->data ? o->len : -1, o->version,
                            &m->stats[i + 1]);
            break;
        case ZKC_OP_DELETE:
            zoo_delete_op_init(z, o->path, o->version);
            break;
        }
    }
    zh = zkc__zh_lock(s, NULL);
    if (zh && zoo_state(zh) < 0) {
        /* The handle is unrecoverable (session expired or auth failed) and
         * the session manager has not replaced it yet. zoo_amulti() of the
         * ZooKeeper C client 3.8.0 must not see it: when the first op's
         * request cannot be built there, every later op frees the path of
         * a request struct it never initialised -- in practice the
         * previous op's path, the caller's string: a double free
         * (SIGABRT; task_tests' adversary, seeds 24 and 36; regression
         * test "fenced multi on a just-expired handle"). The client would
         * answer ZINVALIDSTATE: the same error, without sending. Left
         * open: the handle turning unrecoverable in the microseconds
         * between this check and the serialisation below (the client's
         * I/O thread processing an expiry at that very moment). */
        zkc__zh_unlock(s);
        zh = NULL;
    }
    if (!zh) {
        zkc__call_unref(c);
        return ZKC_ECONNLOSS;
    }
    zkc__call_ref(c); /* for the completion */
    /* The request is serialized here: the caller's strings need not outlive
     * the call; results and path buffers live in the call object. */
    zrc = zoo_amulti(zh, m->n, m->ops, m->results, zkc__call_void_done, c);
    zkc__zh_unlock(s);
    if (zrc != ZOK) {
        zkc__call_unref(c);
        zkc__call_unref(c);
        return zkc__err_from_zk(zrc);
    }
    rc = zkc__call_wait(c, timeout_ms);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        zrc = c->rc;
        pthread_mutex_unlock(&c->mu);
        if (zrc == ZOK) {
            rc = 0;
        } else if (zrc == ZNONODE || zrc == ZNODEEXISTS || zrc == ZBADVERSION || zrc == ZNOTEMPTY ||
                   zrc == ZNOAUTH || zrc == ZBADARGUMENTS || zrc == ZNOCHILDRENFOREPHEMERALS ||
                   zrc == ZINVALIDACL) {
            /* An op failed: the first result that is neither ok nor the
             * "rolled back" marker names it. */
            rc = zkc__err_from_zk(zrc);
            for (i = 0; i < m->n; i++) {
                int e = m->results[i].err;
                if (e != ZOK && e != ZRUNTIMEINCONSISTENCY) {
                    if (i == 0) {
                        rc = e == ZNONODE ? ZKC_ENOTHELD : zkc__err_from_zk(e);
                    } else {
                        rc = zkc__err_from_zk(e);
                        if (failed_index)
                            *failed_index = i - 1;
                    }
                    break;
                }
            }
        } else {
            rc = zkc__err_from_zk(zrc);
        }
    }
    zkc__call_unref(c);
    return rc;
}

int zkc_fenced_multi(zkc_session *s, const char *guard_path, const zkc_op *ops, int nops,
                     int timeout_ms)
{
    return zkc_fenced_multi_ex(s, guard_path, ops, nops, timeout_ms, NULL);
}
