/* pg.c — the PostgreSQL connection pool of pg.h: every libpq connection of the host, the
 * queue of leases waiting for one, the statement in flight on each, reconnecting with
 * back-off (MB_PG_BACKOFF_MIN doubling to MB_PG_BACKOFF_MAX, with jitter), and turning
 * libpq's results and errors into mb_pg_result / mb_pg_error.
 *
 * A connection is in one state: CONNECTING (PQconnectPoll under its ev_io), IDLE (in the
 * pool), LEASED (a caller's; it may have a statement in flight), RESETTING (a ROLLBACK
 * before its next lease), DRAINING (released with a statement in flight, whose result is
 * thrown away) or BROKEN (leased, its socket gone: freed when released). A connection is
 * freed only when no callback of its own is on the stack (in_cb): a callback may release it.
 * Never: blocks the loop (no PQexec, no PQconnectdb, no PQgetResult while PQisBusy), puts
 * the URL's password in a message (scrub_secrets), or touches a connection after handing
 * it to conn_free. Only this file includes libpq-fe.h. */
#include "pg.h"

#include <ev.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

#define MB_PG_BACKOFF_MIN 0.1
#define MB_PG_BACKOFF_MAX 5.0
#define MB_PG_CONNECT_TIMEOUT 10.0

enum conn_state { C_CONNECTING, C_IDLE, C_LEASED, C_RESETTING, C_DRAINING, C_BROKEN };

struct mb_pg_result {
  PGresult *res;
};

struct mb_pg_conn {
  mb_pg_pool *pool;
  PGconn *pg;
  ev_io io;
  ev_timer connect_timer;
  int fd, events; /* what io watches now (fd -1: not started) */
  enum conn_state state;
  int in_flight, flushing;
  mb_pg_result_fn cb; /* the statement in flight's */
  void *ud;
  PGresult *res; /* its result so far (the first error, else the last one) */
  int in_cb;     /* callbacks of this connection on the stack */
  int doomed;    /* free it once in_cb is 0 */
};

typedef struct waiter {
  mb_pg_lease_fn cb;
  void *ud;
  double deadline;
  struct waiter *next;
} waiter;

struct mb_pg_pool {
  struct ev_loop *loop;
  char *url;
  char *password;  /* from the URL, to scrub from libpq's messages; NULL when none */
  char shown[256]; /* the URL as messages show it */
  unsigned size;
  mb_pg_conn **slots; /* size entries, NULL where no connection is */
  waiter *head, *tail;
  ev_timer retry, deadline;
  double backoff, next_try, lease_wait;
  int failing; /* the last connect failed */
  unsigned long lost, reconnects;
  char last_error[MB_ERRLEN];
  int pumping, pump_again;
  uint64_t rng;
};

static void pool_pump(mb_pg_pool *p);
static void conn_lost(mb_pg_conn *c, const char *why);

/* --- messages -------------------------------------------------------------------------- */

/* Replaces every copy of secret in msg with "***" (never longer: msg only shrinks). A
 * password of 1-2 bytes is left to url.c, which scrubs the URL's user info. */
static void replace_secret(char *msg, const char *secret) {
  size_t n = strlen(secret);
  char *at;
  if (n < 3) return;
  while ((at = strstr(msg, secret)) != NULL) {
    memcpy(at, "***", 3);
    memmove(at + 3, at + n, strlen(at + n) + 1);
  }
}

/* The URL's user info always; the password itself too in libpq's own messages (a server's
 * message about a statement quotes names, which may spell the password: only the URL). */
static void scrub_secrets(const mb_pg_pool *p, char *msg, size_t len) {
  mb_url_scrub(p->url, msg, len);
  if (p->password) replace_secret(msg, p->password);
}

