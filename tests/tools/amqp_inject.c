/* amqp_inject.c — publishes one raw message to a RabbitMQ queue, the way a broken or
 * foreign sender would, for specs and system tests: any id, type, body and headers,
 * including what moonbus itself never sends (a nested table, a duplicate key, a table
 * nested thousands of levels deep).
 *
 *   amqp_inject URL QUEUE ID TYPE BODY [key=value | --nest key | --dup key=value |
 *               --deep N | --big BYTES | --body-mb N | --count N | --reply-to Q |
 *               --correlation-id C]...
 *
 * ID or TYPE "-" leaves that property out (what amqp-publish and the management UI send);
 * --big adds headers big1, big2... holding BYTES bytes in all; --body-mb replaces BODY with
 * a JSON object of N MiB; --count publishes the message N times; --requeue-one then takes
 * the head of QUEUE once and gives it back (a quorum queue counts that delivery, and its
 * next delivery carries x-delivery-count).
 *
 * Exit 0 once the broker confirmed the message; 1 with a reason on stderr otherwise.
 * Uses rabbitmq-c directly (not the transport) so that nothing checks what it sends. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/rabbitmq_conn.h"

#define MAX_HEADERS 64

static amqp_table_entry_t entries[MAX_HEADERS];
static int n_entries;

static int fail(const char *what) {
  fprintf(stderr, "amqp_inject: %s\n", what);
  return 1;
}

static amqp_table_entry_t *next_entry(const char *key) {
  if (n_entries == MAX_HEADERS) exit(fail("too many headers"));
  amqp_table_entry_t *e = &entries[n_entries++];
  e->key = amqp_cstring_bytes(key);
  return e;
}

static void string_header(char *kv) {
  char *eq = strchr(kv, '=');
  if (eq == NULL) exit(fail("a header is key=value"));
  *eq = '\0';
  amqp_table_entry_t *e = next_entry(kv);
  e->value.kind = AMQP_FIELD_KIND_UTF8;
  e->value.value.bytes = amqp_cstring_bytes(eq + 1);
}

/* A header whose value is { b = "c" }. */
static void nested_header(const char *key) {
  static amqp_table_entry_t inner[1];
  inner[0].key = amqp_cstring_bytes("b");
  inner[0].value.kind = AMQP_FIELD_KIND_UTF8;
  inner[0].value.value.bytes = amqp_cstring_bytes("c");
  amqp_table_entry_t *e = next_entry(key);
  e->value.kind = AMQP_FIELD_KIND_TABLE;
  e->value.value.table.num_entries = 1;
  e->value.value.table.entries = inner;
}

/* A header "deep" holding tables nested depth levels. */
static void deep_header(long depth) {
  amqp_table_entry_t *levels = calloc((size_t)depth, sizeof *levels);
  if (levels == NULL) exit(fail("out of memory"));
  for (long i = 0; i < depth; i++) {
    levels[i].key = amqp_cstring_bytes("d");
    levels[i].value.kind = AMQP_FIELD_KIND_TABLE;
    levels[i].value.value.table.num_entries = i + 1 < depth ? 1 : 0;
    levels[i].value.value.table.entries = i + 1 < depth ? &levels[i + 1] : NULL;
  }
  *next_entry("deep") = levels[0];
}

/* Headers big1, big2, ... of up to 60 000 bytes each, bytes in all. */
static void big_headers(long bytes) {
  static char keys[MAX_HEADERS][16];
  for (int k = 0; bytes > 0; k++) {
    size_t n = bytes > 60000 ? 60000 : (size_t)bytes;
    char *v = malloc(n);
    if (v == NULL) exit(fail("out of memory"));
    memset(v, 'h', n);
    snprintf(keys[k % MAX_HEADERS], sizeof keys[0], "big%d", k + 1);
    amqp_table_entry_t *e = next_entry(keys[k % MAX_HEADERS]);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = (amqp_bytes_t){n, v};
    bytes -= (long)n;
  }
}

static amqp_bytes_t body;
static long count = 1;
static const char *reply_to, *correlation_id;
static int requeue_one;

/* {"pad":"xxx..."} of mb MiB. */
static void big_body(long mb) {
  size_t n = (size_t)mb << 20;
  char *b = malloc(n);
  if (b == NULL || n < 16) exit(fail("a body of at least 1 MiB"));
  memset(b, 'x', n);
  memcpy(b, "{\"pad\":\"", 8);
  memcpy(b + n - 2, "\"}", 2);
  body = (amqp_bytes_t){n, b};
}

