/* sqlite_consume.c — receiving on the SQLite transport (see sqlite.c): leases (a leased row
 * has lease_owner = this open's token and a visible_at in the future, renewed while its
 * handler runs), the durable delivery count, complete (ack + outbox in one transaction) and
 * release, and wake-ups without busy polling: inotify on the database's folder tells us
 * another process committed, and one ev_timer waits for the earliest row not yet visible.
 * Never: calls a delivery callback from inside complete/release (polls are always
 * scheduled on the loop), or holds a transaction across loop iterations. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "headers_json.h"
#include "log.h"
#include "transport/sqlite_internal.h"

/* --- leases -------------------------------------------------------------------------------- */

static void lease_add(sqlite_transport *t, lease *l) {
  l->prev = NULL;
  l->next = t->leases;
  if (t->leases) t->leases->prev = l;
  t->leases = l;
  t->in_flight++;
  if (!ev_is_active(&t->renew)) ev_timer_again(t->loop, &t->renew);
}

static void lease_unlink(sqlite_transport *t, lease *l) {
  if (l->prev) l->prev->next = l->next;
  else t->leases = l->next;
  if (l->next) l->next->prev = l->prev;
  free(l);
  if (t->leases == NULL) ev_timer_stop(t->loop, &t->renew);
}

static void lease_drop(sqlite_transport *t, mb_delivery *d) {
  lease *l = d->transport_data;
  if (l == NULL) return;
  lease_unlink(t, l);
  d->transport_data = NULL;
  t->in_flight--;
  sq_schedule_poll(t);
}

void sq_renew_leases(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  sqlite_transport *t = w->data;
  sqlite3_stmt *s = sq_stmt(t, S_RENEW);
  sq_bind_text(s, 1, t->token);
  sqlite3_bind_int64(s, 2, sq_now_ms() + t->lease_ms);
  mb_err err;
  if (sq_exec(t, s, &err, "renewing leases") != MB_OK && !t->paused)
    mb_log(MB_WARN, NULL, NULL, NULL, "%s (will try again)", err.msg);
}

static int ack_row(sqlite_transport *t, mb_delivery *d, mb_err *err) {
  sqlite3_stmt *s = sq_stmt(t, S_ACK);
  sqlite3_bind_int64(s, 1, (sqlite3_int64)d->tag);
  sq_bind_text(s, 2, t->token);
  if (sq_exec(t, s, err, "acknowledging") != MB_OK) return err->status;
  if (sqlite3_changes(t->db) == 0)
    return mb_err_set(err, MB_ELOST,
                      "message %s in queue '%s' is no longer ours: its lease expired and "
                      "another consumer took it",
                      d->env.id, d->queue);
  return MB_OK;
}

/* m's value becomes its key's highest, or MB_ESTALE naming why not (inside the ack's
 * transaction: a loser rolls back everything, its outbox included). */
static int advance_mark(sqlite_transport *t, const mb_mark *m, mb_err *err) {
  mb_marks *s;
  int advanced = 0, rc = sq_marks_of(t, &s, err);
  if (rc == MB_OK) rc = mb_marks_advance(s, m, &advanced, err);
  if (rc != MB_OK || advanced) return rc;
  char mine[96];
  mb_mark_format(m, mine, sizeof mine);
  return mb_err_set(err, MB_ESTALE,
                    "stale: %s %s was overtaken while it was handled: another consumer "
                    "handled a value as high or higher for %s %.128s meanwhile",
                    m->order_by, mine, m->key_field, m->key);
}