/* Copies libpq's text (one line, trailing newlines cut) into out, scrubbed. */
static void copy_message(const mb_pg_pool *p, char *out, size_t len, const char *text) {
  size_t n;
  snprintf(out, len, "%s", text ? text : "");
  n = strlen(out);
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
  for (char *s = out; *s; s++)
    if (*s == '\n' || *s == '\t') *s = ' ';
  scrub_secrets(p, out, len);
}

static void error_set(const mb_pg_pool *p, mb_pg_error *e, mb_pg_error_kind kind,
                      const char *sqlstate, const char *text) {
  e->kind = kind;
  snprintf(e->sqlstate, sizeof e->sqlstate, "%s", sqlstate ? sqlstate : "");
  copy_message(p, e->msg, sizeof e->msg, text);
}

static mb_pg_error_kind kind_of(const char *sqlstate, int lost) {
  if (lost || !sqlstate || strlen(sqlstate) != 5) return lost ? MB_PG_TRANSIENT : MB_PG_STATEMENT;
  if (!strcmp(sqlstate, "40001") || !strcmp(sqlstate, "40P01")) return MB_PG_RETRY;
  if (!strncmp(sqlstate, "08", 2) || !strncmp(sqlstate, "53", 2) || !strcmp(sqlstate, "40003"))
    return MB_PG_TRANSIENT;
  if (!strcmp(sqlstate, "57P01") || !strcmp(sqlstate, "57P02") || !strcmp(sqlstate, "57P03"))
    return MB_PG_TRANSIENT;
  return MB_PG_STATEMENT;
}

/* 1 and e filled when res is a failure (or missing), else 0. */
static int error_of(const mb_pg_conn *c, const PGresult *res, int lost, mb_pg_error *e) {
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  char text[MB_ERRLEN];
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return 0;
  if (!res) {
    error_set(c->pool, e, MB_PG_TRANSIENT, "",
              c->pg ? PQerrorMessage(c->pg) : "the connection was lost");
    return 1;
  }
  const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  if (!primary) {
    error_set(c->pool, e, kind_of(sqlstate, lost), sqlstate, PQresultErrorMessage(res));
    return 1;
  }
  snprintf(text, sizeof text, "%s%s%s", primary, detail ? ": " : "", detail ? detail : "");
  e->kind = kind_of(sqlstate, lost);
  snprintf(e->sqlstate, sizeof e->sqlstate, "%s", sqlstate ? sqlstate : "");
  snprintf(e->msg, sizeof e->msg, "%s", text);
  mb_url_scrub(c->pool->url, e->msg, sizeof e->msg);
  return 1;
}

/* --- the socket ------------------------------------------------------------------------ */

static void conn_watch(mb_pg_conn *c, int events) {
  int fd = c->pg ? PQsocket(c->pg) : -1;
  if (fd == c->fd && events == c->events) return;
  ev_io_stop(c->pool->loop, &c->io);
  c->fd = fd;
  c->events = events;
  if (fd < 0 || events == 0) return;
  ev_io_set(&c->io, fd, events);
  ev_io_start(c->pool->loop, &c->io);
}

static void conn_close_pg(mb_pg_conn *c) {
  conn_watch(c, 0);
  ev_timer_stop(c->pool->loop, &c->connect_timer);
  if (c->pg) PQfinish(c->pg);
  c->pg = NULL;
  c->fd = -1;
  c->flushing = 0;
}

static void slot_clear(mb_pg_conn *c) {
  mb_pg_pool *p = c->pool;
  for (unsigned i = 0; i < p->size; i++)
    if (p->slots[i] == c) p->slots[i] = NULL;
}

/* Frees c now, or once its callbacks have returned; its slot is free at once. */
static void conn_free(mb_pg_conn *c) {
  conn_close_pg(c);
  slot_clear(c);
  if (c->res) PQclear(c->res);
  c->res = NULL;
  c->doomed = 1;
  if (c->in_cb == 0) free(c);
}

static void conn_reap(mb_pg_conn *c) {
  if (c->in_cb == 0 && c->doomed) free(c);
}

