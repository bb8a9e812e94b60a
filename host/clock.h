/* clock.h — the two clocks of the bus and its one text form of a time stamp.
 *
 * Provides: wall-clock microseconds (what messages carry), monotonic seconds (deadlines
 * and durations), and ISO 8601 UTC stamps with microseconds, formatted and parsed.
 * Uses: libc, status.h.
 * Never: measures a duration on the wall clock, or puts a monotonic time in a message;
 * never accepts a stamp for a date that does not exist. */
#ifndef MOONBUS_CLOCK_H
#define MOONBUS_CLOCK_H

#include <stdint.h>

#include "status.h"

#define MB_TIME_LEN 27 /* 2026-11-24T21:46:15.123456Z */

/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t mb_now_usec(void);
/* Seconds on CLOCK_MONOTONIC, for deadlines and durations. */
double mb_monotonic(void);
/* Formats usec as ISO 8601 UTC with microseconds: MB_TIME_LEN characters and a NUL. */
void mb_time_iso(int64_t usec, char out[MB_TIME_LEN + 1]);
/* Parses what mb_time_iso writes (the fraction may have 0-6 digits). MB_OK or MB_EINVAL. */
int mb_time_parse(const char *s, int64_t *usec);

#endif
