/* persist.c — the inbox and outbox of persist.h (DESIGN §12): the schema's SQL and its
 * version check, the statements around a handler's transaction, and an outgoing message
 * turned into a row of moonbus_outbox and back, byte for byte.
 *
 * Every call is one op: a small struct that runs its statements one after another on the
 * caller's connection (pg.h runs one at a time), the next from the callback of the last,
 * and ends in exactly one callback of the caller, the op freed before it runs. Bytes that
 * may come from a foreign sender go to bytea columns hex-encoded (decode($n, 'hex')) and
 * come back with encode(col, 'hex'), whatever the server's bytea_output says.
 * Never: builds SQL from data (the one SQL made at run time is a list of placeholders
 * whose count is a number of messages), includes libpq-fe.h (pg.h is the way to the
 * server), begins or commits a transaction outside the schema and the sweep, leaves one
 * of its own open when it fails (ROLLBACK first), or touches an op or its connection after
 * the caller's callback ran (the callback may release the connection). */
#include "persist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers_json.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define COUNT(a) (sizeof(a) / sizeof *(a))

#define STORE_BATCH 64 /* outgoing messages per INSERT */

_Static_assert(MB_INBOX_HANDLED == 1 && MB_INBOX_DISPATCHED == 2,
               "the SQL below spells the inbox states 1 and 2");

/* --- the schema's SQL ------------------------------------------------------------------ */

static const char *const schema_open[] = {
    "BEGIN ISOLATION LEVEL READ COMMITTED", /* each statement sees what committed before it */
    "SELECT pg_advisory_xact_lock(" STR(MB_PERSIST_LOCK_SCHEMA) ", 0)",
    "CREATE TABLE IF NOT EXISTS moonbus_schema (version integer NOT NULL)",
    "SELECT max(version) FROM moonbus_schema",
};

static const char *const schema_create[] = {
    "CREATE TABLE IF NOT EXISTS moonbus_inbox ("
    " endpoint text NOT NULL,"
    " message_id text NOT NULL,"
    " state smallint NOT NULL,"
    " processed_at timestamptz NOT NULL DEFAULT now(),"
    " dispatched_at timestamptz,"
    " PRIMARY KEY (endpoint, message_id))",
    "CREATE INDEX IF NOT EXISTS moonbus_inbox_sweep ON moonbus_inbox (endpoint, processed_at)",
    "CREATE TABLE IF NOT EXISTS moonbus_outbox ("
    " endpoint text NOT NULL,"
    " message_id text NOT NULL,"
    " seq integer NOT NULL,"
    " id text NOT NULL,"
    " type bytea NOT NULL,"
    " correlation_id bytea,"
    " reply_to bytea,"
    " headers bytea NOT NULL,"
    " body bytea,"
    " route smallint NOT NULL,"
    " dest bytea,"
    " delay numeric NOT NULL,"
    " to_requester boolean NOT NULL,"
    " archive boolean NOT NULL,"
    " PRIMARY KEY (endpoint, message_id, seq))",
    "INSERT INTO moonbus_schema (version) VALUES (" STR(MB_PERSIST_SCHEMA_VERSION) ")",
    "COMMIT",
};

static const char *const schema_commit[] = {"COMMIT"};

/* --- the statements' SQL --------------------------------------------------------------- */

static const char inbox_sql[] = "SELECT state FROM moonbus_inbox"
                                " WHERE endpoint = $1::text AND message_id = $2::text FOR UPDATE";

static const char store_inbox_sql[] = "INSERT INTO moonbus_inbox (endpoint, message_id, state)"
                                      " VALUES ($1::text, $2::text, 1)";

/* The outbox's values in the order of the store's parameters and the read's columns. */
enum {
  V_SEQ,
  V_ID,
  V_TYPE,
  V_CORRELATION_ID,
  V_REPLY_TO,
  V_HEADERS,
  V_BODY,
  V_ROUTE,
  V_DEST,
  V_DELAY,
  V_TO_REQUESTER,
  V_ARCHIVE,
  ROW_VALUES
};

