/* monitor.h — the checks of the monitoring (DESIGN §11, contract D/E): every second,
 * instances without a report for 3 intervals are marked dead, and each endpoint's SLA is
 * checked; alerts the store raises (on ingest and here) go to the alerts.
 *
 * Provides: mb_ops_monitor (a 1 s ev_timer) and mb_ops_monitor_tick (one check at a given
 * time, for tests).
 * Uses: the store (liveness, sla_each, raise, set_alert_sink), alerts.h.
 * Never: blocks, or raises SlaBreached twice for one breach (again only after the
 * endpoint recovered). */
#ifndef MOONBUS_OPS_MONITOR_H
#define MOONBUS_OPS_MONITOR_H

#include "ops/alerts.h"
#include "ops/store.h"

struct ev_loop;

typedef struct mb_ops_monitor mb_ops_monitor;

/* Starts the checks on loop (loop NULL: no timer, only mb_ops_monitor_tick) and makes it
 * the store's alert sink. alerts may be NULL (alerts are then only stored). */
int mb_ops_monitor_start(mb_ops_monitor **out, struct ev_loop *loop, mb_ops_store *store,
                         mb_ops_alerts *alerts, mb_err *err);
/* One round of checks at now (Unix seconds). */
void mb_ops_monitor_tick(mb_ops_monitor *m, double now);
/* Alerts handed on since start (tests, logs). */
unsigned long mb_ops_monitor_alerts(const mb_ops_monitor *m);
/* Stops the timer, unhooks the sink, frees m (NULL fine). */
void mb_ops_monitor_stop(mb_ops_monitor *m);

#endif
