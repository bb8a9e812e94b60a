/* json.h — JSON for the ops service, its API and its clients: a strict reader that builds
 * a read-only tree, and a writer that appends to a growing buffer.
 *
 * Provides: mb_json_parse and the accessors of its values (mb_jv_*); mb_jbuf, a growable
 * byte buffer with JSON (and XML/HTML text) writers.
 * Uses: libc, status.h.
 * Never: trusts its input (depth, size and encoding are checked; an error names the byte
 * offset), touches Lua, or formats a number with more than 17 significant digits. Message
 * bodies seen by Lua scripts go through lua-cjson, not through this file. */
#ifndef MOONBUS_JSON_H
#define MOONBUS_JSON_H

#include <stddef.h>

#include "status.h"

#define MB_JSON_MAX_DEPTH 128

typedef enum mb_json_type {
  MB_JSON_NULL,
  MB_JSON_FALSE,
  MB_JSON_TRUE,
  MB_JSON_NUMBER,
  MB_JSON_STRING,
  MB_JSON_ARRAY,
  MB_JSON_OBJECT
} mb_json_type;

typedef struct mb_json mb_json; /* a parsed document: owns every value in it */
typedef struct mb_jv mb_jv;     /* one value inside a document */

/* Parses text[0..len) (RFC 8259: one value, whitespace around it, nothing else; strings
 * valid UTF-8 after unescaping, \u0000 allowed and kept with its length). MB_EINVAL with
 * "... at byte N" in err for anything else, MB_ENOMEM. */
int mb_json_parse(const char *text, size_t len, mb_json **out, mb_err *err);
void mb_json_free(mb_json *doc); /* NULL is fine */
const mb_jv *mb_json_root(const mb_json *doc);

/* Accessors accept NULL and answer as for a value of another type. */
mb_json_type mb_jv_type(const mb_jv *v); /* MB_JSON_NULL for NULL */
/* The member key of an object (the last one when a key repeats), or NULL. */
const mb_jv *mb_jv_get(const mb_jv *obj, const char *key);
size_t mb_jv_len(const mb_jv *v);                /* items of an array, members of an object */
const mb_jv *mb_jv_at(const mb_jv *v, size_t i); /* item i, or member i's value */
const char *mb_jv_key_at(const mb_jv *obj, size_t i);
/* A string's bytes (NUL-terminated) and length, or NULL when v is not a string. */
const char *mb_jv_string(const mb_jv *v, size_t *len);
/* get + string in one: the string member key of obj, or NULL. */
const char *mb_jv_get_string(const mb_jv *obj, const char *key);
double mb_jv_number(const mb_jv *v); /* 0 unless a number */
int mb_jv_is_true(const mb_jv *v);   /* 1 only for true */

/* The length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, at
 * most U+10FFFF) at s[0..n), or 0 when s does not start with one (or n is 0). */
size_t mb_utf8_sequence(const unsigned char *s, size_t n);

/* --- the writer -------------------------------------------------------------------- */
/* A growable buffer. After an allocation fails, every append is a no-op and failed is
 * set: build the whole text, then check failed once. data is NUL-terminated when not
 * NULL. */
typedef struct mb_jbuf {
  char *data;
  size_t len, cap;
  int failed;
} mb_jbuf;

#define MB_JBUF_INIT                                                                             \
  { NULL, 0, 0, 0 }

void mb_jbuf_free(mb_jbuf *b);
/* Gives the text to the caller (malloc'd, NUL-terminated; NULL if failed) and resets b. */
char *mb_jbuf_take(mb_jbuf *b, size_t *len);
void mb_jbuf_raw(mb_jbuf *b, const char *s, size_t n);
void mb_jbuf_cstr_raw(mb_jbuf *b, const char *s); /* strlen(s) bytes as they are */
void mb_jbuf_printf(mb_jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal of s[0..n): quote, backslash and controls escaped, valid UTF-8
 * kept, each byte of invalid UTF-8 becomes U+FFFD; "/" after "<" is escaped so that the
 * text can sit inside HTML. s NULL writes null. */
void mb_jbuf_str(mb_jbuf *b, const char *s, size_t n);
void mb_jbuf_cstr(mb_jbuf *b, const char *s); /* mb_jbuf_str of strlen(s) bytes; NULL: null */
void mb_jbuf_num(mb_jbuf *b, double v);       /* shortest round-trip form; NaN/inf: null */
void mb_jbuf_int(mb_jbuf *b, long long v);
/* s[0..n) as XML/HTML text or attribute value: & < > " ' escaped, controls other than
 * \t \n dropped, invalid UTF-8 bytes become U+FFFD. */
void mb_jbuf_xml(mb_jbuf *b, const char *s, size_t n);
/* Writes v back as compact JSON. */
void mb_jbuf_value(mb_jbuf *b, const mb_jv *v);

#endif