static const char store_head[] =
    "INSERT INTO moonbus_outbox (endpoint, message_id, seq, id, type, correlation_id,"
    " reply_to, headers, body, route, dest, delay, to_requester, archive) VALUES ";

/* One message's row: $1, $2 (endpoint, message id), then ROW_VALUES parameters from $k. */
static const char store_row[] =
    "($1::text, $2::text, $%zu::integer, $%zu::text, decode($%zu::text, 'hex'),"
    " decode($%zu::text, 'hex'), decode($%zu::text, 'hex'), decode($%zu::text, 'hex'),"
    " decode($%zu::text, 'hex'), $%zu::smallint, decode($%zu::text, 'hex'), $%zu::numeric,"
    " $%zu::boolean, $%zu::boolean)";

static const char outbox_sql[] =
    "SELECT seq, id, encode(type, 'hex'), encode(correlation_id, 'hex'),"
    " encode(reply_to, 'hex'), encode(headers, 'hex'), encode(body, 'hex'), route,"
    " encode(dest, 'hex'), delay, to_requester, archive FROM moonbus_outbox"
    " WHERE endpoint = $1::text AND message_id = $2::text ORDER BY seq";

static const char dispatched_sql[] = "WITH outbox AS (DELETE FROM moonbus_outbox"
                                     " WHERE endpoint = $1::text AND message_id = $2::text)"
                                     " UPDATE moonbus_inbox SET state = 2, dispatched_at = now()"
                                     " WHERE endpoint = $1::text AND message_id = $2::text";

static const char sweep_lock_sql[] =
    "SELECT pg_try_advisory_xact_lock(" STR(MB_PERSIST_LOCK_SWEEP) ", hashtext($1::text))";

static const char sweep_sql[] =
    "WITH gone AS (DELETE FROM moonbus_inbox WHERE endpoint = $1::text AND message_id IN"
    " (SELECT message_id FROM moonbus_inbox WHERE endpoint = $1::text AND processed_at <"
    " TIMESTAMPTZ 'epoch' + $2::bigint * INTERVAL '1 microsecond'"
    " LIMIT " STR(
        MB_PERSIST_SWEEP_SLICE) ") RETURNING message_id),"
                                " outbox AS (DELETE FROM moonbus_outbox o USING gone"
                                " WHERE o.endpoint = $1::text AND o.message_id = gone.message_id)"
                                " SELECT count(*) FROM gone";

/* --- ops ------------------------------------------------------------------------------- */

/* The caller's callback: exactly one of done, inbox, outbox is set. */
typedef struct reply {
  mb_persist_done_fn done;
  mb_persist_inbox_fn inbox;
  mb_persist_outbox_fn outbox;
  void *ud;
} reply;

typedef struct op op;
typedef void (*op_step)(op *o, const mb_pg_result *r);

struct op {
  mb_pg_conn *conn;
  reply to;
  const char *what;    /* what it does, for messages: "storing the outbox" */
  char *endpoint, *id; /* copies (NULL for the schema; id NULL for the sweep) */
  op_step next;        /* runs on the result of the statement in flight */
  int in_tx;           /* a transaction of its own is open: rolled back on failure */
  int failing;         /* that ROLLBACK is in flight; failure is what to report */
  mb_pg_error failure;
  const char *const *script; /* the schema: statements run in order, then after */
  size_t script_len, script_at;
  op_step after;
  char **values; /* the store: ROW_VALUES encoded values per message, n messages */
  size_t n, stored;
  int begun;       /* the store's first statement (with the inbox row) was sent */
  char before[24]; /* the sweep: before_usec as text */
  long swept;      /* rows the last slice deleted */
};

static void reply_error(reply to, const mb_pg_error *e) {
  if (to.done) to.done(to.ud, e);
  else if (to.inbox) to.inbox(to.ud, MB_INBOX_NEW, e);
  else if (to.outbox) to.outbox(to.ud, NULL, 0, e);
}