/* --- statements ------------------------------------------------------------------------ */

/* Hands the statement's outcome to its callback; the result lives until it returns. */
static void conn_deliver(mb_pg_conn *c, PGresult *res, const mb_pg_error *e) {
  mb_pg_result_fn cb = c->cb;
  void *ud = c->ud;
  mb_pg_result r = {res};
  c->cb = NULL;
  c->ud = NULL;
  c->in_flight = 0;
  c->in_cb++;
  if (cb) cb(ud, e ? NULL : &r, e);
  c->in_cb--;
  if (res) PQclear(res);
}

/* Every result of the statement is in: its outcome goes to its callback. */
static void conn_finish(mb_pg_conn *c) {
  PGresult *res = c->res;
  mb_pg_error e;
  int lost = PQstatus(c->pg) == CONNECTION_BAD;
  int failed = error_of(c, res, lost, &e);
  c->res = NULL;
  if (failed && e.kind == MB_PG_TRANSIENT) lost = 1; /* 57P01 and the like: it is closing */
  if (lost) {
    c->pool->lost++;
    conn_close_pg(c);
    if (c->state == C_LEASED) c->state = C_BROKEN;
  }
  conn_deliver(c, res, failed ? &e : NULL);
  if (!c->doomed && !c->pg && c->state != C_BROKEN) conn_free(c);
}

static int keep_result(mb_pg_conn *c, PGresult *res) {
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
    PQclear(res);
    return -1; /* COPY is not spoken here */
  }
  if (c->res && PQresultStatus(c->res) == PGRES_FATAL_ERROR) {
    PQclear(res);
  } else {
    if (c->res) PQclear(c->res);
    c->res = res;
  }
  return 0;
}

/* Takes the results libpq has whole; the statement ends with PQgetResult's NULL. */
static void conn_collect(mb_pg_conn *c) {
  while (c->in_flight && !PQisBusy(c->pg)) {
    PGresult *res = PQgetResult(c->pg);
    if (!res) {
      conn_finish(c);
      return;
    }
    if (keep_result(c, res) != 0) {
      conn_lost(c, "COPY is not supported on a pooled connection");
      return;
    }
  }
  if (c->in_flight && PQstatus(c->pg) == CONNECTION_BAD) conn_lost(c, PQerrorMessage(c->pg));
}

static void conn_flush(mb_pg_conn *c) {
  int r = PQflush(c->pg);
  if (r < 0) {
    conn_lost(c, PQerrorMessage(c->pg));
    return;
  }
  c->flushing = r == 1;
  conn_watch(c, c->flushing ? EV_READ | EV_WRITE : EV_READ);
}

static int conn_send(mb_pg_conn *c, const char *sql, int n, const char *const *params,
                     mb_pg_result_fn cb, void *ud) {
  if (!PQsendQueryParams(c->pg, sql, n, NULL, params, NULL, NULL, 0)) return -1;
  c->in_flight = 1;
  c->cb = cb;
  c->ud = ud;
  conn_flush(c);
  return 0;
}

/* --- a connection's life --------------------------------------------------------------- */

/* The connection is gone (a socket error, the server closed it): the statement in flight
 * gets a TRANSIENT error; a leased connection waits for its release, another is freed. */
static void conn_lost(mb_pg_conn *c, const char *why) {
  mb_pg_error e;
  char text[MB_ERRLEN];
  snprintf(text, sizeof text, "the connection to PostgreSQL was lost: %s",
           why && *why ? why : "(no reason given)");
  error_set(c->pool, &e, MB_PG_TRANSIENT, "", text);
  c->pool->lost++;
  conn_close_pg(c);
  if (c->res) PQclear(c->res);
  c->res = NULL;
  if (c->state == C_LEASED) c->state = C_BROKEN;
  if (c->in_flight) conn_deliver(c, NULL, &e);
  if (!c->doomed && c->state != C_BROKEN) conn_free(c);
}

