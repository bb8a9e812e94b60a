/* endpoint.h — the configuration of one logical endpoint, as bus.endpoint{} declares it
 * (DESIGN §3): its name (input queue), routes, owned events, concurrency, queues, limits.
 *
 * Provides: the struct, its defaults, lookups, and a free function.
 * Never: knows Lua; bindings/ fill it in from the script's table. */
#ifndef MOONBUS_ENDPOINT_H
#define MOONBUS_ENDPOINT_H

#include <stddef.h>

#define MB_DEFAULT_CONCURRENCY 32
#define MB_DEFAULT_MAX_BODY (4u << 20)
#define MB_DEFAULT_MAX_BODY_CLAIMED ((size_t)64 << 20) /* when the claim check is on */
#define MB_DEFAULT_CLAIM_CHECK ((size_t)256 << 10)
#define MB_DEFAULT_CLAIM_RETENTION 7.0 /* days */
#define MB_DEFAULT_ERROR_QUEUE "error"
#define MB_DEFAULT_AUDIT_QUEUE "audit"
#define MB_DEFAULT_MAX_DELIVERIES 10
#define MB_DEFAULT_TIME_BUDGET 30.0                  /* seconds per attempt of a handler */
#define MB_DEFAULT_MEMORY_BUDGET ((size_t)256 << 20) /* bytes a Lua state may hold */
#define MB_DEFAULT_SHARED_MEMORY ((size_t)8 << 20)   /* bytes bus.shared may hold */
#define MB_DEFAULT_REPORT 10.0 /* seconds between two moonbus.ops.Report (DESIGN §11) */

typedef struct mb_route_entry {
  char *type;  /* command or message type */
  char *queue; /* destination endpoint queue */
} mb_route_entry;

typedef struct mb_endpoint_cfg {
  char *name;
  mb_route_entry *routes;
  size_t n_routes;
  char **publishes;
  size_t n_publishes;
  unsigned concurrency;
  char *error_queue;
  char *audit_queue; /* NULL when audit = false */
  int immediate_retries, delayed_retries;
  int max_deliveries;   /* deliveries of one copy without an outcome (crashes) before parking */
  double time_budget;   /* seconds an attempt of a handler (or a timer tick) may run */
  size_t memory_budget; /* bytes the endpoint's Lua state may hold */
  size_t shared_memory; /* bytes bus.shared's dictionaries may hold, together (shared.h) */
  double retry_delay;
  char *transport; /* URL from the script, or NULL */
  char *state;     /* where order_by marks live when the transport has no database
                      (sqlite://PATH), or NULL: MB_DEFAULT_STATE (mark.h) */
  size_t max_body;
  int max_body_set;       /* the script set max_body (else it follows the claim check) */
  size_t claim_check;     /* bodies over it are claimed (claim.h); 0: claim_check = false */
  char *databus;          /* "file:///dir", or NULL (the transport's own store, if any) */
  double claim_retention; /* days a claim is kept after its message became deliverable */
  int classic_queue;      /* queue_type = "classic" (RabbitMQ); quorum queues by default */
  double report;          /* seconds between two moonbus.ops.Report; 0: none (report = false) */
  double sla;             /* seconds of critical time the endpoint promises; 0: none */
} mb_endpoint_cfg;

/* Fills cfg with the defaults (name NULL). Strings are owned by cfg. MB_OK or MB_ENOMEM. */
int mb_endpoint_cfg_defaults(mb_endpoint_cfg *cfg);
void mb_endpoint_cfg_free(mb_endpoint_cfg *cfg);
/* The queue commands of type go to, or NULL when there is no route. */
const char *mb_endpoint_route(const mb_endpoint_cfg *cfg, const char *type);
/* The largest body a script may send or receive: max_body if the script set it, else
 * 64 MiB when the claim check is on (claim_check and a store: have_store), else 4 MiB. */
size_t mb_endpoint_max_body(const mb_endpoint_cfg *cfg, int have_store);
/* 1 if the endpoint lists type in publishes. */
int mb_endpoint_publishes(const mb_endpoint_cfg *cfg, const char *type);

#endif
