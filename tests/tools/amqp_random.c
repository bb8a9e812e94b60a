/* amqp_random.c — a hostile foreign sender for the system tests: publishes to one RabbitMQ
 * queue what a plain AMQP client, the management UI or a broken program may send, with
 * rabbitmq-c directly (nothing of moonbus checks it).
 *
 *   amqp_random URL QUEUE case NAME N TYPE MAX_BODY
 *       one message of a named kind (see cases[] below); where its body is good JSON it is
 *       {"n":N}; TYPE is the endpoint's known command type; MAX_BODY its max_body.
 *   amqp_random URL QUEUE random SEED COUNT TYPE MAX_BODY GOOD_FILE
 *       COUNT messages with random properties, header tables and bodies (fixed SEED); the
 *       n of every message it expects an endpoint to handle goes to GOOD_FILE, one a line.
 *
 * Every publish waits for the broker's confirm; a message the broker or rabbitmq-c refuses
 * is counted as not sent (the connection is made again). The last line on stdout is
 * "sent S good G refused R". Exit 0 unless the broker cannot be reached at all.
 * Never: sends an expiration (a message that expires would leave the count). */
#include <amqp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "transport/rabbitmq_conn.h"

/* --- a bump arena, reset for every message ------------------------------------------- */

#define ARENA_SIZE (4u << 20)
static char *arena;
static size_t arena_used;

static void *take(size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (arena_used + n > ARENA_SIZE) {
    fprintf(stderr, "amqp_random: arena full\n");
    exit(1);
  }
  void *p = arena + arena_used;
  arena_used += n;
  return p;
}

static amqp_bytes_t bytes_n(const char *s, size_t n) {
  char *copy = take(n + 1);
  memcpy(copy, s, n);
  copy[n] = '\0';
  return (amqp_bytes_t){n, copy};
}

static amqp_bytes_t bytes(const char *s) { return bytes_n(s, strlen(s)); }

static amqp_bytes_t filled(char c, size_t n) {
  char *p = take(n + 1);
  memset(p, c, n);
  p[n] = '\0';
  return (amqp_bytes_t){n, p};
}

/* --- randomness (xorshift64*) --------------------------------------------------------- */

static uint64_t rng_state = 1;
static uint32_t rnd(uint32_t below) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 33) % (below ? below : 1);
}

/* --- one message ----------------------------------------------------------------------- */

#define MAX_ENTRIES 300
typedef struct message {
  amqp_basic_properties_t p;
  amqp_table_entry_t entries[MAX_ENTRIES];
  amqp_bytes_t body;
  int good; /* the endpoint should handle it */
} message;

static const char *known_type;
static size_t max_body;

static void set_id(message *m, amqp_bytes_t id) {
  m->p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
  m->p.message_id = id;
}

static void set_type(message *m, amqp_bytes_t type) {
  m->p._flags |= AMQP_BASIC_TYPE_FLAG;
  m->p.type = type;
}

static amqp_bytes_t uuid_for(long n) {
  char id[48];
  snprintf(id, sizeof id, "01900000-0000-7000-8000-%012lx", (unsigned long)n & 0xffffffffffffUL);
  return bytes(id);
}

static amqp_table_entry_t *add_entry(message *m, amqp_bytes_t key) {
  if (m->p.headers.num_entries == MAX_ENTRIES) return NULL;
  m->p._flags |= AMQP_BASIC_HEADERS_FLAG;
  m->p.headers.entries = m->entries;
  amqp_table_entry_t *e = &m->entries[m->p.headers.num_entries++];
  memset(e, 0, sizeof *e);
  e->key = key;
  return e;
}

static void add_string(message *m, const char *key, amqp_bytes_t value) {
  amqp_table_entry_t *e = add_entry(m, bytes(key));
  if (e == NULL) return;
  e->value.kind = AMQP_FIELD_KIND_UTF8;
  e->value.value.bytes = value;
}

