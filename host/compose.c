/* compose.c — builds outgoing envelopes (see compose.h). Owns the rules for the kind,
 * version, conversation, related-to, origin, time, delay and trace headers, and refuses
 * headers that break mb_headers_check (a receiver would park the message). A body over the
 * endpoint's claim_check goes straight from the caller's buffer to the claim store (never
 * copied into the envelope): the message carries the claim headers and "". Never sends
 * anything. */
#include "compose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claim.h"
#include "clock.h"
#include "ids.h"
#include "trace.h"

static int set_time_header(mb_headers *h, const char *key, int64_t usec) {
  char when[MB_TIME_LEN + 1];
  mb_time_iso(usec, when);
  return mb_headers_set(h, key, when);
}

/* The cause's conversation, or (first message) this message's own id. */
static const char *conversation_of(const mb_delivery *cause, const char *own_id) {
  const char *conv = cause ? mb_headers_get(&cause->env.headers, MB_H_CONVERSATION) : NULL;
  if (conv) return conv;
  return cause ? cause->env.id : own_id;
}

static int check_request(const mb_runtime *rt, const mb_compose_req *req, mb_err *err) {
  if (req->body_len > mb_runtime_max_body(rt))
    return mb_err_set(err, MB_ETOOBIG,
                      "body of %s is %zu bytes, over the limit of %zu bytes (max_body of "
                      "endpoint %s)",
                      req->type, req->body_len, mb_runtime_max_body(rt), mb_runtime_origin(rt));
  mb_err rule;
  if (req->headers && mb_headers_check(req->headers, 0, &rule) != MB_OK)
    return mb_err_set(err, MB_EINVAL, "headers of %s: %s", req->type, rule.msg);
  if (req->route == MB_ROUTE_QUEUE) {
    const char *why = mb_queue_name_problem(req->dest);
    if (why) return mb_err_set(err, MB_EINVAL, "destination of %s: %s", req->type, why);
  }
  return MB_OK;
}

/* What a message says of its cause and sender: conversation, related_to, origin, time. */
static int lineage_headers(mb_headers *h, const mb_delivery *cause, const char *own_id,
                           const char *origin, const char *host, int64_t now) {
  int rc = mb_headers_set(h, MB_H_CONVERSATION, conversation_of(cause, own_id));
  if (rc == MB_OK && cause) rc = mb_headers_set(h, MB_H_RELATED_TO, cause->env.id);
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_ORIGIN_ENDPOINT, origin);
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_ORIGIN_HOST, host);
  if (rc == MB_OK) rc = set_time_header(h, MB_H_TIME_SENT, now);
  return rc;
}

/* A child span of the cause's trace (or a new trace), unless h has a traceparent. */
static int trace_header(mb_headers *h, const mb_delivery *cause) {
  if (mb_headers_get(h, MB_H_TRACEPARENT) != NULL) return MB_OK; /* the script's wins */
  char tp[MB_TRACEPARENT_LEN + 1];
  mb_traceparent_child(cause ? mb_headers_get(&cause->env.headers, MB_H_TRACEPARENT) : NULL, tp);
  return mb_headers_set(h, MB_H_TRACEPARENT, tp);
}

int mb_compose_lineage(mb_envelope *e, const mb_delivery *cause, const char *origin,
                       const char *host) {
  int rc = lineage_headers(&e->headers, cause, e->id, origin, host, mb_now_usec());
  return rc == MB_OK ? trace_header(&e->headers, cause) : rc;
}

static int version_header(mb_headers *h, long long version) {
  char text[24];
  snprintf(text, sizeof text, "%lld", version);
  return mb_headers_set(h, MB_H_VERSION, text);
}

