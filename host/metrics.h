/* metrics.h — one endpoint's figures (DESIGN §11): counters and histograms per message
 * type, counted in C on the path of the message, read out as the Prometheus text format
 * (`moonbus run --metrics`) and as the deltas of a moonbus.ops.Report.
 *
 * Provides: mb_metrics (opaque; one per running endpoint, kept across reloads), the calls
 * the pipeline, reload and transport make as things happen, the gauges read at render
 * time, and the two renderings.
 * Uses: nothing of the bus (a plain buffer out). Never: allocates per message (a series is
 * made the first time a type is seen; past MB_METRICS_MAX_TYPES distinct types, hostile or
 * not, every new one counts under the type "(other)"), blocks, or knows Lua. */
#ifndef MOONBUS_METRICS_H
#define MOONBUS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define MB_METRICS_BUCKETS 18 /* upper bounds below; one more slot counts +Inf */
#define MB_METRICS_MAX_TYPES 200
#define MB_METRICS_OTHER_TYPE "(other)"
#define MB_METRICS_MAX_QUEUES 32

/* The bounds (seconds) of both histograms, ascending: sub-millisecond ones first, since
 * handlers run in microseconds. */
extern const double mb_metrics_bounds[MB_METRICS_BUCKETS];

typedef enum mb_metric_outcome {
  MB_METRIC_SUCCESS,   /* handled: outbox sent, acknowledged */
  MB_METRIC_RETRIED,   /* an attempt failed and runs again in place */
  MB_METRIC_DELAYED,   /* sent back for a delayed retry round */
  MB_METRIC_ERROR,     /* parked in the error queue */
  MB_METRIC_DISCARDED, /* acknowledged unhandled (stale, time to live ran out) */
  MB_METRIC_OUTCOMES
} mb_metric_outcome;

/* "success", "retried", "delayed", "error", "discarded". */
const char *mb_metric_outcome_name(mb_metric_outcome o);

typedef struct mb_metrics mb_metrics;

/* The gauges, read by the caller when it renders. */
typedef struct mb_metrics_gauges {
  unsigned in_flight;        /* handlers in flight */
  unsigned requests_pending; /* bus.request calls waiting for a reply */
  size_t lua_memory;         /* bytes the endpoint's Lua state holds */
  size_t shared_memory;      /* bytes bus.shared holds */
} mb_metrics_gauges;

/* What a report says of the instance besides the figures. */
typedef struct mb_report_info {
  const char *instance, *host;
  long pid;
  unsigned generation;
  double interval; /* seconds until the next report */
  double sla;      /* seconds; 0: none */
  int64_t started_usec;
  int stopping; /* the last report of a clean stop */
} mb_report_info;

/* endpoint is copied. NULL when out of memory. */
mb_metrics *mb_metrics_new(const char *endpoint);
void mb_metrics_free(mb_metrics *m);

/* --- as things happen (no allocation except a type's first sighting) ----------------- */
/* A delivery arrived; type may be NULL or "" (counted as "(none)"). */
void mb_metrics_received(mb_metrics *m, const char *type);
/* A message's attempt ended with outcome o: processing_s from the start of the attempt,
 * critical_s from its time_sent (< 0: unknown, not observed; else raised to at least
 * processing_s, since clocks of two machines may disagree). */
void mb_metrics_outcome(mb_metrics *m, const char *type, mb_metric_outcome o, double processing_s,
                        double critical_s);
/* A reload was adopted (ok) or refused. */
void mb_metrics_reload(mb_metrics *m, int ok);
/* The transport connected again after losing its connection. */
void mb_metrics_reconnect(mb_metrics *m);
/* The last sample of queue's ready messages (-1: unknown). Past MB_METRICS_MAX_QUEUES
 * queues, new ones are ignored. */
void mb_metrics_queue_length(mb_metrics *m, const char *queue, long ready);

/* --- reads ------------------------------------------------------------------------------ */
/* Totals since the start, summed over types (tests, logs). */
unsigned long mb_metrics_handled(const mb_metrics *m, mb_metric_outcome o);
unsigned long mb_metrics_received_total(const mb_metrics *m);

/* Appends the Prometheus text exposition format (version 0.0.4) of every series to
 * *out (malloc'd, NUL-terminated; *len its length). MB_OK or MB_ENOMEM. */
int mb_metrics_render(const mb_metrics *m, const mb_metrics_gauges *g, char **out, size_t *len);
/* The JSON body of a moonbus.ops.Report (its shape: README "Monitoring") with the deltas
 * since the previous call, which becomes the new baseline; window_s is the time since
 * then. MB_OK or MB_ENOMEM (the baseline is then unchanged). */
int mb_metrics_report(mb_metrics *m, const mb_metrics_gauges *g, const mb_report_info *info,
                      double window_s, char **json, size_t *len);

#endif