static void rollback_done(void *ud, const mb_pg_result *r, const mb_pg_error *e) {
  mb_pg_conn *c = ud;
  (void)r;
  if (c->doomed || !c->pg) return;
  if (e) {
    conn_free(c);
    return;
  }
  c->state = C_IDLE;
}

/* A connection given back: IDLE when it is idle, a ROLLBACK first when a transaction is
 * open, freed when it is not usable. */
static void conn_settle(mb_pg_conn *c) {
  PGTransactionStatusType ts = c->pg ? PQtransactionStatus(c->pg) : PQTRANS_UNKNOWN;
  if (!c->pg || PQstatus(c->pg) != CONNECTION_OK || ts == PQTRANS_UNKNOWN) {
    conn_free(c);
    return;
  }
  if (ts == PQTRANS_IDLE) {
    c->state = C_IDLE;
    return;
  }
  c->state = C_RESETTING;
  if (conn_send(c, "ROLLBACK", 0, NULL, rollback_done, c) != 0)
    conn_lost(c, PQerrorMessage(c->pg));
}

static void drained(void *ud, const mb_pg_result *r, const mb_pg_error *e) {
  mb_pg_conn *c = ud;
  (void)r;
  (void)e;
  if (!c->doomed) conn_settle(c);
}

/* Notices (a ROLLBACK outside a transaction warns) are not printed on stderr. */
static void quiet_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static void backoff_grow(mb_pg_pool *p) {
  double b = p->backoff > 0 ? p->backoff * 2 : MB_PG_BACKOFF_MIN;
  double jitter;
  if (b > MB_PG_BACKOFF_MAX) b = MB_PG_BACKOFF_MAX;
  p->backoff = b;
  p->rng ^= p->rng << 13;
  p->rng ^= p->rng >> 7;
  p->rng ^= p->rng << 17;
  jitter = 0.5 + 0.5 * (double)(p->rng % 1000) / 1000.0; /* half to all of b */
  p->next_try = ev_now(p->loop) + b * jitter;
}

static void conn_connect_failed(mb_pg_conn *c, const char *why) {
  mb_pg_pool *p = c->pool;
  char text[MB_ERRLEN];
  copy_message(p, text, sizeof text, why && *why ? why : "the connection could not be made");
  snprintf(p->last_error, sizeof p->last_error, "%s", text);
  p->failing = 1;
  backoff_grow(p);
  conn_free(c);
}

static void conn_ready(mb_pg_conn *c) {
  mb_pg_pool *p = c->pool;
  if (PQsetnonblocking(c->pg, 1) != 0) {
    conn_connect_failed(c, PQerrorMessage(c->pg));
    return;
  }
  PQsetNoticeProcessor(c->pg, quiet_notice, NULL);
  ev_timer_stop(p->loop, &c->connect_timer);
  c->state = C_IDLE;
  if (p->lost > 0 || p->failing) p->reconnects++;
  if (p->lost > 0) p->lost--;
  p->failing = 0;
  p->backoff = 0;
  conn_watch(c, EV_READ);
}

static void conn_poll_connect(mb_pg_conn *c) {
  c->fd = -1; /* libpq may have closed the socket and opened another of the same number */
  switch (PQconnectPoll(c->pg)) {
  case PGRES_POLLING_READING: conn_watch(c, EV_READ); return;
  case PGRES_POLLING_WRITING: conn_watch(c, EV_WRITE); return;
  case PGRES_POLLING_OK: conn_ready(c); return;
  default: conn_connect_failed(c, PQerrorMessage(c->pg)); return;
  }
}

