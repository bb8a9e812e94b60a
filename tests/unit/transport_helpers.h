/* transport_helpers.h — what the transport unit tests (test_sqlite.c, test_mem_transport.c)
 * share: an inbox of deliveries, declaring an endpoint, composing a bare message, sending
 * one and counting the answer. The including file defines nothing of these names. */
#ifndef MOONBUS_TRANSPORT_HELPERS_H
#define MOONBUS_TRANSPORT_HELPERS_H

#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "transport.h"

/* The deliveries a consumer got (past 64, freed unseen). */
typedef struct inbox {
  mb_delivery *got[64];
  int n;
} inbox;

static void on_delivery(void *ud, mb_delivery *d) {
  inbox *in = ud;
  if (in->n < 64) in->got[in->n++] = d;
  else mb_delivery_free(d);
}

static inline void inbox_free(inbox *in) {
  for (int i = 0; i < in->n; i++) mb_delivery_free(in->got[i]);
  in->n = 0;
}

static int done_status, done_calls;
static char done_error[MB_ERRLEN];
static void on_done(void *ud, int status, const char *error) {
  (void)ud;
  done_status = status;
  done_calls++;
  snprintf(done_error, sizeof done_error, "%s", error ? error : "");
}

/* Declares endpoint with queue "error" (and audit, when not NULL), subscribed to sub and
 * owning owned (either may be NULL). */
static int declare_with(mb_transport *t, const char *endpoint, const char *audit, const char *sub,
                        const char *owned, mb_err *err) {
  const char *subs[] = {sub}, *own[] = {owned};
  mb_topology topo = {.endpoint = endpoint,
                      .error_queue = "error",
                      .audit_queue = audit,
                      .subscriptions = subs,
                      .n_subscriptions = sub ? 1 : 0,
                      .owned = own,
                      .n_owned = owned ? 1 : 0};
  return t->ops->declare(t, &topo, err);
}

/* A command to dest, or an event when dest is NULL. */
static mb_outgoing *message(const char *type, const char *dest, const char *body) {
  mb_outgoing *m = malloc(sizeof *m);
  mb_outgoing_init(m);
  mb_uuidv7(m->env.id);
  mb_envelope_set_type(&m->env, type);
  mb_headers_set(&m->env.headers, MB_H_KIND, dest ? "command" : "event");
  mb_envelope_set_body(&m->env, body, strlen(body));
  m->route = dest ? MB_ROUTE_QUEUE : MB_ROUTE_PUBLISH;
  m->dest = dest ? strdup(dest) : NULL;
  return m;
}

static int send_one(mb_transport *t, mb_outgoing *m, mb_err *err) {
  done_calls = 0;
  int rc = t->ops->dispatch(t, &m, 1, on_done, NULL, err);
  mb_outgoing_free(m);
  return rc;
}

#endif
