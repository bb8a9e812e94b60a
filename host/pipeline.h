/* pipeline.h — the path of one message (DESIGN §2), top to bottom: envelope checks,
 * handler run, outbox dispatch and acknowledgement, or release / retry / parking.
 *
 * Provides: the pipeline of one endpoint (its jobs in flight and their counters), the
 * transport's delivery callback, the runner interface it drives the handlers through, the
 * outcome entry point a runner reports to, and mb_job (one delivery in flight, with its
 * outbox), opaque.
 * Uses: transport.h, endpoint.h, retry.h, audit.h, errorq.h, mark.h (order_by), metrics.h. Never: includes lua.h, knows
 * which runner or transport it drives: tests/unit/test_pipeline.c drives it with a fake
 * runner and the in-memory transport. */
#ifndef MOONBUS_PIPELINE_H
#define MOONBUS_PIPELINE_H

#include <stdint.h>

#include "endpoint.h"
#include "transport.h"

struct mb_claim_store;
struct mb_metrics;
typedef struct mb_pipeline mb_pipeline;
typedef struct mb_job mb_job;

typedef enum mb_outcome {
  MB_OUTCOME_OK,     /* every handler returned: dispatch the outbox, then ack */
  MB_OUTCOME_FAILED, /* a handler raised: emit nothing, retry or park */
  MB_OUTCOME_POISON, /* it can never succeed: park it in the error queue at once */
  MB_OUTCOME_STOPPED /* the handlers were stopped before they ended: back to its queue */
} mb_outcome;

/* What runs a job's handlers (sched.c in a host; a fake in tests). */
typedef struct mb_runner {
  /* Runs the handlers of job, one attempt; the runner reports how it ended through
   * mb_pipeline_finished, possibly before run returns. */
  void (*run)(void *ud, mb_job *job);
  /* The pipeline is closing while job's attempt still runs: stop it. The runner reports
   * MB_OUTCOME_STOPPED (possibly before cancel returns) or nothing at all. */
  void (*cancel)(void *ud, mb_job *job);
} mb_runner;

typedef struct mb_pipeline_stats {
  unsigned in_flight;      /* jobs received and not yet acknowledged or released */
  unsigned long received;  /* deliveries */
  unsigned long handled;   /* acknowledged after their handlers succeeded */
  unsigned long failed;    /* attempts that failed (retried, delayed or parked after) */
  unsigned long parked;    /* moved to the error queue */
  unsigned long discarded; /* acknowledged without running the handlers: stale (order_by)
                              or past their time to live */
} mb_pipeline_stats;

/* cfg is read at each step (a reload changes it in place); host names this machine on
 * audit copies. Both must outlive the pipeline. NULL when out of memory. */
mb_pipeline *mb_pipeline_new(const mb_endpoint_cfg *cfg, const char *host);
/* Jobs still in flight are cancelled (their runners) and given back to their queues. */
void mb_pipeline_free(mb_pipeline *p);
/* The transport deliveries come from and outcomes go to (set before consuming). */
void mb_pipeline_set_transport(mb_pipeline *p, mb_transport *t);
/* Where claimed bodies (claim.h) are fetched from, pinned and touched; NULL: none (a
 * claimed message is then parked, saying so). The store must outlive the pipeline. */
void mb_pipeline_set_claims(mb_pipeline *p, struct mb_claim_store *claims);
/* Where deliveries and outcomes are counted (metrics.h); NULL: nowhere. The runtime owns
 * m, which must outlive the pipeline. */
void mb_pipeline_set_metrics(mb_pipeline *p, struct mb_metrics *m);
/* New attempts run on runner from now on (a reload switches it); runner is not copied. */
void mb_pipeline_set_runner(mb_pipeline *p, const mb_runner *runner, void *ud);
/* fn(ud) runs each time the last job in flight ends (NULL: nobody asks). */
void mb_pipeline_on_idle(mb_pipeline *p, void (*fn)(void *ud), void *ud);
mb_pipeline_stats mb_pipeline_stats_of(const mb_pipeline *p);

/* The transport's mb_deliver_fn; ud is the mb_pipeline. */
void mb_pipeline_deliver(void *ud, mb_delivery *d);
/* The runner reports how the attempt at job ended. error/trace may be NULL. */
void mb_pipeline_finished(mb_job *job, mb_outcome outcome, const char *error, const char *trace);

/* The message being handled (the dispatcher may complete a foreign message's kind). */
mb_delivery *mb_job_delivery(mb_job *job);
/* 1-based attempt of this round of immediate retries. */
int mb_job_attempt(const mb_job *job);
/* The endpoint handling it. */
const char *mb_job_endpoint(const mb_job *job);
/* The runner has its own copy of the body: a claimed body fetched for this attempt is
 * dropped now rather than when the attempt ends (a 64 MiB body is then resident once). */
void mb_job_body_taken(mb_job *job);
/* Adds m to the job's outbox (takes ownership). MB_OK or MB_ENOMEM (m is freed). */
int mb_job_add_outgoing(mb_job *job, mb_outgoing *m);
/* Out-of-order protection (DESIGN §14): m is the message's place in its key's order, the
 * handlers not run yet. MB_OK: it is newer than every value handled for its key: the
 * handlers run, and m becomes the key's highest with the acknowledgement. MB_ESTALE: it is
 * not: the handlers must not run; the runner ends the attempt with MB_OUTCOME_OK and the
 * pipeline discards the message (logged, counted, audited with the reason, acknowledged).
 * Other: the marks could not be read (err says why): fail the attempt. */
int mb_job_order(mb_job *job, const mb_mark *m, mb_err *err);
/* fn(ud) runs once when the current attempt ends (its handlers are done with the job: a
 * retry in place or the job's end), so that what a runner bound to the job (a Lua ctx)
 * lets go of it. One hook per job; fn NULL removes it. */
void mb_job_on_end(mb_job *job, void (*fn)(void *ud), void *ud);

/* The back-off before a message is delivered again when it could not be completed
 * (a transport failure, a shutdown): retries proper are retry.c's. */
double mb_pipeline_backoff(uint32_t delivery_count);

#endif
