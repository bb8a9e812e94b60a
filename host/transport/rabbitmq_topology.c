/* rabbitmq_topology.c — queues, exchanges, bindings, owner markers and the delay
 * infrastructure on the broker (see rabbitmq_topology.h). Every call is one RPC whose
 * reply is checked; a refused declare names the object and says what to do.
 * Never publishes, consumes, or keeps state between calls. */
#include "transport/rabbitmq_topology.h"

#include <stdio.h>
#include <string.h>

#include "transport/rabbitmq_conn.h"
#include "transport/rabbitmq_wire.h"

#define AMQP_NOT_FOUND 404
#define AMQP_RESOURCE_LOCKED 405
#define AMQP_PRECONDITION_FAILED 406

static amqp_table_entry_t string_entry(const char *key, const char *value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes(value);
  return e;
}

static amqp_table_entry_t long_entry(const char *key, int64_t value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_I64;
  e.value.value.i64 = value;
  return e;
}

/* After a channel error the broker has closed the channel: confirm and reopen it. */
static void reopen_channel(mb_amqp_rpc *r) {
  amqp_channel_close_ok_t ok = {0};
  if (amqp_send_method(r->conn, r->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
          AMQP_STATUS_OK ||
      amqp_channel_open(r->conn, r->channel) == NULL)
    r->dead = 1;
}

/* The reply of the last RPC; *code gets the broker's reply code on a channel error. */
static int checked(mb_amqp_rpc *r, const char *what, int *code, mb_err *err) {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(r->conn);
  int c = 0;
  int rc = mb_amqp_reply_error(reply, what, &c, err);
  if (code) *code = c;
  if (rc == MB_OK) return MB_OK;
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
    reopen_channel(r);
  else r->dead = 1;
  return rc;
}

int mb_amqp_declare_reply_queue(mb_amqp_rpc *r, const char *name, mb_err *err) {
  amqp_table_entry_t args[] = {string_entry("x-queue-type", "classic")};
  amqp_table_t table = {1, args};
  amqp_queue_declare(r->conn, r->channel, amqp_cstring_bytes(name), 0, 0, 1, 1, table);
  char what[400];
  snprintf(what, sizeof what, "cannot declare reply queue '%s'", name);
  return checked(r, what, NULL, err);
}

int mb_amqp_declare_queue(mb_amqp_rpc *r, const char *name, int classic, mb_err *err) {
  amqp_table_entry_t args[] = {string_entry("x-queue-type", classic ? "classic" : "quorum")};
  amqp_table_t table = {1, args};
  amqp_queue_declare(r->conn, r->channel, amqp_cstring_bytes(name), 0, 1, 0, 0, table);
  char what[400];
  snprintf(what, sizeof what, "cannot declare queue '%s' as a durable %s queue", name,
           classic ? "classic" : "quorum");
  int code, rc = checked(r, what, &code, err);
  if (code == AMQP_PRECONDITION_FAILED) {
    char why[MB_ERRLEN];
    snprintf(why, sizeof why, "%s", err->msg); /* err is both the source and the target */
    return mb_err_set(err, MB_EINVAL,
                      "%.300s: it exists with other settings (set queue_type in bus.endpoint{} "
                      "to what the queue is, or delete the queue)",
                      why);
  }
  return rc;
}

int mb_amqp_queue_depth(mb_amqp_rpc *r, const char *name, long *ready, mb_err *err) {
  long consumers;
  return mb_amqp_queue_counts(r, name, ready, &consumers, err);
}

int mb_amqp_queue_counts(mb_amqp_rpc *r, const char *name, long *ready, long *consumers,
                         mb_err *err) {
  amqp_queue_declare_ok_t *ok = amqp_queue_declare(r->conn, r->channel, amqp_cstring_bytes(name),
                                                   1, 0, 0, 0, amqp_empty_table);
  char what[300];
  snprintf(what, sizeof what, "cannot count the messages of queue '%s'", name);
  int code, rc = checked(r, what, &code, err);
  if (code == AMQP_NOT_FOUND)
    return mb_err_set(err, MB_ENOTFOUND, "there is no queue named '%s'", name);
  if (code == AMQP_RESOURCE_LOCKED) /* it exists, exclusive to another connection */
    return mb_err_set(err, MB_EBUSY,
                      "queue '%s' is exclusive to another connection (a "
                      "client's reply queue): it cannot be counted from here",
                      name);
  if (rc == MB_OK) *ready = ok ? (long)ok->message_count : 0;
  if (rc == MB_OK) *consumers = ok ? (long)ok->consumer_count : 0;
  return rc;
}

static int declare_exchange_args(mb_amqp_rpc *r, const char *name, const char *type,
                                 amqp_table_t args, int *code, mb_err *err) {
  amqp_exchange_declare(r->conn, r->channel, amqp_cstring_bytes(name), amqp_cstring_bytes(type),
                        0, 1, 0, 0, args);
  char what[320];
  snprintf(what, sizeof what, "cannot declare exchange '%s'", name);
  return checked(r, what, code, err);
}

int mb_amqp_declare_exchange(mb_amqp_rpc *r, const char *name, const char *type, mb_err *err) {
  return declare_exchange_args(r, name, type, amqp_empty_table, NULL, err);
}

static void event_exchange(const char *type, char *out, size_t len) {
  snprintf(out, len, MB_AMQP_EVENT_PREFIX "%s", type);
}

int mb_amqp_declare_event(mb_amqp_rpc *r, const char *type, mb_err *err) {
  char name[300];
  event_exchange(type, name, sizeof name);
  return mb_amqp_declare_exchange(r, name, "fanout", err);
}

int mb_amqp_subscribe(mb_amqp_rpc *r, const char *queue, const char *type, int bind,
                      mb_err *err) {
  char name[300], what[600];
  event_exchange(type, name, sizeof name);
  amqp_bytes_t q = amqp_cstring_bytes(queue), x = amqp_cstring_bytes(name);
  if (bind) amqp_queue_bind(r->conn, r->channel, q, x, amqp_empty_bytes, amqp_empty_table);
  else amqp_queue_unbind(r->conn, r->channel, q, x, amqp_empty_bytes, amqp_empty_table);
  snprintf(what, sizeof what, "cannot %s queue '%s' %s event %s",
           bind ? "subscribe" : "unsubscribe", queue, bind ? "to" : "from", type);
  return checked(r, what, NULL, err);
}

/* The endpoint named in a 406 about an owner marker: "... received '...' but current is
 * 'moonbus.publisher.X'" (3.10; other versions say "current is the value '...'"). */
static int owner_from_refusal(const char *text, char *out, size_t len) {
  const char *p = strstr(text, "current is ");
  if (p == NULL) return 0;
  p += strlen("current is ");
  if (strncmp(p, "the value ", 10) == 0) p += 10;
  if (strncmp(p, "'" MB_AMQP_PUBLISHER_PREFIX, strlen(MB_AMQP_PUBLISHER_PREFIX) + 1) != 0)
    return 0;
  p += strlen(MB_AMQP_PUBLISHER_PREFIX) + 1;
  const char *end = strchr(p, '\'');
  if (end == NULL) return 0;
  snprintf(out, len, "%.*s", (int)(end - p), p);
  return 1;
}

/* Declares type's owner marker naming endpoint; *code gets 406 when another owns it. */
static int declare_marker(mb_amqp_rpc *r, const char *type, const char *endpoint, int *code,
                          mb_err *err) {
  char name[300], publisher[300];
  snprintf(name, sizeof name, MB_AMQP_OWNER_PREFIX "%s", type);
  snprintf(publisher, sizeof publisher, MB_AMQP_PUBLISHER_PREFIX "%s", endpoint);
  amqp_table_entry_t args[] = {string_entry("alternate-exchange", publisher)};
  amqp_table_t table = {1, args};
  return declare_exchange_args(r, name, "fanout", table, code, err);
}

int mb_amqp_claim_event(mb_amqp_rpc *r, const char *type, const char *endpoint, mb_err *err) {
  int code, rc = declare_marker(r, type, endpoint, &code, err);
  char owner[256];
  if (code == AMQP_PRECONDITION_FAILED && owner_from_refusal(err->msg, owner, sizeof owner))
    return mb_err_set(err, MB_EOWNER,
                      "%s is published by endpoint %s; an event has one publisher: remove it "
                      "from publishes of endpoint %s, or send a command to %s and let it publish",
                      type, owner, endpoint, owner);
  if (rc == MB_OK) rc = mb_amqp_declare_event(r, type, err);
  return rc;
}

int mb_amqp_event_owner(mb_amqp_rpc *r, const char *type, char *out, size_t len, mb_err *err) {
  char name[300], what[320];
  snprintf(name, sizeof name, MB_AMQP_OWNER_PREFIX "%s", type);
  snprintf(what, sizeof what, "cannot look up the owner of %s", type);
  amqp_exchange_declare(r->conn, r->channel, amqp_cstring_bytes(name),
                        amqp_cstring_bytes("fanout"), 1, 0, 0, 0, amqp_empty_table);
  int code, rc = checked(r, what, &code, err);
  if (code == AMQP_NOT_FOUND) return mb_err_set(err, MB_ENOTFOUND, "%s has no owner", type);
  if (rc != MB_OK) return rc;
  /* No endpoint name holds a space, so this probe is refused and the refusal names the
   * owner; the marker exists, so the probe can never create it. */
  rc = declare_marker(r, type, " probe", &code, err);
  if (code == AMQP_PRECONDITION_FAILED && owner_from_refusal(err->msg, out, len)) return MB_OK;
  return rc == MB_OK ? mb_err_set(err, MB_EIO, "the owner marker of %s names no endpoint", type)
                     : rc;
}

/* --- the delay infrastructure --------------------------------------------------------- */

/* Where level's queue dead-letters to, and where its zero bit routes: the level below. */
static void lower_level(int level, char *out, size_t len) {
  if (level == 0) snprintf(out, len, MB_AMQP_DELAY_DELIVER);
  else mb_amqp_delay_level_name(level - 1, out, len);
}

int mb_amqp_declare_delay_exchanges(mb_amqp_rpc *r, mb_err *err) {
  int rc = mb_amqp_declare_exchange(r, MB_AMQP_DELAY_DELIVER, "topic", err);
  for (int level = 0; rc == MB_OK && level < MB_AMQP_DELAY_LEVELS; level++) {
    char name[64], lower[64], pattern[128];
    mb_amqp_delay_level_name(level, name, sizeof name);
    lower_level(level, lower, sizeof lower);
    mb_amqp_delay_level_pattern(level, 0, pattern, sizeof pattern);
    rc = mb_amqp_declare_exchange(r, name, "topic", err);
    if (rc != MB_OK) break;
    amqp_exchange_bind(r->conn, r->channel, amqp_cstring_bytes(lower), amqp_cstring_bytes(name),
                       amqp_cstring_bytes(pattern), amqp_empty_table);
    rc = checked(r, "cannot bind the delay exchanges", NULL, err);
  }
  return rc;
}

int mb_amqp_declare_delay_level(mb_amqp_rpc *r, int level, mb_err *err) {
  char name[64], lower[64], pattern[128], what[128];
  mb_amqp_delay_level_name(level, name, sizeof name);
  lower_level(level, lower, sizeof lower);
  amqp_table_entry_t args[] = {
      string_entry("x-queue-type", "quorum"),
      long_entry("x-message-ttl", ((int64_t)1 << level) * 1000),
      string_entry("x-dead-letter-exchange", lower),
      string_entry("x-dead-letter-strategy", "at-least-once"),
      string_entry("x-overflow", "reject-publish"),
  };
  amqp_table_t table = {5, args};
  amqp_queue_declare(r->conn, r->channel, amqp_cstring_bytes(name), 0, 1, 0, 0, table);
  snprintf(what, sizeof what, "cannot declare delay queue '%s'", name);
  int rc = checked(r, what, NULL, err);
  if (rc != MB_OK) return rc;
  mb_amqp_delay_level_pattern(level, 1, pattern, sizeof pattern);
  amqp_queue_bind(r->conn, r->channel, amqp_cstring_bytes(name), amqp_cstring_bytes(name),
                  amqp_cstring_bytes(pattern), amqp_empty_table);
  return checked(r, what, NULL, err);
}

int mb_amqp_bind_delayed(mb_amqp_rpc *r, const char *dest, int event, mb_err *err) {
  char target[300], pattern[320], what[400];
  if (event) event_exchange(dest, target, sizeof target);
  else snprintf(target, sizeof target, "%s", dest);
  if (mb_amqp_delay_deliver_pattern(target, pattern, sizeof pattern) != MB_OK)
    return mb_err_set(err, MB_EINVAL, "'%s' is too long a name for delayed delivery", target);
  int rc = mb_amqp_declare_exchange(r, MB_AMQP_DELAY_DELIVER, "topic", err);
  if (rc != MB_OK) return rc;
  amqp_bytes_t to = amqp_cstring_bytes(target), from = amqp_cstring_bytes(MB_AMQP_DELAY_DELIVER);
  if (event)
    amqp_exchange_bind(r->conn, r->channel, to, from, amqp_cstring_bytes(pattern),
                       amqp_empty_table);
  else
    amqp_queue_bind(r->conn, r->channel, to, from, amqp_cstring_bytes(pattern), amqp_empty_table);
  snprintf(what, sizeof what, "cannot bind '%s' for delayed delivery", target);
  return checked(r, what, NULL, err);
}
