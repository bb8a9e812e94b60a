/* alerts.c — PLACEHOLDER (branch ops-monitor): only logs each alert raised. The real one
 * (publishing the events and POSTing the webhook, contract E) is another helper's and
 * replaces this file whole when merged.
 * Never: blocks. */
#include "ops/alerts.h"

#include "log.h"

struct mb_ops_alerts {
  int placeholder; /* the real one holds the publisher and the webhook queue */
};

void mb_ops_alerts_raise(mb_ops_alerts *a, const char *type, const char *body) {
  if (a == NULL) return;
  mb_log(MB_INFO, "moonbus.ops", NULL, NULL, "alert %s: %s", type, body);
}
