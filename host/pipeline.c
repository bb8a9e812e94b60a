/* pipeline.c — the path of one message (DESIGN §2): screen the envelope, run the
 * handlers (through the runner), then dispatch the outbox and acknowledge; on a failure
 * carry out retry.c's decision: run the handlers again in place, send the message back to
 * its queue for a delayed round (with the acknowledgement, atomically where the transport
 * can), or park it in the error queue (errorq.c); discard a message that is stale (an
 * order_by value not newer than one handled for its key: mark.h) or past its time to
 * live. The only place that decides a message's fate, and the owner of the jobs in flight
 * and their counters.
 * Claimed bodies (claim.h): fetched and verified before each attempt and dropped when the
 * attempt ends (or as soon as the runner has its own copy: mb_job_body_taken), so that the
 * audit, error-queue and delayed-retry copies carry the claim headers and the empty body,
 * never the body itself; a parked copy pins its claim, a delayed retry refreshes it.
 * Never includes lua.h; never talks to a transport other than through its vtable. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "claim.h"
#include "clock.h"
#include "errorq.h"
#include "headers.h"
#include "log.h"
#include "metrics.h"
#include "msgcopy.h"
#include "retry.h"

#define MEMO_SLOTS 64

struct mb_job {
  mb_pipeline *p;
  mb_delivery *d;
  mb_outgoing **outbox; /* sent only if the handlers succeed */
  size_t n_out, cap_out;
  int64_t started_usec;
  double attempt_start; /* monotonic: when this attempt began (before any: the arrival) */
  int attempt;          /* 1-based attempt of this round of immediate retries */
  int audited;          /* the last entry of the outbox is its audit copy */
  int running;          /* an attempt runs on runner: cancel it if the pipeline closes */
  char *stub;           /* while a claimed body is in d->env: the body as delivered ("") */
  size_t stub_len;
  const mb_runner *runner;
  void *runner_ud;
  void (*on_end)(void *ud);
  void *on_end_ud;
  mb_mark *mark; /* order_by: becomes its key's highest with the ack (mb_job_order) */
  char *stale;   /* order_by: why the handlers did not run and it is discarded */
  mb_job *prev, *next;
};

/* What the last attempts at recent messages ended with: a message that comes back past
 * max_deliveries is parked with that reason rather than the crash-loop guess when this
 * process saw it fail (its outbox refused, its completion lost). */
typedef struct memo_slot {
  char id[MB_ID_LEN + 1];
  char why[MB_ERRLEN];
} memo_slot;

struct mb_pipeline {
  const mb_endpoint_cfg *cfg;
  const char *host;
  mb_transport *transport;
  mb_claim_store *claims; /* where claimed bodies are fetched from; NULL: none */
  const mb_runner *runner;
  void *runner_ud;
  void (*on_idle)(void *ud);
  void *idle_ud;
  mb_job *jobs;
  mb_marks *marks; /* the local store, on a transport without marks (opened at first use) */
  mb_pipeline_stats stats;
  mb_metrics *metrics; /* the runtime's; NULL: none */
  memo_slot memo[MEMO_SLOTS];
  unsigned memo_next;
};

#define LOG_MSG(level, job, ...)                                                                 \
  mb_log_msg(level, (job)->p->cfg->name, mb_envelope_log_ids(&(job)->d->env), __VA_ARGS__)

double mb_pipeline_backoff(uint32_t delivery_count) {
  double delay = 0.1;
  for (uint32_t i = 1; i < delivery_count && delay < 30; i++) delay *= 2;
  return delay < 30 ? delay : 30;
}

mb_pipeline *mb_pipeline_new(const mb_endpoint_cfg *cfg, const char *host) {
  mb_pipeline *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->cfg = cfg;
  p->host = host;
  return p;
}

void mb_pipeline_set_transport(mb_pipeline *p, mb_transport *t) { p->transport = t; }
void mb_pipeline_set_metrics(mb_pipeline *p, mb_metrics *m) { p->metrics = m; }
void mb_pipeline_set_claims(mb_pipeline *p, mb_claim_store *claims) { p->claims = claims; }
void mb_pipeline_set_runner(mb_pipeline *p, const mb_runner *runner, void *ud) {
  p->runner = runner;
  p->runner_ud = ud;
}
void mb_pipeline_on_idle(mb_pipeline *p, void (*fn)(void *ud), void *ud) {
  p->on_idle = fn;
  p->idle_ud = ud;
}
mb_pipeline_stats mb_pipeline_stats_of(const mb_pipeline *p) { return p->stats; }

