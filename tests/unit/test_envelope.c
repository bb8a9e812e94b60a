/* test_envelope.c — ids, time stamps, kinds, header lists, header key rules, the strict
 * JSON header codec and the envelope's deep copies (host/envelope.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "unit.h"

static void test_uuidv7_has_the_rfc_9562_layout(void) {
  char id[MB_ID_LEN + 1];
  mb_uuidv7(id);
  CHECK(strlen(id) == MB_ID_LEN);
  CHECK(id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-');
  CHECK(id[14] == '7');                    /* version */
  CHECK(strchr("89ab", id[19]) != NULL);   /* variant 10xx */
  for (int i = 0; i < MB_ID_LEN; i++) CHECK(id[i] == '-' || strchr("0123456789abcdef", id[i]));
  CHECK(mb_id_valid(id));
}

static void test_uuidv7_carries_the_time_in_ms(void) {
  int64_t before = mb_now_usec() / 1000;
  char id[MB_ID_LEN + 1], hex[13];
  mb_uuidv7(id);
  int64_t after = mb_now_usec() / 1000;
  memcpy(hex, id, 8);
  memcpy(hex + 8, id + 9, 4);
  hex[12] = '\0';
  int64_t ms = strtoll(hex, NULL, 16);
  CHECK(ms >= before && ms <= after + 1);
}

static void test_uuidv7_ids_are_unique_and_increasing(void) {
  enum { N = 20000 };
  char prev[MB_ID_LEN + 1], id[MB_ID_LEN + 1];
  mb_uuidv7(prev);
  int ordered = 1;
  for (int i = 0; i < N; i++) {
    mb_uuidv7(id);
    if (strcmp(prev, id) >= 0) ordered = 0;
    memcpy(prev, id, sizeof id);
  }
  CHECK(ordered);
}

static void test_id_valid_refuses_what_is_not_a_uuid(void) {
  CHECK(!mb_id_valid(NULL));
  CHECK(!mb_id_valid(""));
  CHECK(!mb_id_valid("01900000-0000-7000-8000-0000000000a"));   /* short */
  CHECK(!mb_id_valid("01900000-0000-7000-8000-0000000000aaa")); /* long */
  CHECK(!mb_id_valid("0190000g-0000-7000-8000-0000000000aa"));  /* not hex */
  CHECK(!mb_id_valid("019000000-000-7000-8000-0000000000aa"));  /* dash moved */
  CHECK(mb_id_valid("01900000-0000-7000-8000-0000000000aa"));
}

static void test_time_formats_as_iso_8601_utc_with_microseconds(void) {
  char s[MB_TIME_LEN + 1];
  mb_time_iso(0, s);
  CHECK(strcmp(s, "1970-01-01T00:00:00.000000Z") == 0);
  mb_time_iso(1700000000123456LL, s);
  CHECK(strcmp(s, "2023-11-14T22:13:20.123456Z") == 0);
}

static void test_time_parses_what_it_formats(void) {
  int64_t now = mb_now_usec(), back = 0;
  char s[MB_TIME_LEN + 1];
  mb_time_iso(now, s);
  CHECK(mb_time_parse(s, &back) == MB_OK && back == now);
  CHECK(mb_time_parse("2023-11-14T22:13:20Z", &back) == MB_OK && back == 1700000000000000LL);
  CHECK(mb_time_parse("2023-11-14T22:13:20.5Z", &back) == MB_OK && back == 1700000000500000LL);
}

