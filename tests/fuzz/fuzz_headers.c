/* fuzz_headers.c — fuzz target for the strict header decoder (mb_headers_from_json), the
 * one parser that reads bytes another process wrote.
 *
 * Property: any input either fails cleanly, or decodes to a list that encodes and decodes
 * again to the same list. ASan/UBSan catch the rest.
 *
 * With libFuzzer:  clang -fsanitize=fuzzer,address,undefined -Ihost \
 *                    tests/fuzz/fuzz_headers.c host/headers.c host/headers_json.c \
 *                    host/ids.c host/clock.c host/status.c
 * Without it (make test does this): built with -DMB_FUZZ_STANDALONE, the program replays
 * the files named on its command line, or with none runs the seeds below and a fixed-seed
 * mutation loop over them, and prints one TAP line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "headers_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const mb_headers *a, const mb_headers *b) {
  if (a->len != b->len) return 0;
  for (size_t i = 0; i < a->len; i++)
    if (strcmp(a->items[i].key, b->items[i].key) || strcmp(a->items[i].value, b->items[i].value))
      return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mb_headers first = MB_HEADERS_INIT, second = MB_HEADERS_INIT;
  mb_err err;
  if (mb_headers_from_json((const char *)data, size, &first, &err) != MB_OK) {
    if (first.len != 0 || err.msg[0] == '\0') abort(); /* a failure leaves nothing behind */
    return 0;
  }
  size_t len;
  char *json = mb_headers_to_json(&first, &len);
  if (json == NULL) abort();
  if (mb_headers_from_json(json, len, &second, &err) != MB_OK || !same(&first, &second)) abort();
  free(json);
  mb_headers_free(&first);
  mb_headers_free(&second);
  return 0;
}

#ifdef MB_FUZZ_STANDALONE
#include "fuzz.h"

static const char *const seeds[] = {"{}",
                                    "{\"moonbus.kind\":\"command\",\"x\":\"y\"}",
                                    "{\"a\":\"\\u00e9\\ud83d\\ude00\"}",
                                    "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
                                    " {\"a\" : \"b\" } ",
                                    "{\"a\":{\"b\":\"c\"}}",
                                    "{\"a\":\"1\",\"a\":\"2\"}",
                                    "{\"a\":\"\\ud800\"}",
                                    "{\"a\":\"\\u0000\"}",
                                    "[]",
                                    "{\"a\":1}",
                                    "{\"caf\xc3\xa9\":\"\xff\xfe\"}",
                                    "{\"a\":\"b\"",
                                    "{\"a\":\"b\",}",
                                    "\"just a string\""};

static const fuzz_token tokens[] = {
    FUZZ_TOKEN("\""), FUZZ_TOKEN("\\"),      FUZZ_TOKEN("\\u"),
    FUZZ_TOKEN("{"),  FUZZ_TOKEN("}"),       FUZZ_TOKEN(":"),
    FUZZ_TOKEN(","),  FUZZ_TOKEN("\\ud83d"), FUZZ_TOKEN("\"a\":\"b\"")};

int main(int argc, char **argv) {
  if (fuzz_replay_args(argc, argv)) return 0;
  const size_t n_seeds = sizeof seeds / sizeof *seeds;
  long runs = 0;
  for (size_t s = 0; s < n_seeds; s++)
    runs += fuzz_mutation_loop((const uint8_t *)seeds[s], strlen(seeds[s]), 20000, 500, tokens,
                               sizeof tokens / sizeof *tokens);
  printf("ok - fuzz_headers: %zu seeds and %ld mutated inputs decode cleanly or fail cleanly\n",
         n_seeds, runs);
  return 0;
}
#endif
