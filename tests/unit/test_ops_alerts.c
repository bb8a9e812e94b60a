/* test_ops_alerts.c — the alerts of `moonbus ops` (host/ops/alerts.c) on the in-memory
 * transport: ops's control transport owns the four alert types (as ops.c declares them), an
 * endpoint subscribed to one gets each alert raised as an event of that type with the
 * envelope of a bus.publish (kind event, origin endpoint moonbus.ops, a conversation, the
 * body as given); a type nobody handles is counted and goes nowhere; a body that is not a
 * JSON object is refused; a NULL handle is a no-op; the counters; a bad webhook URL fails
 * the constructor; a publish still unconfirmed when the transport closes is freed by
 * mb_ops_alerts_free (LeakSanitizer). */
#include <ev.h>
#include <stdio.h>
#include <string.h>

#include "ops/alerts.h"
#include "transport/mem.h"
#include "unit.h"

static struct ev_loop *loop;

static mb_transport *open_mem(const char *instance) {
  mb_transport *t = NULL;
  mb_err err;
  if (mb_transport_open(&t, loop, "mem://alerts", instance, &err) != MB_OK)
    printf("#   open: %s\n", err.msg);
  return t;
}

/* ops's control transport, with its topology (ops.c's declare). */
static mb_transport *open_ops(void) {
  mb_transport *t = open_mem("ops");
  mb_topology topo = {.endpoint = "moonbus.ops",
                      .error_queue = "error",
                      .owned = mb_ops_alert_types,
                      .n_owned = MB_OPS_N_ALERT_TYPES};
  mb_err err;
  CHECK(t && t->ops->declare(t, &topo, &err) == MB_OK);
  return t;
}

static mb_transport *open_watcher(void) {
  mb_transport *t = open_mem("watcher");
  const char *subs[] = {MB_OPS_MESSAGE_FAILED};
  mb_topology topo = {
      .endpoint = "watcher", .error_queue = "error", .subscriptions = subs, .n_subscriptions = 1};
  mb_err err;
  CHECK(t && t->ops->declare(t, &topo, &err) == MB_OK);
  return t;
}

static void settle(void) {
  for (int i = 0; i < 20; i++) ev_run(loop, EVRUN_NOWAIT);
}

static void a_subscriber_gets_the_event(void) {
  mb_transport *ops = open_ops(), *watcher = open_watcher();
  mb_ops_alerts *a = NULL;
  mb_err err;
  CHECK(mb_ops_alerts_new(&a, loop, ops, NULL, &err) == MB_OK && a != NULL);
  const char *body = "{\"event\":\"moonbus.ops.MessageFailed\",\"at\":\"2026-12-02T12:00:00Z\","
                     "\"id\":\"m-1\",\"queue\":\"shop\"}";
  mb_ops_alerts_raise(a, MB_OPS_MESSAGE_FAILED, body);
  mb_ops_alerts_raise(a, MB_OPS_HEARTBEAT_STOPPED, "{\"event\":\"x\",\"at\":\"y\"}");
  settle();
  CHECK(mb_mem_count(watcher, "watcher") == 1);
  mb_delivery *got[2];
  size_t n = 0;
  CHECK(mb_transport_browse_first(watcher, "watcher", 2, got, &n, &err) == MB_OK && n == 1);
  if (n == 1) {
    const mb_headers *h = &got[0]->env.headers;
    CHECK(strcmp(got[0]->env.type, MB_OPS_MESSAGE_FAILED) == 0);
    CHECK(strcmp(got[0]->env.body, body) == 0);
    CHECK(strcmp(mb_headers_get(h, MB_H_KIND), "event") == 0);
    CHECK(strcmp(mb_headers_get(h, MB_H_ORIGIN_ENDPOINT), "moonbus.ops") == 0);
    CHECK(mb_headers_get(h, MB_H_CONVERSATION) != NULL);
    CHECK(mb_headers_get(h, MB_H_TIME_SENT) != NULL);
    mb_delivery_free(got[0]);
  }
  CHECK(mb_ops_alerts_raised(a, MB_OPS_MESSAGE_FAILED) == 1);
  CHECK(mb_ops_alerts_raised(a, MB_OPS_HEARTBEAT_STOPPED) == 1);
  CHECK(mb_ops_alerts_raised(a, MB_OPS_SLA_BREACHED) == 0);
  CHECK(mb_ops_alerts_raised(a, "no.Such") == 0);
  CHECK(mb_ops_alerts_webhook_failures(a) == 0);
  char owner[256];
  CHECK(ops->ops->owner_of(ops, MB_OPS_SLA_BREACHED, owner, sizeof owner, &err) == MB_OK &&
        strcmp(owner, "moonbus.ops") == 0);
  ops->ops->close(ops);
  mb_ops_alerts_free(a);
  watcher->ops->close(watcher);
}

