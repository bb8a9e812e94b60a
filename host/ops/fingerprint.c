/* fingerprint.c — the group of a failed message (DESIGN §10): the exception's first line
 * with its leading "FILE:LINE:" kept and, after it, numbers, UUIDs, hex ids and quoted
 * values blanked; the group id is the FNV-1a 64 hash of that title.
 * Owns nothing: a pure function of its input.
 * Never: allocates, fails, writes past title[MB_FINGERPRINT_TITLE_MAX], or reads a line
 * more than a bounded number of times (a quote looks ahead at most QUOTE_SPAN bytes). */
#include "ops/fingerprint.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

#define QUOTE_SPAN 1024 /* the longest quoted value that is blanked */
#define HEX_ID_MIN 8    /* a run of hex digits this long (with a digit) is an id */
static const char ellipsis[] = "\xe2\x80\xa6"; /* U+2026 */

/* The title being written: appends that would not fit whole are refused, and then the
 * title is full (so a placeholder or a character is never cut). */
typedef struct out {
  char *p;
  size_t len;
  int full;
} out;

static void put(out *o, const char *s, size_t n) {
  if (o->full || o->len + n >= MB_FINGERPRINT_TITLE_MAX) {
    o->full = 1;
    return;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static int is_word(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_space(unsigned char c) { return c == ' ' || c < 0x20 || c == 0x7f; }
static int line_end(unsigned char c) { return c == '\0' || c == '\n' || c == '\r'; }

/* The length of a valid UTF-8 sequence at s (NUL-terminated), or 0. */

/* The length of a Lua error location at the start of s: `[string "..."]:N:` or a path
 * with no whitespace followed by `:N:` (a chunk name, as luaL_where writes it); 0 if
 * there is none. */
static size_t location_len(const char *s) {
  size_t i = 0;
  if (strncmp(s, "[string \"", 9) == 0) {
    const char *close = strstr(s, "\"]:");
    if (close == NULL || memchr(s, '\n', (size_t)(close - s))) return 0;
    i = (size_t)(close - s) + 2;
  } else {
    while (i < QUOTE_SPAN && !line_end((unsigned char)s[i]) && !is_space((unsigned char)s[i]) &&
           !(s[i] == ':' && is_digit((unsigned char)s[i + 1])))
      i++;
    if (i == 0 || s[i] != ':') return 0;
  }
  size_t d = i + 1;
  while (is_digit((unsigned char)s[d])) d++;
  return d > i + 1 && s[d] == ':' ? d + 1 : 0;
}

/* 8-4-4-4-12 hex digits, not followed by a word character. */
static size_t uuid_len(const unsigned char *s) {
  static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
  for (size_t i = 0; i < sizeof shape - 1; i++)
    if (shape[i] == '-' ? s[i] != '-' : !is_hex(s[i])) return 0;
  return is_word(s[sizeof shape - 1]) ? 0 : sizeof shape - 1;
}

/* A number or an id at the start of a word (s[0] a word character, the one before it
 * not): the length of what is blanked, or 0 for a word kept as it is. */
static size_t id_len(const unsigned char *s) {
  size_t n = uuid_len(s);
  if (n) return n;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && is_hex(s[2])) {
    n = 2;
    while (is_word(s[n])) n++;
    return n;
  }
  if (is_digit(s[0])) { /* 42, 3.14, 1e-5, 2024-01-02 */
    n = 1;
    for (;;) {
      if (is_word(s[n])) n++;
      else if ((s[n] == '.' || s[n] == '-' || s[n] == '+') && is_digit(s[n + 1])) n += 2;
      else return n;
    }
  }
  int digits = 0;
  for (n = 0; is_hex(s[n]); n++) digits += is_digit(s[n]);
  return n >= HEX_ID_MIN && digits && !is_word(s[n]) ? n : 0;
}

/* A quoted value at s (s[0] a quote that opens one, the byte before it not a word
 * character): the length up to and including its closing quote, or 0. */
static size_t quoted_len(const unsigned char *s) {
  for (size_t i = 1; i < QUOTE_SPAN && !line_end(s[i]); i++)
    if (s[i] == s[0] && !is_word(s[i + 1])) return i + 1;
  return 0;
}

/* Copies the character at s; a byte that is not UTF-8 becomes "?" (the title stays
 * valid text). Returns the bytes read. */
static size_t put_char(out *o, const unsigned char *s) {
  size_t n = *s < 0x80 ? 1 : mb_utf8_sequence(s, strnlen((const char *)s, 4));
  if (n) put(o, (const char *)s, n);
  else put(o, "?", 1);
  return n ? n : 1;
}

/* The location, as it is (but valid text). */
static void keep(out *o, const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n && !o->full;) i += put_char(o, s + i);
}

/* Writes the text after the location, blanked; s at its first byte, prev the byte before
 * it. */
static void blank_rest(out *o, const unsigned char *s, unsigned char prev) {
  while (!line_end(*s) && !o->full) {
    size_t n = 0;
    if (is_space(*s)) {
      while (is_space(*s) && !line_end(*s)) s++;
      if (!line_end(*s)) put(o, " ", 1);
      prev = ' ';
      continue;
    }
    if (!is_word(prev) && (*s == '\'' || *s == '"') && (n = quoted_len(s)) != 0) {
      put(o, (const char *)s, 1);
      put(o, ellipsis, sizeof ellipsis - 1);
      put(o, (const char *)s, 1);
    } else if (!is_word(prev) && *s == '-' && is_digit(s[1]) && (n = id_len(s + 1)) != 0) {
      n++; /* a negative number */
      put(o, "#", 1);
    } else if (!is_word(prev) && is_word(*s) && (n = id_len(s)) != 0) {
      put(o, "#", 1);
    } else {
      n = put_char(o, s);
    }
    s += n;
    prev = s[-1];
  }
}

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
  return h;
}

/* The first line of text, at most len - 1 bytes of it, into line, without the note the
 * pipeline appends to a parked message's reason (" (failed 3 attempts in each of 2
 * rounds)"): how often it was tried says nothing about which failure it is. */
static void reason_only(const char *text, char *line, size_t len) {
  size_t n = 0;
  while (text[n] && text[n] != '\n' && text[n] != '\r' && n + 1 < len) n++;
  memcpy(line, text, n);
  line[n] = '\0';
  char *note = NULL;
  for (char *p = strstr(line, " (failed "); p; p = strstr(p + 1, " (failed ")) note = p;
  if (note && n >= 7 &&
      (strcmp(line + n - 7, " round)") == 0 || strcmp(line + n - 7, "rounds)") == 0))
    *note = '\0';
}

void mb_fingerprint(const char *exception, char id[MB_FINGERPRINT_ID_LEN + 1],
                    char title[MB_FINGERPRINT_TITLE_MAX]) {
  out o = {title, 0, 0};
  char line[4096];
  if (exception) reason_only(exception, line, sizeof line);
  const char *s = exception ? line : "";
  while (is_space((unsigned char)*s) && !line_end((unsigned char)*s)) s++;
  size_t loc = location_len(s);
  keep(&o, (const unsigned char *)s, loc);
  blank_rest(&o, (const unsigned char *)s + loc, '\0');
  while (o.len && o.p[o.len - 1] == ' ') o.len--;
  if (o.len == 0) {
    o.full = 0;
    put(&o, exception ? "(empty message)" : "(no exception)", exception ? 15 : 14);
  }
  title[o.len] = '\0';
  snprintf(id, MB_FINGERPRINT_ID_LEN + 1, "%016llx", (unsigned long long)fnv1a(title, o.len));
}
