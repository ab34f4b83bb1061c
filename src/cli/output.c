/* Tables and JSON for zkcoordctl (see output.h). */
#include "output.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct out_table {
    int ncols;
    int nrows;
    int cap;
    char **cells; /* nrows * ncols, row-major; row 0 is the header */
};

out_table *out_table_new(const char *header, ...)
{
    out_table *t;
    va_list ap;
    const char *h;
    int n = 0, i;

    va_start(ap, header);
    for (h = header; h; h = va_arg(ap, const char *))
        n++;
    va_end(ap);
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ncols = n;
    t->cap = 8;
    t->cells = calloc((size_t)t->cap * (size_t)n, sizeof(char *));
    if (!t->cells) {
        free(t);
        return NULL;
    }
    va_start(ap, header);
    for (i = 0, h = header; h; h = va_arg(ap, const char *), i++)
        t->cells[i] = strdup(h);
    va_end(ap);
    t->nrows = 1;
    return t;
}

void out_table_row(out_table *t, ...)
{
    va_list ap;
    int i;

    if (!t)
        return;
    if (t->nrows == t->cap) {
        char **nc = realloc(t->cells, (size_t)t->cap * 2 * (size_t)t->ncols * sizeof(char *));

        if (!nc)
            return;
        t->cells = nc;
        t->cap *= 2;
    }
    va_start(ap, t);
    for (i = 0; i < t->ncols; i++) {
        const char *v = va_arg(ap, const char *);

        if (!v)
            v = "-";
        t->cells[t->nrows * t->ncols + i] = out_printable(v, strlen(v), 4096);
    }
    va_end(ap);
    t->nrows++;
}

/* Columns as a terminal shows them: UTF-8 continuation bytes take none. */
static int width(const char *s)
{
    int w = 0;

    for (; s && *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

void out_table_print(out_table *t, FILE *f, int always_header)
{
    int *wd, r, i;

    if (!t || (t->nrows == 1 && !always_header))
        return;
    wd = calloc((size_t)t->ncols, sizeof(int));
    if (!wd)
        return;
    for (r = 0; r < t->nrows; r++)
        for (i = 0; i < t->ncols; i++) {
            int w = width(t->cells[r * t->ncols + i]);

            if (w > wd[i])
                wd[i] = w;
        }
    for (r = 0; r < t->nrows; r++) {
        int last = t->ncols - 1;

        /* Empty trailing cells: no padding left dangling at the line's end. */
        while (last > 0 && (!t->cells[r * t->ncols + last] || !t->cells[r * t->ncols + last][0]))
            last--;
        for (i = 0; i <= last; i++) {
            const char *v = t->cells[r * t->ncols + i];

            if (!v)
                v = "";
            if (i == last)
                fprintf(f, "%s\n", v);
            else
                fprintf(f, "%s%*s", v, wd[i] - width(v) + 2, "");
        }
    }
    free(wd);
}

int out_table_rows(const out_table *t)
{
    return t ? t->nrows - 1 : 0;
}

void out_table_free(out_table *t)
{
    int i;

    if (!t)
        return;
    for (i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        need = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms and surrogates would be rejected by JSON parsers. */
    if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return need;
}

/* The code point of a valid sequence of k bytes (utf8_len() said so). */
static unsigned utf8_cp(const unsigned char *s, size_t k)
{
    unsigned cp = k == 2 ? s[0] & 0x1Fu : k == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    size_t i;

    for (i = 1; i < k; i++)
        cp = (cp << 6) | (s[i] & 0x3Fu);
    return cp;
}

/* Valid UTF-8 that a terminal still acts on: C1 controls (U+009B is a
 * one-byte CSI to terminals that take 8-bit controls) and the bidi
 * embeddings, overrides and isolates, which reorder what follows them on the
 * line (the "Trojan Source" trick, CVE-2021-42574): a peer's id could make a
 * row read as something else. */
static int hostile_cp(unsigned cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

char *out_printable(const char *s, size_t len, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = len < max ? len : max, i = 0, o = 0;
    char *buf = malloc(n * 4 + 4);

    if (!buf)
        return NULL;
    while (i < n) {
        size_t k = utf8_len(p + i, n - i);

        if (k == 1 && (p[i] < 0x20 || p[i] == 0x7F))
            k = 0;
        if (k == 0) {
            o += (size_t)sprintf(buf + o, "\\x%02X", p[i]);
            i++;
        } else if (k > 1 && hostile_cp(utf8_cp(p + i, k))) {
            o += (size_t)sprintf(buf + o, "\\u%04X", utf8_cp(p + i, k));
            i += k;
        } else {
            memcpy(buf + o, p + i, k);
            o += k;
            i += k;
        }
    }
    if (len > max) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

const char *out_session(char *buf, size_t len, int64_t session)
{
    if (session == 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "0x%" PRIx64, (uint64_t)session);
    return buf;
}

const char *out_age(char *buf, size_t len, int64_t ms)
{
    int64_t s = ms < 0 ? 0 : ms / 1000;

    if (s < 60)
        snprintf(buf, len, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, (s / 60) % 60);
    else
        snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400, (s / 3600) % 24);
    return buf;
}

int64_t out_now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

json_t *out_jstrn(const char *s, size_t len)
{
    json_t *j;
    char *p;

    if (!s)
        return json_null();
    /* json_stringn accepts NUL and would print it as \u0000, which many
     * readers (jansson's own json_loads among them) refuse: escape it too
     * (found by tests/fuzz/fuzz_output). */
    j = memchr(s, '\0', len) ? NULL : json_stringn(s, len);
    if (j)
        return j;
    /* Not UTF-8 (or contains NUL): show the bytes escaped rather than fail. */
    p = out_printable(s, len, len);
    if (!p)
        return json_null();
    j = json_string(p);
    free(p);
    return j ? j : json_null();
}

json_t *out_jstr(const char *s)
{
    return s ? out_jstrn(s, strlen(s)) : json_null();
}

json_t *out_jsession(int64_t session)
{
    char buf[32];

    if (session == 0)
        return json_null();
    return json_string(out_session(buf, sizeof(buf), session));
}

void out_jset(json_t *obj, const char *key, json_t *value)
{
    json_object_set_new(obj, key, value ? value : json_null());
}

static int dump(json_t *doc, FILE *f, size_t flags)
{
    if (json_dumpf(doc, f, flags | JSON_PRESERVE_ORDER) != 0)
        return -1;
    if (fputc('\n', f) == EOF)
        return -1;
    return fflush(f) == 0 ? 0 : -1;
}

int out_json_doc(json_t *doc, FILE *f)
{
    return dump(doc, f, JSON_INDENT(2));
}

int out_json_line(json_t *doc, FILE *f)
{
    return dump(doc, f, JSON_COMPACT);
}
