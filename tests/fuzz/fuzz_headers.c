/* fuzz_headers.c — fuzz target for the strict header decoder (mb_headers_from_json), the
 * one parser that reads bytes another process wrote.
 *
 * Property: any input either fails cleanly, or decodes to a list that encodes and decodes
 * again to the same list. ASan/UBSan catch the rest.
 *
 * With libFuzzer:  clang -fsanitize=fuzzer,address,undefined -Ihost \
 *                    tests/fuzz/fuzz_headers.c host/envelope.c host/status.c
 * Without it (make test does this): built with -DMB_FUZZ_STANDALONE, the program replays
 * the files named on its command line, or with none runs the seeds below and a fixed-seed
 * mutation loop over them, and prints one TAP line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

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
static const char *const seeds[] = {
    "{}", "{\"moonbus.kind\":\"command\",\"x\":\"y\"}", "{\"a\":\"\\u00e9\\ud83d\\ude00\"}",
    "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", " {\"a\" : \"b\" } ", "{\"a\":{\"b\":\"c\"}}",
    "{\"a\":\"1\",\"a\":\"2\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\u0000\"}", "[]", "{\"a\":1}",
    "{\"caf\xc3\xa9\":\"\xff\xfe\"}", "{\"a\":\"b\"", "{\"a\":\"b\",}", "\"just a string\""};

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

/* One random edit of buf (len < cap): flip, insert, delete or splice a token. */
static size_t mutate(uint8_t *buf, size_t len, size_t cap) {
  static const char *const tokens[] = {"\"", "\\", "\\u", "{", "}", ":", ",", "\\ud83d", "\"a\":\"b\""};
  uint32_t r = next_random(), at = len ? next_random() % len : 0;
  switch (r % 4) {
  case 0:
    if (len) buf[at] ^= (uint8_t)(1u << (next_random() % 8));
    return len;
  case 1:
    if (len) memmove(buf + at, buf + at + 1, len - at - 1);
    return len ? len - 1 : 0;
  case 2:
    if (len + 1 >= cap) return len;
    memmove(buf + at + 1, buf + at, len - at);
    buf[at] = (uint8_t)next_random();
    return len + 1;
  default: {
    const char *t = tokens[next_random() % (sizeof tokens / sizeof *tokens)];
    size_t n = strlen(t);
    if (len + n >= cap) return len;
    memmove(buf + at + n, buf + at, len - at);
    memcpy(buf + at, t, n);
    return len + n;
  }
  }
}

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return -1;
  static uint8_t buf[1 << 21];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  return LLVMFuzzerTestOneInput(buf, n);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (replay_file(argv[i]) != 0) fprintf(stderr, "cannot read %s\n", argv[i]);
  if (argc > 1) return 0;
  const size_t n_seeds = sizeof seeds / sizeof *seeds;
  long runs = 0;
  for (size_t s = 0; s < n_seeds; s++) {
    uint8_t buf[512];
    size_t len = strlen(seeds[s]);
    memcpy(buf, seeds[s], len);
    LLVMFuzzerTestOneInput(buf, len);
    for (int i = 0; i < 20000; i++, runs++) {
      len = mutate(buf, len, sizeof buf);
      uint8_t copy[512]; /* exact-size copy so ASan sees reads past the end */
      memcpy(copy, buf, len);
      uint8_t *exact = malloc(len ? len : 1);
      memcpy(exact, copy, len);
      LLVMFuzzerTestOneInput(exact, len);
      free(exact);
      if (i % 500 == 499) { /* drift back to the seed now and then */
        len = strlen(seeds[s]);
        memcpy(buf, seeds[s], len);
      }
    }
  }
  printf("ok - fuzz_headers: %zu seeds and %ld mutated inputs decode cleanly or fail cleanly\n",
         n_seeds, runs);
  return 0;
}
#endif
