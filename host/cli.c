/* cli.c — the moonbus commands (see cli.h): `run` wires the loop, the runtime, the Lua
 * state and the signals together and shuts down in order (consumers and timers, then
 * handlers drain, then the Lua state, then the transport); `send`/`publish` put one
 * message on the bus from the shell; `request` sends one and prints the reply.
 * Never: handles a message itself. */
#include "cli.h"

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"
#include "correlate.h"
#include "errorq.h"
#include "ids.h"
#include "log.h"
#include "metrics_http.h"
#include "reload.h"
#include "reporter.h"
#include "runtime.h"
#include "url.h"
#include "watchdog.h"

/* How long the state before a reload may take to finish its handlers in flight: longer
 * than bus.request's default timeout, so that a handler waiting for a reply gets it.
 * MOONBUS_RELOAD_DRAIN (seconds) overrides it. */
#define RELOAD_DRAIN_SECONDS 60.0

static double reload_drain_seconds(void) {
  const char *env = getenv("MOONBUS_RELOAD_DRAIN");
  char *end;
  double s = env ? strtod(env, &end) : 0;
  if (env && *env && *end == '\0' && s > 0) return s;
  if (env && *env)
    mb_log(MB_WARN, NULL, NULL, NULL,
           "MOONBUS_RELOAD_DRAIN=%s is not a positive number of "
           "seconds: using %.0f",
           env, RELOAD_DRAIN_SECONDS);
  return RELOAD_DRAIN_SECONDS;
}

typedef struct run_state {
  mb_runtime *rt;
  mb_reload *reload;
  mb_reporter *reporter;    /* moonbus.ops.Report, queue samples */
  mb_metrics_http *metrics; /* --metrics: NULL without */
  ev_signal sigint, sigterm;
  ev_timer deadline; /* the drain at shutdown ends by then */
  double drain_seconds;
  int stopping;
} run_state;

static const char *endpoint_of(const run_state *s) { return mb_runtime_endpoint(s->rt); }
static unsigned in_flight(const run_state *s) { return mb_runtime_stats(s->rt).in_flight; }

/* The last job in flight ended while stopping (the pipeline's idle callback). */
static void drained(void *ud) {
  run_state *s = ud;
  ev_break(mb_runtime_loop(s->rt), EVBREAK_ALL);
}

static void drain_deadline(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  run_state *s = w->data;
  mb_log(MB_WARN, endpoint_of(s), NULL, NULL,
         "stopping with %u handlers still in flight: their messages will be redelivered",
         in_flight(s));
  ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)revents;
  run_state *s = w->data;
  if (s->stopping) {
    mb_log(MB_WARN, endpoint_of(s), NULL, NULL, "second signal: stopping now");
    ev_break(loop, EVBREAK_ALL);
    return;
  }
  s->stopping = 1;
  mb_log(MB_INFO, endpoint_of(s), NULL, NULL, "signal %d: stopping (%u in flight)", w->signum,
         in_flight(s));
  mb_runtime_stop_consuming(s->rt);
  mb_reload_stop(s->reload);
  if (in_flight(s) == 0) {
    ev_break(loop, EVBREAK_ALL);
    return;
  }
  mb_pipeline_on_idle(mb_runtime_pipeline(s->rt), drained, s);
  ev_timer_set(&s->deadline, s->drain_seconds, 0.);
  ev_timer_start(loop, &s->deadline);
}

static void watch_signals(struct ev_loop *loop, run_state *s, double drain_seconds) {
  ev_signal_init(&s->sigint, on_signal, SIGINT);
  ev_signal_init(&s->sigterm, on_signal, SIGTERM);
  s->sigint.data = s->sigterm.data = s;
  ev_signal_start(loop, &s->sigint);
  ev_signal_start(loop, &s->sigterm);
  ev_init(&s->deadline, drain_deadline);
  s->deadline.data = s;
  s->drain_seconds = drain_seconds;
}

static void unwatch(struct ev_loop *loop, run_state *s) {
  ev_signal_stop(loop, &s->sigint);
  ev_signal_stop(loop, &s->sigterm);
  ev_timer_stop(loop, &s->deadline);
  mb_pipeline_on_idle(mb_runtime_pipeline(s->rt), NULL, NULL);
}