mb_delivery *mb_job_delivery(mb_job *job) { return job->d; }
int mb_job_attempt(const mb_job *job) { return job->attempt; }
const char *mb_job_endpoint(const mb_job *job) { return job->p->cfg->name; }
void mb_job_on_end(mb_job *job, void (*fn)(void *ud), void *ud) {
  job->on_end = fn;
  job->on_end_ud = ud;
}

/* --- jobs ----------------------------------------------------------------------------- */

static mb_job *job_new(mb_pipeline *p, mb_delivery *d) {
  mb_job *job = calloc(1, sizeof *job);
  if (job == NULL) return NULL;
  job->p = p;
  job->d = d;
  job->started_usec = mb_now_usec();
  job->attempt_start = mb_monotonic();
  job->attempt = 1;
  job->next = p->jobs;
  if (p->jobs) p->jobs->prev = job;
  p->jobs = job;
  p->stats.in_flight++;
  return job;
}

/* --- claimed bodies ---------------------------------------------------------------------- */

/* The delivered body (the claim's empty stub) back in place of the fetched one. */
void mb_job_body_taken(mb_job *job) {
  if (job->stub == NULL) return;
  free(job->d->env.body);
  job->d->env.body = job->stub;
  job->d->env.body_len = job->stub_len;
  job->stub = NULL;
}

/* Fetches and verifies the job's claimed body into its delivery (nothing to do without a
 * claim). MB_OK, or a status and why: MB_ENOTFOUND, MB_EINVAL (a wrong sha256, no store)
 * and MB_ETOOBIG can never succeed; others (the store's I/O) may. */
static int load_claim(mb_job *job, mb_err *why) {
  mb_envelope *env = &job->d->env;
  if (job->stub || mb_claim_key(&env->headers) == NULL) return MB_OK;
  char *body;
  size_t len;
  size_t max = mb_endpoint_max_body(job->p->cfg, job->p->claims != NULL);
  int rc = mb_claim_fetch(job->p->claims, &env->headers, max, &body, &len, why);
  if (rc != MB_OK) return rc;
  job->stub = env->body;
  job->stub_len = env->body_len;
  env->body = body;
  env->body_len = len;
  return MB_OK;
}

/* Adds delta to the pin count of the job's claim (if any); a failure is logged. */
static void pin_claim(mb_job *job, int delta);
/* The claim of the job's message (if any) counts its retention from usec. */
static void touch_claim(mb_job *job, int64_t usec);

/* The attempt is over: whatever its runner bound to the job lets go of it. */
static void attempt_over(mb_job *job) {
  mb_job_body_taken(job);
  void (*fn)(void *) = job->on_end;
  job->on_end = NULL;
  job->running = 0;
  if (fn) fn(job->on_end_ud);
}

static void clear_outbox(mb_job *job) {
  for (size_t i = 0; i < job->n_out; i++) mb_outgoing_free(job->outbox[i]);
  job->n_out = 0;
  job->audited = 0;
}

static void job_end(mb_job *job) {
  mb_pipeline *p = job->p;
  if (job->prev) job->prev->next = job->next;
  else p->jobs = job->next;
  if (job->next) job->next->prev = job->prev;
  p->stats.in_flight--;
  attempt_over(job);
  clear_outbox(job);
  free(job->outbox);
  free(job->mark);
  free(job->stale);
  mb_delivery_free(job->d);
  free(job);
  if (p->stats.in_flight == 0 && p->on_idle) p->on_idle(p->idle_ud);
}

int mb_job_add_outgoing(mb_job *job, mb_outgoing *m) {
  if (job->n_out == job->cap_out) {
    size_t cap = job->cap_out ? job->cap_out * 2 : 4;
    mb_outgoing **grown = realloc(job->outbox, cap * sizeof *grown);
    if (grown == NULL) {
      mb_outgoing_free(m);
      return MB_ENOMEM;
    }
    job->outbox = grown;
    job->cap_out = cap;
  }
  job->outbox[job->n_out++] = m;
  return MB_OK;
}

