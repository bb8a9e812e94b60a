/* envelope.c — ids, time stamps, header lists and the one JSON encoding of headers that
 * every transport storing text uses (DESIGN §4).
 * Owns: UUIDv7 generation (its per-process counter), the header list, the strict header
 * decoder. Never touches Lua, sockets or databases, and never trusts decoded input. */
#include "envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* --- kinds ------------------------------------------------------------------------- */

static const char *const kind_names[] = {"command", "event", "message"};

const char *mb_kind_name(mb_kind kind) {
  return (unsigned)kind < 3 ? kind_names[kind] : "unknown";
}

int mb_kind_parse(const char *name, mb_kind *out) {
  for (int i = 0; name && i < 3; i++) {
    if (strcmp(name, kind_names[i]) == 0) {
      *out = (mb_kind)i;
      return MB_OK;
    }
  }
  return MB_EINVAL;
}

/* --- ids ----------------------------------------------------------------------------- */

/* Fills buf from the kernel's random source. */
static void kernel_random(uint8_t *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(buf + got, len - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
  }
  /* getrandom cannot fail on Linux >= 3.17 for small sizes; fall back to time-seeded
   * bits only so that an id is still produced. */
  for (; got < len; got++) buf[got] = (uint8_t)(rand() ^ (int)mb_now_usec());
}

/* Ids and span ids take a few random bytes per message: one getrandom per 4 KiB rather
 * than two or three system calls per message (make bench showed them). Per thread. */
#define RANDOM_POOL 4096
static _Thread_local uint8_t pool[RANDOM_POOL];
static _Thread_local size_t pool_left;

void mb_random_bytes(uint8_t *buf, size_t len) {
  if (len > RANDOM_POOL / 4) {
    kernel_random(buf, len);
    return;
  }
  if (pool_left < len) {
    kernel_random(pool, RANDOM_POOL);
    pool_left = RANDOM_POOL;
  }
  memcpy(buf, pool + RANDOM_POOL - pool_left, len);
  memset(pool + RANDOM_POOL - pool_left, 0, len); /* handed out once */
  pool_left -= len;
}

/* The last (ms, counter) handed out: ids of this process never go backwards. */
static uint64_t last_ms;
static uint16_t last_counter;

static void next_stamp(uint64_t *ms, uint16_t *counter, uint16_t random_start) {
  uint64_t now = (uint64_t)(mb_now_usec() / 1000);
  if (now > last_ms) {
    last_ms = now;
    last_counter = random_start & 0x3ff; /* room to count up within the millisecond */
  } else if (++last_counter > 0xfff) {
    last_ms++; /* counter exhausted (or clock stepped back): borrow the next ms */
    last_counter = 0;
  }
  *ms = last_ms;
  *counter = last_counter;
}

void mb_uuidv7(char out[MB_ID_LEN + 1]) {
  uint8_t b[16];
  mb_random_bytes(b, sizeof b);
  uint64_t ms;
  uint16_t counter;
  next_stamp(&ms, &counter, (uint16_t)(b[6] << 8 | b[7]));
  for (int i = 0; i < 6; i++) b[i] = (uint8_t)(ms >> (40 - 8 * i));
  b[6] = (uint8_t)(0x70 | (counter >> 8));
  b[7] = (uint8_t)counter;
  b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
  static const char hex[] = "0123456789abcdef";
  char *p = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 15];
  }
  *p = '\0';
}

static int is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int mb_id_valid(const char *s) {
  if (s == NULL || strlen(s) != MB_ID_LEN) return 0;
  for (int i = 0; i < MB_ID_LEN; i++) {
    int dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !is_hex(s[i])) return 0;
  }
  return 1;
}

/* --- time ---------------------------------------------------------------------------- */

int64_t mb_now_usec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

double mb_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "YYYY-MM-DDTHH:MM:SS" of the last second formatted: most timestamps share it. */
static _Thread_local time_t iso_second = -1;
static _Thread_local char iso_prefix[20];