/* complete, with m (or NULL) moved in the same transaction. */
static int complete_tx(sqlite_transport *t, mb_delivery *d, const mb_mark *m,
                       mb_outgoing *const *outbox, size_t n, mb_done_fn done, void *ud,
                       mb_err *err) {
  int rc = sq_begin(t, err);
  if (rc == MB_OK) rc = ack_row(t, d, err);
  if (rc == MB_OK && m) rc = advance_mark(t, m, err);
  if (rc == MB_OK) rc = sq_insert_all(t, outbox, n, err);
  if (rc == MB_OK) rc = sq_commit(t, err);
  if (rc != MB_OK) sq_rollback(t);
  if (rc == MB_ELOST) lease_drop(t, d); /* nothing more to do with it */
  if (rc != MB_OK) return rc;
  if (n) sq_ring(t);
  lease_drop(t, d);
  done(ud, MB_OK, NULL);
  return MB_OK;
}

int sqlite_complete(mb_transport *base, mb_delivery *d, mb_outgoing *const *outbox, size_t n,
                    mb_done_fn done, void *ud, mb_err *err) {
  return complete_tx((sqlite_transport *)base, d, NULL, outbox, n, done, ud, err);
}

int sqlite_complete_marked(mb_transport *base, mb_delivery *d, const mb_mark *m,
                           mb_outgoing *const *outbox, size_t n, mb_done_fn done, void *ud,
                           mb_err *err) {
  return complete_tx((sqlite_transport *)base, d, m, outbox, n, done, ud, err);
}

static int release_row(sqlite_transport *t, int64_t seq, int64_t at, mb_err *err) {
  sqlite3_stmt *s = sq_stmt(t, S_RELEASE);
  sqlite3_bind_int64(s, 1, seq);
  sq_bind_text(s, 2, t->token);
  sqlite3_bind_int64(s, 3, at);
  return sq_exec(t, s, err, "releasing a message");
}

/* A release that failed (a full disk) keeps the lease, renewed with the others, marked to
 * be given back when the database can be written again; the pipeline's slot is free. */
int sqlite_release(mb_transport *base, mb_delivery *d, double delay, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  int64_t at = sq_now_ms() + (int64_t)(delay * 1000.0);
  lease *l = d->transport_data;
  int rc = release_row(t, (int64_t)d->tag, at, err);
  if (rc == MB_OK) {
    sq_ring(t);
    lease_drop(t, d);
  } else if (l) {
    char why[MB_ERRLEN];
    snprintf(why, sizeof why, "%s", err->msg);
    mb_err_set(err, rc,
               "%s; the message stays leased to this host, which gives it back as "
               "soon as the database can be written again",
               why);
    l->give_back_at = at > 0 ? at : 1;
    t->unreleased++;
    d->transport_data = NULL;
    t->in_flight--;
  }
  return rc;
}

int sq_retry_releases(sqlite_transport *t, mb_err *err) {
  int given = 0, rc = MB_OK;
  for (lease *l = t->leases, *next; l && t->unreleased && rc == MB_OK; l = next) {
    next = l->next;
    if (l->give_back_at == 0) continue;
    int64_t now = sq_now_ms();
    rc = release_row(t, l->seq, l->give_back_at > now ? l->give_back_at : now, err);
    if (rc != MB_OK) break;
    t->unreleased--;
    lease_unlink(t, l);
    given++;
  }
  if (given) sq_ring(t);
  return rc;
}

/* --- receiving ------------------------------------------------------------------------------- */

/* A text column as a C string (NULL for SQL NULL); *nul is set when it holds a NUL byte,
 * which a C string cannot carry. */
static int column_text(sqlite3_stmt *s, int i, char **out, int *nul) {
  const char *v = (const char *)sqlite3_column_text(s, i);
  size_t len = v ? (size_t)sqlite3_column_bytes(s, i) : 0;
  *out = NULL;
  if (v == NULL) return sqlite3_column_type(s, i) == SQLITE_NULL ? MB_OK : MB_ENOMEM;
  if (memchr(v, '\0', len)) *nul = 1;
  return (*out = strndup(v, len)) ? MB_OK : MB_ENOMEM;
}

/* The header column: SQL NULL is no headers; text that does not decode, or headers that
 * break the rules every transport applies (mb_headers_check: count, size, key syntax),
 * set d->problem with the reason. MB_OK or MB_ENOMEM. */
