/* runtime.h — one running endpoint instance: its loop, its transport, its configuration
 * and topology, the scheduler of its handlers, and the work in flight.
 *
 * Provides: lifecycle (new, configure, connect, start, stop, free) and sending outside a
 * handler. The host (main.c) and the Lua module loaded by stock lua5.4 both drive one.
 * Uses: transport.h, endpoint.h, pipeline.h, sched.h (opaque).
 * Never: includes lua.h; policy about a single message lives in pipeline.c. */
#ifndef MOONBUS_RUNTIME_H
#define MOONBUS_RUNTIME_H

#include <stddef.h>

#include "endpoint.h"
#include "status.h"
#include "transport.h"

struct ev_loop;
struct mb_sched;
struct mb_job;
struct mb_correlate;
typedef struct mb_send mb_send;
typedef struct mb_staged mb_staged;

typedef struct mb_runtime {
  struct ev_loop *loop;
  int own_loop;              /* created by the runtime (module mode): destroyed with it */
  mb_transport *transport;   /* NULL until connected */
  char *url;                 /* the transport URL in use (credentials included: never log it) */
  char *url_override;        /* --transport / MOONBUS_TRANSPORT, beats the script's URL */
  char instance[96];
  char host[256];
  mb_endpoint_cfg cfg;
  int configured;            /* bus.endpoint{} has been called */
  char **subscriptions;      /* event types the endpoint handles */
  size_t n_subscriptions;
  int topology_dirty;        /* declare again before the next use */
  int consuming;
  struct mb_sched *sched;    /* the handlers of the current Lua state */
  struct mb_job *jobs;       /* deliveries in flight (a list) */
  unsigned in_flight;
  unsigned long handled, failed, parked;
  struct mb_correlate *correlate; /* requests waiting for replies; NULL until the first */
  char reply_address[300];        /* where replies to them come back ("" until then) */
  mb_send *sends;                 /* sends outside handlers the transport has not answered */
  mb_staged *staged;              /* a reload's declaration, kept apart until adopted */
} mb_runtime;

/* loop NULL: the runtime makes and owns its own loop. instance NULL: a new one. */
mb_runtime *mb_runtime_new(struct ev_loop *loop, const char *url_override, const char *instance);
void mb_runtime_free(mb_runtime *rt);

/* Takes ownership of cfg's contents. MB_EINVAL if the endpoint was configured already. */
int mb_runtime_configure(mb_runtime *rt, mb_endpoint_cfg *cfg, mb_err *err);
/* The endpoint handles event type: subscribe its queue (declared at the next connect). */
int mb_runtime_subscribe(mb_runtime *rt, const char *type);
/* Reload (DESIGN §7): from mb_runtime_stage until mb_runtime_adopt or mb_runtime_unstage,
 * what a script declares (bus.endpoint{}, the events it handles) is kept apart from the
 * running endpoint. MB_OK or MB_ENOMEM. */
int mb_runtime_stage(mb_runtime *rt);
/* Makes the staged declaration the running one and declares its topology: events newly
 * handled are subscribed, events no longer handled unsubscribed, newly owned events
 * claimed. A script that declares no endpoint, another endpoint name or another transport
 * is refused (MB_EINVAL, a sentence saying why); so is a topology the transport refuses.
 * On any error the running declaration stays as it was. Unstages in every case. */
int mb_runtime_adopt(mb_runtime *rt, mb_err *err);
void mb_runtime_unstage(mb_runtime *rt);
/* The transport URL connect opens: --transport, else $MOONBUS_TRANSPORT, else the
 * endpoint's own, else MB_DEFAULT_TRANSPORT (credentials included: never log it). */
const char *mb_runtime_transport_url(const mb_runtime *rt);
/* The name messages are sent from: the endpoint's, or "cli" before one is configured. */
const char *mb_runtime_origin(const mb_runtime *rt);

/* Opens the transport if needed and declares the topology if it changed. */
int mb_runtime_connect(mb_runtime *rt, mb_err *err);
/* connect, then consume the endpoint queue with cfg.concurrency handlers in flight. */
int mb_runtime_start(mb_runtime *rt, mb_err *err);
void mb_runtime_stop_consuming(mb_runtime *rt);

/* Sends at once (outside a handler) and waits for the transport's answer by running the
 * loop (the CLI, and code that cannot yield). Takes ownership of the messages. */
int mb_runtime_dispatch(mb_runtime *rt, mb_outgoing **msgs, size_t n, mb_err *err);
/* Sends at once without waiting: fn(ud, status, error) runs when the transport answers,
 * possibly before this returns (then *ticket is NULL), unless mb_send_forget(*ticket) came
 * first. On an error return fn never runs. Takes ownership of the messages. */
int mb_runtime_send(mb_runtime *rt, mb_outgoing **msgs, size_t n, mb_done_fn fn, void *ud,
                    mb_send **ticket, mb_err *err);
/* The sender is gone: the transport's answer will be dropped. */
void mb_send_forget(mb_send *ticket);

/* This process's reply address, opened (with the table of pending requests) on first use. */
int mb_runtime_reply_address(mb_runtime *rt, const char **address, mb_err *err);

#endif