static void log_started(const mb_runtime *rt, const mb_vm *vm, int reload) {
  char url[4200];
  mb_transport_display_url(mb_runtime_url(rt), url, sizeof url);
  mb_log(MB_INFO, mb_runtime_endpoint(rt), NULL, NULL,
         "running %s on %s (instance %s, concurrency %u, %zu event subscriptions, %s)",
         mb_vm_script(vm), url, mb_runtime_instance(rt), mb_runtime_cfg(rt)->concurrency,
         mb_runtime_n_subscriptions(rt),
         reload ? "reloads when a script changes" : "reloads on SIGHUP only");
}

static void log_stopped(const mb_runtime *rt) {
  mb_pipeline_stats st = mb_runtime_stats(rt);
  mb_log(MB_INFO, mb_runtime_endpoint(rt), NULL, NULL,
         "stopped: %lu handled, %lu failed, %lu parked, %lu discarded", st.handled, st.failed,
         st.parked, st.discarded);
}

/* The reports to ops, and --metrics (listen, or NULL). MB_OK, else it said why. */
static int start_reporting(run_state *s, const char *listen) {
  mb_err err;
  if ((s->reporter = mb_reporter_start(s->rt, s->reload)) == NULL) {
    fprintf(stderr, "moonbus: out of memory\n");
    return MB_ENOMEM;
  }
  if (listen == NULL) return MB_OK;
  int rc = mb_metrics_http_start(&s->metrics, listen, s->rt, s->reporter, &err);
  if (rc != MB_OK) fprintf(stderr, "moonbus: --metrics %s: %s\n", listen, err.msg);
  else
    mb_log(MB_INFO, endpoint_of(s), NULL, NULL, "metrics at http://%s/metrics (port %d)", listen,
           mb_metrics_http_port(s->metrics));
  return rc;
}

int mb_cli_run(const char *target, const mb_cli_opts *opts) {
  struct ev_loop *loop = EV_DEFAULT;
  run_state s = {0};
  mb_err err;
  int code = 1;
  s.rt = mb_runtime_new(loop, opts->transport, opts->instance);
  if (s.rt == NULL) {
    fprintf(stderr, "moonbus: out of memory\n");
    return 1;
  }
  s.reload = mb_reload_open(s.rt, target, &err);
  if (s.reload == NULL) {
    fprintf(stderr, "moonbus: cannot load %s: %s\n", target, err.msg);
    goto done;
  }
  if (mb_runtime_start(s.rt, &err) != MB_OK) {
    fprintf(stderr, "moonbus: %s: %s\n", target, err.msg);
    goto done;
  }
  watch_signals(loop, &s, opts->drain_seconds);
  if (mb_watchdog_start(2 * mb_runtime_cfg(s.rt)->time_budget) != 0)
    mb_log(MB_WARN, endpoint_of(&s), NULL, NULL,
           "cannot start the watchdog thread: a handler "
           "stuck inside a C function will not be stopped");
  mb_reload_start(s.reload, !opts->no_reload, reload_drain_seconds());
  if (start_reporting(&s, opts->metrics) != MB_OK) goto done;
  log_started(s.rt, mb_reload_current(s.reload), !opts->no_reload);
  ev_run(loop, 0);
  unwatch(loop, &s);
  log_stopped(s.rt);
  code = 0;
done:
  mb_watchdog_stop();
  mb_runtime_stop_consuming(s.rt);
  mb_metrics_http_stop(s.metrics);
  mb_reporter_stop(s.reporter); /* its last report goes out before the transport closes */
  mb_reload_free(s.reload);
  mb_runtime_free(s.rt);
  ev_loop_destroy(loop);
  return code;
}

/* The endpoint a CLI publish goes out as: the owner, checked against the claim. */
static int publisher_of(mb_runtime *rt, const char *claimed, const char *type, char *out,
                        size_t len, mb_err *err) {
  mb_transport *t = mb_runtime_transport(rt);
  int rc = t->ops->owner_of(t, type, out, len, err);
  if (rc == MB_ENOTFOUND) {
    snprintf(out, len, "%s", strcmp(claimed, "-") == 0 ? "cli" : claimed);
    return MB_OK;
  }
  if (rc != MB_OK) return rc;
  if (strcmp(claimed, "-") != 0 && strcmp(claimed, out) != 0)
    return mb_err_set(err, MB_EOWNER,
                      "%s is published by endpoint %s; an event has one publisher: publish it "
                      "as %s (or -), or send a command to %s and let it publish",
                      type, out, out, out);
  return MB_OK;
}

