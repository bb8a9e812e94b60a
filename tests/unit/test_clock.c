/* test_clock.c — ISO 8601 UTC time stamps, formatted and parsed (host/clock.c). */
#include <string.h>

#include "clock.h"
#include "unit.h"

static void test_time_formats_as_iso_8601_utc_with_microseconds(void) {
  char s[MB_TIME_LEN + 1];
  mb_time_iso(0, s);
  CHECK(strcmp(s, "1970-01-01T00:00:00.000000Z") == 0);
  mb_time_iso(1700000000123456LL, s);
  CHECK(strcmp(s, "2023-11-14T22:13:20.123456Z") == 0);
}

static void test_time_parses_what_it_formats(void) {
  int64_t now = mb_now_usec(), back = 0;
  char s[MB_TIME_LEN + 1];
  mb_time_iso(now, s);
  CHECK(mb_time_parse(s, &back) == MB_OK && back == now);
  CHECK(mb_time_parse("2023-11-14T22:13:20Z", &back) == MB_OK && back == 1700000000000000LL);
  CHECK(mb_time_parse("2023-11-14T22:13:20.5Z", &back) == MB_OK && back == 1700000000500000LL);
}

static void test_time_parse_refuses_malformed_stamps(void) {
  int64_t v;
  const char *bad[] = {"",
                       "garbage",
                       "2023-13-01T00:00:00Z",
                       "2023-11-14T22:13:20",
                       "2023-11-14T22:13:20Zjunk",
                       "2023-11-14 22:13:20Z",
                       "2023-11-14T25:00:00Z",
                       "2023-11-14T22:13:20.Z",
                       "2023-02-30T00:00:00Z",
                       "2023-02-29T00:00:00Z",
                       "2023-04-31T00:00:00Z",
                       "2023-11-14T22:13:60Z",
                       "2023-11-14T22:13:20.1234567Z"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(mb_time_parse(bad[i], &v) == MB_EINVAL);
  CHECK(mb_time_parse(NULL, &v) == MB_EINVAL);
  /* what does exist: a leap day, and a leap second at the end of a day */
  CHECK(mb_time_parse("2024-02-29T00:00:00Z", &v) == MB_OK);
  CHECK(mb_time_parse("2016-12-31T23:59:60Z", &v) == MB_OK && v == 1483228800000000LL);
}

int main(void) {
  RUN(test_time_formats_as_iso_8601_utc_with_microseconds);
  RUN(test_time_parses_what_it_formats);
  RUN(test_time_parse_refuses_malformed_stamps);
  return unit_done();
}
