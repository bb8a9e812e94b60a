/* test_metrics.c — one endpoint's figures (metrics.c): counts and buckets, the cumulative
 * buckets of the Prometheus text (checked by promtool), the "(other)" cap against a flood of
 * hostile type names, label escaping and invalid UTF-8, the report's deltas and sequence,
 * the critical time raised to the processing time; and what counting an outcome costs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "metrics.h"
#include "unit.h"

#define PROMTOOL "/usr/bin/promtool"

static char *render(const mb_metrics *m) {
  mb_metrics_gauges g = {3, 1, 4096, 128};
  char *text = NULL;
  size_t len = 0;
  CHECK(mb_metrics_render(m, &g, &text, &len) == MB_OK);
  CHECK(text && strlen(text) == len);
  return text;
}

static int has(const char *text, const char *line) {
  if (text && strstr(text, line)) return 1;
  printf("#   missing: %s", line);
  return 0;
}

static int count_of(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

/* promtool check metrics on text: 1 if it passes. */
static int promtool_accepts(const char *text) {
  if (access(PROMTOOL, X_OK) != 0) {
    printf("#   %s not found: run scripts/install-deps.sh (Debian package prometheus)\n",
           PROMTOOL);
    return 0;
  }
  char path[] = "/tmp/test_metrics_XXXXXX", cmd[128], line[512];
  int fd = mkstemp(path);
  if (fd < 0) return 0;
  size_t len = strlen(text);
  int ok = write(fd, text, len) == (ssize_t)len;
  close(fd);
  snprintf(cmd, sizeof cmd, PROMTOOL " check metrics < %s 2>&1", path);
  FILE *out = ok ? popen(cmd, "r") : NULL;
  while (out && fgets(line, sizeof line, out)) printf("#   promtool: %s", line);
  ok = out && pclose(out) == 0;
  unlink(path);
  return ok;
}

