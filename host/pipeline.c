/* pipeline.c — the path of one message (DESIGN §2): screen the envelope, run the
 * handlers (sched.c), then dispatch the outbox and acknowledge; on a failure carry out
 * retry.c's decision: run the handlers again in place, send the message back to its queue
 * for a delayed round (with the acknowledgement, atomically where the transport can), or
 * park it in the error queue. The only place that decides a message's fate. Never
 * includes lua.h; never talks to a transport other than through its vtable. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ids.h"
#include "log.h"
#include "retry.h"
#include "sched.h"

#define LOG_MSG(level, job, ...)                                                          \
  mb_log(level, (job)->rt->cfg.name, (job)->d->env.id, (job)->d->env.type, __VA_ARGS__)

double mb_pipeline_backoff(uint32_t delivery_count) {
  double delay = 0.1;
  for (uint32_t i = 1; i < delivery_count && delay < 30; i++) delay *= 2;
  return delay < 30 ? delay : 30;
}

static mb_job *job_new(mb_runtime *rt, mb_delivery *d) {
  mb_job *job = calloc(1, sizeof *job);
  if (job == NULL) return NULL;
  job->rt = rt;
  job->d = d;
  job->started_usec = mb_now_usec();
  job->attempt = 1;
  job->next = rt->jobs;
  if (rt->jobs) rt->jobs->prev = job;
  rt->jobs = job;
  rt->in_flight++;
  return job;
}

/* The Lua ctx outlives its attempt: cut it loose. */
static void cut_ctx(mb_job *job) {
  if (job->ctx) *(mb_job **)job->ctx = NULL;
  job->ctx = NULL;
}

static void clear_outbox(mb_job *job) {
  for (size_t i = 0; i < job->n_out; i++) mb_outgoing_free(job->outbox[i]);
  job->n_out = 0;
}

static void job_end(mb_job *job) {
  mb_runtime *rt = job->rt;
  if (job->prev) job->prev->next = job->next;
  else rt->jobs = job->next;
  if (job->next) job->next->prev = job->prev;
  rt->in_flight--;
  cut_ctx(job);
  clear_outbox(job);
  free(job->outbox);
  mb_delivery_free(job->d);
  free(job);
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

/* What the last attempts at recent messages ended with, in this process: a message that
 * comes back past max_deliveries is parked with that reason rather than the crash-loop
 * guess when this process saw it fail (its outbox refused, its completion lost). */
#define MEMO_SLOTS 64
static struct {
  char id[MB_ID_LEN + 1];
  char why[MB_ERRLEN];
} memo[MEMO_SLOTS];
static unsigned memo_next;

static void remember(const char *id, const char *why) {
  for (unsigned i = 0; i < MEMO_SLOTS; i++)
    if (strcmp(memo[i].id, id) == 0) {
      snprintf(memo[i].why, sizeof memo[i].why, "%s", why);
      return;
    }
  unsigned slot = memo_next++ % MEMO_SLOTS;
  snprintf(memo[slot].id, sizeof memo[slot].id, "%s", id);
  snprintf(memo[slot].why, sizeof memo[slot].why, "%s", why);
}

static const char *recalled(const char *id) {
  for (unsigned i = 0; i < MEMO_SLOTS; i++)
    if (memo[i].id[0] && strcmp(memo[i].id, id) == 0) return memo[i].why;
  return NULL;
}

static void release(mb_job *job, const char *why) {
  double delay = mb_pipeline_backoff(job->d->delivery_count);
  remember(job->d->env.id, why);
  mb_err err;
  mb_transport *t = job->rt->transport;
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

static void completed(void *ud, int status, const char *error) {
  mb_job *job = ud;
  double ms = (double)(mb_now_usec() - job->started_usec) / 1000.0;
  if (status == MB_OK) {
    job->rt->handled++;
    size_t sent = job->n_out - (size_t)job->audited;
    if (job->attempt > 1)
      LOG_MSG(MB_INFO, job, "handled on attempt %d in %.1f ms, %zu sent", job->attempt, ms, sent);
    else LOG_MSG(MB_INFO, job, "handled in %.1f ms, %zu sent", ms, sent);
  } else if (status == MB_ELOST) {
    LOG_MSG(MB_WARN, job, "outcome discarded: %s", error);
    char why[MB_ERRLEN + 32];
    snprintf(why, sizeof why, "its outcome was lost: %s", error);
    remember(job->d->env.id, why);
  } else {
    char why[MB_ERRLEN + 64];
    snprintf(why, sizeof why, "handled, but its messages could not be sent: %s", error);
    if (message_level(status) && job->n_out > 0) {
      failed(job, why, NULL);
      return;
    }
    job->rt->failed++;
    release(job, why);
    return;
  }
  job_end(job);
}

static mb_outgoing *copy_to(const mb_job *job, const char *queue);

static int set_time(mb_headers *h, const char *key, int64_t usec) {
  char when[MB_TIME_LEN + 1];
  mb_time_iso(usec, when);
  return mb_headers_set(h, key, when);
}

/* The audit copy of a handled message joins its outbox: the message byte for byte, with
 * when, where and by whom it was processed. */
static int add_audit_copy(mb_job *job) {
  mb_runtime *rt = job->rt;
  mb_outgoing *copy = copy_to(job, rt->cfg.audit_queue);
  if (copy == NULL) return MB_ENOMEM;
  copy->archive = 1;
  mb_headers *h = &copy->env.headers;
  int rc = set_time(h, MB_H_PROCESSING_STARTED, job->started_usec);
  if (rc == MB_OK) rc = set_time(h, MB_H_PROCESSING_ENDED, mb_now_usec());
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_PROCESSING_ENDPOINT, rt->cfg.name);
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_PROCESSING_HOST, rt->host);
  if (rc != MB_OK) {
    mb_outgoing_free(copy);
    return rc;
  }
  rc = mb_job_add_outgoing(job, copy);
  job->audited = rc == MB_OK;
  return rc;
}

