/* log.c — writes log lines to stderr (see log.h). Owns the level filter, the format (text
 * or JSON), the capture buffer tests read, and the escaping that keeps every event on one
 * line: whatever a message put into the text (its id, type, queue names, header values,
 * exception messages, a script's fields), control characters and invalid UTF-8 come out
 * as visible escapes (in JSON, as JSON escapes and U+FFFD).
 * Never: writes a byte below 0x20, DEL, a C1 control, U+2028/U+2029 or invalid UTF-8;
 * allocates (a line is built in buffers on the stack: the watchdog's thread logs too). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

static mb_level min_level = MB_INFO;
static mb_log_format line_format = MB_LOG_TEXT;
static int initialised;

#define LINE_MAX_BYTES 4096 /* a whole line, its newline included */
#define TEXT_MAX 2048       /* a formatted text, before it is escaped */
#define IDS_MAX 720         /* the id, type and conversation id, escaped */
#define FIELDS_MAX 1536     /* the fields, escaped */
#define PART_MAX 160        /* an id or a conversation id, escaped */
#define ENDPOINT_MAX 300    /* an endpoint's name, escaped */

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

static const char *const format_names[] = {"text", "json"};

int mb_log_format_parse(const char *name) {
  for (int i = 0; name != NULL && i < 2; i++)
    if (strcmp(name, format_names[i]) == 0) return i;
  return -1;
}

void mb_log_init(void) {
  if (initialised) return;
  initialised = 1;
  int level = mb_log_level_parse(getenv("MOONBUS_LOG"));
  if (level >= 0) min_level = (mb_level)level;
  const char *name = getenv("MOONBUS_LOG_FORMAT");
  int format = mb_log_format_parse(name);
  if (format >= 0) line_format = (mb_log_format)format;
  else if (name != NULL && name[0] != '\0')
    mb_log(MB_WARN, NULL, NULL, NULL,
           "MOONBUS_LOG_FORMAT=%s is neither text nor json: logging text", name);
}

void mb_log_set_level(mb_level level) { min_level = level; }
void mb_log_set_format(mb_log_format format) { line_format = format; }
mb_log_format mb_log_get_format(void) { return line_format; }

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

/* How a piece of text is escaped: on a text line as it stands, or between quotes ('"' and
 * '\' escaped); in a JSON string; inside a JSON value written as it is (its quotes and
 * backslashes are its own; anything else is escaped as in a string, where alone it can be). */
typedef enum esc_mode { ESC_TEXT, ESC_QUOTED, ESC_JSON, ESC_JSON_VALUE } esc_mode;

/* The escape of the byte c: below 0x20, DEL, or a byte of invalid UTF-8. */
static void byte_escape(esc_mode mode, unsigned char c, char out[8]) {
  const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
  if (named) snprintf(out, 8, "%s", named);
  else if (mode < ESC_JSON) snprintf(out, 8, "\\x%02x", c);
  else if (c >= 0x80) snprintf(out, 8, "\\ufffd");
  else snprintf(out, 8, "\\u%04x", c);
}

/* What stands for the character at s[0..n) in mode: *piece (s itself or esc) and its
 * length, returned; *take is how many bytes of s it stands for. */
static size_t piece_of(esc_mode mode, const unsigned char *s, size_t n, char esc[8],
                       const char **piece, size_t *take) {
  *take = 1;
  *piece = esc;
  if (s[0] >= 0x20 && s[0] < 0x7f) {
    if ((s[0] == '"' || s[0] == '\\') && (mode == ESC_QUOTED || mode == ESC_JSON)) {
      esc[0] = '\\', esc[1] = (char)s[0];
      return 2;
    }
    *piece = (const char *)s;
    return 1;
  }
  size_t len = s[0] >= 0x80 ? utf8_sequence(s, n) : 0;
  if (len == 0) {
    byte_escape(mode, s[0], esc);
    return strlen(esc);
  }
  *take = len;
  unsigned long hidden = hidden_char(s, len);
  if (hidden) return (size_t)snprintf(esc, 8, "\\u%04lx", hidden);
  *piece = (const char *)s;
  return len;
}

/* A line (or a part of one) being built in a fixed buffer: p[0..len), at most cap bytes. */
typedef struct wbuf {
  char *p;
  size_t len, cap;
} wbuf;

static size_t room_of(const wbuf *w) { return w->cap - w->len; }

/* Appends s[0..n) if it fits whole; returns whether it did. */
static int put(wbuf *w, const char *s, size_t n) {
  if (n > room_of(w)) return 0;
  memcpy(w->p + w->len, s, n);
  w->len += n;
  return 1;
}

