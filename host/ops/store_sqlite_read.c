/* store_sqlite_read.c — the read calls of the SQLite ops store (see store.h): each builds
 * its JSON answer in SQL (SQLite's json_object/json_group_array), so that a page of 500
 * messages is one statement and one string.
 * Never: writes, or puts input into SQL text (every value is a bound parameter; the only
 * text chosen by input is which of two fixed statements runs). */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ops/store_sqlite_internal.h"

/* The first line of the exception, for lists. */
#define FIRST_LINE "substr(exception, 1, instr(exception || char(10), char(10)) - 1)"

/* The filter of GET /api/errors: ?1 status ('all': any), ?2 by, ?3 group, ?4 endpoint,
 * ?5 type, ?6 an FTS5 query (or NULL). */
#define ERRORS_WHERE                                                                             \
  " WHERE source = 'error' AND (?1 = 'all' OR status = ?1) AND (?3 IS NULL OR " OPS_GROUP_OF(    \
      "?2") " = ?3) AND (?4 IS NULL OR endpoint = ?4) AND (?5 IS NULL OR type = ?5)"             \
            " AND (?6 IS NULL OR seq IN (SELECT rowid FROM search WHERE search MATCH ?6))"

static const char *const errors_sql =
    "SELECT json_object('total', (SELECT count(*) FROM messages" ERRORS_WHERE "),"
    " 'page', ?7, 'per_page', ?8, 'items', (SELECT json_group_array(json_object('id', id,"
    " 'type', type, 'endpoint', endpoint, 'queue', queue, 'failed_at', at, "
    "'exception', " FIRST_LINE ", 'group', group_id, 'status', status, 'attempts', attempts,"
    " 'conversation_id', conversation_id)) FROM (SELECT * FROM messages" ERRORS_WHERE
    " ORDER BY at DESC, seq DESC LIMIT ?8 OFFSET (?7 - 1) * ?8)))";

/* A phrase query for FTS5 made of q: any text searches as words, never as FTS syntax. NULL
 * when q has no letter or digit (FTS5 would find nothing, or refuse). malloc'd. */
static char *phrase(const char *q) {
  int words = 0;
  for (const char *c = q; *c; c++)
    if ((unsigned char)*c >= 0x80 || (*c >= '0' && *c <= '9') ||
        ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z'))
      words = 1;
  if (!words) return NULL;
  char *out = malloc(strlen(q) * 2 + 3), *p = out;
  if (out == NULL) return NULL;
  *p++ = '"';
  for (const char *c = q; *c; c++) {
    if (*c == '"') *p++ = '"';
    *p++ = *c;
  }
  *p++ = '"', *p = '\0';
  return out;
}

int ops_sqlite_errors(mb_ops_store *base, const mb_ops_query *q, char **json, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, errors_sql, &st, "listing failed messages", err);
  if (rc != MB_OK) return rc;
  char *fts = q->q ? phrase(q->q) : NULL;
  ops_sqlite_bind(st, 1, q->status ? q->status : "unresolved");
  ops_sqlite_bind(st, 2, q->by ? q->by : "exception");
  ops_sqlite_bind(st, 3, q->group);
  ops_sqlite_bind(st, 4, q->endpoint);
  ops_sqlite_bind(st, 5, q->type);
  ops_sqlite_bind(st, 6, q->q ? (fts ? fts : "\"\x01\"") : NULL);
  sqlite3_bind_int64(st, 7, q->page);
  sqlite3_bind_int64(st, 8, q->per_page);
  rc = ops_sqlite_json(s, st, json, "listing failed messages", err);
  free(fts);
  return rc;
}

static const char *const groups_sql =
    "SELECT json_group_array(json_object('id', gid, 'title', title, 'count', n, 'first_at',"
    " f, 'last_at', l)) FROM (SELECT " OPS_GROUP_OF(
        "?1") " AS gid, CASE WHEN ?1 IN ('type',"
              " 'endpoint', 'queue') THEN " OPS_GROUP_OF(
                  "?1") " ELSE max(group_title) END AS title,"
                        " count(*) AS n, min(at) AS f, max(at) AS l FROM messages WHERE source = "
                        "'error' AND"
                        " (?2 = 'all' OR status = ?2) GROUP BY gid ORDER BY n DESC, l DESC)";

