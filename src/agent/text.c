/* Peer text made safe for logs and JSON (see text.h). */
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t zka_utf8_next(const unsigned char *p, size_t n, unsigned *cp)
{
    unsigned c = p[0], min;
    size_t len, i;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        c &= 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        c &= 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        c &= 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are
     * not UTF-8 (RFC 3629). */
    if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
        return 0;
    *cp = c;
    return len;
}

static int needs_escape(unsigned cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 ||
           cp == 0x2029;
}

size_t zka_text_escape(char *out, size_t outlen, const char *in, size_t len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0, o = 0;

    if (outlen == 0)
        return 0;
    while (i < len) {
        char esc[8];
        const char *src;
        size_t k;
        unsigned cp = 0;
        size_t n = zka_utf8_next(p + i, len - i, &cp);

        if (n == 0 || (n == 1 && needs_escape(cp))) {
            snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
            src = esc;
            k = 4;
            n = 1;
        } else if (needs_escape(cp)) {
            snprintf(esc, sizeof(esc), "\\u%04x", cp);
            src = esc;
            k = 6;
        } else {
            src = in + i;
            k = n;
        }
        if (o + k >= outlen)
            break;
        memcpy(out + o, src, k);
        o += k;
        i += n;
    }
    out[o] = '\0';
    return i;
}

const char *zka_peer(char buf[ZKA_PEER_BUF], const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len, cut = 0;

    if (!s) {
        memcpy(buf, "(none)", 7);
        return buf;
    }
    len = strlen(s);
    if (len <= ZKA_PEER_LOG_MAX) {
        zka_text_escape(buf, ZKA_PEER_BUF, s, len);
        return buf;
    }
    /* Cut at a character boundary at or below the cap. */
    while (cut < ZKA_PEER_LOG_MAX) {
        unsigned cp;
        size_t n = zka_utf8_next(p + cut, len - cut, &cp);
        if (n == 0)
            n = 1;
        if (cut + n > ZKA_PEER_LOG_MAX)
            break;
        cut += n;
    }
    zka_text_escape(buf, ZKA_PEER_BUF - 4, s, cut);
    strcat(buf, "...");
    return buf;
}

json_t *zka_json_str(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len, i = 0, o = 0;
    char *fixed;
    json_t *j;

    if (!s)
        return json_string("");
    len = strlen(s);
    j = json_stringn(s, len);
    if (j)
        return j;
    /* Not UTF-8: each offending byte becomes U+FFFD (3 bytes). */
    fixed = malloc(len * 3 + 1);
    if (!fixed)
        return NULL;
    while (i < len) {
        unsigned cp;
        size_t n = zka_utf8_next(p + i, len - i, &cp);
        if (n == 0) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, s + i, n);
            o += n;
            i += n;
        }
    }
    j = json_stringn(fixed, o);
    free(fixed);
    return j;
}
