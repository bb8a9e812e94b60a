/* raw_rpc.c — the request/reply baseline (DESIGN §9): one request in flight at a time,
 * with the guarantees moonbus gives a bus.request, straight on rabbitmq-c 0.11. The client
 * publishes a persistent request (mandatory, publisher confirms) to a durable quorum queue
 * with reply_to = amq.rabbitmq.reply-to and waits for the reply; the responder, on its own
 * connection and thread, takes the request with a manual ack, publishes the reply with a
 * confirm, and acks the request once the reply is confirmed (moonbus's order).
 * Prints "raw N p50_ms p90_ms p99_ms max_ms" after 100 unmeasured requests.
 *
 *   build/bench/raw_rpc URL QUEUE N */
#include <amqp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_amqp.h"

#define WARMUP 100

static const char *url_text, *queue;

/* Reads frames until a confirm (returns 0) or a whole delivery (returns 1, body in out). */
static int next_event(amqp_connection_state_t c, amqp_bytes_t *corr) {
  for (;;) {
    amqp_frame_t f;
    if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) exit(1);
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) return 0;
    if (f.payload.method.id != AMQP_BASIC_DELIVER_METHOD) continue;
    amqp_frame_t h;
    if (amqp_simple_wait_frame(c, &h) != AMQP_STATUS_OK) exit(1);
    amqp_basic_properties_t *p = h.payload.properties.decoded;
    *corr = amqp_bytes_malloc_dup(p->correlation_id);
    size_t left = (size_t)h.payload.properties.body_size;
    while (left > 0) {
      amqp_frame_t b;
      if (amqp_simple_wait_frame(c, &b) != AMQP_STATUS_OK) exit(1);
      left -= b.payload.body_fragment.len;
    }
    return 1;
  }
}

static void *respond(void *arg) {
  (void)arg;
  amqp_connection_state_t c = bench_connect(url_text, "raw responder");
  amqp_confirm_select(c, 1);
  bench_check("confirm.select", amqp_get_rpc_reply(c));
  amqp_basic_qos(c, 1, 0, 32, 0);
  bench_check("basic.qos", amqp_get_rpc_reply(c));
  amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  bench_check("basic.consume", amqp_get_rpc_reply(c));
  for (;;) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t r = amqp_consume_message(c, &env, NULL, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      amqp_frame_t f; /* a confirm of our last reply arrived between deliveries */
      if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) break;
      continue;
    }
    amqp_basic_properties_t p = {0};
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_TYPE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    p.correlation_id = env.message.properties.correlation_id;
    p.type = amqp_cstring_bytes("bench.Pong");
    amqp_bytes_t body = amqp_cstring_bytes("{\"i\":1}");
    if (amqp_basic_publish(c, 1, amqp_empty_bytes, env.message.properties.reply_to, 0, 0, &p,
                           body) != AMQP_STATUS_OK)
      break;
    amqp_frame_t f; /* the reply's confirm, then the ack of the request */
    do {
      if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) exit(1);
    } while (
        !(f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD));
    if (amqp_basic_ack(c, 1, env.delivery_tag, 0) != AMQP_STATUS_OK) break;
    amqp_destroy_envelope(&env);
  }
  return NULL;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: raw_rpc URL QUEUE N\n");
    return 2;
  }
  url_text = argv[1];
  queue = argv[2];
  long n = atol(argv[3]);
  amqp_connection_state_t c = bench_connect(url_text, "raw requester");
  amqp_confirm_select(c, 1);
  bench_check("confirm.select", amqp_get_rpc_reply(c));
  amqp_table_entry_t qt = {amqp_cstring_bytes("x-queue-type"),
                           {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes("quorum")}}};
  amqp_table_t args = {1, &qt};
  amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
  bench_check("queue.declare", amqp_get_rpc_reply(c));
  amqp_basic_consume(c, 1, amqp_cstring_bytes("amq.rabbitmq.reply-to"), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  bench_check("basic.consume reply-to", amqp_get_rpc_reply(c));
  pthread_t responder;
  if (pthread_create(&responder, NULL, respond, NULL) != 0) return 1;
  double *ms = calloc((size_t)n, sizeof *ms);
  for (long i = 0; i < n + WARMUP; i++) {
    char id[48], body[64];
    snprintf(id, sizeof id, "01a21140-0000-7000-8000-%012ld", i % 1000000000000L);
    int len = snprintf(body, sizeof body, "{\"i\":%ld}", i);
    amqp_basic_properties_t p = {0};
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
               AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_TYPE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    p.message_id = p.correlation_id = amqp_cstring_bytes(id);
    p.reply_to = amqp_cstring_bytes("amq.rabbitmq.reply-to");
    p.type = amqp_cstring_bytes("bench.Ping");
    double t0 = 1e3 * bench_now();
    amqp_bytes_t b = {(size_t)len, body};
    if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 1, 0, &p, b) !=
        AMQP_STATUS_OK)
      return 1;
    int confirmed = 0, replied = 0;
    while (!replied) { /* the reply ends the wait (its confirm may come after) */
      amqp_bytes_t corr = amqp_empty_bytes;
      int kind = next_event(c, &corr);
      confirmed |= kind == 0;
      if (kind == 1) {
        replied = corr.len == strlen(id) && memcmp(corr.bytes, id, corr.len) == 0;
        amqp_bytes_free(corr);
      }
    }
    if (i >= WARMUP) ms[i - WARMUP] = 1e3 * bench_now() - t0;
    (void)confirmed;
  }
  qsort(ms, (size_t)n, sizeof *ms, cmp);
  printf("raw %ld %.3f %.3f %.3f %.3f\n", n, ms[n / 2], ms[(size_t)(n * 0.9)],
         ms[(size_t)(n * 0.99)], ms[n - 1]);
  free(ms);
  return 0;
}