int ops_sqlite_groups(mb_ops_store *base, const char *by, const char *status, char **json,
                      mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, groups_sql, &st, "grouping failed messages", err);
  if (rc != MB_OK) return rc;
  ops_sqlite_bind(st, 1, by ? by : "exception");
  ops_sqlite_bind(st, 2, status ? status : "unresolved");
  return ops_sqlite_json(s, st, json, "grouping failed messages", err);
}

static const char *const message_sql =
    "SELECT json_object('id', id, 'type', type, 'kind', kind, 'correlation_id', correlation_id,"
    " 'reply_to', reply_to, 'headers', json(headers), 'body', body, 'source', source, 'status',"
    " status, 'endpoint', endpoint, 'queue', queue, 'failed_at', CASE source WHEN 'error' THEN"
    " at END, 'at', at, 'host', host, 'exception', exception, 'trace', trace, 'group', group_id,"
    " 'group_title', group_title, 'attempts', attempts, 'conversation_id', conversation_id,"
    " 'related_to', related_to, 'origin', origin, 'sent_at', sent_at, 'problem', problem,"
    " 'edited_from', edited_from, 'edited_to', edited_to, 'history', (SELECT"
    " json_group_array(json_object('at', at, 'what', what, 'who', who, 'detail', detail)) FROM"
    " (SELECT * FROM history WHERE message_id = m.id ORDER BY at, seq))) FROM messages m"
    " WHERE id = ?1 ORDER BY source = 'error' DESC, seq DESC LIMIT 1";

int ops_sqlite_message(mb_ops_store *base, const char *id, char **json, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, message_sql, &st, "reading a message", err);
  if (rc != MB_OK) return rc;
  ops_sqlite_bind(st, 1, id);
  rc = ops_sqlite_json(s, st, json, "reading a message", err);
  if (rc == MB_ENOTFOUND) mb_err_set(err, rc, "no message %s", id);
  return rc;
}

/* Search: exact id, conversation, correlation or type (?1), or the words of ?2 (FTS5). */
#define SEARCH_HITS                                                                              \
  "WITH hits AS (SELECT seq FROM messages WHERE id = ?1 OR conversation_id = ?1 OR"              \
  " correlation_id = ?1 OR type = ?1 UNION SELECT rowid FROM search WHERE ?2 IS NOT NULL AND"    \
  " search MATCH coalesce(?2, '\"\"'))"

static const char *const search_sql = SEARCH_HITS
    " SELECT json_object('total', (SELECT count(*) FROM hits), 'page', ?3,"
    " 'per_page', ?4, 'items', (SELECT json_group_array(json_object('id', id, 'type', type,"
    " 'source', source, 'status', status, 'endpoint', endpoint, 'at', at, 'conversation_id',"
    " conversation_id)) FROM (SELECT m.* FROM messages m JOIN hits h ON m.seq = h.seq ORDER"
    " BY m.at DESC, m.seq DESC LIMIT ?4 OFFSET (?3 - 1) * ?4)))";

int ops_sqlite_search(mb_ops_store *base, const char *q, long page, long per_page, char **json,
                      mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, search_sql, &st, "searching", err);
  if (rc != MB_OK) return rc;
  char *fts = phrase(q);
  ops_sqlite_bind(st, 1, q);
  ops_sqlite_bind(st, 2, fts);
  sqlite3_bind_int64(st, 3, page);
  sqlite3_bind_int64(st, 4, per_page);
  rc = ops_sqlite_json(s, st, json, "searching", err);
  free(fts);
  return rc;
}

/* A conversation's messages: every audit copy, and each failed message that no audit copy
 * of the same queue has since resolved. At most 5000, in the order they were sent. */