static int take_headers(mb_delivery *d, sqlite3_stmt *s, int i) {
  const char *json = (const char *)sqlite3_column_text(s, i);
  mb_err err;
  if (json == NULL) return sqlite3_column_type(s, i) == SQLITE_NULL ? MB_OK : MB_ENOMEM;
  int rc = mb_headers_from_json(json, (size_t)sqlite3_column_bytes(s, i), &d->env.headers, &err);
  if (rc == MB_OK) rc = mb_headers_check(&d->env.headers, 1, &err);
  if (rc == MB_ENOMEM) return rc;
  if (rc != MB_OK && (d->problem = strdup(err.msg)) == NULL) return MB_ENOMEM;
  return MB_OK;
}

static int take_strings(mb_delivery *d, sqlite3_stmt *s) {
  int nul = 0;
  if (column_text(s, 2, &d->env.type, &nul) != MB_OK ||
      column_text(s, 3, &d->env.correlation_id, &nul) != MB_OK ||
      column_text(s, 4, &d->env.reply_to, &nul) != MB_OK)
    return MB_ENOMEM;
  if (nul && d->problem == NULL &&
      (d->problem = strdup("type, correlation id or reply-to holds a NUL byte")) == NULL)
    return MB_ENOMEM;
  return MB_OK;
}

