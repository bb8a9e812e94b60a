/* ops.c — `moonbus ops` (DESIGN §10): wires the store, one ingester per queue (error,
 * audit, moonbus.ops), the background operations, the monitoring's checks, the alerts (the
 * events it owns and publishes as endpoint moonbus.ops, and --alert-webhook), the backlog
 * sampler of its /metrics, the HTTP API and UI, retention and the signals together on one
 * libev loop, and takes them down in order (HTTP, ingesters, which store what they
 * buffered, the monitor, the transport, alerts, operations, store).
 * Never: handles a message, or listens off loopback without a token (one is made and
 * written to a file readable only by its owner when none is given). */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "endpoint.h"
#include "ids.h"
#include "log.h"
#include "ops/alerts.h"
#include "ops/api.h"
#include "ops/monitor.h"
#include "ops/ops_metrics.h"
#include "url.h"

#define OPS_QUEUE "moonbus.ops"
#define DEFAULT_LISTEN "127.0.0.1:7070"
#define SWEEP_EVERY 3600.0 /* seconds between retention sweeps */
#define MAX_REQUEST_BODY (16u << 20)
#define N_QUEUES 3

typedef struct ops_service {
  struct ev_loop *loop;
  const mb_cli_opts *opts;
  const char *url;
  mb_transport *control; /* declares the queues, sends retried messages */
  mb_ops_store *store;
  mb_ops_ingest *ingest[N_QUEUES];
  const char *queues[N_QUEUES];
  mb_ops_work *work;
  mb_claim_store *claims; /* the bus's claim store, or NULL */
  mb_ops_api *api;
  mb_ops_monitor *monitor; /* liveness and SLA checks; the alerts' path */
  mb_ops_alerts *alerts;   /* publishes the alerts (events it owns) and POSTs them */
  mb_ops_metrics *metrics; /* the backlog sampler and the rest of /metrics */
  mb_http *http;
  char token[128];
  char project[4096]; /* the .moonbus folder: the nearest one up the tree, else ./.moonbus */
  char store_path[4200], token_path[4200];
  ev_timer sweep;
  ev_signal sigint, sigterm;
} ops_service;

/* --transport, else $MOONBUS_TRANSPORT, else the nearest .moonbus/bus.db (transport.h). */
static const char *transport_url(const mb_cli_opts *opts) {
  static char found[4200];
  const char *env = getenv("MOONBUS_TRANSPORT");
  if (opts->transport) return opts->transport;
  if (env && *env) return env;
  return mb_transport_default_url(found, sizeof found) == MB_OK ? found : MB_DEFAULT_TRANSPORT;
}

/* The token from --token-file (its first line), or "" when none was given. */
static int read_token(const char *path, char *out, size_t len, mb_err *err) {
  out[0] = '\0';
  if (path == NULL) return MB_OK;
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return mb_err_set(err, MB_EIO, "cannot read the token file %s: %s", path, strerror(errno));
  if (fgets(out, (int)len, f) == NULL) out[0] = '\0';
  fclose(f);
  out[strcspn(out, "\r\n")] = '\0';
  if (strlen(out) < 16)
    return mb_err_set(err, MB_EINVAL, "the token in %s is shorter than 16 characters", path);
  return MB_OK;
}

/* Where ops keeps its files by default: the .moonbus folder the bus is found in (as git
 * finds .git), else ./.moonbus; the store and the token file live there. */
static void find_project(ops_service *s) {
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd) == NULL || !mb_find_moonbus_dir(cwd, s->project, sizeof s->project))
    snprintf(s->project, sizeof s->project, "./%s", MB_PROJECT_DIR);
  snprintf(s->store_path, sizeof s->store_path, "%s/ops.db", s->project);
  snprintf(s->token_path, sizeof s->token_path, "%s/ops.token", s->project);
}

static const char *store_path(const ops_service *s) {
  return s->opts->store ? s->opts->store : s->store_path;
}

