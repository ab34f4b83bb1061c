/* libFuzzer target: zkcoordctl's output escaping (src/cli/output.c).
 *
 * Member ids, hosts, metadata and participant ids are written by other
 * hosts and printed by zkcoordctl to a terminal or to a script. The input
 * is raw peer bytes; its first byte picks the cap given to out_printable.
 *
 * Invariants checked besides "no crash":
 * - out_printable's result is valid UTF-8 with no C0 control byte, no
 *   DEL, no C1 control and no bidi override or isolate (issue 11); it is at most 4 bytes per input
 * byte plus "..."; it ends in "..." when the input was cut; input that is already printable UTF-8
 *   comes back unchanged;
 * - out_jstrn never fails: it gives a JSON string (valid UTF-8 by
 *   construction), equal to the input when the input is UTF-8 without NUL,
 *   and the document it sits in serialises and parses back;
 * - a table with the bytes as a cell prints one line per row, each line
 *   printable as above. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

#include "fuzz.h"

static int valid_utf8(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);

    json_decref(j);
    return j != NULL;
}

/* Code points a terminal acts on or that reorder text: C1 controls (the
 * 8-bit CSI U+009B among them) and bidi overrides and isolates. */
static int hostile(unsigned cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* Valid UTF-8 with no C0 control, no DEL and no hostile code point. */
static int printable(const unsigned char *s, size_t n)
{
    size_t i = 0, k, j;
    unsigned cp;

    if (!valid_utf8((const char *)s, n))
        return 0;
    while (i < n) {
        if (s[i] < 0x80) {
            if (s[i] < 0x20 || s[i] == 0x7f)
                return 0;
            i++;
            continue;
        }
        k = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : 2;
        cp = s[i] & (0x7fu >> k);
        for (j = 1; j < k; j++)
            cp = (cp << 6) | (s[i + j] & 0x3f);
        if (hostile(cp))
            return 0;
        i += k;
    }
    return 1;
}

static void check_printable(const uint8_t *data, size_t size, size_t max)
{
    char *p = out_printable((const char *)data, size, max);
    size_t n, in = size < max ? size : max;

    FUZZ_CHECK(p != NULL, "out of memory");
    n = strlen(p);
    FUZZ_CHECK(printable((const unsigned char *)p, n),
               "escaped text is not printable UTF-8 without C1/bidi: %s", p);
    FUZZ_CHECK(n <= in * 4 + 3, "%zu bytes out of %zu in", n, in);
    if (size > max)
        FUZZ_CHECK(n >= 3 && memcmp(p + n - 3, "...", 3) == 0, "cut text without \"...\"");
    if (size <= max && printable(data, size))
        FUZZ_CHECK(n == size && memcmp(p, data, size) == 0, "printable text was changed");
    free(p);
}

static void check_json(const uint8_t *data, size_t size)
{
    json_t *s = out_jstrn((const char *)data, size), *doc = json_object(), *back;
    char *text;

    FUZZ_CHECK(s && json_is_string(s), "out_jstrn gave no string");
    if (!memchr(data, '\0', size) && valid_utf8((const char *)data, size))
        FUZZ_CHECK(json_string_length(s) == size && memcmp(json_string_value(s), data, size) == 0,
                   "UTF-8 text changed in JSON");
    out_jset(doc, "id", s);
    text = json_dumps(doc, JSON_COMPACT);
    FUZZ_CHECK(text != NULL, "document does not serialise");
    back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(back && json_equal(back, doc), "document does not parse back to itself");
    json_decref(back);
    free(text);
    json_decref(doc);
}

static void check_table(const uint8_t *data, size_t size)
{
    char *cell = malloc(size + 1), *text = NULL;
    size_t len = 0, i, lines = 0;
    out_table *t = out_table_new("ID", "HOST", NULL);
    FILE *f;

    FUZZ_CHECK(cell && t, "out of memory");
    memcpy(cell, data, size);
    cell[size] = '\0';
    out_table_row(t, cell, "h");
    out_table_row(t, "x", cell);
    FUZZ_CHECK(out_table_rows(t) == 2, "%d rows", out_table_rows(t));
    f = open_memstream(&text, &len);
    FUZZ_CHECK(f != NULL, "open_memstream");
    out_table_print(t, f, 1);
    fclose(f);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n')
            lines++;
        else
            FUZZ_CHECK(c >= 0x20 && c != 0x7f, "table has control byte 0x%02x", c);
    }
    for (i = 0; i < len;) {
        size_t l = strcspn(text + i, "\n");
        FUZZ_CHECK(printable((const unsigned char *)text + i, l), "a table line is not printable");
        i += l + 1;
    }
    FUZZ_CHECK(lines == 3, "%zu lines for a header and two rows", lines);
    free(text);
    out_table_free(t);
    free(cell);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[4] = {4096, 0, 7, 64};
    size_t max;

    if (size < 1)
        return 0;
    max = caps[data[0] & 3];
    data++;
    size--;
    check_printable(data, size, max);
    check_json(data, size);
    check_table(data, size);
    return 0;
}
