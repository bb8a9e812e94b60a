/* json.c — the ops service's JSON: a strict RFC 8259 reader that builds a read-only tree in
 * one arena per document, and the mb_jbuf writers (JSON, XML/HTML text).
 * Owns: mb_json (its arena blocks, every value, string and member index in it) and the
 * parser's scratch stacks, which live only during mb_json_parse.
 * Never: trusts its input (nesting is capped at MB_JSON_MAX_DEPTH, strings are UTF-8 after
 * unescaping, numbers follow the grammar and stay finite; each error names its byte
 * offset), touches Lua, or writes a number with more than 17 significant digits.
 * Numbers are read with strtod and written with snprintf, both of which follow LC_NUMERIC:
 * the host never calls setlocale, so that is the "C" locale and "." is the decimal point. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Objects with more members than this get a hash index; smaller ones are scanned. */
#define INDEX_MIN_MEMBERS 16

/* One value. An object's items are 2n values: key, value, key, value... (the keys are
 * strings), so that mb_jbuf_value writes a key holding \u0000 back whole. */
struct mb_jv {
  mb_json_type type;
  size_t len; /* string bytes, array items, object members */
  union {
    double num;
    char *str;
    mb_jv *items;
  } u;
  size_t *index; /* objects over INDEX_MIN_MEMBERS: open addressing, member + 1, 0 empty */
  size_t index_mask;
};

typedef struct block {
  struct block *next;
  size_t used, cap;
} block;

/* The block header is padded so that what follows is aligned for any type. */
#define BLOCK_HEAD ((sizeof(block) + 15) & ~(size_t)15)

struct mb_json {
  block *blocks;
  size_t next_cap;
  mb_jv root;
};

/* --- the arena ------------------------------------------------------------------------- */

static void *arena_alloc(mb_json *doc, size_t n) {
  n = (n + 15) & ~(size_t)15;
  block *b = doc->blocks;
  if (b == NULL || b->cap - b->used < n) {
    size_t cap = doc->next_cap > n ? doc->next_cap : n;
    b = malloc(BLOCK_HEAD + cap);
    if (b == NULL) return NULL;
    b->cap = cap;
    b->used = 0;
    b->next = doc->blocks;
    doc->blocks = b;
    if (doc->next_cap < (1u << 20)) doc->next_cap *= 2;
  }
  void *p = (char *)b + BLOCK_HEAD + b->used;
  b->used += n;
  return p;
}

void mb_json_free(mb_json *doc) {
  if (doc == NULL) return;
  block *b = doc->blocks;
  while (b) {
    block *next = b->next;
    free(b);
    b = next;
  }
  free(doc);
}

const mb_jv *mb_json_root(const mb_json *doc) { return doc ? &doc->root : NULL; }

/* --- UTF-8 ----------------------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s[0..n) (no overlong forms, no surrogates,
 * nothing over U+10FFFF), or 0 when there is none. */
size_t mb_utf8_sequence(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
  if (c < 0xc2 || c > 0xf4 || n < len) return 0;
  unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
  if (c == 0xe0) lo = 0xa0;
  if (c == 0xed) hi = 0x9f;
  if (c == 0xf0) lo = 0x90;
  if (c == 0xf4) hi = 0x8f;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  return len;
}

