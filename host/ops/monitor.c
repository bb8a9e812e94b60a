/* monitor.c — the monitoring's checks (see monitor.h): liveness and SLA every second, and
 * the one path of alerts from the store to alerts.h. The breached endpoints are a small
 * list in memory (an endpoint already breached when ops starts raises once more).
 * Never: blocks, or keeps a store error from the next check (it is logged). */
#include "ops/monitor.h"

#include <ev.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define CHECK_EVERY 1.0 /* seconds */

struct mb_ops_monitor {
  struct ev_loop *loop;
  ev_timer timer;
  mb_ops_store *store;
  mb_ops_alerts *alerts;
  char **breached; /* endpoints breached now */
  size_t n_breached;
  unsigned long raised;
};

static void on_alert(void *ud, const char *type, const char *body) {
  mb_ops_monitor *m = ud;
  m->raised++;
  if (strcmp(type, "moonbus.ops.MessageFailed") != 0) /* those come by the thousand */
    mb_log(MB_INFO, "moonbus.ops", NULL, type, "alert: %s", body);
  mb_ops_alerts_raise(m->alerts, type, body);
}

static size_t find(const mb_ops_monitor *m, const char *endpoint) {
  size_t i = 0;
  while (i < m->n_breached && strcmp(m->breached[i], endpoint) != 0) i++;
  return i;
}

static void sla_alert(mb_ops_monitor *m, const char *endpoint, double sla, const mb_ops_sums *u,
                      const mb_ops_figures *f) {
  static const char *const type = "moonbus.ops.SlaBreached";
  char at[MB_TIME_LEN + 1];
  mb_jbuf b = MB_JBUF_INIT;
  mb_err err;
  mb_time_iso(mb_now_usec(), at);
  mb_jbuf_cstr_raw(&b, "{\"event\":\"moonbus.ops.SlaBreached\",\"at\":");
  mb_jbuf_cstr(&b, at);
  mb_jbuf_cstr_raw(&b, ",\"endpoint\":");
  mb_jbuf_cstr(&b, endpoint);
  mb_jbuf_cstr_raw(&b, ",\"sla\":");
  mb_jbuf_num(&b, sla);
  mb_jbuf_cstr_raw(&b, ",\"critical_p95\":");
  mb_ops_num_or_null(&b, f->critical[1]);
  mb_jbuf_cstr_raw(&b, ",\"queue_length\":");
  mb_ops_num_or_null(&b, u->queue_length < 0 ? NAN : u->queue_length);
  mb_jbuf_cstr_raw(&b, ",\"throughput\":");
  mb_jbuf_num(&b, f->throughput);
  mb_jbuf_cstr_raw(&b, ",\"time_to_breach\":");
  mb_jbuf_num(&b, f->time_to_breach);
  mb_jbuf_cstr_raw(&b, "}");
  if (b.failed) mb_log(MB_ERROR, "moonbus.ops", NULL, type, "out of memory raising an alert");
  else if (m->store->ops->raise(m->store, type, b.data, &err) != MB_OK)
    mb_log(MB_ERROR, "moonbus.ops", NULL, type, "%s", err.msg);
  mb_jbuf_free(&b);
}

/* An endpoint's SLA figures: raise on the step into breach, forget it on recovery. */
static void on_sla(void *ud, const char *endpoint, double sla, const mb_ops_sums *u,
                   const mb_ops_figures *f) {
  mb_ops_monitor *m = ud;
  size_t i = find(m, endpoint);
  if (!f->breached && i < m->n_breached) {
    free(m->breached[i]);
    m->breached[i] = m->breached[--m->n_breached];
  } else if (f->breached && i == m->n_breached) {
    char **grown = realloc(m->breached, (m->n_breached + 1) * sizeof *grown);
    if (grown == NULL || (grown[m->n_breached] = strdup(endpoint)) == NULL) {
      if (grown) m->breached = grown;
      return; /* out of memory: checked again in a second */
    }
    m->breached = grown;
    m->n_breached++;
    sla_alert(m, endpoint, sla, u, f);
  }
}

void mb_ops_monitor_tick(mb_ops_monitor *m, double now) {
  mb_err err;
  if (m->store->ops->liveness(m->store, now, &err) != MB_OK)
    mb_log(MB_ERROR, "moonbus.ops", NULL, NULL, "liveness check: %s", err.msg);
  if (m->store->ops->sla_each(m->store, now, on_sla, m, &err) != MB_OK)
    mb_log(MB_ERROR, "moonbus.ops", NULL, NULL, "SLA check: %s", err.msg);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  mb_ops_monitor_tick(w->data, (double)mb_now_usec() / 1e6);
}

int mb_ops_monitor_start(mb_ops_monitor **out, struct ev_loop *loop, mb_ops_store *store,
                         mb_ops_alerts *alerts, mb_err *err) {
  mb_ops_monitor *m = calloc(1, sizeof *m);
  if (m == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory starting the monitoring");
  m->loop = loop, m->store = store, m->alerts = alerts;
  store->ops->set_alert_sink(store, on_alert, m);
  if (loop) {
    ev_timer_init(&m->timer, on_timer, CHECK_EVERY, CHECK_EVERY);
    m->timer.data = m;
    ev_timer_start(loop, &m->timer);
  }
  *out = m;
  return MB_OK;
}

unsigned long mb_ops_monitor_alerts(const mb_ops_monitor *m) { return m->raised; }

void mb_ops_monitor_stop(mb_ops_monitor *m) {
  if (m == NULL) return;
  if (m->loop) ev_timer_stop(m->loop, &m->timer);
  m->store->ops->set_alert_sink(m->store, NULL, NULL);
  for (size_t i = 0; i < m->n_breached; i++) free(m->breached[i]);
  free(m->breached);
  free(m);
}
