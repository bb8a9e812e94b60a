/* test_retry.c — the retry policy: (5 + 1) x (3 + 1) attempts by default, delays that grow
 * with the round, poison parked at once, and the round read from its header. */
#include "headers.h"
#include "retry.h"
#include "unit.h"

static const mb_retry_policy defaults = {5, 3, 10};

static void default_policy_gives_24_attempts(void) {
  int attempts = 0, round = 0, attempt = 1;
  double waited = 0;
  for (;;) {
    attempts++;
    mb_retry_decision d = mb_retry_decide(&defaults, attempt, round, 0);
    if (d.action == MB_RETRY_PARK) break;
    if (d.action == MB_RETRY_NOW) {
      attempt++;
    } else {
      CHECK(d.round == round + 1);
      waited += d.delay;
      round = d.round;
      attempt = 1;
    }
    if (attempts > 100) break;
  }
  CHECK(attempts == 24);
  CHECK(waited == 10 + 20 + 30);
}

static void unrecoverable_is_parked_at_once(void) {
  mb_retry_decision d = mb_retry_decide(&defaults, 1, 0, 1);
  CHECK(d.action == MB_RETRY_PARK);
}

static void no_retries_means_one_attempt(void) {
  mb_retry_policy none = {0, 0, 1};
  CHECK(mb_retry_decide(&none, 1, 0, 0).action == MB_RETRY_PARK);
  mb_retry_policy later_only = {0, 2, 1};
  mb_retry_decision d = mb_retry_decide(&later_only, 1, 0, 0);
  CHECK(d.action == MB_RETRY_LATER && d.round == 1 && d.delay == 1);
  d = mb_retry_decide(&later_only, 1, 1, 0);
  CHECK(d.action == MB_RETRY_LATER && d.round == 2 && d.delay == 2);
  CHECK(mb_retry_decide(&later_only, 1, 2, 0).action == MB_RETRY_PARK);
}

static void round_comes_from_its_header(void) {
  mb_headers h = MB_HEADERS_INIT;
  CHECK(mb_retry_round(&h) == 0);
  mb_headers_set(&h, MB_H_RETRIES_DELAYED, "2");
  CHECK(mb_retry_round(&h) == 2);
  mb_headers_set(&h, MB_H_RETRIES_DELAYED, "two");
  CHECK(mb_retry_round(&h) == 0);
  mb_headers_set(&h, MB_H_RETRIES_DELAYED, "-1");
  CHECK(mb_retry_round(&h) == 0);
  mb_headers_set(&h, MB_H_RETRIES_DELAYED, "99999");
  CHECK(mb_retry_round(&h) == 0);
  mb_headers_free(&h);
}

int main(void) {
  RUN(default_policy_gives_24_attempts);
  RUN(unrecoverable_is_parked_at_once);
  RUN(no_retries_means_one_attempt);
  RUN(round_comes_from_its_header);
  return unit_done();
}
