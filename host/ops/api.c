/* api.c — routes each request of `moonbus ops` (see api.h): reads go to the store, changes
 * to operations.c, the diagram to diagram.c, anything else to the web UI's files.
 * Answers are JSON ({"error": "..."} with a 4xx/5xx status when something is wrong), the
 * diagram SVG, /metrics Prometheus text.
 * Never: reads a query parameter without checking it (page and per_page are numbers,
 * per_page capped, status and by from a fixed list), or lets a store error's text reach a
 * page unescaped (it is JSON-encoded like everything else). */
#include "ops/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errorq.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "ops/diagram.h"
#include "ops/ops_metrics.h"
#include "ops/web.h"

#define PER_PAGE_DEFAULT 50
#define PER_PAGE_MAX 500
#define MAX_IDS 10000      /* ids one POST may name */
#define DIAGRAM_ARROWS 500 /* arrows one diagram draws; the rest is counted */
#define API_PREFIX "/api/"
#define MAX_MINUTES 1440 /* the longest window of /api/monitoring: a day */

struct mb_ops_api {
  mb_ops_api_cfg cfg;
};

/* --- answers -------------------------------------------------------------------------- */

static void reply_json(mb_http_req *r, int status, const char *json) {
  mb_http_respond(r, status, "application/json; charset=utf-8", json, strlen(json), NULL);
}

static void reply_error(mb_http_req *r, int status, const char *why) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_cstr_raw(&b, "{\"error\":");
  mb_jbuf_cstr(&b, why);
  if (status == 401) mb_jbuf_cstr_raw(&b, ",\"token_required\":true");
  mb_jbuf_cstr_raw(&b, "}");
  if (b.failed) mb_http_respond(r, 500, "text/plain", "out of memory", 13, NULL);
  else reply_json(r, status, b.data);
  mb_jbuf_free(&b);
}

static int http_status_of(int status) {
  return status == MB_ENOTFOUND ? 404 : status == MB_EINVAL ? 400 : 500;
}

/* Answers with json (taken) or with err's status and text. */
static void reply_result(mb_http_req *r, int rc, char *json, const mb_err *err) {
  if (rc == MB_OK) reply_json(r, 200, json);
  else {
    if (rc != MB_ENOTFOUND && rc != MB_EINVAL)
      mb_log(MB_ERROR, "moonbus.ops", NULL, NULL, "%s %s: %s", mb_http_method(r), mb_http_path(r),
             err->msg);
    reply_error(r, http_status_of(rc), err->msg);
  }
  free(json);
}

/* --- parameters ----------------------------------------------------------------------- */

/* A positive whole number parameter, dflt when absent; -1 when it is not one. */
static long number_arg(mb_http_req *r, const char *key, long dflt) {
  const char *v = mb_http_arg(r, key);
  if (v == NULL || *v == '\0') return dflt;
  char *end;
  long n = strtol(v, &end, 10);
  return *end == '\0' && n >= 1 && n <= 1000000000L ? n : -1;
}

static int one_of(const char *v, const char *const *allowed) {
  for (; *allowed; allowed++)
    if (strcmp(v, *allowed) == 0) return 1;
  return 0;
}

static const char *const statuses[] = {"unresolved", "retrying", "resolved",
                                       "archived",   "all",      NULL};
static const char *const groupings[] = {"exception", "type", "endpoint", "queue", NULL};

/* Checks status, by, page and per_page; answers 400 and returns 0 when one is wrong. */
static int paging(mb_http_req *r, long *page, long *per_page) {
  const char *status = mb_http_arg(r, "status"), *by = mb_http_arg(r, "by");
  *page = number_arg(r, "page", 1);
  *per_page = number_arg(r, "per_page", PER_PAGE_DEFAULT);
  if (*per_page > PER_PAGE_MAX) *per_page = PER_PAGE_MAX;
  const char *bad = *page < 0       ? "page must be a whole number from 1"
                    : *per_page < 0 ? "per_page must be a whole number from 1"
                    : status && !one_of(status, statuses)
                        ? "status must be unresolved, retrying, resolved, archived or all"
                    : by && !one_of(by, groupings)
                        ? "by must be exception, type, endpoint or queue"
                        : NULL;
  if (bad) reply_error(r, 400, bad);
  return bad == NULL;
}

