/* cli_trace.c — `moonbus trace CONVERSATION_ID`: one conversation in the terminal, as a
 * causal tree. It browses the audit queue (--audit-queue, default audit) and the error
 * queue (--queue, default error) without taking anything, keeps the messages whose
 * moonbus.conversation_id is the one asked for, and prints each under the message it was
 * sent from (moonbus.related_to), indented, siblings in the order they were sent:
 *   TYPE  KIND  FROM -> TO  TIME_SENT  ID  [FAILED: reason]
 * A message whose parent is not among them (its audit copy was swept or consumed by
 * `moonbus ops`) starts a tree of its own at the top level. An event handled by several
 * endpoints has an audit copy per endpoint: each is a line, and its children hang under
 * the first. While `moonbus ops` runs it empties both queues: its web UI and
 * GET /api/conversations/ID show the conversation then.
 * Never: takes, changes or reorders a message (on RabbitMQ a browse puts messages back,
 * which may change their order in the queue). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "endpoint.h"
#include "log.h"
#include "runtime.h"

#define MAX_DEPTH 64 /* deeper ones print at this indentation */

typedef struct node {
  mb_delivery *d;
  int failed;  /* from the error queue */
  long parent; /* index, or -1 */
  int printed;
} node;

typedef struct trace {
  const char *conversation;
  int failed; /* the queue being browsed is the error queue */
  int oom;
  node *nodes;
  size_t n, cap;
} trace;

static const char *hdr(const mb_delivery *d, const char *key) {
  const char *v = mb_headers_get(&d->env.headers, key);
  return v ? v : "";
}

static int keep(void *ud, mb_delivery *d) {
  trace *tr = ud;
  const char *conv = mb_headers_get(&d->env.headers, MB_H_CONVERSATION);
  if (conv == NULL || strcmp(conv, tr->conversation) != 0) {
    mb_delivery_free(d);
    return MB_BROWSE_NEXT;
  }
  if (tr->n == tr->cap) {
    size_t cap = tr->cap ? 2 * tr->cap : 64;
    node *grown = realloc(tr->nodes, cap * sizeof *grown);
    if (grown == NULL) {
      mb_delivery_free(d);
      tr->oom = 1;
      return MB_BROWSE_STOP;
    }
    tr->nodes = grown, tr->cap = cap;
  }
  tr->nodes[tr->n++] = (node){d, tr->failed, -1, 0};
  return MB_BROWSE_NEXT;
}

/* Siblings in the order they were sent (ISO times compare as text), then by id. */
static int by_time(const void *a, const void *b) {
  const node *x = a, *y = b;
  int c = strcmp(hdr(x->d, MB_H_TIME_SENT), hdr(y->d, MB_H_TIME_SENT));
  return c ? c : strcmp(x->d->env.id, y->d->env.id);
}

static void link_parents(trace *tr) {
  for (size_t i = 0; i < tr->n; i++) {
    const char *rel = mb_headers_get(&tr->nodes[i].d->env.headers, MB_H_RELATED_TO);
    for (size_t j = 0; rel && j < tr->n; j++)
      if (j != i && strcmp(tr->nodes[j].d->env.id, rel) == 0) {
        tr->nodes[i].parent = (long)j;
        break;
      }
  }
}

static void print_line(const node *x, int depth) {
  const mb_delivery *d = x->d;
  const char *to = hdr(d, MB_H_PROCESSING_ENDPOINT);
  if (*to == '\0') to = hdr(d, MB_H_FAILED_QUEUE);
  char type[800], from[800], dest[800], why[400];
  mb_log_escape(d->env.type ? d->env.type : "?", d->env.type ? strlen(d->env.type) : 1, type,
                sizeof type);
  mb_log_escape(hdr(d, MB_H_ORIGIN_ENDPOINT), strlen(hdr(d, MB_H_ORIGIN_ENDPOINT)), from,
                sizeof from);
  mb_log_escape(to, strlen(to), dest, sizeof dest);
  printf("%*s%s  %s  %s -> %s  %s  %s", 2 * (depth < MAX_DEPTH ? depth : MAX_DEPTH), "", type,
         hdr(d, MB_H_KIND), *from ? from : "?", *dest ? dest : "?", hdr(d, MB_H_TIME_SENT),
         d->env.id);
  if (x->failed) {
    const char *reason = mb_headers_get(&d->env.headers, MB_H_EXCEPTION_MESSAGE);
    if (reason == NULL) reason = d->problem ? d->problem : "(no reason given)";
    mb_log_escape(reason, strcspn(reason, "\n"), why, sizeof why);
    printf("  FAILED: %s", why);
  }
  printf("\n");
}

/* x and, under it, the messages sent from it (each printed once, whatever the headers). */
static void print_tree(trace *tr, size_t i, int depth) {
  tr->nodes[i].printed = 1;
  print_line(&tr->nodes[i], depth);
  for (size_t j = 0; j < tr->n; j++)
    if (!tr->nodes[j].printed && tr->nodes[j].parent == (long)i) print_tree(tr, j, depth + 1);
}

static void print_all(trace *tr) {
  qsort(tr->nodes, tr->n, sizeof *tr->nodes, by_time);
  link_parents(tr);
  for (size_t i = 0; i < tr->n; i++) /* roots: no parent among them */
    if (tr->nodes[i].parent < 0) print_tree(tr, i, 0);
  for (size_t i = 0; i < tr->n; i++) /* a cycle of related_to (crafted headers) */
    if (!tr->nodes[i].printed) print_tree(tr, i, 0);
}

static int collect(mb_transport *t, trace *tr, const char *audit, const char *errors,
                   mb_err *err) {
  tr->failed = 0;
  int rc = t->ops->browse(t, audit, keep, tr, err);
  tr->failed = 1;
  if (rc == MB_OK && !tr->oom) rc = t->ops->browse(t, errors, keep, tr, err);
  if (rc == MB_OK && tr->oom) rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK && tr->n == 0)
    rc = mb_err_set(err, MB_ENOTFOUND,
                    "no message of conversation %.80s in queues '%s' and '%s' (while moonbus "
                    "ops runs, it holds them: see GET /api/conversations/ID)",
                    tr->conversation, audit, errors);
  return rc;
}

int mb_cli_trace(const char *conversation, const mb_cli_opts *opts) {
  mb_runtime *rt = mb_cli_reader(opts);
  if (rt == NULL) return 1;
  trace tr = {.conversation = conversation};
  mb_err err;
  int rc = collect(mb_runtime_transport(rt), &tr,
                   opts->audit_queue ? opts->audit_queue : MB_DEFAULT_AUDIT_QUEUE,
                   opts->queue ? opts->queue : MB_DEFAULT_ERROR_QUEUE, &err);
  if (rc == MB_OK) print_all(&tr);
  else mb_cli_fail(err.msg);
  for (size_t i = 0; i < tr.n; i++) mb_delivery_free(tr.nodes[i].d);
  free(tr.nodes);
  mb_runtime_free(rt);
  return rc == MB_OK ? 0 : 1;
}