static void park(mb_job *job, const char *reason, const char *trace);
static void release(mb_job *job, const char *why);

static void run_attempt(mb_job *job) {
  mb_pipeline *p = job->p;
  mb_err why;
  job->attempt_start = mb_monotonic(); /* its claimed body's fetch included */
  if (p->runner == NULL) {
    mb_pipeline_finished(job, MB_OUTCOME_STOPPED, "no handlers are loaded", NULL);
    return;
  }
  int rc = load_claim(job, &why);
  if (rc == MB_ENOTFOUND || rc == MB_EINVAL || rc == MB_ETOOBIG) {
    park(job, why.msg, NULL);
    return;
  }
  if (rc != MB_OK) {
    p->stats.failed++;
    release(job, why.msg);
    return;
  }
  job->runner = p->runner;
  job->runner_ud = p->runner_ud;
  job->running = 1;
  p->runner->run(p->runner_ud, job);
}

/* --- the memo of last failures ---------------------------------------------------------- */

static void remember(mb_pipeline *p, const char *id, const char *why) {
  memo_slot *slot = NULL;
  for (unsigned i = 0; i < MEMO_SLOTS && slot == NULL; i++)
    if (strcmp(p->memo[i].id, id) == 0) slot = &p->memo[i];
  if (slot == NULL) slot = &p->memo[p->memo_next++ % MEMO_SLOTS];
  snprintf(slot->id, sizeof slot->id, "%s", id);
  snprintf(slot->why, sizeof slot->why, "%s", why);
}

static const char *recalled(const mb_pipeline *p, const char *id) {
  for (unsigned i = 0; i < MEMO_SLOTS; i++)
    if (p->memo[i].id[0] && strcmp(p->memo[i].id, id) == 0) return p->memo[i].why;
  return NULL;
}

/* --- out-of-order protection (mark.h) ----------------------------------------------------- */

/* The local store of marks (a transport without marks of its own), opened at first use,
 * and again when a reload changed the endpoint's state option. */
static int local_marks(mb_pipeline *p, mb_marks **out, mb_err *err) {
  const char *url = p->cfg->state ? p->cfg->state : MB_DEFAULT_STATE;
  if (p->marks && strcmp(mb_marks_url(p->marks), url) != 0) {
    mb_marks_close(p->marks);
    p->marks = NULL;
  }
  if (p->marks == NULL) {
    int rc = mb_marks_open(&p->marks, url, err);
    if (rc != MB_OK) return rc;
    mb_log(MB_INFO, p->cfg->name, NULL, NULL, "order_by marks are kept in %s", url);
  }
  *out = p->marks;
  return MB_OK;
}

static int check_mark(mb_job *job, const mb_mark *m, int *stale, char *highest, size_t len,
                      mb_err *err) {
  mb_transport *t = job->p->transport;
  if (t->ops->mark_check) return t->ops->mark_check(t, m, stale, highest, len, err);
  mb_marks *s;
  int rc = local_marks(job->p, &s, err);
  return rc == MB_OK ? mb_marks_check(s, m, stale, highest, len, err) : rc;
}