/* --- reads ------------------------------------------------------------------------------ */

static void get_errors(mb_ops_api *api, mb_http_req *r) {
  mb_ops_query q = {mb_http_arg(r, "group"),
                    mb_http_arg(r, "by"),
                    mb_http_arg(r, "q"),
                    mb_http_arg(r, "endpoint"),
                    mb_http_arg(r, "type"),
                    mb_http_arg(r, "status"),
                    0,
                    0};
  if (!paging(r, &q.page, &q.per_page)) return;
  char *json = NULL;
  mb_err err;
  int rc = api->cfg.store->ops->errors(api->cfg.store, &q, &json, &err);
  reply_result(r, rc, json, &err);
}

static void get_groups(mb_ops_api *api, mb_http_req *r) {
  long page, per_page;
  if (!paging(r, &page, &per_page)) return;
  char *json = NULL;
  mb_err err;
  int rc = api->cfg.store->ops->groups(api->cfg.store, mb_http_arg(r, "by"),
                                       mb_http_arg(r, "status"), &json, &err);
  reply_result(r, rc, json, &err);
}

static void get_search(mb_ops_api *api, mb_http_req *r) {
  long page, per_page;
  const char *q = mb_http_arg(r, "q");
  if (!paging(r, &page, &per_page)) return;
  if (q == NULL || *q == '\0') {
    reply_error(r, 400, "search needs q: an id, a conversation id, a type or words");
    return;
  }
  char *json = NULL;
  mb_err err;
  int rc = api->cfg.store->ops->search(api->cfg.store, q, page, per_page, &json, &err);
  reply_result(r, rc, json, &err);
}

static void get_message(mb_ops_api *api, mb_http_req *r, const char *id) {
  char *json = NULL;
  mb_err err;
  int rc = api->cfg.store->ops->message(api->cfg.store, id, &json, &err);
  reply_result(r, rc, json, &err);
}

static void get_conversation(mb_ops_api *api, mb_http_req *r, const char *id, int svg) {
  char *json = NULL;
  mb_err err;
  int rc = api->cfg.store->ops->conversation(api->cfg.store, id, &json, &err);
  if (rc != MB_OK || !svg) {
    reply_result(r, rc, json, &err);
    return;
  }
  long page = number_arg(r, "page", 1);
  mb_json *doc = NULL;
  mb_jbuf out = MB_JBUF_INIT;
  if (page < 0) out.failed = 1;
  else if (mb_json_parse(json, strlen(json), &doc, &err) == MB_OK)
    mb_diagram_svg(mb_jv_get(mb_json_root(doc), "items"), (size_t)(page - 1) * DIAGRAM_ARROWS,
                   DIAGRAM_ARROWS, &out);
  else out.failed = 1;
  if (out.failed) reply_error(r, 500, "the diagram could not be drawn");
  else mb_http_respond(r, 200, "image/svg+xml; charset=utf-8", out.data, out.len, NULL);
  mb_jbuf_free(&out);
  mb_json_free(doc);
  free(json);
}

static void get_endpoints(mb_ops_api *api, mb_http_req *r) {
  char *json = NULL;
  mb_err err;
  int rc = api->cfg.store->ops->endpoints(api->cfg.store, &json, &err);
  reply_result(r, rc, json, &err);
}

/* GET /api/monitoring[/ENDPOINT]?minutes=N (1..1440; default 5 for all, 60 for one). */
static void get_monitoring(mb_ops_api *api, mb_http_req *r, const char *endpoint) {
  long minutes = number_arg(r, "minutes", endpoint ? 60 : 5);
  if (minutes < 1 || minutes > MAX_MINUTES) {
    reply_error(r, 400, "minutes must be a whole number from 1 to 1440");
    return;
  }
  char *json = NULL;
  mb_err err;
  int rc = api->cfg.store->ops->monitoring(api->cfg.store, endpoint, minutes,
                                           (double)mb_now_usec() / 1e6, &json, &err);
  reply_result(r, rc, json, &err);
}

static void get_events(mb_ops_api *api, mb_http_req *r) {
  long page, per_page;
  if (!paging(r, &page, &per_page)) return;
  char *json = NULL;
  mb_err err;
  int rc = api->cfg.store->ops->events(api->cfg.store, page, per_page, &json, &err);
  reply_result(r, rc, json, &err);
}

