/* runtime.h — one running endpoint instance: its loop, its transport, its declaration
 * (declaration.c), its pipeline (pipeline.c), its sends outside handlers (outbound.c) and
 * the requests waiting for replies (correlate.c). Opaque: read through the functions below.
 *
 * Provides: lifecycle (new, configure, connect, start, stop, free), sending outside a
 * handler, the reply address, and accessors. The host (cli.c) and the Lua module loaded by
 * stock lua5.4 both drive one.
 * Uses: transport.h, endpoint.h, pipeline.h. Never: includes lua.h; policy about a single
 * message lives in pipeline.c, what a script declares in declaration.c. */
#ifndef MOONBUS_RUNTIME_H
#define MOONBUS_RUNTIME_H

#include <stddef.h>

#include "endpoint.h"
#include "outbound.h"
#include "pipeline.h"
#include "status.h"
#include "transport.h"

struct ev_loop;
struct mb_correlate;
struct mb_claim_store;
struct mb_shared;
struct mb_metrics;
typedef struct mb_runtime mb_runtime;

/* loop NULL: the runtime makes and owns its own loop. instance NULL: a new one. */
mb_runtime *mb_runtime_new(struct ev_loop *loop, const char *url_override, const char *instance);
/* Ends the jobs in flight (pipeline.h), closes the transport, frees everything. */
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
/* 1 while a declaration is staged (between stage and adopt/unstage). */
int mb_runtime_staging(const mb_runtime *rt);
/* The transport URL connect opens: --transport, else $MOONBUS_TRANSPORT, else the
 * endpoint's own, else the nearest .moonbus/bus.db at or above the current directory
 * when the runtime was made (mb_transport_default_url; credentials included: never log
 * it). */
const char *mb_runtime_transport_url(const mb_runtime *rt);
/* Replaces --transport (a test driver's reset). MB_OK or MB_ENOMEM. */
int mb_runtime_set_url_override(mb_runtime *rt, const char *url);
/* The name messages are sent from: the endpoint's, or "cli" before one is configured. */
const char *mb_runtime_origin(const mb_runtime *rt);

/* Opens the transport if needed and declares the topology if it changed. */
int mb_runtime_connect(mb_runtime *rt, mb_err *err);
/* connect, then consume the endpoint queue with cfg.concurrency handlers in flight. */
int mb_runtime_start(mb_runtime *rt, mb_err *err);
void mb_runtime_stop_consuming(mb_runtime *rt);
/* New attempts run on runner (a reload switches it to the new generation's scheduler). */
void mb_runtime_set_runner(mb_runtime *rt, const mb_runner *runner, void *ud);

/* Sends at once (outside a handler) and waits for the transport's answer by running the
 * loop (the CLI, and code that cannot yield). Takes ownership of the messages. */
int mb_runtime_dispatch(mb_runtime *rt, mb_outgoing **msgs, size_t n, mb_err *err);
/* Sends at once without waiting (outbound.h). Takes ownership of the messages. */
int mb_runtime_send(mb_runtime *rt, mb_outgoing **msgs, size_t n, mb_done_fn fn, void *ud,
                    mb_send **ticket, mb_err *err);
/* This process's reply address, opened (with the table of pending requests) on first use. */
int mb_runtime_reply_address(mb_runtime *rt, const char **address, mb_err *err);

/* --- reads ------------------------------------------------------------------------------ */
struct ev_loop *mb_runtime_loop(const mb_runtime *rt);
/* The running configuration (defaults until bus.endpoint{}); its address is stable. */
const mb_endpoint_cfg *mb_runtime_cfg(const mb_runtime *rt);
int mb_runtime_configured(const mb_runtime *rt);
/* The endpoint's name once configured, else NULL (for log lines). */
const char *mb_runtime_endpoint(const mb_runtime *rt);
size_t mb_runtime_n_subscriptions(const mb_runtime *rt);
const char *mb_runtime_subscription(const mb_runtime *rt, size_t i);
/* The open transport, or NULL until connected. */
mb_transport *mb_runtime_transport(const mb_runtime *rt);
/* The URL of the open transport (credentials included: redact before logging), or NULL. */
const char *mb_runtime_url(const mb_runtime *rt);
const char *mb_runtime_instance(const mb_runtime *rt);
const char *mb_runtime_host(const mb_runtime *rt);
/* The pending requests, or NULL before the first reply address was opened. */
struct mb_correlate *mb_runtime_correlate(const mb_runtime *rt);
mb_pipeline *mb_runtime_pipeline(const mb_runtime *rt);
/* The claim store (claim.h), or NULL: none, or not connected yet. */
struct mb_claim_store *mb_runtime_claims(const mb_runtime *rt);
/* The largest body a script may send: mb_endpoint_max_body with this runtime's store. */
size_t mb_runtime_max_body(const mb_runtime *rt);
mb_pipeline_stats mb_runtime_stats(const mb_runtime *rt);
/* The store behind bus.shared (shared.h): made with the runtime, freed with it (so it
 * survives reloads, not a restart); its bound is the running declaration's shared_memory. */
struct mb_shared *mb_runtime_shared(const mb_runtime *rt);
/* The endpoint's figures (metrics.h), made when the endpoint is configured and kept across
 * reloads; NULL before (or when out of memory). */
struct mb_metrics *mb_runtime_metrics(const mb_runtime *rt);

#endif