static void values_free(char **values, size_t count) {
  if (!values) return;
  for (size_t i = 0; i < count; i++) free(values[i]);
  free(values);
}

static void op_free(op *o) {
  values_free(o->values, o->n * ROW_VALUES);
  free(o->endpoint);
  free(o->id);
  free(o);
}

/* e filled with kind, sqlstate and text after what the op was doing and on what. */
static void op_error(const op *o, mb_pg_error *e, mb_pg_error_kind kind, const char *sqlstate,
                     const char *text) {
  int w;
  e->kind = kind;
  snprintf(e->sqlstate, sizeof e->sqlstate, "%s", sqlstate ? sqlstate : "");
  if (o->endpoint && o->id)
    w = snprintf(e->msg, sizeof e->msg, "%s (endpoint %s, message %s): %s", o->what, o->endpoint,
                 o->id, text);
  else if (o->endpoint)
    w = snprintf(e->msg, sizeof e->msg, "%s (endpoint %s): %s", o->what, o->endpoint, text);
  else w = snprintf(e->msg, sizeof e->msg, "%s: %s", o->what, text);
  if (w < 0) e->msg[0] = '\0'; /* (a longer message is cut) */
}

/* Ends the op with its failure. */
static void op_end_failure(op *o) {
  reply to = o->to;
  mb_pg_error e = o->failure;
  op_free(o);
  reply_error(to, &e);
}

static void on_result(void *ud, const mb_pg_result *r, const mb_pg_error *e);

/* Fails the op with e (already saying what and on what): after a ROLLBACK of its own
 * transaction when one is open and the connection still there. */
static void op_fail_with(op *o, const mb_pg_error *e) {
  mb_err err = {0, ""};
  o->failure = *e;
  if (!o->in_tx || e->kind == MB_PG_TRANSIENT) {
    op_end_failure(o);
    return;
  }
  o->in_tx = 0;
  o->failing = 1;
  if (mb_pg_query(o->conn, "ROLLBACK", 0, NULL, on_result, o, &err) != MB_OK) op_end_failure(o);
}

static void op_fail(op *o, mb_pg_error_kind kind, const char *sqlstate, const char *text) {
  mb_pg_error e;
  op_error(o, &e, kind, sqlstate, text);
  op_fail_with(o, &e);
}

/* Ends the op well (a done callback's). */
static void op_done(op *o) {
  reply to = o->to;
  op_free(o);
  to.done(to.ud, NULL);
}

static void on_result(void *ud, const mb_pg_result *r, const mb_pg_error *e) {
  op *o = ud;
  if (o->failing) {
    op_end_failure(o); /* the ROLLBACK after a failure ran, well or not */
    return;
  }
  if (e) {
    op_fail(o, e->kind, e->sqlstate, e->msg);
    return;
  }
  o->next(o, r);
}

/* Sends sql; next gets its result. A statement that cannot be sent fails the op at once. */
static void run(op *o, const char *sql, int n, const char *const *params, op_step next) {
  mb_err err = {0, ""};
  int rc;
  o->next = next;
  rc = mb_pg_query(o->conn, sql, n, params, on_result, o, &err);
  if (rc != MB_OK) op_fail(o, rc == MB_ENOTCONN ? MB_PG_TRANSIENT : MB_PG_STATEMENT, "", err.msg);
}

enum { NEEDS_ENDPOINT = 1, NEEDS_ID = 2 };

/* A new op, or NULL when an argument it needs is missing or memory is short (the caller's
 * callback then has had its error). */
