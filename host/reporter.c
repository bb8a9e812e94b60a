/* reporter.c — a running host's reports (see reporter.h): one timer samples queue
 * lengths and the transport's reconnects into the figures (metrics.h), another renders
 * the deltas as a moonbus.ops.Report and sends it to queue moonbus.ops.
 * Never: waits for a report's answer while the host runs, or logs the same failure to
 * send on every tick (once, then once when it works again). */
#include "reporter.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "compose.h"
#include "correlate.h"
#include "log.h"
#include "shared.h"
#include "vm.h"

#define OPS_QUEUE "moonbus.ops"
#define REPORT_TYPE "moonbus.ops.Report"
#define SAMPLE_EVERY 10.0 /* seconds between two samples of the queue lengths */
#define IDLE_CHECK 1.0    /* seconds between two looks at report = false */

struct mb_reporter {
  mb_runtime *rt;
  mb_reload *reload;
  ev_timer sample, report;
  int64_t started_usec, last_usec;
  unsigned long reconnects_seen;
  int failing; /* the last report could not be sent: said once */
  mb_send *ticket;
};

static const mb_endpoint_cfg *cfg_of(const mb_reporter *r) { return mb_runtime_cfg(r->rt); }
static struct ev_loop *loop_of(const mb_reporter *r) { return mb_runtime_loop(r->rt); }

mb_metrics_gauges mb_reporter_gauges(const mb_reporter *r) {
  mb_metrics_gauges g = {0};
  const struct mb_correlate *c = mb_runtime_correlate(r->rt);
  const mb_vm *vm = mb_reload_current(r->reload);
  g.in_flight = mb_runtime_stats(r->rt).in_flight;
  g.requests_pending = c ? (unsigned)mb_correlate_pending(c) : 0;
  g.lua_memory = vm ? mb_vm_memory(vm) : 0;
  g.shared_memory = mb_shared_bytes(mb_runtime_shared(r->rt));
  return g;
}

/* --- samples ------------------------------------------------------------------------------ */

static void sample_queue(mb_reporter *r, mb_transport *t, const char *queue) {
  long ready = -1;
  mb_err err;
  if (queue == NULL || t->ops->depth(t, queue, &ready, NULL, &err) != MB_OK) ready = -1;
  if (queue) mb_metrics_queue_length(mb_runtime_metrics(r->rt), queue, ready);
}

static void count_reconnects(mb_reporter *r, mb_transport *t) {
  unsigned long now = t->ops->reconnects ? t->ops->reconnects(t) : 0;
  for (; r->reconnects_seen < now; r->reconnects_seen++)
    mb_metrics_reconnect(mb_runtime_metrics(r->rt));
}

static void take_samples(mb_reporter *r) {
  mb_transport *t = mb_runtime_transport(r->rt);
  const mb_endpoint_cfg *cfg = cfg_of(r);
  if (t == NULL || mb_runtime_metrics(r->rt) == NULL) return;
  count_reconnects(r, t);
  sample_queue(r, t, cfg->name);
  sample_queue(r, t, cfg->error_queue);
  sample_queue(r, t, cfg->audit_queue);
  for (size_t i = 0; i < cfg->n_routes; i++) sample_queue(r, t, cfg->routes[i].queue);
}

static double sample_period(const mb_reporter *r) {
  double report = cfg_of(r)->report;
  return report > 0 && report < SAMPLE_EVERY ? report : SAMPLE_EVERY;
}

static void on_sample(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  mb_reporter *r = w->data;
  take_samples(r);
  w->repeat = sample_period(r); /* a reload may have changed report */
  ev_timer_again(loop, w);
}

/* --- reports ------------------------------------------------------------------------------ */

static void sent(void *ud, int status, const char *error) {
  mb_reporter *r = ud;
  r->ticket = NULL;
  if (status == MB_OK && r->failing)
    mb_log(MB_INFO, mb_runtime_endpoint(r->rt), NULL, NULL, "reports reach %s again", OPS_QUEUE);
  else if (status == MB_EUNROUTABLE && !r->failing)
    mb_log(MB_INFO, mb_runtime_endpoint(r->rt), NULL, NULL,
           "no queue %s (no `moonbus ops` has run on this bus): reports are dropped until "
           "it exists; bus.endpoint{ report = false } turns them off",
           OPS_QUEUE);
  else if (status != MB_OK && !r->failing)
    mb_log(MB_WARN, mb_runtime_endpoint(r->rt), NULL, NULL,
           "a report to %s could not be sent: %s (said once until one is sent)", OPS_QUEUE,
           error ? error : mb_strerror(status));
  r->failing = status != MB_OK;
}

