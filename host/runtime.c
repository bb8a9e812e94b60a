/* runtime.c — one running endpoint instance (see runtime.h): owns the loop (in module
 * mode), the transport handle and its URL, the declaration, the pipeline, the outbound
 * tickets and the table of pending requests; creates and frees each of them. Also the
 * claim store (claim.h) and its hourly sweep: the endpoint's databus, else
 * $MOONBUS_DATABUS, else the bus database of a sqlite:// transport, else none (RabbitMQ
 * without a databus: the claim check is off, said once at start). And the store behind
 * bus.shared (shared.h): it lives as long as the runtime, across reloads, bounded by the
 * running declaration's shared_memory.
 * Never: runs Lua or decides what happens to a message (pipeline.c does). */
#include "runtime.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "clock.h"
#include "correlate.h"
#include "declaration.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "shared.h"

#define SWEEP_EVERY 3600.0 /* seconds between sweeps of old claims ($MOONBUS_CLAIM_SWEEP) */

struct mb_runtime {
  struct ev_loop *loop;
  int own_loop;            /* created by the runtime (module mode): destroyed with it */
  mb_transport *transport; /* NULL until connected */
  char *url;               /* the transport URL in use (credentials included: never log it) */
  char *url_override;      /* --transport / MOONBUS_TRANSPORT, beats the script's URL */
  char default_url[4200];  /* the nearest .moonbus/bus.db (mb_transport_default_url) */
  char instance[96];
  char host[256];
  mb_declaration *decl;
  mb_pipeline *pipeline;
  mb_outbound *outbound;
  int consuming;
  struct mb_correlate *correlate; /* requests waiting for replies; NULL until the first */
  char reply_address[300];        /* where replies to them come back ("" until then) */
  mb_claim_store *claims;         /* NULL: no claim store (claim check off) */
  ev_timer sweep;                 /* removes claims past their retention */
  mb_shared *shared;              /* bus.shared's dictionaries: outlive the generations */
  mb_metrics *metrics;            /* the endpoint's figures (metrics.h); NULL until configured */
};

static void name_instance(mb_runtime *rt, const char *instance) {
  if (gethostname(rt->host, sizeof rt->host - 1) != 0) strcpy(rt->host, "localhost");
  if (instance) {
    snprintf(rt->instance, sizeof rt->instance, "%s", instance);
    return;
  }
  char id[MB_ID_LEN + 1];
  mb_uuidv7(id);
  snprintf(rt->instance, sizeof rt->instance, "%.48s-%ld-%.8s", rt->host, (long)getpid(),
           id + 28);
}

mb_runtime *mb_runtime_new(struct ev_loop *loop, const char *url_override, const char *instance) {
  mb_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL) return NULL;
  rt->loop = loop;
  if (loop == NULL) {
    rt->loop = ev_loop_new(EVFLAG_AUTO);
    rt->own_loop = 1;
    if (rt->loop == NULL) goto fail;
  }
  name_instance(rt, instance);
  if (mb_transport_default_url(rt->default_url, sizeof rt->default_url) != MB_OK)
    snprintf(rt->default_url, sizeof rt->default_url, "%s", MB_DEFAULT_TRANSPORT);
  if ((rt->decl = mb_declaration_new()) == NULL) goto fail;
  if ((rt->pipeline = mb_pipeline_new(mb_declaration_cfg(rt->decl), rt->host)) == NULL) goto fail;
  if ((rt->outbound = mb_outbound_new(rt->loop)) == NULL) goto fail;
  if ((rt->shared = mb_shared_new(MB_DEFAULT_SHARED_MEMORY)) == NULL) goto fail;
  if (url_override && (rt->url_override = strdup(url_override)) == NULL) goto fail;
  return rt;
fail:
  mb_runtime_free(rt);
  return NULL;
}

void mb_runtime_free(mb_runtime *rt) {
  if (rt == NULL) return;
  mb_pipeline_free(rt->pipeline); /* its jobs go back to their queues first */
  if (ev_is_active(&rt->sweep)) {
    ev_ref(rt->loop); /* it was unref'd when started */
    ev_timer_stop(rt->loop, &rt->sweep);
  }
  mb_claim_close(rt->claims);
  if (rt->transport) rt->transport->ops->close(rt->transport);
  rt->transport = NULL;
  mb_outbound_free(rt->outbound); /* the transport is closed: no answer comes any more */
  mb_correlate_free(rt->correlate);
  mb_declaration_free(rt->decl);
  mb_shared_free(rt->shared);
  mb_metrics_free(rt->metrics);
  free(rt->url);
  free(rt->url_override);
  if (rt->own_loop && rt->loop) ev_loop_destroy(rt->loop);
  free(rt);
}

