/* Configuration loading and validation (see config.h).
 *
 * jansson reports positions for syntax errors only; a decoded json_t carries
 * none. So the text is scanned a second time by a minimal JSON lexer that
 * records, for every key path ("handlers[2].timeout_ms"), where the key and
 * its value start. Semantic checks then look their path up to point at the
 * offending spot. The lexer runs only on text jansson has accepted, so it
 * can be lax about malformed input. */
#include "config.h"

#include "zkcoord/work.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE_BYTES (1 << 20)
#define PATH_MAX_LEN   256

static const char *const event_names[ZKA_EV_COUNT] = {
    "member_joined",  "member_left", "member_updated", "members_changed",
    "leader_changed", "elected",     "demoted",        "lock_acquired",
    "lock_lost",      "suspended",   "reconnected",    "session_lost",
    "drained",        "undrained",   "item_assigned",  "item_revoked",
};

const char *zka_event_name(zka_event ev)
{
    if ((int)ev < 0 || ev >= ZKA_EV_COUNT)
        return NULL;
    return event_names[ev];
}

int zka_event_from_name(const char *name)
{
    int i;

    for (i = 0; i < ZKA_EV_COUNT; i++)
        if (strcmp(event_names[i], name) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------ position index */

typedef struct pos_ent {
    char *path;
    int kline, kcol; /* the key (0 for array elements and the root) */
    int vline, vcol; /* the value */
} pos_ent;

/* Entries in file order, found by path through an open-addressing hash
 * table: one lookup per key or element while lexing and per check while
 * validating, so a config of n values costs O(n), not the O(n^2) of a linear
 * search (10.7 s for 80k array elements, on the thread that also sends the
 * watchdog pings on reload). */
typedef struct posidx {
    pos_ent *v;
    size_t n, cap;
    size_t *slot; /* index + 1 into v; 0 = empty. nslot is a power of two */
    size_t nslot;
} posidx;

typedef struct lexer {
    const char *s;
    size_t i, len;
    int line, col;
    posidx *idx;
    int depth;
} lexer;

/* FNV-1a. */
static size_t path_hash(const char *p)
{
    size_t h = (size_t)14695981039346656037ULL;

    for (; *p; p++) {
        h ^= (unsigned char)*p;
        h *= (size_t)1099511628211ULL;
    }
    return h;
}

static pos_ent *pos_find(const posidx *x, const char *path)
{
    size_t i;

    if (!x->nslot)
        return NULL;
    for (i = path_hash(path) & (x->nslot - 1); x->slot[i]; i = (i + 1) & (x->nslot - 1))
        if (strcmp(x->v[x->slot[i] - 1].path, path) == 0)
            return &x->v[x->slot[i] - 1];
    return NULL;
}

/* Keep the table at most half full. */
static int pos_grow(posidx *x)
{
    size_t nslot = x->nslot ? x->nslot * 2 : 128, i, j;
    size_t *slot;

    if (x->nslot && (x->n + 1) * 2 <= x->nslot)
        return 0;
    if (!(slot = calloc(nslot, sizeof(*slot))))
        return -1;
    for (i = 0; i < x->n; i++) {
        for (j = path_hash(x->v[i].path) & (nslot - 1); slot[j]; j = (j + 1) & (nslot - 1))
            ;
        slot[j] = i + 1;
    }
    free(x->slot);
    x->slot = slot;
    x->nslot = nslot;
    return 0;
}

static pos_ent *pos_add(posidx *x, const char *path)
{
    pos_ent *e = pos_find(x, path);
    size_t j;

    if (e)
        return e;
    if (pos_grow(x) != 0)
        return NULL;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        pos_ent *v = realloc(x->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        x->v = v;
        x->cap = cap;
    }
    e = &x->v[x->n];
    memset(e, 0, sizeof(*e));
    if (!(e->path = strdup(path)))
        return NULL;
    for (j = path_hash(path) & (x->nslot - 1); x->slot[j]; j = (j + 1) & (x->nslot - 1))
        ;
    x->slot[j] = ++x->n;
    return e;
}

static void pos_free(posidx *x)
{
    size_t i;

    for (i = 0; i < x->n; i++)
        free(x->v[i].path);
    free(x->v);
    free(x->slot);
}

static int lx_peek(lexer *l)
{
    return l->i < l->len ? (unsigned char)l->s[l->i] : -1;
}

static void lx_adv(lexer *l)
{
    unsigned char c;

    if (l->i >= l->len)
        return;
    c = (unsigned char)l->s[l->i++];
    if (c == '\n') {
        l->line++;
        l->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        /* Columns count characters, as jansson's do: UTF-8 continuation
         * bytes do not advance them. The lead byte already did. */
        l->col++;
    }
}

static void lx_ws(lexer *l)
{
    int c;

    while ((c = lx_peek(l)) == ' ' || c == '\t' || c == '\n' || c == '\r')
        lx_adv(l);
}

static void put_utf8(char *buf, size_t *n, size_t cap, unsigned long cp)
{
    char tmp[4];
    size_t k = 0, j;

    if (cp < 0x80) {
        tmp[k++] = (char)cp;
    } else if (cp < 0x800) {
        tmp[k++] = (char)(0xC0 | (cp >> 6));
        tmp[k++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        tmp[k++] = (char)(0xE0 | (cp >> 12));
        tmp[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[k++] = (char)(0x80 | (cp & 0x3F));
    } else {
        tmp[k++] = (char)(0xF0 | (cp >> 18));
        tmp[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        tmp[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[k++] = (char)(0x80 | (cp & 0x3F));
    }
    for (j = 0; j < k; j++)
        if (*n + 1 < cap)
            buf[(*n)++] = tmp[j];
}

static unsigned long lx_hex4(lexer *l)
{
    unsigned long v = 0;
    int k, c;

    for (k = 0; k < 4; k++) {
        c = lx_peek(l);
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned long)(c - 'A' + 10);
        lx_adv(l);
    }
    return v;
}

/* A string at the cursor ('"'), decoded into buf (truncated to cap). */
static void lx_string(lexer *l, char *buf, size_t cap)
{
    size_t n = 0;
    int c;

    lx_adv(l); /* opening quote */
    while ((c = lx_peek(l)) >= 0 && c != '"') {
        if (c == '\\') {
            lx_adv(l);
            c = lx_peek(l);
            lx_adv(l);
            switch (c) {
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'u': {
                unsigned long cp = lx_hex4(l);
                if (cp >= 0xD800 && cp < 0xDC00 && lx_peek(l) == '\\') {
                    unsigned long lo;
                    lx_adv(l);
                    lx_adv(l); /* 'u' */
                    lo = lx_hex4(l);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                put_utf8(buf, &n, cap, cp);
                continue;
            }
            default:
                break; /* '"', '\\', '/' stand for themselves */
            }
            if (n + 1 < cap)
                buf[n++] = (char)c;
            continue;
        }
        if (n + 1 < cap)
            buf[n++] = (char)c;
        lx_adv(l);
    }
    lx_adv(l); /* closing quote */
    if (cap)
        buf[n] = '\0';
}

static int lx_value(lexer *l, const char *path);

static int lx_object(lexer *l, const char *path)
{
    char key[PATH_MAX_LEN], child[2 * PATH_MAX_LEN + 2];
    int kline, kcol;
    pos_ent *e;

    lx_adv(l); /* '{' */
    for (;;) {
        lx_ws(l);
        if (lx_peek(l) == '}') {
            lx_adv(l);
            return 0;
        }
        if (lx_peek(l) != '"')
            return -1;
        kline = l->line;
        kcol = l->col;
        lx_string(l, key, sizeof(key));
        if (*path)
            snprintf(child, sizeof(child), "%s.%s", path, key);
        else
            snprintf(child, sizeof(child), "%s", key);
        if (!(e = pos_add(l->idx, child)))
            return -1;
        e->kline = kline;
        e->kcol = kcol;
        lx_ws(l);
        if (lx_peek(l) != ':')
            return -1;
        lx_adv(l);
        if (lx_value(l, child) < 0)
            return -1;
        lx_ws(l);
        if (lx_peek(l) == ',')
            lx_adv(l);
    }
}

static int lx_array(lexer *l, const char *path)
{
    char child[PATH_MAX_LEN];
    size_t i;

    lx_adv(l); /* '[' */
    for (i = 0;; i++) {
        lx_ws(l);
        if (lx_peek(l) == ']') {
            lx_adv(l);
            return 0;
        }
        snprintf(child, sizeof(child), "%s[%zu]", path, i);
        if (lx_value(l, child) < 0)
            return -1;
        lx_ws(l);
        if (lx_peek(l) == ',')
            lx_adv(l);
    }
}

static int lx_value(lexer *l, const char *path)
{
    pos_ent *e;
    int c, rc = 0;
    char skip[2];

    lx_ws(l);
    if (!(e = pos_add(l->idx, path)))
        return -1;
    e->vline = l->line;
    e->vcol = l->col;
    if (++l->depth > 64) /* jansson's own default limit is deeper; ours need not be */
        return -1;
    c = lx_peek(l);
    if (c == '{')
        rc = lx_object(l, path);
    else if (c == '[')
        rc = lx_array(l, path);
    else if (c == '"')
        lx_string(l, skip, sizeof(skip));
    else
        while ((c = lx_peek(l)) >= 0 && !strchr(",]} \t\r\n", c))
            lx_adv(l);
    l->depth--;
    return rc;
}

static void build_index(posidx *x, const char *text, size_t len)
{
    lexer l = {text, 0, len, 1, 1, x, 0};

    /* A failure leaves a partial index: positions then fall back to the
     * nearest known ancestor. */
    (void)lx_value(&l, "");
}

/* ------------------------------------------------------------- validation */

typedef struct ctx {
    const char *file;
    char *dir; /* directory of the file, for relative paths */
    posidx idx;
    zka_config_error *err;
} ctx;

enum at { AT_VALUE, AT_KEY };

/* Position of `path`, or of its nearest ancestor present in the file. */
static void locate(const ctx *c, const char *path, enum at at, int *line, int *col)
{
    char p[PATH_MAX_LEN];
    const pos_ent *e;

    snprintf(p, sizeof(p), "%s", path);
    for (;;) {
        e = pos_find(&c->idx, p);
        if (e) {
            if (at == AT_KEY && e->kline) {
                *line = e->kline;
                *col = e->kcol;
            } else {
                *line = e->vline;
                *col = e->vcol;
            }
            if (*line)
                return;
        }
        if (!*p)
            break;
        {
            char *dot = strrchr(p, '.'), *br = strrchr(p, '[');
            char *cut = dot > br ? dot : br;
            if (cut)
                *cut = '\0';
            else
                p[0] = '\0';
        }
        at = AT_VALUE;
    }
    *line = 1;
    *col = 1;
}

static int vfail_at(ctx *c, const char *path, enum at at, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static int vfail_at(ctx *c, const char *path, enum at at, const char *fmt, va_list ap)
{
    char what[768];
    int line, col;

    vsnprintf(what, sizeof(what), fmt, ap);
    locate(c, path, at, &line, &col);
    if (c->err) {
        c->err->line = line;
        c->err->column = col;
        snprintf(c->err->key, sizeof(c->err->key), "%s", path);
        if (*path)
            snprintf(c->err->text, sizeof(c->err->text), "%s:%d:%d: %s: %s", c->file, line, col,
                     path, what);
        else
            snprintf(c->err->text, sizeof(c->err->text), "%s:%d:%d: %s", c->file, line, col, what);
    }
    return ZKC_EINVAL;
}

/* Error about the value at `path`. */
static int fail(ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_at(c, path, AT_VALUE, fmt, ap);
    va_end(ap);
    return rc;
}

/* Error about the key at `path` (unknown key). */
static int fail_key(ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_key(ctx *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_at(c, path, AT_KEY, fmt, ap);
    va_end(ap);
    return rc;
}

static void append(char *out, size_t *n, const char *s)
{
    while (*s && *n + 1 < PATH_MAX_LEN)
        out[(*n)++] = *s++;
    out[*n] = '\0';
}

static void join(char *out, const char *base, const char *key)
{
    size_t n = 0;

    out[0] = '\0';
    append(out, &n, base);
    if (*base)
        append(out, &n, ".");
    append(out, &n, key);
}

static void join_i(char *out, const char *base, size_t i)
{
    char idx[32];
    size_t n = 0;

    snprintf(idx, sizeof(idx), "[%zu]", i);
    out[0] = '\0';
    append(out, &n, base);
    append(out, &n, idx);
}

/* What the user wrote, for "got ...": the JSON text, shortened. */
static void describe(const json_t *v, char *buf, size_t len)
{
    char *s;

    if (json_is_object(v)) {
        snprintf(buf, len, "an object");
        return;
    }
    if (json_is_array(v)) {
        snprintf(buf, len, json_array_size(v) ? "an array" : "[]");
        return;
    }
    s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(buf, len, "?");
        return;
    }
    if (strlen(s) > 40)
        snprintf(buf, len, "%.37s...", s);
    else
        snprintf(buf, len, "%s", s);
    free(s);
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[64], prev, tmp;

    if (lb >= 64 || la >= 64)
        return 99;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t best = prev + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

/* The closest of `known` to `word`, if close enough to be a typo. */
static const char *suggest(const char *word, const char *const *known)
{
    const char *best = NULL;
    size_t bd = 99, d;

    for (; *known; known++) {
        d = edit_distance(word, *known);
        if (d < bd) {
            bd = d;
            best = *known;
        }
    }
    if (best && (bd <= 2 || bd * 3 <= strlen(best)))
        return best;
    return NULL;
}

static void list_known(const char *const *known, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (; *known && n < len; known++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", *known);
}

/* Unknown keys are errors: a typo ("timout_ms") must not silently fall back
 * to a default. The first unknown key in file order is reported. */
static int check_keys(ctx *c, json_t *obj, const char *base, const char *const *known)
{
    const char *key, *bad = NULL;
    json_t *v;
    char p[PATH_MAX_LEN], names[512];
    int bl = 0, bc = 0, l, col;

    json_object_foreach(obj, key, v)
    {
        const char *const *k;
        for (k = known; *k; k++)
            if (strcmp(*k, key) == 0)
                break;
        if (*k)
            continue;
        join(p, base, key);
        locate(c, p, AT_KEY, &l, &col);
        if (!bad || l < bl || (l == bl && col < bc)) {
            bad = key;
            bl = l;
            bc = col;
        }
    }
    if (!bad)
        return 0;
    join(p, base, bad);
    {
        const char *s = suggest(bad, known);
        if (s)
            return fail_key(c, p, "unknown key, did you mean '%s'?", s);
    }
    list_known(known, names, sizeof(names));
    return fail_key(c, p, "unknown key (expected one of: %s)", names);
}

static json_t *get(json_t *obj, const char *key)
{
    return obj ? json_object_get(obj, key) : NULL;
}

static int opt_int(ctx *c, json_t *obj, const char *base, const char *key, long long lo,
                   long long hi, int *out)
{
    json_t *v = get(obj, key);
    char p[PATH_MAX_LEN], got[64];

    if (!v)
        return 0;
    join(p, base, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        describe(v, got, sizeof(got));
        if (hi >= INT_MAX)
            return fail(c, p, "expected an integer >= %lld, got %s", lo, got);
        return fail(c, p, "expected an integer %lld-%lld, got %s", lo, hi, got);
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int opt_bool(ctx *c, json_t *obj, const char *base, const char *key, bool *out)
{
    json_t *v = get(obj, key);
    char p[PATH_MAX_LEN], got[64];

    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        join(p, base, key);
        describe(v, got, sizeof(got));
        return fail(c, p, "expected true or false, got %s", got);
    }
    *out = json_is_true(v);
    return 0;
}

/* A non-empty string. *out is replaced only when the key is present. */
static int opt_str(ctx *c, json_t *obj, const char *base, const char *key, char **out)
{
    json_t *v = get(obj, key);
    char p[PATH_MAX_LEN], got[64];
    char *s;

    if (!v)
        return 0;
    join(p, base, key);
    if (!json_is_string(v) || json_string_length(v) == 0) {
        describe(v, got, sizeof(got));
        return fail(c, p, "expected a non-empty string, got %s", got);
    }
    if (!(s = strdup(json_string_value(v))))
        return ZKC_ENOMEM;
    free(*out);
    *out = s;
    return 0;
}

static int opt_obj(ctx *c, json_t *obj, const char *base, const char *key, json_t **out)
{
    json_t *v = get(obj, key);
    char p[PATH_MAX_LEN], got[64];

    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_object(v)) {
        join(p, base, key);
        describe(v, got, sizeof(got));
        return fail(c, p, "expected an object, got %s", got);
    }
    *out = v;
    return 0;
}

static int missing(ctx *c, const char *base, const char *key, const char *what)
{
    char p[PATH_MAX_LEN];

    join(p, base, key);
    return fail(c, p, "required key missing (expected %s)", what);
}

/* A non-empty array of non-empty strings, as a NULL-terminated vector. */
static int opt_argv(ctx *c, json_t *obj, const char *base, const char *key, char ***out)
{
    json_t *v = get(obj, key), *e;
    char p[PATH_MAX_LEN], pe[PATH_MAX_LEN], got[64];
    char **vec;
    size_t i;

    if (!v)
        return 0;
    join(p, base, key);
    if (!json_is_array(v) || json_array_size(v) == 0) {
        describe(v, got, sizeof(got));
        return fail(c, p, "expected a non-empty array of strings (argv), got %s", got);
    }
    if (!(vec = calloc(json_array_size(v) + 1, sizeof(*vec))))
        return ZKC_ENOMEM;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || (i == 0 && json_string_length(e) == 0)) {
            char **q;
            join_i(pe, p, i);
            describe(e, got, sizeof(got));
            for (q = vec; *q; q++)
                free(*q);
            free(vec);
            return fail(c, pe, "expected a %sstring, got %s", i == 0 ? "non-empty " : "", got);
        }
        if (!(vec[i] = strdup(json_string_value(e)))) {
            char **q;
            for (q = vec; *q; q++)
                free(*q);
            free(vec);
            return ZKC_ENOMEM;
        }
    }
    *out = vec;
    return 0;
}

static int is_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int req_name(ctx *c, json_t *obj, const char *base, const char *key, char **out)
{
    json_t *v = get(obj, key);
    char p[PATH_MAX_LEN], got[64];

    if (!v)
        return missing(c, base, key, "a name of letters, digits, '.', '_' or '-'");
    join(p, base, key);
    if (!json_is_string(v) || !is_name(json_string_value(v)) ||
        strcmp(json_string_value(v), ".") == 0 || strcmp(json_string_value(v), "..") == 0) {
        describe(v, got, sizeof(got));
        return fail(c, p, "expected a name of letters, digits, '.', '_' or '-', got %s", got);
    }
    if (!(*out = strdup(json_string_value(v))))
        return ZKC_ENOMEM;
    return 0;
}

/* The library's own rule for paths (zkc__path_check in src/lib/naming.c):
 * absolute, no empty, "." or ".." segment, no control character. A path
 * --check accepts must not be refused with EINVAL at runtime. */
static int is_znode_path(const char *s)
{
    const char *seg;

    if (s[0] != '/')
        return 0;
    if (s[1] == '\0')
        return 1;
    for (seg = s + 1;;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg), i;

        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        for (i = 0; i < n; i++)
            if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7F)
                return 0;
        if (!end)
            return 1;
        seg = end + 1;
    }
}

/* "host:port[,host:port...]", IPv6 as "[::1]:2181" (the library refuses that
 * form today: zkc_session_opts_check() in load_zookeeper has the last word). */
static int servers_ok(const char *s)
{
    const char *p = s;

    while (*p) {
        const char *end = strchr(p, ','), *colon;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        long port = 0;
        size_t k;

        colon = NULL;
        for (k = 0; k < n; k++)
            if (p[k] == ':')
                colon = p + k;
        if (!colon || colon == p || (size_t)(colon - p) + 1 >= n)
            return 0;
        for (k = (size_t)(colon - p) + 1; k < n; k++) {
            if (p[k] < '0' || p[k] > '9')
                return 0;
            port = port * 10 + (p[k] - '0');
            if (port > 65535)
                return 0;
        }
        if (port < 1)
            return 0;
        for (k = 0; k < (size_t)(colon - p); k++)
            if (p[k] == ' ' || p[k] == '/')
                return 0;
        p += n;
        if (*p == ',')
            p++;
        if (end && !*p)
            return 0;
    }
    return p != s;
}

static int enum_str(ctx *c, json_t *obj, const char *base, const char *key,
                    const char *const *names, int *out)
{
    json_t *v = get(obj, key);
    char p[PATH_MAX_LEN], got[64], list[256];
    int i;

    if (!v)
        return 0;
    join(p, base, key);
    if (json_is_string(v))
        for (i = 0; names[i]; i++)
            if (strcmp(names[i], json_string_value(v)) == 0) {
                *out = i;
                return 0;
            }
    describe(v, got, sizeof(got));
    list[0] = '\0';
    for (i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"",
                 i == 0         ? ""
                 : names[i + 1] ? ", "
                                : " or ",
                 names[i]);
    return fail(c, p, "expected %s, got %s", list, got);
}

/* ------------------------------------------------------------- credentials */

int zka_credentials_read(const char *path, char **user, char **password, char *why, size_t why_len)
{
    char buf[1024], *colon, *nl;
    struct stat st;
    ssize_t n;
    size_t got = 0;
    int fd, rc = ZKC_EINVAL;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
        return ZKC_EINVAL;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(why, why_len, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    /* Someone else's file (other than root's) could be replaced by them at
     * will, whatever its mode: they would choose who we authenticate as. */
    if (st.st_uid != getuid() && st.st_uid != geteuid() && st.st_uid != 0) {
        snprintf(why, why_len, "%s is owned by uid %u: it must belong to uid %u or to root", path,
                 (unsigned)st.st_uid, (unsigned)getuid());
        goto out;
    }
    /* A password others can read is no secret; one others can write lets them
     * choose who we authenticate as. ssh refuses keys on the same grounds. */
    if (st.st_mode & (S_IRWXO | S_IWGRP)) {
        snprintf(why, why_len,
                 "%s has mode %04o: it must not be world-readable or group-writable "
                 "(chmod 600 it)",
                 path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    while (got < sizeof(buf) - 1) {
        n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    if ((nl = strchr(buf, '\n')))
        *nl = '\0';
    if ((nl = strchr(buf, '\r')))
        *nl = '\0';
    colon = strchr(buf, ':');
    if (!colon || colon == buf || !colon[1]) {
        snprintf(why, why_len, "%s: expected one line \"user:password\"", path);
        goto out;
    }
    *colon = '\0';
    rc = ZKC_ENOMEM;
    if (!(*user = strdup(buf)))
        goto out;
    if (!(*password = strdup(colon + 1))) {
        free(*user);
        *user = NULL;
        goto out;
    }
    rc = 0;
out:
    memset(buf, 0, sizeof(buf));
    close(fd);
    return rc;
}

static int read_credentials(ctx *c, zka_config *cfg, const char *keypath)
{
    char path[PATH_MAX], why[PATH_MAX + 128];
    int rc;

    if (cfg->zookeeper.credentials_file[0] == '/' || !c->dir)
        snprintf(path, sizeof(path), "%s", cfg->zookeeper.credentials_file);
    else
        snprintf(path, sizeof(path), "%s/%s", c->dir, cfg->zookeeper.credentials_file);
    rc = zka_credentials_read(path, &cfg->zookeeper.digest_user, &cfg->zookeeper.digest_password,
                              why, sizeof(why));
    if (rc == ZKC_EINVAL)
        return fail(c, keypath, "%s", why);
    return rc;
}

const char *zka_config_security_warning(const zka_config *cfg)
{
    if (cfg->zookeeper.auth_scheme)
        return NULL;
    return "no zookeeper.auth configured: the nodes this agent creates are world:anyone:cdrwa, "
           "so any client that reaches ZooKeeper can delete or plant members, the leader and locks "
           "(see zkcoord(8), SECURITY)";
}

/* ---------------------------------------------------------------- sections */

static const char *const top_keys[] = {"zookeeper", "cluster", "member",   "health",
                                       "election",  "locks",   "handlers", "supervise",
                                       "log",       "metrics", "work",     NULL};

static int load_zookeeper(ctx *c, json_t *root, zka_config *cfg)
{
    static const char *const keys[] = {"servers", "session_timeout_ms", "root", "auth", NULL};
    static const char *const auth_keys[] = {"scheme", "credentials_file", NULL};
    json_t *zk, *auth;
    int rc;

    if ((rc = opt_obj(c, root, "", "zookeeper", &zk)) || !zk)
        return rc;
    if ((rc = check_keys(c, zk, "zookeeper", keys)) ||
        (rc = opt_str(c, zk, "zookeeper", "servers", &cfg->zookeeper.servers)) ||
        (rc = opt_int(c, zk, "zookeeper", "session_timeout_ms", 100, 3600000,
                      &cfg->zookeeper.session_timeout_ms)) ||
        (rc = opt_str(c, zk, "zookeeper", "root", &cfg->zookeeper.root)))
        return rc;
    if (!servers_ok(cfg->zookeeper.servers))
        return fail(c, "zookeeper.servers", "expected \"host:port[,host:port...]\", got \"%s\"",
                    cfg->zookeeper.servers);
    {
        /* The session options main.c builds, checked by the library itself:
         * what zkc_session_new() would refuse, --check refuses (the client
         * takes the first ':' of each entry, so "[::1]:2181" is refused). */
        zkc_session_opts so;
        char why[512];

        zkc_session_opts_init(&so);
        so.servers = cfg->zookeeper.servers;
        so.session_timeout_ms = cfg->zookeeper.session_timeout_ms;
        if (zkc_session_opts_check(&so, why, sizeof(why)) != 0)
            return fail(c, strncmp(why, "servers", 7) == 0 ? "zookeeper.servers" : "zookeeper",
                        "refused by libzkcoord: %s", why);
    }
    if (!is_znode_path(cfg->zookeeper.root))
        return fail(c, "zookeeper.root",
                    "expected an absolute ZooKeeper path like \"/zkcoord\", got \"%s\"",
                    cfg->zookeeper.root);
    if ((rc = opt_obj(c, zk, "zookeeper", "auth", &auth)) || !auth)
        return rc;
    if ((rc = check_keys(c, auth, "zookeeper.auth", auth_keys)))
        return rc;
    if (!(cfg->zookeeper.auth_scheme = strdup("digest")))
        return ZKC_ENOMEM;
    {
        static const char *const schemes[] = {"digest", NULL};
        int s = 0;
        if ((rc = enum_str(c, auth, "zookeeper.auth", "scheme", schemes, &s)))
            return rc;
    }
    if (!get(auth, "credentials_file"))
        return missing(c, "zookeeper.auth", "credentials_file",
                       "the path of a file holding \"user:password\"");
    if ((rc = opt_str(c, auth, "zookeeper.auth", "credentials_file",
                      &cfg->zookeeper.credentials_file)))
        return rc;
    return read_credentials(c, cfg, "zookeeper.auth.credentials_file");
}

/* ------------------------------------------------- what registration takes
 *
 * The limits zkc_group_join() applies to what a member writes
 * (zkc__payload_encode in src/lib/payload.c, with the group's default
 * max_payload the agent uses): --check must refuse a config that would pass
 * here and then fail to register. tests/unit/agent_config_tests.c checks the
 * two agree on each limit's boundary. */
#define MEMBER_MAX_ID        255   /* ZKC_PAYLOAD_MAX_ID */
#define MEMBER_MAX_HOST      255   /* ZKC_PAYLOAD_MAX_HOST */
#define MEMBER_MAX_NAME      64    /* ZKC_PAYLOAD_MAX_SHORT: endpoint names */
#define MEMBER_MAX_ENDPOINTS 32    /* ZKC_PAYLOAD_MAX_ENDPOINT */
#define MEMBER_MAX_PAYLOAD   65536 /* ZKC_PAYLOAD_DEFAULT_MAX */
#define MEMBER_PAYLOAD_VER   1     /* ZKC_PAYLOAD_VERSION */

/* Text the payload encoder refuses: longer than max bytes, or with a byte
 * below 0x20 (tab, newline, ESC...). Returns the offending byte's offset, or
 * -1 when too long, or -2 when fine. */
static long bad_member_text(const char *s, size_t max)
{
    size_t i, n = strlen(s);

    if (n > max)
        return -1;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return (long)i;
    return -2;
}

static int check_member_text(ctx *c, const char *path, const char *s, size_t max)
{
    long r = bad_member_text(s, max);

    if (r == -1)
        return fail(c, path, "expected at most %zu bytes (what a member may register), got %zu",
                    max, strlen(s));
    if (r >= 0)
        return fail(c, path,
                    "control character 0x%02X at byte %ld: a member's %s must not hold one",
                    (unsigned)(unsigned char)s[r], r, strrchr(path, '.') + 1);
    return 0;
}

static json_t *endpoint_doc(const char *host, int port)
{
    return json_pack("{s:s, s:i}", "host", host ? host : "", "port", port);
}

/* The member node's data as the encoder lays it out; its length is what the
 * max_payload cap is compared with. -1 when out of memory. */
static long member_payload_len(const zka_config *cfg)
{
    json_t *root, *eps;
    size_t i;
    char *text;
    long n = -1;

    root = json_object();
    eps = json_object();
    if (!root || !eps)
        goto out;
    for (i = 0; i < cfg->member.n_endpoints; i++)
        if (json_object_set_new(
                eps, cfg->member.endpoints[i].name,
                endpoint_doc(cfg->member.endpoints[i].host, cfg->member.endpoints[i].port)) != 0)
            goto out;
    if (json_object_set_new(root, "serviceEndpoint",
                            endpoint_doc(cfg->member.host, cfg->member.port)) != 0 ||
        json_object_set(root, "additionalEndpoints", eps) != 0 ||
        json_object_set_new(root, "status", json_string("ALIVE")) != 0 ||
        json_object_set_new(root, "shard", json_integer(cfg->member.shard)) != 0 ||
        json_object_set_new(root, "zkcoord",
                            json_pack("{s:s, s:O, s:i}", "id", cfg->member.id, "metadata",
                                      cfg->member.metadata, "version", MEMBER_PAYLOAD_VER)) != 0)
        goto out;
    text = json_dumps(root, JSON_COMPACT);
    if (text) {
        n = (long)strlen(text);
        free(text);
    }
out:
    json_decref(eps);
    json_decref(root);
    return n;
}

static int check_member_runtime(ctx *c, json_t *m, zka_config *cfg)
{
    char p[PATH_MAX_LEN];
    size_t i;
    long len;
    int rc;

    /* The default id and host are the hostname: checked too, since
     * registration would refuse them just the same. */
    if ((rc = check_member_text(c, "member.id", cfg->member.id, MEMBER_MAX_ID)) ||
        (rc = check_member_text(c, "member.host", cfg->member.host, MEMBER_MAX_HOST)))
        return rc;
    if (cfg->member.n_endpoints > MEMBER_MAX_ENDPOINTS)
        return fail(c, "member.endpoints", "expected at most %d endpoints, got %zu",
                    MEMBER_MAX_ENDPOINTS, cfg->member.n_endpoints);
    for (i = 0; i < cfg->member.n_endpoints; i++) {
        const zka_endpoint *ep = &cfg->member.endpoints[i];
        char ph[PATH_MAX_LEN];

        join(p, "member.endpoints", ep->name);
        if (strlen(ep->name) > MEMBER_MAX_NAME)
            return fail_key(c, p, "expected an endpoint name of at most %d bytes, got %zu",
                            MEMBER_MAX_NAME, strlen(ep->name));
        join(ph, p, "host");
        if ((rc = check_member_text(c, ph, ep->host, MEMBER_MAX_HOST)))
            return rc;
    }
    len = member_payload_len(cfg);
    if (len < 0)
        return ZKC_ENOMEM;
    if (len > MEMBER_MAX_PAYLOAD)
        return fail(c, get(m, "metadata") ? "member.metadata" : "member",
                    "the member's node data would be %ld bytes, above the %d a member may "
                    "register: make the metadata smaller",
                    len, MEMBER_MAX_PAYLOAD);
    return 0;
}

static int load_member_fields(ctx *c, json_t *m, zka_config *cfg);

static int load_member(ctx *c, json_t *root, zka_config *cfg)
{
    json_t *m;
    int rc;

    if ((rc = opt_obj(c, root, "", "member", &m)) || !m)
        return rc;
    if ((rc = load_member_fields(c, m, cfg)))
        return rc;
    return check_member_runtime(c, m, cfg);
}

static int load_member_fields(ctx *c, json_t *m, zka_config *cfg)
{
    static const char *const keys[] = {"id",       "host",  "port", "endpoints",
                                       "metadata", "shard", NULL};
    static const char *const ep_keys[] = {"host", "port", NULL};
    json_t *eps, *md, *ev;
    const char *name;
    char p[PATH_MAX_LEN];
    int rc;

    cfg->member.registers = true;
    if ((rc = check_keys(c, m, "member", keys)))
        return rc;
    if (get(m, "id")) {
        free(cfg->member.id);
        cfg->member.id = NULL;
        if ((rc = req_name(c, m, "member", "id", &cfg->member.id)))
            return rc;
    }
    if ((rc = opt_str(c, m, "member", "host", &cfg->member.host)))
        return rc;
    if (!get(m, "port"))
        return missing(c, "member", "port", "the port the app serves on, 1-65535");
    if ((rc = opt_int(c, m, "member", "port", 1, 65535, &cfg->member.port)) ||
        (rc = opt_int(c, m, "member", "shard", 0, INT_MAX, &cfg->member.shard)) ||
        (rc = opt_obj(c, m, "member", "metadata", &md)) ||
        (rc = opt_obj(c, m, "member", "endpoints", &eps)))
        return rc;
    if (md) {
        json_decref(cfg->member.metadata);
        cfg->member.metadata = json_deep_copy(md);
        if (!cfg->member.metadata)
            return ZKC_ENOMEM;
    }
    if (!eps || json_object_size(eps) == 0)
        return 0;
    cfg->member.endpoints = calloc(json_object_size(eps), sizeof(zka_endpoint));
    if (!cfg->member.endpoints)
        return ZKC_ENOMEM;
    json_object_foreach(eps, name, ev)
    {
        zka_endpoint *ep = &cfg->member.endpoints[cfg->member.n_endpoints];
        char got[64];

        join(p, "member.endpoints", name);
        if (!is_name(name))
            return fail_key(c, p, "expected an endpoint name of letters, digits, '.', '_' or '-'");
        if (!json_is_object(ev)) {
            describe(ev, got, sizeof(got));
            return fail(c, p, "expected an object {\"host\": ..., \"port\": ...}, got %s", got);
        }
        cfg->member.n_endpoints++;
        if (!(ep->name = strdup(name)) || !(ep->host = strdup(cfg->member.host)))
            return ZKC_ENOMEM;
        if ((rc = check_keys(c, ev, p, ep_keys)) || (rc = opt_str(c, ev, p, "host", &ep->host)))
            return rc;
        if (!get(ev, "port"))
            return missing(c, p, "port", "an integer 1-65535");
        if ((rc = opt_int(c, ev, p, "port", 1, 65535, &ep->port)))
            return rc;
    }
    return 0;
}

static int load_health(ctx *c, json_t *root, zka_config *cfg)
{
    static const char *const keys[] = {"args", "tcp",  "interval_ms", "timeout_ms",
                                       "rise", "fall", NULL};
    static const char *const tcp_keys[] = {"host", "port", NULL};
    zka_health_cfg *h = &cfg->health;
    json_t *hs, *tcp;
    int rc;

    if ((rc = opt_obj(c, root, "", "health", &hs)) || !hs)
        return rc;
    if ((rc = check_keys(c, hs, "health", keys)) ||
        (rc = opt_int(c, hs, "health", "interval_ms", 10, 86400000, &h->interval_ms)) ||
        (rc = opt_int(c, hs, "health", "timeout_ms", 1, 3600000, &h->timeout_ms)) ||
        (rc = opt_int(c, hs, "health", "rise", 1, 100, &h->rise)) ||
        (rc = opt_int(c, hs, "health", "fall", 1, 100, &h->fall)))
        return rc;
    if (get(hs, "args") && get(hs, "tcp"))
        return fail(c, "health", "give either \"args\" or \"tcp\", not both");
    if (get(hs, "args")) {
        h->kind = ZKA_HEALTH_ARGS;
        return opt_argv(c, hs, "health", "args", &h->args);
    }
    if ((rc = opt_obj(c, hs, "health", "tcp", &tcp)))
        return rc;
    if (!tcp)
        return fail(c, "health",
                    "expected \"args\" (a command) or \"tcp\" ({\"host\", \"port\"}) to check");
    h->kind = ZKA_HEALTH_TCP;
    if (!(h->tcp_host = strdup("127.0.0.1")))
        return ZKC_ENOMEM;
    if ((rc = check_keys(c, tcp, "health.tcp", tcp_keys)) ||
        (rc = opt_str(c, tcp, "health.tcp", "host", &h->tcp_host)))
        return rc;
    if (!get(tcp, "port"))
        return missing(c, "health.tcp", "port", "an integer 1-65535");
    return opt_int(c, tcp, "health.tcp", "port", 1, 65535, &h->tcp_port);
}

static int load_election(ctx *c, json_t *root, zka_config *cfg)
{
    static const char *const keys[] = {"enabled", "on_suspend", NULL};
    static const char *const policies[] = {"step_down", "wait", NULL};
    json_t *e;
    int rc, pol = 0;

    if ((rc = opt_obj(c, root, "", "election", &e)) || !e)
        return rc;
    if ((rc = check_keys(c, e, "election", keys)) ||
        (rc = opt_bool(c, e, "election", "enabled", &cfg->election.enabled)) ||
        (rc = enum_str(c, e, "election", "on_suspend", policies, &pol)))
        return rc;
    cfg->election.on_suspend = (zka_on_suspend)pol;
    if (cfg->election.enabled && !cfg->member.registers)
        return fail(c, "election.enabled", "needs a \"member\" section (only members campaign)");
    return 0;
}

static int load_locks(ctx *c, json_t *root, zka_config *cfg)
{
    static const char *const keys[] = {"name", "path", "hold", NULL};
    json_t *a = get(root, "locks"), *e;
    char p[PATH_MAX_LEN], got[64];
    size_t i, j;
    int rc;

    if (!a)
        return 0;
    if (!json_is_array(a)) {
        describe(a, got, sizeof(got));
        return fail(c, "locks", "expected an array of {\"name\": ...}, got %s", got);
    }
    if (json_array_size(a) == 0)
        return 0;
    if (!(cfg->locks = calloc(json_array_size(a), sizeof(zka_lock_cfg))))
        return ZKC_ENOMEM;
    json_array_foreach(a, i, e)
    {
        zka_lock_cfg *l = &cfg->locks[i];

        join_i(p, "locks", i);
        if (!json_is_object(e)) {
            describe(e, got, sizeof(got));
            return fail(c, p, "expected an object {\"name\": ...}, got %s", got);
        }
        cfg->n_locks++;
        l->hold = true;
        if ((rc = check_keys(c, e, p, keys)) || (rc = req_name(c, e, p, "name", &l->name)) ||
            (rc = opt_str(c, e, p, "path", &l->path)) || (rc = opt_bool(c, e, p, "hold", &l->hold)))
            return rc;
        for (j = 0; j < i; j++)
            if (strcmp(cfg->locks[j].name, l->name) == 0) {
                char pn[PATH_MAX_LEN];
                join(pn, p, "name");
                return fail(c, pn, "lock \"%s\" is already declared as locks[%zu]", l->name, j);
            }
        if (l->path) {
            if (!is_znode_path(l->path) || strcmp(l->path, "/") == 0) {
                char pp[PATH_MAX_LEN];
                join(pp, p, "path");
                return fail(c, pp, "expected an absolute ZooKeeper path, got \"%s\"", l->path);
            }
        } else {
            const char *r = strcmp(cfg->zookeeper.root, "/") == 0 ? "" : cfg->zookeeper.root;
            size_t n = strlen(r) + strlen(cfg->cluster) + strlen(l->name) + 16;
            if (!(l->path = malloc(n)))
                return ZKC_ENOMEM;
            snprintf(l->path, n, "%s/%s/locks/%s", r, cfg->cluster, l->name);
        }
    }
    return 0;
}

static int load_handlers(ctx *c, json_t *root, zka_config *cfg)
{
    static const char *const keys[] = {"on", "args", "shell", "timeout_ms", "max_output_bytes",
                                       NULL};
    json_t *a = get(root, "handlers"), *e, *on, *ev;
    char p[PATH_MAX_LEN], pe[PATH_MAX_LEN], got[64];
    size_t i, j;
    int rc;

    if (!a)
        return 0;
    if (!json_is_array(a)) {
        describe(a, got, sizeof(got));
        return fail(c, "handlers", "expected an array of handler objects, got %s", got);
    }
    if (json_array_size(a) == 0)
        return 0;
    if (!(cfg->handlers = calloc(json_array_size(a), sizeof(zka_handler_cfg))))
        return ZKC_ENOMEM;
    json_array_foreach(a, i, e)
    {
        zka_handler_cfg *h = &cfg->handlers[i];
        int mob = 65536;

        join_i(p, "handlers", i);
        if (!json_is_object(e)) {
            describe(e, got, sizeof(got));
            return fail(c, p, "expected an object {\"on\": [...], \"args\": [...]}, got %s", got);
        }
        cfg->n_handlers++;
        h->timeout_ms = 10000;
        if ((rc = check_keys(c, e, p, keys)))
            return rc;
        on = get(e, "on");
        if (!on)
            return missing(c, p, "on", "an array of event names");
        join(pe, p, "on");
        if (!json_is_array(on) || json_array_size(on) == 0) {
            describe(on, got, sizeof(got));
            return fail(c, pe, "expected a non-empty array of event names, got %s", got);
        }
        json_array_foreach(on, j, ev)
        {
            char pj[PATH_MAX_LEN];
            int id;

            join_i(pj, pe, j);
            if (!json_is_string(ev)) {
                describe(ev, got, sizeof(got));
                return fail(c, pj, "expected an event name, got %s", got);
            }
            id = zka_event_from_name(json_string_value(ev));
            if (id < 0) {
                static const char *const all[ZKA_EV_COUNT + 1] = {"member_joined",
                                                                  "member_left",
                                                                  "member_updated",
                                                                  "members_changed",
                                                                  "leader_changed",
                                                                  "elected",
                                                                  "demoted",
                                                                  "lock_acquired",
                                                                  "lock_lost",
                                                                  "suspended",
                                                                  "reconnected",
                                                                  "session_lost",
                                                                  "drained",
                                                                  "undrained",
                                                                  "item_assigned",
                                                                  "item_revoked",
                                                                  NULL};
                const char *s = suggest(json_string_value(ev), all);
                char names[512];
                describe(ev, got, sizeof(got));
                if (s)
                    return fail(c, pj, "unknown event %s, did you mean '%s'?", got, s);
                list_known(all, names, sizeof(names));
                return fail(c, pj, "unknown event %s (expected one of: %s)", got, names);
            }
            h->events |= 1u << id;
        }
        if (get(e, "args") && get(e, "shell"))
            return fail(c, p, "give either \"args\" or \"shell\", not both");
        if (!get(e, "args") && !get(e, "shell"))
            return fail(c, p,
                        "expected \"args\" (an argv array, run without a shell) or \"shell\" "
                        "(a command for /bin/sh -c)");
        if ((rc = opt_argv(c, e, p, "args", &h->args)) ||
            (rc = opt_str(c, e, p, "shell", &h->shell)) ||
            (rc = opt_int(c, e, p, "timeout_ms", 1, 86400000, &h->timeout_ms)) ||
            (rc = opt_int(c, e, p, "max_output_bytes", 0, 64 << 20, &mob)))
            return rc;
        h->max_output_bytes = (size_t)mob;
    }
    return 0;
}

static int load_supervise(ctx *c, json_t *root, zka_config *cfg)
{
    static const char *const keys[] = {"args",          "while", "restart", "restart_delay_ms",
                                       "stop_grace_ms", "env",   NULL};
    static const char *const restarts[] = {"on-failure", "always", "never", NULL};
    zka_supervise_cfg *sv = &cfg->supervise;
    json_t *s, *w, *env, *v;
    const char *key;
    char got[64], p[PATH_MAX_LEN];
    int rc, r = 0;
    size_t i;

    if ((rc = opt_obj(c, root, "", "supervise", &s)) || !s)
        return rc;
    sv->enabled = true;
    if ((rc = check_keys(c, s, "supervise", keys)))
        return rc;
    if (!get(s, "args"))
        return missing(c, "supervise", "args", "the argv array of the app to run");
    if ((rc = opt_argv(c, s, "supervise", "args", &sv->args)) ||
        (rc = enum_str(c, s, "supervise", "restart", restarts, &r)) ||
        (rc = opt_int(c, s, "supervise", "restart_delay_ms", 0, 3600000, &sv->restart_delay_ms)) ||
        (rc = opt_int(c, s, "supervise", "stop_grace_ms", 0, 600000, &sv->stop_grace_ms)) ||
        (rc = opt_obj(c, s, "supervise", "env", &env)))
        return rc;
    sv->restart = (zka_restart)r;
    w = get(s, "while");
    if (!w)
        return missing(c, "supervise", "while",
                       "\"leader\", \"member\", \"item\" or \"lock:NAME\"");
    if (json_is_string(w) && strcmp(json_string_value(w), "leader") == 0) {
        sv->when = ZKA_WHILE_LEADER;
        if (!cfg->election.enabled)
            return fail(c, "supervise.while", "\"leader\" needs election.enabled true");
    } else if (json_is_string(w) && strcmp(json_string_value(w), "member") == 0) {
        sv->when = ZKA_WHILE_MEMBER;
        if (!cfg->member.registers)
            return fail(c, "supervise.while", "\"member\" needs a \"member\" section");
    } else if (json_is_string(w) && strcmp(json_string_value(w), "item") == 0) {
        /* Checked against the work section in validate(), which comes later. */
        sv->when = ZKA_WHILE_ITEM;
    } else if (json_is_string(w) && strncmp(json_string_value(w), "lock:", 5) == 0) {
        const char *name = json_string_value(w) + 5;
        sv->when = ZKA_WHILE_LOCK;
        for (i = 0; i < cfg->n_locks; i++)
            if (strcmp(cfg->locks[i].name, name) == 0)
                break;
        if (i == cfg->n_locks)
            return fail(c, "supervise.while", "lock \"%s\" is not declared in \"locks\"", name);
        if (!cfg->locks[i].hold)
            return fail(c, "supervise.while", "lock \"%s\" is declared with \"hold\": false", name);
        if (!(sv->lock = strdup(name)))
            return ZKC_ENOMEM;
    } else {
        describe(w, got, sizeof(got));
        return fail(c, "supervise.while",
                    "expected \"leader\", \"member\", \"item\" or \"lock:NAME\", got %s", got);
    }
    if (!env || json_object_size(env) == 0)
        return 0;
    if (!(sv->env = calloc(json_object_size(env) + 1, sizeof(char *))))
        return ZKC_ENOMEM;
    json_object_foreach(env, key, v)
    {
        const char *k;
        size_t n;

        join(p, "supervise.env", key);
        for (k = key; *k; k++)
            if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || *k == '_' ||
                  (k != key && *k >= '0' && *k <= '9')))
                break;
        if (*k || !*key)
            return fail_key(c, p, "expected an environment variable name [A-Za-z_][A-Za-z0-9_]*");
        if (!json_is_string(v)) {
            describe(v, got, sizeof(got));
            return fail(c, p, "expected a string, got %s", got);
        }
        n = strlen(key) + json_string_length(v) + 2;
        if (!(sv->env[sv->n_env] = malloc(n)))
            return ZKC_ENOMEM;
        snprintf(sv->env[sv->n_env++], n, "%s=%s", key, json_string_value(v));
    }
    return 0;
}

static int load_log(ctx *c, json_t *root, zka_config *cfg)
{
    static const char *const keys[] = {"level", "syslog", NULL};
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    json_t *l;
    int rc, lv = (int)cfg->log.level;

    if ((rc = opt_obj(c, root, "", "log", &l)) || !l)
        return rc;
    if ((rc = check_keys(c, l, "log", keys)) ||
        (rc = enum_str(c, l, "log", "level", levels, &lv)) ||
        (rc = opt_bool(c, l, "log", "syslog", &cfg->log.syslog)))
        return rc;
    cfg->log.level = (zkc_log_level)lv;
    return 0;
}

/* "HOST:PORT" with HOST an IPv4 literal or a bracketed IPv6 literal: no
 * name lookup at startup (a slow resolver must not hold the agent up), and
 * what the endpoint binds is exactly what the file says. */
static int parse_listen(const char *s, char *host, size_t hostlen, int *port, bool *ipv6)
{
    const char *colon, *h = s, *he;
    unsigned char addr[16];
    long p = 0;
    const char *q;

    if (*s == '[') {
        h = s + 1;
        he = strchr(h, ']');
        if (!he || he[1] != ':')
            return -1;
        colon = he + 1;
        *ipv6 = true;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        he = colon;
        *ipv6 = false;
    }
    if ((size_t)(he - h) == 0 || (size_t)(he - h) >= hostlen)
        return -1;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    if (inet_pton(*ipv6 ? AF_INET6 : AF_INET, host, addr) != 1)
        return -1;
    if (!colon[1])
        return -1;
    for (q = colon + 1; *q; q++) {
        if (*q < '0' || *q > '9' || p > 65535)
            return -1;
        p = p * 10 + (*q - '0');
    }
    if (p < 1 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

static int load_metrics(ctx *c, json_t *root, zka_config *cfg)
{
    static const char *const keys[] = {"listen", NULL};
    char host[64];
    json_t *m;
    int rc;

    if ((rc = opt_obj(c, root, "", "metrics", &m)) || !m)
        return rc;
    if ((rc = check_keys(c, m, "metrics", keys)))
        return rc;
    if (!(cfg->metrics.listen = strdup("127.0.0.1:9431")))
        return ZKC_ENOMEM;
    if ((rc = opt_str(c, m, "metrics", "listen", &cfg->metrics.listen)))
        return rc;
    if (parse_listen(cfg->metrics.listen, host, sizeof(host), &cfg->metrics.port,
                     &cfg->metrics.ipv6) != 0)
        return fail(c, "metrics.listen",
                    "expected \"IP:PORT\" with an IPv4 literal or [IPv6] literal and a port "
                    "1-65535 (e.g. \"127.0.0.1:9431\"), got \"%s\"",
                    cfg->metrics.listen);
    if (!(cfg->metrics.host = strdup(host)))
        return ZKC_ENOMEM;
    cfg->metrics.enabled = true;
    return 0;
}

/* "NAME": "value" pairs of `env` (an object at key path `base`) as
 * "NAME=value" strings. */
static int env_vector(ctx *c, json_t *env, const char *base, char ***out, size_t *n)
{
    char got[64], p[PATH_MAX_LEN];
    const char *key;
    json_t *v;

    if (!env || json_object_size(env) == 0)
        return 0;
    if (!(*out = calloc(json_object_size(env) + 1, sizeof(char *))))
        return ZKC_ENOMEM;
    json_object_foreach(env, key, v)
    {
        const char *k;
        size_t len;

        join(p, base, key);
        for (k = key; *k; k++)
            if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || *k == '_' ||
                  (k != key && *k >= '0' && *k <= '9')))
                break;
        if (*k || !*key)
            return fail_key(c, p, "expected an environment variable name [A-Za-z_][A-Za-z0-9_]*");
        if (!json_is_string(v)) {
            describe(v, got, sizeof(got));
            return fail(c, p, "expected a string, got %s", got);
        }
        len = strlen(key) + json_string_length(v) + 2;
        if (!((*out)[*n] = malloc(len)))
            return ZKC_ENOMEM;
        snprintf((*out)[(*n)++], len, "%s=%s", key, json_string_value(v));
    }
    return 0;
}

/* work.items: ["p0", {"name": "p1", "spec": "..."}, ...], or
 * work.partitions: N (items "p0" .. "p<N-1>", no spec). Names follow the
 * library's rule (zkc_work_item_name_check), each listed once; a spec is at
 * most ZKC_WORK_MAX_SPEC bytes and has no NUL byte. */
static int load_items(ctx *c, json_t *s, zka_work_cfg *w)
{
    static const char *const item_keys[] = {"name", "spec", NULL};
    json_t *items = get(s, "items"), *parts = get(s, "partitions"), *e, *nv, *sv;
    char p[PATH_MAX_LEN], pn[PATH_MAX_LEN], got[64];
    size_t i, j, n;
    int np = 0, rc;

    if (!items && !parts)
        return 0;
    if (items && parts)
        return fail_key(c, "work.partitions", "give either \"items\" or \"partitions\", not both");
    if (parts) {
        if ((rc = opt_int(c, s, "work", "partitions", 1, 100000, &np)))
            return rc;
        n = (size_t)np;
    } else {
        if (!json_is_array(items) || json_array_size(items) == 0) {
            describe(items, got, sizeof(got));
            return fail(c, "work.items",
                        "expected a non-empty array of item names or {\"name\", \"spec\"} "
                        "objects, got %s",
                        got);
        }
        n = json_array_size(items);
    }
    if (!(w->items = calloc(n + 1, sizeof(char *))) ||
        !(w->item_specs = calloc(n + 1, sizeof(char *))))
        return ZKC_ENOMEM;
    w->items_enabled = true;
    for (i = 0; i < n; i++) {
        const char *name, *spec = NULL;
        if (parts) {
            if (asprintf(&w->items[i], "p%zu", i) < 0) {
                w->items[i] = NULL;
                return ZKC_ENOMEM;
            }
            w->n_items++;
            continue;
        }
        e = json_array_get(items, i);
        join_i(p, "work.items", i);
        snprintf(pn, sizeof(pn), "%s", p);
        if (json_is_object(e)) {
            if ((rc = check_keys(c, e, p, item_keys)))
                return rc;
            if (!(nv = get(e, "name")))
                return missing(c, p, "name", "the item's name");
            join(pn, p, "name");
            sv = get(e, "spec");
            if (sv) {
                char ps[PATH_MAX_LEN];
                join(ps, p, "spec");
                if (!json_is_string(sv)) {
                    describe(sv, got, sizeof(got));
                    return fail(c, ps, "expected a string, got %s", got);
                }
                if (json_string_length(sv) > ZKC_WORK_MAX_SPEC ||
                    strlen(json_string_value(sv)) != json_string_length(sv))
                    return fail(c, ps,
                                "expected at most %d bytes without a NUL byte, got %zu bytes",
                                ZKC_WORK_MAX_SPEC, json_string_length(sv));
                spec = json_string_value(sv);
            }
        } else {
            nv = e;
        }
        if (!json_is_string(nv) || zkc_work_item_name_check(json_string_value(nv)) != 0 ||
            strlen(json_string_value(nv)) != json_string_length(nv)) {
            describe(nv, got, sizeof(got));
            return fail(c, pn,
                        "expected an item name (1-%d bytes of printable ASCII without '/', not "
                        "\".\" or \"..\") or an object {\"name\", \"spec\"}, got %s",
                        ZKC_WORK_MAX_ITEM, got);
        }
        name = json_string_value(nv);
        for (j = 0; j < i; j++)
            if (strcmp(w->items[j], name) == 0)
                return fail(c, pn, "item \"%s\" is listed twice (also work.items[%zu])", name, j);
        if (!(w->items[i] = strdup(name)) || (spec && !(w->item_specs[i] = strdup(spec))))
            return ZKC_ENOMEM;
        w->n_items++;
    }
    return 0;
}

/* The work section: {"capacity": N, "tasks": {"args", "timeout_ms", "env"}}.
 * The capacity is published as member metadata "capacity" (what the task
 * planner reads), so the metadata must not set it too. */
static int load_work(ctx *c, json_t *root, zka_config *cfg)
{
    static const char *const keys[] = {"capacity", "tasks", "items", "partitions", NULL};
    static const char *const task_keys[] = {"args", "timeout_ms", "env", NULL};
    zka_work_cfg *w = &cfg->work;
    json_t *s, *t, *env;
    int rc;

    if ((rc = opt_obj(c, root, "", "work", &s)) || !s)
        return rc;
    w->enabled = true;
    if ((rc = check_keys(c, s, "work", keys)) ||
        (rc = opt_int(c, s, "work", "capacity", 1, 1000000, &w->capacity)) ||
        (rc = opt_obj(c, s, "work", "tasks", &t)) || (rc = load_items(c, s, w)))
        return rc;
    if (!cfg->member.registers)
        return fail(c, "work", "needs a \"member\" section (work goes to registered members)");
    if (json_object_get(cfg->member.metadata, "capacity"))
        return fail(c, "member.metadata.capacity",
                    "set by work.capacity when a work section is present: remove it here");
    if (json_object_set_new(cfg->member.metadata, "capacity", json_integer(w->capacity)) != 0)
        return ZKC_ENOMEM;
    if (!t)
        return 0;
    w->tasks = true;
    if ((rc = check_keys(c, t, "work.tasks", task_keys)))
        return rc;
    if (!get(t, "args"))
        return missing(c, "work.tasks", "args", "the argv array of the task handler");
    if ((rc = opt_argv(c, t, "work.tasks", "args", &w->task_args)) ||
        (rc = opt_int(c, t, "work.tasks", "timeout_ms", 1, 86400000, &w->task_timeout_ms)) ||
        (rc = opt_obj(c, t, "work.tasks", "env", &env)))
        return rc;
    return env_vector(c, env, "work.tasks.env", &w->task_env, &w->n_task_env);
}

static int set_defaults(zka_config *cfg)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    cfg->zookeeper.session_timeout_ms = 10000;
    cfg->health.interval_ms = 2000;
    cfg->health.timeout_ms = 1000;
    cfg->health.rise = 2;
    cfg->health.fall = 3;
    cfg->supervise.restart_delay_ms = 1000;
    cfg->supervise.stop_grace_ms = 5000;
    cfg->work.capacity = 1;
    cfg->work.task_timeout_ms = 60000;
    cfg->log.level = ZKC_LOG_INFO;
    if (!(cfg->zookeeper.servers = strdup("127.0.0.1:2181")) ||
        !(cfg->zookeeper.root = strdup("/zkcoord")) || !(cfg->member.id = strdup(host)) ||
        !(cfg->member.host = strdup(host)) || !(cfg->member.metadata = json_object()))
        return ZKC_ENOMEM;
    return 0;
}

static int validate(ctx *c, json_t *root, zka_config *cfg)
{
    int rc;

    if (!json_is_object(root))
        return fail(c, "", "expected a JSON object at the top level");
    if ((rc = check_keys(c, root, "", top_keys)) || (rc = set_defaults(cfg)) ||
        (rc = req_name(c, root, "", "cluster", &cfg->cluster)) ||
        (rc = load_zookeeper(c, root, cfg)) || (rc = load_member(c, root, cfg)) ||
        (rc = load_health(c, root, cfg)) || (rc = load_election(c, root, cfg)) ||
        (rc = load_locks(c, root, cfg)) || (rc = load_handlers(c, root, cfg)) ||
        (rc = load_supervise(c, root, cfg)) || (rc = load_log(c, root, cfg)) ||
        (rc = load_metrics(c, root, cfg)) || (rc = load_work(c, root, cfg)))
        return rc;
    if (cfg->supervise.enabled && cfg->supervise.when == ZKA_WHILE_ITEM && !cfg->work.items_enabled)
        return fail(c, "supervise.while",
                    "\"item\" needs work items (work.items or work.partitions)");
    return 0;
}

int zka_config_load_string(const char *text, const char *name, zka_config **out,
                           zka_config_error *err)
{
    zka_config *cfg = NULL;
    json_error_t jerr;
    json_t *root = NULL;
    ctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    if (err)
        memset(err, 0, sizeof(*err));
    c.file = name;
    c.err = err;
    {
        const char *slash = strrchr(name, '/');
        /* No directory part: the credentials path is used as written,
         * relative to the working directory, like the config's own. */
        if (slash && !(c.dir = strndup(name, (size_t)(slash - name) + (slash == name ? 1 : 0))))
            return ZKC_ENOMEM;
    }
    root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (err) {
            err->line = jerr.line;
            err->column = jerr.column;
            snprintf(err->text, sizeof(err->text), "%s:%d:%d: %s", name, jerr.line, jerr.column,
                     jerr.text);
        }
        rc = ZKC_EINVAL;
        goto fail_parse;
    }
    build_index(&c.idx, text, strlen(text));
    if (!(cfg = calloc(1, sizeof(*cfg)))) {
        rc = ZKC_ENOMEM;
        goto fail_cfg;
    }
    if ((rc = validate(&c, root, cfg)))
        goto fail_validate;
    if (!(cfg->file = strdup(name))) {
        rc = ZKC_ENOMEM;
        goto fail_validate;
    }
    json_decref(root);
    pos_free(&c.idx);
    free(c.dir);
    *out = cfg;
    return 0;

fail_validate:
    if (rc == ZKC_ENOMEM && err)
        snprintf(err->text, sizeof(err->text), "%s: out of memory", name);
    zka_config_free(cfg);
fail_cfg:
    pos_free(&c.idx);
    json_decref(root);
fail_parse:
    free(c.dir);
    return rc;
}

int zka_config_load(const char *file, zka_config **out, zka_config_error *err)
{
    FILE *f;
    char *text;
    size_t n;
    int rc;

    if (err)
        memset(err, 0, sizeof(*err));
    f = fopen(file, "re");
    if (!f) {
        if (err)
            snprintf(err->text, sizeof(err->text), "%s: cannot open: %s", file, strerror(errno));
        return ZKC_ESYS;
    }
    text = malloc(MAX_FILE_BYTES + 1);
    if (!text) {
        fclose(f);
        return ZKC_ENOMEM;
    }
    n = fread(text, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f) || n > MAX_FILE_BYTES) {
        if (err)
            snprintf(err->text, sizeof(err->text), "%s: %s", file,
                     ferror(f) ? strerror(errno) : "larger than 1 MiB");
        fclose(f);
        free(text);
        return ZKC_ESYS;
    }
    fclose(f);
    text[n] = '\0';
    if (strlen(text) != n) {
        if (err)
            snprintf(err->text, sizeof(err->text), "%s: contains a NUL byte", file);
        free(text);
        return ZKC_EINVAL;
    }
    rc = zka_config_load_string(text, file, out, err);
    free(text);
    return rc;
}

static void free_strv(char **v)
{
    size_t i;

    if (!v)
        return;
    for (i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

void zka_config_free(zka_config *c)
{
    size_t i;

    if (!c)
        return;
    free(c->file);
    free(c->zookeeper.servers);
    free(c->zookeeper.root);
    free(c->zookeeper.auth_scheme);
    free(c->zookeeper.credentials_file);
    free(c->zookeeper.digest_user);
    if (c->zookeeper.digest_password) {
        memset(c->zookeeper.digest_password, 0, strlen(c->zookeeper.digest_password));
        free(c->zookeeper.digest_password);
    }
    free(c->cluster);
    free(c->member.id);
    free(c->member.host);
    for (i = 0; i < c->member.n_endpoints; i++) {
        free(c->member.endpoints[i].name);
        free(c->member.endpoints[i].host);
    }
    free(c->member.endpoints);
    json_decref(c->member.metadata);
    free_strv(c->health.args);
    free(c->health.tcp_host);
    for (i = 0; i < c->n_locks; i++) {
        free(c->locks[i].name);
        free(c->locks[i].path);
    }
    free(c->locks);
    for (i = 0; i < c->n_handlers; i++) {
        free_strv(c->handlers[i].args);
        free(c->handlers[i].shell);
    }
    free(c->handlers);
    free_strv(c->supervise.args);
    free(c->supervise.lock);
    free_strv(c->supervise.env);
    free_strv(c->work.task_args);
    free_strv(c->work.task_env);
    for (i = 0; c->work.items && c->work.items[i]; i++) {
        free(c->work.items[i]);
        free(c->work.item_specs ? c->work.item_specs[i] : NULL);
    }
    free(c->work.items);
    free(c->work.item_specs);
    free(c->metrics.listen);
    free(c->metrics.host);
    free(c);
}

/* ------------------------------------------------------------------- diff */

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool strv_eq(char *const *a, char *const *b)
{
    if (!a || !b)
        return a == b;
    for (; *a && *b; a++, b++)
        if (strcmp(*a, *b) != 0)
            return false;
    return !*a && !*b;
}

bool zka_handler_cfg_equal(const zka_handler_cfg *a, const zka_handler_cfg *b)
{
    return a->events == b->events && strv_eq(a->args, b->args) && str_eq(a->shell, b->shell) &&
           a->timeout_ms == b->timeout_ms && a->max_output_bytes == b->max_output_bytes;
}

unsigned zka_config_diff(const zka_config *a, const zka_config *b)
{
    unsigned d = 0;
    size_t i;

    if (!str_eq(a->zookeeper.servers, b->zookeeper.servers) ||
        a->zookeeper.session_timeout_ms != b->zookeeper.session_timeout_ms ||
        !str_eq(a->zookeeper.root, b->zookeeper.root) ||
        !str_eq(a->zookeeper.auth_scheme, b->zookeeper.auth_scheme) ||
        !str_eq(a->zookeeper.digest_user, b->zookeeper.digest_user) ||
        !str_eq(a->zookeeper.digest_password, b->zookeeper.digest_password))
        d |= ZKA_DIFF_ZOOKEEPER;
    if (!str_eq(a->cluster, b->cluster) || a->member.registers != b->member.registers ||
        !str_eq(a->member.id, b->member.id))
        d |= ZKA_DIFF_IDENTITY;
    if (!str_eq(a->member.host, b->member.host) || a->member.port != b->member.port ||
        a->member.shard != b->member.shard || a->member.n_endpoints != b->member.n_endpoints ||
        !json_equal(a->member.metadata, b->member.metadata))
        d |= ZKA_DIFF_PAYLOAD;
    for (i = 0; !(d & ZKA_DIFF_PAYLOAD) && i < a->member.n_endpoints; i++)
        if (!str_eq(a->member.endpoints[i].name, b->member.endpoints[i].name) ||
            !str_eq(a->member.endpoints[i].host, b->member.endpoints[i].host) ||
            a->member.endpoints[i].port != b->member.endpoints[i].port)
            d |= ZKA_DIFF_PAYLOAD;
    if (a->health.kind != b->health.kind || !strv_eq(a->health.args, b->health.args) ||
        !str_eq(a->health.tcp_host, b->health.tcp_host) ||
        a->health.tcp_port != b->health.tcp_port ||
        a->health.interval_ms != b->health.interval_ms ||
        a->health.timeout_ms != b->health.timeout_ms || a->health.rise != b->health.rise ||
        a->health.fall != b->health.fall)
        d |= ZKA_DIFF_HEALTH;
    if (a->election.enabled != b->election.enabled ||
        a->election.on_suspend != b->election.on_suspend)
        d |= ZKA_DIFF_ELECTION;
    if (a->n_locks != b->n_locks)
        d |= ZKA_DIFF_LOCKS;
    for (i = 0; !(d & ZKA_DIFF_LOCKS) && i < a->n_locks; i++)
        if (!str_eq(a->locks[i].name, b->locks[i].name) ||
            !str_eq(a->locks[i].path, b->locks[i].path) || a->locks[i].hold != b->locks[i].hold)
            d |= ZKA_DIFF_LOCKS;
    if (a->n_handlers != b->n_handlers)
        d |= ZKA_DIFF_HANDLERS;
    for (i = 0; !(d & ZKA_DIFF_HANDLERS) && i < a->n_handlers; i++)
        if (!zka_handler_cfg_equal(&a->handlers[i], &b->handlers[i]))
            d |= ZKA_DIFF_HANDLERS;
    if (a->supervise.enabled != b->supervise.enabled ||
        !strv_eq(a->supervise.args, b->supervise.args) || a->supervise.when != b->supervise.when ||
        !str_eq(a->supervise.lock, b->supervise.lock) ||
        a->supervise.restart != b->supervise.restart ||
        a->supervise.restart_delay_ms != b->supervise.restart_delay_ms ||
        a->supervise.stop_grace_ms != b->supervise.stop_grace_ms ||
        !strv_eq(a->supervise.env, b->supervise.env))
        d |= ZKA_DIFF_SUPERVISE;
    if (a->log.level != b->log.level || a->log.syslog != b->log.syslog)
        d |= ZKA_DIFF_LOG;
    if (a->metrics.enabled != b->metrics.enabled || !str_eq(a->metrics.host, b->metrics.host) ||
        a->metrics.port != b->metrics.port)
        d |= ZKA_DIFF_METRICS;
    if (a->work.enabled != b->work.enabled || a->work.tasks != b->work.tasks ||
        !strv_eq(a->work.task_args, b->work.task_args) ||
        a->work.task_timeout_ms != b->work.task_timeout_ms ||
        !strv_eq(a->work.task_env, b->work.task_env) ||
        a->work.items_enabled != b->work.items_enabled || a->work.n_items != b->work.n_items)
        d |= ZKA_DIFF_WORK;
    for (i = 0; !(d & ZKA_DIFF_WORK) && i < a->work.n_items; i++)
        if (!str_eq(a->work.items[i], b->work.items[i]) ||
            !str_eq(a->work.item_specs[i], b->work.item_specs[i]))
            d |= ZKA_DIFF_WORK;
    return d;
}