static op *op_start(mb_pg_conn *c, const char *what, const char *endpoint, const char *id,
                    int needs, reply to) {
  op model = {.to = to, .what = what, .endpoint = (char *)endpoint, .id = (char *)id};
  mb_pg_error e;
  op *o;
  if (!c || ((needs & NEEDS_ENDPOINT) && !endpoint) || ((needs & NEEDS_ID) && !id)) {
    op_error(&model, &e, MB_PG_STATEMENT, "",
             "a connection, an endpoint and a message id are needed");
    reply_error(to, &e);
    return NULL;
  }
  o = calloc(1, sizeof *o);
  if (o) {
    *o = model;
    o->conn = c;
    o->endpoint = endpoint ? strdup(endpoint) : NULL;
    o->id = id ? strdup(id) : NULL;
  }
  if (!o || (endpoint && !o->endpoint) || (id && !o->id)) {
    if (o) op_free(o);
    op_error(&model, &e, MB_PG_TRANSIENT, "", "out of memory");
    reply_error(to, &e);
    return NULL;
  }
  return o;
}

/* --- the schema ------------------------------------------------------------------------ */

static void script_step(op *o, const mb_pg_result *r) {
  if (o->script_at == o->script_len) {
    o->after(o, r);
    return;
  }
  run(o, o->script[o->script_at++], 0, NULL, script_step);
}

/* Runs the statements sql[0..n) in order, then after with the last one's result. */
static void script(op *o, const char *const *sql, size_t n, op_step after) {
  o->script = sql;
  o->script_len = n;
  o->script_at = 0;
  o->after = after;
  script_step(o, NULL);
}

static void schema_made(op *o, const mb_pg_result *r) {
  (void)r;
  o->in_tx = 0;
  op_done(o);
}

static void schema_check(op *o, const mb_pg_result *r) {
  const char *v = mb_pg_value(r, 0, 0, NULL);
  long version = v ? strtol(v, NULL, 10) : 0;
  char why[200];
  if (!v) {
    script(o, schema_create, COUNT(schema_create), schema_made);
    return;
  }
  if (version == MB_PERSIST_SCHEMA_VERSION) {
    script(o, schema_commit, COUNT(schema_commit), schema_made);
    return;
  }
  if (version > MB_PERSIST_SCHEMA_VERSION)
    snprintf(why, sizeof why,
             "the database was made by a newer moonbus: its schema is version %ld, this "
             "moonbus knows version %d at most (upgrade moonbus)",
             version, MB_PERSIST_SCHEMA_VERSION);
  else
    snprintf(why, sizeof why, "moonbus_schema says version %ld, which no moonbus made", version);
  op_fail(o, MB_PG_STATEMENT, "", why);
}

void mb_persist_schema(mb_pg_conn *c, mb_persist_done_fn cb, void *ud) {
  op *o = op_start(c, "creating or checking the moonbus schema", NULL, NULL, 0,
                   (reply){cb, NULL, NULL, ud});
  if (!o) return;
  o->in_tx = 1; /* from BEGIN on; a ROLLBACK outside a transaction only warns */
  script(o, schema_open, COUNT(schema_open), schema_check);
}

/* --- the inbox ------------------------------------------------------------------------- */

static void inbox_read(op *o, const mb_pg_result *r) {
  const char *v = mb_pg_value(r, 0, 0, NULL);
  mb_inbox_state state;
  char why[96];
  reply to = o->to;
  if (mb_pg_rows(r) == 0) state = MB_INBOX_NEW;
  else if (v && strcmp(v, "1") == 0) state = MB_INBOX_HANDLED;
  else if (v && strcmp(v, "2") == 0) state = MB_INBOX_DISPATCHED;
  else {
    snprintf(why, sizeof why, "its inbox row has state %.16s, which this moonbus does not know",
             v ? v : "NULL");
    op_fail(o, MB_PG_STATEMENT, "", why);
    return;
  }
  op_free(o);
  to.inbox(to.ud, state, NULL);
}

void mb_persist_inbox(mb_pg_conn *c, const char *endpoint, const char *id, mb_persist_inbox_fn cb,
                      void *ud) {
  op *o = op_start(c, "reading the inbox", endpoint, id, NEEDS_ENDPOINT | NEEDS_ID,
                   (reply){NULL, cb, NULL, ud});
  if (!o) return;
  const char *params[] = {o->endpoint, o->id};
  run(o, inbox_sql, 2, params, inbox_read);
}

