/* raw_sqlite.c — the baseline the SQLite transport is measured against (DESIGN §9): a queue
 * in one SQLite file, written straight on the SQLite API with the transport's durability
 * (WAL, synchronous=FULL, a table and index of the same shape). A producer connection
 * inserts N messages (a ~200-byte JSON body and moonbus's headers as JSON), one transaction
 * each; a consumer connection on its own thread takes the oldest ready row and deletes it,
 * one transaction each (BEGIN IMMEDIATE, SELECT, DELETE, COMMIT), polling every 1 ms when
 * the queue is empty. Prints one line: "raw N SECONDS MSG_PER_S CPU_S_PER_1000" (CPU of
 * the whole process).
 *
 *   build/bench/raw_sqlite PATH N                        (PATH: a database file to create) */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const char *path;
static long n_messages;

static const char *const schema =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS messages(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " queue TEXT NOT NULL, id TEXT NOT NULL, type TEXT, headers TEXT NOT NULL, body BLOB,"
    " visible_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS messages_ready ON messages(queue, visible_at, seq);";

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check(sqlite3 *db, int rc, const char *what) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
  fprintf(stderr, "raw_sqlite: %s: %s\n", what, sqlite3_errmsg(db));
  exit(1);
}

static sqlite3 *open_db(void) {
  sqlite3 *db;
  check(NULL, sqlite3_open(path, &db), "open");
  check(db, sqlite3_busy_timeout(db, 10000), "busy_timeout");
  check(db, sqlite3_exec(db, schema, NULL, NULL, NULL), "schema");
  return db;
}

/* A BEGIN IMMEDIATE that found the other thread's write lock past the busy timeout (a slow
 * disk) tries again rather than ending the run: the baseline must not die of contention. */
static void exec(sqlite3 *db, sqlite3_stmt *s, const char *what) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_BUSY) {
    sqlite3_reset(s);
    usleep(100);
  }
  check(db, rc, what);
  sqlite3_reset(s);
}

static void *produce(void *arg) {
  (void)arg;
  sqlite3 *db = open_db();
  sqlite3_stmt *begin, *insert, *commit;
  check(db, sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL), "prepare");
  check(db, sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL), "prepare");
  check(db,
        sqlite3_prepare_v2(db,
                           "INSERT INTO messages(queue, id, type, headers, body,"
                           " visible_at) VALUES('bench', ?1, 'bench.Order', ?2, ?3, ?4)",
                           -1, &insert, NULL),
        "prepare");
  for (long i = 1; i <= n_messages; i++) {
    char id[48], headers[400], body[256];
    snprintf(id, sizeof id, "01a21140-0000-7000-8000-%012ld", i);
    snprintf(
        headers, sizeof headers,
        "{\"moonbus.kind\":\"command\",\"moonbus.conversation_id\":"
        "\"%s\",\"moonbus.origin\":\"bench_feeder\",\"moonbus.time_sent\":"
        "\"2026-11-25T06:00:00.000000Z\",\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-"
        "b7ad6b7169203331-01\"}",
        id);
    int len = snprintf(body, sizeof body,
                       "{\"order_id\":\"o-%08ld\",\"customer\":\"ada lovelace\","
                       "\"lines\":[{\"sku\":\"moon-bus-001\",\"qty\":2,\"price\":12.5},{\"sku\":"
                       "\"moon-bus-002\",\"qty\":1,\"price\":99.9}],\"total\":124.9}",
                       i);
    exec(db, begin, "begin");
    sqlite3_bind_text(insert, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(insert, 2, headers, -1, SQLITE_STATIC);
    sqlite3_bind_blob(insert, 3, body, len, SQLITE_STATIC);
    sqlite3_bind_int64(insert, 4, now_ms());
    exec(db, insert, "insert");
    exec(db, commit, "commit");
  }
  sqlite3_finalize(begin);
  sqlite3_finalize(insert);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  return NULL;
}

static void consume(void) {
  sqlite3 *db = open_db();
  sqlite3_stmt *begin, *take, *del, *commit;
  check(db, sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL), "prepare");
  check(db, sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL), "prepare");
  check(db,
        sqlite3_prepare_v2(db,
                           "SELECT seq, id, type, headers, body FROM messages WHERE"
                           " queue = 'bench' AND visible_at <= ?1 ORDER BY visible_at, seq"
                           " LIMIT 1",
                           -1, &take, NULL),
        "prepare");
  check(db, sqlite3_prepare_v2(db, "DELETE FROM messages WHERE seq = ?1", -1, &del, NULL),
        "prepare");
  for (long got = 0; got < n_messages;) {
    exec(db, begin, "begin");
    sqlite3_bind_int64(take, 1, now_ms());
    int rc = sqlite3_step(take);
    check(db, rc, "select");
    if (rc == SQLITE_ROW) {
      volatile size_t seen = (size_t)sqlite3_column_bytes(take, 4); /* read the body */
      (void)seen;
      sqlite3_bind_int64(del, 1, sqlite3_column_int64(take, 0));
      sqlite3_reset(take);
      exec(db, del, "delete");
      got++;
    } else {
      sqlite3_reset(take);
    }
    exec(db, commit, "commit");
    if (rc != SQLITE_ROW) usleep(1000);
  }
  sqlite3_finalize(begin);
  sqlite3_finalize(take);
  sqlite3_finalize(del);
  sqlite3_finalize(commit);
  sqlite3_close(db);
}

int main(int argc, char **argv) {
  if (argc != 3 || (n_messages = atol(argv[2])) <= 0) {
    fprintf(stderr, "usage: raw_sqlite PATH N\n");
    return 2;
  }
  path = argv[1];
  sqlite3_close(open_db()); /* the schema, before both start */
  double t0 = bench_now();
  pthread_t producer;
  if (pthread_create(&producer, NULL, produce, NULL) != 0) return 1;
  consume();
  pthread_join(producer, NULL);
  double seconds = bench_now() - t0;
  bench_report(n_messages, seconds);
  return 0;
}
