/* cli_errors.c — `moonbus errors`: the operator's view of an error queue (DESIGN §6).
 *   list                  one line per parked message: id, type, failed queue, when, why
 *   show ID               its headers and body
 *   retry ID | --all      back to the queue it failed in, failure and retry headers removed
 *   delete ID             gone for good
 * A retry sends the message (waiting for the transport's confirm) before it removes the
 * parked copy: at worst a message is both retried and still parked, never lost.
 * Never: handles a message, or changes one it does not retry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runtime.h"

#define ERRORS_BATCH 1000

/* The first line of s, at most max bytes of it. */
static void first_line(const char *s, char *out, size_t max) {
  size_t n = s ? strcspn(s, "\n") : 0;
  if (n >= max) n = max - 1;
  memcpy(out, s ? s : "", n);
  out[n] = '\0';
}

static const char *header_or(const mb_delivery *d, const char *key, const char *dflt) {
  const char *v = mb_headers_get(&d->env.headers, key);
  return v ? v : dflt;
}

static int list(mb_runtime *rt, const char *queue, mb_err *err) {
  mb_delivery *got[ERRORS_BATCH];
  size_t n;
  int rc = rt->transport->ops->browse(rt->transport, queue, ERRORS_BATCH, got, &n, err);
  for (size_t i = 0; rc == MB_OK && i < n; i++) {
    char why[200];
    first_line(header_or(got[i], MB_H_EXCEPTION_MESSAGE, got[i]->problem), why, sizeof why);
    printf("%s\t%s\t%s\t%s\t%s\n", got[i]->env.id, got[i]->env.type ? got[i]->env.type : "?",
           header_or(got[i], MB_H_FAILED_QUEUE, "?"), header_or(got[i], MB_H_FAILED_AT, "?"),
           why);
  }
  for (size_t i = 0; i < n; i++) mb_delivery_free(got[i]);
  return rc;
}

/* A copy of the parked message with id (the caller frees it), or NULL and MB_ENOTFOUND. */
static int find(mb_runtime *rt, const char *queue, const char *id, mb_delivery **out,
                mb_err *err) {
  mb_delivery *got[ERRORS_BATCH];
  size_t n;
  *out = NULL;
  int rc = rt->transport->ops->browse(rt->transport, queue, ERRORS_BATCH, got, &n, err);
  for (size_t i = 0; i < n; i++) {
    if (rc == MB_OK && *out == NULL && strcmp(got[i]->env.id, id) == 0) *out = got[i];
    else mb_delivery_free(got[i]);
  }
  if (rc == MB_OK && *out == NULL)
    rc = mb_err_set(err, MB_ENOTFOUND, "queue '%s' holds no message %s", queue, id);
  return rc;
}

static int show(mb_runtime *rt, const char *queue, const char *id, mb_err *err) {
  mb_delivery *d;
  int rc = find(rt, queue, id, &d, err);
  if (rc != MB_OK) return rc;
  printf("id: %s\ntype: %s\n", d->env.id, d->env.type ? d->env.type : "");
  if (d->env.correlation_id) printf("correlation_id: %s\n", d->env.correlation_id);
  if (d->env.reply_to) printf("reply_to: %s\n", d->env.reply_to);
  if (d->problem) printf("problem: %s\n", d->problem);
  for (size_t i = 0; i < d->env.headers.len; i++)
    printf("%s: %s\n", d->env.headers.items[i].key, d->env.headers.items[i].value);
  printf("\n%.*s\n", (int)d->env.body_len, d->env.body ? d->env.body : "");
  mb_delivery_free(d);
  return MB_OK;
}

/* What a parked copy carries because it failed, and nothing else of moonbus's. */
static int failure_header(const char *key) {
  static const char *const prefixes[] = {"moonbus.failed.", "moonbus.exception.",
                                         "moonbus.retries.", MB_H_DELIVER_AT,
                                         "moonbus.expires_at"};
  for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
    if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0) return 1;
  return 0;
}

