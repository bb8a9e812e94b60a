/* rabbitmq_wire.c — envelope <-> AMQP basic properties, and the routing of the delay
 * infrastructure (see rabbitmq_wire.h). Pure functions: no socket, no broker.
 * Never lets an unchecked header key reach amqp_basic_publish, and never trusts a
 * delivered table: it is walked with a depth cap before anything is copied out. */
#include "transport/rabbitmq_wire.h"

#include "transport/rabbitmq_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- outgoing ------------------------------------------------------------------------- */

static amqp_bytes_t bytes_of(const char *s) { return amqp_cstring_bytes(s); }

/* Bytes rabbitmq-c writes for a short string property. */
static size_t shortstr_size(amqp_flags_t flags, amqp_flags_t flag, amqp_bytes_t b) {
  return (flags & flag) ? 1 + b.len : 0;
}

/* The size of the content header frame rabbitmq-c would write for p: frame header and end
 * (8), class, weight and body size (12), the flag word (2), then each property. */
size_t mb_amqp_header_frame_size(const amqp_basic_properties_t *p) {
  amqp_flags_t f = p->_flags;
  size_t n = 8 + 12 + 2;
  n += shortstr_size(f, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type);
  n += shortstr_size(f, AMQP_BASIC_CONTENT_ENCODING_FLAG, p->content_encoding);
  n += shortstr_size(f, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id);
  n += shortstr_size(f, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to);
  n += shortstr_size(f, AMQP_BASIC_EXPIRATION_FLAG, p->expiration);
  n += shortstr_size(f, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id);
  n += shortstr_size(f, AMQP_BASIC_TYPE_FLAG, p->type);
  n += shortstr_size(f, AMQP_BASIC_USER_ID_FLAG, p->user_id);
  n += shortstr_size(f, AMQP_BASIC_APP_ID_FLAG, p->app_id);
  n += shortstr_size(f, AMQP_BASIC_CLUSTER_ID_FLAG, p->cluster_id);
  n += (f & AMQP_BASIC_DELIVERY_MODE_FLAG) ? 1 : 0;
  n += (f & AMQP_BASIC_PRIORITY_FLAG) ? 1 : 0;
  n += (f & AMQP_BASIC_TIMESTAMP_FLAG) ? 8 : 0;
  if (f & AMQP_BASIC_HEADERS_FLAG) { /* only what table_build writes: string values */
    n += 4;
    for (int i = 0; i < p->headers.num_entries; i++)
      n +=
          1 + p->headers.entries[i].key.len + 1 + 4 + p->headers.entries[i].value.value.bytes.len;
  }
  return n;
}