void mb_time_iso(int64_t usec, char out[MB_TIME_LEN + 1]) {
  time_t secs = (time_t)(usec / 1000000);
  long frac = (long)(usec % 1000000);
  if (frac < 0) {
    frac += 1000000;
    secs--;
  }
  if (secs != iso_second) {
    struct tm tm;
    gmtime_r(&secs, &tm);
    char wide[96]; /* the compiler cannot know tm's fields are small */
    snprintf(wide, sizeof wide, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(iso_prefix, wide, sizeof iso_prefix - 1);
    iso_second = secs;
  }
  memcpy(out, iso_prefix, 19);
  out[19] = '.';
  for (int i = 25; i >= 20; i--, frac /= 10) out[i] = (char)('0' + frac % 10);
  out[26] = 'Z';
  out[MB_TIME_LEN] = '\0';
}

static int digits(const char **s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++, (*s)++) {
    if (**s < '0' || **s > '9') return 0;
    v = v * 10 + (**s - '0');
  }
  *out = v;
  return 1;
}

static int expect(const char **s, char c) { return *(*s)++ == c; }

static int days_in_month(int y, int mo) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return days[mo - 1] + (mo == 2 && leap);
}

/* A calendar date and time that exists (a leap second only at 23:59:60). */
static int valid_time(int y, int mo, int d, int h, int mi, int se) {
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59) return 0;
  return se <= 59 || (se == 60 && h == 23 && mi == 59);
}

int mb_time_parse(const char *s, int64_t *usec) {
  int y, mo, d, h, mi, se, frac = 0, nfrac = 0;
  if (s == NULL) return MB_EINVAL;
  if (!digits(&s, 4, &y) || !expect(&s, '-') || !digits(&s, 2, &mo) || !expect(&s, '-') ||
      !digits(&s, 2, &d) || !expect(&s, 'T') || !digits(&s, 2, &h) || !expect(&s, ':') ||
      !digits(&s, 2, &mi) || !expect(&s, ':') || !digits(&s, 2, &se))
    return MB_EINVAL;
  if (*s == '.') {
    for (s++; *s >= '0' && *s <= '9' && nfrac < 6; s++, nfrac++) frac = frac * 10 + (*s - '0');
    if (nfrac == 0) return MB_EINVAL; /* a dot needs digits */
    for (int i = nfrac; i < 6; i++) frac *= 10;
  }
  if (s[0] != 'Z' || s[1] != '\0') return MB_EINVAL;
  if (!valid_time(y, mo, d, h, mi, se)) return MB_EINVAL;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                  .tm_hour = h, .tm_min = mi, .tm_sec = se};
  time_t secs = timegm(&tm);
  *usec = (int64_t)secs * 1000000 + frac;
  return MB_OK;
}

/* --- header lists -------------------------------------------------------------------- */

static mb_header *find(const mb_headers *h, const char *key) {
  for (size_t i = 0; i < h->len; i++)
    if (strcmp(h->items[i].key, key) == 0) return &h->items[i];
  return NULL;
}

static int grow(mb_headers *h) {
  if (h->len < h->cap) return MB_OK;
  size_t cap = h->cap ? h->cap * 2 : 16;
  mb_header *items = realloc(h->items, cap * sizeof *items);
  if (items == NULL) return MB_ENOMEM;
  h->items = items;
  h->cap = cap;
  return MB_OK;
}

/* One allocation holds a header's key and value ("key\0value\0"): key owns it. */
static int make_pair_n(mb_header *it, const char *key, size_t klen, const char *value,
                       size_t vlen) {
  char *block = malloc(klen + vlen + 2);
  if (block == NULL) return MB_ENOMEM;
  memcpy(block, key, klen);
  block[klen] = '\0';
  memcpy(block + klen + 1, value, vlen);
  block[klen + 1 + vlen] = '\0';
  it->key = block;
  it->value = block + klen + 1;
  return MB_OK;
}