static uint32_t delivery_count(sqlite3_stmt *s, int i) {
  sqlite3_int64 n = sqlite3_column_int64(s, i);
  return n < 1 ? 1 : n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* A row of S_LEASE, S_BROWSE or S_TAKE_REPLIES (seq, id, type, correlation_id, reply_to,
 * headers, body, deliveries) as a delivery from queue. Another process may have written
 * anything there, so every column is taken as it comes: a missing or non-UUID id gets a
 * new one (the original in moonbus.foreign_id), a NULL type stays NULL (the pipeline
 * parks it), and headers that do not decode or break the rules set d->problem, so that the
 * pipeline parks the message with the reason instead of losing it. NULL only when out of
 * memory. */
mb_delivery *sq_delivery_from_row(sqlite3_stmt *s, const char *queue) {
  mb_delivery *d = calloc(1, sizeof *d);
  if (d == NULL || (d->queue = strdup(queue)) == NULL) goto fail;
  mb_envelope_init(&d->env);
  d->tag = (uint64_t)sqlite3_column_int64(s, 0);
  if (take_headers(d, s, 5) != MB_OK) goto fail;
  const char *id = (const char *)sqlite3_column_text(s, 1);
  if (mb_envelope_take_id(&d->env, id, id ? (size_t)sqlite3_column_bytes(s, 1) : 0) != MB_OK)
    goto fail;
  if (take_strings(d, s) != MB_OK) goto fail;
  const void *body = sqlite3_column_blob(s, 6);
  if (mb_envelope_set_body(&d->env, body, body ? (size_t)sqlite3_column_bytes(s, 6) : 0) != MB_OK)
    goto fail;
  d->delivery_count = delivery_count(s, 7);
  return d;
fail:
  mb_delivery_free(d);
  return NULL;
}

/* A leased row as a delivery that carries its lease. */
static mb_delivery *leased_from_row(sqlite_transport *t, sqlite3_stmt *s) {
  mb_delivery *d = sq_delivery_from_row(s, t->queue);
  lease *l = d ? calloc(1, sizeof *l) : NULL;
  if (l == NULL) {
    mb_delivery_free(d);
    return NULL;
  }
  l->seq = (int64_t)d->tag;
  d->transport_data = l;
  return d;
}

static int cmp_seq(const void *a, const void *b) {
  uint64_t x = (*(mb_delivery *const *)a)->tag, y = (*(mb_delivery *const *)b)->tag;
  return x < y ? -1 : x > y;
}

/* Leases up to max ready rows in one transaction; *n gets how many. Rows that could not
 * be turned into deliveries (out of memory) stay leased and come back when it expires. */
static int lease_rows(sqlite_transport *t, mb_delivery **out, unsigned max, size_t *n,
                      mb_err *err) {
  *n = 0;
  int rc = sq_begin(t, err);
  if (rc != MB_OK) return rc;
  int64_t now = sq_now_ms();
  sqlite3_stmt *s = sq_stmt(t, S_LEASE);
  sq_bind_text(s, 1, t->queue);
  sq_bind_text(s, 2, t->token);
  sqlite3_bind_int64(s, 3, now + t->lease_ms);
  sqlite3_bind_int64(s, 4, now);
  sqlite3_bind_int(s, 5, (int)max);
  int step;
  while ((step = sqlite3_step(s)) == SQLITE_ROW) {
    mb_delivery *d = leased_from_row(t, s);
    if (d) out[(*n)++] = d;
  }
  sqlite3_reset(s);
  if (step != SQLITE_DONE || sq_commit(t, err) != MB_OK) {
    if (step != SQLITE_DONE) sq_db_fail(t, err, "leasing messages");
    sq_rollback(t);
    for (size_t i = 0; i < *n; i++) {
      free(out[i]->transport_data);
      mb_delivery_free(out[i]);
    }
    *n = 0;
    return err->status;
  }
  qsort(out, *n, sizeof *out, cmp_seq);
  return MB_OK;
}

/* The earliest visible_at of the queue (leased rows included: their lease end), or -1. */
static int next_visible(sqlite_transport *t, int64_t *at, mb_err *err) {
  sqlite3_stmt *s = sq_stmt(t, S_NEXT);
  sq_bind_text(s, 1, t->queue);
  int rc = sqlite3_step(s);
  *at = rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL ? sqlite3_column_int64(s, 0)
                                                                     : -1;
  sqlite3_reset(s);
  return rc == SQLITE_ROW ? MB_OK : sq_db_fail(t, err, "looking for ready messages");
}

static void arm_wake(sqlite_transport *t, int64_t at) {
  double in = at < 0 ? SAFETY_POLL : (double)(at - sq_now_ms() + 1) / 1000.0;
  if (in > SAFETY_POLL) in = SAFETY_POLL;
  if (in < 0.001) in = 0.001;
  ev_timer_stop(t->loop, &t->wake);
  ev_timer_set(&t->wake, in, 0.);
  ev_timer_start(t->loop, &t->wake);
}

static void hand_out(sqlite_transport *t, mb_delivery **batch, size_t n) {
  for (size_t i = 0; i < n; i++) lease_add(t, batch[i]->transport_data);
  for (size_t i = 0; i < n; i++) t->deliver(t->deliver_ud, batch[i]);
}

/* One round: lease what is ready (up to the free capacity), then arm the wake timer for
 * what is not. Deliveries are handed out last, so a callback that completes at once
 * finds the transport in a consistent state. */
static void poll_queue(sqlite_transport *t) {
  mb_err err = {MB_OK, ""};
  int empty = 0; /* lease rounds in a row that found nothing although a row looked ready */
  mb_err give_back;
  if (t->unreleased && sq_retry_releases(t, &give_back) != MB_OK && !t->paused)
    mb_log(MB_WARN, t->queue, NULL, NULL, "%s (will try again)", give_back.msg);
  for (int round = 0; round < 4 && t->consuming; round++) {
    if (t->in_flight >= t->max_in_flight) return; /* complete/release poll again */
    int64_t at;
    if (next_visible(t, &at, &err) != MB_OK) break;
    if (at < 0 || at > sq_now_ms() || empty == 2) {
      /* twice nothing: a row whose visible_at is not a number (min() sees it, no lease
       * takes it); the safety poll looks again instead of a tight loop */
      arm_wake(t, empty == 2 ? -1 : at);
      return;
    }
    unsigned room = t->max_in_flight - t->in_flight;
    mb_delivery *batch[LEASE_BATCH];
    size_t n;
    if (lease_rows(t, batch, room < LEASE_BATCH ? room : LEASE_BATCH, &n, &err) != MB_OK) break;
    empty = n ? 0 : empty + 1;
    hand_out(t, batch, n);
  }
  if (!t->consuming || t->paused) return; /* a pause logged its own line */
  if (err.status == MB_OK) {
    sq_schedule_poll(t); /* still more ready: go on after other watchers had their turn */
    return;
  }
  mb_log(MB_WARN, t->queue, NULL, NULL, "%s; looking again shortly", err.msg);
  arm_wake(t, sq_now_ms() + 100);
}

void sq_on_poll_soon(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  sqlite_transport *t = w->data;
  if (!t->paused) sq_poll_replies(t);
  if (!t->paused) poll_queue(t);
}

void sq_schedule_poll(sqlite_transport *t) {
  if ((t->consuming || t->reply_queue) && !ev_is_active(&t->poll_soon)) {
    ev_timer_set(&t->poll_soon, 0., 0.);
    ev_timer_start(t->loop, &t->poll_soon);
  }
}

/* inotify: another process (or we) wrote the database or its WAL. */
static void on_changes(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop;
  (void)revents;
  sqlite_transport *t = w->data;
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  size_t flen = strlen(t->file);
  int relevant = 0;
  ssize_t n;
  int moved = 0; /* the database file itself was deleted, renamed or renamed over */
  while ((n = read(t->inotify_fd, buf, sizeof buf)) > 0) {
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *e = (struct inotify_event *)p;
      if (e->len && strncmp(e->name, t->file, flen) == 0) relevant = 1;
      if (e->len && strcmp(e->name, t->file) == 0 &&
          (e->mask & (IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)))
        moved = 1;
      p += sizeof *e + e->len;
    }
  }
  if (moved) sq_check_file(t);
  if (relevant) sq_schedule_poll(t);
}

