/* test_envelope.c — kinds, the envelope's setters and deep copies, and the ids given to
 * delivered messages (host/envelope.c). */
#include <string.h>

#include "envelope.h"
#include "ids.h"
#include "unit.h"

static void test_kinds_round_trip_and_refuse_others(void) {
  mb_kind k;
  for (int i = MB_KIND_COMMAND; i <= MB_KIND_MESSAGE; i++)
    CHECK(mb_kind_parse(mb_kind_name((mb_kind)i), &k) == MB_OK && k == (mb_kind)i);
  CHECK(mb_kind_parse("Command", &k) == MB_EINVAL);
  CHECK(mb_kind_parse("", &k) == MB_EINVAL);
  CHECK(mb_kind_parse(NULL, &k) == MB_EINVAL);
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

static void test_foreign_ids_are_replaced_and_recorded(void) {
  mb_envelope e;
  mb_envelope_init(&e);
  const char *uuid = "0192f0c4-8a51-7cc4-9d3e-5b7a4c2e1f00";
  CHECK(mb_envelope_take_id(&e, uuid, strlen(uuid)) == MB_OK);
  CHECK(strcmp(e.id, uuid) == 0 && mb_headers_get(&e.headers, MB_H_FOREIGN_ID) == NULL);
  CHECK(mb_envelope_take_id(&e, NULL, 0) == MB_OK);
  CHECK(mb_id_valid(e.id) && strcmp(mb_headers_get(&e.headers, MB_H_FOREIGN_ID), "") == 0);
  CHECK(mb_envelope_take_id(&e, "order-17", 8) == MB_OK);
  CHECK(mb_id_valid(e.id) &&
        strcmp(mb_headers_get(&e.headers, MB_H_FOREIGN_ID), "order-17") == 0);
  char nul_inside[MB_ID_LEN];
  memcpy(nul_inside, uuid, MB_ID_LEN);
  nul_inside[3] = '\0';
  CHECK(mb_envelope_take_id(&e, nul_inside, MB_ID_LEN) == MB_OK && mb_id_valid(e.id));
  CHECK(strcmp(mb_headers_get(&e.headers, MB_H_FOREIGN_ID), "019") == 0);
  mb_envelope_free(&e);
}

int main(void) {
  RUN(test_kinds_round_trip_and_refuse_others);
  RUN(test_envelope_setters_copy_and_body_keeps_its_length);
  RUN(test_envelope_copy_is_deep_and_kind_comes_from_the_header);
  RUN(test_foreign_ids_are_replaced_and_recorded);
  return unit_done();
}
