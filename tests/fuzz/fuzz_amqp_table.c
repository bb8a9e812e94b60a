/* fuzz_amqp_table.c — fuzz target for the AMQP side of the envelope decoder: basic
 * properties and their header table as rabbitmq-c decodes them off the wire
 * (amqp_decode_properties), handed to mb_amqp_delivery_from_props, the function that reads
 * what any AMQP client may send; then, as parking and auditing do, built back into
 * properties (mb_amqp_props_build) and encoded for a publish.
 *
 * Input: byte 0 picks how rabbitmq-c handed the properties over (bit 0: redelivered;
 * bit 1: through a pool copy, as basic.get / amqp_read_message does, where an empty string
 * comes back with a NULL pointer); the rest is the encoded property list of a content
 * header frame (flags, then the fields). Inputs over frame_max (131072) are skipped: the
 * broker never sends them.
 *
 * Properties checked (ASan/UBSan catch the rest):
 *  - decoding never fails except for lack of memory, and the delivery count is >= 1;
 *  - a delivery without a problem has a UUID id (a missing or foreign id is replaced:
 *    DESIGN §4, mb_envelope_take_id), header keys that pass mb_header_key_problem, no key
 *    twice and none of the broker's x- keys;
 *  - it can be built back into properties without crashing (poison is parked, so copied,
 *    too), and what encodes of a clean one decodes again to the same id, type and headers.
 *
 * With libFuzzer:  clang -fsanitize=fuzzer,address,undefined -Ihost -Ibindings \
 *                    tests/fuzz/fuzz_amqp_table.c host/transport/rabbitmq_wire.c \
 *                    host/envelope.c host/headers.c host/ids.c host/clock.c \
 *                    host/status.c host/transport.c -lrabbitmq
 * Without it (make test does this): built with -DMB_FUZZ_STANDALONE, the program replays
 * the files named on its command line, or with none runs the seeds below and a fixed-seed
 * mutation loop over them, and prints one TAP line. */
#include <amqp.h>
#include <amqp_framing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "ids.h"
#include "transport.h"
#include "transport/rabbitmq_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FRAME_MAX 131072

#ifdef MB_FUZZ_STANDALONE
/* Standalone, each property that breaks is reported once and the run goes on (a crash
 * still ends it: ASan reports where). */
static const char *failed[16];
static int n_failed;
static void fail(const char *why) {
  for (int i = 0; i < n_failed; i++)
    if (failed[i] == why) return;
  if (n_failed < 16) failed[n_failed++] = why;
  printf("not ok - fuzz_amqp_table: %s\n", why);
  fflush(stdout);
}
#else
static void fail(const char *why) {
  fprintf(stderr, "fuzz_amqp_table: %s\n", why);
  abort();
}
#endif

/* An empty string as amqp_pool_alloc(pool, 0) gives it: a NULL pointer. */
static void null_if_empty(amqp_bytes_t *b) {
  if (b->len == 0) b->bytes = NULL;
}

static void pool_copy(amqp_basic_properties_t *p, amqp_pool_t *pool) {
  null_if_empty(&p->message_id);
  null_if_empty(&p->type);
  null_if_empty(&p->correlation_id);
  null_if_empty(&p->reply_to);
  null_if_empty(&p->content_type);
  amqp_table_t copy;
  if ((p->_flags & AMQP_BASIC_HEADERS_FLAG) && amqp_table_clone(&p->headers, &copy, pool) == 0)
    p->headers = copy;
  for (int i = 0; i < p->headers.num_entries; i++) {
    amqp_table_entry_t *e = &p->headers.entries[i];
    null_if_empty(&e->key);
    if (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES)
      null_if_empty(&e->value.value.bytes);
  }
}

static mb_delivery *decode(const amqp_basic_properties_t *p, int redelivered) {
  mb_delivery *d = calloc(1, sizeof *d);
  if (d == NULL) abort();
  mb_envelope_init(&d->env);
  if (mb_amqp_delivery_from_props(d, p, redelivered) != MB_OK) fail("from_props failed");
  if (d->delivery_count < 1) fail("a delivery count below 1");
  return d;
}

/* A delivery without a problem is one the pipeline may handle, park or audit as it is. */
static void check_clean(const mb_delivery *d) {
  if (!mb_id_valid(d->env.id)) fail("a delivery without a problem has no UUID id");
  const mb_headers *h = &d->env.headers;
  for (size_t i = 0; i < h->len; i++) {
    if (mb_header_key_problem(h->items[i].key, 1)) fail("a bad header key got through");
    if (strncmp(h->items[i].key, "x-", 2) == 0) fail("a broker x- header got through");
    for (size_t j = 0; j < i; j++)
      if (strcmp(h->items[i].key, h->items[j].key) == 0) fail("a header key got through twice");
  }
}

