/* headers_json.c — the one JSON encoding of a header list (DESIGN §4) and its strict
 * decoder. Owns: the decoder's duplicate-key table and its per-process SipHash key.
 * Never trusts its input (every malformed block is MB_EINVAL with a reason, in time
 * linear in its size), never touches Lua, sockets or databases. */
#include "headers_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"

/* --- JSON encoding --------------------------------------------------------------------- */

typedef struct buf {
  char *p;
  size_t len, cap;
  int failed;
} buf;

static void put(buf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
      b->failed = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void put_json_string(buf *b, const char *s) {
  put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(b, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      put(b, esc, 6);
    } else {
      put(b, (const char *)&c, 1);
    }
  }
  put(b, "\"", 1);
}

char *mb_headers_to_json(const mb_headers *h, size_t *len) {
  buf b = {NULL, 0, 0, 0};
  put(&b, "{", 1);
  for (size_t i = 0; i < h->len; i++) {
    if (i) put(&b, ",", 1);
    put_json_string(&b, h->items[i].key);
    put(&b, ":", 1);
    put_json_string(&b, h->items[i].value);
  }
  put(&b, "}", 1);
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  if (len) *len = b.len;
  return b.p;
}

/* --- JSON decoding (strict) ----------------------------------------------------------- */

typedef struct reader {
  const char *p, *end;
  mb_err *err;
} reader;

static int fail(reader *r, const char *what) {
  return mb_err_set(r->err, MB_EINVAL, "malformed headers: %s", what);
}

static void skip_ws(reader *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
    r->p++;
}

/* The value of hex digit c, or -1. */
static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

static int hex4(reader *r, unsigned *out) {
  if (r->end - r->p < 4) return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int d = hex_digit(*r->p++);
    if (d < 0) return 0;
    v = v * 16 + (unsigned)d;
  }
  *out = v;
  return 1;
}

static void put_utf8(buf *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | cp >> 6);
    u[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | cp >> 12);
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (char)(0xf0 | cp >> 18);
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  put(b, u, n);
}

/* After "\u": one code point, with a surrogate pair joined. */
static int read_unicode_escape(reader *r, buf *b) {
  unsigned cp, lo;
  if (!hex4(r, &cp)) return fail(r, "bad \\u escape");
  if (cp >= 0xdc00 && cp <= 0xdfff) return fail(r, "lone low surrogate in \\u escape");
  if (cp >= 0xd800 && cp <= 0xdbff) {
    if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
      return fail(r, "high surrogate without its low half");
    r->p += 2;
    if (!hex4(r, &lo) || lo < 0xdc00 || lo > 0xdfff)
      return fail(r, "high surrogate without its low half");
    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
  }
  if (cp == 0) return fail(r, "NUL character in a string");
  put_utf8(b, cp);
  return MB_OK;
}

static int read_escape(reader *r, buf *b) {
  if (r->p >= r->end) return fail(r, "unterminated string");
  char c = *r->p++, out;
  switch (c) {
  case '"':
  case '\\':
  case '/': out = c; break;
  case 'b': out = '\b'; break;
  case 'f': out = '\f'; break;
  case 'n': out = '\n'; break;
  case 'r': out = '\r'; break;
  case 't': out = '\t'; break;
  case 'u': return read_unicode_escape(r, b);
  default: return fail(r, "invalid escape in a string");
  }
  put(b, &out, 1);
  return MB_OK;
}

/* Reads a JSON string at r->p into a malloc'd C string. */
static int read_string(reader *r, char **out) {
  buf b = {NULL, 0, 0, 0};
  int rc = MB_OK;
  *out = NULL;
  if (r->p >= r->end || *r->p != '"') return fail(r, "expected a string");
  r->p++;
  put(&b, "", 0);
  for (;;) {
    if (r->p >= r->end) {
      rc = fail(r, "unterminated string");
      break;
    }
    unsigned char c = (unsigned char)*r->p++;
    if (c == '"') break;
    if (c < 0x20) rc = fail(r, "control character inside a string");
    else if (c == '\\') rc = read_escape(r, &b);
    else put(&b, (const char *)&c, 1);
    if (rc != MB_OK) break;
  }
  if (rc == MB_OK && b.failed) rc = mb_err_set(r->err, MB_ENOMEM, "out of memory");
  if (rc != MB_OK) {
    free(b.p);
    return rc;
  }
  *out = b.p;
  return MB_OK;
}

/* The keys decoded so far, for finding a duplicate in constant time: an open-addressing
 * table of indexes into the header list (slot = index + 1, 0 = empty), hashed with
 * SipHash-1-3 under a per-process random key, so that a writer cannot line keys up on
 * one slot and make the decoder quadratic again (it runs under SQLite's write lock). */