/* Readable or writable while connected: flush what is pending, read what came. */
static void conn_on_io(mb_pg_conn *c, int revents) {
  if ((revents & EV_WRITE) && c->flushing) {
    conn_flush(c);
    if (!c->pg) return;
  }
  if (!(revents & EV_READ)) return;
  if (!PQconsumeInput(c->pg) && !c->in_flight) {
    conn_lost(c, PQerrorMessage(c->pg));
    return;
  }
  for (PGnotify *n = PQnotifies(c->pg); n; n = PQnotifies(c->pg)) PQfreemem(n);
  if (c->flushing) conn_flush(c);
  if (c->pg && c->in_flight) conn_collect(c);
  else if (c->pg && PQstatus(c->pg) == CONNECTION_BAD) conn_lost(c, PQerrorMessage(c->pg));
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  mb_pg_conn *c = w->data;
  mb_pg_pool *p = c->pool;
  (void)loop;
  c->in_cb++;
  if (c->state == C_CONNECTING) conn_poll_connect(c);
  else if (c->pg) conn_on_io(c, revents);
  c->in_cb--;
  conn_reap(c);
  pool_pump(p);
}

static void conn_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  mb_pg_conn *c = w->data;
  mb_pg_pool *p = c->pool;
  (void)loop;
  (void)revents;
  conn_connect_failed(c, "timeout while connecting");
  pool_pump(p);
}

/* Starts a connection in slot i; 0, or -1 when libpq refused at once (then backed off). */
static int conn_start(mb_pg_pool *p, unsigned i) {
  const char *keys[] = {"dbname", NULL};
  const char *values[] = {p->url, NULL};
  mb_pg_conn *c = calloc(1, sizeof *c);
  if (!c) return -1;
  c->pool = p;
  c->fd = -1;
  c->state = C_CONNECTING;
  ev_io_init(&c->io, conn_io_cb, -1, 0);
  c->io.data = c;
  ev_timer_init(&c->connect_timer, conn_timeout_cb, MB_PG_CONNECT_TIMEOUT, 0.);
  c->connect_timer.data = c;
  p->slots[i] = c;
  c->pg = PQconnectStartParams(keys, values, 1);
  if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD || PQsocket(c->pg) < 0) {
    conn_connect_failed(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
    return -1;
  }
  ev_timer_start(p->loop, &c->connect_timer);
  conn_watch(c, EV_WRITE); /* libpq: act as if PQconnectPoll had said WRITING */
  return 0;
}

/* --- the pool -------------------------------------------------------------------------- */

static mb_pg_conn *idle_conn(const mb_pg_pool *p) {
  for (unsigned i = 0; i < p->size; i++)
    if (p->slots[i] && p->slots[i]->state == C_IDLE) return p->slots[i];
  return NULL;
}

static waiter *waiter_pop(mb_pg_pool *p) {
  waiter *w = p->head;
  if (w) p->head = w->next;
  if (!p->head) p->tail = NULL;
  return w;
}

static unsigned waiting(const mb_pg_pool *p) {
  unsigned n = 0;
  for (const waiter *w = p->head; w; w = w->next) n++;
  return n;
}

/* Connections that will be IDLE without a release: being made, rolled back or drained. */
static unsigned coming(const mb_pg_pool *p) {
  unsigned n = 0;
  for (unsigned i = 0; i < p->size; i++)
    if (p->slots[i] && p->slots[i]->state != C_IDLE && p->slots[i]->state != C_LEASED &&
        p->slots[i]->state != C_BROKEN)
      n++;
  return n;
}

static void serve_waiters(mb_pg_pool *p) {
  mb_pg_conn *c;
  while (p->head && (c = idle_conn(p)) != NULL) {
    waiter *w = waiter_pop(p);
    c->state = C_LEASED;
    w->cb(w->ud, c, NULL);
    free(w);
  }
}

