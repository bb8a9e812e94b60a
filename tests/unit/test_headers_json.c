/* test_headers_json.c — the strict JSON header codec (host/headers_json.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "headers_json.h"
#include "unit.h"

/* Decodes json and checks it gives exactly the expected key/value pairs. */
static int decodes_to(const char *json, size_t len, const char *const *kv, size_t n) {
  mb_headers h = MB_HEADERS_INIT;
  mb_err err;
  int ok = mb_headers_from_json(json, len, &h, &err) == MB_OK && h.len == n;
  for (size_t i = 0; ok && i < n; i++)
    ok = strcmp(h.items[i].key, kv[2 * i]) == 0 && strcmp(h.items[i].value, kv[2 * i + 1]) == 0;
  mb_headers_free(&h);
  return ok;
}

static void test_json_round_trips_every_byte_that_matters(void) {
  const char *kv[] = {"a",
                      "1",
                      "b",
                      "quote\" back\\ nl\n tab\t ctl\x01 utf8 caf\xc3\xa9 \xf0\x9f\x98\x80",
                      "moonbus.kind",
                      "event"};
  mb_headers h = MB_HEADERS_INIT;
  for (int i = 0; i < 3; i++) mb_headers_set(&h, kv[2 * i], kv[2 * i + 1]);
  size_t len;
  char *json = mb_headers_to_json(&h, &len);
  CHECK(json && strlen(json) == len);
  CHECK(json && decodes_to(json, len, kv, 3));
  free(json);
  mb_headers_free(&h);
  json = mb_headers_to_json(&h, &len);
  CHECK(json && strcmp(json, "{}") == 0 && decodes_to(json, len, NULL, 0));
  free(json);
}

static void test_json_decodes_escapes_to_utf8(void) {
  const char *e_acute[] = {"k", "\xc3\xa9"}, *smile[] = {"k", "\xf0\x9f\x98\x80"};
  const char *j1 = "{\"k\":\"\\u00e9\"}", *j2 = "{\"k\":\"\\ud83d\\ude00\"}";
  CHECK(decodes_to(j1, strlen(j1), e_acute, 1));
  CHECK(decodes_to(j2, strlen(j2), smile, 1));
  const char *spaced = " { \"a\" : \"b\" , \"c\":\"d\" } ", *kv[] = {"a", "b", "c", "d"};
  CHECK(decodes_to(spaced, strlen(spaced), kv, 2));
  const char *tail = "{\"a\":\"b\"}GARBAGE";
  CHECK(decodes_to(tail, 9, kv, 1)); /* only len bytes are read */
}

static void test_json_refuses_whatever_is_not_a_flat_object_of_strings(void) {
  const char *bad[] = {"{\"a\":\"1\",\"a\":\"2\"}",
                       "{\"a\":{\"b\":\"c\"}}",
                       "{\"a\":1}",
                       "{\"a\":null}",
                       "[\"a\"]",
                       "{}x",
                       "{\"a\":\"b\"",
                       "{\"a\":\"\\u0000\"}",
                       "{\"a\":\"\\ud800\"}",
                       "{\"a\":\"\\udc00\"}",
                       "{\"a\":\"\\q\"}",
                       "{\"a\":\"raw\ncontrol\"}",
                       "",
                       "{\"a\" \"b\"}",
                       "{\"a\":\"b\",}",
                       "{,}",
                       "{\"a\":\"\\u12\"}",
                       "{\"a\":[\"b\"]}",
                       "{\"a\":true}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    mb_headers h = MB_HEADERS_INIT;
    mb_err err = {0, ""};
    int rc = mb_headers_from_json(bad[i], strlen(bad[i]), &h, &err);
    if (rc != MB_EINVAL || err.msg[0] == '\0' || h.len != 0) printf("#   accepted: %s\n", bad[i]);
    CHECK(rc == MB_EINVAL && err.msg[0] != '\0' && h.len == 0);
    mb_headers_free(&h);
  }
}

static void test_json_refuses_oversize_input(void) {
  size_t len = MB_HEADERS_JSON_MAX + 16;
  char *big = malloc(len + 1);
  memset(big, 'x', len);
  memcpy(big, "{\"k\":\"", 6);
  memcpy(big + len - 2, "\"}", 2);
  big[len] = '\0';
  mb_headers h = MB_HEADERS_INIT;
  mb_err err;
  CHECK(mb_headers_from_json(big, len, &h, &err) == MB_EINVAL && strstr(err.msg, "limit"));
  mb_headers_free(&h);
  free(big);
}

/* A header block of n distinct keys "k0".."k{n-1}" (plus dup, if not NULL, last). */
static char *many_keys_json(int n, const char *dup, size_t *len) {
  size_t cap = (size_t)n * 20 + 64, at = 0;
  char *json = malloc(cap);
  json[at++] = '{';
  for (int i = 0; i < n; i++)
    at += (size_t)snprintf(json + at, cap - at, "%s\"k%d\":\"v\"", i ? "," : "", i);
  if (dup) at += (size_t)snprintf(json + at, cap - at, ",\"%s\":\"again\"", dup);
  json[at++] = '}';
  json[at] = '\0';
  *len = at;
  return json;
}

/* 60 000 keys took ~5 s when each key was compared with every earlier one (the write lock
 * of a SQLite bus is held meanwhile); linear decoding takes milliseconds even under ASan. */
static void test_json_decodes_many_keys_in_linear_time(void) {
  size_t len;
  char *json = many_keys_json(60000, NULL, &len);
  mb_headers h = MB_HEADERS_INIT;
  mb_err err;
  double start = mb_monotonic();
  int rc = mb_headers_from_json(json, len, &h, &err);
  double took = mb_monotonic() - start;
  printf("#   60 000 keys decoded in %.3f s\n", took);
  CHECK(rc == MB_OK && h.len == 60000);
  CHECK(took < 1.5); /* quadratic: ~20 s under ASan, ~6 s at -O2 */
  CHECK(rc == MB_OK && strcmp(h.items[59999].key, "k59999") == 0);
  CHECK(mb_headers_check(&h, 1, &err) == MB_EINVAL && strstr(err.msg, "over the limit of 256"));
  mb_headers_free(&h);
  free(json);
  const char *dups[] = {"k0", "k31337", "k59999"};
  for (int i = 0; i < 3; i++) {
    json = many_keys_json(60000, dups[i], &len);
    CHECK(mb_headers_from_json(json, len, &h, &err) == MB_EINVAL && h.len == 0);
    CHECK(strstr(err.msg, "duplicate key") && strstr(err.msg, dups[i]));
    free(json);
  }
  /* keys that differ only after a shared prefix, or by length, are not duplicates */
  const char *near =
      "{\"a\":\"1\",\"ab\":\"2\",\"abc\":\"3\",\"b\":\"4\",\"ba\":\"5\",\"\":\"6\"}";
  CHECK(mb_headers_from_json(near, strlen(near), &h, &err) == MB_OK && h.len == 6);
  mb_headers_free(&h);
  const char *escaped = "{\"a\\u0062\":\"1\",\"ab\":\"2\"}"; /* the same key, spelt twice */
  CHECK(mb_headers_from_json(escaped, strlen(escaped), &h, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "duplicate key 'ab'") != NULL);
}

int main(void) {
  RUN(test_json_round_trips_every_byte_that_matters);
  RUN(test_json_decodes_escapes_to_utf8);
  RUN(test_json_refuses_whatever_is_not_a_flat_object_of_strings);
  RUN(test_json_refuses_oversize_input);
  RUN(test_json_decodes_many_keys_in_linear_time);
  return unit_done();
}
