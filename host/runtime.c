/* runtime.c — one running endpoint instance (see runtime.h): owns the transport handle,
 * the endpoint's configuration and subscriptions, and the list of jobs in flight.
 * Never: runs Lua or decides what happens to a message (pipeline.c does). */
#include "runtime.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "correlate.h"
#include "envelope.h"
#include "log.h"
#include "pipeline.h"

struct mb_send {
  mb_runtime *rt;
  mb_done_fn fn;
  void *ud;
  int forgotten, answered;
  mb_send *prev, *next;
};

mb_runtime *mb_runtime_new(struct ev_loop *loop, const char *url_override, const char *instance) {
  mb_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL) return NULL;
  if (mb_endpoint_cfg_defaults(&rt->cfg) != MB_OK) goto fail;
  rt->loop = loop;
  if (loop == NULL) {
    rt->loop = ev_loop_new(EVFLAG_AUTO);
    rt->own_loop = 1;
    if (rt->loop == NULL) goto fail;
  }
  if (url_override && (rt->url_override = strdup(url_override)) == NULL) goto fail;
  if (gethostname(rt->host, sizeof rt->host - 1) != 0) strcpy(rt->host, "localhost");
  if (instance) {
    snprintf(rt->instance, sizeof rt->instance, "%s", instance);
  } else {
    char id[MB_ID_LEN + 1];
    mb_uuidv7(id);
    snprintf(rt->instance, sizeof rt->instance, "%.48s-%ld-%.8s", rt->host, (long)getpid(),
             id + 28);
  }
  return rt;
fail:
  mb_runtime_free(rt);
  return NULL;
}

static void free_subscriptions(mb_runtime *rt) {
  for (size_t i = 0; i < rt->n_subscriptions; i++) free(rt->subscriptions[i]);
  free(rt->subscriptions);
  rt->subscriptions = NULL;
  rt->n_subscriptions = 0;
}

void mb_runtime_free(mb_runtime *rt) {
  if (rt == NULL) return;
  if (rt->transport) rt->transport->ops->close(rt->transport);
  rt->transport = NULL;
  while (rt->sends) { /* the transport is closed: no answer comes any more */
    mb_send *t = rt->sends;
    rt->sends = t->next;
    free(t);
  }
  mb_correlate_free(rt->correlate);
  free_subscriptions(rt);
  mb_endpoint_cfg_free(&rt->cfg);
  free(rt->url);
  free(rt->url_override);
  if (rt->own_loop && rt->loop) ev_loop_destroy(rt->loop);
  free(rt);
}

int mb_runtime_configure(mb_runtime *rt, mb_endpoint_cfg *cfg, mb_err *err) {
  if (rt->configured) {
    mb_endpoint_cfg_free(cfg);
    return mb_err_set(err, MB_EINVAL,
                      "endpoint %s is already declared: a script declares one endpoint with "
                      "bus.endpoint{}; run another host process for another endpoint",
                      rt->cfg.name);
  }
  mb_endpoint_cfg_free(&rt->cfg);
  rt->cfg = *cfg;
  memset(cfg, 0, sizeof *cfg);
  rt->configured = 1;
  rt->topology_dirty = 1;
  return MB_OK;
}

int mb_runtime_subscribe(mb_runtime *rt, const char *type) {
  for (size_t i = 0; i < rt->n_subscriptions; i++)
    if (strcmp(rt->subscriptions[i], type) == 0) return MB_OK;
  char **grown = realloc(rt->subscriptions, (rt->n_subscriptions + 1) * sizeof *grown);
  if (grown == NULL) return MB_ENOMEM;
  rt->subscriptions = grown;
  if ((grown[rt->n_subscriptions] = strdup(type)) == NULL) return MB_ENOMEM;
  rt->n_subscriptions++;
  rt->topology_dirty = 1;
  return MB_OK;
}

const char *mb_runtime_origin(const mb_runtime *rt) {
  return rt->configured ? rt->cfg.name : "cli";
}

static const char *choose_url(const mb_runtime *rt) {
  if (rt->url_override) return rt->url_override;
  const char *env = getenv("MOONBUS_TRANSPORT");
  if (env && *env) return env;
  if (rt->cfg.transport) return rt->cfg.transport;
  return MB_DEFAULT_TRANSPORT;
}