/* Makes connections for the waiters no coming connection will serve, back-off allowing. */
static void grow(mb_pg_pool *p) {
  unsigned want = waiting(p), have = coming(p);
  for (unsigned i = 0; i < p->size && want > have; i++) {
    if (p->slots[i]) continue;
    if (ev_now(p->loop) < p->next_try) {
      ev_timer_stop(p->loop, &p->retry);
      ev_timer_set(&p->retry, p->next_try - ev_now(p->loop), 0.);
      ev_timer_start(p->loop, &p->retry);
      return;
    }
    if (conn_start(p, i) == 0) have++;
  }
}

static void arm_deadline(mb_pg_pool *p) {
  ev_timer_stop(p->loop, &p->deadline);
  if (!p->head) return;
  double in = p->head->deadline - ev_now(p->loop);
  ev_timer_set(&p->deadline, in > 0 ? in : 0., 0.);
  ev_timer_start(p->loop, &p->deadline);
}

static void pool_pump(mb_pg_pool *p) {
  if (p->pumping) {
    p->pump_again = 1;
    return;
  }
  p->pumping = 1;
  do {
    p->pump_again = 0;
    serve_waiters(p);
    grow(p);
  } while (p->pump_again);
  p->pumping = 0;
  arm_deadline(p);
}

/* 1 when every slot holds a connection that is up: a waiter then waits for a release. */
static int pool_busy_but_up(const mb_pg_pool *p) {
  for (unsigned i = 0; i < p->size; i++)
    if (!p->slots[i] || p->slots[i]->state == C_CONNECTING || p->slots[i]->state == C_BROKEN)
      return 0;
  return 1;
}

static void fail_lease(mb_pg_pool *p, waiter *w, const char *why) {
  mb_pg_error e;
  char text[MB_ERRLEN];
  if (snprintf(text, sizeof text, "no PostgreSQL connection to %s: %s", p->shown, why) < 0)
    text[0] = '\0'; /* (a longer message is cut) */
  error_set(p, &e, MB_PG_TRANSIENT, "", text);
  w->cb(w->ud, NULL, &e);
  free(w);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  mb_pg_pool *p = t->data;
  double now = ev_now(loop);
  char why[MB_ERRLEN];
  (void)revents;
  while (p->head && p->head->deadline <= now) {
    if (pool_busy_but_up(p)) {
      for (waiter *w = p->head; w; w = w->next)
        if (w->deadline <= now) w->deadline = now + p->lease_wait;
      break;
    }
    if (snprintf(why, sizeof why, "none within %.1f s (%s)", p->lease_wait,
                 p->failing ? p->last_error : "still connecting") < 0)
      why[0] = '\0'; /* (a longer message is cut) */
    fail_lease(p, waiter_pop(p), why);
  }
  pool_pump(p);
}

static void retry_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop;
  (void)revents;
  pool_pump(t->data);
}

/* Scrubs from msg the password as the URL spells it (percent-encoded): after the first ':'
 * of the user info, and the value of a password= option. For libpq's complaints about a
 * URL it could not parse (they quote the token they choked on). */
static void scrub_raw_password(const char *url, char *msg) {
  const char *info, *colon, *opt;
  size_t len;
  char raw[256];
  if (mb_url_userinfo(url, &info, &len) && (colon = memchr(info, ':', len)) != NULL) {
    size_t n = len - (size_t)(colon + 1 - info);
    if (n < sizeof raw && snprintf(raw, sizeof raw, "%.*s", (int)n, colon + 1) > 0)
      replace_secret(msg, raw);
  }
  opt = strchr(url, '?');
  opt = opt ? strstr(opt, "password=") : NULL;
  if (opt && snprintf(raw, sizeof raw, "%.*s", (int)strcspn(opt + 9, "&"), opt + 9) > 0)
    replace_secret(msg, raw);
}

/* 0 and the password (if any) of url in p; -1 and a message when libpq cannot parse it
 * (the URL then shown without its options, where a password= may be). */