/* --- encoding a message as the store's parameters --------------------------------------- */

/* *slot gets the n bytes of s in hex (NULL for s NULL: SQL NULL). */
static int hex_value(char **slot, const char *s, size_t n) {
  static const char digits[] = "0123456789abcdef";
  char *h;
  *slot = NULL;
  if (!s) return MB_OK;
  h = malloc(2 * n + 1);
  if (!h) return MB_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    h[2 * i] = digits[(unsigned char)s[i] >> 4];
    h[2 * i + 1] = digits[(unsigned char)s[i] & 0xf];
  }
  h[2 * n] = '\0';
  *slot = h;
  return MB_OK;
}

static int text_value(char **slot, const char *text) {
  *slot = strdup(text);
  return *slot ? MB_OK : MB_ENOMEM;
}

static int string_value(char **slot, const char *s) {
  return hex_value(slot, s, s ? strlen(s) : 0);
}

/* The shortest decimal that reads back as d exactly (numeric keeps it as it is). */
static int delay_value(char **slot, double d) {
  char text[40];
  *slot = NULL;
  if (!isfinite(d)) return MB_EINVAL;
  for (int digits = 1; digits <= 17; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, d);
    if (strtod(text, NULL) == d) break;
  }
  return text_value(slot, text);
}

static int headers_value(char **slot, const mb_headers *h) {
  size_t len = 0;
  char *json = mb_headers_to_json(h, &len);
  int rc;
  *slot = NULL;
  if (!json) return MB_ENOMEM;
  rc = hex_value(slot, json, len);
  free(json);
  return rc;
}

/* v[0..ROW_VALUES) gets message m, the seq-th of its outbox. */
static int encode_row(char **v, const mb_outgoing *m, size_t seq) {
  char num[24];
  int rc;
  snprintf(num, sizeof num, "%zu", seq);
  rc = text_value(&v[V_SEQ], num);
  if (rc == MB_OK) rc = text_value(&v[V_ID], m->env.id);
  if (rc == MB_OK) rc = m->env.type ? string_value(&v[V_TYPE], m->env.type) : MB_EINVAL;
  if (rc == MB_OK) rc = string_value(&v[V_CORRELATION_ID], m->env.correlation_id);
  if (rc == MB_OK) rc = string_value(&v[V_REPLY_TO], m->env.reply_to);
  if (rc == MB_OK) rc = headers_value(&v[V_HEADERS], &m->env.headers);
  if (rc == MB_OK) rc = hex_value(&v[V_BODY], m->env.body, m->env.body_len);
  if (rc == MB_OK) rc = text_value(&v[V_ROUTE], m->route == MB_ROUTE_PUBLISH ? "1" : "0");
  if (rc == MB_OK) rc = string_value(&v[V_DEST], m->dest);
  if (rc == MB_OK) rc = delay_value(&v[V_DELAY], m->delay);
  if (rc == MB_OK) rc = text_value(&v[V_TO_REQUESTER], m->to_requester ? "true" : "false");
  if (rc == MB_OK) rc = text_value(&v[V_ARCHIVE], m->archive ? "true" : "false");
  return rc;
}

/* o->values gets every message of out; on failure why says which and what. */
static int encode_all(op *o, mb_outgoing *const *out, size_t n, char *why, size_t len) {
  int rc = MB_OK;
  size_t i;
  o->values = calloc(n ? n * ROW_VALUES : 1, sizeof *o->values);
  if (!o->values) rc = MB_ENOMEM;
  else o->n = n;
  for (i = 0; i < n && rc == MB_OK; i++)
    rc = out[i] ? encode_row(o->values + i * ROW_VALUES, out[i], i) : MB_EINVAL;
  if (rc == MB_ENOMEM) snprintf(why, len, "out of memory");
  else if (rc != MB_OK)
    snprintf(why, len, "outgoing message %zu (%s) has no type or a delay that is not a number",
             i - 1, out[i - 1] ? out[i - 1]->env.id : "NULL");
  return rc;
}