static void add_kind(message *m) { add_string(m, "moonbus.kind", bytes("command")); }

static amqp_bytes_t good_body(long n) {
  char b[64];
  snprintf(b, sizeof b, "{\"n\":%ld}", n);
  return bytes(b);
}

/* A well-formed moonbus command: id, type, kind, JSON body. */
static void proper(message *m, long n) {
  set_id(m, uuid_for(n));
  set_type(m, bytes(known_type));
  m->p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  m->p.content_type = bytes("application/json");
  m->p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  add_kind(m);
  m->body = good_body(n);
}

/* --- the named cases ------------------------------------------------------------------- */

static void case_bare(message *m, long n) { m->body = good_body(n); }

static void case_typed(message *m, long n) {
  set_type(m, bytes(known_type));
  m->body = good_body(n);
}

static void case_oversize(message *m, long n) {
  proper(m, n);
  char head[64];
  int k = snprintf(head, sizeof head, "{\"n\":%ld,\"pad\":\"", n);
  size_t len = max_body * 3 + 1000;
  char *b = take(len + 1);
  memcpy(b, head, (size_t)k);
  memset(b + k, 'x', len - (size_t)k - 2);
  memcpy(b + len - 2, "\"}", 3);
  m->body = (amqp_bytes_t){len, b};
}

/* About 128 KiB of headers: 32 values of 4 075 bytes, which leave the content header frame
 * 81 bytes under frame_max (131072): any header the bus adds to a copy (audit, error queue)
 * or the broker adds on redelivery makes it too large. */
static void case_frame(message *m, long n) {
  proper(m, n);
  for (int i = 0; i < 32; i++) {
    char key[16];
    snprintf(key, sizeof key, "filler-%02d", i);
    add_string(m, key, filled('f', 4075));
  }
}

static void case_dup(message *m, long n) {
  proper(m, n);
  add_string(m, "tenant", bytes("acme"));
  add_string(m, "tenant", bytes("evil"));
}

static void case_wrongtyped(message *m, long n) {
  proper(m, n);
  amqp_table_entry_t *e = add_entry(m, bytes("count"));
  e->value.kind = AMQP_FIELD_KIND_I32;
  e->value.value.i32 = 42;
  amqp_table_entry_t *inner = take(sizeof *inner);
  inner->key = bytes("a");
  inner->value.kind = AMQP_FIELD_KIND_UTF8;
  inner->value.value.bytes = bytes("b");
  e = add_entry(m, bytes("nested"));
  e->value.kind = AMQP_FIELD_KIND_TABLE;
  e->value.value.table = (amqp_table_t){1, inner};
  e = add_entry(m, bytes("flag"));
  e->value.kind = AMQP_FIELD_KIND_BOOLEAN;
  e->value.value.boolean = 1;
}

static void case_nonutf8(message *m, long n) {
  proper(m, n);
  m->body = bytes_n("{\"n\":\"\xff\xfe\xc3\x28\"}", 12);
}

static void case_nonjson(message *m, long n) {
  proper(m, n);
  m->body = bytes("this is not JSON at all");
}

static void case_array(message *m, long n) {
  proper(m, n);
  m->body = bytes("[1,2,3]");
}

/* A type with a newline and what looks like a log line of its own after it. */
static void case_newline(message *m, long n) {
  proper(m, n);
  set_type(m, bytes("h.Do\n2020-01-01T00:00:00.000000Z error [h] FORGED by a message type"));
}

static const struct {
  const char *name;
  void (*build)(message *m, long n);
} cases[] = {
    {"bare", case_bare},       {"typed", case_typed},     {"oversize", case_oversize},
    {"frame", case_frame},     {"dup", case_dup},         {"wrongtyped", case_wrongtyped},
    {"nonutf8", case_nonutf8}, {"nonjson", case_nonjson}, {"array", case_array},
    {"newline", case_newline},
};

