/* endpoint.c — defaults, lookups and freeing of mb_endpoint_cfg (see endpoint.h). */
#include "endpoint.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

int mb_endpoint_cfg_defaults(mb_endpoint_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->concurrency = MB_DEFAULT_CONCURRENCY;
  cfg->immediate_retries = 5;
  cfg->delayed_retries = 3;
  cfg->retry_delay = 10;
  cfg->max_deliveries = MB_DEFAULT_MAX_DELIVERIES;
  cfg->time_budget = MB_DEFAULT_TIME_BUDGET;
  cfg->memory_budget = MB_DEFAULT_MEMORY_BUDGET;
  cfg->shared_memory = MB_DEFAULT_SHARED_MEMORY;
  cfg->max_body = MB_DEFAULT_MAX_BODY;
  cfg->claim_check = MB_DEFAULT_CLAIM_CHECK;
  cfg->claim_retention = MB_DEFAULT_CLAIM_RETENTION;
  cfg->report = MB_DEFAULT_REPORT;
  cfg->error_queue = strdup(MB_DEFAULT_ERROR_QUEUE);
  cfg->audit_queue = strdup(MB_DEFAULT_AUDIT_QUEUE);
  if (cfg->error_queue == NULL || cfg->audit_queue == NULL) {
    mb_endpoint_cfg_free(cfg);
    return MB_ENOMEM;
  }
  return MB_OK;
}

void mb_endpoint_cfg_free(mb_endpoint_cfg *cfg) {
  for (size_t i = 0; i < cfg->n_routes; i++) {
    free(cfg->routes[i].type);
    free(cfg->routes[i].queue);
  }
  for (size_t i = 0; i < cfg->n_publishes; i++) free(cfg->publishes[i]);
  free(cfg->routes);
  free(cfg->publishes);
  free(cfg->name);
  free(cfg->error_queue);
  free(cfg->audit_queue);
  free(cfg->transport);
  free(cfg->state);
  free(cfg->databus);
  memset(cfg, 0, sizeof *cfg);
}

const char *mb_endpoint_route(const mb_endpoint_cfg *cfg, const char *type) {
  for (size_t i = 0; i < cfg->n_routes; i++)
    if (strcmp(cfg->routes[i].type, type) == 0) return cfg->routes[i].queue;
  return NULL;
}

size_t mb_endpoint_max_body(const mb_endpoint_cfg *cfg, int have_store) {
  if (cfg->max_body_set || !have_store || cfg->claim_check == 0) return cfg->max_body;
  return MB_DEFAULT_MAX_BODY_CLAIMED;
}

int mb_endpoint_publishes(const mb_endpoint_cfg *cfg, const char *type) {
  for (size_t i = 0; i < cfg->n_publishes; i++)
    if (strcmp(cfg->publishes[i], type) == 0) return 1;
  return 0;
}