static int same_string(const char *a, const char *b) {
  return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0) ||
         (a == NULL && b && b[0] == '\0') || (b == NULL && a && a[0] == '\0');
}

static void check_same(const mb_delivery *a, const mb_delivery *b) {
  if (b->problem) fail("a copy the bus built does not decode");
  if (strcmp(a->env.id, b->env.id) != 0) fail("the id changed in a copy");
  if (!same_string(a->env.type, b->env.type)) fail("the type changed in a copy");
  if (a->env.headers.len != b->env.headers.len) fail("headers were lost or added in a copy");
  for (size_t i = 0; i < a->env.headers.len; i++) {
    const char *v = mb_headers_get(&b->env.headers, a->env.headers.items[i].key);
    if (v == NULL || strcmp(v, a->env.headers.items[i].value) != 0)
      fail("a header changed in a copy");
  }
}

/* Builds d back into properties (what parking and auditing do), encodes them as a publish
 * would and, for a delivery without a problem, decodes them again. A copy that does not
 * fit a frame is the caller's to park. */
static void round_trip(const mb_delivery *d) {
  mb_amqp_props props;
  mb_err err;
  if (mb_amqp_props_build(&props, &d->env, -1, &err) != MB_OK) {
    if (err.msg[0] == '\0') fail("building properties failed without a reason");
    return;
  }
  static uint8_t buf[FRAME_MAX];
  int n = amqp_encode_properties(AMQP_BASIC_CLASS, &props.p, (amqp_bytes_t){sizeof buf, buf});
  mb_amqp_props_free(&props);
  if (n < 0 || d->problem) return;
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_basic_properties_t *again = NULL;
  if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, (amqp_bytes_t){(size_t)n, buf},
                             (void **)&again) != 0)
    fail("properties the bus encoded do not decode");
  mb_delivery *d2 = decode(again, 0);
  check_same(d, d2);
  mb_delivery_free(d2);
  empty_amqp_pool(&pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > FRAME_MAX) return 0;
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_basic_properties_t *p = NULL;
  uint8_t *copy = malloc(size - 1 ? size - 1 : 1); /* exact size: ASan sees reads past it */
  if (copy == NULL) abort();
  memcpy(copy, data + 1, size - 1);
  if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, (amqp_bytes_t){size - 1, copy},
                             (void **)&p) == 0) {
    if (data[0] & 2) pool_copy(p, &pool);
    mb_delivery *d = decode(p, data[0] & 1);
    if (d->problem == NULL) check_clean(d);
    round_trip(d); /* a delivery with a problem is parked: copied too */
    mb_delivery_free(d);
  }
  free(copy);
  empty_amqp_pool(&pool);
  return 0;
}

#ifdef MB_FUZZ_STANDALONE
#include "fuzz.h"

#define CAP 8192

static amqp_table_entry_t entries[400];
static amqp_field_value_t items[4];

static amqp_table_entry_t string_entry(const char *key, const char *value) {
  amqp_table_entry_t e = {.key = amqp_cstring_bytes(key)};
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes(value);
  return e;
}