static int parse_url(mb_pg_pool *p, const char *url, mb_err *err) {
  char *why = NULL, text[MB_ERRLEN];
  PQconninfoOption *opts = PQconninfoParse(url, &why);
  if (!opts) {
    copy_message(p, text, sizeof text, why ? why : "out of memory");
    if (why) PQfreemem(why);
    scrub_raw_password(url, text);
    p->shown[strcspn(p->shown, "?")] = '\0';
    return mb_err_set(err, MB_EINVAL, "bad PostgreSQL URL %s: %s", p->shown, text);
  }
  for (PQconninfoOption *o = opts; o->keyword; o++)
    if (!strcmp(o->keyword, "password") && o->val && *o->val) p->password = strdup(o->val);
  PQconninfoFree(opts);
  return MB_OK;
}

static int scheme_ok(const char *url) {
  return !strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11);
}

static void pool_free(mb_pg_pool *p) {
  free(p->slots);
  free(p->url);
  free(p->password);
  free(p);
}

int mb_pg_pool_open(mb_pg_pool **out, struct ev_loop *loop, const char *url, unsigned size,
                    mb_err *err) {
  mb_pg_pool *p;
  *out = NULL;
  if (!url || !scheme_ok(url) || size == 0)
    return mb_err_set(err, MB_EINVAL,
                      "bad PostgreSQL URL: it must start with postgresql:// "
                      "or postgres://, and the pool needs a size");
  p = calloc(1, sizeof *p);
  if (!p) return mb_err_set(err, MB_ENOMEM, "out of memory for a PostgreSQL pool");
  p->url = strdup(url);
  p->slots = calloc(size, sizeof *p->slots);
  if (!p->url || !p->slots) {
    pool_free(p);
    return mb_err_set(err, MB_ENOMEM, "out of memory for a PostgreSQL pool");
  }
  p->loop = loop;
  p->size = size;
  p->lease_wait = MB_PG_LEASE_WAIT;
  p->rng = (uint64_t)(uintptr_t)p ^ (uint64_t)(ev_time() * 1e6) ^ 0x9e3779b97f4a7c15ull;
  mb_url_redact(url, p->shown, sizeof p->shown);
  int rc = parse_url(p, url, err);
  if (rc != MB_OK) {
    pool_free(p);
    return rc;
  }
  scrub_secrets(p, p->shown, sizeof p->shown); /* a ?password= option too */
  ev_timer_init(&p->retry, retry_cb, 0., 0.);
  p->retry.data = p;
  ev_timer_init(&p->deadline, deadline_cb, 0., 0.);
  p->deadline.data = p;
  *out = p;
  return MB_OK;
}

void mb_pg_pool_set_lease_wait(mb_pg_pool *p, double seconds) {
  if (p && seconds > 0) p->lease_wait = seconds;
}

void mb_pg_pool_close(mb_pg_pool *p) {
  mb_pg_error e;
  if (!p) return;
  ev_timer_stop(p->loop, &p->retry);
  ev_timer_stop(p->loop, &p->deadline);
  p->pumping = 1; /* no lease is served from here on */
  error_set(p, &e, MB_PG_TRANSIENT, "", "the PostgreSQL pool is closed");
  for (waiter *w = waiter_pop(p); w; w = waiter_pop(p)) {
    w->cb(w->ud, NULL, &e);
    free(w);
  }
  for (unsigned i = 0; i < p->size; i++) {
    mb_pg_conn *c = p->slots[i];
    if (!c) continue;
    conn_close_pg(c);
    if (c->in_flight) conn_deliver(c, NULL, &e);
    conn_free(c);
  }
  pool_free(p);
}

void mb_pg_lease(mb_pg_pool *p, mb_pg_lease_fn cb, void *ud) {
  waiter *w = calloc(1, sizeof *w);
  if (!w) {
    mb_pg_error e;
    error_set(p, &e, MB_PG_TRANSIENT, "", "out of memory for a PostgreSQL lease");
    cb(ud, NULL, &e);
    return;
  }
  w->cb = cb;
  w->ud = ud;
  w->deadline = ev_now(p->loop) + p->lease_wait;
  if (p->tail) p->tail->next = w;
  else p->head = w;
  p->tail = w;
  pool_pump(p);
}

