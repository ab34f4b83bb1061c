/* Shared counters: the pure parts (format, arithmetic, version plan). See
 * counter_logic.h; the I/O is in counter.c. */
#include "counter_logic.h"
#include "zkcoord/zkcoord.h"

int zkc__counter_decode(const char *data, int len, int width, int64_t *value)
{
    uint64_t u = 0;
    int i;

    *value = 0;
    if (len == 0)
        return 0; /* DistributedAtomicLong reads null / empty data as 0 */
    if (len != width || !data)
        return ZKC_EBADDATA;
    for (i = 0; i < width; i++)
        u = (u << 8) | (unsigned char)data[i];
    if (width == 4)
        *value = (int32_t)(uint32_t)u;
    else
        *value = (int64_t)u;
    return 0;
}

void zkc__counter_encode(int64_t value, int width, char *buf)
{
    uint64_t u = (uint64_t)value;
    int i;

    for (i = width - 1; i >= 0; i--) {
        buf[i] = (char)(u & 0xff);
        u >>= 8;
    }
}

int zkc__counter_fits(int64_t value, int width)
{
    if (width == 4)
        return value >= INT32_MIN && value <= INT32_MAX;
    return 1;
}

int64_t zkc__counter_wrap_add(int64_t value, int64_t delta, int width)
{
    /* Unsigned arithmetic: signed overflow is undefined in C, defined as
     * wrapping in Java, and Curator's peers do Java arithmetic. */
    uint64_t u = (uint64_t)value + (uint64_t)delta;

    if (width == 4)
        return (int32_t)(uint32_t)u;
    return (int64_t)u;
}

int32_t zkc__version_next(int32_t version)
{
    return (int32_t)((uint32_t)version + 1u);
}

zkc__cas_plan zkc__counter_cas_plan(int exists, int32_t version)
{
    if (!exists)
        return ZKC__CAS_CREATE;
    if (version == -1)
        return ZKC__CAS_IMPOSSIBLE;
    if (zkc__version_next(version) == -1)
        return ZKC__CAS_SET_SKIP;
    return ZKC__CAS_SET;
}

int zkc__counter_changed(int prev_known, int prev_exists, int64_t prev_mzxid, int exists,
                         int64_t mzxid)
{
    if (!prev_known)
        return 1;
    if (prev_exists != exists)
        return 1;
    return exists && prev_mzxid != mzxid;
}
