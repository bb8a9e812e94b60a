/* foreign_rpc.c — a plain AMQP RPC client, as RabbitMQ's own tutorial writes one, for the
 * foreign-RPC system test: a server-named exclusive reply queue, a request with reply_to,
 * a correlation id and a type but no message id and no moonbus header, then a bounded
 * wait for the reply on that queue.
 *
 *   foreign_rpc URL QUEUE TYPE BODY [--timeout S] [--message-id ID] [--no-correlation-id]
 *
 * Prints "reply correlation_id=<c> type=<t> body=<b>" and exits 0 when a reply carrying
 * the request's correlation id (or its message id when it set none) arrives in time;
 * exits 1 with a reason otherwise. Only rabbitmq-c: nothing of moonbus is linked in. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static int fail(const char *what) {
  fprintf(stderr, "foreign_rpc: %s\n", what);
  return 1;
}

static int ok_reply(amqp_connection_state_t c, const char *what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return 1;
  fprintf(stderr, "foreign_rpc: %s failed (reply type %d)\n", what, r.reply_type);
  return 0;
}

static amqp_connection_state_t connect_to(const char *url_text) {
  struct amqp_connection_info info;
  char *url = strdup(url_text);
  if (url == NULL || amqp_parse_url(url, &info) != AMQP_STATUS_OK) return NULL;
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  struct timeval tv = {5, 0};
  if (s == NULL || amqp_socket_open_noblock(s, info.host, info.port, &tv) != AMQP_STATUS_OK ||
      amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password)
              .reply_type != AMQP_RESPONSE_NORMAL) {
    amqp_destroy_connection(c);
    return NULL;
  }
  amqp_channel_open(c, 1);
  return ok_reply(c, "channel.open") ? c : NULL;
}

/* The server-named exclusive queue replies come back to, consumed without acks. */
static amqp_bytes_t reply_queue(amqp_connection_state_t c) {
  amqp_queue_declare_ok_t *ok =
      amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
  if (ok == NULL || !ok_reply(c, "queue.declare")) return amqp_empty_bytes;
  amqp_bytes_t name = amqp_bytes_malloc_dup(ok->queue);
  amqp_basic_consume(c, 1, name, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
  return ok_reply(c, "basic.consume") ? name : amqp_empty_bytes;
}

static int wait_reply(amqp_connection_state_t c, const char *expect, double timeout) {
  struct timeval tv = {(time_t)timeout, 0};
  for (;;) {
    amqp_envelope_t e;
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t r = amqp_consume_message(c, &e, &tv, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) return fail("no reply in time");
    amqp_basic_properties_t *p = &e.message.properties;
    int has = p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG;
    printf("reply correlation_id=%.*s type=%.*s body=%.*s\n",
           has ? (int)p->correlation_id.len : 0, has ? (char *)p->correlation_id.bytes : "",
           (p->_flags & AMQP_BASIC_TYPE_FLAG) ? (int)p->type.len : 0,
           (p->_flags & AMQP_BASIC_TYPE_FLAG) ? (char *)p->type.bytes : "",
           (int)e.message.body.len, (char *)e.message.body.bytes);
    int match = has && p->correlation_id.len == strlen(expect) &&
                memcmp(p->correlation_id.bytes, expect, strlen(expect)) == 0;
    amqp_destroy_envelope(&e);
    if (match) return 0;
  }
}

int main(int argc, char **argv) {
  if (argc < 5)
    return fail("usage: foreign_rpc URL QUEUE TYPE BODY [--timeout S] "
                "[--message-id ID] [--no-correlation-id]");
  double timeout = 10;
  const char *message_id = NULL;
  int correlate = 1;
  for (int i = 5; i < argc; i++) {
    if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) timeout = atof(argv[++i]);
    else if (strcmp(argv[i], "--message-id") == 0 && i + 1 < argc) message_id = argv[++i];
    else if (strcmp(argv[i], "--no-correlation-id") == 0) correlate = 0;
    else return fail("unknown option");
  }
  amqp_connection_state_t c = connect_to(argv[1]);
  if (c == NULL) return fail("cannot connect");
  amqp_bytes_t queue = reply_queue(c);
  if (queue.bytes == NULL) return fail("no reply queue");
  char corr[64];
  snprintf(corr, sizeof corr, "corr-%ld", (long)getpid());
  amqp_basic_properties_t p = {0};
  p._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  p.reply_to = queue;
  p.type = amqp_cstring_bytes(argv[3]);
  p.content_type = amqp_cstring_bytes("application/json");
  if (correlate)
    p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG, p.correlation_id = amqp_cstring_bytes(corr);
  if (message_id)
    p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id = amqp_cstring_bytes(message_id);
  if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(argv[2]), 0, 0, &p,
                         amqp_cstring_bytes(argv[4])) != AMQP_STATUS_OK)
    return fail("publish failed");
  printf("request reply_to=%.*s correlation_id=%s\n", (int)queue.len, (char *)queue.bytes,
         correlate ? corr : "(none)");
  fflush(stdout);
  int rc = wait_reply(c, correlate ? corr : (message_id ? message_id : ""), timeout);
  amqp_bytes_free(queue);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
  return rc;
}