/* --- random messages -------------------------------------------------------------------- */

static int random_id(message *m, long n) {
  switch (rnd(20)) {
  case 0: return 0; /* none */
  case 1: set_id(m, bytes("")); return 0;
  case 2: set_id(m, bytes("not-a-uuid")); return 0;
  case 3: set_id(m, filled('7', 200)); return 0;
  case 4: set_id(m, bytes_n("0190\0000000", 9)); return 0;
  default: set_id(m, uuid_for(n)); return 1;
  }
}

static int random_type(message *m) {
  static const char *const odd[] = {"h.Unknown", "", "h.Do\nFORGED line from a type", "h.Do ",
                                    "h.\tDo"};
  switch (rnd(20)) {
  case 0: return 0;
  case 1: set_type(m, bytes(odd[rnd(5)])); return 0;
  case 2: set_type(m, bytes_n("h.D\0o", 5)); return 0;
  case 3: set_type(m, filled('t', 255)); return 0;
  default: set_type(m, bytes(known_type)); return 1;
  }
}

static void random_strings(message *m) {
  if (rnd(4) == 0) {
    m->p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    m->p.correlation_id = rnd(3) ? bytes("corr-1") : bytes_n("c\0rr", 4);
  }
  if (rnd(4) == 0) {
    m->p._flags |= AMQP_BASIC_REPLY_TO_FLAG;
    m->p.reply_to = rnd(2) ? bytes("nobody-listens") : bytes("");
  }
  if (rnd(2)) {
    m->p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
    m->p.content_type = rnd(2) ? bytes("application/json") : bytes("text/plain");
  }
  if (rnd(2)) {
    m->p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    m->p.delivery_mode = (uint8_t)(1 + rnd(2));
    m->p.timestamp = rnd(2) ? 0 : UINT64_MAX;
  }
}

/* A value that is not a string: 0 for the kinds moonbus must refuse. */
static void odd_value(amqp_field_value_t *v, int depth) {
  switch (rnd(depth < 3 ? 9 : 7)) {
  case 0:
    v->kind = AMQP_FIELD_KIND_I64;
    v->value.i64 = (int64_t)rnd(1u << 31) - (1 << 30);
    break;
  case 1:
    v->kind = AMQP_FIELD_KIND_U8;
    v->value.u8 = (uint8_t)rnd(256);
    break;
  case 2:
    v->kind = AMQP_FIELD_KIND_F64;
    v->value.f64 = 1.5;
    break;
  case 3:
    v->kind = AMQP_FIELD_KIND_BOOLEAN;
    v->value.boolean = 0;
    break;
  case 4: v->kind = AMQP_FIELD_KIND_VOID; break;
  case 5:
    v->kind = AMQP_FIELD_KIND_TIMESTAMP;
    v->value.u64 = 1;
    break;
  case 6:
    v->kind = AMQP_FIELD_KIND_DECIMAL;
    v->value.decimal = (amqp_decimal_t){2, 314};
    break;
  case 7: {
    amqp_table_entry_t *e = take(sizeof *e);
    e->key = bytes("inner");
    odd_value(&e->value, depth + 1);
    v->kind = AMQP_FIELD_KIND_TABLE;
    v->value.table = (amqp_table_t){1, e};
    break;
  }
  default: {
    amqp_field_value_t *items = take(2 * sizeof *items);
    odd_value(&items[0], depth + 1);
    items[1].kind = AMQP_FIELD_KIND_UTF8;
    items[1].value.bytes = bytes("s");
    v->kind = AMQP_FIELD_KIND_ARRAY;
    v->value.array = (amqp_array_t){2, items};
  }
  }
}

