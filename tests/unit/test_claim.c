/* test_claim.c — the claim check's stores and steps (claim.h): SHA-256 against a known
 * vector; the directory store and the SQLite store through the same vtable (put, get,
 * sizes, pins, touch, sweep); stow and fetch on an envelope, with the reasons a message is
 * parked for (missing, corrupt, too large, no store). */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "clock.h"
#include "transport.h"
#include "transport/sqlite.h"
#include "unit.h"

#define DAY_USEC ((int64_t)86400 * 1000000)

static char dir[] = "/tmp/moonbus-claim-XXXXXX";
static char file_url[300], sqlite_url[300];

static void test_sha256_of_known_vectors(void) {
  char hex[MB_CLAIM_SHA256_HEX + 1];
  CHECK(mb_claim_sha256("abc", 3, hex) == MB_OK);
  CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
  CHECK(mb_claim_sha256("", 0, hex) == MB_OK);
  CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
}

/* put, get, a size limit and a missing key, on any store. */
static void store_roundtrip(mb_claim_store *s) {
  mb_err err;
  char sha[MB_CLAIM_SHA256_HEX + 1], *body = NULL;
  size_t len = 3u << 20; /* more than one piece of blob I/O */
  char *big = malloc(len);
  for (size_t i = 0; i < len; i++) big[i] = (char)('a' + i % 26);
  mb_claim_sha256(big, len, sha);
  CHECK(s->ops->put(s, "0190aaaa-0000-7000-8000-000000000001", big, len, sha, mb_now_usec(),
                    &err) == MB_OK);
  CHECK(s->ops->get(s, "0190aaaa-0000-7000-8000-000000000001", len, &body, &len, &err) == MB_OK);
  CHECK(body && len == 3u << 20 && memcmp(body, big, len) == 0 && body[len] == '\0');
  free(body);
  CHECK(s->ops->get(s, "0190aaaa-0000-7000-8000-000000000001", 100, &body, &len, &err) ==
        MB_ETOOBIG);
  CHECK(s->ops->get(s, "0190aaaa-0000-7000-8000-0000000000ff", 100, &body, &len, &err) ==
        MB_ENOTFOUND);
  free(big);
}

/* A pinned claim survives the sweep; unpinned and old, it goes; touch makes it young. */
static void store_retention(mb_claim_store *s) {
  mb_err err;
  size_t removed = 0, len;
  char *body;
  const char *a = "0190aaaa-0000-7000-8000-00000000000a",
             *b = "0190aaaa-0000-7000-8000-00000000000b";
  int64_t old = mb_now_usec() - 10 * DAY_USEC, cutoff = mb_now_usec() - 7 * DAY_USEC;
  CHECK(s->ops->put(s, a, "{}", 2, "x", old, &err) == MB_OK);
  CHECK(s->ops->put(s, b, "{}", 2, "x", old, &err) == MB_OK);
  CHECK(s->ops->pin(s, a, +1, &err) == MB_OK);
  CHECK(s->ops->pin(s, a, +1, &err) == MB_OK); /* two parked copies (fan-out) */
  CHECK(s->ops->sweep(s, cutoff, &removed, &err) == MB_OK);
  CHECK(s->ops->get(s, a, 10, &body, &len, &err) == MB_OK);
  free(body);
  CHECK(s->ops->get(s, b, 10, &body, &len, &err) == MB_ENOTFOUND);
  CHECK(s->ops->pin(s, a, -1, &err) == MB_OK);
  CHECK(s->ops->sweep(s, cutoff, &removed, &err) == MB_OK && removed == 0); /* one pin left */
  CHECK(s->ops->pin(s, a, -1, &err) == MB_OK);
  CHECK(s->ops->touch(s, a, mb_now_usec(), &err) == MB_OK);
  CHECK(s->ops->sweep(s, cutoff, &removed, &err) == MB_OK && removed == 0); /* young again */
  CHECK(s->ops->touch(s, a, old, &err) == MB_OK);
  CHECK(s->ops->sweep(s, cutoff, &removed, &err) == MB_OK && removed == 1);
  CHECK(s->ops->pin(s, a, -1, &err) == MB_OK); /* gone: no error */
}

