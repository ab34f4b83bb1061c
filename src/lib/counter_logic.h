/* The pure logic of shared counters (counter.c): the byte format shared
 * with Curator, wrapping arithmetic, and how a conditional write is sent
 * for a given znode version (CURATOR-688). No I/O: unit-tested in
 * tests/unit/test_counter_logic.c. */
#ifndef ZKC_COUNTER_LOGIC_H
#define ZKC_COUNTER_LOGIC_H

#include <stdint.h>

/* Decode `len` bytes of node data as a big-endian integer of `width` (4 or
 * 8) bytes into *value (sign-extended). Empty data is 0. 0 or ZKC_EBADDATA
 * (any other length; *value is then 0). */
int zkc__counter_decode(const char *data, int len, int width, int64_t *value);
/* Encode `value` as `width` big-endian bytes into buf (width bytes). */
void zkc__counter_encode(int64_t value, int width, char *buf);
/* 1 when `value` fits the width (INT32: -2^31..2^31-1), else 0. */
int zkc__counter_fits(int64_t value, int width);
/* value + delta, wrapping in two's complement at the width (Java's int and
 * long arithmetic), sign-extended back to 64 bits. */
int64_t zkc__counter_wrap_add(int64_t value, int64_t delta, int width);

/* The znode version after one more write: wraps 2147483647 -> -2147483648. */
int32_t zkc__version_next(int32_t version);

/* How to write conditionally on a node last read at `version`. */
typedef enum zkc__cas_plan {
    ZKC__CAS_CREATE = 1,    /* node did not exist: create it (fails if it does now) */
    ZKC__CAS_SET = 2,       /* setData(version) */
    ZKC__CAS_SET_SKIP = 3,  /* version -2: multi {setData(-2), setData(-1)} so the node
                               goes -2 -> 0 atomically and nobody ever reads version -1 */
    ZKC__CAS_IMPOSSIBLE = 4 /* version -1: the server reads -1 as "any version" */
} zkc__cas_plan;
zkc__cas_plan zkc__counter_cas_plan(int exists, int32_t version);

/* 1 when a read with (exists, mzxid) shows a different state than the one
 * last reported (prev_*): a write or a delete happened in between. Uses the
 * mzxid (64-bit, never wraps), never an ordering of versions. */
int zkc__counter_changed(int prev_known, int prev_exists, int64_t prev_mzxid, int exists,
                         int64_t mzxid);

/* ---- hooks into counter.c for the integration tests */
struct zkc_counter;
/* Threads currently inside a blocking function of `c`. */
int zkc__counter_callers(struct zkc_counter *c);
/* One conditional write with an explicit plan at `version` (SET_SKIP uses
 * `version` for its first set: production sends it only at -2). 0 with
 * *won, or an error as zkc_counter_cas(). */
int zkc__counter_write_plan(struct zkc_counter *c, zkc__cas_plan plan, int32_t version,
                            int64_t value, int *won, int timeout_ms);

#endif