static void get_operation(mb_ops_api *api, mb_http_req *r, const char *id) {
  char *json = NULL;
  mb_err err;
  int rc = mb_ops_work_json(api->cfg.work, id, &json, &err);
  reply_result(r, rc, json, &err);
}

static void get_info(mb_ops_api *api, mb_http_req *r) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_printf(&b, "{\"version\":\"%s\",\"token_required\":%s,\"transport\":", MOONBUS_VERSION,
                 api->cfg.listens_on_loopback ? "false" : "true");
  mb_jbuf_cstr(&b, api->cfg.transport_shown);
  mb_jbuf_cstr_raw(&b, ",\"store\":");
  mb_jbuf_cstr(&b, api->cfg.store_shown);
  mb_jbuf_cstr_raw(&b, "}");
  if (b.failed) reply_error(r, 500, "out of memory");
  else reply_json(r, 200, b.data);
  mb_jbuf_free(&b);
}

/* The service's own figures, Prometheus text format. */
static void get_metrics(mb_ops_api *api, mb_http_req *r) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_cstr_raw(&b, "# HELP moonbus_ops_ingested_total Messages stored from each queue.\n"
                       "# TYPE moonbus_ops_ingested_total counter\n");
  for (size_t i = 0; i < api->cfg.n_ingesters; i++) {
    mb_jbuf_cstr_raw(&b, "moonbus_ops_ingested_total{queue=\"");
    for (const char *c = api->cfg.queues[i]; *c; c++)
      if (*c == '"' || *c == '\\') mb_jbuf_printf(&b, "\\%c", *c);
      else mb_jbuf_raw(&b, c, 1);
    mb_jbuf_printf(&b, "\"} %lu\n", mb_ops_ingest_count(api->cfg.ingesters[i]));
  }
  mb_ops_metrics_render(api->cfg.metrics, &b);
  if (b.failed) reply_error(r, 500, "out of memory");
  else mb_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL);
  mb_jbuf_free(&b);
}

/* --- changes ---------------------------------------------------------------------------- */

/* The ids member of a POST body: every item a string of 1-255 bytes, at most MAX_IDS. */
static int ids_of(const mb_jv *ids, const char ***out, size_t *n, const char **bad) {
  size_t len = mb_jv_len(ids);
  if (mb_jv_type(ids) != MB_JSON_ARRAY || len == 0 || len > MAX_IDS) {
    *bad = "ids must be a list of 1 to 10000 message ids";
    return 0;
  }
  const char **list = calloc(len, sizeof *list);
  if (list == NULL) {
    *bad = "out of memory";
    return 0;
  }
  for (size_t i = 0; i < len; i++) {
    size_t l = 0;
    list[i] = mb_jv_string(mb_jv_at(ids, i), &l);
    if (list[i] == NULL || l == 0 || l > 255 || strlen(list[i]) != l) {
      free(list);
      *bad = "every id must be a string of 1 to 255 bytes";
      return 0;
    }
  }
  *out = list, *n = len;
  return 1;
}

/* The selection a POST body names: {ids}, {group, by} or {all: true}. */
static int selection_of(const mb_jv *body, mb_ops_selection *sel, const char **bad) {
  memset(sel, 0, sizeof *sel);
  const mb_jv *ids = mb_jv_get(body, "ids");
  sel->group = mb_jv_get_string(body, "group");
  sel->by = mb_jv_get_string(body, "by");
  sel->status = mb_jv_get_string(body, "status");
  sel->all = mb_jv_is_true(mb_jv_get(body, "all"));
  *bad = NULL;
  if (sel->by && !one_of(sel->by, groupings))
    *bad = "by must be exception, type, endpoint or queue";
  else if (sel->status && !one_of(sel->status, statuses))
    *bad = "status must be unresolved, retrying, resolved, archived or all";
  else if (sel->status && strcmp(sel->status, "all") == 0) *bad = "status all is not a selection";
  else if (ids) return ids_of(ids, (const char ***)&sel->ids, &sel->n_ids, bad);
  else if (sel->group == NULL && !sel->all)
    *bad = "name the messages: {\"ids\": [...]}, {\"group\": ID, \"by\": ...} or {\"all\": true}";
  return *bad == NULL;
}