static void test_the_directory_store(void) {
  mb_claim_store *s = NULL;
  mb_err err;
  CHECK(mb_claim_file_open(&s, file_url, &err) == MB_OK);
  if (s == NULL) return;
  store_roundtrip(s);
  store_retention(s);
  char *body;
  size_t len;
  CHECK(s->ops->get(s, "../etc", 100, &body, &len, &err) == MB_ENOTFOUND); /* not a path */
  mb_claim_close(s);
  CHECK(mb_claim_file_open(&s, "http://x", &err) == MB_EINVAL);
}

static void test_the_sqlite_store(void) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  mb_transport *t = NULL;
  mb_claim_store *s = NULL;
  mb_err err;
  CHECK(mb_transport_open(&t, loop, sqlite_url, "unit", &err) == MB_OK); /* creates the db */
  CHECK(mb_sqlite_claims_open(&s, sqlite_url, &err) == MB_OK);
  if (s) {
    store_roundtrip(s);
    store_retention(s);
    mb_claim_close(s);
  }
  if (t) t->ops->close(t);
  ev_loop_destroy(loop);
}

static void test_stow_and_fetch(void) {
  mb_claim_store *s = NULL;
  mb_err err;
  mb_envelope e;
  char *body = NULL;
  size_t len = 0;
  mb_envelope_init(&e);
  mb_envelope_set_type(&e, "billing.Invoice");
  CHECK(mb_claim_file_open(&s, file_url, &err) == MB_OK);
  CHECK(mb_claim_stow(s, &e, "{\"pdf\":\"...\"}", 13, 0, &err) == MB_OK);
  CHECK(e.body_len == 0 && strcmp(e.body, "") == 0);
  const char *key = mb_claim_key(&e.headers);
  CHECK(key != NULL && mb_headers_get(&e.headers, MB_H_CLAIM_SHA256) != NULL);
  CHECK(mb_claim_fetch(s, &e.headers, 100, &body, &len, &err) == MB_OK);
  CHECK(len == 13 && memcmp(body, "{\"pdf\":\"...\"}", 13) == 0);
  free(body);
  CHECK(mb_claim_fetch(s, &e.headers, 5, &body, &len, &err) == MB_ETOOBIG);
  CHECK(mb_claim_fetch(NULL, &e.headers, 100, &body, &len, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "no claim store") != NULL);
  mb_headers_set(&e.headers, MB_H_CLAIM_SHA256, "00");
  CHECK(mb_claim_fetch(s, &e.headers, 100, &body, &len, &err) == MB_EINVAL && body == NULL);
  char want[600];
  snprintf(want, sizeof want, "claim %s does not match its sha256", key);
  CHECK(strcmp(err.msg, want) == 0);
  char path[400];
  snprintf(path, sizeof path, "%s/bus/%s", dir, key);
  CHECK(unlink(path) == 0);
  CHECK(mb_claim_fetch(s, &e.headers, 100, &body, &len, &err) == MB_ENOTFOUND);
  snprintf(want, sizeof want, "claim %s is missing from %s", key, file_url);
  CHECK(strcmp(err.msg, want) == 0);
  mb_envelope_free(&e);
  mb_claim_close(s);
}

int main(void) {
  if (mkdtemp(dir) == NULL) return 2;
  snprintf(file_url, sizeof file_url, "file://%s/bus", dir);
  snprintf(sqlite_url, sizeof sqlite_url, "sqlite://%s/bus.db", dir);
  RUN(test_sha256_of_known_vectors);
  RUN(test_the_directory_store);
  RUN(test_the_sqlite_store);
  RUN(test_stow_and_fetch);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 2;
  return unit_done();
}
