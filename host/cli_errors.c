/* cli_errors.c — `moonbus errors`: the operator's view of an error queue (DESIGN §6).
 *   list                  a header row, then one line per parked message: id, type, failed
 *                         queue, when, why (tab-separated)
 *   show ID               its headers and body
 *   retry ID | --all      back to the queue it failed in, failure and retry headers removed
 *   delete ID             gone for good
 * Each command walks the whole queue once (the transport's browse, bounded by what the
 * queue held when it began; progress on stderr every 1000 messages). A retry sends the
 * message (waiting for the transport's confirm) before it takes the parked copy: at worst
 * a message is both retried and still parked, never lost. Every command refuses a
 * sqlite:// database that does not exist rather than create an empty one (a typo must
 * not look like an empty error queue). With --ops URL (or $MOONBUS_OPS) the same commands
 * go to the ops service instead (cli_errors_ops.c). A parked message with a claimed body
 * (claim.h) pins its claim: retry and delete take one pin off (a retry also restarts the
 * claim's retention, since its message is deliverable again); the retry sends the claim
 * reference, not the body.
 * Never: handles a message, or changes one it does not retry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claim.h"
#include "cli.h"
#include "clock.h"
#include "errorq.h"
#include "log.h"
#include "runtime.h"

#define PROGRESS_EVERY 1000

/* One walk over the error queue (transport browse): the whole queue, one message at a
 * time, with a line of progress on stderr every PROGRESS_EVERY messages. */
typedef struct walk {
  mb_runtime *rt;
  const char *queue;
  const char *id;     /* show, retry ID: the message looked for */
  int matched;        /* ... and seen */
  mb_delivery *found; /* show, delete: the copy kept */
  int take;           /* delete: keep_the_one takes it off the queue */
  int failures;       /* retry --all: messages that could not go back */
  size_t seen;
  long total; /* messages in the queue when the walk began */
  char dest[MB_QUEUE_NAME_MAX + 1];
  mb_err *err;
} walk;

static void progress(walk *w) {
  if (++w->seen % PROGRESS_EVERY == 0)
    fprintf(stderr, "moonbus: %zu of %ld messages of queue '%s' read\n", w->seen, w->total,
            w->queue);
}

/* Walks w->queue with fn; MB_ENOTFOUND when w->id was looked for and not seen. */
static int walk_queue(walk *w, mb_browse_fn fn) {
  long later = 0;
  mb_transport *t = mb_runtime_transport(w->rt);
  int rc = t->ops->depth(t, w->queue, &w->total, &later, w->err);
  w->total += later;
  if (rc == MB_OK) rc = t->ops->browse(t, w->queue, fn, w, w->err);
  if (rc == MB_OK && w->id && !w->matched)
    rc = mb_err_set(w->err, MB_ENOTFOUND, "queue '%s' holds no message %s", w->queue, w->id);
  return rc;
}

/* s escaped, at most max - 1 bytes of it: one message, one line, whatever it carries. */
static void escaped(const char *s, char *out, size_t max) {
  mb_log_escape(s ? s : "", s ? strlen(s) : 0, out, max);
}

/* The first line of s (an exception message: its trace follows), escaped. */
static void first_line(const char *s, char *out, size_t max) {
  mb_log_escape(s ? s : "", s ? strcspn(s, "\n") : 0, out, max);
}

static const char *header_or(const mb_delivery *d, const char *key, const char *dflt) {
  const char *v = mb_headers_get(&d->env.headers, key);
  return v ? v : dflt;
}

static int list_one(void *ud, mb_delivery *d) {
  char id[160], type[800], queue[800], at[160], why[200];
  escaped(d->env.id, id, sizeof id);
  escaped(d->env.type ? d->env.type : "?", type, sizeof type);
  escaped(header_or(d, MB_H_FAILED_QUEUE, "?"), queue, sizeof queue);
  escaped(header_or(d, MB_H_FAILED_AT, "?"), at, sizeof at);
  first_line(header_or(d, MB_H_EXCEPTION_MESSAGE, d->problem), why, sizeof why);
  printf("%s\t%s\t%s\t%s\t%s\n", id, type, queue, at, why);
  mb_delivery_free(d);
  progress(ud);
  return MB_BROWSE_NEXT;
}

static int list(mb_runtime *rt, const char *queue, mb_err *err) {
  walk w = {.rt = rt, .queue = queue, .err = err};
  printf("%s\n", MB_CLI_ERRORS_HEADER);
  return walk_queue(&w, list_one);
}

