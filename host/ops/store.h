/* store.h — where `moonbus ops` keeps what it ingests (DESIGN §10): failed messages with
 * their history, audit copies, endpoint reports; and the questions the API asks of them.
 *
 * Provides: the store vtable (ingest a batch, the JSON answers of the read calls, the
 * state changes of operations, retention) and mb_ops_store_open, which picks the
 * implementation by URL: a path or sqlite://PATH (store_sqlite.c, SQLite with FTS5);
 * postgresql:// may come with the persistence issue.
 * Read calls answer with the JSON documents of the API (/work README "Operations": the
 * shapes are the contract), built by the store, malloc'd and NUL-terminated.
 * Uses: transport.h (deliveries), envelope.h.
 * Never: acknowledges, sends or decides anything: ingest.c and operations.c do. */
#ifndef MOONBUS_OPS_STORE_H
#define MOONBUS_OPS_STORE_H

#include <stddef.h>

#include "ops/figures.h"
#include "transport.h"

/* Where a delivery was ingested from. */
typedef enum mb_ops_source {
  MB_OPS_ERROR, /* an error queue: a failed message */
  MB_OPS_AUDIT, /* an audit queue: a processed message */
  MB_OPS_REPORT /* queue moonbus.ops: a heartbeat or metrics report */
} mb_ops_source;

/* What an operation does to failed messages (POST /api/errors/ACTION). */
typedef enum mb_ops_action {
  MB_OPS_RETRY,   /* unresolved -> retrying (after the copy was sent back) */
  MB_OPS_ARCHIVE, /* unresolved -> archived */
  MB_OPS_RESTORE, /* archived -> unresolved */
  MB_OPS_DELETE   /* gone, with its history */
} mb_ops_action;

/* "retry", "archive", "restore", "delete". */
const char *mb_ops_action_name(mb_ops_action a);

/* GET /api/errors. NULL strings are "any"; status NULL is "unresolved", "all" any. */
typedef struct mb_ops_query {
  const char *group, *by, *q, *endpoint, *type, *status;
  long page, per_page; /* page from 1; per_page already capped by the caller */
} mb_ops_query;

/* Which failed messages an operation acts on: the listed ids, or a group (by: exception,
 * type, endpoint or queue), or all; limited to status (NULL: the status the action acts
 * on: archived for restore, unresolved for the others). */
typedef struct mb_ops_selection {
  const char *const *ids;
  size_t n_ids;
  const char *group, *by, *status;
  int all;
} mb_ops_selection;

typedef struct mb_ops_store mb_ops_store;

/* Receives each alert a committed transaction raised (type, body: a JSON object with
 * "event" and "at"); called after the commit, never for a rolled back one. */
typedef void (*mb_ops_alert_sink)(void *ud, const char *type, const char *body);
/* Called by sla_each for every endpoint with an SLA: its figures over the SLA window. */
typedef void (*mb_ops_sla_fn)(void *ud, const char *endpoint, double sla, const mb_ops_sums *sums,
                              const mb_ops_figures *f);

#define MB_OPS_SLA_MINUTES 2 /* the SLA window: this minute and the one before */

typedef struct mb_ops_store_ops {
  /* Stores n deliveries of src in one transaction: a copy seen before (a redelivery) is
   * not stored twice; a failed message seen again after a retry returns to unresolved
   * with one more attempt; an audit copy of a message that failed in the same queue
   * resolves it. A delivery whose envelope did not decode (its problem set) is stored raw
   * with its problem. MB_OK only once committed. */
  int (*ingest)(mb_ops_store *s, mb_ops_source src, mb_delivery *const *ds, size_t n,
                mb_err *err);
  int (*errors)(mb_ops_store *s, const mb_ops_query *q, char **json, mb_err *err);
  int (*groups)(mb_ops_store *s, const char *by, const char *status, char **json, mb_err *err);
  /* MB_ENOTFOUND for an id the store does not hold. */
  int (*message)(mb_ops_store *s, const char *id, char **json, mb_err *err);
  int (*search)(mb_ops_store *s, const char *q, long page, long per_page, char **json,
                mb_err *err);
  /* MB_ENOTFOUND for a conversation with no message. */
  int (*conversation)(mb_ops_store *s, const char *id, char **json, mb_err *err);
  int (*endpoints)(mb_ops_store *s, char **json, mb_err *err);
  /* *age_s gets the seconds since the oldest unresolved failed message failed (its
   * failed_at; when it has none, when it was ingested), 0 when there is none. */
  int (*oldest_unresolved)(mb_ops_store *s, double *age_s, mb_err *err);
  /* The ids of the failed messages sel names that action may act on: *ids is one malloc'd
   * block of pointers and strings (free(*ids) frees all). */
  int (*select)(mb_ops_store *s, mb_ops_action action, const mb_ops_selection *sel, char ***ids,
                size_t *n, mb_err *err);
  /* The stored copy of failed message id (env must be initialised; it is replaced). */
  int (*envelope)(mb_ops_store *s, const char *id, mb_envelope *env, mb_err *err);
  /* Applies action to ids in one transaction, with a history entry by who at time at
   * (ISO 8601; for a retry the time the copies were sent, taken before sending: a message
   * whose failure after that time was already ingested stays unresolved); ids no longer in
   * a state the action acts on are left as they are. */
  int (*mark)(mb_ops_store *s, mb_ops_action action, const char *const *ids, size_t n,
              const char *who, const char *at, mb_err *err);
  /* Failed message id was edited and sent again as new_id: it is resolved, linked. */
  int (*edited)(mb_ops_store *s, const char *id, const char *new_id, const char *who,
                mb_err *err);
  /* Drops audit copies ingested before the start of the day audit_days before now, and
   * archived or resolved failed messages last changed before error_days; gives the space
   * back to the file system; raw reports after a day, rollups and events after 14 days. */
  int (*sweep)(mb_ops_store *s, double now, double audit_days, double error_days, mb_err *err);
  /* --- monitoring (DESIGN §11): reports make instances and per-minute rollups ------- */
  /* Where alerts go after their commit (fn NULL: nowhere; they are stored all the same). */
  void (*set_alert_sink)(mb_ops_store *s, mb_ops_alert_sink fn, void *ud);
  /* Marks dead every alive instance without a report for 3 x its interval at now (Unix
   * seconds), each with a HeartbeatStopped alert. */
  int (*liveness)(mb_ops_store *s, double now, mb_err *err);
  /* Calls fn for each endpoint with an SLA with its figures over the SLA window. */
  int (*sla_each)(mb_ops_store *s, double now, mb_ops_sla_fn fn, void *ud, mb_err *err);
  /* Stores an alert in the event log and hands it to the sink. */
  int (*raise)(mb_ops_store *s, const char *type, const char *body, mb_err *err);
  /* GET /api/monitoring (endpoint NULL: every endpoint) and /api/monitoring/ENDPOINT
   * (MB_ENOTFOUND when unknown): the figures of the minutes up to now's. */
  int (*monitoring)(mb_ops_store *s, const char *endpoint, long minutes, double now, char **json,
                    mb_err *err);
  /* GET /api/events: the alerts raised, newest first. */
  int (*events)(mb_ops_store *s, long page, long per_page, char **json, mb_err *err);
  void (*close)(mb_ops_store *s);
} mb_ops_store_ops;

struct mb_ops_store {
  const mb_ops_store_ops *ops;
};

/* Opens (creating if needed) the store at url: a path, or sqlite://PATH. */
int mb_ops_store_open(mb_ops_store **out, const char *url, mb_err *err);

#endif
