/* test_ops_store.c — the SQLite ops store (host/ops/store_sqlite*.c) without a transport:
 * deliveries built by hand are ingested and the JSON answers read back with json.h.
 * Checked: a redelivered copy is not stored twice; a failure after a retry comes back with
 * one more attempt; an audit copy of the same queue resolves it, of another queue does
 * not; a message that could not be decoded is kept raw with its problem; grouping blanks
 * what varies; selections and marks; search by body and by header, audit copies (indexed a
 * batch at a time) included; retention drops whole days of audit copies, from the index
 * too, and the file really shrinks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "ops/store.h"
#include "ops_store_helpers.h"
#include "unit.h"

static mb_delivery *delivery(const char *id, const char *type, const char *body) {
  mb_delivery *d = hand_delivery(id, "command", type, body, strlen(body));
  mb_headers_set(&d->env.headers, MB_H_CONVERSATION, "conv-1");
  return d;
}

static mb_delivery *failed(const char *id, const char *queue, const char *at, const char *why) {
  mb_delivery *d = delivery(id, "shop.Pay", "{\"order\":42,\"note\":\"zebra\"}");
  mb_headers_set(&d->env.headers, MB_H_FAILED_QUEUE, queue);
  mb_headers_set(&d->env.headers, MB_H_FAILED_AT, at);
  mb_headers_set(&d->env.headers, MB_H_EXCEPTION_MESSAGE, why);
  mb_headers_set(&d->env.headers, "tenant", "acme-west");
  return d;
}

static mb_delivery *audited(const char *id, const char *endpoint, size_t body_len) {
  char *body = malloc(body_len + 16);
  snprintf(body, body_len + 16, "{\"pad\":\"%0*d\"}", (int)body_len, 0);
  mb_delivery *d = delivery(id, "shop.Ship", body);
  free(body);
  mb_headers_set(&d->env.headers, MB_H_PROCESSING_ENDPOINT, endpoint);
  mb_headers_set(&d->env.headers, MB_H_PROCESSING_ENDED, "2026-12-01T10:00:00.000000Z");
  return d;
}

static mb_json *message(mb_ops_store *s, const char *id) {
  char *json = NULL;
  mb_err err;
  s->ops->message(s, id, &json, &err);
  return parsed(json);
}

static double errors_total(mb_ops_store *s, const char *status, const char *q) {
  mb_ops_query query = {NULL, NULL, q, NULL, NULL, status, 1, 50};
  char *json = NULL;
  mb_err err;
  s->ops->errors(s, &query, &json, &err);
  mb_json *doc = parsed(json);
  double n = doc ? mb_jv_number(mb_jv_get(mb_json_root(doc), "total")) : -1;
  mb_json_free(doc);
  return n;
}

static const char *const A = "0192f3a4-0000-7000-8000-00000000000a";
static const char *const B = "0192f3a4-0000-7000-8000-00000000000b";

static void redelivered_copy_is_stored_once(void) {
  mb_ops_store *s = open_store("moonbus-ops-store");
  CHECK(ingest(s, MB_OPS_ERROR, failed(A, "shop", "2026-12-01T10:00:00Z", "x.lua:3: no 1")) ==
        MB_OK);
  CHECK(ingest(s, MB_OPS_ERROR, failed(A, "shop", "2026-12-01T10:00:00Z", "x.lua:3: no 1")) ==
        MB_OK);
  mb_json *m = message(s, A);
  CHECK(errors_total(s, NULL, NULL) == 1);
  CHECK(mb_jv_number(mb_jv_get(mb_json_root(m), "attempts")) == 1);
  CHECK(mb_jv_len(mb_jv_get(mb_json_root(m), "history")) == 1);
  mb_json_free(m);
  close_store(s);
}

static void failure_after_retry_counts_and_audit_resolves(void) {
  mb_ops_store *s = open_store("moonbus-ops-store");
  mb_err err;
  ingest(s, MB_OPS_ERROR, failed(A, "shop", "2026-12-01T10:00:00Z", "x.lua:3: no 1"));
  const char *ids[] = {A};
  CHECK(s->ops->mark(s, MB_OPS_RETRY, ids, 1, "test", "2026-12-01T10:01:00Z", &err) == MB_OK);
  ingest(s, MB_OPS_ERROR, failed(A, "shop", "2026-12-01T10:05:00Z", "x.lua:3: no 2"));
  mb_json *m = message(s, A);
  CHECK(mb_jv_number(mb_jv_get(mb_json_root(m), "attempts")) == 2);
  CHECK(strcmp(mb_jv_get_string(mb_json_root(m), "status"), "unresolved") == 0);
  CHECK(mb_jv_len(mb_jv_get(mb_json_root(m), "history")) == 3);
  mb_json_free(m);
  ingest(s, MB_OPS_AUDIT, audited(A, "billing", 10)); /* another queue handled it */
  m = message(s, A);
  CHECK(strcmp(mb_jv_get_string(mb_json_root(m), "status"), "unresolved") == 0);
  mb_json_free(m);
  ingest(s, MB_OPS_AUDIT, audited(A, "shop", 10));
  m = message(s, A);
  CHECK(strcmp(mb_jv_get_string(mb_json_root(m), "status"), "resolved") == 0);
  mb_json_free(m);
  close_store(s);
}

static void raw_message_is_kept_with_its_problem(void) {
  mb_ops_store *s = open_store("moonbus-ops-store");
  mb_delivery *d = delivery(B, "?", "\x01\xff not json");
  d->problem = strdup("malformed headers: not a JSON object");
  CHECK(ingest(s, MB_OPS_ERROR, d) == MB_OK);
  mb_json *m = message(s, B);
  CHECK(m != NULL);
  CHECK(m && strstr(mb_jv_get_string(mb_json_root(m), "problem"), "malformed") != NULL);
  mb_json_free(m);
  close_store(s);
}