static int open_transport(mb_runtime *rt, mb_err *err) {
  const char *url = choose_url(rt);
  int rc = mb_transport_open(&rt->transport, rt->loop, url, rt->instance, err);
  if (rc != MB_OK) return rc;
  if ((rt->url = strdup(url)) == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  return MB_OK;
}

static int declare(mb_runtime *rt, mb_err *err) {
  mb_topology topo = {
      .endpoint = rt->cfg.name,
      .error_queue = rt->cfg.error_queue,
      .audit_queue = rt->cfg.audit_queue,
      .subscriptions = (const char *const *)rt->subscriptions,
      .n_subscriptions = rt->n_subscriptions,
      .owned = (const char *const *)rt->cfg.publishes,
      .n_owned = rt->cfg.n_publishes,
      .classic_queue = rt->cfg.classic_queue,
  };
  int rc = rt->transport->ops->declare(rt->transport, &topo, err);
  if (rc == MB_OK) rt->topology_dirty = 0;
  return rc;
}

int mb_runtime_connect(mb_runtime *rt, mb_err *err) {
  if (rt->transport == NULL) {
    int rc = open_transport(rt, err);
    if (rc != MB_OK) return rc;
  }
  if (rt->configured && rt->topology_dirty) return declare(rt, err);
  return MB_OK;
}

int mb_runtime_start(mb_runtime *rt, mb_err *err) {
  if (!rt->configured)
    return mb_err_set(err, MB_EINVAL,
                      "the script declares no endpoint: call bus.endpoint{ name = \"...\" } "
                      "before handling messages");
  int rc = mb_runtime_connect(rt, err);
  if (rc != MB_OK || rt->consuming) return rc;
  rc = rt->transport->ops->consume(rt->transport, rt->cfg.name, rt->cfg.concurrency,
                                   mb_pipeline_deliver, rt, err);
  if (rc == MB_OK) rt->consuming = 1;
  return rc;
}

void mb_runtime_stop_consuming(mb_runtime *rt) {
  if (rt->transport && rt->consuming) rt->transport->ops->stop_consuming(rt->transport);
  rt->consuming = 0;
}

static void send_unlink(mb_send *t) {
  if (t->prev) t->prev->next = t->next;
  else t->rt->sends = t->next;
  if (t->next) t->next->prev = t->prev;
}

static void send_answered(void *ud, int status, const char *error) {
  mb_send *t = ud;
  int call = !t->forgotten;
  t->answered = t->forgotten = 1; /* t may be swept from here on: fn may send again */
  if (call) t->fn(t->ud, status, error);
}

/* Tickets whose answer came are freed here, never inside the transport's callback. */
static void sends_sweep(mb_runtime *rt) {
  for (mb_send *t = rt->sends, *next; t; t = next) {
    next = t->next;
    if (t->answered) {
      send_unlink(t);
      free(t);
    }
  }
}

void mb_send_forget(mb_send *ticket) {
  if (ticket) ticket->forgotten = 1;
}

int mb_runtime_send(mb_runtime *rt, mb_outgoing **msgs, size_t n, mb_done_fn fn, void *ud,
                    mb_send **ticket, mb_err *err) {
  *ticket = NULL;
  sends_sweep(rt);
  int rc = mb_runtime_connect(rt, err);
  mb_send *t = rc == MB_OK ? calloc(1, sizeof *t) : NULL;
  if (rc == MB_OK && t == NULL) rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK) {
    *t = (mb_send){.rt = rt, .fn = fn, .ud = ud, .next = rt->sends};
    if (rt->sends) rt->sends->prev = t;
    rt->sends = t;
    rc = rt->transport->ops->dispatch(rt->transport, (mb_outgoing *const *)msgs, n,
                                      send_answered, t, err);
    if (rc != MB_OK) t->answered = 1; /* never called back: free it */
    else if (!t->answered) *ticket = t;
  }
  for (size_t i = 0; i < n; i++) mb_outgoing_free(msgs[i]);
  return rc;
}

static void reply_arrived(void *ud, mb_delivery *d) {
  mb_runtime *rt = ud;
  long late = -1;
  if (mb_correlate_deliver(rt->correlate, d, &late) == MB_OK) return;
  const char *corr = d->env.correlation_id ? d->env.correlation_id : "(none)";
  if (late >= 0)
    mb_log(MB_WARN, rt->cfg.name, d->env.id, d->env.type, "reply to request %s came %ld ms "
           "after the request timed out: dropped", corr, late);
  else
    mb_log(MB_WARN, rt->cfg.name, d->env.id, d->env.type, "reply to request %s matches no "
           "request of this process: dropped", corr);
  mb_delivery_free(d);
}

int mb_runtime_reply_address(mb_runtime *rt, const char **address, mb_err *err) {
  if (rt->reply_address[0] == '\0') {
    int rc = mb_runtime_connect(rt, err);
    if (rc != MB_OK) return rc;
    if (rt->correlate == NULL && (rt->correlate = mb_correlate_new(rt->loop)) == NULL)
      return mb_err_set(err, MB_ENOMEM, "out of memory");
    rc = rt->transport->ops->listen_replies(rt->transport, reply_arrived, rt, rt->reply_address,
                                            sizeof rt->reply_address, err);
    if (rc != MB_OK) {
      rt->reply_address[0] = '\0';
      return rc;
    }
  }
  *address = rt->reply_address;
  return MB_OK;
}

typedef struct dispatch_wait {
  int done, status;
  mb_err *err;
} dispatch_wait;

static void dispatch_done(void *ud, int status, const char *error) {
  dispatch_wait *w = ud;
  w->done = 1;
  w->status = status;
  if (status != MB_OK) mb_err_set(w->err, status, "%s", error ? error : mb_strerror(status));
}

int mb_runtime_dispatch(mb_runtime *rt, mb_outgoing **msgs, size_t n, mb_err *err) {
  dispatch_wait w = {0, MB_OK, err};
  mb_send *ticket;
  int rc = mb_runtime_send(rt, msgs, n, dispatch_done, &w, &ticket, err);
  /* A transport that answers later (publisher confirms) is waited for on the loop. */
  while (rc == MB_OK && !w.done) ev_run(rt->loop, EVRUN_ONCE);
  return rc != MB_OK ? rc : w.status;
}
