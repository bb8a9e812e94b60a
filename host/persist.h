/* persist.h — the inbox and outbox of exactly-once processing in PostgreSQL (DESIGN §12),
 * on a connection leased from the pool (pg.h), inside the handler's transaction.
 *
 * Provides: the schema (created on first use, versioned), and the statements the pipeline
 * will run around a handler: look the message up in the inbox; store its outbox and its
 * inbox row (in the same transaction as the handler's own statements); mark the outbox
 * dispatched after the transport confirmed it; read back the stored outbox of a message
 * seen again (a redelivery after a crash between commit and ack); sweep old inbox rows.
 * Every call is asynchronous (pg.h) and ends in exactly one callback, which may run before
 * the call returns when the statement cannot even be sent (the connection lost, out of
 * memory), as a transport's completions may. The callback may release the connection;
 * the caller must not release it before (pg.h would drop the callback, and the call with it).
 * Errors are pg.h's (kind, SQLSTATE) with a message naming what was being done, the
 * endpoint and the message id.
 * Uses: pg.h, transport.h (mb_outgoing), headers_json.h (the headers' one text encoding).
 * Never: begins or commits a transaction itself except where it says so (the schema and
 * the sweep, each in transactions of its own, rolled back when they fail), decides what
 * happens to a message (pipeline.c will), or builds SQL from data (parameters only; the
 * endpoint is a parameter too). The tables are found on the connection's search_path
 * (libpq's options=-csearch_path=... in the URL puts them in a schema of their own).
 *
 * The tables (version MB_PERSIST_SCHEMA_VERSION, in moonbus_schema(version)):
 *   moonbus_inbox(endpoint, message_id, state, processed_at, dispatched_at), one row per
 *     message handled and committed, state an mb_inbox_state;
 *   moonbus_outbox(endpoint, message_id, seq, id, type, correlation_id, reply_to, headers,
 *     body, route, dest, delay, to_requester, archive), the messages a handled message
 *     sent, until they are dispatched. What may come from a foreign sender (type,
 *     correlation id, reply address, destination, headers as mb_headers_to_json writes
 *     them, body) is bytea: its bytes are not always UTF-8. delay is numeric: the exact
 *     decimal of the double. */
#ifndef MOONBUS_PERSIST_H
#define MOONBUS_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "pg.h"
#include "transport.h"

#define MB_PERSIST_SCHEMA_VERSION 1

/* The advisory locks the schema and the sweep take (pg_advisory_xact_lock(key1, key2)):
 * (MB_PERSIST_LOCK_SCHEMA, 0) while the schema is made or checked, and
 * (MB_PERSIST_LOCK_SWEEP, hashtext(endpoint)) while an endpoint's inbox is swept. */
#define MB_PERSIST_LOCK_SCHEMA 1836019566 /* "moon" */
#define MB_PERSIST_LOCK_SWEEP 1836019567

/* Inbox rows are swept in slices of this many, one transaction each. */
#define MB_PERSIST_SWEEP_SLICE 10000

/* What the inbox says of a message (the values are moonbus_inbox.state's). */
typedef enum mb_inbox_state {
  MB_INBOX_NEW = 0,       /* never handled: run the handlers (no row) */
  MB_INBOX_HANDLED = 1,   /* handled and committed; its outbox not known to be dispatched */
  MB_INBOX_DISPATCHED = 2 /* handled, and its outbox dispatched: acknowledge, nothing else */
} mb_inbox_state;

typedef void (*mb_persist_done_fn)(void *ud, const mb_pg_error *error); /* error NULL: ok */

/* Outside any transaction: creates the tables if missing, in one transaction under an
 * advisory lock (several hosts start at once), and checks the version: a newer schema than
 * this build knows is an error saying the database was made by a newer moonbus (kind
 * STATEMENT). Idempotent. */
void mb_persist_schema(mb_pg_conn *c, mb_persist_done_fn cb, void *ud);

/* The inbox state of (endpoint, message id), read inside the caller's transaction with
 * FOR UPDATE (a competing consumer holding the same redelivered message waits). A state
 * this build does not know is an error (state then MB_INBOX_NEW: never acted on). */
typedef void (*mb_persist_inbox_fn)(void *ud, mb_inbox_state state, const mb_pg_error *error);
void mb_persist_inbox(mb_pg_conn *c, const char *endpoint, const char *id, mb_persist_inbox_fn cb,
                      void *ud);

/* Inside the caller's transaction: stores the n outgoing messages (envelope, route,
 * destination, delay, to_requester, archive: everything to send them again byte for byte,
 * with the same ids, in the same order) and the inbox row of (endpoint, id), state HANDLED.
 * The messages are copied before the call returns. A second store of the same id is a
 * unique violation (another consumer committed it first; a competing one still in its
 * transaction makes this one wait for its end): kind STATEMENT, sqlstate 23505 — the
 * caller rolls back and treats the message as a duplicate. A delay that is not a finite
 * number is refused (kind STATEMENT, no sqlstate). */
void mb_persist_store(mb_pg_conn *c, const char *endpoint, const char *id,
                      mb_outgoing *const *out, size_t n, mb_persist_done_fn cb, void *ud);

/* Reads back the stored outbox of (endpoint, id), in the order it was stored, as new
 * mb_outgoing (the caller frees each with mb_outgoing_free and the array with free; out is
 * a valid array, possibly of 0, whenever error is NULL). */
typedef void (*mb_persist_outbox_fn)(void *ud, mb_outgoing **out, size_t n,
                                     const mb_pg_error *error);
void mb_persist_outbox(mb_pg_conn *c, const char *endpoint, const char *id,
                       mb_persist_outbox_fn cb, void *ud);

/* Outside any transaction (autocommit; one statement, so atomic on its own): the outbox of
 * (endpoint, id) was dispatched: state DISPATCHED and its outbox rows deleted. A message
 * with no inbox row (never stored, or swept) is an error (kind STATEMENT, no sqlstate). */
void mb_persist_dispatched(mb_pg_conn *c, const char *endpoint, const char *id,
                           mb_persist_done_fn cb, void *ud);

/* Outside any transaction: deletes the inbox rows of endpoint processed before
 * before_usec (microseconds since the Unix epoch), whatever their state, and the outbox
 * rows of those messages, in slices of MB_PERSIST_SWEEP_SLICE, each slice one transaction
 * under an advisory lock taken without waiting: while another host sweeps the endpoint,
 * this one skips (cb with no error). */
void mb_persist_sweep(mb_pg_conn *c, const char *endpoint, int64_t before_usec,
                      mb_persist_done_fn cb, void *ud);

#endif
