/* operations.c — background operations on failed messages (see operations.h). Each runs
 * in slices of SLICE messages from an ev_idle watcher: a store transaction per slice for
 * archive, restore and delete; for retry, the slice's messages are sent back (each its own
 * dispatch, so that one whose queue is gone fails alone) and, once the transport has
 * confirmed them, marked retrying in one transaction. Finished operations are kept
 * (KEEP_DONE) for their progress to be read.
 * Never: runs two slices at once, or holds the loop longer than one slice. */
#include "ops/operations.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claim.h"
#include "clock.h"
#include "errorq.h"
#include "json.h"
#include "log.h"

#define SLICE 100
#define KEEP_DONE 64

typedef struct operation operation;
struct operation {
  mb_ops_work *w;
  char id[MB_OPS_OPERATION_ID_MAX];
  mb_ops_action action;
  char **ids; /* one block (the store's select) */
  size_t n, next, done, failed;
  char *who;
  char error[MB_ERRLEN];
  mb_outgoing *edited;           /* edit-and-retry: the new message; ids[0] is the original */
  char new_id[MB_ID_LEN + 1];    /* ... and its id (dispatch may move the envelope out) */
  char *edited_claim;            /* ... and the original's claim key, or NULL */
  char **confirmed;              /* the slice's ids whose copy the transport confirmed */
  char sent_at[MB_TIME_LEN + 1]; /* when the slice's copies were sent */
  size_t n_confirmed, in_flight;
  operation *next_op;
};

struct mb_ops_work {
  struct ev_loop *loop;
  mb_ops_store *store;
  mb_transport *t;
  mb_claim_store *claims; /* NULL: no claim store */
  ev_idle tick;
  operation *ops; /* newest first */
  unsigned long seq;
};

static int running(const operation *op) { return op->next < op->n || op->in_flight > 0; }

static void op_free(operation *op) {
  free(op->ids);
  free(op->who);
  free(op->confirmed);
  free(op->edited_claim);
  mb_outgoing_free(op->edited);
  free(op);
}

static void fail(operation *op, size_t count, const char *why) {
  op->failed += count;
  snprintf(op->error, sizeof op->error, "%s", why);
  mb_log(MB_WARN, "moonbus.ops", NULL, NULL, "operation %s (%s): %s", op->id,
         mb_ops_action_name(op->action), why);
}

/* A parked copy left the error queue (retried, deleted, replaced by an edit): its claim,
 * if it has one, loses that copy's pin; a retry starts the claim's retention again. */
static void unpin(operation *op, const char *key, int retried) {
  mb_err err;
  mb_claim_store *c = op->w->claims;
  if (c == NULL || key == NULL) return;
  int rc = c->ops->pin(c, key, -1, &err);
  if (rc == MB_OK && retried) rc = c->ops->touch(c, key, mb_now_usec(), &err);
  if (rc != MB_OK) fail(op, 0, err.msg);
}

/* The claim key of stored failed message id (malloc'd), or NULL when it has none. */
static char *claim_of(operation *op, const char *id) {
  mb_envelope env;
  mb_err err;
  mb_envelope_init(&env);
  const char *key = NULL;
  if (op->w->claims && op->w->store->ops->envelope(op->w->store, id, &env, &err) == MB_OK)
    key = mb_claim_key(&env.headers);
  char *copy = key ? strdup(key) : NULL;
  mb_envelope_free(&env);
  return copy;
}

/* Marks what the slice changed in the store. */
static void settle(operation *op, const char *const *ids, size_t n) {
  mb_err err;
  mb_ops_store *s = op->w->store;
  if (n == 0) return;
  int rc = op->edited ? s->ops->edited(s, op->ids[0], op->new_id, op->who, &err)
                      : s->ops->mark(s, op->action, ids, n, op->who,
                                     op->action == MB_OPS_RETRY ? op->sent_at : NULL, &err);
  if (rc == MB_OK) op->done += n;
  else fail(op, n, err.msg);
  if (rc == MB_OK && op->edited) unpin(op, op->edited_claim, 0);
}

/* The slice's sends are all over: what the transport confirmed is marked in one go. */
static void slice_sent(operation *op) {
  settle(op, (const char *const *)op->confirmed, op->n_confirmed);
  op->n_confirmed = 0;
}

