/* alerts.h — the alerts `moonbus ops` raises (DESIGN §10, contract E): published as events
 * it owns and POSTed to --alert-webhook.
 *
 * Provides: mb_ops_alerts_raise. Uses: whatever the implementation needs (alerts.c).
 * Never: blocks the loop. */
#ifndef MOONBUS_OPS_ALERTS_H
#define MOONBUS_OPS_ALERTS_H

typedef struct mb_ops_alerts mb_ops_alerts;
/* type: "moonbus.ops.HeartbeatStopped" etc.; body: a complete JSON object (with "event" and "at"). Never blocks; copies body. */
void mb_ops_alerts_raise(mb_ops_alerts *a, const char *type, const char *body);

#endif
