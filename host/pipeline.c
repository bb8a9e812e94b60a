/* pipeline.c — the path of one message (DESIGN §2): screen the envelope, run the
 * handlers (sched.c), then dispatch the outbox and acknowledge, release the message for
 * another attempt, or park it in the error queue. The only place that decides a
 * message's fate. Never includes lua.h; never talks to a transport other than through
 * its vtable. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
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
  job->next = rt->jobs;
  if (rt->jobs) rt->jobs->prev = job;
  rt->jobs = job;
  rt->in_flight++;
  return job;
}

static void job_end(mb_job *job) {
  mb_runtime *rt = job->rt;
  if (job->prev) job->prev->next = job->next;
  else rt->jobs = job->next;
  if (job->next) job->next->prev = job->prev;
  rt->in_flight--;
  if (job->ctx) *(mb_job **)job->ctx = NULL; /* the Lua ctx outlives its job: cut it loose */
  for (size_t i = 0; i < job->n_out; i++) mb_outgoing_free(job->outbox[i]);
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

static void release(mb_job *job, const char *why) {
  double delay = mb_pipeline_backoff(job->d->delivery_count);
  mb_err err;
  mb_transport *t = job->rt->transport;
  LOG_MSG(MB_WARN, job, "%s; delivery %u, back on the queue in %.1f s", why,
          job->d->delivery_count, delay);
  if (t->ops->release(t, job->d, delay, &err) != MB_OK)
    LOG_MSG(MB_ERROR, job, "release failed (the lease will expire instead): %s", err.msg);
  job_end(job);
}

static void completed(void *ud, int status, const char *error) {
  mb_job *job = ud;
  double ms = (double)(mb_now_usec() - job->started_usec) / 1000.0;
  if (status == MB_OK) {
    job->rt->handled++;
    LOG_MSG(MB_INFO, job, "handled in %.1f ms, %zu sent", ms, job->n_out);
  } else if (status == MB_ELOST) {
    LOG_MSG(MB_WARN, job, "outcome discarded: %s", error);
  } else {
    job->rt->failed++;
    char why[MB_ERRLEN + 64];
    snprintf(why, sizeof why, "handled, but its messages could not be sent: %s", error);
    release(job, why);
    return;
  }
  job_end(job);
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

static int add_failure_headers(mb_job *job, mb_outgoing *m, const char *reason, const char *trace) {
  char when[MB_TIME_LEN + 1], count[16];
  mb_time_iso(mb_now_usec(), when);
  snprintf(count, sizeof count, "%u", job->d->delivery_count);
  mb_headers *h = &m->env.headers;
  int rc = mb_headers_set(h, MB_H_FAILED_QUEUE, job->d->queue);
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_FAILED_AT, when);
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_EXCEPTION_MESSAGE, reason);
  if (rc == MB_OK && trace) rc = mb_headers_set(h, MB_H_EXCEPTION_TRACE, trace);
  if (rc == MB_OK) rc = mb_headers_set(h, "moonbus.failed.deliveries", count);
  return rc;
}

/* Moves the message, byte for byte with failure headers added, to the error queue. */
static void park(mb_job *job, const char *reason, const char *trace) {
  LOG_MSG(MB_ERROR, job, "cannot be handled: %s", reason);
  mb_outgoing *copy = malloc(sizeof *copy);
  int rc = copy ? MB_OK : MB_ENOMEM;
  if (copy) mb_outgoing_init(copy);
  if (rc == MB_OK) rc = mb_envelope_copy(&copy->env, &job->d->env);
  if (rc == MB_OK) rc = add_failure_headers(job, copy, reason, trace);
  if (rc == MB_OK && (copy->dest = strdup(job->rt->cfg.error_queue)) == NULL) rc = MB_ENOMEM;
  if (rc != MB_OK) {
    mb_outgoing_free(copy);
    release(job, "out of memory while parking it");
    return;
  }
  copy->route = MB_ROUTE_QUEUE;
  mb_err err;
  mb_transport *t = job->rt->transport;
  rc = t->ops->complete(t, job->d, &copy, 1, parked, job, &err);
  mb_outgoing_free(copy);
  if (rc != MB_OK) parked(job, rc, err.msg);
}

/* Why the envelope can never be handled, or NULL. */
static const char *screen(const mb_job *job, char *buf, size_t len) {
  const mb_delivery *d = job->d;
  const mb_runtime *rt = job->rt;
  mb_kind kind;
  if (d->problem) snprintf(buf, len, "malformed envelope: %s", d->problem);
  else if (d->env.type == NULL || d->env.type[0] == '\0')
    snprintf(buf, len, "the message has no type");
  else if (mb_envelope_kind(&d->env, &kind) != MB_OK)
    snprintf(buf, len, "header %s is missing or not command, event or message", MB_H_KIND);
  else if (d->env.body_len > rt->cfg.max_body)
    snprintf(buf, len, "body is %zu bytes, over the limit of %zu bytes (max_body)",
             d->env.body_len, rt->cfg.max_body);
  else return NULL;
  return buf;
}

static int expired(const mb_delivery *d) {
  const char *at = mb_headers_get(&d->env.headers, "moonbus.expires_at");
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
    complete(job, job->outbox, job->n_out);
    return;
  case MB_OUTCOME_POISON:
    park(job, error ? error : "unrecoverable", trace);
    return;
  case MB_OUTCOME_FAILED:
    job->rt->failed++;
    if (trace) LOG_MSG(MB_DEBUG, job, "trace: %s", trace);
    char why[MB_ERRLEN + 32];
    snprintf(why, sizeof why, "handler failed: %s", error ? error : "(no message)");
    release(job, why);
    return;
  }
}