static void parse_headers(int argc, char **argv) {
  for (int i = 6; i < argc; i++) {
    if (strcmp(argv[i], "--big") == 0 && i + 1 < argc) big_headers(atol(argv[++i]));
    else if (strcmp(argv[i], "--body-mb") == 0 && i + 1 < argc) big_body(atol(argv[++i]));
    else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) count = atol(argv[++i]);
    else if (strcmp(argv[i], "--requeue-one") == 0) requeue_one = 1;
    else if (strcmp(argv[i], "--reply-to") == 0 && i + 1 < argc) reply_to = argv[++i];
    else if (strcmp(argv[i], "--correlation-id") == 0 && i + 1 < argc) correlation_id = argv[++i];
    else if (strcmp(argv[i], "--nest") == 0 && i + 1 < argc) nested_header(argv[++i]);
    else if (strcmp(argv[i], "--dup") == 0 && i + 1 < argc) string_header(argv[++i]);
    else if (strcmp(argv[i], "--deep") == 0 && i + 1 < argc) deep_header(atol(argv[++i]));
    else string_header(argv[i]);
  }
}

static void properties(amqp_basic_properties_t *p, char **argv) {
  memset(p, 0, sizeof *p);
  p->_flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  if (strcmp(argv[3], "-") != 0) {
    p->_flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    p->message_id = amqp_cstring_bytes(argv[3]);
  }
  if (strcmp(argv[4], "-") != 0) {
    p->_flags |= AMQP_BASIC_TYPE_FLAG;
    p->type = amqp_cstring_bytes(argv[4]);
  }
  if (n_entries) {
    p->_flags |= AMQP_BASIC_HEADERS_FLAG;
    p->headers.num_entries = n_entries;
    p->headers.entries = entries;
  }
  if (reply_to) {
    p->_flags |= AMQP_BASIC_REPLY_TO_FLAG;
    p->reply_to = amqp_cstring_bytes(reply_to);
  }
  if (correlation_id) {
    p->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    p->correlation_id = amqp_cstring_bytes(correlation_id);
  }
  p->delivery_mode = AMQP_DELIVERY_PERSISTENT;
  p->content_type = amqp_cstring_bytes("application/json");
}

/* Waits for the confirm of one publish. */
static int confirmed(amqp_connection_state_t c) {
  amqp_frame_t f;
  for (;;) {
    if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) return fail("no confirm");
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) return fail("no such queue");
    if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) return 0;
    if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) return fail("the broker refused it");
    if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD)
      return fail("the broker closed the channel");
    if (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)
      return fail("the broker closed the connection");
  }
}

static int publish(amqp_connection_state_t c, char **argv) {
  amqp_basic_properties_t p;
  properties(&p, argv);
  if (body.bytes == NULL) body = amqp_cstring_bytes(argv[5]);
  amqp_confirm_select(c, 1);
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) return fail("confirm.select");
  for (long i = 0; i < count; i++) {
    int rc =
        amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(argv[2]), 1, 0, &p, body);
    if (rc != AMQP_STATUS_OK) {
      fprintf(stderr, "amqp_inject: %s\n", amqp_error_string2(rc));
      return fail("publish failed");
    }
    if (confirmed(c) != 0) return 1;
  }
  return 0;
}

/* basic.get of the head of queue, then basic.nack with requeue. */
static int take_and_return(amqp_connection_state_t c, const char *queue) {
  /* what the broker sends back may exceed the frame_max it negotiated (it adds headers) */
  if (amqp_tune_connection(c, amqp_get_channel_max(c), 1 << 20, amqp_get_heartbeat(c)) != 0)
    return fail("cannot take larger frames");
  amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 0);
  if (r.reply_type != AMQP_RESPONSE_NORMAL || r.reply.id != AMQP_BASIC_GET_OK_METHOD)
    return fail("basic.get found nothing");
  uint64_t tag = ((amqp_basic_get_ok_t *)r.reply.decoded)->delivery_tag;
  amqp_message_t msg;
  if (amqp_read_message(c, 1, &msg, 0).reply_type != AMQP_RESPONSE_NORMAL)
    return fail("cannot read the message back");
  amqp_destroy_message(&msg);
  return amqp_basic_nack(c, 1, tag, 0, 1) == AMQP_STATUS_OK ? 0 : fail("basic.nack");
}

int main(int argc, char **argv) {
  if (argc < 6)
    return fail("usage: amqp_inject URL QUEUE ID TYPE BODY [key=value | --nest key "
                "| --dup key=value | --deep N | --big BYTES | --body-mb N | --count N | "
                "--reply-to Q | --correlation-id C]...");
  parse_headers(argc, argv);
  mb_amqp_url url;
  mb_err err;
  amqp_connection_state_t c;
  if (mb_amqp_url_parse(argv[1], &url, &err) != MB_OK ||
      mb_amqp_connect(&url, 0, "amqp_inject", &c, &err) != MB_OK)
    return fail(err.msg);
  mb_amqp_url_free(&url);
  amqp_channel_open(c, 1);
  int rc = amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL ? publish(c, argv)
                                                                    : fail("channel.open");
  if (rc == 0 && requeue_one) rc = take_and_return(c, argv[2]);
  mb_amqp_disconnect(c);
  return rc;
}
