/* fuzz_json.c — fuzz target for the ops service's JSON reader (mb_json_parse), which reads
 * request bodies and stored messages, and its writer (mb_jbuf_value).
 *
 * Property: any input either fails cleanly (MB_EINVAL, no document, an error naming a byte
 * offset inside the input), or parses to a tree whose compact text parses again and
 * writes back to the same text. ASan/UBSan catch the rest.
 *
 * With libFuzzer:  clang -fsanitize=fuzzer,address,undefined -Ihost \
 *                    tests/fuzz/fuzz_json.c host/json.c host/status.c -lm
 * Without it (make test does this): built with -DMB_FUZZ_STANDALONE, the program replays
 * the files named on its command line, or with none runs the seeds below and a fixed-seed
 * mutation loop over them, and prints one TAP line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *write_back(const mb_json *doc, size_t *len) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_value(&b, mb_json_root(doc));
  return mb_jbuf_take(&b, len);
}

static void check_failure(int rc, const mb_json *doc, const mb_err *err, size_t size) {
  const char *at = strstr(err->msg, "at byte ");
  if (rc != MB_EINVAL || doc != NULL || at == NULL) abort();
  if (strtoull(at + 8, NULL, 10) > size) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mb_json *first = NULL, *second = NULL;
  mb_err err = {0, ""};
  int rc = mb_json_parse((const char *)data, size, &first, &err);
  if (rc != MB_OK) {
    check_failure(rc, first, &err, size);
    return 0;
  }
  size_t len1, len2;
  char *text1 = write_back(first, &len1);
  if (text1 == NULL) abort();
  if (mb_json_parse(text1, len1, &second, &err) != MB_OK) abort();
  char *text2 = write_back(second, &len2);
  if (text2 == NULL || len1 != len2 || memcmp(text1, text2, len1) != 0) abort();
  free(text1);
  free(text2);
  mb_json_free(first);
  mb_json_free(second);
  return 0;
}

#ifdef MB_FUZZ_STANDALONE
#include "fuzz.h"

static const char *const seeds[] = {
    "{}",
    "[]",
    "{\"id\":\"0192f3a4\",\"items\":[1,2.5,-0,true,false,null]}",
    "{\"a\":\"\\u00e9\\ud83d\\ude00\\u0000\"}",
    "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
    " {\"a\" : [ {\"b\" : { } } ] } ",
    "{\"a\":1,\"a\":2}",
    "[1e300,-1.5E-7,0.1,12345678901234567890]",
    "\"caf\xc3\xa9 </script>\"",
    "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
    "{\"a\":\"b\"",
    "[1,]",
    "{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
    "\"k8\":8,\"k9\":9,\"k10\":10,\"k11\":11,\"k12\":12,\"k13\":13,"
    "\"k14\":14,\"k15\":15,\"k16\":16,\"k17\":17,\"k1\":0}",
    "-0.0e+0"};

static const fuzz_token tokens[] = {
    FUZZ_TOKEN("\""),      FUZZ_TOKEN("\\"),      FUZZ_TOKEN("\\u"),     FUZZ_TOKEN("{"),
    FUZZ_TOKEN("}"),       FUZZ_TOKEN("["),       FUZZ_TOKEN("]"),       FUZZ_TOKEN(":"),
    FUZZ_TOKEN(","),       FUZZ_TOKEN("\\ud83d"), FUZZ_TOKEN("\\udc00"), FUZZ_TOKEN("e-"),
    FUZZ_TOKEN("1e999"),   FUZZ_TOKEN("null"),    FUZZ_TOKEN("true"),    FUZZ_TOKEN("\xf0\x9f"),
    FUZZ_TOKEN("\"a\":1"), FUZZ_TOKEN("[[[[[[[[")};

int main(int argc, char **argv) {
  if (fuzz_replay_args(argc, argv)) return 0;
  const size_t n_seeds = sizeof seeds / sizeof *seeds;
  long runs = 0;
  for (size_t s = 0; s < n_seeds; s++)
    runs += fuzz_mutation_loop((const uint8_t *)seeds[s], strlen(seeds[s]), 20000, 500, tokens,
                               sizeof tokens / sizeof *tokens);
  printf("ok - fuzz_json: %zu seeds and %ld mutated inputs parse and write back, or fail "
         "cleanly\n",
         n_seeds, runs);
  return 0;
}
#endif
