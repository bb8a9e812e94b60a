/* test_ops_monitor.c — the monitoring of `moonbus ops` (DESIGN §11, issue 18 contract C-E):
 * moonbus.ops.Report deliveries built by hand go through the SQLite store and the monitor
 * with a fake clock (mb_ops_monitor_tick at a chosen time).
 * Checked: two instances' deltas summed in one minute's rollup, buckets too, the queue
 * length the max sample; malformed reports (wrong types, missing fields, 1 MB of garbage)
 * kept raw with their problem, buckets of another length drop only the histograms;
 * liveness dead after 3 intervals, alive again, stopped, each transition one alert;
 * percentiles; an SLA breach raised once, a held-back queue breaches; MessageFailed once
 * per new failure; the API's JSON shapes. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "ops/figures.h"
#include "ops/monitor.h"
#include "ops/report.h"
#include "ops/store.h"
#include "ops_store_helpers.h"
#include "unit.h"

static int next_id;

/* A delivery with the next made-up id. */
static mb_delivery *delivery(const char *type, const char *body, size_t len) {
  char id[40];
  snprintf(id, sizeof id, "0192f3a4-0000-7000-8000-%012d", ++next_id);
  return hand_delivery(id, "message", type, body, len);
}

/* A report of instance of endpoint: success successes, each in processing bucket 3 and
 * critical bucket crit_bucket; queues a JSON object. */
static char *report(const char *endpoint, const char *instance, int success, int crit_bucket,
                    const char *queues, const char *sla, int stopping) {
  char p[200] = "", c[200] = "";
  for (int i = 0; i < MB_OPS_HIST; i++) {
    snprintf(p + strlen(p), sizeof p - strlen(p), "%s%d", i ? "," : "", i == 3 ? success : 0);
    snprintf(c + strlen(c), sizeof c - strlen(c), "%s%d", i ? "," : "",
             i == crit_bucket ? success : 0);
  }
  char *out = malloc(4096);
  snprintf(out, 4096,
           "{\"version\":1,\"endpoint\":\"%s\",\"instance\":\"%s\",\"host\":\"box1\","
           "\"pid\":42,\"generation\":1,\"seq\":%d,\"heartbeat\":\"2026-12-02T12:00:00.123Z\","
           "\"started\":\"2026-12-02T11:00:00.000Z\",\"interval\":10,\"sla\":%s,"
           "\"stopping\":%s,\"window\":10,\"received\":%d,\"outcomes\":{\"success\":%d,"
           "\"retried\":1,\"delayed\":0,\"error\":0,\"discarded\":0},\"processing\":"
           "{\"count\":%d,\"sum\":0.01,\"buckets\":[%s]},\"critical\":{\"count\":%d,\"sum\":0.5,"
           "\"buckets\":[%s]},\"reloads\":{\"ok\":0,\"refused\":0},\"reconnects\":0,"
           "\"in_flight\":2,\"requests_pending\":0,\"lua_memory_bytes\":1000,"
           "\"shared_memory_bytes\":0,\"queues\":%s,\"types\":{},\"unknown\":[1]}",
           endpoint, instance, next_id, sla, stopping ? "true" : "false", success + 1, success,
           success, p, success, c, queues);
  return out;
}

static int send_report(mb_ops_store *s, char *body) {
  int rc = ingest(s, MB_OPS_REPORT, delivery(MB_OPS_REPORT_TYPE, body, strlen(body)));
  free(body);
  return rc;
}

static mb_json *monitoring(mb_ops_store *s, const char *endpoint, long minutes, double now) {
  char *json = NULL;
  mb_err err;
  if (s->ops->monitoring(s, endpoint, minutes, now, &json, &err) != MB_OK) return NULL;
  return parsed(json);
}

static double num(const mb_jv *v, const char *a, const char *b) {
  const mb_jv *x = mb_jv_get(v, a);
  return mb_jv_number(b ? mb_jv_get(x, b) : x);
}

static double events_total(mb_ops_store *s, const char *type) {
  char *json = NULL;
  mb_err err;
  s->ops->events(s, 1, 500, &json, &err);
  mb_json *doc = parsed(json);
  const mb_jv *ev = mb_jv_get(mb_json_root(doc), "events");
  double n = 0;
  for (size_t i = 0; i < mb_jv_len(ev); i++)
    if (type == NULL || strcmp(mb_jv_get_string(mb_jv_at(ev, i), "type"), type) == 0) n++;
  mb_json_free(doc);
  return n;
}