static int make_pair(mb_header *it, const char *key, const char *value) {
  return make_pair_n(it, key, strlen(key), value, strlen(value));
}

int mb_headers_append_n(mb_headers *h, const char *key, size_t klen, const char *value,
                        size_t vlen) {
  if (grow(h) != MB_OK || make_pair_n(&h->items[h->len], key, klen, value, vlen) != MB_OK)
    return MB_ENOMEM;
  h->len++;
  return MB_OK;
}

static int append(mb_headers *h, const char *key, const char *value) {
  return mb_headers_append_n(h, key, strlen(key), value, strlen(value));
}

int mb_headers_set(mb_headers *h, const char *key, const char *value) {
  mb_header *it = find(h, key);
  if (it == NULL) return append(h, key, value);
  mb_header replaced;
  if (make_pair(&replaced, key, value) != MB_OK) return MB_ENOMEM;
  free(it->key);
  *it = replaced;
  return MB_OK;
}

const char *mb_headers_get(const mb_headers *h, const char *key) {
  mb_header *it = find(h, key);
  return it ? it->value : NULL;
}

int mb_headers_remove(mb_headers *h, const char *key) {
  mb_header *it = find(h, key);
  if (it == NULL) return 0;
  free(it->key);
  size_t i = (size_t)(it - h->items);
  memmove(it, it + 1, (h->len - i - 1) * sizeof *it);
  h->len--;
  return 1;
}

int mb_headers_copy(mb_headers *dst, const mb_headers *src) {
  mb_headers_free(dst);
  for (size_t i = 0; i < src->len; i++) {
    int rc = append(dst, src->items[i].key, src->items[i].value);
    if (rc != MB_OK) {
      mb_headers_free(dst);
      return rc;
    }
  }
  return MB_OK;
}

void mb_headers_free(mb_headers *h) {
  for (size_t i = 0; i < h->len; i++) free(h->items[i].key); /* the value lives in its block */
  free(h->items);
  h->items = NULL;
  h->len = h->cap = 0;
}

const char *mb_header_key_problem(const char *key, int allow_reserved) {
  size_t len = key ? strlen(key) : 0;
  if (len == 0) return "a header key may not be empty";
  if (len > MB_HEADER_KEY_MAX) return "a header key may not be longer than 255 bytes";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)key[i];
    if (c < 0x21 || c > 0x7e)
      return "a header key must be printable ASCII without spaces (0x21-0x7e)";
  }
  if (!allow_reserved && strncmp(key, MB_RESERVED_PREFIX, strlen(MB_RESERVED_PREFIX)) == 0)
    return "header keys starting with \"moonbus.\" are reserved for the bus";
  if (!allow_reserved && (key[0] == 'x' || key[0] == 'X') && key[1] == '-')
    return "header keys starting with \"x-\" are the broker's (RabbitMQ sets and strips "
           "them): choose another name";
  return NULL;
}

int mb_headers_check(const mb_headers *h, int allow_reserved, mb_err *err) {
  if (h->len > MB_HEADERS_MAX_COUNT)
    return mb_err_set(err, MB_EINVAL, "%zu headers, over the limit of %d", h->len,
                      MB_HEADERS_MAX_COUNT);
  size_t total = 0;
  for (size_t i = 0; i < h->len; i++) {
    const char *key = h->items[i].key, *why = mb_header_key_problem(key, allow_reserved);
    if (why) return mb_err_set(err, MB_EINVAL, "header '%.64s': %s", key, why);
    total += strlen(key) + strlen(h->items[i].value);
  }
  if (total > MB_HEADERS_MAX_BYTES)
    return mb_err_set(err, MB_EINVAL, "headers add up to %zu bytes, over the limit of %u",
                      total, MB_HEADERS_MAX_BYTES);
  return MB_OK;
}

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

