/* log.c — writes log lines to stderr (see log.h). Owns the level filter, the capture
 * buffer tests read, and the escaping that keeps every event on one line: whatever a
 * message put into the text (its id, type, queue names, header values, exception
 * messages), control characters and invalid UTF-8 come out as visible escapes.
 * Never: writes a byte below 0x20, DEL, a C1 control, U+2028/U+2029 or invalid UTF-8. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

static mb_level min_level = MB_INFO;
static int initialised;

#define CAPTURE_MAX 65536
static int capturing;
static mb_level capture_level;
static char captured[CAPTURE_MAX];
static size_t captured_len;

void mb_log_capture(int on, mb_level level) {
  capturing = on;
  capture_level = level;
  captured_len = 0;
}

const char *mb_log_captured(size_t *len) {
  *len = captured_len;
  return captured;
}

static void capture(const char *line, size_t n) {
  if (n > CAPTURE_MAX - captured_len) n = CAPTURE_MAX - captured_len; /* full: cut */
  memcpy(captured + captured_len, line, n);
  captured_len += n;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int mb_log_level_parse(const char *name) {
  for (int i = 0; name != NULL && i < 4; i++)
    if (strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

void mb_log_init(void) {
  if (initialised) return;
  initialised = 1;
  int level = mb_log_level_parse(getenv("MOONBUS_LOG"));
  if (level >= 0) min_level = (mb_level)level;
}

void mb_log_set_level(mb_level level) { min_level = level; }

int mb_log_enabled(mb_level level) { return level >= min_level; }

/* The length of the valid UTF-8 sequence of 2-4 bytes at s (at most n bytes), else 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len = c < 0xc2 ? 0 : c <= 0xdf ? 2 : c <= 0xef ? 3 : c <= 0xf4 ? 4 : 0;
  if (len == 0 || len > n) return 0;
  unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range (RFC 3629) */
  if (c == 0xe0) lo = 0xa0;
  else if (c == 0xed) hi = 0x9f;
  else if (c == 0xf0) lo = 0x90;
  else if (c == 0xf4) hi = 0x8f;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xbf) return 0;
  return len;
}

/* A valid character that still breaks or hides a line: C1 controls, U+2028, U+2029. */
static unsigned long hidden_char(const unsigned char *s, size_t len) {
  if (len == 2 && s[0] == 0xc2 && s[1] < 0xa0) return s[1];
  if (len == 3 && s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9))
    return 0x2000ul + (s[2] & 0x3f);
  return 0;
}

/* The escape for the byte c below 0x20 or DEL, or an invalid UTF-8 byte. */
static void byte_escape(unsigned char c, char out[5]) {
  const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
  if (named) snprintf(out, 5, "%s", named);
  else snprintf(out, 5, "\\x%02x", c);
}

size_t mb_log_escape(const char *in, size_t n, char *out, size_t cap) {
  const unsigned char *s = (const unsigned char *)in;
  size_t o = 0;
  if (cap == 0) return 0;
  for (size_t i = 0; i < n;) {
    char esc[8];
    size_t take = 1, elen;
    const char *piece = esc;
    if (s[i] >= 0x20 && s[i] < 0x7f) {
      piece = (const char *)s + i, elen = 1;
    } else if (s[i] >= 0x80 && (take = utf8_sequence(s + i, n - i)) != 0) {
      unsigned long hidden = hidden_char(s + i, take);
      if (hidden) elen = (size_t)snprintf(esc, sizeof esc, "\\u%04lx", hidden);
      else piece = (const char *)s + i, elen = take;
    } else {
      take = 1;
      byte_escape(s[i], esc);
      elen = strlen(esc);
    }
    if (elen > cap - 1 - o) break; /* full: cut before a whole character or escape */
    memcpy(out + o, piece, elen);
    o += elen;
    i += take;
  }
  out[o] = '\0';
  return o;
}

/* " id=ID type=TYPE" (each when given), escaped, into out (at most cap - 1 bytes). */
static size_t id_and_type(const char *id, const char *type, char *out, size_t cap) {
  size_t o = 0;
  if (id) {
    o += (size_t)snprintf(out, cap, " id=");
    o += mb_log_escape(id, strlen(id), out + o, 160);
  }
  if (type) {
    o += (size_t)snprintf(out + o, cap - o, " type=");
    o += mb_log_escape(type, strlen(type), out + o, cap - o);
  }
  out[o] = '\0';
  return o;
}

/* The line is escaped part by part so that a long text never pushes the id and the type
 * out of it. */
void mb_log(mb_level level, const char *endpoint, const char *id, const char *type,
            const char *fmt, ...) {
  int captures = capturing && level >= capture_level;
  if (!mb_log_enabled(level) && !captures) return;
  char text[2048], line[2048], tail[720], when[MB_TIME_LEN + 1];
  mb_time_iso(mb_now_usec(), when);
  int n = snprintf(line, 64 + MB_TIME_LEN, "%s %-5s [", when, level_names[level]);
  if (n < 0) return;
  const char *who = endpoint ? endpoint : "moonbus";
  size_t len = (size_t)n + mb_log_escape(who, strlen(who), line + n, 300);
  len += (size_t)snprintf(line + len, 3, "] ");
  va_list ap;
  va_start(ap, fmt);
  n = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof text) n = sizeof text - 1;
  size_t tail_len = id_and_type(id, type, tail, sizeof tail);
  len += mb_log_escape(text, (size_t)n, line + len, sizeof line - 1 - len - tail_len);
  memcpy(line + len, tail, tail_len);
  len += tail_len;
  line[len++] = '\n';
  if (captures) capture(line, len);
  if (mb_log_enabled(level)) fwrite(line, 1, len, stderr);
}