static void resume(mb_ops_work *w) {
  if (!ev_is_active(&w->tick)) ev_idle_start(w->loop, &w->tick);
}

typedef struct sent {
  operation *op;
  const char *id;
  char *claim; /* the claim key of the copy sent back, or NULL */
} sent;

static void sent_back(void *ud, int status, const char *error) {
  sent *s = ud;
  operation *op = s->op;
  if (status == MB_OK) {
    op->confirmed[op->n_confirmed++] = (char *)s->id;
    if (!op->edited) unpin(op, s->claim, 1);
  } else {
    char why[MB_ERRLEN + 64];
    snprintf(why, sizeof why, "message %s was not sent back: %s", s->id, error);
    fail(op, 1, why);
  }
  free(s->claim);
  free(s);
  if (--op->in_flight > 0) return;
  slice_sent(op);
  resume(op->w);
}

/* Sends one message back (the edited one, or the stored copy of id unparked). */
static void send_one(operation *op, const char *id) {
  mb_err err;
  mb_outgoing *m = op->edited;
  mb_envelope env;
  mb_envelope_init(&env);
  int rc = m ? MB_OK : op->w->store->ops->envelope(op->w->store, id, &env, &err);
  if (rc == MB_OK && m == NULL) rc = mb_errorq_unpark(&env, &m, &err);
  mb_envelope_free(&env);
  sent *s = rc == MB_OK ? malloc(sizeof *s) : NULL;
  if (rc == MB_OK && s == NULL) rc = mb_err_set(&err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK) {
    const char *key = mb_claim_key(&m->env.headers);
    *s = (sent){op, id, key && !op->edited ? strdup(key) : NULL};
    op->in_flight++;
    rc = op->w->t->ops->dispatch(op->w->t, &m, 1, sent_back, s, &err);
    if (rc != MB_OK) op->in_flight--, free(s->claim), free(s);
  }
  if (m != op->edited) mb_outgoing_free(m);
  if (rc != MB_OK) {
    char why[MB_ERRLEN + 64];
    snprintf(why, sizeof why, "message %s was not sent back: %s", id, err.msg);
    fail(op, 1, why);
  }
}

/* Deletes k messages, and takes their pins off their claims once they are gone. */
static void delete_slice(operation *op, const char *const *ids, size_t k) {
  char *keys[SLICE];
  size_t failed = op->failed;
  for (size_t i = 0; i < k; i++) keys[i] = claim_of(op, ids[i]);
  settle(op, ids, k);
  for (size_t i = 0; i < k; i++) {
    if (op->failed == failed) unpin(op, keys[i], 0);
    free(keys[i]);
  }
}

/* One slice of op: at most SLICE messages. */
static void slice(operation *op) {
  size_t k = op->n - op->next < SLICE ? op->n - op->next : SLICE;
  const char *const *ids = (const char *const *)op->ids + op->next;
  op->next += k;
  if (op->action == MB_OPS_DELETE) {
    delete_slice(op, ids, k);
    return;
  }
  if (op->action != MB_OPS_RETRY) {
    settle(op, ids, k);
    return;
  }
  mb_time_iso(mb_now_usec(), op->sent_at);
  op->in_flight++; /* holds the slice open until every dispatch was tried */
  for (size_t i = 0; i < k; i++) send_one(op, ids[i]);
  if (--op->in_flight == 0) slice_sent(op);
}

static void on_tick(struct ev_loop *loop, ev_idle *watcher, int revents) {
  (void)revents;
  mb_ops_work *w = watcher->data;
  for (operation *op = w->ops; op; op = op->next_op) {
    if (op->in_flight > 0) return; /* a slice waits for its confirms */
    if (op->next < op->n) {
      slice(op);
      return;
    }
  }
  ev_idle_stop(loop, watcher);
}

/* Drops the oldest finished operations beyond KEEP_DONE. */
static void prune(mb_ops_work *w) {
  size_t kept = 0;
  for (operation **p = &w->ops; *p;) {
    if (!running(*p) && ++kept > KEEP_DONE) {
      operation *old = *p;
      *p = old->next_op;
      op_free(old);
    } else p = &(*p)->next_op;
  }
}

