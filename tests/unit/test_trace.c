/* test_trace.c — W3C traceparent: what is accepted from the wire, and that a child span
 * keeps the trace id and flags with a span id of its own. */
#include <string.h>

#include "trace.h"
#include "unit.h"

static const char *good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void accepts_valid_headers(void) {
  CHECK(mb_traceparent_valid(good));
  CHECK(mb_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
  /* a later version may carry more fields after the flags */
  CHECK(mb_traceparent_valid("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
}

static void refuses_invalid_headers(void) {
  CHECK(!mb_traceparent_valid(NULL));
  CHECK(!mb_traceparent_valid(""));
  CHECK(!mb_traceparent_valid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  CHECK(!mb_traceparent_valid("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK(!mb_traceparent_valid("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  CHECK(!mb_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  CHECK(!mb_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"));
  CHECK(!mb_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));
  CHECK(!mb_traceparent_valid("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"));
  CHECK(!mb_traceparent_valid("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

static void child_keeps_trace_and_flags(void) {
  char a[MB_TRACEPARENT_LEN + 1], b[MB_TRACEPARENT_LEN + 1];
  mb_traceparent_child(good, a);
  mb_traceparent_child(good, b);
  CHECK(mb_traceparent_valid(a) && mb_traceparent_valid(b));
  CHECK(strncmp(a, good, 36) == 0);           /* version and trace id */
  CHECK(strcmp(a + 52, "-01") == 0);          /* flags */
  CHECK(strncmp(a + 36, good + 36, 16) != 0); /* a span id of its own */
  CHECK(strncmp(a + 36, b + 36, 16) != 0);
  mb_traceparent_child("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x", a);
  CHECK(strncmp(a, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0);
  CHECK(strcmp(a + 52, "-00") == 0); /* not sampled stays not sampled */
}

static void invalid_parent_starts_a_new_trace(void) {
  char a[MB_TRACEPARENT_LEN + 1], b[MB_TRACEPARENT_LEN + 1];
  mb_traceparent_child(NULL, a);
  mb_traceparent_child("garbage", b);
  CHECK(mb_traceparent_valid(a) && mb_traceparent_valid(b));
  CHECK(strncmp(a + 3, b + 3, 32) != 0);
  CHECK(strcmp(a + 52, "-01") == 0);
}

int main(void) {
  RUN(accepts_valid_headers);
  RUN(refuses_invalid_headers);
  RUN(child_keeps_trace_and_flags);
  RUN(invalid_parent_starts_a_new_trace);
  return unit_done();
}
