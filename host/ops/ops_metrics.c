/* ops_metrics.c — the figures of `moonbus ops` beyond its ingesters' counts (see
 * ops_metrics.h): an ev_timer samples the ready messages of each ingested queue through the
 * control transport every 10 s; a scrape reads the store's size and its oldest unresolved
 * failure, and the alert counters.
 * Never: blocks a scrape on the broker (the backlog is the last sample), or writes outside
 * the buffer it is given. */
#include "ops/ops_metrics.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

struct mb_ops_metrics {
  mb_ops_metrics_cfg cfg;
  long *backlog; /* per queue: ready messages, -1 unknown */
  int warned;    /* a failed sample was logged (once, until one succeeds) */
  ev_timer tick;
};

static void sample(mb_ops_metrics *m) {
  int failed = 0;
  for (size_t i = 0; i < m->cfg.n_queues; i++) {
    long ready = -1;
    mb_err err;
    if (m->cfg.control->ops->depth(m->cfg.control, m->cfg.queues[i], &ready, NULL, &err) !=
        MB_OK) {
      if (!m->warned)
        mb_log(MB_WARN, "moonbus.ops", NULL, NULL, "backlog of queue %s: %s", m->cfg.queues[i],
               err.msg);
      failed = 1;
      ready = -1;
    }
    m->backlog[i] = ready;
  }
  m->warned = failed;
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop, (void)revents;
  sample(t->data);
}

mb_ops_metrics *mb_ops_metrics_new(const mb_ops_metrics_cfg *cfg) {
  mb_ops_metrics *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->cfg = *cfg;
  m->backlog = malloc((cfg->n_queues ? cfg->n_queues : 1) * sizeof *m->backlog);
  if (m->backlog == NULL) {
    free(m);
    return NULL;
  }
  for (size_t i = 0; i < cfg->n_queues; i++) m->backlog[i] = -1;
  ev_timer_init(&m->tick, on_tick, 0.0, MB_OPS_BACKLOG_EVERY);
  m->tick.data = m;
  ev_timer_start(cfg->loop, &m->tick);
  return m;
}

long mb_ops_metrics_backlog(const mb_ops_metrics *m, size_t i) {
  return m && i < m->cfg.n_queues ? m->backlog[i] : -1;
}

/* A label value as Prometheus wants it: backslash, quote and line feed escaped. */
static void label(mb_jbuf *b, const char *s) {
  for (const char *c = s; *c; c++)
    if (*c == '"' || *c == '\\') mb_jbuf_printf(b, "\\%c", *c);
    else if (*c == '\n') mb_jbuf_cstr_raw(b, "\\n");
    else mb_jbuf_raw(b, c, 1);
}

static void header(mb_jbuf *b, const char *name, const char *kind, const char *help) {
  mb_jbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind);
}

/* Bytes of the store file and its write-ahead log; -1 when it cannot be read. */
static long long store_bytes(const char *path) {
  if (strncmp(path, "sqlite://", 9) == 0) path += 9;
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  long long n = (long long)st.st_size;
  size_t len = strlen(path);
  char *wal = malloc(len + 5);
  if (wal) {
    memcpy(wal, path, len);
    memcpy(wal + len, "-wal", 5);
    if (stat(wal, &st) == 0) n += (long long)st.st_size;
    free(wal);
  }
  return n;
}

static void render_backlog(const mb_ops_metrics *m, mb_jbuf *b) {
  header(b, "moonbus_ops_backlog", "gauge",
         "Ready messages in each queue ops ingests, sampled every 10 s.");
  for (size_t i = 0; i < m->cfg.n_queues; i++) {
    if (m->backlog[i] < 0) continue;
    mb_jbuf_cstr_raw(b, "moonbus_ops_backlog{queue=\"");
    label(b, m->cfg.queues[i]);
    mb_jbuf_printf(b, "\"} %ld\n", m->backlog[i]);
  }
}

static void render_store(const mb_ops_metrics *m, mb_jbuf *b) {
  long long bytes = store_bytes(m->cfg.store_path);
  if (bytes >= 0) {
    header(b, "moonbus_ops_store_bytes", "gauge", "Size of the ops store (file and WAL).");
    mb_jbuf_printf(b, "moonbus_ops_store_bytes %lld\n", bytes);
  }
  double age = 0;
  mb_err err;
  mb_ops_store *s = m->cfg.store;
  if (s->ops->oldest_unresolved(s, &age, &err) != MB_OK) {
    mb_log(MB_WARN, "moonbus.ops", NULL, NULL, "/metrics: %s", err.msg);
    return;
  }
  header(b, "moonbus_ops_oldest_unresolved_seconds", "gauge",
         "Age of the oldest unresolved failed message (0: none).");
  mb_jbuf_printf(b, "moonbus_ops_oldest_unresolved_seconds ");
  mb_jbuf_num(b, age);
  mb_jbuf_cstr_raw(b, "\n");
}

static void render_alerts(const mb_ops_metrics *m, mb_jbuf *b) {
  header(b, "moonbus_ops_alerts_total", "counter", "Alerts raised, by type.");
  for (size_t i = 0; i < MB_OPS_N_ALERT_TYPES; i++) {
    mb_jbuf_cstr_raw(b, "moonbus_ops_alerts_total{type=\"");
    label(b, mb_ops_alert_types[i]);
    mb_jbuf_printf(b, "\"} %lu\n", mb_ops_alerts_raised(m->cfg.alerts, mb_ops_alert_types[i]));
  }
  header(b, "moonbus_ops_webhook_failures_total", "counter",
         "Alerts the webhook gave up on (retries exhausted, or dropped from a full queue).");
  mb_jbuf_printf(b, "moonbus_ops_webhook_failures_total %lu\n",
                 mb_ops_alerts_webhook_failures(m->cfg.alerts));
}

void mb_ops_metrics_render(mb_ops_metrics *m, mb_jbuf *b) {
  if (m == NULL) return;
  render_backlog(m, b);
  render_store(m, b);
  render_alerts(m, b);
}

void mb_ops_metrics_free(mb_ops_metrics *m) {
  if (m == NULL) return;
  ev_timer_stop(m->cfg.loop, &m->tick);
  free(m->backlog);
  free(m);
}