int mb_job_order(mb_job *job, const mb_mark *m, mb_err *err) {
  char highest[96], why[MB_ERRLEN];
  int stale = 0, rc = check_mark(job, m, &stale, highest, sizeof highest, err);
  if (rc != MB_OK) return rc;
  free(job->mark);
  free(job->stale);
  job->mark = NULL;
  job->stale = NULL;
  if (stale) {
    mb_mark_stale_reason(m, highest, why, sizeof why);
    if ((job->stale = strdup(why)) == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
    return mb_err_set(err, MB_ESTALE, "%s", why);
  }
  if ((job->mark = mb_mark_copy(m)) == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  return MB_OK;
}

/* --- metrics (metrics.h) --------------------------------------------------------------- */

/* Seconds since the message's moonbus.time_sent (0 when the sender's clock is ahead), or
 * -1 without a readable one. */
static double since_sent(const mb_delivery *d) {
  const char *sent = mb_headers_get(&d->env.headers, MB_H_TIME_SENT);
  int64_t usec;
  if (sent == NULL || mb_time_parse(sent, &usec) != MB_OK) return -1;
  double s = (double)(mb_now_usec() - usec) / 1e6;
  return s > 0 ? s : 0;
}

/* One outcome of the job's current attempt, counted once where its stats are. */
static void count_outcome(const mb_job *job, mb_metric_outcome o) {
  mb_metrics *m = job->p->metrics;
  if (m == NULL) return;
  mb_metrics_outcome(m, job->d->env.type, o, mb_monotonic() - job->attempt_start,
                     since_sent(job->d));
}

/* --- outcomes ------------------------------------------------------------------------- */

static void release(mb_job *job, const char *why) {
  double delay = mb_pipeline_backoff(job->d->delivery_count);
  remember(job->p, job->d->env.id, why);
  mb_err err;
  mb_transport *t = job->p->transport;
  LOG_MSG(MB_WARN, job, "%s; delivery %u, back on the queue in %.1f s", why,
          job->d->delivery_count, delay);
  if (t->ops->release(t, job->d, delay, &err) != MB_OK)
    LOG_MSG(MB_ERROR, job, "could not give it back to its queue: %s", err.msg);
  job_end(job);
}

static void failed(mb_job *job, const char *error, const char *trace);

/* The message's own messages were refused (no such queue, too large, bad headers): that is
 * the handler's failure, retried and finally parked by the policy with the last error,
 * never a guess that the host crashed. Other failures (the transport is down) release it. */
static int message_level(int status) {
  return status == MB_EUNROUTABLE || status == MB_ETOOBIG || status == MB_EINVAL ||
         status == MB_EOWNER;
}

static void discard(mb_job *job, mb_level level, const char *why, int audit);

static void completed(void *ud, int status, const char *error) {
  mb_job *job = ud;
  double ms = (double)(mb_now_usec() - job->started_usec) / 1000.0;
  if (status == MB_OK) {
    job->p->stats.handled++;
    count_outcome(job, MB_METRIC_SUCCESS);
    size_t sent = job->n_out - (size_t)job->audited;
    if (job->attempt > 1)
      LOG_MSG(MB_INFO, job, "handled on attempt %d in %.1f ms, %zu sent", job->attempt, ms, sent);
    else LOG_MSG(MB_INFO, job, "handled in %.1f ms, %zu sent", ms, sent);
  } else if (status == MB_ELOST) {
    LOG_MSG(MB_WARN, job, "outcome discarded: %s", error);
    char why[MB_ERRLEN + 32];
    snprintf(why, sizeof why, "its outcome was lost: %s", error);
    remember(job->p, job->d->env.id, why);
  } else if (status == MB_ESTALE) { /* overtaken while it was handled: nothing was sent */
    discard(job, MB_INFO, error ? error : "stale", 1);
    return;
  } else {
    char why[MB_ERRLEN + 64];
    snprintf(why, sizeof why, "handled, but its messages could not be sent: %s", error);
    if (message_level(status) && job->n_out > 0) {
      failed(job, why, NULL);
      return;
    }
    job->p->stats.failed++;
    release(job, why);
    return;
  }
  job_end(job);
}

/* Sends out (the transport frees nothing of ours) and acknowledges; done(job, ...) once. */
static void complete_with(mb_job *job, mb_outgoing **out, size_t n, mb_done_fn done) {
  mb_err err;
  mb_transport *t = job->p->transport;
  int rc = t->ops->complete(t, job->d, (mb_outgoing *const *)out, n, done, job, &err);
  if (rc != MB_OK) done(job, rc, err.msg);
}

static int add_audit_copy(mb_job *job) {
  const mb_pipeline *p = job->p;
  mb_audit_info info = {p->cfg->audit_queue, p->cfg->name, p->host, job->started_usec,
                        mb_now_usec()};
  mb_outgoing *copy = mb_audit_copy(job->d, &info);
  if (copy == NULL) return MB_ENOMEM;
  int rc = mb_job_add_outgoing(job, copy);
  job->audited = rc == MB_OK;
  return rc;
}

static void discarded(void *ud, int status, const char *error) {
  mb_job *job = ud;
  if (status == MB_OK) {
    job->p->stats.discarded++;
    count_outcome(job, MB_METRIC_DISCARDED);
  } else if (status == MB_ELOST) {
    LOG_MSG(MB_WARN, job, "could not discard, the message is no longer ours: %s", error);
  } else {
    char why[MB_ERRLEN + 64];
    snprintf(why, sizeof why, "could not acknowledge it unhandled: %s", error);
    release(job, why);
    return;
  }
  job_end(job);
}

/* Acknowledges the message unhandled (what an attempt sent is dropped); its audit copy, if
 * audit says so and the endpoint audits, carries why in moonbus.discarded. */
static void discard(mb_job *job, mb_level level, const char *why, int audit) {
  LOG_MSG(level, job, "discarded: %s", why);
  clear_outbox(job);
  if (audit && job->p->cfg->audit_queue &&
      (add_audit_copy(job) != MB_OK ||
       mb_headers_set(&job->outbox[job->n_out - 1]->env.headers, MB_H_DISCARDED, why) != MB_OK)) {
    release(job, "out of memory while making its audit copy");
    return;
  }
  complete_with(job, job->outbox, job->n_out, discarded);
}

/* The handlers succeeded: the outbox and the ack, with the job's mark if it has one (in the
 * transport's transaction, or in the local store just before the ack). */
static void complete_handled(mb_job *job) {
  mb_transport *t = job->p->transport;
  mb_err err;
  if (job->mark && t->ops->complete_marked) {
    int rc = t->ops->complete_marked(t, job->d, job->mark, (mb_outgoing *const *)job->outbox,
                                     job->n_out, completed, job, &err);
    if (rc != MB_OK) completed(job, rc, err.msg);
    return;
  }
  mb_marks *s;
  int advanced = 1, rc = job->mark ? local_marks(job->p, &s, &err) : MB_OK;
  if (job->mark && rc == MB_OK) rc = mb_marks_advance(s, job->mark, &advanced, &err);
  if (rc != MB_OK) {
    char why[MB_ERRLEN + 64];
    snprintf(why, sizeof why, "handled, but its order_by value could not be stored: %s", err.msg);
    job->p->stats.failed++;
    release(job, why);
    return;
  }
  if (!advanced)
    LOG_MSG(MB_WARN, job,
            "handled, but %s %s was overtaken meanwhile: another consumer handled a value as "
            "high or higher for it",
            job->mark->key_field, job->mark->key);
  complete_with(job, job->outbox, job->n_out, completed);
}

static void pin_claim(mb_job *job, int delta) {
  const char *key = mb_claim_key(&job->d->env.headers);
  mb_err err;
  if (key == NULL || job->p->claims == NULL) return;
  if (job->p->claims->ops->pin(job->p->claims, key, delta, &err) != MB_OK)
    LOG_MSG(MB_WARN, job, "claim %s could not be %s: %s", key, delta > 0 ? "pinned" : "unpinned",
            err.msg);
}

static void touch_claim(mb_job *job, int64_t usec) {
  const char *key = mb_claim_key(&job->d->env.headers);
  mb_err err;
  if (key == NULL || job->p->claims == NULL) return;
  if (job->p->claims->ops->touch(job->p->claims, key, usec, &err) != MB_OK)
    LOG_MSG(MB_WARN, job, "claim %s could not be kept longer: %s", key, err.msg);
}

static void parked(void *ud, int status, const char *error) {
  mb_job *job = ud;
  if (status != MB_OK) pin_claim(job, -1); /* no parked copy holds it after all */
  if (status == MB_OK) {
    job->p->stats.parked++;
    count_outcome(job, MB_METRIC_ERROR);
    LOG_MSG(MB_ERROR, job, "moved to queue '%s'", job->p->cfg->error_queue);
    job_end(job);
  } else if (status == MB_ELOST) {
    LOG_MSG(MB_WARN, job, "could not park, the message is no longer ours: %s", error);
    job_end(job);
  } else {
    char why[MB_ERRLEN + 64];
    snprintf(why, sizeof why, "could not move it to the error queue: %s", error);
    release(job, why);
  }
}

/* Moves the message, byte for byte with failure headers added, to the error queue. */
static void park(mb_job *job, const char *reason, const char *trace) {
  LOG_MSG(MB_ERROR, job, "cannot be handled: %s", reason);
  mb_failure f = {job->p->cfg->error_queue, reason, trace, job->attempt - 1,
                  mb_retry_round(&job->d->env.headers)};
  mb_outgoing *out[2] = {mb_errorq_copy(job->d, &f), NULL};
  size_t n = 1;
  if (out[0] && mb_errorq_is_request(job->d) && /* its requester learns at once */
      (out[n++] = mb_errorq_notice(job->d, reason, job->p->cfg->name, job->p->host)) == NULL) {
    mb_outgoing_free(out[0]);
    out[0] = NULL;
  }
  if (out[0] == NULL) {
    release(job, "out of memory while parking it");
    return;
  }
  pin_claim(job, +1); /* before the copy exists: the sweep never sees it unpinned */
  complete_with(job, out, n, parked);
  for (size_t i = 0; i < n; i++) mb_outgoing_free(out[i]);
}

static void deferred(void *ud, int status, const char *error) {
  mb_job *job = ud;
  if (status == MB_OK || status == MB_ELOST) {
    if (status == MB_OK) count_outcome(job, MB_METRIC_DELAYED);
    if (status == MB_ELOST) LOG_MSG(MB_WARN, job, "delayed retry not scheduled: %s", error);
    job_end(job);
    return;
  }
  char why[MB_ERRLEN + 64];
  snprintf(why, sizeof why, "its delayed retry could not be scheduled: %s", error);
  release(job, why);
}

/* Sends the message back to its queue for delayed round `round` and acknowledges it. */
static void retry_later(mb_job *job, const mb_retry_decision *d, const char *error) {
  LOG_MSG(MB_WARN, job, "handler failed %d times: %s; delayed retry %d of %d in %g s",
          job->attempt, error, d->round, job->p->cfg->delayed_retries, d->delay);
  mb_outgoing *copy = mb_msgcopy(job->d, job->d->queue);
  if (copy == NULL ||
      mb_msgcopy_set_number(&copy->env.headers, MB_H_RETRIES_DELAYED, d->round) != MB_OK) {
    mb_outgoing_free(copy);
    release(job, "out of memory while scheduling its delayed retry");
    return;
  }
  copy->delay = d->delay;
  touch_claim(job, mb_now_usec() + (int64_t)(d->delay * 1e6));
  complete_with(job, &copy, 1, deferred);
  mb_outgoing_free(copy);
}

/* Runs the handlers again in place: what the failed attempt sent is forgotten. */
static void retry_now(mb_job *job, const char *error) {
  LOG_MSG(MB_INFO, job, "attempt %d failed: %s; trying again", job->attempt, error);
  count_outcome(job, MB_METRIC_RETRIED);
  clear_outbox(job);
  job->attempt++;
  run_attempt(job);
}

static void failed(mb_job *job, const char *error, const char *trace) {
  const mb_endpoint_cfg *cfg = job->p->cfg;
  mb_retry_policy policy = {cfg->immediate_retries, cfg->delayed_retries, cfg->retry_delay};
  int round = mb_retry_round(&job->d->env.headers);
  mb_retry_decision d = mb_retry_decide(&policy, job->attempt, round, 0);
  job->p->stats.failed++; /* attempts that failed, whatever comes next */
  if (trace) LOG_MSG(MB_DEBUG, job, "trace: %s", trace);
  if (d.action == MB_RETRY_NOW) {
    retry_now(job, error);
  } else if (d.action == MB_RETRY_LATER) {
    retry_later(job, &d, error);
  } else {
    char why[MB_ERRLEN + 96];
    int attempts = cfg->immediate_retries + 1, rounds = cfg->delayed_retries + 1;
    snprintf(why, sizeof why, "%s (failed %d attempt%s %s%d round%s)", error, attempts,
             attempts == 1 ? "" : "s", rounds == 1 ? "in " : "in each of ", rounds,
             rounds == 1 ? "" : "s");
    park(job, why, trace);
  }
}

/* --- arrival -------------------------------------------------------------------------- */

/* Why the envelope can never be handled, or NULL. The delivery count comes first, so that
 * a message that ends the host whatever else is wrong with it is still parked at the
 * limit; a missing moonbus.kind is no reason (a foreign sender's message takes the kind
 * its type has in the endpoint's contract, ldispatch.c), an unknown one is. */
static const char *screen(const mb_job *job, char *buf, size_t len) {
  const mb_delivery *d = job->d;
  const mb_endpoint_cfg *cfg = job->p->cfg;
  mb_kind kind;
  const char *last = recalled(job->p, d->env.id);
  if (d->delivery_count > (uint32_t)cfg->max_deliveries && last)
    snprintf(buf, len,
             "delivered %u times without an outcome (max_deliveries = %d); the last "
             "attempt: %s",
             d->delivery_count, cfg->max_deliveries, last);
  else if (d->delivery_count > (uint32_t)cfg->max_deliveries)
    snprintf(buf, len,
             "delivered %u times without an outcome: handling it seems to end the "
             "host process (a crash, an OOM kill, the watchdog); the limit is max_deliveries "
             "= %d",
             d->delivery_count, cfg->max_deliveries);
  else if (d->problem) snprintf(buf, len, "malformed envelope: %s", d->problem);
  else if (d->env.type == NULL || d->env.type[0] == '\0')
    snprintf(buf, len, "the message has no type");
  else if (mb_headers_get(&d->env.headers, MB_H_KIND) &&
           mb_envelope_kind(&d->env, &kind) != MB_OK)
    snprintf(buf, len, "header %s is not command, event or message", MB_H_KIND);
  else if (d->env.body_len > cfg->max_body)
    snprintf(buf, len, "body is %zu bytes, over the limit of %zu bytes (max_body)",
             d->env.body_len, cfg->max_body);
  else return NULL;
  return buf;
}

static int expired(const mb_delivery *d) {
  const char *at = mb_headers_get(&d->env.headers, MB_H_EXPIRES_AT);
  int64_t usec;
  return at && mb_time_parse(at, &usec) == MB_OK && usec < mb_now_usec();
}

void mb_pipeline_deliver(void *ud, mb_delivery *d) {
  mb_pipeline *p = ud;
  p->stats.received++;
  if (p->metrics) mb_metrics_received(p->metrics, d->env.type);
  mb_job *job = job_new(p, d);
  if (job == NULL) {
    mb_log_msg(MB_ERROR, p->cfg->name, mb_envelope_log_ids(&d->env), "out of memory: released");
    p->transport->ops->release(p->transport, d, 1.0, NULL);
    mb_delivery_free(d);
    return;
  }
  char why[MB_ERRLEN];
  if (screen(job, why, sizeof why)) {
    park(job, why, NULL);
  } else if (expired(d)) {
    discard(job, MB_WARN, "its time to live ran out before it was received", 0);
  } else {
    run_attempt(job);
  }
}

void mb_pipeline_finished(mb_job *job, mb_outcome outcome, const char *error, const char *trace) {
  attempt_over(job);
  switch (outcome) {
  case MB_OUTCOME_OK:
    if (job->stale) {
      discard(job, MB_INFO, job->stale, 1);
      return;
    }
    if (job->p->cfg->audit_queue && add_audit_copy(job) != MB_OK) {
      release(job, "out of memory while making its audit copy");
      return;
    }
    complete_handled(job);
    return;
  case MB_OUTCOME_POISON: park(job, error ? error : "unrecoverable", trace); return;
  case MB_OUTCOME_FAILED: failed(job, error ? error : "(no message)", trace); return;
  case MB_OUTCOME_STOPPED: release(job, error ? error : "the bus stopped"); return;
  }
}

/* Jobs whose attempt runs are cancelled (a runner reports STOPPED, which releases them);
 * what is left (waiting for the transport's answer) is released here. */
void mb_pipeline_free(mb_pipeline *p) {
  if (p == NULL) return;
  for (mb_job *job = p->jobs, *next; job; job = next) {
    next = job->next;
    if (job->running) job->runner->cancel(job->runner_ud, job);
  }
  p->on_idle = NULL;
  while (p->jobs) {
    mb_job *job = p->jobs;
    if (p->transport) release(job, "the bus stopped");
    else job_end(job);
  }
  mb_marks_close(p->marks);
  free(p);
}