static int add(mb_ops_work *w, operation *op, const char *who, char id[MB_OPS_OPERATION_ID_MAX],
               mb_err *err) {
  op->w = w;
  if ((op->who = strdup(who ? who : "operator")) == NULL ||
      (op->confirmed = calloc(SLICE, sizeof *op->confirmed)) == NULL) {
    op_free(op);
    return mb_err_set(err, MB_ENOMEM, "out of memory starting an operation");
  }
  snprintf(op->id, sizeof op->id, "op-%lu", ++w->seq);
  snprintf(id, MB_OPS_OPERATION_ID_MAX, "%s", op->id);
  op->next_op = w->ops;
  w->ops = op;
  prune(w);
  resume(w);
  mb_log(MB_INFO, "moonbus.ops", NULL, NULL, "operation %s: %s of %zu message%s by %s", op->id,
         mb_ops_action_name(op->action), op->n, op->n == 1 ? "" : "s", op->who);
  return MB_OK;
}

int mb_ops_work_start(mb_ops_work *w, mb_ops_action action, char **ids, size_t n, const char *who,
                      char id[MB_OPS_OPERATION_ID_MAX], mb_err *err) {
  operation *op = calloc(1, sizeof *op);
  if (op == NULL) {
    free(ids);
    return mb_err_set(err, MB_ENOMEM, "out of memory starting an operation");
  }
  op->action = action, op->ids = ids, op->n = n;
  return add(w, op, who, id, err);
}

int mb_ops_work_edit(mb_ops_work *w, const char *original, const char *claim, mb_outgoing *edited,
                     const char *who, char id[MB_OPS_OPERATION_ID_MAX], mb_err *err) {
  size_t len = strlen(original) + 1;
  operation *op = calloc(1, sizeof *op);
  char **ids = malloc(sizeof *ids + len);
  if (op == NULL || ids == NULL) {
    free(op), free(ids);
    mb_outgoing_free(edited);
    return mb_err_set(err, MB_ENOMEM, "out of memory starting an operation");
  }
  ids[0] = memcpy((char *)(ids + 1), original, len);
  op->action = MB_OPS_RETRY, op->ids = ids, op->n = 1, op->edited = edited;
  snprintf(op->new_id, sizeof op->new_id, "%s", edited->env.id);
  if (claim && (op->edited_claim = strdup(claim)) == NULL) {
    op_free(op);
    return mb_err_set(err, MB_ENOMEM, "out of memory starting an operation");
  }
  return add(w, op, who, id, err);
}

int mb_ops_work_json(mb_ops_work *w, const char *id, char **json, mb_err *err) {
  const operation *op = w->ops;
  while (op && strcmp(op->id, id) != 0) op = op->next_op;
  if (op == NULL) return mb_err_set(err, MB_ENOTFOUND, "no operation %s", id);
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_printf(&b,
                 "{\"id\":\"%s\",\"action\":\"%s\",\"total\":%zu,\"done\":%zu,\"failed\":%zu,"
                 "\"state\":\"%s\",\"error\":",
                 op->id, op->edited ? "edit-retry" : mb_ops_action_name(op->action), op->n,
                 op->done, op->failed, running(op) ? "running" : "done");
  mb_jbuf_cstr(&b, op->error[0] ? op->error : NULL);
  mb_jbuf_raw(&b, "}", 1);
  if ((*json = mb_jbuf_take(&b, NULL)) == NULL)
    return mb_err_set(err, MB_ENOMEM, "out of memory");
  return MB_OK;
}

int mb_ops_work_new(mb_ops_work **out, struct ev_loop *loop, mb_ops_store *store, mb_transport *t,
                    mb_claim_store *claims) {
  mb_ops_work *w = calloc(1, sizeof *w);
  if (w == NULL) return MB_ENOMEM;
  w->loop = loop, w->store = store, w->t = t, w->claims = claims;
  ev_idle_init(&w->tick, on_tick);
  w->tick.data = w;
  *out = w;
  return MB_OK;
}

void mb_ops_work_free(mb_ops_work *w) {
  if (w == NULL) return;
  ev_idle_stop(w->loop, &w->tick);
  while (w->ops) {
    operation *op = w->ops;
    w->ops = op->next_op;
    op_free(op);
  }
  free(w);
}
