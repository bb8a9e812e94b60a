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
#include "ids.h"
#include "log.h"
#include "pipeline.h"

struct mb_send {
  mb_runtime *rt;
  mb_done_fn fn;
  void *ud;
  int forgotten, answered;
  mb_send *prev, *next;
};

/* What a script declares, kept apart while a reload loads it (runtime.h). */
struct mb_staged {
  mb_endpoint_cfg cfg;
  int configured;
  char **subscriptions;
  size_t n_subscriptions;
};

static void free_types(char **types, size_t n) {
  for (size_t i = 0; i < n; i++) free(types[i]);
  free(types);
}

static int has_type(char *const *types, size_t n, const char *type) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(types[i], type) == 0) return 1;
  return 0;
}

/* Adds type to the list unless it is there. 1 if added, 0 if there, MB_ENOMEM. */
static int add_type(char ***types, size_t *n, const char *type) {
  if (has_type(*types, *n, type)) return 0;
  char **grown = realloc(*types, (*n + 1) * sizeof *grown);
  if (grown == NULL) return MB_ENOMEM;
  *types = grown;
  if ((grown[*n] = strdup(type)) == NULL) return MB_ENOMEM;
  (*n)++;
  return 1;
}

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
  mb_runtime_unstage(rt);
  free_types(rt->subscriptions, rt->n_subscriptions);
  mb_endpoint_cfg_free(&rt->cfg);
  free(rt->url);
  free(rt->url_override);
  if (rt->own_loop && rt->loop) ev_loop_destroy(rt->loop);
  free(rt);
}

int mb_runtime_configure(mb_runtime *rt, mb_endpoint_cfg *cfg, mb_err *err) {
  mb_endpoint_cfg *slot = rt->staged ? &rt->staged->cfg : &rt->cfg;
  int *configured = rt->staged ? &rt->staged->configured : &rt->configured;
  if (*configured) {
    mb_endpoint_cfg_free(cfg);
    return mb_err_set(err, MB_EINVAL,
                      "endpoint %s is already declared: a script declares one endpoint with "
                      "bus.endpoint{}; run another host process for another endpoint",
                      slot->name);
  }
  mb_endpoint_cfg_free(slot);
  *slot = *cfg;
  memset(cfg, 0, sizeof *cfg);
  *configured = 1;
  if (!rt->staged) rt->topology_dirty = 1;
  return MB_OK;
}

int mb_runtime_subscribe(mb_runtime *rt, const char *type) {
  int added = rt->staged ? add_type(&rt->staged->subscriptions, &rt->staged->n_subscriptions, type)
                         : add_type(&rt->subscriptions, &rt->n_subscriptions, type);
  if (added < 0) return added;
  if (added && !rt->staged) rt->topology_dirty = 1;
  return MB_OK;
}

int mb_runtime_stage(mb_runtime *rt) {
  mb_runtime_unstage(rt);
  rt->staged = calloc(1, sizeof *rt->staged);
  if (rt->staged == NULL) return MB_ENOMEM;
  if (mb_endpoint_cfg_defaults(&rt->staged->cfg) != MB_OK) {
    mb_runtime_unstage(rt);
    return MB_ENOMEM;
  }
  return MB_OK;
}

void mb_runtime_unstage(mb_runtime *rt) {
  if (rt->staged == NULL) return;
  mb_endpoint_cfg_free(&rt->staged->cfg);
  free_types(rt->staged->subscriptions, rt->staged->n_subscriptions);
  free(rt->staged);
  rt->staged = NULL;
}

