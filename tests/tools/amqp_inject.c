/* amqp_inject.c — publishes one raw message to a RabbitMQ queue, the way a broken or
 * foreign sender would, for specs and system tests: any id, type, body and headers,
 * including what moonbus itself never sends (a nested table, a duplicate key, a table
 * nested thousands of levels deep).
 *
 *   amqp_inject URL QUEUE ID TYPE BODY [key=value | --nest key | --dup key=value |
 *               --deep N]...
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

static void parse_headers(int argc, char **argv) {
  for (int i = 6; i < argc; i++) {
    if (strcmp(argv[i], "--nest") == 0 && i + 1 < argc) nested_header(argv[++i]);
    else if (strcmp(argv[i], "--dup") == 0 && i + 1 < argc) string_header(argv[++i]);
    else if (strcmp(argv[i], "--deep") == 0 && i + 1 < argc) deep_header(atol(argv[++i]));
    else string_header(argv[i]);
  }
}

static int publish(amqp_connection_state_t c, char **argv) {
  amqp_basic_properties_t p = {0};
  p._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
             AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  p.message_id = amqp_cstring_bytes(argv[3]);
  p.type = amqp_cstring_bytes(argv[4]);
  p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  p.content_type = amqp_cstring_bytes("application/json");
  p.headers.num_entries = n_entries;
  p.headers.entries = entries;
  amqp_confirm_select(c, 1);
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) return fail("confirm.select");
  if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(argv[2]), 1, 0, &p,
                         amqp_cstring_bytes(argv[5])) != AMQP_STATUS_OK)
    return fail("publish failed");
  amqp_frame_t f;
  for (;;) {
    if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) return fail("no confirm");
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) return fail("no such queue");
    if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) return 0;
    if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) return fail("the broker refused it");
    if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) return fail("the broker closed the channel");
  }
}

int main(int argc, char **argv) {
  if (argc < 6) return fail("usage: amqp_inject URL QUEUE ID TYPE BODY [key=value | --nest key "
                            "| --dup key=value | --deep N]...");
  parse_headers(argc, argv);
  mb_amqp_url url;
  mb_err err;
  amqp_connection_state_t c;
  if (mb_amqp_url_parse(argv[1], &url, &err) != MB_OK || mb_amqp_connect(&url, 0, "amqp_inject", &c, &err) != MB_OK)
    return fail(err.msg);
  mb_amqp_url_free(&url);
  amqp_channel_open(c, 1);
  int rc = amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL ? publish(c, argv) : fail("channel.open");
  mb_amqp_disconnect(c);
  return rc;
}
