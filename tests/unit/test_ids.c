/* test_ids.c — UUIDv7 ids and their check (host/ids.c). */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ids.h"
#include "unit.h"

static void test_uuidv7_has_the_rfc_9562_layout(void) {
  char id[MB_ID_LEN + 1];
  mb_uuidv7(id);
  CHECK(strlen(id) == MB_ID_LEN);
  CHECK(id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-');
  CHECK(id[14] == '7');                  /* version */
  CHECK(strchr("89ab", id[19]) != NULL); /* variant 10xx */
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

int main(void) {
  RUN(test_uuidv7_has_the_rfc_9562_layout);
  RUN(test_uuidv7_carries_the_time_in_ms);
  RUN(test_uuidv7_ids_are_unique_and_increasing);
  RUN(test_id_valid_refuses_what_is_not_a_uuid);
  return unit_done();
}