/* Parses the request body as a JSON object; answers 400 and returns NULL if it is not. */
static mb_json *body_of(mb_http_req *r) {
  size_t len;
  const char *text = mb_http_body(r, &len);
  mb_json *doc = NULL;
  mb_err err;
  if (mb_json_parse(text, len, &doc, &err) != MB_OK) {
    char why[MB_ERRLEN + 32];
    snprintf(why, sizeof why, "the body is not JSON: %s", err.msg);
    reply_error(r, 400, why);
    return NULL;
  }
  if (mb_jv_type(mb_json_root(doc)) != MB_JSON_OBJECT) {
    reply_error(r, 400, "the body must be a JSON object");
    mb_json_free(doc);
    return NULL;
  }
  return doc;
}

static void reply_operation(mb_http_req *r, const char *id, size_t total) {
  char json[128];
  snprintf(json, sizeof json, "{\"operation\":\"%s\",\"total\":%zu}", id, total);
  mb_http_respond(r, 202, "application/json; charset=utf-8", json, strlen(json), NULL);
}

static void post_action(mb_ops_api *api, mb_http_req *r, mb_ops_action action) {
  mb_json *doc = body_of(r);
  if (doc == NULL) return;
  mb_ops_selection sel;
  const char *bad;
  char **ids = NULL, op[MB_OPS_OPERATION_ID_MAX];
  size_t n = 0;
  mb_err err;
  if (!selection_of(mb_json_root(doc), &sel, &bad)) reply_error(r, 400, bad);
  else if (api->cfg.store->ops->select(api->cfg.store, action, &sel, &ids, &n, &err) != MB_OK)
    reply_result(r, err.status, NULL, &err);
  else if (mb_ops_work_start(api->cfg.work, action, ids, n, "api", op, &err) != MB_OK)
    reply_result(r, err.status, NULL, &err);
  else reply_operation(r, op, n);
  free((void *)sel.ids);
  mb_json_free(doc);
}

/* Applies the headers member of an edit ({name: string}; null removes) to m. A header sent
 * back as the stored copy had it is no change (the UI sends them all); the bus's own
 * (moonbus.*, traceparent) cannot be changed. */
static const char *edit_headers(const mb_jv *headers, const mb_headers *stored, mb_outgoing *m) {
  if (headers == NULL) return NULL;
  if (mb_jv_type(headers) != MB_JSON_OBJECT) return "headers must be an object of strings";
  for (size_t i = 0; i < mb_jv_len(headers); i++) {
    const char *key = mb_jv_key_at(headers, i), *v = mb_jv_string(mb_jv_at(headers, i), NULL);
    const char *now = mb_headers_get(stored, key);
    if (v && now && strcmp(v, now) == 0) continue; /* sent back as it was */
    if (strncmp(key, MB_RESERVED_PREFIX, strlen(MB_RESERVED_PREFIX)) == 0)
      return "headers named moonbus.* belong to the bus and cannot be edited";
    if (v == NULL && mb_jv_type(mb_jv_at(headers, i)) == MB_JSON_NULL)
      mb_headers_remove(&m->env.headers, key);
    else if (v == NULL) return "every header value must be a string (or null to remove it)";
    else if (mb_header_key_problem(key, 0)) return mb_header_key_problem(key, 0);
    else if (mb_headers_set(&m->env.headers, key, v) != MB_OK) return "out of memory";
  }
  mb_err err;
  return mb_headers_check(&m->env.headers, 1, &err) == MB_OK ? NULL
                                                             : "the headers break the limits";
}

