/* store_sqlite_internal.h — what the two files of the SQLite ops store share: the handle
 * and its helpers. Not a public surface: only store_sqlite*.c include it. */
#ifndef MOONBUS_OPS_STORE_SQLITE_INTERNAL_H
#define MOONBUS_OPS_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "ops/store.h"

typedef struct ops_sqlite {
  mb_ops_store base;
  sqlite3 *db;
  char *path;
} ops_sqlite;

/* err = status and "what: SQLite's message (path)"; returns status. */
int ops_sqlite_fail(ops_sqlite *s, int status, const char *what, mb_err *err);
/* Prepares sql or fills err naming what. */
int ops_sqlite_prepare(ops_sqlite *s, const char *sql, sqlite3_stmt **st, const char *what,
                       mb_err *err);
/* Binds text or NULL (s NULL) at i. */
int ops_sqlite_bind(sqlite3_stmt *st, int i, const char *s);
/* Runs a statement that answers one row with one JSON text column: *json gets a malloc'd
 * copy. MB_ENOTFOUND when the row or its value is NULL. Finalizes st. */
int ops_sqlite_json(ops_sqlite *s, sqlite3_stmt *st, char **json, const char *what, mb_err *err);

/* The group a failed message belongs to when grouped by the value of parameter `by`
 * ("exception", "type", "endpoint", "queue"); SQL text for a statement's column list. */
#define OPS_GROUP_OF(by)                                                                         \
  "(CASE " by " WHEN 'type' THEN type WHEN 'endpoint' THEN endpoint WHEN 'queue' THEN queue"     \
  " ELSE group_id END)"

/* The read calls (store_sqlite_read.c). */
int ops_sqlite_errors(mb_ops_store *base, const mb_ops_query *q, char **json, mb_err *err);
int ops_sqlite_groups(mb_ops_store *base, const char *by, const char *status, char **json,
                      mb_err *err);
int ops_sqlite_message(mb_ops_store *base, const char *id, char **json, mb_err *err);
int ops_sqlite_search(mb_ops_store *base, const char *q, long page, long per_page, char **json,
                      mb_err *err);
int ops_sqlite_conversation(mb_ops_store *base, const char *id, char **json, mb_err *err);
int ops_sqlite_endpoints(mb_ops_store *base, char **json, mb_err *err);
int ops_sqlite_oldest_unresolved(mb_ops_store *base, double *age_s, mb_err *err);

#endif
