/* declaration.c — what a script declares (see declaration.h): the running endpoint
 * configuration and its subscriptions, and a reload's staged one. The only writer of
 * both; the runtime declares the topology this file describes.
 * Never: talks to a transport or runs Lua. */
#include "declaration.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct decl {
  mb_endpoint_cfg cfg;
  int configured;
  char **subscriptions; /* event types the endpoint handles */
  size_t n_subscriptions;
} decl;

struct mb_declaration {
  decl running; /* its cfg's address is stable: swaps exchange contents */
  decl *staged; /* a reload's declaration; after an adopt, the one it replaced */
  int adopted;  /* staged holds the replaced declaration */
  int dirty;    /* the running topology is not declared yet */
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

static int decl_init(decl *x) {
  memset(x, 0, sizeof *x);
  return mb_endpoint_cfg_defaults(&x->cfg);
}

static void decl_clear(decl *x) {
  mb_endpoint_cfg_free(&x->cfg);
  free_types(x->subscriptions, x->n_subscriptions);
  memset(x, 0, sizeof *x);
}

mb_declaration *mb_declaration_new(void) {
  mb_declaration *d = calloc(1, sizeof *d);
  if (d && decl_init(&d->running) != MB_OK) {
    mb_declaration_free(d);
    return NULL;
  }
  return d;
}

void mb_declaration_free(mb_declaration *d) {
  if (d == NULL) return;
  mb_declaration_unstage(d);
  decl_clear(&d->running);
  free(d);
}

/* Where configure and subscribe write: the staged declaration while one is being loaded. */
static decl *target(mb_declaration *d) {
  return d->staged && !d->adopted ? d->staged : &d->running;
}

int mb_declaration_configure(mb_declaration *d, mb_endpoint_cfg *cfg, mb_err *err) {
  decl *x = target(d);
  if (x->configured) {
    mb_endpoint_cfg_free(cfg);
    return mb_err_set(err, MB_EINVAL,
                      "endpoint %s is already declared: a script declares one endpoint with "
                      "bus.endpoint{}; run another host process for another endpoint",
                      x->cfg.name);
  }
  mb_endpoint_cfg_free(&x->cfg);
  x->cfg = *cfg;
  memset(cfg, 0, sizeof *cfg);
  x->configured = 1;
  if (x == &d->running) d->dirty = 1;
  return MB_OK;
}

int mb_declaration_subscribe(mb_declaration *d, const char *type) {
  decl *x = target(d);
  int added = add_type(&x->subscriptions, &x->n_subscriptions, type);
  if (added < 0) return added;
  if (added && x == &d->running) d->dirty = 1;
  return MB_OK;
}

const mb_endpoint_cfg *mb_declaration_cfg(const mb_declaration *d) { return &d->running.cfg; }
int mb_declaration_configured(const mb_declaration *d) { return d->running.configured; }
size_t mb_declaration_n_subscriptions(const mb_declaration *d) {
  return d->running.n_subscriptions;
}
const char *mb_declaration_subscription(const mb_declaration *d, size_t i) {
  return i < d->running.n_subscriptions ? d->running.subscriptions[i] : NULL;
}
int mb_declaration_dirty(const mb_declaration *d) { return d->dirty; }
void mb_declaration_declared(mb_declaration *d) { d->dirty = 0; }
int mb_declaration_staging(const mb_declaration *d) { return d->staged && !d->adopted; }

void mb_declaration_topology(const mb_declaration *d, mb_topology *out) {
  const decl *x = &d->running;
  *out = (mb_topology){
      .endpoint = x->cfg.name,
      .error_queue = x->cfg.error_queue,
      .audit_queue = x->cfg.audit_queue,
      .subscriptions = (const char *const *)x->subscriptions,
      .n_subscriptions = x->n_subscriptions,
      .owned = (const char *const *)x->cfg.publishes,
      .n_owned = x->cfg.n_publishes,
      .classic_queue = x->cfg.classic_queue,
      .max_body = x->cfg.max_body,
  };
}

int mb_declaration_stage(mb_declaration *d) {
  mb_declaration_unstage(d);
  d->staged = malloc(sizeof *d->staged);
  if (d->staged == NULL || decl_init(d->staged) != MB_OK) {
    mb_declaration_unstage(d);
    return MB_ENOMEM;
  }
  return MB_OK;
}

void mb_declaration_unstage(mb_declaration *d) {
  if (d->staged == NULL) return;
  decl_clear(d->staged);
  free(d->staged);
  d->staged = NULL;
  d->adopted = 0;
}

static int same_text(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* What makes the staged declaration another endpoint rather than a new version of this one. */
static int check_staged(const decl *run, const decl *st, mb_err *err) {
  if (!st->configured)
    return mb_err_set(err, MB_EINVAL,
                      "the new script declares no endpoint: it must call "
                      "bus.endpoint{ name = \"%s\" }",
                      run->cfg.name);
  if (strcmp(st->cfg.name, run->cfg.name) != 0)
    return mb_err_set(err, MB_EINVAL,
                      "the new script declares endpoint %s, but this host runs "
                      "%s: that is another endpoint, not a reload (start a host for %s, or put "
                      "the name back)",
                      st->cfg.name, run->cfg.name, st->cfg.name);
  if (!same_text(st->cfg.transport, run->cfg.transport))
    return mb_err_set(err, MB_EINVAL,
                      "the new script changes bus.endpoint{ transport = ... }: a "
                      "reload keeps its connection; restart the host to change the transport");
  return MB_OK;
}

/* What a reload cannot change in place is kept, with a warning. */
static void keep_fixed(const decl *run, decl *st) {
  if (st->cfg.concurrency != run->cfg.concurrency)
    mb_log(MB_WARN, run->cfg.name, NULL, NULL,
           "reload: concurrency %u -> %u takes effect when "
           "the host restarts (the consumer keeps its prefetch)",
           run->cfg.concurrency, st->cfg.concurrency);
  if (st->cfg.classic_queue != run->cfg.classic_queue)
    mb_log(MB_WARN, run->cfg.name, NULL, NULL,
           "reload: queue_type of an existing queue cannot "
           "change; the queue stays %s",
           run->cfg.classic_queue ? "classic" : "quorum");
  st->cfg.concurrency = run->cfg.concurrency;
  st->cfg.classic_queue = run->cfg.classic_queue;
}

static int same_types(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (!has_type(b, nb, a[i])) return 0;
  return 1;
}

/* 1 if the two declarations need the same topology (most edits of a handler). */
static int same_topology(const decl *a, const decl *b) {
  return same_text(a->cfg.error_queue, b->cfg.error_queue) &&
         same_text(a->cfg.audit_queue, b->cfg.audit_queue) &&
         same_types(a->subscriptions, a->n_subscriptions, b->subscriptions, b->n_subscriptions) &&
         same_types(a->cfg.publishes, a->cfg.n_publishes, b->cfg.publishes, b->cfg.n_publishes);
}

static void swap(mb_declaration *d) {
  decl tmp = d->running;
  d->running = *d->staged;
  *d->staged = tmp;
}

int mb_declaration_adopt(mb_declaration *d, mb_err *err) {
  if (!mb_declaration_staging(d)) return mb_err_set(err, MB_EINVAL, "nothing was staged");
  int rc = check_staged(&d->running, d->staged, err);
  if (rc != MB_OK) return rc;
  keep_fixed(&d->running, d->staged);
  if (!same_topology(&d->running, d->staged)) d->dirty = 1;
  swap(d);
  d->adopted = 1;
  return MB_OK;
}

void mb_declaration_revert(mb_declaration *d) {
  if (!d->adopted) return;
  swap(d);
  d->adopted = 0;
  d->dirty = 1;
}

void mb_declaration_log_changes(const mb_declaration *d) {
  if (!d->adopted) return;
  const decl *now = &d->running, *before = d->staged;
  for (size_t i = 0; i < now->n_subscriptions; i++)
    if (!has_type(before->subscriptions, before->n_subscriptions, now->subscriptions[i]))
      mb_log(MB_INFO, now->cfg.name, NULL, NULL, "reload: now subscribed to %s",
             now->subscriptions[i]);
  for (size_t i = 0; i < before->n_subscriptions; i++)
    if (!has_type(now->subscriptions, now->n_subscriptions, before->subscriptions[i]))
      mb_log(MB_INFO, now->cfg.name, NULL, NULL, "reload: no longer subscribed to %s",
             before->subscriptions[i]);
}