static void test_counts_and_buckets(void) {
  mb_metrics *m = mb_metrics_new("sales");
  mb_metrics_received(m, "PlaceOrder");
  mb_metrics_received(m, "PlaceOrder");
  mb_metrics_received(m, NULL);
  mb_metrics_outcome(m, "PlaceOrder", MB_METRIC_SUCCESS, 0.0003, -1);
  mb_metrics_outcome(m, "PlaceOrder", MB_METRIC_RETRIED, 0.002, -1);
  mb_metrics_outcome(m, "PlaceOrder", MB_METRIC_SUCCESS, 100, -1);
  mb_metrics_outcome(m, "", MB_METRIC_ERROR, 0.0001, -1); /* on the bound: in it */
  CHECK(mb_metrics_received_total(m) == 3);
  CHECK(mb_metrics_handled(m, MB_METRIC_SUCCESS) == 2);
  CHECK(mb_metrics_handled(m, MB_METRIC_RETRIED) == 1);
  CHECK(mb_metrics_handled(m, MB_METRIC_ERROR) == 1);
  char *t = render(m);
  const char *pb = "moonbus_processing_seconds_bucket{endpoint=\"sales\",type=\"PlaceOrder\",";
  char line[160];
  static const char *const want[][2] = {{"0.0001", "0"}, {"0.00025", "0"}, {"0.0005", "1"},
                                        {"0.001", "1"},  {"0.0025", "2"},  {"60", "2"},
                                        {"+Inf", "3"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    snprintf(line, sizeof line, "%sle=\"%s\"} %s\n", pb, want[i][0], want[i][1]);
    CHECK(has(t, line));
  }
  CHECK(has(t, "moonbus_processing_seconds_count{endpoint=\"sales\",type=\"PlaceOrder\"} 3\n"));
  CHECK(has(t,
            "moonbus_processing_seconds_sum{endpoint=\"sales\",type=\"PlaceOrder\"} 100.0023\n"));
  CHECK(has(
      t,
      "moonbus_processing_seconds_bucket{endpoint=\"sales\",type=\"(none)\",le=\"0.0001\"} 1\n"));
  CHECK(has(t, "moonbus_messages_received_total{endpoint=\"sales\",type=\"(none)\"} 1\n"));
  CHECK(has(t, "moonbus_messages_handled_total{endpoint=\"sales\",type=\"PlaceOrder\",outcome="
               "\"discarded\"} 0\n"));
  CHECK(count_of(t, "moonbus_messages_handled_total{") == 10); /* 5 outcomes x 2 types */
  CHECK(has(t, "moonbus_critical_seconds_count{endpoint=\"sales\",type=\"PlaceOrder\"} 0\n"));
  CHECK(has(t, "# TYPE moonbus_processing_seconds histogram\n"));
  CHECK(has(t, "moonbus_handlers_in_flight{endpoint=\"sales\"} 3\n"));
  CHECK(has(t, "moonbus_lua_memory_bytes{endpoint=\"sales\"} 4096\n"));
  CHECK(promtool_accepts(t));
  free(t);
  mb_metrics_free(m);
}

static void test_host_counters_and_queues(void) {
  mb_metrics *m = mb_metrics_new("sales");
  mb_metrics_reload(m, 1);
  mb_metrics_reload(m, 0);
  mb_metrics_reload(m, 0);
  mb_metrics_reconnect(m);
  mb_metrics_queue_length(m, "sales", 12);
  mb_metrics_queue_length(m, "sales", 7);
  mb_metrics_queue_length(m, "audit", -1);
  char name[16];
  for (int i = 0; i < 40; i++) {
    snprintf(name, sizeof name, "q%d", i);
    mb_metrics_queue_length(m, name, i);
  }
  char *t = render(m);
  CHECK(has(t, "moonbus_reloads_total{endpoint=\"sales\",result=\"ok\"} 1\n"));
  CHECK(has(t, "moonbus_reloads_total{endpoint=\"sales\",result=\"refused\"} 2\n"));
  CHECK(has(t, "moonbus_reconnects_total{endpoint=\"sales\"} 1\n"));
  CHECK(has(t, "moonbus_queue_length{queue=\"sales\"} 7\n"));
  CHECK(strstr(t, "queue=\"audit\"") == NULL); /* unknown: no sample */
  CHECK(count_of(t, "moonbus_queue_length{") == MB_METRICS_MAX_QUEUES - 1);
  CHECK(promtool_accepts(t));
  free(t);
  mb_metrics_free(m);
}

static void test_hostile_types_are_capped_under_other(void) {
  mb_metrics *m = mb_metrics_new("sales");
  char type[64];
  for (int i = 0; i < 10000; i++) {
    snprintf(type, sizeof type, "evil\"\\\n\xff%d\xc0", i);
    mb_metrics_received(m, type);
    mb_metrics_outcome(m, type, MB_METRIC_ERROR, 0.001, 0.002);
  }
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  mb_metrics_received(m, big); /* too long for anyone's contract */
  mb_metrics_received(m, MB_METRICS_OTHER_TYPE);
  CHECK(mb_metrics_received_total(m) == 10002);
  CHECK(mb_metrics_handled(m, MB_METRIC_ERROR) == 10000);
  char *t = render(m);
  CHECK(count_of(t, "moonbus_messages_received_total{") == MB_METRICS_MAX_TYPES + 1);
  CHECK(count_of(t, "type=\"(other)\"") == 1 + 5 + 19 + 2 + 19 + 2);
  CHECK(has(t, "moonbus_messages_received_total{endpoint=\"sales\",type=\"(other)\"} 9802\n"));
  CHECK(strlen(t) < 2000000); /* bounded, whatever the flood */
  CHECK(promtool_accepts(t));
  free(t);
  mb_metrics_free(m);
}

static void test_labels_are_escaped_and_valid_utf8(void) {
  mb_metrics *m = mb_metrics_new("sa\"les\n");
  mb_metrics_received(m, "a\"b\\c\nd\xff");
  mb_metrics_received(m, "a\"b\\c\nd\xfe"); /* reads the same: the same series */
  mb_metrics_received(m, "caf\xc3\xa9");
  char *t = render(m);
  CHECK(has(t, "moonbus_messages_received_total{endpoint=\"sa\\\"les\\n\","
               "type=\"a\\\"b\\\\c\\nd\xef\xbf\xbd\"} 2\n"));
  CHECK(has(t, "type=\"caf\xc3\xa9\"} 1\n"));
  CHECK(count_of(t, "moonbus_messages_received_total{") == 2);
  CHECK(promtool_accepts(t));
  free(t);
  mb_metrics_free(m);
}

static void test_critical_is_at_least_the_processing_time(void) {
  mb_metrics *m = mb_metrics_new("e");
  mb_metrics_outcome(m, "T", MB_METRIC_SUCCESS, 0.01, 0.001); /* clocks disagree */
  mb_metrics_outcome(m, "T", MB_METRIC_SUCCESS, 0.01, 0.5);
  mb_metrics_outcome(m, "T", MB_METRIC_SUCCESS, 0.01, -1); /* no time_sent */
  char *t = render(m);
  CHECK(has(t, "moonbus_critical_seconds_count{endpoint=\"e\",type=\"T\"} 2\n"));
  CHECK(has(t, "moonbus_critical_seconds_sum{endpoint=\"e\",type=\"T\"} 0.51\n"));
  CHECK(has(t, "moonbus_critical_seconds_bucket{endpoint=\"e\",type=\"T\",le=\"0.01\"} 1\n"));
  free(t);
  mb_metrics_free(m);
}

static const mb_jv *at(const mb_json *doc, const char *a, const char *b) {
  const mb_jv *v = mb_jv_get(mb_json_root(doc), a);
  return b ? mb_jv_get(v, b) : v;
}

static mb_json *report(mb_metrics *m, const mb_report_info *info) {
  mb_metrics_gauges g = {2, 0, 1000, 0};
  char *json = NULL;
  size_t len;
  mb_json *doc = NULL;
  mb_err err;
  CHECK(mb_metrics_report(m, &g, info, 10.02, &json, &len) == MB_OK);
  CHECK(json && mb_json_parse(json, len, &doc, &err) == MB_OK);
  if (doc == NULL) printf("#   %s\n", json ? json : "(none)");
  free(json);
  return doc;
}

static void test_reports_carry_deltas(void) {
  mb_metrics *m = mb_metrics_new("sales");
  mb_report_info info = {"sales-1a2b", "box1", 1234, 3, 10, 30, 1764676800000000, 0};
  mb_metrics_received(m, "PlaceOrder");
  mb_metrics_outcome(m, "PlaceOrder", MB_METRIC_SUCCESS, 0.0003, 0.2);
  mb_metrics_queue_length(m, "sales", 12);
  mb_metrics_reload(m, 1);
  mb_json *r1 = report(m, &info);
  CHECK(mb_jv_number(at(r1, "seq", NULL)) == 1);
  CHECK(mb_jv_number(at(r1, "received", NULL)) == 1);
  CHECK(mb_jv_number(at(r1, "outcomes", "success")) == 1);
  CHECK(mb_jv_len(at(r1, "processing", "buckets")) == MB_METRICS_BUCKETS + 1);
  CHECK(mb_jv_number(mb_jv_at(at(r1, "processing", "buckets"), 2)) == 1);
  CHECK(mb_jv_number(at(r1, "critical", "sum")) == 0.2);
  CHECK(mb_jv_number(at(r1, "reloads", "ok")) == 1);
  CHECK(mb_jv_number(at(r1, "queues", "sales")) == 12);
  CHECK(mb_jv_number(at(r1, "sla", NULL)) == 30);
  CHECK(mb_jv_number(at(r1, "window", NULL)) == 10.02);
  CHECK(strcmp(mb_jv_get_string(mb_json_root(r1), "started"), "2025-12-02T12:00:00.000Z") == 0);
  const char *hb = mb_jv_get_string(mb_json_root(r1), "heartbeat");
  CHECK(hb && strlen(hb) == 24 && hb[23] == 'Z');
  CHECK(mb_jv_number(mb_jv_get(at(r1, "types", "PlaceOrder"), "received")) == 1);
  mb_json_free(r1);
  mb_metrics_received(m, "CancelOrder");
  mb_metrics_outcome(m, "CancelOrder", MB_METRIC_ERROR, 0.5, -1);
  info.sla = 0;
  mb_json *r2 = report(m, &info);
  CHECK(mb_jv_number(at(r2, "seq", NULL)) == 2);
  CHECK(mb_jv_number(at(r2, "received", NULL)) == 1);
  CHECK(mb_jv_number(at(r2, "outcomes", "success")) == 0);
  CHECK(mb_jv_number(at(r2, "outcomes", "error")) == 1);
  CHECK(mb_jv_number(at(r2, "processing", "count")) == 1);
  CHECK(mb_jv_number(at(r2, "critical", "count")) == 0);
  CHECK(mb_jv_number(at(r2, "reloads", "ok")) == 0);
  CHECK(mb_jv_type(at(r2, "sla", NULL)) == MB_JSON_NULL);
  CHECK(mb_jv_len(at(r2, "types", NULL)) == 1 && at(r2, "types", "CancelOrder") != NULL);
  mb_json_free(r2);
  mb_metrics_free(m);
}

/* What counting an outcome costs (this build: ASan's, so an upper bound). */
static void test_cost_of_an_outcome(void) {
  mb_metrics *m = mb_metrics_new("sales");
  static const char *const types[] = {"sales.PlaceOrder", "sales.CancelOrder", "billing.Charged",
                                      "shipping.Shipped"};
  enum { N = 1000000 };
  double t0 = mb_monotonic();
  for (int i = 0; i < N; i++)
    mb_metrics_outcome(m, types[i & 3], MB_METRIC_SUCCESS, 0.0003 * (i & 7), 0.01);
  double ns = (mb_monotonic() - t0) * 1e9 / N;
  printf("# mb_metrics_outcome: %.1f ns a call\n", ns);
  CHECK(mb_metrics_handled(m, MB_METRIC_SUCCESS) == N);
  mb_metrics_free(m);
}

int main(void) {
  RUN(test_counts_and_buckets);
  RUN(test_host_counters_and_queues);
  RUN(test_hostile_types_are_capped_under_other);
  RUN(test_labels_are_escaped_and_valid_utf8);
  RUN(test_critical_is_at_least_the_processing_time);
  RUN(test_reports_carry_deltas);
  RUN(test_cost_of_an_outcome);
  return unit_done();
}