/* A new random token in the token file (mode 0600), for a service listening off loopback. */
static int make_token(ops_service *s, char *out, size_t len, mb_err *err) {
  uint8_t raw[24];
  mb_random_bytes(raw, sizeof raw);
  for (size_t i = 0; i < sizeof raw && 2 * i + 2 < len; i++)
    snprintf(out + 2 * i, 3, "%02x", raw[i]);
  mkdir(s->project, 0700);
  FILE *f = fopen(s->token_path, "w");
  if (f == NULL || chmod(s->token_path, 0600) != 0 || fprintf(f, "%s\n", out) < 0) {
    if (f) fclose(f);
    return mb_err_set(err, MB_EIO, "cannot write the token file %s: %s", s->token_path,
                      strerror(errno));
  }
  fclose(f);
  mb_log(MB_WARN, OPS_QUEUE, NULL, NULL,
         "listening off loopback without --token-file: changes need the token written to %s",
         s->token_path);
  return MB_OK;
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  ops_service *s = w->data;
  mb_err err;
  if (s->store->ops->sweep(s->store, (double)mb_now_usec() / 1e6, s->opts->audit_retention,
                           s->opts->error_retention, &err) != MB_OK)
    mb_log(MB_ERROR, OPS_QUEUE, NULL, NULL, "retention: %s", err.msg);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)revents;
  mb_log(MB_INFO, OPS_QUEUE, NULL, NULL, "signal %d: stopping", w->signum);
  ev_break(loop, EVBREAK_ALL);
}

/* The queues it reads exist before it reads them: declared as an endpoint of its own, the
 * one that owns (publishes) the alert events, so endpoints can handle them. */
static int declare(ops_service *s, mb_err *err) {
  mb_topology topo = {.endpoint = OPS_QUEUE,
                      .error_queue = s->queues[0],
                      .audit_queue = s->queues[1],
                      .owned = mb_ops_alert_types,
                      .n_owned = MB_OPS_N_ALERT_TYPES};
  int rc = mb_transport_open(&s->control, s->loop, s->url, "moonbus-ops", err);
  if (rc == MB_OK) rc = s->control->ops->declare(s->control, &topo, err);
  return rc;
}

static int start_ingesters(ops_service *s, mb_err *err) {
  static const mb_ops_source sources[N_QUEUES] = {MB_OPS_ERROR, MB_OPS_AUDIT, MB_OPS_REPORT};
  int rc = MB_OK;
  for (int i = 0; rc == MB_OK && i < N_QUEUES; i++)
    rc = mb_ops_ingest_start(&s->ingest[i], s->loop, s->url, "moonbus-ops", s->queues[i],
                             sources[i], s->store, err);
  return rc;
}

/* The host part of a listen address ("127.0.0.1:7070", "[::1]:7070") into out. */
static void host_of(const char *listen, char *out, size_t len) {
  const char *colon = strrchr(listen, ':');
  snprintf(out, len, "%.*s", (int)(colon ? colon - listen : (long)strlen(listen)), listen);
}

static const char *listen_address(const ops_service *s) {
  return s->opts->listen ? s->opts->listen : DEFAULT_LISTEN;
}

/* The HTTP handler until the API exists (it is made once the listener says whether it is
 * on loopback): nothing is served before. */
static void handle(void *ud, mb_http_req *req) {
  ops_service *s = ud;
  if (s->api) mb_ops_api_handle(s->api, req);
  else mb_http_respond(req, 503, "text/plain", "starting", 8, NULL);
}

static int start_http(ops_service *s, char *shown, size_t len, mb_err *err) {
  int rc = mb_http_start(&s->http, s->loop, listen_address(s), MAX_REQUEST_BODY, handle, s, err);
  if (rc != MB_OK) return rc;
  int loopback = mb_http_listens_on_loopback(s->http);
  if (!loopback && s->token[0] == '\0') rc = make_token(s, s->token, sizeof s->token, err);
  mb_url_redact(s->url, shown, len);
  mb_ops_api_cfg cfg = {s->store,  s->work,  s->control,    s->token[0] ? s->token : NULL,
                        loopback,  shown,    store_path(s), s->ingest,
                        s->queues, N_QUEUES, s->metrics};
  if (rc == MB_OK && (s->api = mb_ops_api_new(&cfg)) == NULL)
    rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  return rc;
}

