/* Peer bytes are hostile: member ids, endpoints, metadata and the leader's
 * participant id are written by other hosts. These helpers make such text
 * safe for the two places it reaches: log lines and JSON documents. */
#ifndef ZKA_TEXT_H
#define ZKA_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* Longest peer string put into a log line, in bytes of the original. */
#define ZKA_PEER_LOG_MAX 128

/* Copy `in` (len bytes) to `out` (size outlen, always NUL-terminated when
 * outlen > 0) with every byte that could forge or garble a log line
 * escaped: C0 controls and DEL as \xNN, C1 controls (U+0080..U+009F, e.g.
 * the CSI U+009B) as \u00NN, bidi overrides and isolates (U+202A..U+202E,
 * U+2066..U+2069) and line/paragraph separators (U+2028, U+2029) as \uNNNN,
 * bytes that are not UTF-8 as \xNN. Stops (without splitting an escape)
 * when `out` is full. Returns the number of input bytes consumed. */
size_t zka_text_escape(char *out, size_t outlen, const char *in, size_t len);

/* A peer string for a log line: at most ZKA_PEER_LOG_MAX bytes of `s`
 * (cut at a character boundary, "..." appended when cut), escaped as
 * above, into `buf`. NULL becomes "(none)". Returns buf. */
#define ZKA_PEER_BUF (ZKA_PEER_LOG_MAX * 6 + 8)
const char *zka_peer(char buf[ZKA_PEER_BUF], const char *s);

/* A JSON string for `s` that never fails on peer data: bytes that are not
 * valid UTF-8 become U+FFFD (one per byte: replaced, never dropped). NULL
 * becomes "". Returns a new reference, NULL only when out of memory. */
json_t *zka_json_str(const char *s);

/* Length of the valid UTF-8 sequence at `p` (n bytes left) and its code
 * point in *cp, or 0 when the byte at p does not start one. */
size_t zka_utf8_next(const unsigned char *p, size_t n, unsigned *cp);

#endif