/* --- the declaration -------------------------------------------------------------------- */

/* What follows the running declaration (a staged one waits for its adopt): the bound of
 * the shared store, and the figures, made once the endpoint has its name (not at all with
 * MOONBUS_METRICS=off, which make bench uses to measure what counting costs). */
static void follow_declaration(mb_runtime *rt) {
  mb_shared_set_limit(rt->shared, mb_runtime_cfg(rt)->shared_memory);
  const char *name = mb_runtime_endpoint(rt), *off = getenv("MOONBUS_METRICS");
  if (rt->metrics || name == NULL || (off && strcmp(off, "off") == 0)) return;
  if ((rt->metrics = mb_metrics_new(name)) == NULL)
    mb_log(MB_WARN, name, NULL, NULL, "out of memory: this endpoint counts no metrics");
  mb_pipeline_set_metrics(rt->pipeline, rt->metrics);
}

int mb_runtime_configure(mb_runtime *rt, mb_endpoint_cfg *cfg, mb_err *err) {
  int rc = mb_declaration_configure(rt->decl, cfg, err);
  if (rc == MB_OK) follow_declaration(rt);
  return rc;
}

int mb_runtime_subscribe(mb_runtime *rt, const char *type) {
  return mb_declaration_subscribe(rt->decl, type);
}

int mb_runtime_stage(mb_runtime *rt) { return mb_declaration_stage(rt->decl); }
void mb_runtime_unstage(mb_runtime *rt) { mb_declaration_unstage(rt->decl); }
int mb_runtime_staging(const mb_runtime *rt) { return mb_declaration_staging(rt->decl); }

static int declare(mb_runtime *rt, mb_err *err) {
  mb_topology topo;
  mb_declaration_topology(rt->decl, &topo);
  int rc = rt->transport->ops->declare(rt->transport, &topo, err);
  if (rc == MB_OK) mb_declaration_declared(rt->decl);
  return rc;
}

int mb_runtime_adopt(mb_runtime *rt, mb_err *err) {
  int rc = mb_declaration_adopt(rt->decl, err);
  if (rc == MB_OK && rt->transport && mb_declaration_dirty(rt->decl)) rc = declare(rt, err);
  if (rc == MB_OK) {
    mb_declaration_log_changes(rt->decl);
  } else if (!mb_declaration_staging(rt->decl)) { /* adopted, but the transport refused */
    mb_declaration_revert(rt->decl); /* the old topology, declared again at the next connect */
    mb_err again;
    if (rt->transport && declare(rt, &again) != MB_OK)
      mb_log(MB_WARN, mb_runtime_endpoint(rt), NULL, NULL,
             "reload: the topology could not be "
             "put back yet: %s",
             again.msg);
  }
  mb_declaration_unstage(rt->decl);
  follow_declaration(rt);
  return rc;
}

const char *mb_runtime_origin(const mb_runtime *rt) {
  const char *name = mb_runtime_endpoint(rt);
  return name ? name : "cli";
}

const char *mb_runtime_transport_url(const mb_runtime *rt) {
  if (rt->url_override) return rt->url_override;
  const char *env = getenv("MOONBUS_TRANSPORT");
  if (env && *env) return env;
  const mb_endpoint_cfg *cfg = mb_runtime_cfg(rt);
  if (cfg->transport) return cfg->transport;
  return rt->default_url;
}

int mb_runtime_set_url_override(mb_runtime *rt, const char *url) {
  char *copy = url ? strdup(url) : NULL;
  if (url && copy == NULL) return MB_ENOMEM;
  free(rt->url_override);
  rt->url_override = copy;
  return MB_OK;
}

/* --- the transport ---------------------------------------------------------------------- */

