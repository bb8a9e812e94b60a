/* test_rabbitmq_wire.c — the envelope as AMQP properties, both ways, without a broker:
 * header keys rabbitmq-c would mis-encode are refused, delivered header tables that
 * moonbus cannot trust become a problem (never a crash), the delivery count comes from
 * x-delivery-count, and the delay routing picks the right levels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ids.h"
#include "transport/rabbitmq_wire.h"
#include "unit.h"

static mb_envelope envelope(void) {
  mb_envelope e;
  mb_envelope_init(&e);
  strcpy(e.id, "01900000-0000-7000-8000-000000000001");
  mb_envelope_set_type(&e, "t.Do");
  mb_headers_set(&e.headers, "moonbus.kind", "command");
  return e;
}

static void test_properties_carry_the_envelope(void) {
  mb_envelope e = envelope();
  mb_envelope_set_correlation_id(&e, "corr");
  mb_envelope_set_reply_to(&e, "back");
  mb_amqp_props p;
  mb_err err;
  CHECK(mb_amqp_props_build(&p, &e, 1500, &err) == MB_OK);
  CHECK(p.p.delivery_mode == AMQP_DELIVERY_PERSISTENT);
  CHECK(p.p.message_id.len == 36 && memcmp(p.p.message_id.bytes, e.id, 36) == 0);
  CHECK(p.p.type.len == 4 && memcmp(p.p.type.bytes, "t.Do", 4) == 0);
  CHECK(p.p.correlation_id.len == 4 && p.p.reply_to.len == 4);
  CHECK(strcmp(p.expiration, "1500") == 0 && (p.p._flags & AMQP_BASIC_EXPIRATION_FLAG));
  CHECK(p.p.headers.num_entries == 1 &&
        p.p.headers.entries[0].value.kind == AMQP_FIELD_KIND_UTF8);
  mb_amqp_props_free(&p);
  CHECK(mb_amqp_props_build(&p, &e, -1, &err) == MB_OK);
  CHECK(!(p.p._flags & AMQP_BASIC_EXPIRATION_FLAG));
  mb_amqp_props_free(&p);
  mb_envelope_free(&e);
}

/* rabbitmq-c writes a key's length in one byte: a 256-byte key would forge headers. */
static void test_header_keys_rabbitmq_c_would_mangle_are_refused(void) {
  mb_envelope e = envelope();
  char key[300];
  memset(key, 'k', 256);
  key[256] = '\0';
  mb_headers_set(&e.headers, key, "v");
  mb_amqp_props p;
  mb_err err;
  CHECK(mb_amqp_props_build(&p, &e, -1, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "kkkk") != NULL);
  mb_headers_remove(&e.headers, key);
  mb_headers_set(&e.headers, "has space", "v");
  CHECK(mb_amqp_props_build(&p, &e, -1, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "has space") != NULL);
  mb_envelope_free(&e);
}

static amqp_table_entry_t text(const char *k, const char *v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(k);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes(v);
  return e;
}

static mb_delivery *decode(amqp_table_entry_t *entries, int n, int redelivered) {
  amqp_basic_properties_t p = {0};
  p._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG;
  p.message_id = amqp_cstring_bytes("01900000-0000-7000-8000-000000000002");
  p.type = amqp_cstring_bytes("t.Do");
  p.headers.num_entries = n;
  p.headers.entries = entries;
  mb_delivery *d = calloc(1, sizeof *d);
  mb_envelope_init(&d->env);
  CHECK(mb_amqp_delivery_from_props(d, &p, redelivered) == MB_OK);
  return d;
}

static void test_a_delivery_becomes_an_envelope(void) {
  amqp_table_entry_t h[] = {text("moonbus.kind", "event"), text("tenant", "acme")};
  mb_delivery *d = decode(h, 2, 0);
  CHECK(d->problem == NULL);
  CHECK(strcmp(d->env.id, "01900000-0000-7000-8000-000000000002") == 0);
  CHECK(strcmp(d->env.type, "t.Do") == 0);
  CHECK(strcmp(mb_headers_get(&d->env.headers, "tenant"), "acme") == 0);
  CHECK(d->delivery_count == 1);
  mb_delivery_free(d);
}

static void test_delivery_count_comes_from_the_broker(void) {
  amqp_table_entry_t h[2] = {text("moonbus.kind", "command")};
  h[1].key = amqp_cstring_bytes("x-delivery-count");
  h[1].value.kind = AMQP_FIELD_KIND_I64;
  h[1].value.value.i64 = 3;
  mb_delivery *d = decode(h, 2, 1);
  CHECK(d->problem == NULL && d->delivery_count == 4);
  CHECK(mb_headers_get(&d->env.headers, "x-delivery-count") == NULL);
  mb_delivery_free(d);
  d = decode(h, 1, 1); /* a classic queue only says "redelivered" */
  CHECK(d->delivery_count == 2);
  mb_delivery_free(d);
}