static int hex4(reader *r, unsigned *out) {
  if (r->end - r->p < 4) return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *r->p++;
    if (!is_hex(c)) return 0;
    v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
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
  case '"': case '\\': case '/': out = c; break;
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
  if (rc == MB_OK && append(out, key, value) != MB_OK)
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
    return mb_err_set(err, MB_EINVAL, "malformed headers: %zu bytes, over the limit of %u",
                      len, MB_HEADERS_JSON_MAX);
  reader r = {json, json + len, err};
  key_set keys = {NULL, 0};
  int rc = read_object(&r, out, &keys);
  free(keys.slots);
  skip_ws(&r);
  if (rc == MB_OK && r.p != r.end) rc = fail(&r, "trailing bytes after the object");
  if (rc != MB_OK) mb_headers_free(out);
  return rc;
}

/* --- the envelope ---------------------------------------------------------------------- */

void mb_envelope_init(mb_envelope *e) {
  memset(e, 0, sizeof *e);
}

void mb_envelope_free(mb_envelope *e) {
  free(e->type);
  free(e->correlation_id);
  free(e->reply_to);
  free(e->body);
  mb_headers_free(&e->headers);
  mb_envelope_init(e);
}

static int replace(char **field, const char *value) {
  char *copy = NULL;
  if (value && (copy = strdup(value)) == NULL) return MB_ENOMEM;
  free(*field);
  *field = copy;
  return MB_OK;
}

int mb_envelope_set_type(mb_envelope *e, const char *type) { return replace(&e->type, type); }

int mb_envelope_set_correlation_id(mb_envelope *e, const char *id) {
  return replace(&e->correlation_id, id);
}

int mb_envelope_set_reply_to(mb_envelope *e, const char *queue) {
  return replace(&e->reply_to, queue);
}

int mb_envelope_set_body(mb_envelope *e, const char *body, size_t len) {
  char *copy = malloc(len + 1);
  if (copy == NULL) return MB_ENOMEM;
  if (len) memcpy(copy, body, len);
  copy[len] = '\0';
  free(e->body);
  e->body = copy;
  e->body_len = len;
  return MB_OK;
}

int mb_envelope_copy(mb_envelope *dst, const mb_envelope *src) {
  mb_envelope_free(dst);
  memcpy(dst->id, src->id, sizeof dst->id);
  int rc = mb_envelope_set_type(dst, src->type);
  if (rc == MB_OK) rc = mb_envelope_set_correlation_id(dst, src->correlation_id);
  if (rc == MB_OK) rc = mb_envelope_set_reply_to(dst, src->reply_to);
  if (rc == MB_OK) rc = mb_headers_copy(&dst->headers, &src->headers);
  if (rc == MB_OK && src->body) rc = mb_envelope_set_body(dst, src->body, src->body_len);
  if (rc != MB_OK) mb_envelope_free(dst);
  return rc;
}

int mb_envelope_take_id(mb_envelope *e, const char *id, size_t len) {
  if (id && len == MB_ID_LEN && memchr(id, '\0', len) == NULL) {
    memcpy(e->id, id, MB_ID_LEN);
    e->id[MB_ID_LEN] = '\0';
    if (mb_id_valid(e->id)) return MB_OK;
  }
  mb_uuidv7(e->id);
  char original[MB_HEADER_KEY_MAX + 1];
  size_t n = id ? strnlen(id, len < MB_HEADER_KEY_MAX ? len : MB_HEADER_KEY_MAX) : 0;
  memcpy(original, id ? id : "", n);
  original[n] = '\0';
  return mb_headers_set(&e->headers, MB_H_FOREIGN_ID, original);
}

int mb_envelope_kind(const mb_envelope *e, mb_kind *out) {
  return mb_kind_parse(mb_headers_get(&e->headers, MB_H_KIND), out);
}