/* The claim store: the endpoint's databus, $MOONBUS_DATABUS, or a sqlite:// bus itself. */
static int open_claims(mb_runtime *rt, const char *url, mb_err *err) {
  const mb_endpoint_cfg *cfg = mb_runtime_cfg(rt);
  const char *databus = cfg->databus ? cfg->databus : getenv("MOONBUS_DATABUS");
  int rc = mb_claim_open(&rt->claims, databus, url, err);
  if (rc == MB_OK && rt->claims == NULL && mb_runtime_configured(rt) && cfg->claim_check)
    mb_log(MB_INFO, cfg->name, NULL, NULL,
           "claim check is off: this transport has no store for large bodies (set databus = "
           "\"file:///dir\" in bus.endpoint{} or $MOONBUS_DATABUS); bodies over max_body "
           "(%zu bytes) are refused",
           cfg->max_body);
  if (rc != MB_OK) return rc;
  mb_pipeline_set_claims(rt->pipeline, rt->claims);
  if (rt->claims && mb_runtime_configured(rt) && cfg->claim_check)
    mb_log(MB_INFO, cfg->name, NULL, NULL,
           "claim check: bodies over %zu bytes go to %s (kept %g days; max_body %zu)",
           cfg->claim_check, rt->claims->where, cfg->claim_retention, mb_runtime_max_body(rt));
  return MB_OK;
}