static long long sql_count(const char *sql) {
  sqlite3 *db;
  sqlite3_stmt *st;
  long long n = -1;
  if (sqlite3_open(store_path, &db) != SQLITE_OK) return -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

static double now_s(void) { return (double)mb_now_usec() / 1e6; }

static void two_instances_summed_in_a_minute(void) {
  mb_ops_store *s = open_store("moonbus-ops-monitor");
  CHECK(send_report(s, report("sales", "sales-1", 10, 13, "{\"sales\":5}", "null", 0)) == MB_OK);
  CHECK(send_report(s, report("sales", "sales-2", 30, 13, "{\"sales\":12,\"error\":0}", "null",
                              0)) == MB_OK);
  CHECK(send_report(s, report("billing", "billing-1", 1, 13, "{\"sales\":7}", "null", 0)) ==
        MB_OK);
  mb_json *doc = monitoring(s, NULL, 5, now_s());
  const mb_jv *eps = mb_jv_get(mb_json_root(doc), "endpoints");
  CHECK(mb_jv_len(eps) == 2);
  const mb_jv *sales = mb_jv_at(eps, 1);
  CHECK(strcmp(mb_jv_get_string(sales, "endpoint"), "sales") == 0);
  CHECK(strcmp(mb_jv_get_string(sales, "status"), "live") == 0);
  CHECK(mb_jv_len(mb_jv_get(sales, "instances")) == 2);
  CHECK(num(sales, "figures", "success") == 40);
  CHECK(num(sales, "figures", "received") == 42);
  CHECK(num(sales, "figures", "retried") == 2);
  CHECK(num(sales, "figures", "queue_length") == 12);
  CHECK(num(sales, "figures", "in_flight") == 4);
  CHECK(mb_jv_type(mb_jv_get(sales, "sla")) == MB_JSON_NULL);
  CHECK(mb_jv_type(mb_jv_get(sales, "time_to_breach")) == MB_JSON_NULL);
  const mb_jv *series = mb_jv_get(sales, "series");
  CHECK(mb_jv_len(mb_jv_get(series, "minutes")) == 5);
  CHECK(mb_jv_number(mb_jv_at(mb_jv_get(series, "retried"), 4)) == 2);
  CHECK(mb_jv_type(mb_jv_at(mb_jv_get(series, "critical_p95"), 0)) == MB_JSON_NULL);
  /* 40 observations in (0.0005, 0.001]: p50 is halfway */
  CHECK(fabs(num(mb_jv_get(sales, "figures"), "processing", "p50") - 0.00075) < 1e-9);

  CHECK(sql_count("SELECT sum(p3) FROM rollups WHERE endpoint = 'sales'") == 40);
  mb_json_free(doc);
  /* a redelivered report is not counted twice */
  mb_delivery *d = delivery(MB_OPS_REPORT_TYPE, "{}", 2);
  char *body = report("sales", "sales-1", 10, 13, "{}", "null", 0);
  mb_envelope_set_body(&d->env, body, strlen(body));
  free(body);
  mb_delivery *again = delivery(MB_OPS_REPORT_TYPE, d->env.body, d->env.body_len);
  snprintf(again->env.id, sizeof again->env.id, "%s", d->env.id);
  ingest(s, MB_OPS_REPORT, d);
  ingest(s, MB_OPS_REPORT, again);
  CHECK(sql_count("SELECT sum(success) FROM rollups WHERE endpoint = 'sales'") == 50);
  CHECK(monitoring(s, "nobody", 5, now_s()) == NULL);
  close_store(s);
}

static void malformed_reports_are_kept_raw(void) {
  mb_ops_store *s = open_store("moonbus-ops-monitor");
  char *good = report("sales", "sales-1", 10, 13, "{}", "null", 0), *p;
  static const char *const breaks[][2] = {{"\"pid\":42", "\"pid\":\"42\""},
                                          {"\"seq\":", "\"seq\":-"},
                                          {"\"interval\":10", "\"interval\":null"},
                                          {"\"version\":1,", ""},
                                          {"\"stopping\":false", "\"stopping\":0"},
                                          {"\"queues\":{}", "\"queues\":[]"},
                                          {"\"success\":10", "\"success\":1.5"},
                                          {"\"host\":\"box1\"", "\"host\":7"},
                                          {"\"queues\":{}", "\"queues\":{\"a\":\"x\"}"}};
  int n = (int)(sizeof breaks / sizeof breaks[0]);
  for (int i = 0; i < n; i++) {
    char bad[4096];
    p = strstr(good, breaks[i][0]);
    snprintf(bad, sizeof bad, "%.*s%s%s", (int)(p - good), good, breaks[i][1],
             p + strlen(breaks[i][0]));
    CHECK(ingest(s, MB_OPS_REPORT, delivery(MB_OPS_REPORT_TYPE, bad, strlen(bad))) == MB_OK);
  }
  char *garbage = malloc(1 << 20);
  for (int i = 0; i < 1 << 20; i++) garbage[i] = (char)((unsigned)i * 7919u % 251u + 1);
  CHECK(ingest(s, MB_OPS_REPORT, delivery(MB_OPS_REPORT_TYPE, garbage, 1 << 20)) == MB_OK);
  free(garbage);
  CHECK(ingest(s, MB_OPS_REPORT, delivery(MB_OPS_REPORT_TYPE, "[1,2]", 5)) == MB_OK);
  CHECK(ingest(s, MB_OPS_REPORT, delivery("some.Other", good, strlen(good))) == MB_OK);
  CHECK(sql_count("SELECT count(*) FROM reports WHERE problem IS NOT NULL") == n + 3);
  CHECK(sql_count("SELECT count(*) FROM reports WHERE problem LIKE '%pid%'") == 1);
  CHECK(sql_count("SELECT count(*) FROM instances") == 0);
  /* buckets of another length: the report counts, its histograms do not */
  p = strstr(good, "\"buckets\":[");
  char short_b[4096];
  snprintf(short_b, sizeof short_b, "%.*s\"buckets\":[1,2,3],\"x\":[%s", (int)(p - good), good,
           p + strlen("\"buckets\":["));
  CHECK(ingest(s, MB_OPS_REPORT, delivery(MB_OPS_REPORT_TYPE, short_b, strlen(short_b))) ==
        MB_OK);
  CHECK(sql_count("SELECT sum(success) FROM rollups WHERE endpoint = 'sales'") == 10);
  CHECK(sql_count("SELECT sum(p3 + c13) FROM rollups WHERE endpoint = 'sales'") == 0);
  free(good);
  close_store(s);
}

static void liveness_transitions_raise_one_alert_each(void) {
  mb_ops_store *s = open_store("moonbus-ops-monitor");
  mb_ops_monitor *m = NULL;
  mb_err err;
  CHECK(mb_ops_monitor_start(&m, NULL, s, NULL, &err) == MB_OK);
  double t = now_s();
  send_report(s, report("sales", "sales-1", 1, 3, "{}", "null", 0));
  mb_ops_monitor_tick(m, t + 29);
  CHECK(mb_ops_monitor_alerts(m) == 0);
  mb_ops_monitor_tick(m, t + 31);
  mb_ops_monitor_tick(m, t + 40);
  CHECK(mb_ops_monitor_alerts(m) == 1);
  CHECK(events_total(s, "moonbus.ops.HeartbeatStopped") == 1);
  mb_json *doc = monitoring(s, "sales", 60, t);
  CHECK(strcmp(mb_jv_get_string(mb_json_root(doc), "status"), "dead") == 0);
  mb_json_free(doc);
  send_report(s, report("sales", "sales-1", 1, 3, "{}", "null", 0));
  CHECK(mb_ops_monitor_alerts(m) == 2);
  CHECK(events_total(s, "moonbus.ops.HeartbeatRestored") == 1);
  send_report(s, report("sales", "sales-2", 1, 3, "{}", "null", 0));
  send_report(s, report("sales", "sales-1", 1, 3, "{}", "null", 1));
  doc = monitoring(s, "sales", 60, t);
  CHECK(strcmp(mb_jv_get_string(mb_json_root(doc), "status"), "live") == 0);
  mb_json_free(doc);
  mb_ops_monitor_tick(m, t + 1000); /* sales-2 dies, the stopped one does not */
  CHECK(mb_ops_monitor_alerts(m) == 3);
  doc = monitoring(s, "sales", 60, t);
  CHECK(strcmp(mb_jv_get_string(mb_json_root(doc), "status"), "dead") == 0);
  mb_json_free(doc);
  CHECK(sql_count("SELECT count(*) FROM instances WHERE state = 'stopped'") == 1);
  CHECK(events_total(s, NULL) == 3);
  mb_ops_monitor_stop(m);
  close_store(s);
}

static void percentiles_from_buckets(void) {
  double b[MB_OPS_HIST] = {0};
  CHECK(isnan(mb_ops_percentile(b, 0.5)));
  b[0] = 100;
  CHECK(fabs(mb_ops_percentile(b, 0.5) - 0.00005) < 1e-12);
  b[0] = 50, b[9] = 50; /* half under 0.1 ms, half in (0.05, 0.1] */
  CHECK(fabs(mb_ops_percentile(b, 0.5) - 0.0001) < 1e-12);
  CHECK(fabs(mb_ops_percentile(b, 0.99) - (0.05 + 0.05 * 49.0 / 50)) < 1e-12);
  b[18] = 1000; /* beyond the last bound: the last bound */
  CHECK(mb_ops_percentile(b, 0.99) == 60);
  mb_ops_sums u = {0};
  mb_ops_figures f;
  u.outcomes[MB_OPS_SUCCESS] = 100, u.critical[12] = 100, u.queue_length = 50;
  mb_ops_figures_of(&u, 10, 30, &f); /* p95 0.975, 10/s: 30 - 0.975 - 5 */
  CHECK(fabs(f.time_to_breach - 24.025) < 1e-9 && !f.breached);
  u.outcomes[MB_OPS_SUCCESS] = 0;
  mb_ops_figures_of(&u, 10, 30, &f);
  CHECK(f.time_to_breach == 0 && f.breached);
  mb_ops_figures_of(&u, 10, 0, &f);
  CHECK(isnan(f.time_to_breach) && !f.breached);
}

static void sla_breach_is_raised_once(void) {
  mb_ops_store *s = open_store("moonbus-ops-monitor");
  mb_ops_monitor *m = NULL;
  mb_err err;
  CHECK(mb_ops_monitor_start(&m, NULL, s, NULL, &err) == MB_OK);
  double t = now_s();
  /* critical time in (1, 2.5] against an SLA of 2: breached */
  send_report(s, report("sales", "sales-1", 10, 13, "{}", "2", 0));
  /* billing is fast but stopped, and its queue (sampled by sales) piles up */
  send_report(s, report("billing", "billing-1", 10, 3, "{}", "30", 1));
  send_report(s, report("sales", "sales-1", 0, 13, "{\"billing\":40}", "2", 0));
  mb_ops_monitor_tick(m, t);
  mb_ops_monitor_tick(m, t + 0.5);
  CHECK(events_total(s, "moonbus.ops.SlaBreached") == 2);
  CHECK(mb_ops_monitor_alerts(m) == 2);
  mb_json *doc = monitoring(s, "sales", 5, t);
  CHECK(mb_jv_is_true(mb_jv_get(mb_json_root(doc), "breached")));
  CHECK(num(mb_json_root(doc), "time_to_breach", NULL) == 0);
  CHECK(num(mb_json_root(doc), "sla", NULL) == 2);
  mb_json_free(doc);
  doc = monitoring(s, "billing", 5, t);
  CHECK(strcmp(mb_jv_get_string(mb_json_root(doc), "status"), "stopped") == 0);
  CHECK(num(mb_json_root(doc), "figures", "queue_length") == 40);
  mb_json_free(doc);
  mb_ops_monitor_stop(m);
  close_store(s);
}

static void message_failed_once_per_new_failure(void) {
  mb_ops_store *s = open_store("moonbus-ops-monitor");
  mb_ops_monitor *m = NULL;
  mb_err err;
  CHECK(mb_ops_monitor_start(&m, NULL, s, NULL, &err) == MB_OK);
  mb_delivery *d = delivery("shop.Pay", "{}", 2);
  mb_headers_set(&d->env.headers, MB_H_FAILED_QUEUE, "shop");
  mb_headers_set(&d->env.headers, MB_H_FAILED_AT, "2026-12-01T10:00:00Z");
  mb_headers_set(&d->env.headers, MB_H_EXCEPTION_MESSAGE, "x.lua:1: boom");
  mb_delivery *again = delivery("shop.Pay", "{}", 2);
  snprintf(again->env.id, sizeof again->env.id, "%s", d->env.id);
  mb_headers_set(&again->env.headers, MB_H_FAILED_QUEUE, "shop");
  mb_headers_set(&again->env.headers, MB_H_FAILED_AT, "2026-12-01T10:00:00Z");
  mb_delivery *both[2] = {d, again};
  CHECK(s->ops->ingest(s, MB_OPS_ERROR, both, 2, &err) == MB_OK);
  mb_delivery_free(d);
  mb_delivery_free(again);
  CHECK(mb_ops_monitor_alerts(m) == 1);
  char *json = NULL;
  s->ops->events(s, 1, 50, &json, &err);
  mb_json *doc = parsed(json);
  const mb_jv *body = mb_jv_get(mb_jv_at(mb_jv_get(mb_json_root(doc), "events"), 0), "body");
  CHECK(strcmp(mb_jv_get_string(body, "event"), "moonbus.ops.MessageFailed") == 0);
  CHECK(strcmp(mb_jv_get_string(body, "queue"), "shop") == 0);
  CHECK(mb_jv_number(mb_jv_get(body, "attempts")) == 1);
  CHECK(num(mb_json_root(doc), "total", NULL) == 1);
  mb_json_free(doc);
  mb_ops_monitor_stop(m);
  close_store(s);
}

int main(void) {
  RUN(two_instances_summed_in_a_minute);
  RUN(malformed_reports_are_kept_raw);
  RUN(liveness_transitions_raise_one_alert_each);
  RUN(percentiles_from_buckets);
  RUN(sla_breach_is_raised_once);
  RUN(message_failed_once_per_new_failure);
  return unit_done();
}
