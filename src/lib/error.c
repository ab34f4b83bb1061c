/* Error codes: the table in zkcoord.h, and the ZooKeeper boundary. */
#include "internal.h"

const char *zkc_strerror(int err)
{
    switch (err) {
    case ZKC_OK:
        return "success";
#define ZKC_ERR_MSG_(name, value, msg)                                                             \
    case ZKC_##name:                                                                               \
        return msg;
        ZKC_ERRNO_MAP(ZKC_ERR_MSG_)
#undef ZKC_ERR_MSG_
    }
    return "unknown error";
}

const char *zkc_err_name(int err)
{
    switch (err) {
    case ZKC_OK:
        return "ZKC_OK";
#define ZKC_ERR_NAME_(name, value, msg)                                                            \
    case ZKC_##name:                                                                               \
        return "ZKC_" #name;
        ZKC_ERRNO_MAP(ZKC_ERR_NAME_)
#undef ZKC_ERR_NAME_
    }
    return "ZKC_UNKNOWN";
}

int zkc__err_from_zk(int zrc)
{
    switch (zrc) {
    case ZOK:
        return ZKC_OK;
    case ZNONODE:
        return ZKC_ENONODE;
    case ZNODEEXISTS:
        return ZKC_ENODEEXISTS;
    case ZNOTEMPTY:
        return ZKC_ENOTEMPTY;
    case ZBADVERSION:
        return ZKC_EBADVERSION;
    case ZNOAUTH:
        return ZKC_ENOAUTH;
    case ZAUTHFAILED:
    case ZSESSIONCLOSEDREQUIRESASLAUTH:
        return ZKC_EAUTHFAILED;
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZRUNTIMEINCONSISTENCY: /* the client dropped the connection: see zkc__zk_connloss */
    case ZSSLCONNECTIONERROR:
    case ZINVALIDSTATE: /* handle not connected (yet or any more) */
    case ZSESSIONMOVED:
    case ZTHROTTLEDOP:
        return ZKC_ECONNLOSS;
    case ZSESSIONEXPIRED:
    case ZKC__ZUNKNOWNSESSION:
        return ZKC_ESESSIONLOST;
    case ZCLOSING:
        return ZKC_ECLOSED;
    case ZBADARGUMENTS:
    case ZINVALIDACL:
    case ZNOCHILDRENFOREPHEMERALS:
        return ZKC_EINVAL;
    case ZSYSTEMERROR:
        return ZKC_ESYS;
    default:
        return ZKC_EZOOKEEPER;
    }
}

int zkc__zk_connloss(int zrc)
{
    return zrc == ZCONNECTIONLOSS || zrc == ZOPERATIONTIMEOUT || zrc == ZRUNTIMEINCONSISTENCY ||
           zrc == ZSSLCONNECTIONERROR;
}

int zkc__zk_expired(int zrc)
{
    return zrc == ZSESSIONEXPIRED || zrc == ZKC__ZUNKNOWNSESSION;
}

int zkc__zk_aget_children2(zhandle_t *zh, const char *path, int watch,
                           strings_stat_completion_t done, const void *data)
{
    int rc = zoo_aget_children2(zh, path, watch, done, data);

    /* not a tail call: this frame stays on the stack of the allocation */
    __asm__ volatile("" ::: "memory");
    return rc;
}