static void complete(mb_job *job, mb_outgoing **out, size_t n) {
  mb_err err;
  mb_transport *t = job->rt->transport;
  int rc = t->ops->complete(t, job->d, (mb_outgoing *const *)out, n, completed, job, &err);
  if (rc != MB_OK) completed(job, rc, err.msg);
}

static void parked(void *ud, int status, const char *error) {
  mb_job *job = ud;
  if (status == MB_OK) {
    job->rt->parked++;
    LOG_MSG(MB_ERROR, job, "moved to queue '%s'", job->rt->cfg.error_queue);
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

static int set_number(mb_headers *h, const char *key, long n) {
  char text[24];
  snprintf(text, sizeof text, "%ld", n);
  return mb_headers_set(h, key, text);
}

#define KEEP_MAX 64        /* headers a copy keeps when the original's break the rules */
#define KEEP_BYTES 1024    /* the longest header (key and value) such a copy keeps */
#define EXCEPTION_MAX 8192 /* bytes of an exception message or trace on an error copy */

static int keep_when_oversize(const mb_header *hd, size_t kept) {
  size_t n = strlen(hd->key) + strlen(hd->value);
  return kept < KEEP_MAX && n <= KEEP_BYTES && mb_header_key_problem(hd->key, 1) == NULL &&
         (strncmp(hd->key, MB_RESERVED_PREFIX, 8) == 0 || strcmp(hd->key, MB_H_TRACEPARENT) == 0);
}

/* An error or audit copy must always be deliverable: when the original's headers break the
 * header rules (a foreign sender's 120 KiB of them), the copy keeps only the bus's own
 * short ones and says what was removed in MB_H_HEADERS_REMOVED. The body is kept. */
static int fit_headers(mb_headers *h) {
  mb_err why;
  if (mb_headers_check(h, 1, &why) == MB_OK) return MB_OK;
  mb_headers kept = MB_HEADERS_INIT;
  size_t dropped = 0, bytes = 0;
  int rc = MB_OK;
  for (size_t i = 0; rc == MB_OK && i < h->len; i++) {
    const mb_header *hd = &h->items[i];
    if (keep_when_oversize(hd, kept.len))
      rc = mb_headers_append_n(&kept, hd->key, strlen(hd->key), hd->value, strlen(hd->value));
    else dropped++, bytes += strlen(hd->key) + strlen(hd->value);
  }
  char note[MB_ERRLEN + 128];
  snprintf(note, sizeof note, "%zu headers (%zu bytes of keys and values) were removed from "
           "this copy: %s", dropped, bytes, why.msg);
  if (rc == MB_OK) rc = mb_headers_set(&kept, MB_H_HEADERS_REMOVED, note);
  if (rc != MB_OK) {
    mb_headers_free(&kept);
    return rc;
  }
  mb_headers_free(h);
  *h = kept;
  return MB_OK;
}

/* A copy of the message, byte for byte, to queue (headers added by the caller); headers
 * that break the rules are replaced by a note (fit_headers). */
static mb_outgoing *copy_to(const mb_job *job, const char *queue) {
  mb_outgoing *copy = malloc(sizeof *copy);
  if (copy == NULL) return NULL;
  mb_outgoing_init(copy);
  copy->route = MB_ROUTE_QUEUE;
  if (mb_envelope_copy(&copy->env, &job->d->env) != MB_OK ||
      (copy->dest = strdup(queue)) == NULL || fit_headers(&copy->env.headers) != MB_OK) {
    mb_outgoing_free(copy);
    return NULL;
  }
  return copy;
}

/* key = at most EXCEPTION_MAX bytes of text (cut on a byte, marked). */
static int set_bounded(mb_headers *h, const char *key, const char *text) {
  if (strlen(text) <= EXCEPTION_MAX) return mb_headers_set(h, key, text);
  char *cut = malloc(EXCEPTION_MAX + 16);
  if (cut == NULL) return MB_ENOMEM;
  snprintf(cut, EXCEPTION_MAX + 16, "%.*s [cut]", EXCEPTION_MAX, text);
  int rc = mb_headers_set(h, key, cut);
  free(cut);
  return rc;
}

static int add_failure_headers(mb_job *job, mb_outgoing *m, const char *reason, const char *trace) {
  char when[MB_TIME_LEN + 1];
  mb_time_iso(mb_now_usec(), when);
  mb_headers *h = &m->env.headers;
  int rc = mb_headers_set(h, MB_H_FAILED_QUEUE, job->d->queue);
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_FAILED_AT, when);
  if (rc == MB_OK) rc = set_bounded(h, MB_H_EXCEPTION_MESSAGE, reason);
  if (rc == MB_OK && trace) rc = set_bounded(h, MB_H_EXCEPTION_TRACE, trace);
  if (rc == MB_OK) rc = set_number(h, MB_H_RETRIES_IMMEDIATE, job->attempt - 1);
  if (rc == MB_OK) rc = set_number(h, MB_H_RETRIES_DELAYED, mb_retry_round(&job->d->env.headers));
  if (rc == MB_OK) rc = set_number(h, MB_H_FAILED_DELIVERIES, (long)job->d->delivery_count);
  return rc;
}

/* Moves the message, byte for byte with failure headers added, to the error queue. */
static void park(mb_job *job, const char *reason, const char *trace) {
  LOG_MSG(MB_ERROR, job, "cannot be handled: %s", reason);
  mb_outgoing *copy = copy_to(job, job->rt->cfg.error_queue);
  if (copy) copy->archive = 1;
  if (copy == NULL || add_failure_headers(job, copy, reason, trace) != MB_OK) {
    mb_outgoing_free(copy);
    release(job, "out of memory while parking it");
    return;
  }
  mb_err err;
  mb_transport *t = job->rt->transport;
  int rc = t->ops->complete(t, job->d, &copy, 1, parked, job, &err);
  mb_outgoing_free(copy);
  if (rc != MB_OK) parked(job, rc, err.msg);
}

static void deferred(void *ud, int status, const char *error) {
  mb_job *job = ud;
  if (status == MB_OK || status == MB_ELOST) {
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
          job->attempt, error, d->round, job->rt->cfg.delayed_retries, d->delay);
  mb_outgoing *copy = copy_to(job, job->d->queue);
  if (copy == NULL || set_number(&copy->env.headers, MB_H_RETRIES_DELAYED, d->round) != MB_OK) {
    mb_outgoing_free(copy);
    release(job, "out of memory while scheduling its delayed retry");
    return;
  }
  copy->delay = d->delay;
  mb_err err;
  mb_transport *t = job->rt->transport;
  int rc = t->ops->complete(t, job->d, &copy, 1, deferred, job, &err);
  mb_outgoing_free(copy);
  if (rc != MB_OK) deferred(job, rc, err.msg);
}

/* Runs the handlers again in place: what the failed attempt sent is forgotten. */
static void retry_now(mb_job *job, const char *error) {
  LOG_MSG(MB_INFO, job, "attempt %d failed: %s; trying again", job->attempt, error);
  clear_outbox(job);
  cut_ctx(job);
  job->attempt++;
  mb_sched_handle(job->rt->sched, job);
}

static void failed(mb_job *job, const char *error, const char *trace) {
  const mb_endpoint_cfg *cfg = &job->rt->cfg;
  mb_retry_policy policy = {cfg->immediate_retries, cfg->delayed_retries, cfg->retry_delay};
  int round = mb_retry_round(&job->d->env.headers);
  mb_retry_decision d = mb_retry_decide(&policy, job->attempt, round, 0);
  job->rt->failed++; /* attempts that failed, whatever comes next */
  if (trace) LOG_MSG(MB_DEBUG, job, "trace: %s", trace);
  if (d.action == MB_RETRY_NOW) {
    retry_now(job, error);
  } else if (d.action == MB_RETRY_LATER) {
    retry_later(job, &d, error);
  } else {
    char why[MB_ERRLEN + 96];
    snprintf(why, sizeof why, "%s (failed %d attempts in each of %d rounds)", error,
             cfg->immediate_retries + 1, cfg->delayed_retries + 1);
    park(job, why, trace);
  }
}

/* Why the envelope can never be handled, or NULL. The delivery count comes first, so that
 * a message that ends the host whatever else is wrong with it is still parked at the
 * limit; a missing moonbus.kind is no reason (a foreign sender's message takes the kind
 * its type has in the endpoint's contract, ldispatch.c), an unknown one is. */
static const char *screen(const mb_job *job, char *buf, size_t len) {
  const mb_delivery *d = job->d;
  const mb_runtime *rt = job->rt;
  mb_kind kind;
  const char *last = recalled(d->env.id);
  if (d->delivery_count > (uint32_t)rt->cfg.max_deliveries && last)
    snprintf(buf, len, "delivered %u times without an outcome (max_deliveries = %d); the last "
             "attempt: %s", d->delivery_count, rt->cfg.max_deliveries, last);
  else if (d->delivery_count > (uint32_t)rt->cfg.max_deliveries)
    snprintf(buf, len, "delivered %u times without an outcome: handling it seems to end the "
             "host process (a crash, an OOM kill, the watchdog); the limit is max_deliveries "
             "= %d", d->delivery_count, rt->cfg.max_deliveries);
  else if (d->problem) snprintf(buf, len, "malformed envelope: %s", d->problem);
  else if (d->env.type == NULL || d->env.type[0] == '\0')
    snprintf(buf, len, "the message has no type");
  else if (mb_headers_get(&d->env.headers, MB_H_KIND) && mb_envelope_kind(&d->env, &kind) != MB_OK)
    snprintf(buf, len, "header %s is not command, event or message", MB_H_KIND);
  else if (d->env.body_len > rt->cfg.max_body)
    snprintf(buf, len, "body is %zu bytes, over the limit of %zu bytes (max_body)",
             d->env.body_len, rt->cfg.max_body);
  else return NULL;
  return buf;
}

static int expired(const mb_delivery *d) {
  const char *at = mb_headers_get(&d->env.headers, MB_H_EXPIRES_AT);
  int64_t usec;
  return at && mb_time_parse(at, &usec) == MB_OK && usec < mb_now_usec();
}

void mb_pipeline_deliver(void *ud, mb_delivery *d) {
  mb_runtime *rt = ud;
  mb_job *job = job_new(rt, d);
  if (job == NULL) {
    mb_log(MB_ERROR, rt->cfg.name, d->env.id, d->env.type, "out of memory: released");
    rt->transport->ops->release(rt->transport, d, 1.0, NULL);
    mb_delivery_free(d);
    return;
  }
  char why[MB_ERRLEN];
  if (screen(job, why, sizeof why)) {
    park(job, why, NULL);
  } else if (expired(d)) {
    LOG_MSG(MB_WARN, job, "discarded: its time to live ran out before it was received");
    complete(job, NULL, 0);
  } else {
    mb_sched_handle(rt->sched, job);
  }
}

void mb_pipeline_finished(mb_job *job, mb_outcome outcome, const char *error, const char *trace) {
  switch (outcome) {
  case MB_OUTCOME_OK:
    if (job->rt->cfg.audit_queue && add_audit_copy(job) != MB_OK) {
      release(job, "out of memory while making its audit copy");
      return;
    }
    complete(job, job->outbox, job->n_out);
    return;
  case MB_OUTCOME_POISON:
    park(job, error ? error : "unrecoverable", trace);
    return;
  case MB_OUTCOME_FAILED:
    failed(job, error ? error : "(no message)", trace);
    return;
  case MB_OUTCOME_STOPPED:
    release(job, error ? error : "the bus stopped");
    return;
  }
}
