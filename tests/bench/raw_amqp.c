/* raw_amqp.c — the baseline moonbus is measured against (DESIGN §9): what moonbus does per
 * message, with the same guarantees, written straight on rabbitmq-c 0.11 and nothing else.
 * A publisher connection sends N persistent messages (a ~200-byte JSON body and moonbus's
 * headers) to a durable quorum queue with publisher confirms and a sliding window; a
 * consumer connection on its own thread takes them with manual acks and the same prefetch.
 * Prints one line: "raw N SECONDS MSG_PER_S CPU_S_PER_1000" (CPU of the whole process).
 *
 *   build/bench/raw_amqp URL QUEUE N [PREFETCH [WINDOW]]      (URL: amqp://u:p@host:port/vhost)
 * Blocking calls are fine here: one thread per connection, nothing else to serve. */
#include <amqp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_amqp.h"

static const char *url_text, *queue;
static long n_messages;
static int prefetch = 32, window = 512;

/* Waits for confirms until at most keep publishes are unconfirmed. */
static void await_confirms(amqp_connection_state_t c, long *unconfirmed, long keep) {
  while (*unconfirmed > keep) {
    amqp_frame_t f;
    if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) exit(1);
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *a = f.payload.method.decoded;
      static uint64_t confirmed;
      uint64_t upto = a->delivery_tag;
      *unconfirmed -= (long)(a->multiple ? upto - confirmed : 1);
      if (upto > confirmed) confirmed = upto;
    } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
      fprintf(stderr, "raw_amqp: the broker refused a message\n");
      exit(1);
    }
  }
}

static void *publish(void *arg) {
  (void)arg;
  amqp_connection_state_t c = bench_connect(url_text, "raw publish");
  amqp_confirm_select(c, 1);
  bench_check("confirm.select", amqp_get_rpc_reply(c));
  amqp_table_entry_t h[] = {
      bench_header("moonbus.kind", "command"),
      bench_header("moonbus.conversation_id", "01a21140-0000-7000-8000-000000000000"),
      bench_header("moonbus.origin.endpoint", "bench_sender"),
      bench_header("moonbus.origin.host", "bench"),
      bench_header("moonbus.time_sent", "2026-11-25T06:00:00.000000Z"),
      bench_header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
  };
  char body[256];
  long unconfirmed = 0;
  for (long i = 0; i < n_messages; i++) {
    int len = snprintf(body, sizeof body,
                       "{\"order_id\":\"o-%08ld\",\"customer\":\"ada lovelace\","
                       "\"lines\":[{\"sku\":\"moon-bus-001\",\"qty\":2,\"price\":12.5},"
                       "{\"sku\":\"moon-bus-002\",\"qty\":1,\"price\":99.9}],\"total\":124.9}",
                       i);
    char id[64];
    snprintf(id, sizeof id, "01a21140-0000-7000-8000-%012ld", i);
    amqp_basic_properties_t p = {0};
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG |
               AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_REPLY_TO_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    p.message_id = amqp_cstring_bytes(id);
    p.type = amqp_cstring_bytes("bench.Order");
    p.reply_to = amqp_cstring_bytes("bench_sender");
    p.timestamp = (uint64_t)time(NULL);
    p.headers.num_entries = (int)(sizeof h / sizeof *h);
    p.headers.entries = h;
    amqp_bytes_t b = {(size_t)len, body};
    if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 1, 0, &p, b) !=
        AMQP_STATUS_OK)
      exit(1);
    unconfirmed++;
    await_confirms(c, &unconfirmed, window - 1);
  }
  await_confirms(c, &unconfirmed, 0);
  mb_amqp_disconnect(c);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: raw_amqp URL QUEUE N [PREFETCH [WINDOW]]\n");
    return 2;
  }
  url_text = argv[1];
  queue = argv[2];
  n_messages = atol(argv[3]);
  if (argc > 4) prefetch = atoi(argv[4]);
  if (argc > 5) window = atoi(argv[5]);
  amqp_connection_state_t c = bench_connect(url_text, "raw consume");
  amqp_table_entry_t qt = bench_header("x-queue-type", "quorum");
  amqp_table_t args = {1, &qt};
  amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
  bench_check("queue.declare", amqp_get_rpc_reply(c));
  amqp_basic_qos(c, 1, 0, (uint16_t)prefetch, 0);
  bench_check("basic.qos", amqp_get_rpc_reply(c));
  amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  bench_check("basic.consume", amqp_get_rpc_reply(c));
  double t0 = bench_now();
  pthread_t publisher;
  if (pthread_create(&publisher, NULL, publish, NULL) != 0) return 1;
  for (long got = 0; got < n_messages; got++) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(c);
    bench_check("consume_message", amqp_consume_message(c, &env, NULL, 0));
    if (amqp_basic_ack(c, 1, env.delivery_tag, 0) != AMQP_STATUS_OK) return 1;
    amqp_destroy_envelope(&env);
  }
  double seconds = bench_now() - t0;
  pthread_join(publisher, NULL);
  bench_report(n_messages, seconds);
  mb_amqp_disconnect(c);
  return 0;
}
