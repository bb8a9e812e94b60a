/* retry.c — the retry policy (see retry.h). Never sends, sleeps or keeps state: a round of
 * immediate retries runs in place, and a delayed round travels with the message in its
 * moonbus.retries.delayed header, so no retry lives in the host's memory. */
#include "retry.h"

#include <stdlib.h>

#include "headers.h"

mb_retry_decision mb_retry_decide(const mb_retry_policy *p, int attempt, int round,
                                  int unrecoverable) {
  mb_retry_decision d = {MB_RETRY_PARK, 0, round};
  if (unrecoverable) return d;
  if (attempt <= p->immediate) {
    d.action = MB_RETRY_NOW;
  } else if (round < p->delayed) {
    d.action = MB_RETRY_LATER;
    d.round = round + 1;
    d.delay = p->delay * d.round;
  }
  return d;
}

int mb_retry_round(const mb_headers *h) {
  const char *v = mb_headers_get(h, MB_H_RETRIES_DELAYED);
  if (v == NULL || *v == '\0') return 0;
  char *end;
  long n = strtol(v, &end, 10);
  return *end == '\0' && n >= 0 && n <= 1000 ? (int)n : 0;
}