static int fill_headers(const mb_runtime *rt, const mb_delivery *cause, const mb_compose_req *req,
                        mb_envelope *e) {
  mb_headers *h = &e->headers;
  int64_t now = mb_now_usec();
  const char *origin = req->origin ? req->origin : mb_runtime_origin(rt);
  int rc = mb_headers_set(h, MB_H_KIND, mb_kind_name(req->kind));
  if (rc == MB_OK && req->version > 0) rc = version_header(h, req->version);
  if (rc == MB_OK) rc = lineage_headers(h, cause, e->id, origin, mb_runtime_host(rt), now);
  if (rc == MB_OK && req->delay > 0)
    rc = set_time_header(h, MB_H_DELIVER_AT, now + (int64_t)(req->delay * 1e6));
  if (rc == MB_OK && req->ttl > 0)
    rc = set_time_header(h, MB_H_EXPIRES_AT, now + (int64_t)((req->delay + req->ttl) * 1e6));
  for (size_t i = 0; rc == MB_OK && req->headers && i < req->headers->len; i++)
    rc = mb_headers_set(h, req->headers->items[i].key, req->headers->items[i].value);
  if (rc == MB_OK) rc = trace_header(h, cause);
  return rc;
}

static const char *reply_address(const mb_runtime *rt, const mb_compose_req *req) {
  if (req->reply_to) return req->reply_to;
  return mb_runtime_endpoint(rt);
}

/* 1 if req's body goes to the claim store rather than into the message. */
static int claimed(const mb_runtime *rt, const mb_compose_req *req) {
  size_t over = mb_runtime_cfg(rt)->claim_check;
  return mb_runtime_claims(rt) != NULL && over > 0 && req->body_len > over;
}

/* Stores the body in the claim store and points m at it; frees m on failure. */
static int stow(const mb_runtime *rt, const mb_compose_req *req, mb_outgoing *m, mb_err *err) {
  int rc =
      mb_claim_stow(mb_runtime_claims(rt), &m->env, req->body, req->body_len, req->delay, err);
  if (rc != MB_OK) mb_outgoing_free(m);
  return rc;
}

int mb_compose(const mb_runtime *rt, const mb_delivery *cause, const mb_compose_req *req,
               mb_outgoing **out, mb_err *err) {
  *out = NULL;
  int rc = check_request(rt, req, err);
  if (rc != MB_OK) return rc;
  mb_outgoing *m = malloc(sizeof *m);
  if (m == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory composing %s", req->type);
  mb_outgoing_init(m);
  mb_envelope *e = &m->env;
  mb_uuidv7(e->id);
  m->route = req->route;
  m->delay = req->delay;
  rc = mb_envelope_set_type(e, req->type);
  if (rc == MB_OK && !claimed(rt, req)) rc = mb_envelope_set_body(e, req->body, req->body_len);
  if (rc == MB_OK) rc = mb_envelope_set_correlation_id(e, req->correlation_id);
  if (rc == MB_OK) rc = mb_envelope_set_reply_to(e, reply_address(rt, req));
  if (rc == MB_OK) rc = fill_headers(rt, cause, req, e);
  if (rc == MB_OK && mb_headers_check(&e->headers, 1, err) != MB_OK) { /* the bus's added */
    char why[MB_ERRLEN];
    snprintf(why, sizeof why, "%s", err->msg);
    mb_outgoing_free(m);
    return mb_err_set(err, MB_EINVAL,
                      "headers of %s with the bus's own: %s (at most %d headers "
                      "and %u bytes of keys and values in all)",
                      req->type, why, MB_HEADERS_MAX_COUNT, MB_HEADERS_MAX_BYTES);
  }
  if (rc == MB_OK && req->route == MB_ROUTE_QUEUE && (m->dest = strdup(req->dest)) == NULL)
    rc = MB_ENOMEM;
  if (rc != MB_OK) {
    mb_outgoing_free(m);
    return mb_err_set(err, rc, "out of memory composing %s", req->type);
  }
  if (claimed(rt, req) && (rc = stow(rt, req, m, err)) != MB_OK) return rc;
  *out = m;
  return MB_OK;
}

const char *mb_compose_reply_correlation(const mb_envelope *in) {
  if (in->correlation_id) return in->correlation_id;
  const char *foreign = mb_headers_get(&in->headers, MB_H_FOREIGN_ID);
  return foreign && foreign[0] ? foreign : in->id;
}
