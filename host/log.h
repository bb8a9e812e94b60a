/* log.h — one line per event on stderr: time, level, endpoint, what happened, and the
 * message id and type when there is one.
 *
 * Provides: mb_log and its level filter (MOONBUS_LOG=debug|info|warn|error, default info),
 * mb_log_escape.
 * Every part of a line (endpoint, text, id, type) is escaped by mb_log_escape, so nothing a
 * message carries (a type, an id, a queue name, a header value, an exception message) can
 * break a line in two or forge another one.
 * Never: allocates on the heap or fails; a line longer than the buffer is cut (the text
 * first: the id and the type stay). */
#ifndef MOONBUS_LOG_H
#define MOONBUS_LOG_H

#include <stddef.h>

typedef enum mb_level { MB_DEBUG, MB_INFO, MB_WARN, MB_ERROR } mb_level;

/* Reads MOONBUS_LOG once; later calls change nothing. */
void mb_log_init(void);
void mb_log_set_level(mb_level level);
int mb_log_enabled(mb_level level);
/* Parses "debug", "info", "warn" or "error"; -1 for anything else. */
int mb_log_level_parse(const char *name);

/* Tests: keep a copy of every line at level or above (whatever the filter), up to 64 KiB,
 * from now on (on) or no longer; the copy starts empty. */
void mb_log_capture(int on, mb_level level);
/* The lines kept since capturing began. */
const char *mb_log_captured(size_t *len);

/* Copies in[0..n) to out as text that is safe on one line, at most cap - 1 bytes and a
 * NUL; returns the length written. Printable ASCII and valid UTF-8 are kept; \n, \r and \t
 * become the two characters \n, \r, \t; other bytes below 0x20, DEL and each byte of
 * invalid UTF-8 become \xNN; C1 controls and U+2028/U+2029 become \uNNNN. A backslash is kept as it
 * is. The copy is cut before the first character or escape that does not fit. */
size_t mb_log_escape(const char *in, size_t n, char *out, size_t cap);

/* endpoint, id and type may be NULL. The line ends with " id=... type=..." when given. */
void mb_log(mb_level level, const char *endpoint, const char *id, const char *type,
            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