/* Seed s as a property list (0 once there are no more). */
static int seed_props(int s, amqp_basic_properties_t *p) {
  static char keys[300][16];
  memset(p, 0, sizeof *p);
  int n = 0;
  p->_flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG;
  p->message_id = amqp_cstring_bytes("01900000-0000-7000-8000-000000000001");
  p->type = amqp_cstring_bytes("h.Do");
  entries[n++] = string_entry("moonbus.kind", "command");
  switch (s) {
  case 0: p->_flags = 0; break;                      /* bare */
  case 1: p->_flags = AMQP_BASIC_TYPE_FLAG; break;   /* a type, nothing else */
  case 2: p->_flags &= ~AMQP_BASIC_TYPE_FLAG; break; /* an id, no type */
  case 3:
    p->message_id = amqp_cstring_bytes("");
    p->type = amqp_cstring_bytes("");
    break;
  case 4: p->message_id = amqp_cstring_bytes("not-a-uuid"); break;
  case 5:
    entries[n++] = string_entry("tenant", "a");
    entries[n++] = string_entry("tenant", "b");
    break;
  case 6:
    entries[n].key = amqp_cstring_bytes("count");
    entries[n].value.kind = AMQP_FIELD_KIND_I32;
    entries[n++].value.value.i32 = 42;
    entries[n].key = amqp_cstring_bytes("x-delivery-count");
    entries[n].value.kind = AMQP_FIELD_KIND_I64;
    entries[n++].value.value.i64 = 3;
    break;
  case 7:
    items[0].kind = AMQP_FIELD_KIND_UTF8;
    items[0].value.bytes = amqp_cstring_bytes("x");
    items[1].kind = AMQP_FIELD_KIND_TABLE;
    items[1].value.table = (amqp_table_t){1, &entries[399]};
    entries[399] = string_entry("inner", "v");
    entries[n].key = amqp_cstring_bytes("x-death");
    entries[n].value.kind = AMQP_FIELD_KIND_ARRAY;
    entries[n++].value.value.array = (amqp_array_t){2, items};
    break;
  case 8:
    for (int i = 0; i < 300; i++) {
      snprintf(keys[i], sizeof keys[i], "k%d", i);
      entries[n++] = string_entry(keys[i], "");
    }
    break;
  case 9:
    p->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
                 AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_EXPIRATION_FLAG;
    p->correlation_id = amqp_cstring_bytes("01900000-0000-7000-8000-000000000002");
    p->reply_to = amqp_cstring_bytes("amq.rabbitmq.reply-to.g1h2AA");
    p->content_type = amqp_cstring_bytes("application/json");
    p->delivery_mode = 2;
    p->expiration = amqp_cstring_bytes("60000");
    entries[n++] =
        string_entry("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    break;
  case 10:
    entries[n++] = string_entry("bad key", "v");
    entries[n++] = string_entry("", "v");
    break;
  case 11: p->type = amqp_cstring_bytes("h.Do\n2020-01-01T00:00:00Z error forged"); break;
  default: return 0;
  }
  p->headers = (amqp_table_t){n, entries};
  return 1;
}

/* One random edit of buf (len < cap) past byte 0: flip, delete, insert or overwrite a
 * field tag; byte 0 (the mode) changes now and then. */
static size_t mutate(uint8_t *buf, size_t len, size_t cap) {
  static const uint8_t tags[] = {'S', 'x', 'F', 'A', 'I', 'l', 't', 'V', 'D', 'T', 'b', 'B'};
  uint32_t r = fuzz_random();
  size_t at = len > 1 ? 1 + fuzz_random() % (len - 1) : 1;
  switch (r % 5) {
  case 0:
    if (len > 1) buf[at] ^= (uint8_t)(1u << (fuzz_random() % 8));
    return len;
  case 1:
    if (len > 1) memmove(buf + at, buf + at + 1, len - at - 1);
    return len > 1 ? len - 1 : len;
  case 2:
    if (len + 1 >= cap) return len;
    memmove(buf + at + 1, buf + at, len - at);
    buf[at] = (uint8_t)fuzz_random();
    return len + 1;
  case 3:
    if (len > 1) buf[at] = tags[fuzz_random() % sizeof tags];
    return len;
  default: buf[0] = (uint8_t)(fuzz_random() % 4); return len;
  }
}

int main(int argc, char **argv) {
  if (fuzz_replay_args(argc, argv)) return 0;
  static uint8_t seed[CAP], buf[CAP];
  long runs = 0;
  int seeds = 0;
  amqp_basic_properties_t p;
  for (int s = 0; seed_props(s, &p); s++, seeds++) {
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, &p, (amqp_bytes_t){CAP - 1, seed + 1});
    if (n < 0) fail("a seed does not encode");
    size_t seed_len = (size_t)n + 1, len;
    for (int mode = 0; mode < 4; mode++) { /* each seed as it is, in every mode */
      seed[0] = (uint8_t)mode;
      LLVMFuzzerTestOneInput(seed, seed_len);
    }
    memcpy(buf, seed, len = seed_len);
    for (int i = 0; i < 10000; i++, runs++) {
      len = mutate(buf, len, sizeof buf);
      LLVMFuzzerTestOneInput(buf, len);
      if (i % 300 == 299) memcpy(buf, seed, len = seed_len); /* back to the seed now and then */
    }
  }
  if (n_failed) return 1;
  printf("ok - fuzz_amqp_table: %d seeds in 4 modes and %ld mutated property lists decode, "
         "build and encode again cleanly\n",
         seeds, runs);
  return 0;
}
#endif
