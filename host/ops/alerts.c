/* alerts.c — raises the alerts of `moonbus ops` (see alerts.h): each one becomes an event of
 * its type, sent with the moonbus envelope any bus.publish carries (a UUIDv7 id, kind event,
 * conversation, origin endpoint moonbus.ops and host, time sent, traceparent) through the
 * control transport's dispatch, and goes to the webhook's queue.
 * Owns: the count of alerts raised per type, the bookkeeping of publishes in flight (freed
 * by their done callback, or by mb_ops_alerts_free once the transport is closed).
 * Never: blocks, or treats a failed publish as fatal: it is logged with the type and id. */
#include "ops/alerts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compose.h"
#include "json.h"
#include "log.h"
#include "ops/webhook.h"

#define WHO "moonbus.ops"
#define MAX_TYPES 16 /* the four of contract E and a few the monitor may add */

const char *const mb_ops_alert_types[MB_OPS_N_ALERT_TYPES] = {
    MB_OPS_MESSAGE_FAILED, MB_OPS_HEARTBEAT_STOPPED, MB_OPS_HEARTBEAT_RESTORED,
    MB_OPS_SLA_BREACHED};

/* A publish whose done callback has not come yet. */
typedef struct pending {
  struct pending *prev, *next;
  mb_ops_alerts *owner;
  char id[MB_ID_LEN + 1];
  char type[256];
} pending;

struct mb_ops_alerts {
  mb_transport *control;
  mb_webhook *webhook; /* NULL: no --alert-webhook */
  char host[256];
  const char *types[MAX_TYPES];
  char *own_types[MAX_TYPES]; /* copies of the types beyond the four */
  unsigned long counts[MAX_TYPES];
  size_t n_types;
  pending *in_flight;
};

int mb_ops_alerts_new(mb_ops_alerts **out, struct ev_loop *loop, mb_transport *control,
                      const char *webhook_url, mb_err *err) {
  *out = NULL;
  mb_ops_alerts *a = calloc(1, sizeof *a);
  if (a == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  a->control = control;
  if (gethostname(a->host, sizeof a->host - 1) != 0) strcpy(a->host, "localhost");
  for (size_t i = 0; i < MB_OPS_N_ALERT_TYPES; i++)
    a->types[a->n_types++] = mb_ops_alert_types[i];
  int rc = webhook_url ? mb_webhook_new(&a->webhook, loop, webhook_url, err) : MB_OK;
  if (rc != MB_OK) {
    free(a);
    return rc;
  }
  if (a->webhook)
    mb_log(MB_INFO, WHO, NULL, NULL, "alerts are POSTed to %s (its name was resolved now)",
           mb_webhook_shown(a->webhook));
  *out = a;
  return MB_OK;
}

/* The slot of type, made when there is room; -1 otherwise. */
static int slot_of(mb_ops_alerts *a, const char *type, int make) {
  for (size_t i = 0; i < a->n_types; i++)
    if (strcmp(a->types[i], type) == 0) return (int)i;
  if (!make || a->n_types == MAX_TYPES) return -1;
  char *copy = strdup(type);
  if (copy == NULL) return -1;
  a->own_types[a->n_types] = copy;
  a->types[a->n_types] = copy;
  return (int)a->n_types++;
}

static void unlink_pending(pending *p) {
  mb_ops_alerts *a = p->owner;
  if (p->prev) p->prev->next = p->next;
  else if (a) a->in_flight = p->next;
  if (p->next) p->next->prev = p->prev;
}

static void published(void *ud, int status, const char *error) {
  pending *p = ud;
  if (status != MB_OK)
    mb_log(MB_ERROR, WHO, p->id, p->type, "alert not published: %s",
           error ? error : mb_strerror(status));
  unlink_pending(p);
  free(p);
}

/* The event for type with body: what bus.publish would send, as endpoint moonbus.ops. */
static mb_outgoing *event_of(const mb_ops_alerts *a, const char *type, const char *body) {
  mb_outgoing *m = malloc(sizeof *m);
  if (m == NULL) return NULL;
  mb_outgoing_init(m);
  m->route = MB_ROUTE_PUBLISH;
  mb_uuidv7(m->env.id);
  int rc = mb_envelope_set_type(&m->env, type);
  if (rc == MB_OK) rc = mb_envelope_set_body(&m->env, body, strlen(body));
  if (rc == MB_OK) rc = mb_headers_set(&m->env.headers, MB_H_KIND, mb_kind_name(MB_KIND_EVENT));
  if (rc == MB_OK) rc = mb_compose_lineage(&m->env, NULL, WHO, a->host);
  if (rc != MB_OK) {
    mb_outgoing_free(m);
    return NULL;
  }
  return m;
}

static void publish(mb_ops_alerts *a, const char *type, const char *body) {
  mb_outgoing *m = event_of(a, type, body);
  pending *p = m ? calloc(1, sizeof *p) : NULL;
  if (p == NULL) {
    mb_outgoing_free(m);
    mb_log(MB_ERROR, WHO, NULL, type, "alert not published: out of memory");
    return;
  }
  p->owner = a;
  memcpy(p->id, m->env.id, sizeof p->id);
  snprintf(p->type, sizeof p->type, "%s", type);
  p->next = a->in_flight;
  if (p->next) p->next->prev = p;
  a->in_flight = p;
  mb_err err;
  if (a->control->ops->dispatch(a->control, &m, 1, published, p, &err) != MB_OK)
    published(p, err.status, err.msg);
  mb_outgoing_free(m);
}

/* 1 if body is a JSON object (what a subscriber's handler gets), else logs why not. */
static int object_body(const char *type, const char *body) {
  mb_json *doc = NULL;
  mb_err err;
  int ok = mb_json_parse(body, strlen(body), &doc, &err) == MB_OK &&
           mb_jv_type(mb_json_root(doc)) == MB_JSON_OBJECT;
  if (!ok) mb_log(MB_ERROR, WHO, NULL, type, "alert not raised: its body is not a JSON object");
  mb_json_free(doc);
  return ok;
}

void mb_ops_alerts_raise(mb_ops_alerts *a, const char *type, const char *body) {
  if (a == NULL || type == NULL || body == NULL || !object_body(type, body)) return;
  int slot = slot_of(a, type, 1);
  if (slot >= 0) a->counts[slot]++;
  mb_log(MB_INFO, WHO, NULL, type, "alert raised: %s", body);
  publish(a, type, body);
  int rc = a->webhook ? mb_webhook_post(a->webhook, type, body) : MB_OK;
  if (rc != MB_OK)
    mb_log(MB_ERROR, WHO, NULL, type, "alert not queued for the webhook: %s",
           rc == MB_EINVAL ? "its type cannot be a header value" : mb_strerror(rc));
}

unsigned long mb_ops_alerts_raised(const mb_ops_alerts *a, const char *type) {
  if (a == NULL || type == NULL) return 0;
  for (size_t i = 0; i < a->n_types; i++)
    if (strcmp(a->types[i], type) == 0) return a->counts[i];
  return 0;
}

unsigned long mb_ops_alerts_webhook_failures(const mb_ops_alerts *a) {
  return a ? mb_webhook_failures(a->webhook) : 0;
}

void mb_ops_alerts_free(mb_ops_alerts *a) {
  if (a == NULL) return;
  mb_webhook_free(a->webhook);
  while (a->in_flight) {
    pending *p = a->in_flight;
    a->in_flight = p->next;
    free(p);
  }
  for (size_t i = 0; i < MAX_TYPES; i++) free(a->own_types[i]);
  free(a);
}