/* Keeps a copy of the message w->id (show), and takes it off the queue when w->take
 * (delete: in the walk that finds it — on RabbitMQ a second walk could miss the copy the
 * first one has just put back). */
static int keep_the_one(void *ud, mb_delivery *d) {
  walk *w = ud;
  progress(w);
  if (strcmp(d->env.id, w->id) != 0) {
    mb_delivery_free(d);
    return MB_BROWSE_NEXT;
  }
  w->found = d;
  w->matched = 1;
  return MB_BROWSE_STOP | (w->take ? MB_BROWSE_TAKE : 0);
}

/* The retry headers of a parked copy in plain words: "tried: 3 attempts in each of 3 rounds
 * (9 in all)". moonbus.retries.immediate counts the retries of the last round, and
 * moonbus.retries.delayed is that round's index: the totals a reader wants are derived. */
void mb_cli_print_tried(const char *imm, const char *del, const char *deliveries) {
  if (imm == NULL) return;
  long attempts = strtol(imm, NULL, 10) + 1, rounds = del ? strtol(del, NULL, 10) + 1 : 1;
  long delivered = deliveries ? strtol(deliveries, NULL, 10) : 1;
  if (attempts < 1 || rounds < 1) return;
  if (rounds == 1) printf("tried: %ld attempt%s in 1 round", attempts, attempts == 1 ? "" : "s");
  else
    printf("tried: %ld attempt%s in each of %ld rounds (%ld in all)", attempts,
           attempts == 1 ? "" : "s", rounds, attempts * rounds);
  if (delivered > 1) printf("; this copy was delivered %ld times", delivered);
  printf("\n");
}

static void print_tried(const mb_headers *h) {
  mb_cli_print_tried(mb_headers_get(h, MB_H_RETRIES_IMMEDIATE),
                     mb_headers_get(h, MB_H_RETRIES_DELAYED),
                     mb_headers_get(h, MB_H_FAILED_DELIVERIES));
}

static int show(mb_runtime *rt, const char *queue, const char *id, mb_err *err) {
  walk w = {.rt = rt, .queue = queue, .id = id, .err = err};
  int rc = walk_queue(&w, keep_the_one);
  mb_delivery *d = w.found;
  if (rc != MB_OK) {
    mb_delivery_free(d);
    return rc;
  }
  printf("id: %s\ntype: %s\n", d->env.id, d->env.type ? d->env.type : "");
  if (d->env.correlation_id) printf("correlation_id: %s\n", d->env.correlation_id);
  if (d->env.reply_to) printf("reply_to: %s\n", d->env.reply_to);
  if (d->problem) printf("problem: %s\n", d->problem);
  print_tried(&d->env.headers);
  for (size_t i = 0; i < d->env.headers.len; i++)
    printf("%s: %s\n", d->env.headers.items[i].key, d->env.headers.items[i].value);
  printf("\n%.*s\n", (int)d->env.body_len, d->env.body ? d->env.body : "");
  mb_delivery_free(d);
  return MB_OK;
}

/* Sends d back to the queue it failed in (waiting for the transport's confirm); dest gets
 * that queue's name. The caller then takes the parked copy. */
static int send_back(mb_runtime *rt, const mb_delivery *d, char *dest, size_t len, mb_err *err) {
  mb_outgoing *m;
  int rc = mb_errorq_unpark(&d->env, &m, err);
  if (rc == MB_OK) snprintf(dest, len, "%s", m->dest);
  if (rc == MB_OK) rc = mb_runtime_dispatch(rt, &m, 1, err);
  return rc;
}

/* A parked copy was taken (retried: its claim's retention starts again; or deleted). */
static void unpin(mb_runtime *rt, const mb_delivery *d, int retried) {
  mb_claim_store *s = mb_runtime_claims(rt);
  const char *key = mb_claim_key(&d->env.headers);
  mb_err err;
  if (s == NULL || key == NULL) return;
  int rc = s->ops->pin(s, key, -1, &err);
  if (rc == MB_OK && retried) rc = s->ops->touch(s, key, mb_now_usec(), &err);
  if (rc != MB_OK) mb_cli_fail(err.msg);
}

