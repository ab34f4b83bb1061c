/* zkcoordctl output: aligned tables for humans, stable JSON for scripts.
 * JSON keys keep the order they are added in (JSON_PRESERVE_ORDER), so
 * documents print the same way every time; the shapes are documented in
 * man/zkcoordctl.1. */
#ifndef ZKC_CLI_OUTPUT_H
#define ZKC_CLI_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- tables */

typedef struct out_table out_table;

/* A table with `ncols` columns titled by the NULL-terminated list of
 * headers. NULL on out of memory. */
out_table *out_table_new(const char *header, ...);
/* Append a row of exactly ncols cells (NULL = "-"). Cells are copied and
 * made printable (see out_printable()): peer data is untrusted. */
void out_table_row(out_table *t, ...);
/* Print with columns aligned (two spaces apart); the last column is not
 * padded. Nothing when there are no rows and `always_header` is 0. */
void out_table_print(out_table *t, FILE *f, int always_header);
int out_table_rows(const out_table *t);
void out_table_free(out_table *t);

/* ---- values */

/* Printable copy of untrusted bytes: C0 controls, DEL and bytes that are not
 * UTF-8 as \xNN; C1 controls (U+0080-009F) and bidi overrides and isolates
 * (U+202A-202E, U+2066-2069) as \uXXXX. At most `max` input bytes (then
 * "..."). malloc'd; NULL on out of memory. */
char *out_printable(const char *s, size_t len, size_t max);
/* "0x<hex>" of a session id, or "-" for 0, into buf. */
const char *out_session(char *buf, size_t len, int64_t session);
/* "4d02h", "3h05m", "5m03s", "12s" for a duration in ms, into buf. */
const char *out_age(char *buf, size_t len, int64_t ms);
/* Wall clock, ms since the epoch. */
int64_t out_now_ms(void);

/* ---- JSON */

/* A JSON string of `s` (NULL -> null). Text that is not valid UTF-8 is
 * escaped with out_printable() first, so this never fails for bad input. */
json_t *out_jstr(const char *s);
json_t *out_jstrn(const char *s, size_t len);
/* "0x..." string of a session id, null for 0. */
json_t *out_jsession(int64_t session);
/* Set a key, stealing the value (a NULL value becomes null). */
void out_jset(json_t *obj, const char *key, json_t *value);
/* Print one document (indented) or one line (compact), with a newline, and
 * flush. Returns 0 or -1 on a write error. */
int out_json_doc(json_t *doc, FILE *f);
int out_json_line(json_t *doc, FILE *f);

#endif
