/* alerts.h — the alerts `moonbus ops` raises (DESIGN §10, contract E): each is published as
 * an event of its type, owned by endpoint moonbus.ops, and POSTed to the alert webhook.
 *
 * Provides: mb_ops_alerts (raise, and the counters /metrics shows), the four alert types.
 * Uses: the control transport's dispatch (asynchronous), webhook.h.
 * Never: blocks the loop, decides when an alert happens (the monitor does), or fails the
 * service because an alert could not be published or delivered (it is logged and counted). */
#ifndef MOONBUS_OPS_ALERTS_H
#define MOONBUS_OPS_ALERTS_H

#include "transport.h"

struct ev_loop;

#define MB_OPS_MESSAGE_FAILED "moonbus.ops.MessageFailed"
#define MB_OPS_HEARTBEAT_STOPPED "moonbus.ops.HeartbeatStopped"
#define MB_OPS_HEARTBEAT_RESTORED "moonbus.ops.HeartbeatRestored"
#define MB_OPS_SLA_BREACHED "moonbus.ops.SlaBreached"
/* The event types ops owns (the topology ops declares), MB_OPS_N_ALERT_TYPES of them. */
#define MB_OPS_N_ALERT_TYPES 4
extern const char *const mb_ops_alert_types[MB_OPS_N_ALERT_TYPES];

typedef struct mb_ops_alerts mb_ops_alerts;
/* Publishes through control (events owned by endpoint moonbus.ops) and POSTs to webhook_url
   (NULL: none). MB_OK, or an error (a bad webhook URL: MB_EINVAL saying why). */
int mb_ops_alerts_new(mb_ops_alerts **out, struct ev_loop *loop, mb_transport *control,
                      const char *webhook_url, mb_err *err);
/* type: "moonbus.ops.HeartbeatStopped" etc.; body: a complete JSON object (with "event" and
   "at"). Never blocks; copies body. a NULL: nothing. */
void mb_ops_alerts_raise(mb_ops_alerts *a, const char *type, const char *body);
unsigned long mb_ops_alerts_raised(const mb_ops_alerts *a, const char *type); /* for /metrics */
unsigned long mb_ops_alerts_webhook_failures(const mb_ops_alerts *a);
/* Stops pending webhook calls. Call it after the control transport is closed: a publish
 * whose confirmation never came is then forgotten (its bookkeeping freed). */
void mb_ops_alerts_free(mb_ops_alerts *a);

#endif
