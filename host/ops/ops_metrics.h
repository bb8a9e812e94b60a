/* ops_metrics.h — the figures `moonbus ops` shows of itself at /metrics beyond what its
 * ingesters count (DESIGN §11, contract F): the backlog of the queues it reads, the store's
 * size and oldest unresolved failure, the alerts raised and the webhook's failures.
 *
 * Provides: mb_ops_metrics (a 10 s sampler of the queues' ready messages) and the renderer
 * of its Prometheus text.
 * Uses: the control transport's depth (on the loop, every 10 s), the store's
 * oldest_unresolved, stat(2) of the store file, alerts.h, json.h (mb_jbuf).
 * Never: touches the transport or the store outside the sampler's tick and a /metrics
 * request, or fails a scrape because one figure is missing (that figure is left out). */
#ifndef MOONBUS_OPS_METRICS_H
#define MOONBUS_OPS_METRICS_H

#include <stddef.h>

#include "json.h"
#include "ops/alerts.h"
#include "ops/store.h"

struct ev_loop;

#define MB_OPS_BACKLOG_EVERY 10.0 /* seconds between samples of the queues' depth */

typedef struct mb_ops_metrics mb_ops_metrics;

typedef struct mb_ops_metrics_cfg {
  struct ev_loop *loop;
  mb_transport *control;     /* its depth op counts the queues' ready messages */
  mb_ops_store *store;       /* oldest_unresolved */
  const char *store_path;    /* a path or sqlite://PATH: its size is the store's */
  const char *const *queues; /* the queues ingested */
  size_t n_queues;
  const mb_ops_alerts *alerts; /* NULL: no alert figures */
} mb_ops_metrics_cfg;

/* Starts sampling at once, then every MB_OPS_BACKLOG_EVERY seconds; cfg's pointers must
 * outlive it. NULL when out of memory. */
mb_ops_metrics *mb_ops_metrics_new(const mb_ops_metrics_cfg *cfg);
/* Appends the figures in Prometheus text format (HELP and TYPE lines included) to b. */
void mb_ops_metrics_render(mb_ops_metrics *m, mb_jbuf *b);
/* The last sample of queue i's ready messages, -1 before the first or when it failed. */
long mb_ops_metrics_backlog(const mb_ops_metrics *m, size_t i);
void mb_ops_metrics_free(mb_ops_metrics *m); /* NULL is fine */

#endif