static int open_transport(mb_runtime *rt, mb_err *err) {
  const char *url = mb_runtime_transport_url(rt);
  int rc = mb_transport_open(&rt->transport, rt->loop, url, rt->instance, err);
  if (rc == MB_OK) rc = open_claims(rt, url, err);
  if (rc != MB_OK) return rc;
  if ((rt->url = strdup(url)) == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  mb_pipeline_set_transport(rt->pipeline, rt->transport);
  return MB_OK;
}

int mb_runtime_connect(mb_runtime *rt, mb_err *err) {
  if (rt->transport == NULL) {
    int rc = open_transport(rt, err);
    if (rc != MB_OK) return rc;
  }
  if (mb_runtime_configured(rt) && mb_declaration_dirty(rt->decl)) return declare(rt, err);
  return MB_OK;
}

static void sweep_claims(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  mb_runtime *rt = w->data;
  const mb_endpoint_cfg *cfg = mb_runtime_cfg(rt);
  int64_t before = mb_now_usec() - (int64_t)(cfg->claim_retention * 86400e6);
  size_t removed = 0;
  mb_err err;
  if (rt->claims->ops->sweep(rt->claims, before, &removed, &err) != MB_OK)
    mb_log(MB_WARN, cfg->name, NULL, NULL, "claims could not be swept: %s", err.msg);
  else if (removed)
    mb_log(MB_INFO, cfg->name, NULL, NULL, "%zu claims older than %g days removed from %s",
           removed, cfg->claim_retention, rt->claims->where);
}

/* Sweeps the claim store every SWEEP_EVERY seconds (the first after a minute at most). */
static void start_sweep(mb_runtime *rt) {
  const char *env = getenv("MOONBUS_CLAIM_SWEEP");
  double every = env && atof(env) > 0 ? atof(env) : SWEEP_EVERY;
  if (rt->claims == NULL || ev_is_active(&rt->sweep)) return;
  ev_timer_init(&rt->sweep, sweep_claims, every < 60 ? every : 60, every);
  rt->sweep.data = rt;
  ev_timer_start(rt->loop, &rt->sweep);
  ev_unref(rt->loop); /* the sweep alone does not keep a loop running */
}

int mb_runtime_start(mb_runtime *rt, mb_err *err) {
  if (!mb_runtime_configured(rt))
    return mb_err_set(err, MB_EINVAL,
                      "the script declares no endpoint: call bus.endpoint{ name = \"...\" } "
                      "before handling messages");
  int rc = mb_runtime_connect(rt, err);
  if (rc != MB_OK || rt->consuming) return rc;
  const mb_endpoint_cfg *cfg = mb_runtime_cfg(rt);
  rc = rt->transport->ops->consume(rt->transport, cfg->name, cfg->concurrency,
                                   mb_pipeline_deliver, rt->pipeline, err);
  if (rc == MB_OK) rt->consuming = 1;
  if (rc == MB_OK) start_sweep(rt);
  return rc;
}

void mb_runtime_stop_consuming(mb_runtime *rt) {
  if (rt->transport && rt->consuming) rt->transport->ops->stop_consuming(rt->transport);
  rt->consuming = 0;
}

void mb_runtime_set_runner(mb_runtime *rt, const mb_runner *runner, void *ud) {
  mb_pipeline_set_runner(rt->pipeline, runner, ud);
}

/* --- sends outside handlers, replies ---------------------------------------------------- */

/* Connects for a send; on failure the messages (ours now) are freed. */
static int connect_to_send(mb_runtime *rt, mb_outgoing **msgs, size_t n, mb_err *err) {
  int rc = mb_runtime_connect(rt, err);
  if (rc != MB_OK)
    for (size_t i = 0; i < n; i++) mb_outgoing_free(msgs[i]);
  return rc;
}

int mb_runtime_send(mb_runtime *rt, mb_outgoing **msgs, size_t n, mb_done_fn fn, void *ud,
                    mb_send **ticket, mb_err *err) {
  *ticket = NULL;
  int rc = connect_to_send(rt, msgs, n, err);
  if (rc != MB_OK) return rc;
  return mb_outbound_send(rt->outbound, rt->transport, msgs, n, fn, ud, ticket, err);
}

int mb_runtime_dispatch(mb_runtime *rt, mb_outgoing **msgs, size_t n, mb_err *err) {
  int rc = connect_to_send(rt, msgs, n, err);
  if (rc != MB_OK) return rc;
  return mb_outbound_dispatch(rt->outbound, rt->transport, msgs, n, err);
}

/* A reply whose body is claimed gets it back before its requester sees it. */
static void fetch_reply_claim(mb_runtime *rt, mb_delivery *d) {
  char *body;
  size_t len;
  mb_err err;
  if (mb_claim_key(&d->env.headers) == NULL) return;
  if (mb_claim_fetch(rt->claims, &d->env.headers, mb_runtime_max_body(rt), &body, &len, &err) !=
      MB_OK) {
    mb_log_msg(MB_ERROR, mb_runtime_endpoint(rt), mb_envelope_log_ids(&d->env), "reply: %s",
               err.msg);
    return;
  }
  free(d->env.body);
  d->env.body = body;
  d->env.body_len = len;
}

static void reply_arrived(void *ud, mb_delivery *d) {
  mb_runtime *rt = ud;
  long late = -1;
  fetch_reply_claim(rt, d);
  if (mb_correlate_deliver(rt->correlate, d, &late) == MB_OK) return;
  const char *corr = d->env.correlation_id ? d->env.correlation_id : "(none)";
  if (late >= 0)
    mb_log_msg(MB_WARN, mb_runtime_endpoint(rt), mb_envelope_log_ids(&d->env),
               "reply to request %s came "
               "%ld ms after the request timed out: dropped",
               corr, late);
  else
    mb_log_msg(MB_WARN, mb_runtime_endpoint(rt), mb_envelope_log_ids(&d->env),
               "reply to request %s "
               "matches no request of this process: dropped",
               corr);
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

/* --- reads ------------------------------------------------------------------------------ */

struct ev_loop *mb_runtime_loop(const mb_runtime *rt) {
  return rt->loop;
}
const mb_endpoint_cfg *mb_runtime_cfg(const mb_runtime *rt) {
  return mb_declaration_cfg(rt->decl);
}
int mb_runtime_configured(const mb_runtime *rt) { return mb_declaration_configured(rt->decl); }
const char *mb_runtime_endpoint(const mb_runtime *rt) {
  return mb_runtime_configured(rt) ? mb_runtime_cfg(rt)->name : NULL;
}
size_t mb_runtime_n_subscriptions(const mb_runtime *rt) {
  return mb_declaration_n_subscriptions(rt->decl);
}
const char *mb_runtime_subscription(const mb_runtime *rt, size_t i) {
  return mb_declaration_subscription(rt->decl, i);
}
mb_transport *mb_runtime_transport(const mb_runtime *rt) { return rt->transport; }
const char *mb_runtime_url(const mb_runtime *rt) { return rt->url; }
const char *mb_runtime_instance(const mb_runtime *rt) { return rt->instance; }
const char *mb_runtime_host(const mb_runtime *rt) { return rt->host; }
struct mb_correlate *mb_runtime_correlate(const mb_runtime *rt) {
  return rt->correlate;
}
mb_pipeline *mb_runtime_pipeline(const mb_runtime *rt) { return rt->pipeline; }
mb_claim_store *mb_runtime_claims(const mb_runtime *rt) { return rt->claims; }
size_t mb_runtime_max_body(const mb_runtime *rt) {
  return mb_endpoint_max_body(mb_runtime_cfg(rt), rt->claims != NULL);
}
mb_pipeline_stats mb_runtime_stats(const mb_runtime *rt) {
  return mb_pipeline_stats_of(rt->pipeline);
}
struct mb_shared *mb_runtime_shared(const mb_runtime *rt) {
  return rt->shared;
}
mb_metrics *mb_runtime_metrics(const mb_runtime *rt) { return rt->metrics; }
