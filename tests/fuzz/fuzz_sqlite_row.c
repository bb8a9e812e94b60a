/* fuzz_sqlite_row.c — fuzz target for the SQLite row decoder (sq_delivery_from_row in
 * host/transport/sqlite_consume.c): what any process that can write the bus database puts
 * into a messages row becomes a delivery the pipeline can screen, never a crash.
 *
 * Input: up to 8 fields separated by 0x1f — seq, id, type, correlation_id, reply_to,
 * headers, body, deliveries — each bound to a real SQLite statement (SELECT ?1, ..., ?8 on
 * an in-memory database) and read back through the same column calls the transport makes.
 * A field starting with 0x00 is SQL NULL, with 0x01 an integer (the digits after it), with
 * 0x02 a blob (the bytes after it); anything else is text, NUL bytes included.
 *
 * Properties: a delivery always comes back (there is no out-of-memory here) with a UUID
 * id (the row's own when it was one, else a new one with the original in
 * moonbus.foreign_id), a body of the row's length, a delivery count >= 1, and either a
 * problem or headers that keep the header rules (mb_headers_check, moonbus.foreign_id
 * aside) and survive an encode/decode round trip — what parking the message writes.
 *
 * With libFuzzer:  clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -iquote host \
 *                    tests/fuzz/fuzz_sqlite_row.c host/envelope.c host/headers.c \
 *                    host/headers_json.c host/ids.c host/clock.c host/status.c \
 *                    host/transport.c host/transport/sqlite*.c host/log.c ... -lsqlite3 -lev
 *                  (or link it against build/asan's objects as the Makefile does)
 * Without it (make test does this): built with -DMB_FUZZ_STANDALONE, the program replays
 * the files named on its command line, or with none runs the seeds below and a fixed-seed
 * mutation loop over them, and prints one TAP line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "headers_json.h"
#include "ids.h"
#include "transport.h"
#include "transport/sqlite_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS 8
#define SEP 0x1f

static sqlite3 *db;
static sqlite3_stmt *row;

static void bind_field(int i, const uint8_t *p, size_t n) {
  if (n > 0 && p[0] == 0x00) {
    sqlite3_bind_null(row, i);
  } else if (n > 0 && p[0] == 0x01) {
    long long v = 0;
    for (size_t k = 1; k < n && k < 18; k++) v = v * 10 + (p[k] % 10);
    sqlite3_bind_int64(row, i, (p[n - 1] & 1) ? -v : v);
  } else if (n > 0 && p[0] == 0x02) {
    sqlite3_bind_blob(row, i, p + 1, (int)(n - 1), SQLITE_TRANSIENT);
  } else {
    sqlite3_bind_text(row, i, (const char *)p, (int)n, SQLITE_TRANSIENT);
  }
}

/* Splits data on SEP into the statement's parameters (missing ones stay NULL). */
static void bind_row(const uint8_t *data, size_t size) {
  sqlite3_reset(row);
  sqlite3_clear_bindings(row);
  size_t start = 0;
  for (int i = 1; i <= FIELDS && start <= size; i++) {
    const uint8_t *sep = memchr(data + start, SEP, size - start);
    size_t end = sep ? (size_t)(sep - data) : size;
    bind_field(i, data + start, end - start);
    start = end + 1;
  }
}

static int same(const mb_headers *a, const mb_headers *b) {
  if (a->len != b->len) return 0;
  for (size_t i = 0; i < a->len; i++)
    if (strcmp(a->items[i].key, b->items[i].key) || strcmp(a->items[i].value, b->items[i].value))
      return 0;
  return 1;
}

/* The headers as the pipeline would park them: they encode and decode to themselves, and
 * keep the header rules once the id the transport recorded is set aside. */
static void check_headers(const mb_delivery *d) {
  mb_headers copy = MB_HEADERS_INIT, again = MB_HEADERS_INIT;
  mb_err err;
  if (mb_headers_copy(&copy, &d->env.headers) != MB_OK) abort();
  mb_headers_remove(&copy, MB_H_FOREIGN_ID);
  if (mb_headers_check(&copy, 1, &err) != MB_OK) abort();
  size_t len;
  char *json = mb_headers_to_json(&d->env.headers, &len);
  if (json == NULL || mb_headers_from_json(json, len, &again, &err) != MB_OK) abort();
  if (!same(&d->env.headers, &again)) abort();
  free(json);
  mb_headers_free(&copy);
  mb_headers_free(&again);
}