/* The report of now as a message to moonbus.ops, or NULL (err says why). */
static mb_outgoing *compose_report(mb_reporter *r, int stopping, mb_err *err) {
  const mb_endpoint_cfg *cfg = cfg_of(r);
  int64_t now = mb_now_usec();
  mb_metrics_gauges g = mb_reporter_gauges(r);
  mb_report_info info = {mb_runtime_instance(r->rt),
                         mb_runtime_host(r->rt),
                         (long)getpid(),
                         mb_reload_generation(r->reload),
                         cfg->report,
                         cfg->sla,
                         r->started_usec,
                         stopping};
  char *json;
  size_t len;
  double window = (double)(now - r->last_usec) / 1e6;
  if (mb_metrics_report(mb_runtime_metrics(r->rt), &g, &info, window, &json, &len) != MB_OK) {
    mb_err_set(err, MB_ENOMEM, "out of memory");
    return NULL;
  }
  r->last_usec = now;
  mb_compose_req req = {.type = REPORT_TYPE,
                        .kind = MB_KIND_MESSAGE,
                        .body = json,
                        .body_len = len,
                        .route = MB_ROUTE_QUEUE,
                        .dest = OPS_QUEUE};
  mb_outgoing *m = NULL;
  int rc = mb_compose(r->rt, NULL, &req, &m, err);
  free(json);
  return rc == MB_OK ? m : NULL;
}

static void send_report(mb_reporter *r) {
  mb_err err;
  if (r->ticket) return; /* the last one is not answered yet: this one waits its turn */
  mb_outgoing *m = compose_report(r, 0, &err);
  if (m == NULL || mb_runtime_send(r->rt, &m, 1, sent, r, &r->ticket, &err) != MB_OK)
    sent(r, err.status, err.msg);
}

static void on_report(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  mb_reporter *r = w->data;
  double every = cfg_of(r)->report;
  if (every > 0 && mb_runtime_metrics(r->rt)) send_report(r);
  w->repeat = every > 0 ? every : IDLE_CHECK;
  ev_timer_again(loop, w);
}

mb_reporter *mb_reporter_start(mb_runtime *rt, mb_reload *reload) {
  mb_reporter *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->rt = rt;
  r->reload = reload;
  r->started_usec = r->last_usec = mb_now_usec();
  ev_init(&r->sample, on_sample);
  ev_init(&r->report, on_report);
  r->sample.data = r->report.data = r;
  r->sample.repeat = 0.01; /* the first sample soon after the start */
  double every = cfg_of(r)->report;
  r->report.repeat = every > 0 ? every : IDLE_CHECK;
  ev_timer_again(loop_of(r), &r->sample);
  ev_timer_again(loop_of(r), &r->report);
  return r;
}

/* The last report, waited for: ops then knows the instance stopped rather than died. */
static void send_last_report(mb_reporter *r) {
  mb_err err;
  mb_send_forget(r->ticket);
  r->ticket = NULL;
  if (cfg_of(r)->report <= 0 || mb_runtime_metrics(r->rt) == NULL) return;
  take_samples(r);
  mb_outgoing *m = compose_report(r, 1, &err);
  if (m && mb_runtime_dispatch(r->rt, &m, 1, &err) == MB_OK) return;
  if (err.status != MB_EUNROUTABLE)
    mb_log(MB_WARN, mb_runtime_endpoint(r->rt), NULL, NULL, "the last report was not sent: %s",
           err.msg);
}

void mb_reporter_stop(mb_reporter *r) {
  if (r == NULL) return;
  ev_timer_stop(loop_of(r), &r->sample);
  ev_timer_stop(loop_of(r), &r->report);
  send_last_report(r);
  free(r);
}