/* The edited message: the stored copy unparked, a new id, the new body and headers. */
static const char *edited_message(mb_ops_api *api, const char *id, const mb_jv *req,
                                  mb_outgoing **out, char **claim_key, int *status) {
  size_t len;
  const char *body = mb_jv_string(mb_jv_get(req, "body"), &len);
  mb_json *check = NULL;
  mb_err err;
  *status = 400;
  if (body == NULL) return "body must be the message body as JSON text";
  if (mb_json_parse(body, len, &check, &err) != MB_OK) return "body is not valid JSON";
  mb_json_free(check);
  mb_envelope env;
  mb_envelope_init(&env);
  int rc = api->cfg.store->ops->envelope(api->cfg.store, id, &env, &err);
  if (rc == MB_OK) rc = mb_errorq_unpark(&env, out, &err);
  if (rc != MB_OK) {
    mb_envelope_free(&env);
    *status = http_status_of(rc);
    return rc == MB_ENOTFOUND ? "no failed message with that id"
                              : "the message cannot be sent again (it has no failed queue)";
  }
  const char *bad = edit_headers(mb_jv_get(req, "headers"), &env.headers, *out);
  const char *claim = mb_claim_key(&env.headers);
  if (bad == NULL && claim && (*claim_key = strdup(claim)) == NULL) bad = "out of memory";
  mb_headers_remove(&(*out)->env.headers, MB_H_CLAIM); /* the edited body is the body */
  mb_headers_remove(&(*out)->env.headers, MB_H_CLAIM_SHA256);
  mb_envelope_free(&env);
  if (bad == NULL && (mb_envelope_set_body(&(*out)->env, body, len) != MB_OK ||
                      mb_headers_set(&(*out)->env.headers, MB_H_EDITED_FROM, id) != MB_OK))
    bad = "out of memory", *status = 500;
  if (bad) mb_outgoing_free(*out), *out = NULL;
  else mb_uuidv7((*out)->env.id);
  return bad;
}

static void post_edit(mb_ops_api *api, mb_http_req *r, const char *id) {
  mb_json *doc = body_of(r);
  if (doc == NULL) return;
  mb_outgoing *m = NULL;
  int status;
  char op[MB_OPS_OPERATION_ID_MAX], new_id[MB_ID_LEN + 1], *claim = NULL;
  const char *bad = edited_message(api, id, mb_json_root(doc), &m, &claim, &status);
  mb_err err;
  if (bad) reply_error(r, status, bad);
  else {
    snprintf(new_id, sizeof new_id, "%s", m->env.id);
    if (mb_ops_work_edit(api->cfg.work, id, claim, m, "api", op, &err) != MB_OK)
      reply_result(r, err.status, NULL, &err);
    else {
      mb_jbuf b = MB_JBUF_INIT;
      mb_jbuf_printf(&b, "{\"id\":\"%s\",\"operation\":\"%s\",\"original\":", new_id, op);
      mb_jbuf_cstr(&b, id);
      mb_jbuf_cstr_raw(&b, "}");
      reply_json(r, b.failed ? 500 : 200, b.failed ? "{\"error\":\"out of memory\"}" : b.data);
      mb_jbuf_free(&b);
    }
  }
  free(claim);
  mb_json_free(doc);
}

/* --- access ------------------------------------------------------------------------------ */

/* Equal strings, in a time that does not depend on where they differ. */
static int same_secret(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char diff = (unsigned char)(la != lb);
  for (size_t i = 0; i < la; i++) diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
  return diff == 0;
}

static int has_token(const mb_ops_api *api, mb_http_req *r) {
  const char *auth = mb_http_header(r, "Authorization");
  return api->cfg.token && auth && strncmp(auth, "Bearer ", 7) == 0 &&
         same_secret(auth + 7, api->cfg.token);
}

/* A POST from a page of another site, or a form, never reaches an action. */
static const char *cross_site(mb_http_req *r) {
  const char *type = mb_http_header(r, "Content-Type");
  const char *origin = mb_http_header(r, "Origin"), *host = mb_http_header(r, "Host");
  if (type == NULL || strncmp(type, "application/json", 16) != 0)
    return "changes need Content-Type: application/json";
  if (origin && strcmp(origin, "null") != 0) {
    const char *o = strstr(origin, "://");
    if (host == NULL || o == NULL || strcmp(o + 3, host) != 0)
      return "a change from a page of another origin is refused";
  } else if (origin) return "a change from a page of another origin is refused";
  return NULL;
}

/* 1 if the request may go on; else it was answered (401 or 403). */
static int allowed(mb_ops_api *api, mb_http_req *r, int changes) {
  int need = !mb_http_peer_is_loopback(r) || (changes && !api->cfg.listens_on_loopback);
  if (need && !has_token(api, r)) {
    reply_error(r, 401,
                api->cfg.token ? "this call needs the token: Authorization: Bearer TOKEN"
                               : "this service was started without a token: only loopback "
                                 "may use it");
    return 0;
  }
  const char *why = changes ? cross_site(r) : NULL;
  if (why) reply_error(r, 403, why);
  return why == NULL;
}

