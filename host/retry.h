/* retry.h — what happens to a message whose handler failed (DESIGN §6): try again at once
 * (immediate retries, in place), later (delayed retries, through the transport's delay), or
 * never (the error queue).
 *
 * Provides: the policy of an endpoint and the decision for one failure. Pure: no I/O, no
 * Lua, no clock; pipeline.c carries the decision out. */
#ifndef MOONBUS_RETRY_H
#define MOONBUS_RETRY_H

#include "headers.h"

typedef struct mb_retry_policy {
  int immediate; /* retries in place after the first attempt of a round (default 5) */
  int delayed;   /* rounds after the first one (default 3) */
  double delay;  /* seconds; round n waits delay * n */
} mb_retry_policy;

typedef enum mb_retry_action {
  MB_RETRY_NOW,   /* run the handlers again, now, with attempt + 1 */
  MB_RETRY_LATER, /* send the message back to its queue after `delay`, as round `round` */
  MB_RETRY_PARK   /* no retry is left (or it can never succeed): the error queue */
} mb_retry_action;

typedef struct mb_retry_decision {
  mb_retry_action action;
  double delay; /* MB_RETRY_LATER */
  int round;    /* MB_RETRY_LATER: the round the copy belongs to */
} mb_retry_decision;

/* attempt: 1-based, the attempt of this round that failed; round: the message's delayed
 * round (0 for the first); unrecoverable: bus.unrecoverable or poison. */
mb_retry_decision mb_retry_decide(const mb_retry_policy *p, int attempt, int round,
                                  int unrecoverable);
/* The delayed round a message belongs to, from its moonbus.retries.delayed header (0 when
 * absent or not a number 0-1000). */
int mb_retry_round(const mb_headers *h);

#endif
