/* Node names and paths shared by every recipe. Pure functions: unit-tested
 * without a server. */
#ifndef ZKC_NAMING_H
#define ZKC_NAMING_H

#include <stddef.h>
#include <stdint.h>

#define ZKC_GUID_LEN 36 /* 8-4-4-4-12 hex */
/* "_c_" + guid + "-": Curator's protected-mode prefix. */
#define ZKC_PROTECTED_PREFIX_LEN (3 + ZKC_GUID_LEN + 1)
#define ZKC_SEQ_LEN              10

/* A random (version 4) UUID in lower-case hex into out[37].
 * Returns 0 or ZKC_ESYS when the kernel has no randomness to give. */
int zkc__guid(char out[ZKC_GUID_LEN + 1]);

/* "_c_<guid>-" into out[ZKC_PROTECTED_PREFIX_LEN + 1]. */
void zkc__protected_prefix(char *out, const char *guid);

/* The guid of a protected name ("_c_<guid>-..."), copied into out[37].
 * Returns 0, or ZKC_EBADDATA when `name` is not protected. */
int zkc__protected_guid(const char *name, char out[ZKC_GUID_LEN + 1]);

/* Sequence number of a sequential node name: its last 10 characters, as
 * ZooKeeper printed them with "%010d". After the parent's counter passes
 * 2^31 - 1 the server prints negative numbers, and those below -999999999
 * take 11 characters: a '-' right after the name's own separator ('-' or
 * '_', as in "lock-", "latch-", "__READ__", "member_<guid>_") is read as the
 * sign. Returns 0, or ZKC_EBADDATA (and leaves *out alone) for a name that
 * is too short or does not end in a sequence. */
int zkc__seq_parse(const char *name, int32_t *out);

/* Order of two sequence numbers, correct across the 2^31 wrap (serial-number
 * arithmetic, RFC 1982): a < b when (int32)(b - a) > 0. Valid while the live
 * nodes of one parent span less than 2^31 creations, which ZooKeeper's
 * ephemeral workloads always do. Returns <0, 0, >0. */
int zkc__seq_cmp(int32_t a, int32_t b);

/* Sort names by sequence number (wrap-safe). Names that do not parse are
 * moved to the end in their original relative order; returns how many
 * parsed. `names` is an array of borrowed strings, permuted in place. */
int zkc__sort_by_seq(char **names, int count);

/* Index in `names` of the first name containing `token` (e.g. a protected
 * prefix), or -1. */
int zkc__find_containing(char *const *names, int count, const char *token);

/* parent + "/" + child, newly allocated (NULL on ENOMEM). "/" parent gives
 * "/child". */
char *zkc__path_join(const char *parent, const char *child);

/* Validate an absolute ZooKeeper path: starts with '/', no empty segment,
 * no trailing '/' (but "/" itself is valid), no "." or ".." segment, no
 * control characters. Returns 0 or ZKC_EINVAL. */
int zkc__path_check(const char *path);

/* The last segment of a path ("/a/b" -> "b"). Borrowed from `path`. */
const char *zkc__path_base(const char *path);

#endif
