/* api.h — the HTTP face of `moonbus ops` (DESIGN §10): the JSON API (the contract in the
 * README, "Operations service"), the diagram, the service's own /metrics and the web UI's
 * files.
 *
 * Provides: mb_ops_api, an mb_http_handler.
 * Uses: the store (read calls), operations.h (changes), diagram.h, web.h, json.h.
 * Never: lets a mutating call through without the token when one is required, answers a
 * cross-site form post (POST needs Content-Type: application/json and, when the browser
 * says where it comes from, the same origin), or puts input into a page unescaped. */
#ifndef MOONBUS_OPS_API_H
#define MOONBUS_OPS_API_H

#include "http.h"
#include "ops/ingest.h"
#include "ops/operations.h"
#include "ops/store.h"

typedef struct mb_ops_api mb_ops_api;

typedef struct mb_ops_api_cfg {
  mb_ops_store *store;
  mb_ops_work *work;
  mb_transport *transport; /* for edit-and-retry's new id and queue depths */
  const char *token;       /* NULL: no token (then only loopback may call at all) */
  int listens_on_loopback;
  const char *transport_shown; /* the transport URL as it may be shown */
  const char *store_shown;
  mb_ops_ingest *const *ingesters; /* for /metrics */
  const char *const *queues;
  size_t n_ingesters;
  struct mb_ops_metrics *metrics; /* the rest of /metrics (ops_metrics.h), or NULL */
} mb_ops_api_cfg;

/* cfg's pointers must outlive the api. NULL when out of memory. */
mb_ops_api *mb_ops_api_new(const mb_ops_api_cfg *cfg);
void mb_ops_api_free(mb_ops_api *api);
/* The mb_http_handler: ud is the mb_ops_api. */
void mb_ops_api_handle(void *ud, mb_http_req *req);

#endif