/* One random header: a key from a small set (so that keys repeat), a value of any kind. */
static void random_header(message *m) {
  static const char *const keys[] = {"tenant",
                                     "k1",
                                     "k2",
                                     "traceparent",
                                     "moonbus.kind",
                                     "bad key",
                                     "",
                                     "caf\xc3\xa9",
                                     "x-delivery-count",
                                     "x-custom",
                                     "moonbus.foreign_id"};
  int k = (int)rnd(sizeof keys / sizeof *keys);
  amqp_bytes_t key = rnd(40) ? bytes(keys[k]) : filled('k', 255);
  amqp_table_entry_t *e = add_entry(m, key);
  if (e == NULL) return;
  switch (rnd(8)) {
  case 0: odd_value(&e->value, 0); return;
  case 1:
    e->value.kind = AMQP_FIELD_KIND_BYTES;
    e->value.value.bytes = bytes_n("v\0v", 3);
    return;
  case 2:
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = filled('v', rnd(rnd(20) ? 300 : 9000));
    return;
  default:
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = bytes("value");
    break;
  }
  if (k == 4) e->value.value.bytes = bytes(rnd(4) ? "command" : "event");
}

/* Headers: none, an empty table, only the kind, or a random table. */
static void random_headers(message *m) {
  switch (rnd(10)) {
  case 0: return;
  case 1: m->p._flags |= AMQP_BASIC_HEADERS_FLAG; return;
  case 2:
  case 3:
  case 4:
  case 5: add_kind(m); return;
  default: break;
  }
  if (rnd(4)) add_kind(m);
  int n = 1 + (int)rnd(rnd(10) ? 6 : 280);
  for (int i = 0; i < n; i++) random_header(m);
}

static int is_key(amqp_bytes_t b, const char *key) {
  return b.len == strlen(key) && memcmp(b.bytes, key, b.len) == 0;
}

/* 1 if the header table is one every moonbus must accept: string values without NUL
 * under plain keys (tenant, k1, k2) and exactly one moonbus.kind = command. */
static int table_acceptable(const message *m) {
  int kinds = 0;
  size_t total = 0;
  const amqp_table_t *t = &m->p.headers;
  for (int i = 0; i < t->num_entries; i++) {
    const amqp_table_entry_t *e = &t->entries[i];
    if (e->value.kind != AMQP_FIELD_KIND_UTF8 ||
        memchr(e->value.value.bytes.bytes, 0, e->value.value.bytes.len))
      return 0;
    for (int j = 0; j < i; j++)
      if (e->key.len == t->entries[j].key.len &&
          memcmp(e->key.bytes, t->entries[j].key.bytes, e->key.len) == 0)
        return 0;
    total += e->key.len + e->value.value.bytes.len;
    if (is_key(e->key, "moonbus.kind") && is_key(e->value.value.bytes, "command")) kinds++;
    else if (!is_key(e->key, "tenant") && !is_key(e->key, "k1") && !is_key(e->key, "k2"))
      return 0;
  }
  return kinds == 1 && total <= 16384;
}

static int random_body(message *m, long n) {
  switch (rnd(20)) {
  case 0: m->body = bytes("not json"); return 0;
  case 1: m->body = bytes_n("{\"n\":\"\xff\xfe\"}", 11); return 0;
  case 2: m->body = bytes("[1]"); return 0;
  case 3: m->body = bytes(""); return 0;
  case 4: m->body = bytes("{\"n\":\"x\"}"); return 0;
  case 5: m->body = filled(' ', max_body + 1 + rnd(1000)); return 0;
  default: m->body = good_body(n); return 1;
  }
}

static void random_message(message *m, long n) {
  int good = random_id(m, n);
  good &= random_type(m);
  random_strings(m);
  if ((m->p._flags & AMQP_BASIC_CORRELATION_ID_FLAG) &&
      memchr(m->p.correlation_id.bytes, 0, m->p.correlation_id.len))
    good = 0;
  random_headers(m);
  good &= table_acceptable(m);
  good &= random_body(m, n);
  m->good = good;
}