static void groups_select_and_search(void) {
  mb_ops_store *s = open_store("moonbus-ops-store");
  mb_err err;
  ingest(s, MB_OPS_ERROR, failed(A, "shop", "2026-12-01T10:00:00Z", "x.lua:3: declined 41"));
  ingest(s, MB_OPS_ERROR, failed(B, "shop", "2026-12-01T10:01:00Z", "x.lua:3: declined 42"));
  char *json = NULL;
  s->ops->groups(s, "exception", NULL, &json, &err);
  mb_json *g = parsed(json);
  CHECK(mb_jv_len(mb_json_root(g)) == 1);
  CHECK(mb_jv_number(mb_jv_get(mb_jv_at(mb_json_root(g), 0), "count")) == 2);
  mb_ops_selection sel = {NULL,        0,    mb_jv_get_string(mb_jv_at(mb_json_root(g), 0), "id"),
                          "exception", NULL, 0};
  char **ids = NULL;
  size_t n = 0;
  CHECK(s->ops->select(s, MB_OPS_ARCHIVE, &sel, &ids, &n, &err) == MB_OK && n == 2);
  CHECK(s->ops->mark(s, MB_OPS_ARCHIVE, (const char *const *)ids, n, "test", NULL, &err) ==
        MB_OK);
  free(ids);
  mb_json_free(g);
  CHECK(errors_total(s, NULL, NULL) == 0);
  CHECK(errors_total(s, "archived", NULL) == 2);
  CHECK(errors_total(s, "all", "zebra") == 2);     /* a word of the body */
  CHECK(errors_total(s, "all", "acme-west") == 2); /* a header value */
  CHECK(errors_total(s, "all", "\"-\"*") == 0);    /* FTS syntax is searched as text */
  s->ops->search(s, A, 1, 10, &json, &err);
  mb_json *found = parsed(json);
  CHECK(mb_jv_number(mb_jv_get(mb_json_root(found), "total")) == 1);
  mb_json_free(found);
  close_store(s);
}

static long search_total(mb_ops_store *s, const char *q) {
  char *json = NULL;
  mb_err err;
  if (s->ops->search(s, q, 1, 10, &json, &err) != MB_OK) return -1;
  mb_json *found = parsed(json);
  long total = (long)mb_jv_number(mb_jv_get(mb_json_root(found), "total"));
  mb_json_free(found);
  return total;
}

/* Audit copies are indexed a batch at a time: each is found once, a redelivered copy in a
 * later batch adds nothing, and retention takes them out of the index. */
static void audit_copies_are_searchable(void) {
  mb_ops_store *s = open_store("moonbus-ops-store");
  mb_err err;
  mb_delivery *batch[3] = {audited(A, "shop", 16), audited(B, "shop", 16),
                           audited(A, "billing", 16)};
  mb_headers_set(&batch[1]->env.headers, "tenant", "walrus-north");
  CHECK(s->ops->ingest(s, MB_OPS_AUDIT, batch, 3, &err) == MB_OK);
  for (int i = 0; i < 3; i++) mb_delivery_free(batch[i]);
  CHECK(ingest(s, MB_OPS_AUDIT, audited(B, "shop", 16)) == MB_OK); /* redelivered */
  CHECK(search_total(s, "walrus-north") == 1);
  CHECK(search_total(s, "shop.Ship") == 3);
  CHECK(s->ops->sweep(s, (double)mb_now_usec() / 1e6 + 8 * 86400.0, 7, 30, &err) == MB_OK);
  CHECK(search_total(s, "walrus-north") == 0);
  CHECK(search_total(s, "shop.Ship") == 0);
  close_store(s);
}

static long long file_size(void) {
  struct stat st;
  char wal[128];
  long long n = stat(store_path, &st) == 0 ? st.st_size : 0;
  snprintf(wal, sizeof wal, "%s-wal", store_path);
  return n + (stat(wal, &st) == 0 ? st.st_size : 0);
}

static void retention_shrinks_the_file(void) {
  mb_ops_store *s = open_store("moonbus-ops-store");
  mb_err err;
  enum { N = 2000 };
  mb_delivery *batch[100];
  for (int i = 0; i < N; i += 100) {
    for (int j = 0; j < 100; j++) {
      char id[40];
      snprintf(id, sizeof id, "0192f3a4-0000-7000-8000-%012d", i + j);
      batch[j] = audited(id, "shop", 8192);
    }
    CHECK(s->ops->ingest(s, MB_OPS_AUDIT, batch, 100, &err) == MB_OK);
    for (int j = 0; j < 100; j++) mb_delivery_free(batch[j]);
  }
  double now = (double)mb_now_usec() / 1e6;
  CHECK(s->ops->sweep(s, now, 7, 30, &err) == MB_OK); /* nothing is old yet */
  long long before = file_size();
  CHECK(s->ops->sweep(s, now + 8 * 86400.0, 7, 30, &err) == MB_OK);
  long long after = file_size();
  printf("# ops store with %d audit copies of 8 KiB: %lld bytes; after retention: %lld\n", N,
         before, after);
  CHECK(before > (long long)N * 8192);
  CHECK(after < before / 10);
  close_store(s);
}

int main(void) {
  RUN(redelivered_copy_is_stored_once);
  RUN(failure_after_retry_counts_and_audit_resolves);
  RUN(raw_message_is_kept_with_its_problem);
  RUN(groups_select_and_search);
  RUN(audit_copies_are_searchable);
  RUN(retention_shrinks_the_file);
  return unit_done();
}