/* --- the store ------------------------------------------------------------------------- */

/* The INSERT of rows messages, after the inbox row's when with_inbox (one statement: a
 * data-modifying WITH). Placeholders only; malloc'd. */
static char *store_sql(size_t rows, int with_inbox) {
  static const char with_head[] = "WITH inbox AS (";
  size_t cap = sizeof with_head + sizeof store_inbox_sql + sizeof store_head + 8 +
               rows * (sizeof store_row + 12 * 8);
  char *sql = malloc(cap);
  size_t len;
  if (!sql) return NULL;
  if (rows == 0) return strcpy(sql, store_inbox_sql);
  len = (size_t)snprintf(sql, cap, "%s%s%s%s", with_inbox ? with_head : "",
                         with_inbox ? store_inbox_sql : "", with_inbox ? ") " : "", store_head);
  for (size_t i = 0; i < rows && len < cap; i++) {
    size_t k = 3 + i * ROW_VALUES;
    len += (size_t)snprintf(sql + len, cap - len, store_row, k, k + 1, k + 2, k + 3, k + 4, k + 5,
                            k + 6, k + 7, k + 8, k + 9, k + 10, k + 11);
    if (i + 1 < rows && len + 2 < cap) len += (size_t)snprintf(sql + len, cap - len, ", ");
  }
  return sql;
}

/* Sends the next slice of the outbox (the first with the inbox row), or ends the store. */
static void store_next(op *o, const mb_pg_result *r) {
  size_t rows = o->n - o->stored < STORE_BATCH ? o->n - o->stored : STORE_BATCH;
  size_t count = 2 + rows * ROW_VALUES;
  char *sql;
  const char **params;
  (void)r;
  if (o->begun && rows == 0) {
    op_done(o);
    return;
  }
  sql = store_sql(rows, !o->begun);
  params = malloc(count * sizeof *params);
  if (!sql || !params) {
    free(sql);
    free(params);
    op_fail(o, MB_PG_TRANSIENT, "", "out of memory");
    return;
  }
  params[0] = o->endpoint;
  params[1] = o->id;
  for (size_t i = 2; i < count; i++) params[i] = o->values[o->stored * ROW_VALUES + i - 2];
  o->begun = 1;
  o->stored += rows;
  run(o, sql, (int)count, params, store_next); /* (o may be gone: nothing of it below) */
  free(sql);
  free(params);
}

void mb_persist_store(mb_pg_conn *c, const char *endpoint, const char *id,
                      mb_outgoing *const *out, size_t n, mb_persist_done_fn cb, void *ud) {
  op *o = op_start(c, "storing the outbox", endpoint, id, NEEDS_ENDPOINT | NEEDS_ID,
                   (reply){cb, NULL, NULL, ud});
  char why[MB_ERRLEN];
  int rc;
  if (!o) return;
  if (n > 0 && !out) {
    op_fail(o, MB_PG_STATEMENT, "", "no outgoing messages given");
    return;
  }
  rc = encode_all(o, out, n, why, sizeof why);
  if (rc != MB_OK) {
    op_fail(o, rc == MB_ENOMEM ? MB_PG_TRANSIENT : MB_PG_STATEMENT, "", why);
    return;
  }
  store_next(o, NULL);
}

/* --- reading a stored outbox back ------------------------------------------------------- */

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* *out gets the bytes a hex column holds, NUL-terminated (NULL for SQL NULL), *n their
 * count. MB_EINVAL for text that is not hex. */
