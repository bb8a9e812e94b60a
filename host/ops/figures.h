/* figures.h — what the monitoring makes of summed rollups (DESIGN §11): percentiles from
 * histogram buckets, throughput, time to breach of an SLA, and their JSON.
 *
 * Provides: mb_ops_sums (the sums of a window), mb_ops_figures (what is shown),
 * mb_ops_percentile, mb_ops_figures_of and the JSON writer of the "figures" member.
 * Uses: report.h (bucket count), json.h (the writer).
 * Never: touches the store or the clock: every input is a value, so it is tested alone. */
#ifndef MOONBUS_OPS_FIGURES_H
#define MOONBUS_OPS_FIGURES_H

#include "json.h"
#include "ops/report.h"

/* The bucket bounds (seconds) of both histograms, the 18 of host/metrics.h (contract A);
 * one more slot counts +Inf. */
extern const double mb_ops_bounds[MB_OPS_HIST - 1];

/* The sums of an endpoint's rollups over a window. */
typedef struct mb_ops_sums {
  double received, outcomes[5], reloads, reloads_refused, reconnects;
  double processing[MB_OPS_HIST], critical[MB_OPS_HIST];
  double queue_length; /* < 0: no sample */
} mb_ops_sums;

typedef struct mb_ops_figures {
  double throughput;                 /* successes per second */
  double processing[3], critical[3]; /* p50, p95, p99; NaN without observations */
  double time_to_breach;             /* seconds; NaN without an SLA */
  int breached;
} mb_ops_figures;

/* The q-quantile (0..1) of the bucket counts, interpolated linearly inside its bucket
 * (Prometheus histogram_quantile); NaN when there are no observations; a quantile in +Inf
 * is the highest bound. */
double mb_ops_percentile(const double *buckets, double q);
/* The figures of sums over seconds (> 0) for an endpoint with sla (0: none):
 * time_to_breach = sla - critical p95 - queue_length / throughput, 0 when throughput is 0
 * with a queue, floor 0; breached when it is 0. */
void mb_ops_figures_of(const mb_ops_sums *s, double seconds, double sla, mb_ops_figures *f);
/* Writes the "figures" object of the API (gauges given by the caller). */
void mb_ops_figures_json(mb_jbuf *b, const mb_ops_sums *s, const mb_ops_figures *f,
                         double in_flight, double requests_pending, double lua_memory);
/* A number, or null when NaN. */
void mb_ops_num_or_null(mb_jbuf *b, double v);

#endif
