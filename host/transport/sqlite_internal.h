/* sqlite_internal.h — what the files of the SQLite transport share, and nothing else
 * includes: the transport's state, its prepared statements, and the functions each file
 * provides to the others.
 *   sqlite.c          the vtable: schema, statements, sending, topology, open, close
 *   sqlite_consume.c  leases, polling, wake-ups (inotify and timers), complete, release
 *   sqlite_replies.c  this process's reply queue
 *   sqlite_files.c    the files on disk: modes, the bell, the database file's identity
 *   sqlite_pause.c    a full or failing disk: pause, look again with a back-off, resume
 *   sqlite_marks.c    the marks of out-of-order protection (mark.h), here and in a local store
 *   sqlite_admin.c    what operators ask: the queues and their counts, the audit sweep
 * Included only by host/transport/sqlite*.c and the tests that reach inside the transport
 * (tests/unit/test_sqlite.c, tests/fuzz/fuzz_sqlite_row.c). */
#ifndef MOONBUS_TRANSPORT_SQLITE_INTERNAL_H
#define MOONBUS_TRANSPORT_SQLITE_INTERNAL_H

#include <ev.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>

#include "ids.h"
#include "mark.h"
#include "transport.h"

#define LEASE_BATCH 64  /* rows leased (or replies taken) per statement */
#define SAFETY_POLL 5.0 /* seconds: a slow read in case a file change went unseen */

enum stmt_id {
  S_BEGIN,
  S_COMMIT,
  S_ROLLBACK,
  S_QUEUE_EXISTS,
  S_INSERT,
  S_INSERT_SUBS,
  S_ACK,
  S_RELEASE,
  S_NEXT,
  S_LEASE,
  S_RENEW,
  S_RELEASE_ALL,
  S_DEPTH,
  S_READY,
  S_OWNER,
  S_CLAIM,
  S_ADD_QUEUE,
  S_UNSUB,
  S_SUB,
  S_BROWSE,
  S_TAKE_REPLIES,
  S_ADD_REPLY_QUEUE,
  S_REPLY_QUEUES,
  S_DROP_QUEUE_ROWS,
  S_DROP_QUEUE,
  S_DROP_REPLY_QUEUE,
  S_REMOVE,
  S_PROBE,
  S_COUNT
};

typedef struct lease {
  int64_t seq;
  int64_t give_back_at; /* > 0: released by the pipeline, but the release failed (a full
                           disk): given back (visible at this time) once it can be */
  struct lease *prev, *next;
} lease;

typedef struct sqlite_transport {
  mb_transport base;
  struct ev_loop *loop;
  sqlite3 *db;
  sqlite3_stmt *stmt[S_COUNT];
  char *path, *dir, *file;   /* database path, its folder, its file name */
  char *abs_path;            /* path made absolute (realpath of dir), for messages */
  char token[MB_ID_LEN + 1]; /* lease_owner of this open */
  int lease_ms;
  /* consuming */
  char *queue;
  unsigned max_in_flight, in_flight;
  mb_deliver_fn deliver;
  void *deliver_ud;
  int consuming;
  lease *leases;       /* in flight, and those waiting to be given back */
  unsigned unreleased; /* how many of leases wait to be given back */
  ev_timer poll_soon, wake, renew;
  ev_io changes;
  int inotify_fd;
  int64_t busy_since; /* when the current wait for a lock began (usec) */
  int bell_fd;        /* PATH-bell: written after each commit that others should see */
  int bell_broken;    /* a failed ring was logged once */
  mode_t mode;        /* of the files it creates (?mode=, default 0600; folders get +x) */
  dev_t file_dev;     /* the database file's identity, to notice it deleted or replaced */
  ino_t file_ino;
  int file_known, file_lost;
  ev_timer file_check;
  /* a full or failing disk (sqlite_pause.c) */
  int paused, pause_code;
  double paused_since, resumed_at, backoff;
  ev_timer unpause;
  /* replies to this process's requests */
  char *reply_queue;
  mb_deliver_fn reply_fn;
  void *reply_ud;
  char instance[128];
  mb_marks *marks; /* the marks table's statements, prepared at first use */
  /* the audit retention sweep (sqlite_admin.c) */
  double audit_days; /* copies older than this are deleted; 0: never */
  char *audit_queue; /* the declared audit queue, or NULL: no sweep */
  ev_timer audit_sweep;
} sqlite_transport;

/* sqlite.c */
int64_t sq_now_ms(void);
/* Tells the other processes watching the folder that a commit is visible. */
void sq_ring(sqlite_transport *t);
sqlite3_stmt *sq_stmt(sqlite_transport *t, enum stmt_id id); /* reset and unbound */
int sq_db_fail(sqlite_transport *t, mb_err *err, const char *what);
int sq_exec(sqlite_transport *t, sqlite3_stmt *s, mb_err *err, const char *what);
int sq_begin(sqlite_transport *t, mb_err *err);
int sq_commit(sqlite_transport *t, mb_err *err);
void sq_rollback(sqlite_transport *t);
void sq_bind_text(sqlite3_stmt *s, int i, const char *v);
int sq_insert_all(sqlite_transport *t, mb_outgoing *const *msgs, size_t n, mb_err *err);
int sq_add_queue(sqlite_transport *t, const char *name, const char *when, mb_err *err);