static int table_build(mb_amqp_props *out, const mb_headers *h, mb_err *err) {
  if (h->len == 0) return MB_OK;
  out->entries = calloc(h->len, sizeof *out->entries);
  if (out->entries == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  for (size_t i = 0; i < h->len; i++) {
    const char *why = mb_header_key_problem(h->items[i].key, 1);
    if (why) return mb_err_set(err, MB_EINVAL, "header '%.64s': %s", h->items[i].key, why);
    amqp_table_entry_t *e = &out->entries[i];
    e->key = bytes_of(h->items[i].key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = bytes_of(h->items[i].value);
  }
  out->p.headers.num_entries = (int)h->len;
  out->p.headers.entries = out->entries;
  out->p._flags |= AMQP_BASIC_HEADERS_FLAG;
  return MB_OK;
}

/* rabbitmq-c sends basic.publish before it encodes the properties: properties that do not
 * fit one frame would leave a publish without its content and cost the connection. */
static int check_fits(const mb_amqp_props *out, const mb_envelope *env, mb_err *err) {
  size_t n = mb_amqp_header_frame_size(&out->p);
  if (n <= MB_AMQP_FRAME_MAX) return MB_OK;
  return mb_err_set(err, MB_ETOOBIG,
                    "message %s of type %.80s: its properties and headers "
                    "take %zu bytes, over the %d bytes of one RabbitMQ frame (frame_max)",
                    env->id, env->type ? env->type : "(none)", n, MB_AMQP_FRAME_MAX);
}

int mb_amqp_props_build(mb_amqp_props *out, const mb_envelope *env, long expires_in_ms,
                        mb_err *err) {
  memset(out, 0, sizeof *out);
  amqp_basic_properties_t *p = &out->p;
  p->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
              AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
  p->content_type = bytes_of("application/json");
  p->delivery_mode = AMQP_DELIVERY_PERSISTENT;
  p->message_id = bytes_of(env->id);
  p->timestamp = (uint64_t)time(NULL);
  if (env->type) { /* a parked foreign message may have none */
    p->_flags |= AMQP_BASIC_TYPE_FLAG;
    p->type = bytes_of(env->type);
  }
  if (env->correlation_id) {
    p->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    p->correlation_id = bytes_of(env->correlation_id);
  }
  if (env->reply_to) {
    p->_flags |= AMQP_BASIC_REPLY_TO_FLAG;
    p->reply_to = bytes_of(env->reply_to);
  }
  if (expires_in_ms >= 0) {
    snprintf(out->expiration, sizeof out->expiration, "%ld", expires_in_ms);
    p->_flags |= AMQP_BASIC_EXPIRATION_FLAG;
    p->expiration = bytes_of(out->expiration);
  }
  int rc = table_build(out, &env->headers, err);
  if (rc == MB_OK) rc = check_fits(out, env, err);
  if (rc != MB_OK) mb_amqp_props_free(out);
  return rc;
}

void mb_amqp_props_free(mb_amqp_props *props) {
  free(props->entries);
  props->entries = NULL;
}

/* --- incoming ------------------------------------------------------------------------- */

static int is_string(const amqp_field_value_t *v) {
  return v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES;
}

static int depth_ok(const amqp_field_value_t *v, int depth);

static int table_depth_ok(const amqp_table_t *t, int depth) {
  if (depth > MB_AMQP_HEADER_DEPTH) return 0;
  for (int i = 0; i < t->num_entries; i++)
    if (!depth_ok(&t->entries[i].value, depth)) return 0;
  return 1;
}

static int depth_ok(const amqp_field_value_t *v, int depth) {
  if (v->kind == AMQP_FIELD_KIND_TABLE) return table_depth_ok(&v->value.table, depth + 1);
  if (v->kind != AMQP_FIELD_KIND_ARRAY) return 1;
  if (depth + 1 > MB_AMQP_HEADER_DEPTH) return 0;
  for (int i = 0; i < v->value.array.num_entries; i++)
    if (!depth_ok(&v->value.array.entries[i], depth + 1)) return 0;
  return 1;
}

static long integer_of(const amqp_field_value_t *v) {
  switch (v->kind) {
  case AMQP_FIELD_KIND_I8: return v->value.i8;
  case AMQP_FIELD_KIND_U8: return v->value.u8;
  case AMQP_FIELD_KIND_I16: return v->value.i16;
  case AMQP_FIELD_KIND_U16: return v->value.u16;
  case AMQP_FIELD_KIND_I32: return v->value.i32;
  case AMQP_FIELD_KIND_U32: return (long)v->value.u32;
  case AMQP_FIELD_KIND_I64: return (long)v->value.i64;
  case AMQP_FIELD_KIND_U64: return (long)v->value.u64;
  default: return -1;
  }
}

static char *copy_bytes(amqp_bytes_t b) {
  if (b.len && memchr(b.bytes, '\0', b.len)) return NULL; /* basic.get gives "" as NULL */
  return strndup(b.bytes ? b.bytes : "", b.len);
}

static int set_problem(mb_delivery *d, const char *fmt, const amqp_bytes_t *key) {
  char buf[400];
  snprintf(buf, sizeof buf, fmt, key ? (int)(key->len > 64 ? 64 : key->len) : 0,
           key ? (const char *)key->bytes : "");
  free(d->problem);
  return (d->problem = strdup(buf)) ? MB_OK : MB_ENOMEM;
}

static int is_broker_key(amqp_bytes_t key) {
  return key.len >= 2 && memcmp(key.bytes, "x-", 2) == 0;
}

static int has_key(const mb_headers *h, amqp_bytes_t key) {
  for (size_t i = 0; i < h->len; i++)
    if (strlen(h->items[i].key) == key.len && memcmp(h->items[i].key, key.bytes, key.len) == 0)
      return 1;
  return 0;
}

/* One header entry into d; a bad one sets d->problem. */
static int take_header(mb_delivery *d, const amqp_table_entry_t *e) {
  if (is_broker_key(e->key)) {
    long n = integer_of(&e->value);
    if (e->key.len == 16 && memcmp(e->key.bytes, "x-delivery-count", 16) == 0 && n >= 0)
      d->delivery_count = (uint32_t)n + 1;
    return MB_OK;
  }
  if (!is_string(&e->value)) return set_problem(d, "header '%.*s' is not a string", &e->key);
  if (has_key(&d->env.headers, e->key))
    return set_problem(d, "header '%.*s' appears twice", &e->key);
  amqp_bytes_t v = e->value.value.bytes;
  mb_headers *h = &d->env.headers;
  if ((e->key.len && memchr(e->key.bytes, '\0', e->key.len)) ||
      (v.len && memchr(v.bytes, '\0', v.len)))
    return set_problem(d, "header '%.*s' has a bad key or a NUL byte in its value", &e->key);
  const char *key = e->key.len ? e->key.bytes : "", *value = v.len ? v.bytes : "";
  if (mb_headers_append_n(h, key, e->key.len, value, v.len) != MB_OK) return MB_ENOMEM;
  if (mb_header_key_problem(h->items[h->len - 1].key, 1) == NULL) return MB_OK;
  mb_headers_remove(h, h->items[h->len - 1].key);
  return set_problem(d, "header '%.*s' has a bad key or a NUL byte in its value", &e->key);
}

static int take_string(char **field, amqp_flags_t flags, amqp_flags_t flag, amqp_bytes_t b) {
  if (!(flags & flag)) return MB_OK;
  *field = copy_bytes(b);
  return *field ? MB_OK : MB_EINVAL;
}

/* A missing or foreign message id gets a new one (the original kept beside it, see
 * mb_envelope_take_id); type, correlation id and reply-to stay NULL when absent. */
static int take_ids(mb_delivery *d, const amqp_basic_properties_t *p) {
  amqp_flags_t f = p->_flags;
  int has_id = (f & AMQP_BASIC_MESSAGE_ID_FLAG) != 0;
  const char *id = has_id && p->message_id.len ? p->message_id.bytes : "";
  if (mb_envelope_take_id(&d->env, has_id ? id : NULL, has_id ? p->message_id.len : 0) != MB_OK)
    return MB_ENOMEM;
  if (take_string(&d->env.type, f, AMQP_BASIC_TYPE_FLAG, p->type) != MB_OK ||
      take_string(&d->env.correlation_id, f, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id) !=
          MB_OK ||
      take_string(&d->env.reply_to, f, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to) != MB_OK)
    return set_problem(d, "type, correlation id or reply-to holds a NUL byte%.*s", NULL);
  return MB_OK;
}

/* The header rules of every transport (count, total size), once the table is read. */
static int check_rules(mb_delivery *d) {
  mb_err err;
  if (d->problem || mb_headers_check(&d->env.headers, 1, &err) == MB_OK) return MB_OK;
  free(d->problem);
  return (d->problem = strdup(err.msg)) ? MB_OK : MB_ENOMEM;
}

/* The header count rule, checked before take_header compares any key with the others (a
 * frame holds ~90 000 one-byte keys: a quadratic duplicate search would stall the host). */
static int too_many_headers(mb_delivery *d, const amqp_table_t *t) {
  int n = 0;
  for (int i = 0; i < t->num_entries; i++) n += !is_broker_key(t->entries[i].key);
  if (n <= MB_HEADERS_MAX_COUNT) return 0;
  char why[96];
  snprintf(why, sizeof why, "%d headers, over the limit of %d%%.*s", n, MB_HEADERS_MAX_COUNT);
  set_problem(d, why, NULL);
  return 1;
}

int mb_amqp_delivery_from_props(mb_delivery *d, const amqp_basic_properties_t *p,
                                int redelivered) {
  d->delivery_count = redelivered ? 2 : 1;
  int rc = take_ids(d, p);
  if (rc != MB_OK || d->problem || !(p->_flags & AMQP_BASIC_HEADERS_FLAG)) return rc;
  if (!table_depth_ok(&p->headers, 1))
    return set_problem(d, "the header table is nested deeper than 8 levels%.*s", NULL);
  if (too_many_headers(d, &p->headers)) return d->problem ? MB_OK : MB_ENOMEM;
  for (int i = 0; i < p->headers.num_entries && rc == MB_OK && !d->problem; i++)
    rc = take_header(d, &p->headers.entries[i]);
  return rc == MB_OK ? check_rules(d) : rc;
}

/* --- delay routing --------------------------------------------------------------------- */

void mb_amqp_delay_level_name(int level, char *out, size_t len) {
  snprintf(out, len, MB_AMQP_DELAY_PREFIX "%02d", level);
}

/* Word i of the routing key (0 = leftmost) holds bit (LEVELS - 1 - i). */
void mb_amqp_delay_level_pattern(int level, int bit, char *out, size_t len) {
  size_t n = 0;
  for (int w = MB_AMQP_DELAY_LEVELS - 1; w > level && n + 2 < len; w--)
    n += (size_t)snprintf(out + n, len - n, "*.");
  snprintf(out + n, len - n, "%d.#", bit);
}

int mb_amqp_delay_deliver_pattern(const char *dest, char *out, size_t len) {
  size_t need = 2 * MB_AMQP_DELAY_LEVELS + strlen(dest) + 1;
  if (need > len || need > 256) return MB_EINVAL;
  size_t n = 0;
  for (int i = 0; i < MB_AMQP_DELAY_LEVELS; i++) out[n++] = '*', out[n++] = '.';
  memcpy(out + n, dest, strlen(dest) + 1);
  return MB_OK;
}

int mb_amqp_delay_route(long delay_s, const char *dest, char *exchange, size_t exlen, char *key,
                        size_t keylen, mb_err *err) {
  if (delay_s < 1 || delay_s > MB_AMQP_DELAY_MAX)
    return mb_err_set(err, MB_EINVAL, "a delay must be 1 to %ld seconds, got %ld",
                      MB_AMQP_DELAY_MAX, delay_s);
  if (2 * MB_AMQP_DELAY_LEVELS + strlen(dest) + 1 > (keylen < 256 ? keylen : 256))
    return mb_err_set(err, MB_EINVAL,
                      "'%.64s' is too long a name to deliver to after a delay (at most %d bytes)",
                      dest, 255 - 2 * MB_AMQP_DELAY_LEVELS);
  int top = 0;
  size_t n = 0;
  for (int level = MB_AMQP_DELAY_LEVELS - 1; level >= 0; level--) {
    int bit = (int)((delay_s >> level) & 1);
    if (bit && level > top) top = level;
    key[n++] = (char)('0' + bit);
    key[n++] = '.';
  }
  memcpy(key + n, dest, strlen(dest) + 1);
  mb_amqp_delay_level_name(top, exchange, exlen);
  return MB_OK;
}