static int same_text(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* What makes the staged declaration another endpoint rather than a new version of this one. */
static int check_staged(const mb_runtime *rt, const mb_staged *st, mb_err *err) {
  if (!st->configured)
    return mb_err_set(err, MB_EINVAL, "the new script declares no endpoint: it must call "
                      "bus.endpoint{ name = \"%s\" }", rt->cfg.name);
  if (strcmp(st->cfg.name, rt->cfg.name) != 0)
    return mb_err_set(err, MB_EINVAL, "the new script declares endpoint %s, but this host runs "
                      "%s: that is another endpoint, not a reload (start a host for %s, or put "
                      "the name back)", st->cfg.name, rt->cfg.name, st->cfg.name);
  if (!same_text(st->cfg.transport, rt->cfg.transport))
    return mb_err_set(err, MB_EINVAL, "the new script changes bus.endpoint{ transport = ... }: a "
                      "reload keeps its connection; restart the host to change the transport");
  return MB_OK;
}

/* What a reload cannot change in place is kept, with a warning. */
static void keep_fixed(const mb_runtime *rt, mb_staged *st) {
  if (st->cfg.concurrency != rt->cfg.concurrency)
    mb_log(MB_WARN, rt->cfg.name, NULL, NULL, "reload: concurrency %u -> %u takes effect when "
           "the host restarts (the consumer keeps its prefetch)", rt->cfg.concurrency,
           st->cfg.concurrency);
  if (st->cfg.classic_queue != rt->cfg.classic_queue)
    mb_log(MB_WARN, rt->cfg.name, NULL, NULL, "reload: queue_type of an existing queue cannot "
           "change; the queue stays %s", rt->cfg.classic_queue ? "classic" : "quorum");
  st->cfg.concurrency = rt->cfg.concurrency;
  st->cfg.classic_queue = rt->cfg.classic_queue;
}

static int same_types(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (!has_type(b, nb, a[i])) return 0;
  return 1;
}

/* 1 if the staged declaration needs no change of the topology (most edits of a handler). */
static int same_topology(const mb_runtime *rt, const mb_staged *st) {
  return same_text(rt->cfg.error_queue, st->cfg.error_queue) &&
         same_text(rt->cfg.audit_queue, st->cfg.audit_queue) &&
         same_types(rt->subscriptions, rt->n_subscriptions, st->subscriptions,
                    st->n_subscriptions) &&
         same_types(rt->cfg.publishes, rt->cfg.n_publishes, st->cfg.publishes,
                    st->cfg.n_publishes);
}

/* Exchanges the running declaration with the staged one. */
static void swap_declaration(mb_runtime *rt) {
  mb_staged *st = rt->staged;
  mb_endpoint_cfg cfg = rt->cfg;
  rt->cfg = st->cfg;
  st->cfg = cfg;
  char **subs = rt->subscriptions;
  size_t n = rt->n_subscriptions;
  rt->subscriptions = st->subscriptions;
  rt->n_subscriptions = st->n_subscriptions;
  st->subscriptions = subs;
  st->n_subscriptions = n;
}

static int declare(mb_runtime *rt, mb_err *err);

/* Logs the events handled now that were not before, and the reverse. */
static void log_subscription_changes(const mb_runtime *rt, const mb_staged *before) {
  for (size_t i = 0; i < rt->n_subscriptions; i++)
    if (!has_type(before->subscriptions, before->n_subscriptions, rt->subscriptions[i]))
      mb_log(MB_INFO, rt->cfg.name, NULL, NULL, "reload: now subscribed to %s",
             rt->subscriptions[i]);
  for (size_t i = 0; i < before->n_subscriptions; i++)
    if (!has_type(rt->subscriptions, rt->n_subscriptions, before->subscriptions[i]))
      mb_log(MB_INFO, rt->cfg.name, NULL, NULL, "reload: no longer subscribed to %s",
             before->subscriptions[i]);
}

int mb_runtime_adopt(mb_runtime *rt, mb_err *err) {
  int rc = rt->staged ? check_staged(rt, rt->staged, err)
                      : mb_err_set(err, MB_EINVAL, "nothing was staged");
  if (rc == MB_OK) {
    keep_fixed(rt, rt->staged);
    int unchanged = same_topology(rt, rt->staged) && !rt->topology_dirty;
    swap_declaration(rt);
    if (!unchanged) rt->topology_dirty = 1;
    if (rt->transport && rt->topology_dirty) rc = declare(rt, err);
    if (rc != MB_OK) {
      swap_declaration(rt); /* the old topology, declared again at the next connect */
      mb_err again;
      if (rt->transport && declare(rt, &again) != MB_OK)
        mb_log(MB_WARN, rt->cfg.name, NULL, NULL, "reload: the topology could not be put "
               "back yet: %s", again.msg);
    } else {
      log_subscription_changes(rt, rt->staged);
    }
  }
  mb_runtime_unstage(rt);
  return rc;
}

const char *mb_runtime_origin(const mb_runtime *rt) {
  return rt->configured ? rt->cfg.name : "cli";
}

const char *mb_runtime_transport_url(const mb_runtime *rt) {
  if (rt->url_override) return rt->url_override;
  const char *env = getenv("MOONBUS_TRANSPORT");
  if (env && *env) return env;
  if (rt->cfg.transport) return rt->cfg.transport;
  return MB_DEFAULT_TRANSPORT;
}

static int open_transport(mb_runtime *rt, mb_err *err) {
  const char *url = mb_runtime_transport_url(rt);
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
      .max_body = rt->cfg.max_body,
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
