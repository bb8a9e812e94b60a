/* test_headers.c — header lists, header key rules and the header rules of a list
 * (host/headers.c). */
#include <stdio.h>
#include <string.h>

#include "headers.h"
#include "unit.h"

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

int main(void) {
  RUN(test_headers_set_get_replace_remove);
  RUN(test_headers_copy_is_deep);
  RUN(test_header_keys_are_validated);
  RUN(test_header_rules_count_size_and_keys);
  return unit_done();
}