/* --- publishing -------------------------------------------------------------------------- */

static amqp_connection_state_t conn;
static mb_amqp_url url;

static int open_channel(void) {
  mb_err err;
  if (mb_amqp_connect(&url, 0, "amqp_random", &conn, &err) != MB_OK) {
    fprintf(stderr, "amqp_random: %s\n", err.msg);
    return 1;
  }
  amqp_channel_open(conn, 1);
  if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) return 1;
  amqp_confirm_select(conn, 1);
  return amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL ? 0 : 1;
}

/* 0 once the broker confirmed m, 1 if it was refused (the connection is then made again). */
static int publish(const char *queue, const message *m) {
  if (amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &m->p,
                         m->body) == AMQP_STATUS_OK) {
    amqp_frame_t f;
    struct timeval patience = {10, 0}; /* a confirm that does not come is a refusal */
    while (amqp_simple_wait_frame_noblock(conn, &f, &patience) == AMQP_STATUS_OK) {
      if (f.frame_type != AMQP_FRAME_METHOD) continue;
      if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) return 0;
      if (f.payload.method.id == AMQP_BASIC_NACK_METHOD ||
          f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
          f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)
        break;
    }
  }
  mb_amqp_disconnect(conn);
  if (open_channel() != 0) exit(1);
  return 1;
}

static long sent, good, refused;

static void send_one(const char *queue, message *m, FILE *good_file, long n) {
  if (publish(queue, m) != 0) {
    refused++;
    return;
  }
  sent++;
  if (m->good) good++;
  if (m->good && good_file) fprintf(good_file, "%ld\n", n);
}

static int run_case(const char *queue, const char *name, long n) {
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    if (strcmp(cases[i].name, name) != 0) continue;
    message *m = take(sizeof *m);
    memset(m, 0, sizeof *m);
    cases[i].build(m, n);
    send_one(queue, m, NULL, n);
    return 0;
  }
  fprintf(stderr, "amqp_random: no case named '%s'\n", name);
  return 2;
}

static int run_random(const char *queue, uint64_t seed, long count, const char *good_path) {
  FILE *good_file = fopen(good_path, "w");
  if (good_file == NULL) return 1;
  printf("# amqp_random: seed %llu, %ld messages\n", (unsigned long long)seed, count);
  rng_state = seed * 2654435761ULL + 1;
  for (long n = 1; n <= count; n++) {
    arena_used = 0;
    message *m = take(sizeof *m);
    memset(m, 0, sizeof *m);
    random_message(m, n);
    send_one(queue, m, good_file, n);
  }
  fclose(good_file);
  return 0;
}

int main(int argc, char **argv) {
  int is_case = argc == 8 && strcmp(argv[3], "case") == 0;
  int is_random = argc == 9 && strcmp(argv[3], "random") == 0;
  if (!is_case && !is_random) {
    fprintf(stderr, "usage: amqp_random URL QUEUE case NAME N TYPE MAX_BODY\n"
                    "       amqp_random URL QUEUE random SEED COUNT TYPE MAX_BODY GOOD_FILE\n");
    return 2;
  }
  known_type = argv[6];
  max_body = strtoul(argv[7], NULL, 10);
  mb_err err;
  if ((arena = malloc(ARENA_SIZE)) == NULL) return 1;
  if (mb_amqp_url_parse(argv[1], &url, &err) != MB_OK) {
    fprintf(stderr, "amqp_random: %s\n", err.msg);
    return 1;
  }
  if (open_channel() != 0) return 1;
  int rc = is_case ? run_case(argv[2], argv[4], atol(argv[5]))
                   : run_random(argv[2], strtoull(argv[4], NULL, 10), atol(argv[5]), argv[8]);
  printf("sent %ld good %ld refused %ld\n", sent, good, refused);
  mb_amqp_disconnect(conn);
  mb_amqp_url_free(&url);
  free(arena);
  return rc;
}
