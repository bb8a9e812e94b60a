/* reporter.h — what a running host tells of itself (DESIGN §11): it samples the ready
 * messages of the queues its endpoint reads and writes (its own, its error and audit
 * queues, its routes' queues) every 10 s (every `report` seconds when that is shorter),
 * and sends a moonbus.ops.Report to queue moonbus.ops every `report` seconds, with a last
 * one (stopping = true) when the host stops cleanly.
 *
 * Provides: start, the gauges of the endpoint right now (also for `--metrics`), and stop.
 * Uses: runtime.h (the transport, the figures, sending), reload.h (the Lua generation and
 * its memory), metrics.h.
 * Never: blocks the loop on a report (a report is sent and forgotten: one that cannot be
 * sent is dropped, its deltas with it, and ops sees the gap in seq), or sends anything
 * while the endpoint says report = false. */
#ifndef MOONBUS_REPORTER_H
#define MOONBUS_REPORTER_H

#include "metrics.h"
#include "reload.h"
#include "runtime.h"

typedef struct mb_reporter mb_reporter;

/* Starts sampling and reporting for rt (configured and connected). NULL when out of
 * memory. rt and reload must outlive the reporter. */
mb_reporter *mb_reporter_start(mb_runtime *rt, mb_reload *reload);
/* The gauges of rt's endpoint now: handlers in flight, requests waiting, Lua memory. */
mb_metrics_gauges mb_reporter_gauges(const mb_reporter *r);
/* Stops the timers; the last report (stopping = true) is sent and waited for (up to the
 * transport's answer) when the endpoint reports. NULL is fine. */
void mb_reporter_stop(mb_reporter *r);

#endif