static int put_str(wbuf *w, const char *s) { return put(w, s, strlen(s)); }

/* Appends in[0..n) escaped for mode, in at most room bytes (and what w has left), cut before
 * the first character or escape that does not fit; returns how many bytes of in it took. */
static size_t put_escaped(wbuf *w, esc_mode mode, const char *in, size_t n, size_t room) {
  const unsigned char *s = (const unsigned char *)in;
  size_t i = 0, end = w->len + (room < room_of(w) ? room : room_of(w));
  while (i < n) {
    char esc[8];
    const char *piece;
    size_t take, len = piece_of(mode, s + i, n - i, esc, &piece, &take);
    if (len > end - w->len) break;
    memcpy(w->p + w->len, piece, len);
    w->len += len;
    i += take;
  }
  return i;
}

size_t mb_log_escape(const char *in, size_t n, char *out, size_t cap) {
  if (cap == 0) return 0;
  wbuf w = {out, 0, cap - 1};
  put_escaped(&w, ESC_TEXT, in, n, cap - 1);
  out[w.len] = '\0';
  return w.len;
}

/* A JSON string of in[0..n) in at most room bytes, quotes included; 0 when not even the
 * quotes fit. */
static int put_json_string(wbuf *w, const char *in, size_t n, size_t room) {
  if (room < 2 || room_of(w) < 2) return 0;
  put(w, "\"", 1);
  put_escaped(w, ESC_JSON, in, n, room - 2 < room_of(w) - 1 ? room - 2 : room_of(w) - 1);
  return put(w, "\"", 1);
}

/* " name=value" on a text line, ,"name":"value" in JSON; the value's escape takes at most
 * room bytes. Nothing when value is NULL or the name does not fit. */
static void put_part(wbuf *w, const char *name, const char *value, size_t room) {
  if (value == NULL) return;
  size_t mark = w->len;
  int json = line_format == MB_LOG_JSON;
  if (!(put(w, json ? ",\"" : " ", json ? 2 : 1) && put_str(w, name) &&
        put(w, json ? "\":" : "=", json ? 2 : 1))) {
    w->len = mark;
    return;
  }
  if (json && !put_json_string(w, value, strlen(value), room + 2)) w->len = mark;
  if (!json) put_escaped(w, ESC_TEXT, value, strlen(value), room);
}

/* The message's id, type and conversation id: the type gets what the others leave. */
static void put_ids(wbuf *w, mb_log_ids ids) {
  int json = line_format == MB_LOG_JSON;
  put_part(w, "id", ids.id, PART_MAX);
  size_t keep = ids.conversation ? PART_MAX + 24 : 0;
  put_part(w, "type", ids.type, room_of(w) > keep + 12 ? room_of(w) - keep - 12 : 0);
  put_part(w, json ? "conversation_id" : "conv", ids.conversation, PART_MAX);
}

/* A text value is quoted when a reader could not tell where it ends. */
static int needs_quotes(const char *s, size_t n) {
  if (n == 0) return 1;
  for (size_t i = 0; i < n; i++)
    if (s[i] == ' ' || s[i] == '"' || s[i] == '=') return 1;
  return 0;
}

static void put_text_value(wbuf *w, const mb_log_field *f) {
  if (f->json || !needs_quotes(f->value, f->len)) {
    put_escaped(w, ESC_TEXT, f->value, f->len, room_of(w));
    return;
  }
  if (room_of(w) < 2) return;
  put(w, "\"", 1);
  put_escaped(w, ESC_QUOTED, f->value, f->len, room_of(w) - 1);
  put(w, "\"", 1);
}

/* A JSON value as it is when it fits whole, else a string of it, cut. */
static void put_json_value(wbuf *w, const mb_log_field *f) {
  size_t mark = w->len;
  if (f->json && f->len > 0 &&
      put_escaped(w, ESC_JSON_VALUE, f->value, f->len, room_of(w)) == f->len)
    return;
  w->len = mark;
  put_json_string(w, f->value, f->len, room_of(w));
}

/* One field; 0 (and nothing written) when not even its key fits. */
static int put_field(wbuf *w, const mb_log_field *f) {
  size_t mark = w->len;
  int json = line_format == MB_LOG_JSON;
  size_t klen = strlen(f->key);
  int ok = json ? put(w, ",", 1) && put_json_string(w, f->key, klen, room_of(w)) &&
                      put(w, ":", 1) && room_of(w) >= 2
                : put(w, " ", 1) && put_escaped(w, ESC_TEXT, f->key, klen, room_of(w)) == klen &&
                      put(w, "=", 1);
  if (!ok) {
    w->len = mark;
    return 0;
  }
  if (json) put_json_value(w, f);
  else put_text_value(w, f);
  return 1;
}