static size_t utf8_put(char *out, unsigned long cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xe0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  out[0] = (char)(0xf0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  out[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* --- the parser ------------------------------------------------------------------------ */

typedef struct parser {
  const unsigned char *start, *p, *end;
  mb_json *doc;
  mb_jv *stack; /* finished values waiting for their array or object to close */
  size_t sp, stack_cap;
  char *str; /* the string being unescaped */
  size_t str_len, str_cap;
  int depth;
  mb_err *err;
} parser;

static int fail_at(parser *ps, const unsigned char *at, const char *what) {
  return mb_err_set(ps->err, MB_EINVAL, "invalid JSON: %s at byte %zu", what,
                    (size_t)(at - ps->start));
}

static int fail_nomem(parser *ps) {
  return mb_err_set(ps->err, MB_ENOMEM, "out of memory parsing JSON at byte %zu",
                    (size_t)(ps->p - ps->start));
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static int unexpected(parser *ps) {
  if (ps->p >= ps->end) return fail_at(ps, ps->p, "unexpected end of input");
  char what[48];
  unsigned char c = *ps->p;
  if (c >= 0x20 && c < 0x7f) snprintf(what, sizeof what, "unexpected character '%c'", c);
  else snprintf(what, sizeof what, "unexpected byte 0x%02x", c);
  return fail_at(ps, ps->p, what);
}

static int push(parser *ps, const mb_jv *v) {
  if (ps->sp == ps->stack_cap) {
    size_t cap = ps->stack_cap ? ps->stack_cap * 2 : 64;
    mb_jv *s = realloc(ps->stack, cap * sizeof *s);
    if (s == NULL) return fail_nomem(ps);
    ps->stack = s;
    ps->stack_cap = cap;
  }
  ps->stack[ps->sp++] = *v;
  return MB_OK;
}

static int str_add(parser *ps, const char *s, size_t n) {
  if (ps->str_cap - ps->str_len < n + 1) {
    size_t cap = ps->str_cap ? ps->str_cap : 256;
    while (cap - ps->str_len < n + 1) cap *= 2;
    char *p = realloc(ps->str, cap);
    if (p == NULL) return fail_nomem(ps);
    ps->str = p;
    ps->str_cap = cap;
  }
  memcpy(ps->str + ps->str_len, s, n);
  ps->str_len += n;
  return MB_OK;
}

static int literal(parser *ps, const char *word, mb_json_type type, mb_jv *out) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return unexpected(ps);
  ps->p += n;
  out->type = type;
  return MB_OK;
}

static const unsigned char *digits(const unsigned char *p, const unsigned char *end) {
  while (p < end && *p >= '0' && *p <= '9') p++;
  return p;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? ; the end of the token, or NULL. */
static const unsigned char *number_end(const unsigned char *p, const unsigned char *end) {
  if (p < end && *p == '-') p++;
  if (p >= end || *p < '0' || *p > '9') return NULL;
  p = *p == '0' ? p + 1 : digits(p, end);
  if (p < end && *p == '.') {
    const unsigned char *q = digits(p + 1, end);
    if (q == p + 1) return NULL;
    p = q;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    const unsigned char *q = digits(p, end);
    if (q == p) return NULL;
    p = q;
  }
  return p;
}

static int number(parser *ps, mb_jv *out) {
  const unsigned char *tok = ps->p, *end = number_end(tok, ps->end);
  if (end == NULL) return fail_at(ps, tok, "malformed number");
  ps->str_len = 0; /* strtod needs a NUL after the token: copy it */
  if (str_add(ps, (const char *)tok, (size_t)(end - tok)) != MB_OK) return MB_ENOMEM;
  ps->str[ps->str_len] = '\0';
  errno = 0;
  double v = strtod(ps->str, NULL);
  if (errno == ERANGE && isinf(v)) return fail_at(ps, tok, "number out of range");
  out->type = MB_JSON_NUMBER;
  out->u.num = v;
  ps->p = end;
  return MB_OK;
}

static int hex4(const unsigned char *p, const unsigned char *end, unsigned long *out) {
  if (end - p < 4) return -1;
  unsigned long v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = p[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return -1;
    v = v * 16 + (unsigned long)d;
  }
  *out = v;
  return 0;
}

/* \uXXXX (ps->p at the backslash), a surrogate pair as one code point. */
static int unicode_escape(parser *ps) {
  const unsigned char *at = ps->p;
  unsigned long cp, lo;
  if (hex4(at + 2, ps->end, &cp) != 0) return fail_at(ps, at, "bad \\u escape");
  ps->p = at + 6;
  if (cp >= 0xdc00 && cp <= 0xdfff) return fail_at(ps, at, "lone low surrogate");
  if (cp >= 0xd800 && cp <= 0xdbff) {
    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
        hex4(ps->p + 2, ps->end, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
      return fail_at(ps, at, "lone high surrogate");
    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    ps->p += 6;
  }
  char utf8[4];
  size_t n = utf8_put(utf8, cp);
  return str_add(ps, utf8, n);
}

static int escape(parser *ps) {
  if (ps->end - ps->p < 2) return fail_at(ps, ps->p, "unterminated escape");
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  unsigned char c = ps->p[1];
  if (c == 'u') return unicode_escape(ps);
  const char *hit = c ? strchr(from, c) : NULL;
  if (hit == NULL) return fail_at(ps, ps->p, "bad escape");
  ps->p += 2;
  return str_add(ps, &to[hit - from], 1);
}

/* A run of plain characters: up to a quote, a backslash or the end; checks UTF-8. */
static int plain_run(parser *ps) {
  const unsigned char *run = ps->p;
  while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\') {
    unsigned char c = *ps->p;
    if (c < 0x20) return fail_at(ps, ps->p, "control character in string");
    size_t n = c < 0x80 ? 1 : mb_utf8_sequence(ps->p, (size_t)(ps->end - ps->p));
    if (n == 0) return fail_at(ps, ps->p, "invalid UTF-8 in string");
    ps->p += n;
  }
  return str_add(ps, (const char *)run, (size_t)(ps->p - run));
}

/* A string literal (ps->p at its opening quote) into a string value in the arena. */
static int string(parser *ps, mb_jv *out) {
  const unsigned char *open = ps->p++;
  ps->str_len = 0;
  for (;;) {
    int rc = plain_run(ps);
    if (rc != MB_OK) return rc;
    if (ps->p >= ps->end) return fail_at(ps, open, "unterminated string");
    if (*ps->p == '"') break;
    if ((rc = escape(ps)) != MB_OK) return rc;
  }
  ps->p++;
  char *s = arena_alloc(ps->doc, ps->str_len + 1);
  if (s == NULL) return fail_nomem(ps);
  if (ps->str_len) memcpy(s, ps->str, ps->str_len);
  s[ps->str_len] = '\0';
  out->type = MB_JSON_STRING;
  out->u.str = s;
  out->len = ps->str_len;
  return MB_OK;
}

/* --- member index ---------------------------------------------------------------------- */

/* FNV-1a, finished with a murmur-style mix so that every bit of the key reaches the low
 * bits the table uses; seeded per document (its address) against chosen collisions. */
static size_t key_hash(const char *s, size_t n, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return (size_t)h;
}

static uint64_t index_seed(const mb_jv *obj) {
  return (uint64_t)(uintptr_t)obj->index * 0x9e3779b97f4a7c15ULL;
}

static int same_key(const mb_jv *k, const char *key, size_t n) {
  return k->len == n && memcmp(k->u.str, key, n) == 0;
}

/* The slot of key: where it is, or the empty slot where it would go. */
static size_t index_slot(const mb_jv *obj, const char *key, size_t n) {
  size_t i = key_hash(key, n, index_seed(obj)) & obj->index_mask;
  while (obj->index[i] && !same_key(&obj->u.items[2 * (obj->index[i] - 1)], key, n))
    i = (i + 1) & obj->index_mask;
  return i;
}

/* Indexes obj's members; a repeated key keeps its last member. */
static int build_index(parser *ps, mb_jv *obj) {
  size_t cap = 32;
  while (cap < obj->len * 2) cap *= 2;
  obj->index = arena_alloc(ps->doc, cap * sizeof *obj->index);
  if (obj->index == NULL) return fail_nomem(ps);
  memset(obj->index, 0, cap * sizeof *obj->index);
  obj->index_mask = cap - 1;
  for (size_t m = 0; m < obj->len; m++) {
    const mb_jv *k = &obj->u.items[2 * m];
    obj->index[index_slot(obj, k->u.str, k->len)] = m + 1;
  }
  return MB_OK;
}

/* --- values ---------------------------------------------------------------------------- */

static int value(parser *ps, mb_jv *out);

/* Moves the top n values of the stack into the arena as the items of out. */
static int collect(parser *ps, size_t base, mb_json_type type, mb_jv *out) {
  size_t n = ps->sp - base;
  out->type = type;
  out->len = type == MB_JSON_OBJECT ? n / 2 : n;
  if (n) {
    out->u.items = arena_alloc(ps->doc, n * sizeof *out->u.items);
    if (out->u.items == NULL) return fail_nomem(ps);
    memcpy(out->u.items, ps->stack + base, n * sizeof *out->u.items);
  }
  ps->sp = base;
  if (type == MB_JSON_OBJECT && out->len > INDEX_MIN_MEMBERS) return build_index(ps, out);
  return MB_OK;
}

/* The value after a key's colon or an array's comma, pushed. */
static int element(parser *ps) {
  mb_jv v = {0};
  int rc = value(ps, &v);
  return rc != MB_OK ? rc : push(ps, &v);
}

static int member(parser *ps) {
  mb_jv k = {0};
  skip_ws(ps);
  if (ps->p >= ps->end || *ps->p != '"') return unexpected(ps);
  int rc = string(ps, &k);
  if (rc == MB_OK) rc = push(ps, &k);
  if (rc != MB_OK) return rc;
  skip_ws(ps);
  if (ps->p >= ps->end || *ps->p != ':') return unexpected(ps);
  ps->p++;
  return element(ps);
}

/* An array or an object (ps->p at its opening bracket). */
static int container(parser *ps, mb_jv *out) {
  int is_object = *ps->p == '{';
  char close = is_object ? '}' : ']';
  if (++ps->depth > MB_JSON_MAX_DEPTH) return fail_at(ps, ps->p, "nesting too deep");
  size_t base = ps->sp;
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
  } else {
    for (;;) {
      int rc = is_object ? member(ps) : element(ps);
      if (rc != MB_OK) return rc;
      skip_ws(ps);
      if (ps->p < ps->end && *ps->p == ',') {
        ps->p++;
        continue;
      }
      if (ps->p < ps->end && *ps->p == close) break;
      return unexpected(ps);
    }
    ps->p++;
  }
  ps->depth--;
  return collect(ps, base, is_object ? MB_JSON_OBJECT : MB_JSON_ARRAY, out);
}

static int value(parser *ps, mb_jv *out) {
  skip_ws(ps);
  if (ps->p >= ps->end) return unexpected(ps);
  switch (*ps->p) {
  case '{':
  case '[': return container(ps, out);
  case '"': return string(ps, out);
  case 't': return literal(ps, "true", MB_JSON_TRUE, out);
  case 'f': return literal(ps, "false", MB_JSON_FALSE, out);
  case 'n': return literal(ps, "null", MB_JSON_NULL, out);
  default:
    if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return number(ps, out);
    return unexpected(ps);
  }
}

int mb_json_parse(const char *text, size_t len, mb_json **out, mb_err *err) {
  *out = NULL;
  if (text == NULL && len) return mb_err_set(err, MB_EINVAL, "invalid JSON: no text");
  mb_json *doc = calloc(1, sizeof *doc);
  if (doc == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory parsing JSON");
  doc->next_cap = 4096;
  static const unsigned char empty[1];
  const unsigned char *t = text ? (const unsigned char *)text : empty;
  parser ps = {t, t, t + len, doc, NULL, 0, 0, NULL, 0, 0, 0, err};
  int rc = value(&ps, &doc->root);
  if (rc == MB_OK) {
    skip_ws(&ps);
    if (ps.p < ps.end) rc = fail_at(&ps, ps.p, "unexpected data after the value");
  }
  free(ps.stack);
  free(ps.str);
  if (rc != MB_OK) {
    mb_json_free(doc);
    return rc;
  }
  *out = doc;
  return MB_OK;
}

/* --- accessors ------------------------------------------------------------------------- */

mb_json_type mb_jv_type(const mb_jv *v) { return v ? v->type : MB_JSON_NULL; }

const mb_jv *mb_jv_get(const mb_jv *obj, const char *key) {
  if (obj == NULL || obj->type != MB_JSON_OBJECT || key == NULL) return NULL;
  size_t n = strlen(key);
  if (obj->index) {
    size_t m = obj->index[index_slot(obj, key, n)];
    return m ? &obj->u.items[2 * m - 1] : NULL;
  }
  for (size_t m = obj->len; m-- > 0;)
    if (same_key(&obj->u.items[2 * m], key, n)) return &obj->u.items[2 * m + 1];
  return NULL;
}

size_t mb_jv_len(const mb_jv *v) {
  return v && (v->type == MB_JSON_ARRAY || v->type == MB_JSON_OBJECT) ? v->len : 0;
}

const mb_jv *mb_jv_at(const mb_jv *v, size_t i) {
  if (i >= mb_jv_len(v)) return NULL;
  return v->type == MB_JSON_OBJECT ? &v->u.items[2 * i + 1] : &v->u.items[i];
}

const char *mb_jv_key_at(const mb_jv *obj, size_t i) {
  if (mb_jv_type(obj) != MB_JSON_OBJECT || i >= obj->len) return NULL;
  return obj->u.items[2 * i].u.str;
}

const char *mb_jv_string(const mb_jv *v, size_t *len) {
  if (v == NULL || v->type != MB_JSON_STRING) return NULL;
  if (len) *len = v->len;
  return v->u.str;
}

const char *mb_jv_get_string(const mb_jv *obj, const char *key) {
  return mb_jv_string(mb_jv_get(obj, key), NULL);
}

double mb_jv_number(const mb_jv *v) { return v && v->type == MB_JSON_NUMBER ? v->u.num : 0; }

int mb_jv_is_true(const mb_jv *v) { return v && v->type == MB_JSON_TRUE; }

/* --- the writer ------------------------------------------------------------------------ */

/* Room for n more bytes and the NUL; 0 once an allocation failed. */
static int reserve(mb_jbuf *b, size_t n) {
  if (b->failed) return 0;
  if (b->cap - b->len > n) return 1;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len <= n) {
    if (cap > SIZE_MAX / 2) {
      b->failed = 1;
      return 0;
    }
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (p == NULL) {
    b->failed = 1;
    return 0;
  }
  b->data = p;
  b->cap = cap;
  return 1;
}

void mb_jbuf_free(mb_jbuf *b) {
  free(b->data);
  *b = (mb_jbuf)MB_JBUF_INIT;
}

char *mb_jbuf_take(mb_jbuf *b, size_t *len) {
  char *s = NULL;
  if (!b->failed && reserve(b, 0)) {
    b->data[b->len] = '\0';
    s = b->data;
    if (len) *len = b->len;
  } else {
    free(b->data);
  }
  *b = (mb_jbuf)MB_JBUF_INIT;
  return s;
}

void mb_jbuf_raw(mb_jbuf *b, const char *s, size_t n) {
  if (!reserve(b, n)) return;
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void mb_jbuf_cstr_raw(mb_jbuf *b, const char *s) { mb_jbuf_raw(b, s, strlen(s)); }

void mb_jbuf_printf(mb_jbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = 1;
    return;
  }
  if (!reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

static void put_char(mb_jbuf *b, char c) { mb_jbuf_raw(b, &c, 1); }

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

static void json_escape(mb_jbuf *b, unsigned char c) {
  static const char short_esc[] = "\b\f\n\r\t\"\\", short_name[] = "bfnrt\"\\";
  const char *hit = c ? strchr(short_esc, c) : NULL;
  char esc[8];
  if (hit) {
    esc[0] = '\\';
    esc[1] = short_name[hit - short_esc];
    mb_jbuf_raw(b, esc, 2);
  } else {
    snprintf(esc, sizeof esc, "\\u%04x", c);
    mb_jbuf_raw(b, esc, 6);
  }
}

void mb_jbuf_str(mb_jbuf *b, const char *s, size_t n) {
  if (s == NULL) {
    mb_jbuf_raw(b, "null", 4);
    return;
  }
  const unsigned char *u = (const unsigned char *)s;
  put_char(b, '"');
  size_t i = 0;
  while (i < n) {
    size_t run = i; /* bytes that go out as they are */
    while (i < n && u[i] >= 0x20 && u[i] < 0x80 && u[i] != '"' && u[i] != '\\' &&
           !(u[i] == '/' && i > 0 && u[i - 1] == '<'))
      i++;
    while (i < n && u[i] >= 0x80) {
      size_t len = mb_utf8_sequence(u + i, n - i);
      if (len == 0) break;
      i += len;
    }
    mb_jbuf_raw(b, s + run, i - run);
    if (i == run && i < n) { /* a byte to escape or replace */
      if (u[i] >= 0x80) mb_jbuf_raw(b, replacement, 3);
      else if (u[i] == '/') mb_jbuf_raw(b, "\\/", 2);
      else json_escape(b, u[i]);
      i++;
    }
  }
  put_char(b, '"');
}

void mb_jbuf_cstr(mb_jbuf *b, const char *s) { mb_jbuf_str(b, s, s ? strlen(s) : 0); }

void mb_jbuf_num(mb_jbuf *b, double v) {
  if (isnan(v) || isinf(v)) {
    mb_jbuf_raw(b, "null", 4);
    return;
  }
  char text[40];
  if (v == trunc(v) && fabs(v) < 1e17) { /* an integer: its exact digits, no exponent */
    snprintf(text, sizeof text, "%.0f", v);
  } else {
    static const char *const forms[] = {"%.15g", "%.16g", "%.17g"};
    for (size_t f = 0; f < 3; f++) {
      snprintf(text, sizeof text, forms[f], v);
      if (strtod(text, NULL) == v) break;
    }
  }
  mb_jbuf_cstr_raw(b, text);
}

void mb_jbuf_int(mb_jbuf *b, long long v) { mb_jbuf_printf(b, "%lld", v); }

static const char *xml_entity(unsigned char c) {
  switch (c) {
  case '&': return "&amp;";
  case '<': return "&lt;";
  case '>': return "&gt;";
  case '"': return "&quot;";
  case '\'': return "&#39;";
  default: return NULL;
  }
}

/* A valid UTF-8 character XML may hold: not U+FFFE or U+FFFF. */
static size_t xml_char(const unsigned char *u, size_t n) {
  size_t len = mb_utf8_sequence(u, n);
  if (len == 3 && u[0] == 0xef && u[1] == 0xbf && (u[2] == 0xbe || u[2] == 0xbf)) return 0;
  return len;
}

void mb_jbuf_xml(mb_jbuf *b, const char *s, size_t n) {
  if (s == NULL) return;
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (i < n &&
           ((u[i] >= 0x20 && u[i] < 0x7f && !xml_entity(u[i])) || u[i] == '\t' || u[i] == '\n'))
      i++;
    while (i < n && u[i] >= 0x80) {
      size_t len = xml_char(u + i, n - i);
      if (len == 0) break;
      i += len;
    }
    mb_jbuf_raw(b, s + run, i - run);
    if (i == run && i < n) {
      if (u[i] >= 0x80) mb_jbuf_raw(b, replacement, 3);
      else if (xml_entity(u[i])) mb_jbuf_cstr_raw(b, xml_entity(u[i]));
      i++; /* other controls are dropped */
    }
  }
}

void mb_jbuf_value(mb_jbuf *b, const mb_jv *v) {
  switch (mb_jv_type(v)) {
  case MB_JSON_NULL: mb_jbuf_raw(b, "null", 4); return;
  case MB_JSON_FALSE: mb_jbuf_raw(b, "false", 5); return;
  case MB_JSON_TRUE: mb_jbuf_raw(b, "true", 4); return;
  case MB_JSON_NUMBER: mb_jbuf_num(b, v->u.num); return;
  case MB_JSON_STRING: mb_jbuf_str(b, v->u.str, v->len); return;
  case MB_JSON_ARRAY:
  case MB_JSON_OBJECT: break;
  }
  int is_object = v->type == MB_JSON_OBJECT;
  put_char(b, is_object ? '{' : '[');
  for (size_t i = 0; i < v->len; i++) {
    if (i) put_char(b, ',');
    if (is_object) {
      mb_jbuf_value(b, &v->u.items[2 * i]);
      put_char(b, ':');
    }
    mb_jbuf_value(b, mb_jv_at(v, i));
  }
  put_char(b, is_object ? '}' : ']');
}