static int send_one(mb_runtime *rt, const char *endpoint, const char *type, const char *json,
                    int publish, mb_err *err) {
  char origin[256] = "cli";
  int rc = mb_runtime_connect(rt, err);
  if (rc == MB_OK && publish) rc = publisher_of(rt, endpoint, type, origin, sizeof origin, err);
  if (rc != MB_OK) return rc;
  mb_compose_req req = {
      .type = type,
      .kind = publish ? MB_KIND_EVENT : MB_KIND_COMMAND,
      .body = json,
      .body_len = strlen(json),
      .route = publish ? MB_ROUTE_PUBLISH : MB_ROUTE_QUEUE,
      .dest = publish ? NULL : endpoint,
      .origin = origin,
  };
  mb_outgoing *m;
  rc = mb_compose(rt, NULL, &req, &m, err);
  if (rc != MB_OK) return rc;
  char id[MB_ID_LEN + 1];
  memcpy(id, m->env.id, sizeof id);
  rc = mb_runtime_dispatch(rt, &m, 1, err);
  if (rc == MB_OK) printf("%s\n", id);
  return rc;
}

/* The message of a one-shot command: a type as bus.command declares one (1-255 bytes of
 * printable ASCII, no spaces) and a body that is a JSON object, as every handler gets. */
static int check_message(const char *type, const char *json, mb_err *err) {
  size_t len = strlen(type);
  if (len == 0 || len > 255)
    return mb_err_set(err, MB_EINVAL, "a message type has 1 to 255 characters, got %zu", len);
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)type[i] <= 0x20 || (unsigned char)type[i] >= 0x7f)
      return mb_err_set(err, MB_EINVAL,
                        "the message type has a space or a byte that is not "
                        "printable ASCII (byte %zu)",
                        i + 1);
  int rc = mb_vm_check_json(json, err); /* valid JSON that decodes to a table */
  if (rc == MB_OK && json[strspn(json, " \t\r\n")] != '{')
    rc = mb_err_set(err, MB_EINVAL,
                    "invalid JSON body: the body must be a JSON object "
                    "({...}), got an array");
  return rc;
}

/* The body argument: JSON text, or @FILE (a body larger than argv takes: 128 KiB on
 * Linux), read whole. *owned gets what to free. NULL (a complaint on stderr) on failure. */
static const char *body_arg(const char *arg, char **owned) {
  *owned = NULL;
  if (arg[0] != '@') return arg;
  FILE *f = fopen(arg + 1, "rb");
  long n = -1;
  if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (*owned = malloc((size_t)n + 1)) != NULL && fread(*owned, 1, (size_t)n, f) == (size_t)n)
    (*owned)[n] = '\0';
  else {
    fprintf(stderr, "moonbus: cannot read the body from %s\n", arg + 1);
    free(*owned);
    *owned = NULL;
  }
  if (f) fclose(f);
  return *owned;
}

/* A runtime for a one-shot command of type whose body is json, or NULL and *code. */
static mb_runtime *cli_runtime(const char *type, const char *json, const mb_cli_opts *opts,
                               int *code) {
  mb_err err;
  if (opts->databus) setenv("MOONBUS_DATABUS", opts->databus, 1); /* runtime.c reads it */
  if (json == NULL) {
    *code = 2;
    return NULL;
  }
  if (check_message(type, json, &err) != MB_OK) {
    fprintf(stderr, "moonbus: %s\n", err.msg);
    *code = 2;
    return NULL;
  }
  mb_runtime *rt = mb_runtime_new(NULL, opts->transport, opts->instance);
  if (rt == NULL) {
    fprintf(stderr, "moonbus: out of memory\n");
    *code = 1;
  } else if (mb_transport_must_exist(mb_runtime_transport_url(rt), &err) != MB_OK) {
    mb_cli_fail(err.msg); /* a send never creates the bus it is sent on */
    mb_runtime_free(rt);
    *code = 1;
    return NULL;
  }
  return rt;
}

int mb_cli_send(const char *endpoint, const char *type, const char *arg, const mb_cli_opts *opts,
                int publish) {
  mb_err err;
  int code;
  char *owned;
  const char *json = body_arg(arg, &owned);
  mb_runtime *rt = cli_runtime(type, json, opts, &code);
  if (rt == NULL) {
    free(owned);
    return code;
  }
  int rc = send_one(rt, endpoint, type, json, publish, &err);
  if (rc != MB_OK) mb_cli_fail(err.msg);
  mb_runtime_free(rt);
  free(owned);
  return rc == MB_OK ? 0 : 1;
}

