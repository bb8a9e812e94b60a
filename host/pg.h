/* pg.h — PostgreSQL on the host's loop (DESIGN §12): a small pool of libpq connections per
 * host process, every call asynchronous (PQsendQueryParams, the socket under an ev_io,
 * PQconsumeInput / PQisBusy / PQgetResult as it becomes readable, PQflush while writable),
 * reconnects with back-off and jitter, the password never logged (url.c redacts).
 *
 * Provides: the pool (open, close), leasing a connection (a caller waits its turn when all
 * are busy), one statement at a time on a leased connection with $1.. text parameters,
 * its result as rows of text values with their type OIDs, and errors that say what a
 * caller must do, as a kind (mb_pg_error_kind): SQLSTATE 40001 serialization failure and
 * 40P01 deadlock -> retry the transaction now; class 08, 53 (insufficient resources),
 * 57P01..57P03 (the server shutting down), 40003 (completion unknown) or a lost connection
 * -> transient, try later; anything else -> the statement's own failure).
 * Uses: libpq, libev, url.h. Never: blocks the loop (no PQexec, no blocking connect: the
 * connect is PQconnectStart + PQconnectPoll under the ev_io), logs a password, or frees
 * a result the caller still reads inside its callback (the result lives until the callback
 * returns). */
#ifndef MOONBUS_PG_H
#define MOONBUS_PG_H

#include <stddef.h>

#include "status.h"

struct ev_loop;
typedef struct mb_pg_pool mb_pg_pool;
typedef struct mb_pg_conn mb_pg_conn;     /* a leased connection */
typedef struct mb_pg_result mb_pg_result; /* the rows of one statement */

typedef enum mb_pg_error_kind {
  MB_PG_OK,
  MB_PG_RETRY,     /* serialization failure, deadlock: run the whole transaction again now */
  MB_PG_TRANSIENT, /* the connection or the server went away: try again later */
  MB_PG_STATEMENT  /* the statement itself failed (syntax, constraint, types): its caller's */
} mb_pg_error_kind;

typedef struct mb_pg_error {
  mb_pg_error_kind kind;
  char sqlstate[6];    /* "" when the server gave none */
  char msg[MB_ERRLEN]; /* the server's primary message (and detail), never the URL */
} mb_pg_error;

/* Opens a pool of at most size connections to url (postgresql:// or postgres://; libpq's
 * own parameters). Connections are made as leases need them. MB_EINVAL for a URL libpq
 * cannot parse (the message redacted). */
int mb_pg_pool_open(mb_pg_pool **out, struct ev_loop *loop, const char *url, unsigned size,
                    mb_err *err);
/* Closes every connection: leases still waiting get cb(ud, NULL, error) and statements in
 * flight cb(ud, NULL, error), both of kind TRANSIENT ("the pool is closed"). Every leased
 * connection must have been released before (a mb_pg_conn does not outlive its pool), and
 * it must not be called from inside one of the pool's callbacks. NULL is fine. */
void mb_pg_pool_close(mb_pg_pool *p);
/* How long a lease waits while the pool cannot connect (default MB_PG_LEASE_WAIT seconds)
 * before it gets a TRANSIENT error; a lease waiting for a busy pool (every connection up
 * and leased) waits for a release however long it takes. */
#define MB_PG_LEASE_WAIT 5.0
void mb_pg_pool_set_lease_wait(mb_pg_pool *p, double seconds);

/* cb(ud, conn, NULL) with a connection ready for statements (idle, no transaction open),
 * or cb(ud, NULL, error) when none could be had (the server down: kind TRANSIENT). Leases
 * are served in order. cb may run before mb_pg_lease returns. */
typedef void (*mb_pg_lease_fn)(void *ud, mb_pg_conn *conn, const mb_pg_error *error);
void mb_pg_lease(mb_pg_pool *p, mb_pg_lease_fn cb, void *ud);
/* Gives the connection back. A connection inside a transaction, or one that failed, is
 * reset (ROLLBACK, or closed and made again later) before its next lease. Released with a
 * statement in flight, the statement's callback never runs. NULL is fine. */
void mb_pg_release(mb_pg_conn *c);

/* Runs sql with n text parameters (NULL entries are SQL NULL) on c; cb(ud, result, NULL)
 * or cb(ud, NULL, error) once, never before mb_pg_query returns. One statement at a time
 * per connection (MB_EBUSY otherwise). Returns MB_OK, or an error (then cb never runs):
 * MB_ENOTCONN when the connection was lost (release it and lease another), MB_EINVAL. */
typedef void (*mb_pg_result_fn)(void *ud, const mb_pg_result *r, const mb_pg_error *error);
int mb_pg_query(mb_pg_conn *c, const char *sql, int n, const char *const *params,
                mb_pg_result_fn cb, void *ud, mb_err *err);

/* --- reading a result (valid inside the callback only) ------------------------------------ */
int mb_pg_rows(const mb_pg_result *r);
int mb_pg_cols(const mb_pg_result *r);
const char *mb_pg_col_name(const mb_pg_result *r, int col);
unsigned mb_pg_col_type(const mb_pg_result *r,
                        int col); /* the type's OID (int8 20, bool 16, ...) */
/* The text of a value, or NULL for SQL NULL. */
const char *mb_pg_value(const mb_pg_result *r, int row, int col, size_t *len);
/* Rows a command changed (UPDATE/INSERT/DELETE), else 0. */
long mb_pg_changed(const mb_pg_result *r);

/* Counters for tests and metrics: connections up now (made, not being made); connections
 * made again after one was lost or a connect failed. */
unsigned mb_pg_pool_open_connections(const mb_pg_pool *p);
unsigned long mb_pg_pool_reconnects(const mb_pg_pool *p);

#endif
