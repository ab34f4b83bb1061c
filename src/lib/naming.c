/* Protected names, sequence numbers and paths. */
#include "internal.h"
#include "naming.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

int zkc__guid(char out[ZKC_GUID_LEN + 1])
{
    unsigned char b[16];
    size_t got = 0;

    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ZKC_ESYS;
        }
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, ZKC_GUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

void zkc__protected_prefix(char *out, const char *guid)
{
    snprintf(out, ZKC_PROTECTED_PREFIX_LEN + 1, "_c_%s-", guid);
}

static int is_guid(const char *p)
{
    int i;

    for (i = 0; i < ZKC_GUID_LEN; i++) {
        int dash = (i == 8 || i == 13 || i == 18 || i == 23);
        char c = p[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}

int zkc__protected_guid(const char *name, char out[ZKC_GUID_LEN + 1])
{
    if (strncmp(name, "_c_", 3) != 0 || strlen(name) < ZKC_PROTECTED_PREFIX_LEN ||
        !is_guid(name + 3) || name[3 + ZKC_GUID_LEN] != '-')
        return ZKC_EBADDATA;
    memcpy(out, name + 3, ZKC_GUID_LEN);
    out[ZKC_GUID_LEN] = '\0';
    return 0;
}

static int is_separator(char c)
{
    return c == '-' || c == '_';
}

int zkc__seq_parse(const char *name, int32_t *out)
{
    size_t len = strlen(name);
    const char *p;
    int neg = 0;
    int64_t v = 0;

    if (len < ZKC_SEQ_LEN)
        return ZKC_EBADDATA;
    p = name + len - ZKC_SEQ_LEN;
    if (*p == '-') {
        neg = 1;
        p++;
    } else if (len >= ZKC_SEQ_LEN + 2 && p[-1] == '-' && is_separator(p[-2]) && *p != '0') {
        /* "%010d" of a number below -999999999 takes 11 characters: the
         * sign stands before the last ten, right after the prefix's own
         * separator ("lock-" + "-2147483647"). Only those numbers: ten
         * digits with a leading 0 after a '-' are positive, the '-' being
         * the prefix's ("x--0803742851" is 803742851, found by
         * tests/fuzz/fuzz_naming). */
        neg = 1;
    }
    if (*p == '\0')
        return ZKC_EBADDATA;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return ZKC_EBADDATA;
        v = v * 10 + (*p - '0');
    }
    if (neg && v == 0)
        return ZKC_EBADDATA; /* "%010d" never prints "-000000000" */
    if (neg)
        v = -v;
    if (v > INT32_MAX || v < INT32_MIN)
        return ZKC_EBADDATA;
    *out = (int32_t)v;
    return 0;
}

int zkc__seq_cmp(int32_t a, int32_t b)
{
    int32_t d = (int32_t)((uint32_t)a - (uint32_t)b);

    return d < 0 ? -1 : d > 0 ? 1 : 0;
}

int zkc__sort_by_seq(char **names, int count)
{
    int valid = 0, i, j;
    int32_t *seq;
    char **bad;
    int nbad = 0;

    if (count <= 0)
        return 0;
    seq = malloc(sizeof(*seq) * (size_t)count);
    bad = malloc(sizeof(*bad) * (size_t)count);
    if (!seq || !bad) {
        free(seq);
        free(bad);
        return -1;
    }
    /* Insertion sort: child lists are short, and a stable sort keeps equal
     * sequence numbers (distinct parents) in server order. */
    for (i = 0; i < count; i++) {
        int32_t s;
        char *name = names[i];
        if (zkc__seq_parse(name, &s) != 0) {
            bad[nbad++] = name;
            continue;
        }
        for (j = valid; j > 0 && zkc__seq_cmp(seq[j - 1], s) > 0; j--) {
            seq[j] = seq[j - 1];
            names[j] = names[j - 1];
        }
        seq[j] = s;
        names[j] = name;
        valid++;
    }
    for (i = 0; i < nbad; i++)
        names[valid + i] = bad[i];
    free(seq);
    free(bad);
    return valid;
}

int zkc__find_containing(char *const *names, int count, const char *token)
{
    int i;

    for (i = 0; i < count; i++)
        if (strstr(names[i], token))
            return i;
    return -1;
}

char *zkc__path_join(const char *parent, const char *child)
{
    size_t pl = strlen(parent), cl = strlen(child);
    char *p;

    if (pl == 1 && parent[0] == '/')
        pl = 0;
    p = malloc(pl + 1 + cl + 1);
    if (!p)
        return NULL;
    memcpy(p, parent, pl);
    p[pl] = '/';
    memcpy(p + pl + 1, child, cl + 1);
    return p;
}

int zkc__path_check(const char *path)
{
    const char *seg;

    if (!path || path[0] != '/')
        return ZKC_EINVAL;
    if (path[1] == '\0')
        return 0;
    seg = path + 1;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        size_t i;
        if (n == 0)
            return ZKC_EINVAL;
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return ZKC_EINVAL;
        for (i = 0; i < n; i++)
            if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f)
                return ZKC_EINVAL;
        if (!end)
            return 0;
        seg = end + 1;
    }
}

const char *zkc__path_base(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}
