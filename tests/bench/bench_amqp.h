/* bench_amqp.h — what the RabbitMQ baselines of `make bench` (raw_amqp.c, raw_rpc.c)
 * share: a connection with channel 1 open, an RPC check that ends the program, and a
 * string header entry. Header-only: each baseline is one C file. */
#ifndef MOONBUS_BENCH_AMQP_H
#define MOONBUS_BENCH_AMQP_H

#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>

#include "status.h"
#include "transport/rabbitmq_conn.h"

/* Ends the program unless the RPC what succeeded. */
static inline void bench_check(const char *what, amqp_rpc_reply_t r) {
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
  fprintf(stderr, "bench: %s failed (reply type %d)\n", what, r.reply_type);
  exit(1);
}

/* A connection to url named role, with channel 1 open; ends the program on failure. */
static inline amqp_connection_state_t bench_connect(const char *url, const char *role) {
  mb_amqp_url u;
  mb_err err;
  amqp_connection_state_t c;
  if (mb_amqp_url_parse(url, &u, &err) != MB_OK ||
      mb_amqp_connect(&u, 0, role, &c, &err) != MB_OK) {
    fprintf(stderr, "bench: %s\n", err.msg);
    exit(1);
  }
  mb_amqp_url_free(&u);
  amqp_channel_open(c, 1);
  bench_check("channel.open", amqp_get_rpc_reply(c));
  return c;
}

static inline amqp_table_entry_t bench_header(const char *k, const char *v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(k);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes(v);
  return e;
}

#endif
