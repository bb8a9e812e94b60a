/* ops_store_helpers.h — what the ops store unit tests (test_ops_store.c, test_ops_monitor.c)
 * share: a store opened on a new SQLite file in a scratch directory of its own (removed
 * with it), a delivery built by hand, ingesting one, and a JSON answer parsed. The
 * including file defines nothing of these names. */
#ifndef MOONBUS_OPS_STORE_HELPERS_H
#define MOONBUS_OPS_STORE_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "ops/store.h"

/* The scratch directory of the store open_store made, and its file. */
static char store_dir[64], store_path[96];

/* A delivery (first attempt) of type with len bytes of body, id and kind (free with
 * mb_delivery_free). */
static mb_delivery *hand_delivery(const char *id, const char *kind, const char *type,
                                  const char *body, size_t len) {
  mb_delivery *d = calloc(1, sizeof *d);
  mb_envelope_init(&d->env);
  snprintf(d->env.id, sizeof d->env.id, "%.*s", (int)sizeof d->env.id - 1, id);
  mb_envelope_set_type(&d->env, type);
  mb_envelope_set_body(&d->env, body, len);
  mb_headers_set(&d->env.headers, MB_H_KIND, kind);
  d->delivery_count = 1;
  return d;
}

/* Ingests d from src as one batch, and frees it. */
static int ingest(mb_ops_store *s, mb_ops_source src, mb_delivery *d) {
  mb_err err;
  int rc = s->ops->ingest(s, src, &d, 1, &err);
  mb_delivery_free(d);
  return rc;
}

/* The JSON answer of a read call, parsed (free with mb_json_free); frees json. */
static mb_json *parsed(char *json) {
  mb_json *doc = NULL;
  mb_err err;
  if (json == NULL || mb_json_parse(json, strlen(json), &doc, &err) != MB_OK) doc = NULL;
  free(json);
  return doc;
}

/* A store on store_path, in a new directory /tmp/PREFIX.XXXXXX; NULL (said) if not. */
static mb_ops_store *open_store(const char *prefix) {
  mb_ops_store *s = NULL;
  mb_err err;
  snprintf(store_dir, sizeof store_dir, "/tmp/%s.XXXXXX", prefix);
  if (mkdtemp(store_dir) == NULL) return NULL;
  snprintf(store_path, sizeof store_path, "%s/ops.db", store_dir);
  if (mb_ops_store_open(&s, store_path, &err) != MB_OK) printf("# %s\n", err.msg);
  return s;
}

/* Closes s and removes its directory. */
static void close_store(mb_ops_store *s) {
  char cmd[160];
  s->ops->close(s);
  snprintf(cmd, sizeof cmd, "rm -rf %s", store_dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", store_dir);
}

#endif
