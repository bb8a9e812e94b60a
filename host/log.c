/* log.c — writes log lines to stderr (see log.h). Owns the level filter and the capture
 * buffer tests read. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

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

void mb_log(mb_level level, const char *endpoint, const char *id, const char *type,
            const char *fmt, ...) {
  int captures = capturing && level >= capture_level;
  if (!mb_log_enabled(level) && !captures) return;
  char line[2048], when[MB_TIME_LEN + 1];
  mb_time_iso(mb_now_usec(), when);
  int n = snprintf(line, sizeof line, "%s %-5s [%s] ", when, level_names[level],
                   endpoint ? endpoint : "moonbus");
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof line) n += vsnprintf(line + n, sizeof line - n, fmt, ap);
  va_end(ap);
  if (n > 0 && (size_t)n < sizeof line && id)
    n += snprintf(line + n, sizeof line - n, " id=%s", id);
  if (n > 0 && (size_t)n < sizeof line && type)
    n += snprintf(line + n, sizeof line - n, " type=%s", type);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  line[n++] = '\n';
  if (captures) capture(line, (size_t)n);
  if (mb_log_enabled(level)) fwrite(line, 1, (size_t)n, stderr);
}