static const char *const conversation_sql =
    "SELECT CASE WHEN count(*) THEN json_object('id', ?1, 'total', count(*), 'items',"
    " json_group_array(json_object('id', id, 'type', type, 'kind', CASE WHEN kind = 'message'"
    " AND correlation_id IS NOT NULL THEN 'reply' ELSE kind END, 'related_to', related_to,"
    " 'from', origin, 'to', coalesce(endpoint, queue), 'at', coalesce(sent_at, at), 'status',"
    " CASE WHEN source = 'audit' THEN 'processed' WHEN status = 'unresolved' THEN 'failed'"
    " ELSE status END, 'source', source))) END FROM (SELECT * FROM messages m WHERE"
    " conversation_id = ?1 AND NOT (source = 'error' AND EXISTS (SELECT 1 FROM messages a"
    " WHERE a.source = 'audit' AND a.id = m.id AND a.endpoint = m.queue)) ORDER BY"
    " coalesce(sent_at, at), seq LIMIT 5000)";

int ops_sqlite_conversation(mb_ops_store *base, const char *id, char **json, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, conversation_sql, &st, "reading a conversation", err);
  if (rc != MB_OK) return rc;
  ops_sqlite_bind(st, 1, id);
  rc = ops_sqlite_json(s, st, json, "reading a conversation", err);
  if (rc == MB_ENOTFOUND) mb_err_set(err, rc, "no conversation %s", id);
  return rc;
}

/* Endpoints as the stored messages show them: processed and failed counts, and the hosts
 * (instances) that processed their messages. Heartbeats (reports) add to it later. */
static const char *const endpoints_sql =
    "SELECT json_group_array(json_object('name', endpoint, 'last_seen', last, 'processed', p,"
    " 'failed', f, 'instances', (SELECT json_group_array(json_object('instance', host, 'host',"
    " host, 'last_seen', mx, 'alive', json('null'))) FROM (SELECT host, max(at) AS mx FROM"
    " messages WHERE source = 'audit' AND endpoint = e.endpoint AND host IS NOT NULL GROUP BY"
    " host ORDER BY host)))) FROM (SELECT endpoint, max(at) AS last, count(*) FILTER (WHERE"
    " source = 'audit') AS p, count(*) FILTER (WHERE source = 'error' AND status ="
    " 'unresolved') AS f FROM messages WHERE endpoint IS NOT NULL GROUP BY endpoint ORDER BY"
    " endpoint) e";

int ops_sqlite_endpoints(mb_ops_store *base, char **json, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, endpoints_sql, &st, "listing endpoints", err);
  if (rc != MB_OK) return rc;
  return ops_sqlite_json(s, st, json, "listing endpoints", err);
}

/* The Unix time of the oldest unresolved failure: the earliest failed_at (ISO 8601 text, so
 * the index orders it), or for raw messages without one the time they were ingested. */
static const char *const oldest_sql =
    "SELECT min(v) FROM (SELECT (julianday(min(at)) - 2440587.5) * 86400.0 AS v FROM messages"
    " WHERE source = 'error' AND status = 'unresolved' AND at IS NOT NULL UNION ALL"
    " SELECT min(ingested) FROM messages WHERE source = 'error' AND status = 'unresolved'"
    " AND at IS NULL)";

int ops_sqlite_oldest_unresolved(mb_ops_store *base, double *age_s, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  *age_s = 0;
  int rc = ops_sqlite_prepare(s, oldest_sql, &st, "finding the oldest failure", err);
  if (rc != MB_OK) return rc;
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
    double age = (double)mb_now_usec() / 1e6 - sqlite3_column_double(st, 0);
    *age_s = age > 0 ? age : 0;
  } else if (step != SQLITE_ROW && step != SQLITE_DONE)
    rc = ops_sqlite_fail(s, MB_EIO, "finding the oldest failure", err);
  sqlite3_finalize(st);
  return rc;
}
