/* Protected create (Curator's "protected mode"): an ephemeral sequential
 * node named "<parent>/_c_<guid>-<body><seq>" that survives a lost reply.
 *
 * If the create's reply is lost (connection loss), the node may or may not
 * exist. Once connected again, one getChildren(parent) finds it by its guid:
 * it is adopted when its ephemeralOwner is this session, deleted and created
 * anew otherwise. A missing parent is created (mkdir -p) and the create
 * retried. If the session is LOST meanwhile, the result is
 * ZKC_ESESSIONLOST: the node, if made, died with the session.
 *
 * The first create request is sent before zkc__pcreate() returns, so a
 * caller may pipeline a getChildren(parent) right behind it (the server
 * answers one session's requests in order). */
#ifndef ZKC_PCREATE_H
#define ZKC_PCREATE_H

#include "internal.h"

/* Result: rc is 0 or a ZKC_* code; on 0, `path` is the full path of the
 * node (borrowed for the call) and `stat` its Stat (czxid = fencing token,
 * ephemeralOwner = this session). Runs on the ZooKeeper completion thread,
 * the manager thread, or (for an immediate failure) the calling thread. */
typedef void (*zkc__pcreate_fn)(void *arg, int rc, const char *path, const struct Stat *stat);

/* `guid` from zkc__guid(); `body` e.g. "lock-" or "latch-"; `flags` the
 * ZOO_* create mode (ZOO_EPHEMERAL_SEQUENTIAL for every recipe here).
 * Everything is copied. Returns nothing: `done` always runs exactly once,
 * also when the handle closes with a request of ours in flight (the 3.8
 * client drops such completions; zkc__pending runs them): then with
 * ZKC_ESESSIONLOST after a LOST, ZKC_ECLOSED when the session closes. */
void zkc__pcreate(zkc_session *s, const char *parent, const char *guid, const char *body,
                  const char *data, int len, int flags, zkc__pcreate_fn done, void *arg);

/* The same with a name of the caller's choosing: "<parent>/<prefix><seq>",
 * where `prefix` must itself be unique to this create (it is what recovery
 * looks for in the parent's children), e.g. ServerSet's "member_<guid>_".
 * For layouts fixed by other tools that do not use Curator's "_c_" names. */
void zkc__pcreate_named(zkc_session *s, const char *parent, const char *prefix, const char *data,
                        int len, int flags, zkc__pcreate_fn done, void *arg);

#endif
