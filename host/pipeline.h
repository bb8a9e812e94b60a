/* pipeline.h — the path of one message (DESIGN §2), top to bottom: envelope checks,
 * handler run, outbox dispatch and acknowledgement, or release / parking.
 *
 * Provides: mb_job (one delivery in flight, with its outbox), the transport's delivery
 * callback, and the outcome entry point the scheduler calls when a handler ends.
 * Uses: transport.h, sched.h, compose.h. Never: includes lua.h. */
#ifndef MOONBUS_PIPELINE_H
#define MOONBUS_PIPELINE_H

#include <stdint.h>

#include "runtime.h"
#include "transport.h"

typedef enum mb_outcome {
  MB_OUTCOME_OK,     /* every handler returned: dispatch the outbox, then ack */
  MB_OUTCOME_FAILED, /* a handler raised: emit nothing, release for another attempt */
  MB_OUTCOME_POISON, /* it can never succeed: park it in the error queue at once */
  MB_OUTCOME_STOPPED /* the bus stopped before the handler ended: back to its queue */
} mb_outcome;

typedef struct mb_job {
  mb_runtime *rt;
  mb_delivery *d;
  mb_outgoing **outbox; /* sent only if the handlers succeed */
  size_t n_out, cap_out;
  int64_t started_usec;
  int attempt;          /* 1-based attempt of this round of immediate retries */
  int audited;          /* the last entry of the outbox is its audit copy */
  void *ctx;            /* the Lua ctx bound to this job (bindings clear it both ways) */
  struct mb_job *prev, *next;
} mb_job;

/* The transport's mb_deliver_fn; ud is the mb_runtime. */
void mb_pipeline_deliver(void *ud, mb_delivery *d);
/* The scheduler reports how the handlers of job ended. error/trace may be NULL. */
void mb_pipeline_finished(mb_job *job, mb_outcome outcome, const char *error, const char *trace);
/* Adds m to the job's outbox (takes ownership). MB_OK or MB_ENOMEM (m is freed). */
int mb_job_add_outgoing(mb_job *job, mb_outgoing *m);

/* The back-off before a message is delivered again when it could not be completed
 * (a transport failure, a shutdown): retries proper are retry.c's. */
double mb_pipeline_backoff(uint32_t delivery_count);

#endif
