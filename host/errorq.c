/* errorq.c — the error-queue copy (see errorq.h): failure headers on a byte-for-byte copy,
 * the exception text and trace bounded so the copy stays deliverable.
 * Never: sends, retries or decides anything. */
#include "errorq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "compose.h"
#include "ids.h"
#include "msgcopy.h"

/* key = at most MB_EXCEPTION_MAX bytes of text (cut on a byte, marked). */
static int set_bounded(mb_headers *h, const char *key, const char *text) {
  if (strlen(text) <= MB_EXCEPTION_MAX) return mb_headers_set(h, key, text);
  char *cut = malloc(MB_EXCEPTION_MAX + 16);
  if (cut == NULL) return MB_ENOMEM;
  snprintf(cut, MB_EXCEPTION_MAX + 16, "%.*s [cut]", MB_EXCEPTION_MAX, text);
  int rc = mb_headers_set(h, key, cut);
  free(cut);
  return rc;
}

static int add_failure_headers(const mb_delivery *d, mb_headers *h, const mb_failure *f) {
  char when[MB_TIME_LEN + 1];
  mb_time_iso(mb_now_usec(), when);
  int rc = mb_headers_set(h, MB_H_FAILED_QUEUE, d->queue);
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_FAILED_AT, when);
  if (rc == MB_OK) rc = set_bounded(h, MB_H_EXCEPTION_MESSAGE, f->reason);
  if (rc == MB_OK && f->trace) rc = set_bounded(h, MB_H_EXCEPTION_TRACE, f->trace);
  if (rc == MB_OK) rc = mb_msgcopy_set_number(h, MB_H_RETRIES_IMMEDIATE, f->immediate);
  if (rc == MB_OK) rc = mb_msgcopy_set_number(h, MB_H_RETRIES_DELAYED, f->round);
  if (rc == MB_OK) rc = mb_msgcopy_set_number(h, MB_H_FAILED_DELIVERIES, (long)d->delivery_count);
  return rc;
}

mb_outgoing *mb_errorq_copy(const mb_delivery *d, const mb_failure *f) {
  mb_outgoing *copy = mb_msgcopy(d, f->queue);
  if (copy == NULL) return NULL;
  copy->archive = 1;
  if (add_failure_headers(d, &copy->env.headers, f) != MB_OK) {
    mb_outgoing_free(copy);
    return NULL;
  }
  return copy;
}

int mb_errorq_is_request(const mb_delivery *d) {
  return d->env.reply_to && mb_is_reply_address(d->env.reply_to);
}

/* Fills the notice's envelope: a message correlated like a reply to d, caused by it. */
static int notice_envelope(mb_envelope *e, const mb_delivery *d, const char *reason,
                           const char *endpoint, const char *host) {
  mb_uuidv7(e->id);
  int rc = mb_envelope_set_type(e, MB_TYPE_REQUEST_FAILED);
  if (rc == MB_OK) rc = mb_envelope_set_correlation_id(e, mb_compose_reply_correlation(&d->env));
  if (rc == MB_OK) rc = mb_envelope_set_body(e, "{}", 2);
  if (rc == MB_OK) rc = mb_headers_set(&e->headers, MB_H_KIND, "message");
  if (rc == MB_OK) rc = mb_compose_lineage(e, d, endpoint, host);
  if (rc == MB_OK) rc = mb_headers_set(&e->headers, MB_H_FAILED_QUEUE, d->queue);
  if (rc == MB_OK) rc = set_bounded(&e->headers, MB_H_EXCEPTION_MESSAGE, reason);
  return rc;
}

mb_outgoing *mb_errorq_notice(const mb_delivery *d, const char *reason, const char *endpoint,
                              const char *host) {
  mb_outgoing *m = malloc(sizeof *m);
  if (m == NULL) return NULL;
  mb_outgoing_init(m);
  m->route = MB_ROUTE_QUEUE;
  m->to_requester = 1;
  if ((m->dest = strdup(d->env.reply_to)) == NULL ||
      notice_envelope(&m->env, d, reason, endpoint, host) != MB_OK) {
    mb_outgoing_free(m);
    return NULL;
  }
  return m;
}

/* What a parked copy carries because it failed, and nothing else of moonbus's. */
static int failure_header(const char *key) {
  static const char *const prefixes[] = {MB_H_FAILED_PREFIX, MB_H_EXCEPTION_PREFIX,
                                         MB_H_RETRIES_PREFIX, MB_H_DELIVER_AT, MB_H_EXPIRES_AT};
  for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
    if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0) return 1;
  return 0;
}

int mb_errorq_unpark(const mb_envelope *env, mb_outgoing **out, mb_err *err) {
  const char *queue = mb_headers_get(&env->headers, MB_H_FAILED_QUEUE);
  if (queue == NULL)
    return mb_err_set(err, MB_EINVAL,
                      "message %s has no %s header: it did not fail in a "
                      "queue moonbus knows, so there is nowhere to send it back",
                      env->id, MB_H_FAILED_QUEUE);
  mb_outgoing *m = malloc(sizeof *m);
  int rc = m ? MB_OK : MB_ENOMEM;
  if (m) mb_outgoing_init(m);
  if (rc == MB_OK) rc = mb_envelope_copy(&m->env, env);
  if (rc == MB_OK && (m->dest = strdup(queue)) == NULL) rc = MB_ENOMEM;
  for (size_t i = 0; rc == MB_OK && i < m->env.headers.len;) {
    if (failure_header(m->env.headers.items[i].key))
      mb_headers_remove(&m->env.headers, m->env.headers.items[i].key);
    else i++;
  }
  if (rc != MB_OK) {
    mb_outgoing_free(m);
    return mb_err_set(err, rc, "out of memory");
  }
  m->route = MB_ROUTE_QUEUE;
  *out = m;
  return MB_OK;
}
