/* report.c — reads a moonbus.ops.Report strictly (see report.h). Each check names the
 * field it refused; the first problem wins and the report is then not used.
 * Never: accepts a counter that is negative, fractional or beyond 2^53, a name with a NUL
 * or longer than MB_OPS_NAME_MAX, or a time stamp clock.h cannot parse. */
#include "ops/report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

#define MAX_COUNT 9007199254740992.0 /* 2^53: exact in a double and in SQLite */

const char *const mb_ops_outcomes[5] = {"success", "retried", "delayed", "error", "discarded"};

/* The checker: the object read and the first problem met. */
typedef struct check {
  char *problem;
  size_t plen;
} check;

static int bad(check *c, const char *field, const char *why) {
  if (c->problem[0] == '\0') snprintf(c->problem, c->plen, "report field %s %s", field, why);
  return 0;
}

static int number(check *c, const mb_jv *o, const char *key, double lo, double hi, double *out) {
  const mb_jv *v = mb_jv_get(o, key);
  if (v == NULL) return bad(c, key, "is missing");
  if (mb_jv_type(v) != MB_JSON_NUMBER) return bad(c, key, "is not a number");
  double n = mb_jv_number(v);
  if (!isfinite(n) || n < lo || n > hi) return bad(c, key, "is out of range");
  *out = n;
  return 1;
}

/* A whole number from 0 to 2^53. */
static int count(check *c, const mb_jv *o, const char *key, double *out) {
  if (!number(c, o, key, 0, MAX_COUNT, out)) return 0;
  return *out == floor(*out) ? 1 : bad(c, key, "is not a whole number");
}

static int name(check *c, const mb_jv *o, const char *key, int empty_ok, const char **out) {
  size_t len = 0;
  const mb_jv *v = mb_jv_get(o, key);
  *out = mb_jv_string(v, &len);
  if (v == NULL) return bad(c, key, "is missing");
  if (*out == NULL) return bad(c, key, "is not a string");
  if ((!empty_ok && len == 0) || len > MB_OPS_NAME_MAX || strlen(*out) != len)
    return bad(c, key, "is empty, too long or holds a NUL");
  return 1;
}

static int stamp(check *c, const mb_jv *o, const char *key, const char **out) {
  int64_t usec;
  *out = mb_jv_get_string(o, key);
  if (*out == NULL) return bad(c, key, "is missing or not a string");
  return mb_time_parse(*out, &usec) == MB_OK ? 1 : bad(c, key, "is not an ISO 8601 UTC time");
}

static const mb_jv *object(check *c, const mb_jv *o, const char *key) {
  const mb_jv *v = mb_jv_get(o, key);
  if (mb_jv_type(v) != MB_JSON_OBJECT) {
    bad(c, key, v ? "is not an object" : "is missing");
    return NULL;
  }
  return v;
}

/* A histogram: count, sum and 19 bucket deltas. 1: read; 0: a problem; -1: buckets of
 * another length (the histograms are ignored, the report kept). */
static int histogram(check *c, const mb_jv *o, const char *key, double *slots) {
  const mb_jv *h = object(c, o, key), *b = mb_jv_get(h, "buckets");
  double n, sum;
  if (h == NULL || !count(c, h, "count", &n) || !number(c, h, "sum", 0, 1e300, &sum)) return 0;
  if (mb_jv_type(b) != MB_JSON_ARRAY) return bad(c, "buckets", "is not an array");
  if (mb_jv_len(b) != MB_OPS_HIST) return -1;
  for (size_t i = 0; i < MB_OPS_HIST; i++) {
    double v = mb_jv_number(mb_jv_at(b, i));
    if (mb_jv_type(mb_jv_at(b, i)) != MB_JSON_NUMBER || v < 0 || v > MAX_COUNT || v != floor(v))
      return bad(c, "buckets", "holds something else than whole numbers");
    slots[i] = v;
  }
  return 1;
}

