/* mark.h — out-of-order protection (DESIGN §14): a message's place in the order of its key
 * (a "mark"), how two marks compare, and the local store that keeps the highest mark
 * handled per (endpoint, type, key) where the transport has no database of its own.
 *
 * Why a mark crosses the transport vtable (transport.h: mark_check, complete_marked) and
 * is not a separate store beside it: on SQLite the highest value must move in the same
 * transaction as the acknowledgement and the outbox, or a crash between them would either
 * lose the update (the message handled twice) or keep it for a message that was never
 * acknowledged. So a transport with a database checks marks and carries one in its
 * complete; one without (RabbitMQ) leaves both ops NULL and the pipeline keeps the marks
 * in the local store below, updated after the handler succeeds and before the ack (not
 * atomic with it: a crash in between makes the redelivered copy stale-equal, discarded).
 *
 * Provides: mb_mark, mb_mark_cmp, mb_mark_format, mb_mark_copy, and the local store
 * (mb_marks_*, a SQLite file: implemented in transport/sqlite_marks.c, the only place
 * sqlite3.h may be included). Never: knows Lua or decides a message's fate. */
#ifndef MOONBUS_MARK_H
#define MOONBUS_MARK_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define MB_DEFAULT_STATE "sqlite://./.moonbus/state.db"

typedef enum mb_mark_kind {
  MB_MARK_INTEGER, /* numbers compare numerically, integers and reals alike */
  MB_MARK_REAL,
  MB_MARK_TEXT /* strings compare byte-wise (ISO 8601 timestamps sort by time); every
                  number is lower than every string (SQLite's order) */
} mb_mark_kind;

typedef struct mb_mark {
  const char *endpoint, *type;      /* the scope */
  const char *key;                  /* the key field's value, as text (42 and "42" are one key) */
  const char *order_by, *key_field; /* the fields' names, for the messages */
  mb_mark_kind kind;
  int64_t integer;
  double real;
  const char *text; /* MB_MARK_TEXT: len bytes */
  size_t len;
} mb_mark;

/* <0, 0, >0 as a's value is lower than, equal to or higher than b's (the scope is not
 * compared). */
int mb_mark_cmp(const mb_mark *a, const mb_mark *b);
/* The value as text (a string is quoted, cut to fit len). */
void mb_mark_format(const mb_mark *m, char *out, size_t len);
/* Why m is stale against the highest value handled, as the discard reason: "stale:
 * version 3 <= 5 already handled for job 42". */
void mb_mark_stale_reason(const mb_mark *m, const char *highest, char *out, size_t len);
/* A deep copy in one allocation (free it with free), or NULL when out of memory. */
mb_mark *mb_mark_copy(const mb_mark *m);

/* --- the local store (transport/sqlite_marks.c) ------------------------------------------ */

typedef struct mb_marks mb_marks;

/* Opens (creating it and its folder) the store named by url, "sqlite://PATH". */
int mb_marks_open(mb_marks **out, const char *url, mb_err *err);
/* *stale = 1 if a value higher than or equal to m's is stored for m's key; then highest
 * gets it as text (mb_mark_format). */
int mb_marks_check(mb_marks *s, const mb_mark *m, int *stale, char *highest, size_t len,
                   mb_err *err);
/* Stores m's value as its key's highest if it is higher than the stored one (conditional:
 * another process may have stored a higher one meanwhile); *advanced = 0 if it was not. */
int mb_marks_advance(mb_marks *s, const mb_mark *m, int *advanced, mb_err *err);
/* The URL it was opened with. */
const char *mb_marks_url(const mb_marks *s);
void mb_marks_close(mb_marks *s);

#endif
