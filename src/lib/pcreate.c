/* Protected create: see pcreate.h. The cases follow the known failures of
 * hand-rolled recipes: a create that succeeded on the server but whose reply
 * was lost leaves an orphan that blocks a lock queue forever (the reason
 * for Curator's protected mode, cf. CURATOR-45); a node found under another
 * session must not be adopted (it dies with that session). */
#include "pcreate.h"
#include "naming.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pcreate {
    zkc__pending pend; /* the one request in flight, if any */
    zkc_session *s;
    char *parent;
    char *prefix; /* parent + "/" + token + body */
    char *token;  /* what recovery looks for: "_c_<guid>-", or a named prefix */
    char *data;
    int len;
    int flags;
    unsigned gen; /* session generation the node must belong to */
    int mkdirs_done;
    char *found; /* full path found by guid, while checking its owner */
    zkc__pcreate_fn done;
    void *arg;
};

static void try_create(struct pcreate *p);
static void recover(struct pcreate *p);

static void finish(struct pcreate *p, int rc, const char *path, const struct Stat *st)
{
    p->done(p->arg, rc, path, st);
    free(p->parent);
    free(p->prefix);
    free(p->token);
    free(p->data);
    free(p->found);
    free(p);
}

/* The generation moved on: everything ephemeral of ours went with it. */
static int stale(struct pcreate *p, unsigned gen)
{
    if (gen == p->gen)
        return 0;
    finish(p, ZKC_ESESSIONLOST, NULL, NULL);
    return 1;
}

static void after_reconnect(void *arg, zkc_conn_state st, unsigned gen)
{
    struct pcreate *p = arg;

    if (st == ZKC_CONN_NONE) {
        finish(p, ZKC_ECLOSED, NULL, NULL);
        return;
    }
    if (st == ZKC_CONN_LOST || stale(p, gen)) {
        if (st == ZKC_CONN_LOST)
            finish(p, ZKC_ESESSIONLOST, NULL, NULL);
        return;
    }
    recover(p);
}

static void wait_and_recover(struct pcreate *p)
{
    if (zkc__when_connected(p->s, after_reconnect, p) != 0)
        finish(p, ZKC_ECLOSED, NULL, NULL);
}

static void mkdirs_done(void *arg, int rc)
{
    struct pcreate *p = arg;

    if (rc == ZKC_ECONNLOSS) {
        p->mkdirs_done = 0;
        wait_and_recover(p); /* the parent may be there now; recover re-creates */
        return;
    }
    if (rc != 0) {
        finish(p, rc, NULL, NULL);
        return;
    }
    try_create(p);
}

static void created(int zrc, const char *name, const struct Stat *st, const void *data)
{
    struct pcreate *p = (struct pcreate *)data;

    zkc__pending_done(p->s, &p->pend);
    switch (zrc) {
    case ZOK:
        finish(p, 0, name, st);
        return;
    case ZNONODE:
        if (p->mkdirs_done++ > 2) {
            finish(p, ZKC_ENONODE, NULL, NULL);
            return;
        }
        zkc__mkdirs(p->s, p->parent, mkdirs_done, p);
        return;
    case ZCLOSING: /* its handle closed: a LOST, or the session closing */
        /* Did it happen? Only the server knows: ask it once connected. */
        wait_and_recover(p);
        return;
    default:
        if (zkc__zk_connloss(zrc)) {
            wait_and_recover(p); /* as for ZCLOSING: did it happen? */
            return;
        }
        finish(p, zkc__err_from_zk(zrc), NULL, NULL);
    }
}

enum req { REQ_CREATE, REQ_LIST, REQ_STAT, REQ_DELETE };

static void children_listed(int zrc, const struct String_vector *v, const void *data);
static void owner_checked(int zrc, const struct Stat *st, const void *data);
static void deleted_foreign(int zrc, const void *data);

/* A request in flight when its handle closed, whose completion the client
 * dropped (see zkc__pending): as if it had failed with ZCLOSING. */
static void dropped(zkc__pending *pd)
{
    wait_and_recover((struct pcreate *)((char *)pd - offsetof(struct pcreate, pend)));
}

/* Did the request fail because its handle is going away (expired, closing)?
 * Then the next connection (or LOST, or close) decides, not this error. */
static int handle_gone(int zrc)
{
    return zrc == ZINVALIDSTATE || zrc == ZCLOSING;
}

/* Send one request of `p` on the handle of p's session generation. Between
 * handles, wait for the next one; on a newer generation, give up: our node
 * (if any) died with the old session. */
static void send_req(struct pcreate *p, enum req what)
{
    zkc_session *s = p->s;
    unsigned gen;
    zhandle_t *zh = zkc__zh_lock(s, &gen);
    int zrc;

    if (!zh) {
        wait_and_recover(p);
        return;
    }
    if (gen != p->gen) {
        zkc__zh_unlock(s);
        finish(p, ZKC_ESESSIONLOST, NULL, NULL);
        return;
    }
    zkc__pending_add(s, &p->pend, gen, dropped);
    switch (what) {
    case REQ_CREATE:
        zrc = zoo_acreate2(zh, p->prefix, p->data, p->len, zkc__acl(s), p->flags, created, p);
        break;
    case REQ_LIST:
        zrc = zoo_aget_children(zh, p->parent, 0, children_listed, p);
        break;
    case REQ_STAT:
        zrc = zoo_aexists(zh, p->found, 0, owner_checked, p);
        break;
    default:
        zrc = zoo_adelete(zh, p->found, -1, deleted_foreign, p);
        break;
    }
    zkc__zh_unlock(s); /* not p->s: the reply may already have freed p */
    if (zrc == ZOK)
        return;
    /* No completion will come: p is ours again. */
    zkc__pending_done(s, &p->pend);
    if (handle_gone(zrc))
        wait_and_recover(p);
    else
        finish(p, zkc__err_from_zk(zrc), NULL, NULL);
}