int sq_watch_changes(sqlite_transport *t, mb_err *err) {
  t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (t->inotify_fd < 0 || inotify_add_watch(t->inotify_fd, t->dir,
                                             IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO |
                                                 IN_MOVED_FROM | IN_DELETE) < 0) {
    int e = errno;
    if (t->inotify_fd >= 0) close(t->inotify_fd);
    t->inotify_fd = -1;
    return mb_err_set(err, MB_EIO, "cannot watch %s for new messages: %s", t->dir, strerror(e));
  }
  ev_io_init(&t->changes, on_changes, t->inotify_fd, EV_READ);
  t->changes.data = t;
  ev_io_start(t->loop, &t->changes);
  ev_timer_again(t->loop, &t->file_check);
  return MB_OK;
}

int sqlite_consume(mb_transport *base, const char *queue, unsigned max_in_flight,
                   mb_deliver_fn fn, void *ud, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  if (t->consuming) return mb_err_set(err, MB_EINVAL, "already consuming queue '%s'", t->queue);
  char *copy = strdup(queue);
  if (copy == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  free(t->queue);
  t->queue = copy;
  t->max_in_flight = max_in_flight ? max_in_flight : 1;
  t->deliver = fn;
  t->deliver_ud = ud;
  if (t->inotify_fd < 0) {
    int rc = sq_watch_changes(t, err);
    if (rc != MB_OK) return rc;
  }
  t->consuming = 1;
  sq_schedule_poll(t);
  return MB_OK;
}

void sq_unwatch_changes(sqlite_transport *t) {
  ev_timer_stop(t->loop, &t->poll_soon);
  ev_timer_stop(t->loop, &t->file_check);
  if (t->inotify_fd >= 0) {
    ev_io_stop(t->loop, &t->changes);
    close(t->inotify_fd);
    t->inotify_fd = -1;
  }
}

void sqlite_stop_consuming(mb_transport *base) {
  sqlite_transport *t = (sqlite_transport *)base;
  t->consuming = 0;
  ev_timer_stop(t->loop, &t->wake);
  if (t->reply_queue == NULL) sq_stop_pause(t);
  if (t->reply_queue == NULL) sq_unwatch_changes(t); /* replies keep the watch */
}