static int start(ops_service *s, char *shown, size_t len, mb_err *err) {
  int rc = read_token(s->opts->token_file, s->token, sizeof s->token, err);
  if (rc == MB_OK && s->opts->store == NULL) mkdir(s->project, 0700);
  if (rc == MB_OK) rc = mb_ops_store_open(&s->store, store_path(s), err);
  if (rc == MB_OK) rc = declare(s, err);
  if (rc == MB_OK)
    rc = mb_ops_alerts_new(&s->alerts, s->loop, s->control, s->opts->alert_webhook, err);
  const char *databus = s->opts->databus ? s->opts->databus : getenv("MOONBUS_DATABUS");
  if (rc == MB_OK) rc = mb_claim_open(&s->claims, databus, s->url, err);
  if (rc == MB_OK && mb_ops_work_new(&s->work, s->loop, s->store, s->control, s->claims) != MB_OK)
    rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK) rc = mb_ops_monitor_start(&s->monitor, s->loop, s->store, s->alerts, err);
  if (rc == MB_OK) rc = start_ingesters(s, err);
  mb_ops_metrics_cfg mcfg = {s->loop,   s->control, s->store, store_path(s),
                             s->queues, N_QUEUES,   s->alerts};
  if (rc == MB_OK && (s->metrics = mb_ops_metrics_new(&mcfg)) == NULL)
    rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK) rc = start_http(s, shown, len, err);
  return rc;
}

static void stop(ops_service *s) {
  mb_http_stop(s->http);
  for (int i = 0; i < N_QUEUES; i++) mb_ops_ingest_stop(s->ingest[i]);
  mb_ops_metrics_free(s->metrics);
  mb_ops_monitor_stop(s->monitor); /* after the ingesters: their last batch raises through it */
  if (s->control) s->control->ops->close(s->control);
  mb_ops_alerts_free(s->alerts); /* after the transport: no publish completes any more */
  mb_ops_work_free(s->work);
  mb_claim_close(s->claims);
  mb_ops_api_free(s->api);
  if (s->store) s->store->ops->close(s->store);
}

static void watch(ops_service *s) {
  ev_timer_init(&s->sweep, on_sweep, 0.0, SWEEP_EVERY);
  s->sweep.data = s;
  ev_timer_start(s->loop, &s->sweep);
  ev_signal_init(&s->sigint, on_signal, SIGINT);
  ev_signal_init(&s->sigterm, on_signal, SIGTERM);
  ev_signal_start(s->loop, &s->sigint);
  ev_signal_start(s->loop, &s->sigterm);
}

static void unwatch(ops_service *s) {
  ev_timer_stop(s->loop, &s->sweep);
  ev_signal_stop(s->loop, &s->sigint);
  ev_signal_stop(s->loop, &s->sigterm);
}

int mb_cli_ops(const mb_cli_opts *opts) {
  ops_service s = {.loop = EV_DEFAULT, .opts = opts, .url = transport_url(opts)};
  s.queues[0] = opts->queue ? opts->queue : MB_DEFAULT_ERROR_QUEUE;
  s.queues[1] = opts->audit_queue ? opts->audit_queue : MB_DEFAULT_AUDIT_QUEUE;
  s.queues[2] = OPS_QUEUE;
  find_project(&s);
  char shown[512];
  mb_err err;
  int rc = start(&s, shown, sizeof shown, &err);
  if (rc == MB_OK) {
    char host[256];
    host_of(listen_address(&s), host, sizeof host);
    mb_log(MB_INFO, OPS_QUEUE, NULL, NULL,
           "serving http://%s:%d/ (transport %s, store %s; reading queues %s, %s, %s)",
           strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1" : host, mb_http_port(s.http), shown,
           store_path(&s), s.queues[0], s.queues[1], s.queues[2]);
    watch(&s);
    ev_run(s.loop, 0);
    unwatch(&s);
  } else mb_cli_fail(err.msg);
  stop(&s);
  return rc == MB_OK ? 0 : 1;
}
