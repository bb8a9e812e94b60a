/* log.h — one line per event on stderr: time, level, endpoint, what happened, the fields a
 * script gave, and the message id, type and conversation id when there is one; as text
 * (the default) or as one JSON object per line (MOONBUS_LOG_FORMAT=json).
 *
 * Provides: mb_log, mb_log_msg, mb_log_line, the level filter (MOONBUS_LOG=debug|info|warn|
 * error, default info), the format (MOONBUS_LOG_FORMAT=text|json), mb_log_escape.
 * Every part of a line (endpoint, text, id, type, conversation, field keys and values) is
 * escaped, so nothing a message carries (a type, an id, a queue name, a header value, an
 * exception message) can break a line in two or forge another one; a JSON line is valid
 * JSON (RFC 8259, valid UTF-8) whatever its parts hold.
 * Never: allocates on the heap or fails (a line is built in fixed buffers on the stack, by
 * log.c's own escaper, not by json.h's mb_jbuf, which grows on the heap); a line longer
 * than its buffer is cut, the text first (the fields next, the id, type and conversation
 * id stay), never inside an escape or a character. */
#ifndef MOONBUS_LOG_H
#define MOONBUS_LOG_H

#include <stddef.h>

typedef enum mb_level { MB_DEBUG, MB_INFO, MB_WARN, MB_ERROR } mb_level;
typedef enum mb_log_format { MB_LOG_TEXT, MB_LOG_JSON } mb_log_format;

/* What a line is about: a message's id, type and conversation id (each may be NULL). On a
 * text line they end it as " id=... type=... conv=..."; in JSON they are "id", "type" and
 * "conversation_id". */
typedef struct mb_log_ids {
  const char *id, *type, *conversation;
} mb_log_ids;

/* A field of a line: " key=value" on a text line (before the id), "key": value in JSON.
 * value[0..len) is text, or (json set) a JSON value written as it is: a number, true,
 * false or compact JSON; in text a value of text that is empty or holds a space, a '"' or
 * a '=' is quoted, with '"' and '\' escaped by a backslash. A JSON value that does not fit
 * whole is written as a string, cut. */
typedef struct mb_log_field {
  const char *key;
  const char *value;
  size_t len;
  int json;
} mb_log_field;

/* Reads MOONBUS_LOG and MOONBUS_LOG_FORMAT once (an unknown format: a warning, and text);
 * later calls change nothing. */
void mb_log_init(void);
void mb_log_set_level(mb_level level);
int mb_log_enabled(mb_level level);
/* Parses "debug", "info", "warn" or "error"; -1 for anything else. */
int mb_log_level_parse(const char *name);
void mb_log_set_format(mb_log_format format);
mb_log_format mb_log_get_format(void);
/* Parses "text" or "json"; -1 for anything else. */
int mb_log_format_parse(const char *name);

/* Tests: keep a copy of every line at level or above (whatever the filter), up to 64 KiB,
 * from now on (on) or no longer; the copy starts empty. */
void mb_log_capture(int on, mb_level level);
/* The lines kept since capturing began. */
const char *mb_log_captured(size_t *len);

/* Copies in[0..n) to out as text that is safe on one line, at most cap - 1 bytes and a
 * NUL; returns the length written. Printable ASCII and valid UTF-8 are kept; \n, \r and \t
 * become the two characters \n, \r, \t; other bytes below 0x20, DEL and each byte of
 * invalid UTF-8 become \xNN; C1 controls and U+2028/U+2029 become \uNNNN. A backslash is kept as it
 * is. The copy is cut before the first character or escape that does not fit. In a JSON
 * line the same characters are escaped as JSON escapes (\u00NN; an invalid byte U+FFFD). */
size_t mb_log_escape(const char *in, size_t n, char *out, size_t cap);

/* endpoint, id and type may be NULL. The line ends with " id=... type=..." when given. */
void mb_log(mb_level level, const char *endpoint, const char *id, const char *type,
            const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same about a message: its id, type and conversation id. */
void mb_log_msg(mb_level level, const char *endpoint, mb_log_ids ids, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A line of text[0..len) as it is (no format), with n fields. */
void mb_log_line(mb_level level, const char *endpoint, mb_log_ids ids, const mb_log_field *fields,
                 size_t n, const char *text, size_t len);

#endif