static void check(const mb_delivery *d) {
  if (d == NULL || !mb_id_valid(d->env.id) || d->delivery_count < 1) abort();
  const char *id = (const char *)sqlite3_column_text(row, 1);
  int own = id && mb_id_valid(id) && (size_t)sqlite3_column_bytes(row, 1) == MB_ID_LEN;
  if (own && strcmp(d->env.id, id) != 0) abort();
  if (!own && mb_headers_get(&d->env.headers, MB_H_FOREIGN_ID) == NULL) abort();
  if (d->env.body == NULL || d->env.body_len != (size_t)sqlite3_column_bytes(row, 6)) abort();
  if (d->env.body[d->env.body_len] != '\0') abort();
  if (d->problem == NULL) check_headers(d);
  else if (d->problem[0] == '\0') abort(); /* a problem names its reason */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (db == NULL) {
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8", -1, &row, NULL) !=
            SQLITE_OK)
      abort();
  }
  bind_row(data, size);
  if (sqlite3_step(row) != SQLITE_ROW) abort();
  mb_delivery *d = sq_delivery_from_row(row, "fuzz");
  check(d);
  mb_delivery_free(d);
  sqlite3_reset(row);
  return 0;
}

#ifdef MB_FUZZ_STANDALONE
#include "fuzz.h"

/* Seeds hold NUL bytes: each keeps its length. */
#define SEED(text) FUZZ_TOKEN(text)
#define S "\x1f"
static const fuzz_token seeds[] = {
    SEED("\x01"
         "1" S "0192b7c1-5f3a-7c2e-8a1b-3c4d5e6f7a8b" S "a.Do" S "c" S "r" S
         "{\"moonbus.kind\":\"command\"}" S "{}" S "\x01"
         "1"),
    SEED("\x01"
         "2" S "" S "\x00" S "\x00" S "\x00" S "{}" S "\x00" S "\x01"
         "0"),
    SEED("\x01"
         "3" S "order-17" S "a.Do" S S S "{\"has space\":\"v\"}" S "{\"x\":1}" S "\x01"
         "5"),
    SEED("\x01"
         "4" S "\x02"
         "0192b7c1-5f3a-7c2e-8a1b-3c4d5e6f7a8b" S "a.D\x00o" S S S "{\"a\":\"1\",\"a\":\"2\"}" S
         "\x02\xff\xfe" S "9"),
    SEED("\x01"
         "5" S "\x01"
         "42" S "\x01"
         "7" S S S "not json" S "body" S "-3"),
    SEED("\x01"
         "6" S "x" S "t" S S S "{\"moonbus.kind\":\"event\",\"x-death\":\"\\u00e9\"}" S "{}"),
    SEED("\x01"
         "7" S "x" S "t" S S S "\x00" S "{}" S "\x01"
         "99999999999999999"),
    SEED("\x01"
         "8" S "x" S "t" S S S "{\"k\":{\"n\":1}}"),
};
#undef S

static const fuzz_token tokens[] = {FUZZ_TOKEN("\x1f"),
                                    {"\x00", 1},
                                    FUZZ_TOKEN("\x01"),
                                    FUZZ_TOKEN("\x02"),
                                    FUZZ_TOKEN("\""),
                                    FUZZ_TOKEN("\\u"),
                                    FUZZ_TOKEN("{"),
                                    FUZZ_TOKEN("}"),
                                    FUZZ_TOKEN(":"),
                                    FUZZ_TOKEN(","),
                                    FUZZ_TOKEN("\"k\":\"v\","),
                                    FUZZ_TOKEN("0192b7c1-5f3a-7c2e-8a1b-")};

int main(int argc, char **argv) {
  fuzz_rng = 0x2545f4914f6cdd1dULL;
  if (fuzz_replay_args(argc, argv)) return 0;
  const size_t n_seeds = sizeof seeds / sizeof *seeds;
  long runs = 0;
  for (size_t s = 0; s < n_seeds; s++)
    runs += fuzz_mutation_loop((const uint8_t *)seeds[s].p, seeds[s].n, 20000, 400, tokens,
                               sizeof tokens / sizeof *tokens);
  sqlite3_finalize(row);
  sqlite3_close(db);
  printf("ok - fuzz_sqlite_row: %zu seeds and %ld mutated rows decode to a delivery the "
         "pipeline can screen\n",
         n_seeds, runs);
  return 0;
}
#endif
