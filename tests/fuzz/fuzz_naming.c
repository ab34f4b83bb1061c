/* libFuzzer target: node-name parsing (src/lib/naming.c).
 *
 * Child names come from the server and from any client that may write
 * under a recipe's parent, so every parser here reads hostile text. The
 * input is split at the first NUL: the part before it is a node name, the
 * part after it a list of names (one per line) to sort and search.
 *
 * Invariants checked besides "no crash":
 * - a name that parses as a sequence ends with "%010d" of the number, the
 *   way ZooKeeper prints it (so a parsed sequence re-formats to the same
 *   suffix), and parsing that suffix on its own (behind "n-") gives the
 *   same number;
 * - a protected guid, when found, is 36 characters of lower-case hex and
 *   dashes, and rebuilding the prefix from it gives the name's own prefix;
 * - sorting keeps every name (a permutation), puts the parsable ones first
 *   in wrap-safe order and keeps the unparsable ones in input order;
 * - zkc__find_containing returns the first name that contains the token;
 * - zkc__path_check accepts a path only if it is absolute with no empty,
 *   "." or ".." segment and no control byte; zkc__path_join of a checked
 *   path and a base name is itself accepted and has that base name. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "naming.h"

#include "fuzz.h"

static void check_seq(const char *name)
{
    int32_t v = 0, again = 0;
    char fmt[16], probe[32];
    size_t n = strlen(name), fl;

    if (zkc__seq_parse(name, &v) != 0)
        return;
    fl = (size_t)snprintf(fmt, sizeof(fmt), "%010d", v);
    FUZZ_CHECK(fl <= n && memcmp(name + n - fl, fmt, fl) == 0,
               "sequence %d does not re-format to the name's suffix", (int)v);
    snprintf(probe, sizeof(probe), "n-%s", fmt);
    FUZZ_CHECK(zkc__seq_parse(probe, &again) == 0 && again == v,
               "the suffix %s alone does not parse back to %d", fmt, (int)v);
}

static void check_guid(const char *name)
{
    char guid[ZKC_GUID_LEN + 1], prefix[ZKC_PROTECTED_PREFIX_LEN + 1];
    int i;

    if (zkc__protected_guid(name, guid) != 0)
        return;
    FUZZ_CHECK(strlen(guid) == ZKC_GUID_LEN, "guid of length %zu", strlen(guid));
    for (i = 0; i < ZKC_GUID_LEN; i++) {
        char c = guid[i];
        int dash = (i == 8 || i == 13 || i == 18 || i == 23);
        FUZZ_CHECK(dash ? c == '-' : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')),
                   "guid byte %d is 0x%02x", i, (unsigned char)c);
    }
    zkc__protected_prefix(prefix, guid);
    FUZZ_CHECK(strncmp(name, prefix, ZKC_PROTECTED_PREFIX_LEN) == 0,
               "the prefix rebuilt from the guid is not the name's");
}

static int path_ok(const char *p)
{
    const char *seg;

    if (p[0] != '/')
        return 0;
    if (p[1] == '\0')
        return 1;
    for (seg = p + 1;;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg), i;
        if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && !strncmp(seg, "..", 2)))
            return 0;
        for (i = 0; i < len; i++)
            if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f)
                return 0;
        if (!end)
            return 1;
        seg = end + 1;
    }
}

static void check_path(const char *path)
{
    int ok = zkc__path_check(path) == 0;
    const char *base;
    char *joined;

    FUZZ_CHECK(ok == path_ok(path), "zkc__path_check says %s", ok ? "valid" : "invalid");
    if (!ok || strcmp(path, "/") == 0)
        return;
    base = zkc__path_base(path);
    FUZZ_CHECK(*base && !strchr(base, '/'), "bad base name of a valid path");
    joined = zkc__path_join(path, base);
    FUZZ_CHECK(joined != NULL, "out of memory");
    FUZZ_CHECK(zkc__path_check(joined) == 0, "joining a valid path and its base is invalid");
    FUZZ_CHECK(strcmp(zkc__path_base(joined), base) == 0, "joined path has another base");
    free(joined);
}

static void check_sort(char *list)
{
    char *names[64], *orig[64], *save = NULL, *tok;
    int n = 0, valid, i, j, k, at;

    for (tok = strtok_r(list, "\n", &save); tok && n < 64; tok = strtok_r(NULL, "\n", &save))
        names[n++] = tok;
    memcpy(orig, names, sizeof(names[0]) * (size_t)n);
    valid = zkc__sort_by_seq(names, n);
    FUZZ_CHECK(valid >= 0 && valid <= n, "sort returned %d of %d", valid, n);
    /* A permutation: every input pointer once. */
    for (i = 0; i < n; i++) {
        int seen = 0;
        for (j = 0; j < n; j++)
            seen += names[j] == orig[i];
        FUZZ_CHECK(seen == 1, "name %d appears %d times after sorting", i, seen);
    }
    for (i = 0; i < n; i++) {
        int32_t a, b;
        int parses = zkc__seq_parse(names[i], &a) == 0;
        FUZZ_CHECK(parses == (i < valid), "name %d parses=%d but valid=%d", i, parses, valid);
        if (i > 0 && i < valid) {
            zkc__seq_parse(names[i - 1], &b);
            FUZZ_CHECK(zkc__seq_cmp(b, a) <= 0, "names %d and %d out of order", i - 1, i);
        }
    }
    /* Unparsable names keep their input order at the end. */
    for (i = valid, k = 0; i < n; i++) {
        while (k < n && orig[k] != names[i])
            k++;
        FUZZ_CHECK(k < n, "unparsable names reordered");
    }
    if (n >= 2) {
        /* The first name, as a token, is found at or before its own index. */
        at = zkc__find_containing(names, n, orig[0]);
        for (i = 0; i < n && names[i] != orig[0]; i++)
            ;
        FUZZ_CHECK(at >= 0 && at <= i && strstr(names[at], orig[0]), "find_containing returned %d",
                   at);
        for (j = 0; j < at; j++)
            FUZZ_CHECK(!strstr(names[j], orig[0]), "find_containing skipped a match");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *list;
    size_t first;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    first = strlen(buf);
    list = first < size ? buf + first + 1 : buf + size;

    check_seq(buf);
    check_guid(buf);
    check_path(buf);
    check_sort(list);
    free(buf);
    return 0;
}