static void test_duplicate_keys_are_a_problem(void) {
  amqp_table_entry_t h[] = {text("moonbus.kind", "command"), text("moonbus.kind", "event")};
  mb_delivery *d = decode(h, 2, 0);
  CHECK(d->problem && strstr(d->problem, "'moonbus.kind' appears twice"));
  mb_delivery_free(d);
}

static void test_non_string_and_nested_headers_are_a_problem(void) {
  amqp_table_entry_t inner[] = {text("b", "c")};
  amqp_table_entry_t h[1];
  h[0].key = amqp_cstring_bytes("a");
  h[0].value.kind = AMQP_FIELD_KIND_TABLE;
  h[0].value.value.table.num_entries = 1;
  h[0].value.value.table.entries = inner;
  mb_delivery *d = decode(h, 1, 0);
  CHECK(d->problem && strstr(d->problem, "header 'a' is not a string"));
  mb_delivery_free(d);
}

/* x-death and friends are the broker's and may nest a little; past the cap, nothing is
 * copied at all. */
static void test_tables_nested_too_deep_are_a_problem(void) {
  enum { DEPTH = 20 };
  amqp_table_entry_t levels[DEPTH];
  for (int i = 0; i < DEPTH; i++) {
    levels[i].key = amqp_cstring_bytes("x-death");
    levels[i].value.kind = AMQP_FIELD_KIND_TABLE;
    levels[i].value.value.table.num_entries = i + 1 < DEPTH ? 1 : 0;
    levels[i].value.value.table.entries = i + 1 < DEPTH ? &levels[i + 1] : NULL;
  }
  mb_delivery *d = decode(levels, 1, 0);
  CHECK(d->problem && strstr(d->problem, "nested deeper than 8"));
  mb_delivery_free(d);
  levels[2].value.value.table.num_entries = 0; /* 3 levels: what x-death really uses */
  d = decode(levels, 1, 0);
  CHECK(d->problem == NULL);
  mb_delivery_free(d);
}

static void test_a_nul_byte_in_a_value_is_a_problem(void) {
  amqp_table_entry_t h[] = {text("k", "v")};
  h[0].value.value.bytes.len = 3; /* "v\0" and one byte more */
  h[0].value.value.bytes.bytes = "v\0w";
  mb_delivery *d = decode(h, 1, 0);
  CHECK(d->problem && strstr(d->problem, "NUL"));
  mb_delivery_free(d);
}