/* --- routing ------------------------------------------------------------------------------ */

/* If path is prefix + ONE + suffix with ONE a single segment, copies ONE to out. */
static int match(const char *path, const char *prefix, const char *suffix, char *out,
                 size_t len) {
  size_t lp = strlen(prefix), ls = strlen(suffix), l = strlen(path);
  if (l <= lp + ls || strncmp(path, prefix, lp) != 0 || strcmp(path + l - ls, suffix) != 0)
    return 0;
  size_t n = l - lp - ls;
  if (n >= len || memchr(path + lp, '/', n)) return 0;
  memcpy(out, path + lp, n);
  out[n] = '\0';
  return 1;
}

static int route_get(mb_ops_api *api, mb_http_req *r, const char *p) {
  char id[512];
  if (strcmp(p, "/api/errors") == 0) get_errors(api, r);
  else if (strcmp(p, "/api/errors/groups") == 0) get_groups(api, r);
  else if (strcmp(p, "/api/search") == 0) get_search(api, r);
  else if (strcmp(p, "/api/endpoints") == 0) get_endpoints(api, r);
  else if (strcmp(p, "/api/info") == 0) get_info(api, r);
  else if (strcmp(p, "/api/monitoring") == 0) get_monitoring(api, r, NULL);
  else if (strcmp(p, "/api/events") == 0) get_events(api, r);
  else if (match(p, "/api/monitoring/", "", id, sizeof id)) get_monitoring(api, r, id);
  else if (strcmp(p, "/metrics") == 0) get_metrics(api, r);
  else if (match(p, "/api/messages/", "", id, sizeof id)) get_message(api, r, id);
  else if (match(p, "/api/operations/", "", id, sizeof id)) get_operation(api, r, id);
  else if (match(p, "/api/conversations/", "/diagram.svg", id, sizeof id))
    get_conversation(api, r, id, 1);
  else if (match(p, "/api/conversations/", "", id, sizeof id)) get_conversation(api, r, id, 0);
  else return 0;
  return 1;
}

static int route_post(mb_ops_api *api, mb_http_req *r, const char *p) {
  char id[512];
  if (strcmp(p, "/api/errors/retry") == 0) post_action(api, r, MB_OPS_RETRY);
  else if (strcmp(p, "/api/errors/archive") == 0) post_action(api, r, MB_OPS_ARCHIVE);
  else if (strcmp(p, "/api/errors/restore") == 0) post_action(api, r, MB_OPS_RESTORE);
  else if (strcmp(p, "/api/errors/delete") == 0) post_action(api, r, MB_OPS_DELETE);
  else if (match(p, "/api/errors/", "/edit-retry", id, sizeof id)) post_edit(api, r, id);
  else return 0;
  return 1;
}

static void serve_file(mb_http_req *r, const char *path) {
  const mb_web_file *f = mb_ops_web_find(path);
  if (f) mb_http_respond_static(r, 200, f->content_type, f->data, f->len);
  else reply_error(r, 404, "no such page");
}

void mb_ops_api_handle(void *ud, mb_http_req *r) {
  mb_ops_api *api = ud;
  const char *method = mb_http_method(r), *path = mb_http_path(r);
  int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  int post = strcmp(method, "POST") == 0;
  int is_api = strncmp(path, API_PREFIX, strlen(API_PREFIX)) == 0 ||
               strcmp(path, "/metrics") == 0;
  if (!get && !post) reply_error(r, 405, "only GET and POST are served");
  else if (get && !is_api) serve_file(r, path); /* the UI's files hold no data */
  else if (!allowed(api, r, post)) return;
  else if (get && route_get(api, r, path)) return;
  else if (post && route_post(api, r, path)) return;
  else reply_error(r, 404, "no such call");
}

mb_ops_api *mb_ops_api_new(const mb_ops_api_cfg *cfg) {
  mb_ops_api *api = malloc(sizeof *api);
  if (api) api->cfg = *cfg;
  return api;
}

void mb_ops_api_free(mb_ops_api *api) { free(api); }