/* sqlite_consume.c */
/* A row of S_LEASE, S_BROWSE or S_TAKE_REPLIES (seq, id, type, correlation_id, reply_to,
 * headers, body, deliveries) as a delivery from queue, whatever another process wrote
 * there: an id that is not a UUID is replaced (mb_envelope_take_id), headers that do not
 * decode or break mb_headers_check set d->problem. NULL only when out of memory. */
mb_delivery *sq_delivery_from_row(sqlite3_stmt *s, const char *queue);
void sq_schedule_poll(sqlite_transport *t);
void sq_on_poll_soon(struct ev_loop *loop, ev_timer *w, int revents);
void sq_renew_leases(struct ev_loop *loop, ev_timer *w, int revents);
int sq_watch_changes(sqlite_transport *t, mb_err *err);
void sq_unwatch_changes(sqlite_transport *t);
int sqlite_consume(mb_transport *base, const char *queue, unsigned max_in_flight,
                   mb_deliver_fn fn, void *ud, mb_err *err);
void sqlite_stop_consuming(mb_transport *base);
int sqlite_complete(mb_transport *base, mb_delivery *d, mb_outgoing *const *outbox, size_t n,
                    mb_done_fn done, void *ud, mb_err *err);
int sqlite_complete_marked(mb_transport *base, mb_delivery *d, const mb_mark *m,
                           mb_outgoing *const *outbox, size_t n, mb_done_fn done, void *ud,
                           mb_err *err);
int sqlite_release(mb_transport *base, mb_delivery *d, double delay, mb_err *err);
/* Gives back the leases whose release failed. MB_OK when none is left. */
int sq_retry_releases(sqlite_transport *t, mb_err *err);

/* sqlite_files.c */
/* "0600", "0640", "0660", ...: owner rw, no x, nothing beyond 0666. MB_OK or MB_EINVAL. */
int sq_parse_mode(const char *text, mode_t *out);
/* Creates the missing folders and the database file with t->mode (folders with x added)
 * whatever the umask; reports an existing database wider than t->mode. */
int sq_prepare_files(sqlite_transport *t, mb_err *err);
/* Opens PATH-bell into t->bell_fd: created with t->mode, never through a symbolic link,
 * only a regular file with one link. */
int sq_open_bell(sqlite_transport *t, mb_err *err);
/* Notes the database file's device and inode (after opening it). */
void sq_remember_file(sqlite_transport *t);
/* Logs an error, once, if the database file was deleted or replaced since it was opened. */
void sq_check_file(sqlite_transport *t);
void sq_on_file_check(struct ev_loop *loop, ev_timer *w, int revents);

/* sqlite_pause.c */
/* A write failed with code (SQLITE_FULL or SQLITE_IOERR): stop receiving, log it once, and
 * look again later (no-op when already paused, or when neither consuming nor listening). */
void sq_pause(sqlite_transport *t, int code);
void sq_on_unpause(struct ev_loop *loop, ev_timer *w, int revents);
/* Ends a pause without looking (stopping, closing). */
void sq_stop_pause(sqlite_transport *t);

/* sqlite_marks.c */
/* The marks table on db (created if missing), its statements prepared; path names it in
 * errors. The store does not own db: close it (mb_marks_close) before db. */
int sq_marks_attach(sqlite3 *db, const char *path, mb_marks **out, mb_err *err);
/* t's marks, attached at first use. */
int sq_marks_of(sqlite_transport *t, mb_marks **out, mb_err *err);
int sqlite_mark_check(mb_transport *base, const mb_mark *m, int *stale, char *highest, size_t len,
                      mb_err *err);

/* sqlite_admin.c */
int sqlite_queues(mb_transport *base, const char *name, mb_queue_fn fn, void *ud, mb_err *err);
/* Deletes the rows of queue queued before before_ms (visible_at) that no consumer holds;
 * *removed gets how many. */
int sq_sweep_queue(sqlite_transport *t, const char *queue, int64_t before_ms, long *removed,
                   mb_err *err);
/* $MOONBUS_AUDIT_RETENTION in days (default 7; a bad value is logged and ignored). */
double sq_audit_retention_default(void);
/* Sweeps audit_queue (NULL: no sweep) every hour; a no-op when t->audit_days is 0. */
void sq_audit_sweep_start(sqlite_transport *t, const char *audit_queue);
void sq_audit_sweep_stop(sqlite_transport *t);

/* sqlite_replies.c */
void sq_poll_replies(sqlite_transport *t);
int sqlite_listen_replies(mb_transport *base, mb_deliver_fn fn, void *ud, char *address,
                          size_t len, mb_err *err);
void sq_close_replies(sqlite_transport *t);

#endif