static void test_delay_routing_uses_one_level_per_bit(void) {
  char ex[64], key[300];
  mb_err err;
  CHECK(mb_amqp_delay_route(1, "sales", ex, sizeof ex, key, sizeof key, &err) == MB_OK);
  CHECK(strcmp(ex, "moonbus.delay.00") == 0);
  CHECK(strncmp(key, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.sales", 62) == 0);
  CHECK(mb_amqp_delay_route(5, "sales", ex, sizeof ex, key, sizeof key, &err) == MB_OK);
  CHECK(strcmp(ex, "moonbus.delay.02") == 0);
  CHECK(strcmp(key + 2 * 25, "1.0.1.sales") == 0);
  CHECK(mb_amqp_delay_route(MB_AMQP_DELAY_MAX, "s", ex, sizeof ex, key, sizeof key, &err) ==
        MB_OK);
  CHECK(strcmp(ex, "moonbus.delay.27") == 0);
  CHECK(mb_amqp_delay_route(MB_AMQP_DELAY_MAX + 1, "s", ex, sizeof ex, key, sizeof key, &err) ==
        MB_EINVAL);
  CHECK(mb_amqp_delay_route(0, "s", ex, sizeof ex, key, sizeof key, &err) == MB_EINVAL);
  char long_name[256];
  memset(long_name, 'q', 250);
  long_name[250] = '\0';
  CHECK(mb_amqp_delay_route(1, long_name, ex, sizeof ex, key, sizeof key, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "too long") != NULL);
}

static void test_delay_patterns_match_their_bit(void) {
  char pattern[128];
  mb_amqp_delay_level_pattern(27, 1, pattern, sizeof pattern);
  CHECK(strcmp(pattern, "1.#") == 0);
  mb_amqp_delay_level_pattern(0, 0, pattern, sizeof pattern);
  CHECK(strncmp(pattern, "*.*.", 4) == 0 && strcmp(pattern + 2 * 27, "0.#") == 0);
  char deliver[300];
  CHECK(mb_amqp_delay_deliver_pattern("a.b", deliver, sizeof deliver) == MB_OK);
  CHECK(strlen(deliver) == 2 * 28 + 3 && strcmp(deliver + 56, "a.b") == 0);
}

/* A foreign sender's bare message: no id, no type, no headers (amqp-publish's default). */
static void test_a_bare_delivery_gets_an_id_and_no_type(void) {
  amqp_basic_properties_t p = {0};
  mb_delivery *d = calloc(1, sizeof *d);
  mb_envelope_init(&d->env);
  CHECK(mb_amqp_delivery_from_props(d, &p, 0) == MB_OK);
  CHECK(d->problem == NULL && d->env.type == NULL);
  CHECK(mb_id_valid(d->env.id));
  CHECK(strcmp(mb_headers_get(&d->env.headers, MB_H_FOREIGN_ID), "") == 0);
  mb_delivery_free(d);
  d = calloc(1, sizeof *d); /* a foreign, non-UUID id is kept beside the new one */
  mb_envelope_init(&d->env);
  p._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
  p.message_id = amqp_cstring_bytes("order-17");
  CHECK(mb_amqp_delivery_from_props(d, &p, 0) == MB_OK);
  CHECK(mb_id_valid(d->env.id));
  CHECK(strcmp(mb_headers_get(&d->env.headers, MB_H_FOREIGN_ID), "order-17") == 0);
  mb_delivery_free(d);
}

/* Its parked copy is published without a type (strlen(NULL) before). */
static void test_a_copy_without_type_is_published_without_one(void) {
  mb_envelope e = envelope();
  mb_envelope_set_type(&e, NULL);
  mb_amqp_props p;
  mb_err err;
  CHECK(mb_amqp_props_build(&p, &e, -1, &err) == MB_OK);
  CHECK(!(p.p._flags & AMQP_BASIC_TYPE_FLAG));
  mb_amqp_props_free(&p);
  mb_envelope_free(&e);
}

/* basic.publish goes out before rabbitmq-c encodes the properties: properties that would
 * not fit a frame are refused first, as a message-level error. */
static void test_properties_over_a_frame_are_refused_before_sending(void) {
  mb_envelope e = envelope();
  char *big = malloc(70000);
  memset(big, 'v', 69999);
  big[69999] = '\0';
  mb_headers_set(&e.headers, "a", big);
  mb_amqp_props p;
  mb_err err;
  CHECK(mb_amqp_props_build(&p, &e, -1, &err) == MB_OK);
  size_t one = mb_amqp_header_frame_size(&p.p);
  CHECK(one > 70000 && one < 71000);
  mb_amqp_props_free(&p);
  mb_headers_set(&e.headers, "b", big);
  CHECK(mb_amqp_props_build(&p, &e, -1, &err) == MB_ETOOBIG);
  CHECK(strstr(err.msg, "frame_max") && strstr(err.msg, e.id));
  mb_envelope_free(&e);
  free(big);
}

/* The header rules apply to what is delivered: too many or too large is a problem. */
static void test_delivered_headers_keep_the_rules(void) {
  static amqp_table_entry_t h[300];
  static char keys[300][16];
  for (int i = 0; i < 300; i++) {
    snprintf(keys[i], sizeof keys[i], "k%d", i);
    h[i] = text(keys[i], "v");
  }
  mb_delivery *d = decode(h, 257, 0);
  CHECK(d->problem && strstr(d->problem, "257 headers"));
  mb_delivery_free(d);
  d = decode(h, 256, 0);
  CHECK(d->problem == NULL);
  mb_delivery_free(d);
}

/* The header count is checked before any key is compared with the others: 60 000 one-byte
 * keys in a frame must not cost a quadratic duplicate search. */
static void test_a_table_of_60000_headers_is_refused_at_once(void) {
  enum { N = 60000 };
  static amqp_table_entry_t h[N];
  static char keys[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], sizeof keys[i], "k%d", i);
    h[i] = text(keys[i], "");
  }
  double started = mb_monotonic();
  mb_delivery *d = decode(h, N, 0);
  double took = mb_monotonic() - started;
  printf("#   60 000 AMQP headers refused in %.3f s\n", took);
  CHECK(d->problem && strstr(d->problem, "60000 headers, over the limit of 256"));
  CHECK(took < 1.0);
  mb_delivery_free(d);
}

int main(void) {
  RUN(test_properties_carry_the_envelope);
  RUN(test_header_keys_rabbitmq_c_would_mangle_are_refused);
  RUN(test_a_delivery_becomes_an_envelope);
  RUN(test_delivery_count_comes_from_the_broker);
  RUN(test_duplicate_keys_are_a_problem);
  RUN(test_non_string_and_nested_headers_are_a_problem);
  RUN(test_tables_nested_too_deep_are_a_problem);
  RUN(test_a_nul_byte_in_a_value_is_a_problem);
  RUN(test_a_bare_delivery_gets_an_id_and_no_type);
  RUN(test_a_copy_without_type_is_published_without_one);
  RUN(test_properties_over_a_frame_are_refused_before_sending);
  RUN(test_delivered_headers_keep_the_rules);
  RUN(test_a_table_of_60000_headers_is_refused_at_once);
  RUN(test_delay_routing_uses_one_level_per_bit);
  RUN(test_delay_patterns_match_their_bit);
  return unit_done();
}