typedef struct key_set {
  uint32_t *slots;
  size_t cap; /* a power of two, at least twice the number of keys */
} key_set;

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4]) {
  v[0] += v[1], v[1] = ROTL(v[1], 13), v[1] ^= v[0], v[0] = ROTL(v[0], 32);
  v[2] += v[3], v[3] = ROTL(v[3], 16), v[3] ^= v[2];
  v[0] += v[3], v[3] = ROTL(v[3], 21), v[3] ^= v[0];
  v[2] += v[1], v[1] = ROTL(v[1], 17), v[1] ^= v[2], v[2] = ROTL(v[2], 32);
}

static uint64_t siphash13(const char *s, size_t len) {
  static uint64_t k[2];
  static int keyed;
  if (!keyed) {
    mb_random_bytes((uint8_t *)k, sizeof k);
    keyed = 1;
  }
  uint64_t v[4] = {k[0] ^ 0x736f6d6570736575ULL, k[1] ^ 0x646f72616e646f6dULL,
                   k[0] ^ 0x6c7967656e657261ULL, k[1] ^ 0x7465646279746573ULL};
  uint64_t m, last = (uint64_t)len << 56;
  const unsigned char *p = (const unsigned char *)s;
  for (; len >= 8; len -= 8, p += 8) {
    memcpy(&m, p, 8);
    v[3] ^= m;
    sip_round(v);
    v[0] ^= m;
  }
  for (size_t i = 0; i < len; i++) last |= (uint64_t)p[i] << (8 * i);
  v[3] ^= last;
  sip_round(v);
  v[0] ^= last;
  v[2] ^= 0xff;
  for (int i = 0; i < 3; i++) sip_round(v);
  return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* The slot that holds key, or the empty slot where it would go. */
static uint32_t *key_slot(const key_set *set, const mb_headers *h, const char *key) {
  size_t mask = set->cap - 1, i = (size_t)siphash13(key, strlen(key)) & mask;
  while (set->slots[i] && strcmp(h->items[set->slots[i] - 1].key, key) != 0) i = (i + 1) & mask;
  return &set->slots[i];
}

/* Room for one more key than h holds. MB_OK or MB_ENOMEM. */
static int key_set_reserve(key_set *set, const mb_headers *h) {
  if ((h->len + 1) * 2 <= set->cap) return MB_OK;
  key_set bigger = {NULL, set->cap ? set->cap * 2 : 64};
  if ((bigger.slots = calloc(bigger.cap, sizeof *bigger.slots)) == NULL) return MB_ENOMEM;
  for (size_t i = 0; i < h->len; i++) *key_slot(&bigger, h, h->items[i].key) = (uint32_t)i + 1;
  free(set->slots);
  *set = bigger;
  return MB_OK;
}

static int read_member(reader *r, mb_headers *out, key_set *keys) {
  char *key = NULL, *value = NULL;
  uint32_t *slot = NULL;
  int rc = read_string(r, &key);
  skip_ws(r);
  if (rc == MB_OK && (r->p >= r->end || *r->p++ != ':')) rc = fail(r, "expected ':'");
  skip_ws(r);
  if (rc == MB_OK && (r->p >= r->end || *r->p != '"'))
    rc = fail(r, "every header value must be a string");
  if (rc == MB_OK) rc = read_string(r, &value);
  if (rc == MB_OK && key_set_reserve(keys, out) != MB_OK)
    rc = mb_err_set(r->err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK && *(slot = key_slot(keys, out, key)) != 0)
    rc = mb_err_set(r->err, MB_EINVAL, "malformed headers: duplicate key '%.64s'", key);
  if (rc == MB_OK && mb_headers_append_n(out, key, strlen(key), value, strlen(value)) != MB_OK)
    rc = mb_err_set(r->err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK) *slot = (uint32_t)out->len;
  free(key);
  free(value);
  return rc;
}

static int read_object(reader *r, mb_headers *out, key_set *keys) {
  skip_ws(r);
  if (r->p >= r->end || *r->p++ != '{') return fail(r, "expected a JSON object");
  skip_ws(r);
  if (r->p < r->end && *r->p == '}') {
    r->p++;
    return MB_OK;
  }
  for (;;) {
    skip_ws(r);
    int rc = read_member(r, out, keys);
    if (rc != MB_OK) return rc;
    skip_ws(r);
    if (r->p >= r->end) return fail(r, "unterminated object");
    char c = *r->p++;
    if (c == '}') return MB_OK;
    if (c != ',') return fail(r, "expected ',' or '}'");
  }
}

int mb_headers_from_json(const char *json, size_t len, mb_headers *out, mb_err *err) {
  mb_headers_free(out);
  if (json == NULL) return mb_err_set(err, MB_EINVAL, "malformed headers: none");
  if (len > MB_HEADERS_JSON_MAX)
    return mb_err_set(err, MB_EINVAL, "malformed headers: %zu bytes, over the limit of %u", len,
                      MB_HEADERS_JSON_MAX);
  reader r = {json, json + len, err};
  key_set keys = {NULL, 0};
  int rc = read_object(&r, out, &keys);
  free(keys.slots);
  skip_ws(&r);
  if (rc == MB_OK && r.p != r.end) rc = fail(&r, "trailing bytes after the object");
  if (rc != MB_OK) mb_headers_free(out);
  return rc;
}