static void try_create(struct pcreate *p)
{
    send_req(p, REQ_CREATE);
}

static void recover(struct pcreate *p)
{
    send_req(p, REQ_LIST);
}

static void deleted_foreign(int zrc, const void *data)
{
    struct pcreate *p = (struct pcreate *)data;

    zkc__pending_done(p->s, &p->pend);
    if (zrc == ZOK || zrc == ZNONODE) {
        try_create(p);
    } else if (zkc__zk_connloss(zrc) || zrc == ZCLOSING) {
        wait_and_recover(p);
    } else {
        finish(p, zkc__err_from_zk(zrc), NULL, NULL);
    }
}

static void owner_checked(int zrc, const struct Stat *st, const void *data)
{
    struct pcreate *p = (struct pcreate *)data;
    unsigned gen;
    zhandle_t *zh;
    int64_t mine;

    zkc__pending_done(p->s, &p->pend);
    if (zrc == ZNONODE) { /* it went away meanwhile: make ours */
        try_create(p);
        return;
    }
    if (zkc__zk_connloss(zrc) || zrc == ZCLOSING) {
        wait_and_recover(p);
        return;
    }
    if (zrc != ZOK) {
        finish(p, zkc__err_from_zk(zrc), NULL, NULL);
        return;
    }
    zh = zkc__zh_lock(p->s, &gen);
    if (!zh) {
        wait_and_recover(p);
        return;
    }
    mine = zoo_client_id(zh)->client_id;
    zkc__zh_unlock(p->s);
    if (gen != p->gen) {
        finish(p, ZKC_ESESSIONLOST, NULL, NULL);
        return;
    }
    if (st->ephemeralOwner == mine) {
        zkc__log(p->s, ZKC_LOG_INFO, "adopted %s after a lost create reply", p->found);
        finish(p, 0, p->found, st);
        return;
    }
    zkc__log(p->s, ZKC_LOG_WARN, "deleting %s: our guid under another session (0x%llx)", p->found,
             (unsigned long long)st->ephemeralOwner);
    send_req(p, REQ_DELETE);
}

static void children_listed(int zrc, const struct String_vector *v, const void *data)
{
    struct pcreate *p = (struct pcreate *)data;
    int i;

    zkc__pending_done(p->s, &p->pend);
    if (zrc == ZNONODE) {
        try_create(p); /* parent gone: created() will mkdir -p */
        return;
    }
    if (zkc__zk_connloss(zrc) || zrc == ZCLOSING) {
        wait_and_recover(p);
        return;
    }
    if (zrc != ZOK) {
        finish(p, zkc__err_from_zk(zrc), NULL, NULL);
        return;
    }
    i = zkc__find_containing(v->data, v->count, p->token);
    if (i < 0) {
        try_create(p); /* the create never reached the server */
        return;
    }
    free(p->found);
    p->found = zkc__path_join(p->parent, v->data[i]);
    if (!p->found) {
        finish(p, ZKC_ENOMEM, NULL, NULL);
        return;
    }
    send_req(p, REQ_STAT);
}

/* The generation moved on: everything ephemeral of ours went with it. */

static void start(zkc_session *s, const char *parent, const char *token, const char *body,
                  const char *data, int len, int flags, zkc__pcreate_fn done, void *arg)
{
    struct pcreate *p = calloc(1, sizeof(*p));
    size_t n;

    if (!p)
        goto nomem;
    p->s = s;
    p->done = done;
    p->arg = arg;
    p->len = len;
    p->flags = flags;
    n = strlen(parent) + 1 + strlen(token) + strlen(body) + 1;
    p->token = strdup(token);
    p->parent = strdup(parent);
    p->prefix = malloc(n);
    p->data = malloc(len > 0 ? (size_t)len : 1);
    if (!p->token || !p->parent || !p->prefix || !p->data)
        goto nomem;
    snprintf(p->prefix, n, "%s/%s%s", strcmp(parent, "/") == 0 ? "" : parent, token, body);
    if (len > 0)
        memcpy(p->data, data, (size_t)len);
    p->gen = zkc_session_generation(s);
    try_create(p);
    return;
nomem:
    if (p) {
        free(p->token);
        free(p->parent);
        free(p->prefix);
        free(p->data);
        free(p);
    }
    done(arg, ZKC_ENOMEM, NULL, NULL);
}

void zkc__pcreate(zkc_session *s, const char *parent, const char *guid, const char *body,
                  const char *data, int len, int flags, zkc__pcreate_fn done, void *arg)
{
    char token[ZKC_PROTECTED_PREFIX_LEN + 1];

    zkc__protected_prefix(token, guid);
    start(s, parent, token, body, data, len, flags, done, arg);
}

void zkc__pcreate_named(zkc_session *s, const char *parent, const char *prefix, const char *data,
                        int len, int flags, zkc__pcreate_fn done, void *arg)
{
    start(s, parent, prefix, "", data, len, flags, done, arg);
}