static int unhex_value(const mb_pg_result *r, int row, int col, char **out, size_t *n) {
  size_t len = 0;
  const char *h = mb_pg_value(r, row, col, &len);
  char *bytes;
  *out = NULL;
  if (n) *n = 0;
  if (!h) return MB_OK;
  if (len % 2) return MB_EINVAL;
  bytes = malloc(len / 2 + 1);
  if (!bytes) return MB_ENOMEM;
  for (size_t i = 0; i < len / 2; i++) {
    int hi = hex_digit(h[2 * i]), lo = hex_digit(h[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(bytes);
      return MB_EINVAL;
    }
    bytes[i] = (char)(hi << 4 | lo);
  }
  bytes[len / 2] = '\0';
  *out = bytes;
  if (n) *n = len / 2;
  return MB_OK;
}

/* A C string from a hex column: no NUL inside; NULL only where null_ok. */
static int unhex_string(const mb_pg_result *r, int row, int col, int null_ok, char **out) {
  size_t n;
  int rc = unhex_value(r, row, col, out, &n);
  if (rc == MB_OK && ((!*out && !null_ok) || (*out && memchr(*out, '\0', n)))) {
    free(*out);
    *out = NULL;
    rc = MB_EINVAL;
  }
  return rc;
}

static int read_headers(const mb_pg_result *r, int row, mb_headers *h) {
  char *json;
  size_t n;
  mb_err err = {0, ""};
  int rc = unhex_value(r, row, V_HEADERS, &json, &n);
  if (rc == MB_OK && !json) rc = MB_EINVAL;
  if (rc == MB_OK) rc = mb_headers_from_json(json, n, h, &err);
  free(json);
  return rc;
}

static int read_scalars(const mb_pg_result *r, int row, mb_outgoing *m) {
  size_t len = 0;
  const char *id = mb_pg_value(r, row, V_ID, &len);
  const char *route = mb_pg_value(r, row, V_ROUTE, NULL);
  const char *delay = mb_pg_value(r, row, V_DELAY, NULL);
  const char *to_requester = mb_pg_value(r, row, V_TO_REQUESTER, NULL);
  const char *archive = mb_pg_value(r, row, V_ARCHIVE, NULL);
  char *end = NULL;
  if (!id || len > MB_ID_LEN || !route || !delay || !to_requester || !archive) return MB_EINVAL;
  memcpy(m->env.id, id, len);
  m->env.id[len] = '\0';
  if (strcmp(route, "0") && strcmp(route, "1")) return MB_EINVAL;
  m->route = strcmp(route, "1") == 0 ? MB_ROUTE_PUBLISH : MB_ROUTE_QUEUE;
  m->delay = strtod(delay, &end);
  if (end == delay || *end) return MB_EINVAL;
  m->to_requester = strcmp(to_requester, "t") == 0;
  m->archive = strcmp(archive, "t") == 0;
  return MB_OK;
}

/* *out gets the message of row; MB_EINVAL for a row no store wrote. */
static int read_row(const mb_pg_result *r, int row, mb_outgoing **out) {
  mb_outgoing *m = malloc(sizeof *m);
  int rc;
  *out = NULL;
  if (!m) return MB_ENOMEM;
  mb_outgoing_init(m);
  rc = read_scalars(r, row, m);
  if (rc == MB_OK) rc = unhex_string(r, row, V_TYPE, 0, &m->env.type);
  if (rc == MB_OK) rc = unhex_string(r, row, V_CORRELATION_ID, 1, &m->env.correlation_id);
  if (rc == MB_OK) rc = unhex_string(r, row, V_REPLY_TO, 1, &m->env.reply_to);
  if (rc == MB_OK) rc = unhex_string(r, row, V_DEST, 1, &m->dest);
  if (rc == MB_OK) rc = unhex_value(r, row, V_BODY, &m->env.body, &m->env.body_len);
  if (rc == MB_OK) rc = read_headers(r, row, &m->env.headers);
  if (rc != MB_OK) {
    mb_outgoing_free(m);
    return rc;
  }
  *out = m;
  return MB_OK;
}

static void outbox_free(mb_outgoing **out, size_t n) {
  if (!out) return;
  for (size_t i = 0; i < n; i++) mb_outgoing_free(out[i]);
  free(out);
}

static void outbox_read(op *o, const mb_pg_result *r) {
  size_t n = (size_t)mb_pg_rows(r);
  mb_outgoing **out = calloc(n ? n : 1, sizeof *out);
  reply to = o->to;
  char why[96];
  int rc = out ? MB_OK : MB_ENOMEM;
  size_t i;
  for (i = 0; i < n && rc == MB_OK; i++) rc = read_row(r, (int)i, &out[i]);
  if (rc != MB_OK) {
    outbox_free(out, n);
    if (rc == MB_ENOMEM) snprintf(why, sizeof why, "out of memory");
    else snprintf(why, sizeof why, "its stored outbox row %zu is malformed", i - 1);
    op_fail(o, rc == MB_ENOMEM ? MB_PG_TRANSIENT : MB_PG_STATEMENT, "", why);
    return;
  }
  op_free(o);
  to.outbox(to.ud, out, n, NULL);
}

void mb_persist_outbox(mb_pg_conn *c, const char *endpoint, const char *id,
                       mb_persist_outbox_fn cb, void *ud) {
  op *o = op_start(c, "reading the stored outbox", endpoint, id, NEEDS_ENDPOINT | NEEDS_ID,
                   (reply){NULL, NULL, cb, ud});
  if (!o) return;
  const char *params[] = {o->endpoint, o->id};
  run(o, outbox_sql, 2, params, outbox_read);
}

/* --- dispatched ------------------------------------------------------------------------ */

static void dispatched_done(op *o, const mb_pg_result *r) {
  if (mb_pg_changed(r) == 0) {
    op_fail(o, MB_PG_STATEMENT, "", "it has no inbox row (never stored, or swept)");
    return;
  }
  op_done(o);
}

void mb_persist_dispatched(mb_pg_conn *c, const char *endpoint, const char *id,
                           mb_persist_done_fn cb, void *ud) {
  op *o = op_start(c, "marking the outbox dispatched", endpoint, id, NEEDS_ENDPOINT | NEEDS_ID,
                   (reply){cb, NULL, NULL, ud});
  if (!o) return;
  const char *params[] = {o->endpoint, o->id};
  run(o, dispatched_sql, 2, params, dispatched_done);
}

/* --- the sweep ------------------------------------------------------------------------- */

static void sweep_slice(op *o);

static void sweep_ended(op *o, const mb_pg_result *r) {
  (void)r;
  o->in_tx = 0;
  op_done(o);
}

static void sweep_committed(op *o, const mb_pg_result *r) {
  (void)r;
  o->in_tx = 0;
  if (o->swept >= MB_PERSIST_SWEEP_SLICE) sweep_slice(o);
  else op_done(o);
}

static void sweep_deleted(op *o, const mb_pg_result *r) {
  const char *count = mb_pg_value(r, 0, 0, NULL);
  o->swept = count ? strtol(count, NULL, 10) : 0;
  run(o, "COMMIT", 0, NULL, sweep_committed);
}

static void sweep_locked(op *o, const mb_pg_result *r) {
  const char *got = mb_pg_value(r, 0, 0, NULL);
  const char *params[] = {o->endpoint, o->before};
  if (!got || strcmp(got, "t") != 0) {
    run(o, "ROLLBACK", 0, NULL, sweep_ended); /* another host sweeps it now */
    return;
  }
  run(o, sweep_sql, 2, params, sweep_deleted);
}

static void sweep_begun(op *o, const mb_pg_result *r) {
  const char *params[] = {o->endpoint};
  (void)r;
  run(o, sweep_lock_sql, 1, params, sweep_locked);
}

static void sweep_slice(op *o) {
  o->in_tx = 1;
  run(o, "BEGIN ISOLATION LEVEL READ COMMITTED", 0, NULL, sweep_begun);
}

void mb_persist_sweep(mb_pg_conn *c, const char *endpoint, int64_t before_usec,
                      mb_persist_done_fn cb, void *ud) {
  op *o = op_start(c, "sweeping the inbox", endpoint, NULL, NEEDS_ENDPOINT,
                   (reply){cb, NULL, NULL, ud});
  if (!o) return;
  snprintf(o->before, sizeof o->before, "%lld", (long long)before_usec);
  sweep_slice(o);
}