static void bad_input_raises_nothing(void) {
  mb_transport *ops = open_ops(), *watcher = open_watcher();
  mb_ops_alerts *a = NULL;
  mb_err err;
  CHECK(mb_ops_alerts_new(&a, loop, ops, NULL, &err) == MB_OK);
  mb_ops_alerts_raise(a, MB_OPS_MESSAGE_FAILED, "[1, 2]");
  mb_ops_alerts_raise(a, MB_OPS_MESSAGE_FAILED, "{\"event\":");
  mb_ops_alerts_raise(a, MB_OPS_MESSAGE_FAILED, NULL);
  mb_ops_alerts_raise(a, NULL, "{}");
  mb_ops_alerts_raise(NULL, MB_OPS_MESSAGE_FAILED, "{}");
  settle();
  CHECK(mb_mem_count(watcher, "watcher") == 0);
  CHECK(mb_ops_alerts_raised(a, MB_OPS_MESSAGE_FAILED) == 0);
  CHECK(mb_ops_alerts_raised(NULL, MB_OPS_MESSAGE_FAILED) == 0);
  ops->ops->close(ops);
  mb_ops_alerts_free(a);
  mb_ops_alerts_free(NULL);
  watcher->ops->close(watcher);
}

static void a_bad_webhook_url_fails_the_constructor(void) {
  mb_transport *ops = open_ops();
  mb_ops_alerts *a = (mb_ops_alerts *)1;
  mb_err err = {0};
  CHECK(mb_ops_alerts_new(&a, loop, ops, "https://u:secret@example.com/", &err) == MB_EINVAL);
  CHECK(a == NULL);
  CHECK(strstr(err.msg, "https://") != NULL && strstr(err.msg, "secret") == NULL);
  ops->ops->close(ops);
}

static void unconfirmed_publishes_are_freed(void) {
  mb_transport *ops = open_ops(), *watcher = open_watcher();
  mb_ops_alerts *a = NULL;
  mb_err err;
  CHECK(mb_ops_alerts_new(&a, loop, ops, NULL, &err) == MB_OK);
  mb_mem_manual_confirm(ops, 1);
  mb_ops_alerts_raise(a, MB_OPS_MESSAGE_FAILED, "{\"event\":\"e\",\"at\":\"t\",\"id\":\"1\"}");
  mb_ops_alerts_raise(a, MB_OPS_MESSAGE_FAILED, "{\"event\":\"e\",\"at\":\"t\",\"id\":\"2\"}");
  settle();
  CHECK(mb_ops_alerts_raised(a, MB_OPS_MESSAGE_FAILED) == 2);
  ops->ops->close(ops); /* drops them without their done callbacks */
  mb_ops_alerts_free(a);
  watcher->ops->close(watcher);
}

int main(void) {
  mb_log_set_level(MB_ERROR + 1);
  loop = ev_loop_new(EVFLAG_AUTO);
  RUN(a_subscriber_gets_the_event);
  RUN(bad_input_raises_nothing);
  RUN(a_bad_webhook_url_fails_the_constructor);
  RUN(unconfirmed_publishes_are_freed);
  ev_loop_destroy(loop);
  return unit_done();
}