typedef struct cli_reply {
  int done;
  mb_delivery *reply; /* NULL: timed out */
} cli_reply;

static void cli_replied(void *ud, mb_delivery *reply) {
  cli_reply *r = ud;
  r->done = 1;
  r->reply = reply;
}

/* Sends the request and runs the loop until its reply or its timeout. */
static int request_one(mb_runtime *rt, const char *endpoint, const char *type, const char *json,
                       double timeout, cli_reply *r, char id[MB_ID_LEN + 1], mb_err *err) {
  const char *reply_to;
  int rc = mb_runtime_reply_address(rt, &reply_to, err);
  if (rc != MB_OK) return rc;
  mb_compose_req req = {
      .type = type,
      .kind = MB_KIND_COMMAND,
      .body = json,
      .body_len = strlen(json),
      .route = MB_ROUTE_QUEUE,
      .dest = endpoint,
      .reply_to = reply_to,
      .ttl = timeout,
      .origin = "cli",
  };
  mb_outgoing *m;
  if ((rc = mb_compose(rt, NULL, &req, &m, err)) != MB_OK) return rc;
  memcpy(id, m->env.id, MB_ID_LEN + 1);
  if (mb_envelope_set_correlation_id(&m->env, id) != MB_OK ||
      mb_correlate_expect(mb_runtime_correlate(rt), id, timeout, cli_replied, r) != MB_OK) {
    mb_outgoing_free(m);
    return mb_err_set(err, MB_ENOMEM, "out of memory");
  }
  rc = mb_runtime_dispatch(rt, &m, 1, err);
  if (rc != MB_OK) mb_correlate_cancel(mb_runtime_correlate(rt), id);
  while (rc == MB_OK && !r->done) ev_run(mb_runtime_loop(rt), EVRUN_ONCE);
  return rc;
}

/* The endpoint parked the request (errorq.h's notice): say so and why, at once. */
static void report_parked(const char *type, const char *endpoint, const char *id,
                          const mb_delivery *notice) {
  const char *why = mb_headers_get(&notice->env.headers, MB_H_EXCEPTION_MESSAGE);
  char line[2 * MB_ERRLEN];
  snprintf(line, sizeof line, "request %s (%s to %s) was parked in the error queue: %s", id, type,
           endpoint, why ? why : "(no reason given)");
  mb_cli_fail(line);
}

int mb_cli_request(const char *endpoint, const char *type, const char *arg,
                   const mb_cli_opts *opts) {
  mb_err err;
  double timeout = opts->timeout > 0 ? opts->timeout : 30;
  int code = 0;
  char *owned;
  const char *json = body_arg(arg, &owned);
  mb_runtime *rt = cli_runtime(type, json, opts, &code);
  if (rt == NULL) {
    free(owned);
    return code;
  }
  cli_reply r = {0, NULL};
  char id[MB_ID_LEN + 1] = "";
  if (request_one(rt, endpoint, type, json, timeout, &r, id, &err) != MB_OK) {
    mb_cli_fail(err.msg);
    code = 1;
  } else if (r.reply && r.reply->env.type &&
             strcmp(r.reply->env.type, MB_TYPE_REQUEST_FAILED) == 0) {
    report_parked(type, endpoint, id, r.reply);
    code = 1;
  } else if (r.reply == NULL) {
    fprintf(stderr, "moonbus: no reply to %s from %s within %g s (request %s)\n", type, endpoint,
            timeout, id);
    code = MB_CLI_EXIT_TIMEOUT;
  } else {
    mb_log_msg(MB_INFO, NULL, mb_envelope_log_ids(&r.reply->env), "reply to request %s", id);
    fwrite(r.reply->env.body, 1, r.reply->env.body_len, stdout);
    putchar('\n');
  }
  mb_delivery_free(r.reply);
  mb_runtime_free(rt);
  free(owned);
  return code;
}

void mb_cli_fail(const char *msg) {
  char line[4 * MB_ERRLEN];
  mb_log_escape(msg, strlen(msg), line, sizeof line);
  fprintf(stderr, "moonbus: %s\n", line);
}

int mb_cli_version(void) {
  printf("moonbus %s (%s, libev %d.%d)\n", MOONBUS_VERSION, mb_vm_lua_release(),
         ev_version_major(), ev_version_minor());
  return 0;
}