static int identity(check *c, const mb_jv *o, mb_ops_report *r) {
  double version;
  const mb_jv *sla = mb_jv_get(o, "sla");
  if (!number(c, o, "version", 1, 1, &version) || !name(c, o, "endpoint", 0, &r->endpoint) ||
      !name(c, o, "instance", 0, &r->instance) || !name(c, o, "host", 1, &r->host) ||
      !count(c, o, "pid", &r->pid) || !count(c, o, "generation", &r->generation) ||
      !count(c, o, "seq", &r->seq) || !stamp(c, o, "heartbeat", &r->heartbeat) ||
      !stamp(c, o, "started", &r->started) ||
      !number(c, o, "interval", 0.001, 86400, &r->interval) ||
      !number(c, o, "window", 0, 1e9, &r->window))
    return 0;
  if (sla == NULL) return bad(c, "sla", "is missing");
  if (mb_jv_type(sla) != MB_JSON_NULL && !number(c, o, "sla", 0.001, 1e9, &r->sla)) return 0;
  const mb_jv *stopping = mb_jv_get(o, "stopping");
  if (mb_jv_type(stopping) != MB_JSON_TRUE && mb_jv_type(stopping) != MB_JSON_FALSE)
    return bad(c, "stopping", "is not a boolean");
  r->stopping = mb_jv_is_true(stopping);
  return 1;
}

static int deltas(check *c, const mb_jv *o, mb_ops_report *r) {
  const mb_jv *outcomes = object(c, o, "outcomes"), *reloads;
  if (outcomes == NULL || !count(c, o, "received", &r->received)) return 0;
  for (int i = 0; i < 5; i++)
    if (!count(c, outcomes, mb_ops_outcomes[i], &r->outcomes[i])) return 0;
  int p = histogram(c, o, "processing", r->processing);
  int q = p ? histogram(c, o, "critical", r->critical) : 0;
  if (p == 0 || q == 0) return 0;
  r->histograms = p == 1 && q == 1;
  if ((reloads = object(c, o, "reloads")) == NULL || !count(c, reloads, "ok", &r->reloads_ok) ||
      !count(c, reloads, "refused", &r->reloads_refused))
    return 0;
  return count(c, o, "reconnects", &r->reconnects);
}

static int gauges(check *c, const mb_jv *o, mb_ops_report *r) {
  if (!count(c, o, "in_flight", &r->in_flight) ||
      !count(c, o, "requests_pending", &r->requests_pending) ||
      !count(c, o, "lua_memory_bytes", &r->lua_memory) ||
      !count(c, o, "shared_memory_bytes", &r->shared_memory) ||
      (r->queues = object(c, o, "queues")) == NULL)
    return 0;
  for (size_t i = 0; i < mb_jv_len(r->queues); i++)
    if (mb_jv_type(mb_jv_at(r->queues, i)) != MB_JSON_NUMBER)
      return bad(c, "queues", "holds something else than numbers");
  const mb_jv *types = mb_jv_get(o, "types");
  if (types && mb_jv_type(types) != MB_JSON_OBJECT) return bad(c, "types", "is not an object");
  return 1;
}

int mb_ops_report_parse(const char *body, size_t len, mb_ops_report *r, char *problem,
                        size_t plen) {
  check c = {problem, plen};
  mb_err err;
  memset(r, 0, sizeof *r);
  problem[0] = '\0';
  if (len > MB_OPS_REPORT_MAX_BYTES) {
    snprintf(problem, plen, "the report is larger than %u bytes", MB_OPS_REPORT_MAX_BYTES);
    return MB_EINVAL;
  }
  if (mb_json_parse(body ? body : "", body ? len : 0, &r->doc, &err) != MB_OK) {
    snprintf(problem, plen, "the report is not JSON: %s", err.msg);
    return MB_EINVAL;
  }
  const mb_jv *o = mb_json_root(r->doc);
  if (mb_jv_type(o) != MB_JSON_OBJECT) bad(&c, "(the body)", "is not an object");
  else if (identity(&c, o, r) && deltas(&c, o, r)) gauges(&c, o, r);
  if (problem[0] == '\0') return MB_OK;
  mb_ops_report_free(r);
  return MB_EINVAL;
}

void mb_ops_report_free(mb_ops_report *r) {
  mb_json_free(r->doc);
  r->doc = NULL;
}