static void test_time_parse_refuses_malformed_stamps(void) {
  int64_t v;
  const char *bad[] = {"", "garbage", "2023-13-01T00:00:00Z", "2023-11-14T22:13:20",
                       "2023-11-14T22:13:20Zjunk", "2023-11-14 22:13:20Z", "2023-11-14T25:00:00Z",
                       "2023-11-14T22:13:20.Z", "2023-02-30T00:00:00Z", "2023-02-29T00:00:00Z",
                       "2023-04-31T00:00:00Z", "2023-11-14T22:13:60Z", "2023-11-14T22:13:20.1234567Z"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK(mb_time_parse(bad[i], &v) == MB_EINVAL);
  CHECK(mb_time_parse(NULL, &v) == MB_EINVAL);
  /* what does exist: a leap day, and a leap second at the end of a day */
  CHECK(mb_time_parse("2024-02-29T00:00:00Z", &v) == MB_OK);
  CHECK(mb_time_parse("2016-12-31T23:59:60Z", &v) == MB_OK && v == 1483228800000000LL);
}

static void test_kinds_round_trip_and_refuse_others(void) {
  mb_kind k;
  for (int i = MB_KIND_COMMAND; i <= MB_KIND_MESSAGE; i++)
    CHECK(mb_kind_parse(mb_kind_name((mb_kind)i), &k) == MB_OK && k == (mb_kind)i);
  CHECK(mb_kind_parse("Command", &k) == MB_EINVAL);
  CHECK(mb_kind_parse("", &k) == MB_EINVAL);
  CHECK(mb_kind_parse(NULL, &k) == MB_EINVAL);
}

static void test_headers_set_get_replace_remove(void) {
  mb_headers h = MB_HEADERS_INIT;
  CHECK(mb_headers_set(&h, "a", "1") == MB_OK);
  CHECK(mb_headers_set(&h, "b", "2") == MB_OK);
  CHECK(mb_headers_set(&h, "a", "3") == MB_OK); /* replaced in place */
  CHECK(h.len == 2 && strcmp(h.items[0].key, "a") == 0 && strcmp(h.items[0].value, "3") == 0);
  CHECK(strcmp(mb_headers_get(&h, "b"), "2") == 0);
  CHECK(mb_headers_get(&h, "c") == NULL);
  CHECK(mb_headers_remove(&h, "a") == 1 && mb_headers_remove(&h, "a") == 0);
  CHECK(h.len == 1 && strcmp(h.items[0].key, "b") == 0);
  mb_headers_free(&h);
  CHECK(h.len == 0 && h.items == NULL);
}

static void test_headers_copy_is_deep(void) {
  mb_headers a = MB_HEADERS_INIT, b = MB_HEADERS_INIT;
  mb_headers_set(&a, "k", "v");
  mb_headers_set(&b, "old", "x");
  CHECK(mb_headers_copy(&b, &a) == MB_OK);
  mb_headers_set(&a, "k", "changed");
  CHECK(b.len == 1 && strcmp(mb_headers_get(&b, "k"), "v") == 0);
  CHECK(mb_headers_get(&b, "old") == NULL);
  mb_headers_free(&a);
  mb_headers_free(&b);
}

static void test_header_keys_are_validated(void) {
  char key[300];
  CHECK(mb_header_key_problem("trace-x", 0) == NULL);
  const char *broker = mb_header_key_problem("x-trace", 0);
  CHECK(broker && strstr(broker, "RabbitMQ"));
  CHECK(mb_header_key_problem("X-Trace", 0) != NULL);
  CHECK(mb_header_key_problem("x-delivery-count", 1) == NULL);
  CHECK(mb_header_key_problem("", 0) != NULL);
  CHECK(mb_header_key_problem(NULL, 0) != NULL);
  memset(key, 'k', 255);
  key[255] = '\0';
  CHECK(mb_header_key_problem(key, 0) == NULL);
  key[255] = 'k';
  key[256] = '\0';
  CHECK(mb_header_key_problem(key, 0) && strstr(mb_header_key_problem(key, 0), "255"));
  CHECK(mb_header_key_problem("has space", 0) != NULL);
  CHECK(mb_header_key_problem("del\x7f", 0) != NULL);
  CHECK(mb_header_key_problem("caf\xc3\xa9", 0) != NULL);
  const char *why = mb_header_key_problem("moonbus.kind", 0);
  CHECK(why && strstr(why, "reserved"));
  CHECK(mb_header_key_problem("moonbus.kind", 1) == NULL);
}

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
  const char *kv[] = {"a", "1", "b", "quote\" back\\ nl\n tab\t ctl\x01 utf8 caf\xc3\xa9 \xf0\x9f\x98\x80",
                      "moonbus.kind", "event"};
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
  const char *bad[] = {
      "{\"a\":\"1\",\"a\":\"2\"}", "{\"a\":{\"b\":\"c\"}}", "{\"a\":1}", "{\"a\":null}",
      "[\"a\"]", "{}x", "{\"a\":\"b\"", "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}",
      "{\"a\":\"\\udc00\"}", "{\"a\":\"\\q\"}", "{\"a\":\"raw\ncontrol\"}", "", "{\"a\" \"b\"}",
      "{\"a\":\"b\",}", "{,}", "{\"a\":\"\\u12\"}", "{\"a\":[\"b\"]}", "{\"a\":true}"};
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

static void test_envelope_setters_copy_and_body_keeps_its_length(void) {
  mb_envelope e;
  mb_envelope_init(&e);
  CHECK(e.type == NULL && e.body == NULL && e.body_len == 0 && e.headers.len == 0);
  char type[] = "a.Do";
  CHECK(mb_envelope_set_type(&e, type) == MB_OK);
  type[0] = 'b';
  CHECK(strcmp(e.type, "a.Do") == 0);
  CHECK(mb_envelope_set_body(&e, "ab\0cd", 5) == MB_OK);
  CHECK(e.body_len == 5 && memcmp(e.body, "ab\0cd", 5) == 0 && e.body[5] == '\0');
  CHECK(mb_envelope_set_reply_to(&e, "q") == MB_OK && strcmp(e.reply_to, "q") == 0);
  CHECK(mb_envelope_set_correlation_id(&e, "c") == MB_OK && strcmp(e.correlation_id, "c") == 0);
  CHECK(mb_envelope_set_reply_to(&e, NULL) == MB_OK && e.reply_to == NULL);
  mb_envelope_free(&e);
  mb_envelope_free(&e); /* free leaves it initialised */
}

static void test_envelope_copy_is_deep_and_kind_comes_from_the_header(void) {
  mb_envelope a, b;
  mb_envelope_init(&a);
  mb_envelope_init(&b);
  mb_uuidv7(a.id);
  mb_envelope_set_type(&a, "a.Do");
  mb_envelope_set_body(&a, "{}", 2);
  mb_headers_set(&a.headers, MB_H_KIND, "event");
  CHECK(mb_envelope_copy(&b, &a) == MB_OK);
  mb_headers_set(&a.headers, MB_H_KIND, "bogus");
  mb_kind k;
  CHECK(strcmp(a.id, b.id) == 0 && strcmp(b.type, "a.Do") == 0 && b.body_len == 2);
  CHECK(mb_envelope_kind(&b, &k) == MB_OK && k == MB_KIND_EVENT);
  CHECK(mb_envelope_kind(&a, &k) == MB_EINVAL);
  mb_headers_remove(&b.headers, MB_H_KIND);
  CHECK(mb_envelope_kind(&b, &k) == MB_EINVAL);
  mb_envelope_free(&a);
  mb_envelope_free(&b);
}

static void test_header_rules_count_size_and_keys(void) {
  mb_headers h = MB_HEADERS_INIT;
  mb_err err;
  CHECK(mb_headers_check(&h, 0, &err) == MB_OK);
  char key[32];
  for (int i = 0; i < MB_HEADERS_MAX_COUNT; i++) {
    snprintf(key, sizeof key, "k%d", i);
    CHECK(mb_headers_set(&h, key, "v") == MB_OK);
  }
  CHECK(mb_headers_check(&h, 0, &err) == MB_OK);
  CHECK(mb_headers_set(&h, "one-more", "v") == MB_OK);
  CHECK(mb_headers_check(&h, 0, &err) == MB_EINVAL && strstr(err.msg, "limit of 256"));
  mb_headers_free(&h);
  static char big[MB_HEADERS_MAX_BYTES + 1];
  memset(big, 'a', MB_HEADERS_MAX_BYTES);
  CHECK(mb_headers_set(&h, "big", big) == MB_OK);
  CHECK(mb_headers_check(&h, 0, &err) == MB_EINVAL && strstr(err.msg, "bytes, over the limit"));
  mb_headers_free(&h);
  CHECK(mb_headers_set(&h, "moonbus.kind", "event") == MB_OK);
  CHECK(mb_headers_check(&h, 1, &err) == MB_OK);
  CHECK(mb_headers_check(&h, 0, &err) == MB_EINVAL && strstr(err.msg, "'moonbus.kind'"));
  mb_headers_free(&h);
}

static void test_foreign_ids_are_replaced_and_recorded(void) {
  mb_envelope e;
  mb_envelope_init(&e);
  const char *uuid = "0192f0c4-8a51-7cc4-9d3e-5b7a4c2e1f00";
  CHECK(mb_envelope_take_id(&e, uuid, strlen(uuid)) == MB_OK);
  CHECK(strcmp(e.id, uuid) == 0 && mb_headers_get(&e.headers, MB_H_FOREIGN_ID) == NULL);
  CHECK(mb_envelope_take_id(&e, NULL, 0) == MB_OK);
  CHECK(mb_id_valid(e.id) && strcmp(mb_headers_get(&e.headers, MB_H_FOREIGN_ID), "") == 0);
  CHECK(mb_envelope_take_id(&e, "order-17", 8) == MB_OK);
  CHECK(mb_id_valid(e.id) && strcmp(mb_headers_get(&e.headers, MB_H_FOREIGN_ID), "order-17") == 0);
  char nul_inside[MB_ID_LEN];
  memcpy(nul_inside, uuid, MB_ID_LEN);
  nul_inside[3] = '\0';
  CHECK(mb_envelope_take_id(&e, nul_inside, MB_ID_LEN) == MB_OK && mb_id_valid(e.id));
  CHECK(strcmp(mb_headers_get(&e.headers, MB_H_FOREIGN_ID), "019") == 0);
  mb_envelope_free(&e);
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
  const char *near = "{\"a\":\"1\",\"ab\":\"2\",\"abc\":\"3\",\"b\":\"4\",\"ba\":\"5\",\"\":\"6\"}";
  CHECK(mb_headers_from_json(near, strlen(near), &h, &err) == MB_OK && h.len == 6);
  mb_headers_free(&h);
  const char *escaped = "{\"a\\u0062\":\"1\",\"ab\":\"2\"}"; /* the same key, spelt twice */
  CHECK(mb_headers_from_json(escaped, strlen(escaped), &h, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "duplicate key 'ab'") != NULL);
}

int main(void) {
  RUN(test_uuidv7_has_the_rfc_9562_layout);
  RUN(test_uuidv7_carries_the_time_in_ms);
  RUN(test_uuidv7_ids_are_unique_and_increasing);
  RUN(test_id_valid_refuses_what_is_not_a_uuid);
  RUN(test_time_formats_as_iso_8601_utc_with_microseconds);
  RUN(test_time_parses_what_it_formats);
  RUN(test_time_parse_refuses_malformed_stamps);
  RUN(test_kinds_round_trip_and_refuse_others);
  RUN(test_headers_set_get_replace_remove);
  RUN(test_headers_copy_is_deep);
  RUN(test_header_keys_are_validated);
  RUN(test_json_round_trips_every_byte_that_matters);
  RUN(test_json_decodes_escapes_to_utf8);
  RUN(test_json_refuses_whatever_is_not_a_flat_object_of_strings);
  RUN(test_json_refuses_oversize_input);
  RUN(test_envelope_setters_copy_and_body_keeps_its_length);
  RUN(test_envelope_copy_is_deep_and_kind_comes_from_the_header);
  RUN(test_header_rules_count_size_and_keys);
  RUN(test_foreign_ids_are_replaced_and_recorded);
  RUN(test_json_decodes_many_keys_in_linear_time);
  return unit_done();
}
