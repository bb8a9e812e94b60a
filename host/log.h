/* log.h — one line per event on stderr: time, level, endpoint, what happened, and the
 * message id and type when there is one.
 *
 * Provides: mb_log and its level filter (MOONBUS_LOG=debug|info|warn|error, default info).
 * Never: allocates on the heap or fails; a line longer than the buffer is cut. */
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

/* endpoint, id and type may be NULL. The line ends with " id=... type=..." when given. */
void mb_log(mb_level level, const char *endpoint, const char *id, const char *type,
            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
