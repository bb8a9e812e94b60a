/* figures.c — percentiles, throughput and time to breach from summed rollups (see
 * figures.h).
 * Never: divides by zero or writes NaN into JSON (it becomes null).
 * The bounds are copied from contract A until host/metrics.c (mb_metrics_bounds) lands:
 * then mb_ops_bounds may simply point at it. */
#include "ops/figures.h"

#include <math.h>

const double mb_ops_bounds[MB_OPS_HIST - 1] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10,    30,     60};

double mb_ops_percentile(const double *buckets, double q) {
  double total = 0, below = 0;
  for (int i = 0; i < MB_OPS_HIST; i++) total += buckets[i];
  if (total <= 0) return NAN;
  double rank = q * total;
  for (int i = 0; i < MB_OPS_HIST - 1; i++) {
    if (buckets[i] > 0 && below + buckets[i] >= rank) {
      double lo = i ? mb_ops_bounds[i - 1] : 0, hi = mb_ops_bounds[i];
      return lo + (hi - lo) * (rank - below) / buckets[i];
    }
    below += buckets[i];
  }
  return mb_ops_bounds[MB_OPS_HIST - 2];
}

void mb_ops_figures_of(const mb_ops_sums *s, double seconds, double sla, mb_ops_figures *f) {
  static const double qs[3] = {0.5, 0.95, 0.99};
  for (int i = 0; i < 3; i++) {
    f->processing[i] = mb_ops_percentile(s->processing, qs[i]);
    f->critical[i] = mb_ops_percentile(s->critical, qs[i]);
  }
  f->throughput = s->outcomes[MB_OPS_SUCCESS] / (seconds > 0 ? seconds : 1);
  f->breached = 0;
  f->time_to_breach = NAN;
  if (sla <= 0) return;
  double ttb = sla - (isnan(f->critical[1]) ? 0 : f->critical[1]);
  if (s->queue_length > 0) ttb = f->throughput > 0 ? ttb - s->queue_length / f->throughput : 0;
  f->time_to_breach = ttb > 0 ? ttb : 0;
  f->breached = f->time_to_breach <= 0;
}

void mb_ops_num_or_null(mb_jbuf *b, double v) {
  if (isnan(v)) mb_jbuf_cstr_raw(b, "null");
  else mb_jbuf_num(b, v);
}

static void percentiles(mb_jbuf *b, const char *key, const double *p) {
  mb_jbuf_printf(b, ",\"%s\":", key);
  if (isnan(p[0])) {
    mb_jbuf_cstr_raw(b, "null");
    return;
  }
  mb_jbuf_cstr_raw(b, "{\"p50\":");
  mb_jbuf_num(b, p[0]);
  mb_jbuf_cstr_raw(b, ",\"p95\":");
  mb_jbuf_num(b, p[1]);
  mb_jbuf_cstr_raw(b, ",\"p99\":");
  mb_jbuf_num(b, p[2]);
  mb_jbuf_cstr_raw(b, "}");
}

void mb_ops_figures_json(mb_jbuf *b, const mb_ops_sums *s, const mb_ops_figures *f,
                         double in_flight, double requests_pending, double lua_memory) {
  mb_jbuf_cstr_raw(b, "{\"throughput\":");
  mb_jbuf_num(b, f->throughput);
  mb_jbuf_cstr_raw(b, ",\"received\":");
  mb_jbuf_num(b, s->received);
  for (int i = 0; i < 5; i++) {
    mb_jbuf_printf(b, ",\"%s\":", mb_ops_outcomes[i]);
    mb_jbuf_num(b, s->outcomes[i]);
  }
  percentiles(b, "processing", f->processing);
  percentiles(b, "critical", f->critical);
  mb_jbuf_cstr_raw(b, ",\"queue_length\":");
  mb_ops_num_or_null(b, s->queue_length < 0 ? NAN : s->queue_length);
  mb_jbuf_cstr_raw(b, ",\"in_flight\":");
  mb_jbuf_num(b, in_flight);
  mb_jbuf_cstr_raw(b, ",\"requests_pending\":");
  mb_jbuf_num(b, requests_pending);
  mb_jbuf_cstr_raw(b, ",\"lua_memory_bytes\":");
  mb_jbuf_num(b, lua_memory);
  mb_jbuf_cstr_raw(b, ",\"reloads\":");
  mb_jbuf_num(b, s->reloads);
  mb_jbuf_cstr_raw(b, ",\"reloads_refused\":");
  mb_jbuf_num(b, s->reloads_refused);
  mb_jbuf_cstr_raw(b, ",\"reconnects\":");
  mb_jbuf_num(b, s->reconnects);
  mb_jbuf_cstr_raw(b, "}");
}