void mb_pg_release(mb_pg_conn *c) {
  mb_pg_pool *p;
  if (!c) return;
  p = c->pool;
  if (c->state == C_BROKEN || !c->pg) {
    conn_free(c);
  } else if (c->in_flight) {
    c->state = C_DRAINING;
    c->cb = drained;
    c->ud = c;
  } else {
    conn_settle(c);
  }
  pool_pump(p);
}

int mb_pg_query(mb_pg_conn *c, const char *sql, int n, const char *const *params,
                mb_pg_result_fn cb, void *ud, mb_err *err) {
  if (!c || !sql || !cb || n < 0 || (n > 0 && !params))
    return mb_err_set(err, MB_EINVAL, "mb_pg_query: a connection, SQL and a callback are needed");
  if (c->state == C_BROKEN || !c->pg)
    return mb_err_set(err, MB_ENOTCONN, "the connection to PostgreSQL at %s was lost",
                      c->pool->shown);
  if (c->in_flight)
    return mb_err_set(err, MB_EBUSY, "a statement is already running on this connection");
  if (conn_send(c, sql, n, params, cb, ud) != 0) {
    char text[MB_ERRLEN];
    copy_message(c->pool, text, sizeof text, PQerrorMessage(c->pg));
    if (PQstatus(c->pg) == CONNECTION_BAD) {
      conn_lost(c, text);
      return mb_err_set(err, MB_ENOTCONN, "PostgreSQL at %s: %s", c->pool->shown, text);
    }
    return mb_err_set(err, MB_EINVAL, "PostgreSQL at %s refused the statement: %s",
                      c->pool->shown, text);
  }
  return MB_OK;
}

/* --- results --------------------------------------------------------------------------- */

int mb_pg_rows(const mb_pg_result *r) { return r ? PQntuples(r->res) : 0; }

int mb_pg_cols(const mb_pg_result *r) { return r ? PQnfields(r->res) : 0; }

const char *mb_pg_col_name(const mb_pg_result *r, int col) {
  return r && col >= 0 && col < PQnfields(r->res) ? PQfname(r->res, col) : NULL;
}

unsigned mb_pg_col_type(const mb_pg_result *r, int col) {
  return r && col >= 0 && col < PQnfields(r->res) ? (unsigned)PQftype(r->res, col) : 0;
}

const char *mb_pg_value(const mb_pg_result *r, int row, int col, size_t *len) {
  if (len) *len = 0;
  if (!r || row < 0 || row >= PQntuples(r->res) || col < 0 || col >= PQnfields(r->res))
    return NULL;
  if (PQgetisnull(r->res, row, col)) return NULL;
  if (len) *len = (size_t)PQgetlength(r->res, row, col);
  return PQgetvalue(r->res, row, col);
}

long mb_pg_changed(const mb_pg_result *r) {
  const char *cmd = r ? PQcmdStatus(r->res) : NULL, *n;
  if (!cmd || (strncmp(cmd, "INSERT ", 7) && strncmp(cmd, "UPDATE ", 7) &&
               strncmp(cmd, "DELETE ", 7) && strncmp(cmd, "MERGE ", 6)))
    return 0; /* a SELECT's count is of rows read */
  n = PQcmdTuples(r->res);
  return n && *n ? strtol(n, NULL, 10) : 0;
}

unsigned mb_pg_pool_open_connections(const mb_pg_pool *p) {
  unsigned n = 0;
  for (unsigned i = 0; p && i < p->size; i++)
    if (p->slots[i] && p->slots[i]->pg && p->slots[i]->state != C_CONNECTING) n++;
  return n;
}

unsigned long mb_pg_pool_reconnects(const mb_pg_pool *p) { return p ? p->reconnects : 0; }