static int retry_the_one(void *ud, mb_delivery *d) {
  walk *w = ud;
  progress(w);
  int what = MB_BROWSE_NEXT;
  if (strcmp(d->env.id, w->id) == 0) {
    w->matched = 1;
    what = MB_BROWSE_STOP;
    if (send_back(w->rt, d, w->dest, sizeof w->dest, w->err) == MB_OK) {
      what |= MB_BROWSE_TAKE;
      unpin(w->rt, d, 1);
    } else w->failures++;
  }
  mb_delivery_free(d);
  return what;
}

static int retry(mb_runtime *rt, const char *queue, const char *id, mb_err *err) {
  walk w = {.rt = rt, .queue = queue, .id = id, .err = err};
  int rc = walk_queue(&w, retry_the_one);
  if (rc == MB_OK && w.failures) return err->status; /* err says why (send_back) */
  if (rc == MB_OK) printf("%s\t-> %s\n", id, w.dest);
  return rc;
}

/* Every parked message of the queue; one that cannot go back is reported and left. */
static int retry_each(void *ud, mb_delivery *d) {
  walk *w = ud;
  mb_err one;
  int what = MB_BROWSE_NEXT;
  progress(w);
  if (send_back(w->rt, d, w->dest, sizeof w->dest, &one) == MB_OK) {
    printf("%s\t-> %s\n", d->env.id, w->dest);
    what = MB_BROWSE_TAKE;
    unpin(w->rt, d, 1);
  } else {
    mb_cli_fail(one.msg);
    w->failures++;
  }
  mb_delivery_free(d);
  return what;
}

static int retry_all(mb_runtime *rt, const char *queue, mb_err *err) {
  walk w = {.rt = rt, .queue = queue, .err = err};
  int rc = walk_queue(&w, retry_each);
  if (rc == MB_OK && w.failures)
    rc = mb_err_set(err, MB_EIO, "%d of %zu messages were not retried", w.failures, w.seen);
  return rc;
}

/* delete ID: the parked copy goes, and with it its pin on a claim. */
static int delete_one(mb_runtime *rt, const char *queue, const char *id, mb_err *err) {
  walk w = {.rt = rt, .queue = queue, .id = id, .err = err, .take = 1};
  int rc = walk_queue(&w, keep_the_one);
  if (rc == MB_OK) unpin(rt, w.found, 0);
  mb_delivery_free(w.found);
  return rc;
}

int mb_cli_errors(int argc, char **argv, const mb_cli_opts *opts) {
  const char *what = argc > 0 ? argv[0] : "";
  const char *arg = argc > 1 ? argv[1] : NULL;
  const char *queue = opts->queue ? opts->queue : MB_DEFAULT_ERROR_QUEUE;
  int usage = !(
      (strcmp(what, "list") == 0 && argc == 1) ||
      ((strcmp(what, "show") == 0 || strcmp(what, "retry") == 0 || strcmp(what, "delete") == 0) &&
       argc == 2));
  if (usage) {
    fprintf(stderr, "usage: moonbus errors list | show ID | retry ID | retry --all | delete ID "
                    "[--queue NAME] [--transport URL] | [--ops URL] [--token-file F]\n");
    return 2;
  }
  const char *ops = opts->ops ? opts->ops : opts->transport ? NULL : getenv("MOONBUS_OPS");
  if (opts->ops != NULL || (ops != NULL && ops[0] != '\0')) /* --ops "" is a mistake */
    return mb_cli_errors_ops(argc, argv, ops, opts);
  mb_err err;
  if (opts->databus) setenv("MOONBUS_DATABUS", opts->databus, 1); /* runtime.c reads it */
  mb_runtime *rt = mb_runtime_new(NULL, opts->transport, opts->instance);
  if (rt == NULL) return 1;
  int rc = mb_transport_must_exist(mb_runtime_transport_url(rt), &err);
  if (rc == MB_OK) rc = mb_runtime_connect(rt, &err);
  if (rc == MB_OK) {
    if (strcmp(what, "list") == 0) rc = list(rt, queue, &err);
    else if (strcmp(what, "show") == 0) rc = show(rt, queue, arg, &err);
    else if (strcmp(what, "retry") == 0 && strcmp(arg, "--all") == 0)
      rc = retry_all(rt, queue, &err);
    else if (strcmp(what, "retry") == 0) rc = retry(rt, queue, arg, &err);
    else rc = delete_one(rt, queue, arg, &err);
  }
  if (rc != MB_OK) mb_cli_fail(err.msg);
  mb_runtime_free(rt);
  return rc == MB_OK ? 0 : 1;
}
