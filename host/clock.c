/* clock.c — the wall clock, the monotonic clock and ISO 8601 UTC time stamps.
 * Owns: the per-thread cache of the last second formatted. Never keeps state other than
 * that cache, never touches Lua, sockets or databases, and never accepts a date that does
 * not exist. */
#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

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
    snprintf(wide, sizeof wide, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
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
  struct tm tm = {.tm_year = y - 1900,
                  .tm_mon = mo - 1,
                  .tm_mday = d,
                  .tm_hour = h,
                  .tm_min = mi,
                  .tm_sec = se};
  time_t secs = timegm(&tm);
  *usec = (int64_t)secs * 1000000 + frac;
  return MB_OK;
}