/* The message as it was before it failed, addressed to the queue it failed in. */
static int unparked(const mb_delivery *d, mb_outgoing **out, mb_err *err) {
  const char *queue = mb_headers_get(&d->env.headers, MB_H_FAILED_QUEUE);
  if (queue == NULL)
    return mb_err_set(err, MB_EINVAL, "message %s has no %s header: it did not fail in a "
                      "queue moonbus knows, so there is nowhere to send it back", d->env.id,
                      MB_H_FAILED_QUEUE);
  mb_outgoing *m = malloc(sizeof *m);
  int rc = m ? MB_OK : MB_ENOMEM;
  if (m) mb_outgoing_init(m);
  if (rc == MB_OK) rc = mb_envelope_copy(&m->env, &d->env);
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

static int retry_one(mb_runtime *rt, const char *queue, const mb_delivery *d, mb_err *err) {
  mb_outgoing *m;
  int rc = unparked(d, &m, err);
  char dest[MB_QUEUE_NAME_MAX + 1];
  if (rc == MB_OK) snprintf(dest, sizeof dest, "%s", m->dest);
  if (rc == MB_OK) rc = mb_runtime_dispatch(rt, &m, 1, err);
  if (rc == MB_OK) rc = rt->transport->ops->remove(rt->transport, queue, d->env.id, err);
  if (rc == MB_OK) printf("%s\t-> %s\n", d->env.id, dest);
  return rc;
}

static int retry(mb_runtime *rt, const char *queue, const char *id, mb_err *err) {
  mb_delivery *d;
  int rc = find(rt, queue, id, &d, err);
  if (rc == MB_OK) rc = retry_one(rt, queue, d, err);
  mb_delivery_free(d);
  return rc;
}

/* Every parked message, a batch at a time; one that cannot go back is reported and left. */
static int retry_all(mb_runtime *rt, const char *queue, mb_err *err) {
  mb_delivery *got[ERRORS_BATCH];
  size_t n;
  int failures = 0;
  int rc = rt->transport->ops->browse(rt->transport, queue, ERRORS_BATCH, got, &n, err);
  for (size_t i = 0; i < n; i++) {
    mb_err one;
    if (rc == MB_OK && retry_one(rt, queue, got[i], &one) != MB_OK) {
      fprintf(stderr, "moonbus: %s\n", one.msg);
      failures++;
    }
    mb_delivery_free(got[i]);
  }
  if (rc == MB_OK && failures)
    rc = mb_err_set(err, MB_EIO, "%d of %zu messages were not retried", failures, n);
  return rc;
}

int mb_cli_errors(int argc, char **argv, const mb_cli_opts *opts) {
  const char *what = argc > 0 ? argv[0] : "";
  const char *arg = argc > 1 ? argv[1] : NULL;
  const char *queue = opts->queue ? opts->queue : MB_DEFAULT_ERROR_QUEUE;
  int usage = !((strcmp(what, "list") == 0 && argc == 1) ||
                ((strcmp(what, "show") == 0 || strcmp(what, "retry") == 0 ||
                  strcmp(what, "delete") == 0) && argc == 2));
  if (usage) {
    fprintf(stderr, "usage: moonbus errors list | show ID | retry ID | retry --all | delete ID "
                    "[--queue NAME] [--transport URL]\n");
    return 2;
  }
  mb_err err;
  mb_runtime *rt = mb_runtime_new(NULL, opts->transport, opts->instance);
  if (rt == NULL) return 1;
  int rc = mb_runtime_connect(rt, &err);
  if (rc == MB_OK) {
    if (strcmp(what, "list") == 0) rc = list(rt, queue, &err);
    else if (strcmp(what, "show") == 0) rc = show(rt, queue, arg, &err);
    else if (strcmp(what, "retry") == 0 && strcmp(arg, "--all") == 0) rc = retry_all(rt, queue, &err);
    else if (strcmp(what, "retry") == 0) rc = retry(rt, queue, arg, &err);
    else rc = rt->transport->ops->remove(rt->transport, queue, arg, &err);
  }
  if (rc != MB_OK) fprintf(stderr, "moonbus: %s\n", err.msg);
  mb_runtime_free(rt);
  return rc == MB_OK ? 0 : 1;
}