/* What follows the text: the fields then the ids on a text line, the other way in JSON
 * (where the fields come last, after the parts every line has). */
static void put_after(wbuf *w, mb_log_ids ids, const mb_log_field *fields, size_t n) {
  char ids_buf[IDS_MAX], fields_buf[FIELDS_MAX];
  wbuf iw = {ids_buf, 0, sizeof ids_buf}, fw = {fields_buf, 0, sizeof fields_buf};
  put_ids(&iw, ids);
  for (size_t i = 0; i < n && put_field(&fw, &fields[i]); i++) continue;
  if (line_format == MB_LOG_JSON) put(w, iw.p, iw.len);
  put(w, fw.p, fw.len);
  if (line_format == MB_LOG_TEXT) put(w, iw.p, iw.len);
}

/* "TIME LEVEL [endpoint] " or {"time":"TIME","level":"LEVEL","endpoint":"endpoint","msg": */
static void put_head(wbuf *w, mb_level level, const char *endpoint) {
  char when[MB_TIME_LEN + 1], head[64 + MB_TIME_LEN];
  mb_time_iso(mb_now_usec(), when);
  const char *who = endpoint ? endpoint : "moonbus";
  int json = line_format == MB_LOG_JSON;
  int n = json ? snprintf(head, sizeof head,
                          "{\"time\":\"%s\",\"level\":\"%s\",\"endpoint\":", when,
                          level_names[level])
               : snprintf(head, sizeof head, "%s %-5s [", when, level_names[level]);
  if (n < 0 || (size_t)n >= sizeof head) return;
  put(w, head, (size_t)n);
  if (json) put_json_string(w, who, strlen(who), ENDPOINT_MAX);
  else put_escaped(w, ESC_TEXT, who, strlen(who), ENDPOINT_MAX);
  put_str(w, json ? ",\"msg\":" : "] ");
}

/* The line is escaped part by part, and what follows the text first, so that a long text
 * never pushes the fields, the id or the type out of it. */
static void emit(mb_level level, const char *endpoint, mb_log_ids ids, const mb_log_field *fields,
                 size_t n, const char *text, size_t len) {
  char line[LINE_MAX_BYTES], after[IDS_MAX + FIELDS_MAX];
  wbuf w = {line, 0, sizeof line}, aw = {after, 0, sizeof after};
  int json = line_format == MB_LOG_JSON;
  put_after(&aw, ids, fields, n);
  put_head(&w, level, endpoint);
  size_t end = json ? 2 : 1; /* "}\n" or "\n" */
  w.cap -= aw.len + end;
  if (json) put_json_string(&w, text, len, room_of(&w));
  else put_escaped(&w, ESC_TEXT, text, len, room_of(&w));
  w.cap += aw.len + end;
  put(&w, aw.p, aw.len);
  put_str(&w, json ? "}\n" : "\n");
  if (capturing && level >= capture_level) capture(line, w.len);
  if (mb_log_enabled(level)) fwrite(line, 1, w.len, stderr);
}

static int wanted(mb_level level) {
  return mb_log_enabled(level) || (capturing && level >= capture_level);
}

/* Formats fmt into text (at most TEXT_MAX - 1 bytes); returns the length. */
static size_t format_text(char text[TEXT_MAX], const char *fmt, va_list ap) {
  int n = vsnprintf(text, TEXT_MAX, fmt, ap);
  if (n < 0) return 0;
  return (size_t)n >= TEXT_MAX ? TEXT_MAX - 1 : (size_t)n;
}

static void vlog(mb_level level, const char *endpoint, mb_log_ids ids, const char *fmt,
                 va_list ap) {
  char text[TEXT_MAX];
  size_t len = format_text(text, fmt, ap);
  emit(level, endpoint, ids, NULL, 0, text, len);
}

void mb_log(mb_level level, const char *endpoint, const char *id, const char *type,
            const char *fmt, ...) {
  if (!wanted(level)) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, endpoint, (mb_log_ids){id, type, NULL}, fmt, ap);
  va_end(ap);
}

void mb_log_msg(mb_level level, const char *endpoint, mb_log_ids ids, const char *fmt, ...) {
  if (!wanted(level)) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, endpoint, ids, fmt, ap);
  va_end(ap);
}

void mb_log_line(mb_level level, const char *endpoint, mb_log_ids ids, const mb_log_field *fields,
                 size_t n, const char *text, size_t len) {
  if (wanted(level)) emit(level, endpoint, ids, fields, n, text, len);
}
