/* rabbitmq_wire.h — the moonbus envelope (DESIGN §4) as AMQP 0-9-1 basic properties, both
 * ways, standing in front of rabbitmq-c 0.11's sharp edges: every outgoing header key is
 * checked (rabbitmq-c writes a key's length as one byte, so a longer key would forge the
 * headers after it), and a delivered header table is never trusted (duplicate keys,
 * non-string values, tables nested deeper than MB_AMQP_HEADER_DEPTH are a problem that
 * makes the delivery poison, not a crash).
 *
 * Provides: mb_amqp_props (built for one publish), mb_amqp_delivery_from_props, the delay
 * routing of the broker-side delay infrastructure (one level per bit of the delay).
 * Uses: rabbitmq-c's types only; never does I/O. */
#ifndef MOONBUS_TRANSPORT_RABBITMQ_WIRE_H
#define MOONBUS_TRANSPORT_RABBITMQ_WIRE_H

#include <amqp.h>
#include <stdint.h>

#include "transport.h"

#define MB_AMQP_HEADER_DEPTH 8  /* nesting the broker's own x-death needs is 3 */
#define MB_AMQP_DELAY_LEVELS 28 /* 2^28 - 1 s: about 8.5 years */
#define MB_AMQP_DELAY_MAX ((1L << MB_AMQP_DELAY_LEVELS) - 1)
#define MB_AMQP_DELAY_PREFIX "moonbus.delay."
#define MB_AMQP_DELAY_DELIVER "moonbus.delay.deliver"
#define MB_AMQP_EVENT_PREFIX "moonbus.event."
#define MB_AMQP_OWNER_PREFIX "moonbus.owner."
#define MB_AMQP_PUBLISHER_PREFIX "moonbus.publisher."
/* The largest body the transport reads when the endpoint names no max_body. */
#define MB_AMQP_BODY_MAX ((uint64_t)1 << 30)

/* Properties for publishing one envelope. They point into the envelope (which must
 * outlive them) and into the struct's own buffers; free with mb_amqp_props_free. */
typedef struct mb_amqp_props {
  amqp_basic_properties_t p;
  amqp_table_entry_t *entries;
  char expiration[24];
} mb_amqp_props;

/* expires_in_ms < 0: no expiration. MB_EINVAL naming the key if a header key is refused
 * (1-255 bytes of printable ASCII), MB_ETOOBIG if the properties do not fit one frame,
 * MB_ENOMEM. A NULL type is left out. */
int mb_amqp_props_build(mb_amqp_props *out, const mb_envelope *env, long expires_in_ms,
                        mb_err *err);
void mb_amqp_props_free(mb_amqp_props *props);
/* The bytes of the content header frame rabbitmq-c writes for p (string headers only, as
 * mb_amqp_props_build makes them); mb_amqp_props_build refuses (MB_ETOOBIG) properties
 * whose frame would not fit frame_max, before anything is sent. */
size_t mb_amqp_header_frame_size(const amqp_basic_properties_t *p);

/* Fills d->env (type, ids, headers) from delivered properties; a header table moonbus
 * cannot accept (mb_headers_check's rules included) sets d->problem instead of failing. A
 * missing or non-UUID message id gets a new one (mb_envelope_take_id); a missing type
 * leaves env.type NULL. d->delivery_count comes from
 * x-delivery-count (quorum queues) or the redelivered flag. MB_OK or MB_ENOMEM. */
int mb_amqp_delivery_from_props(mb_delivery *d, const amqp_basic_properties_t *p,
                                int redelivered);

/* The delay infrastructure's names and routing for delay_s seconds (1..MB_AMQP_DELAY_MAX)
 * to dest: the exchange of the highest level the delay needs, and the routing key
 * "b27.b26.....b0.dest" the levels route on. MB_EINVAL if it does not fit. */
int mb_amqp_delay_route(long delay_s, const char *dest, char *exchange, size_t exlen, char *key,
                        size_t keylen, mb_err *err);
/* Names of level L's exchange and queue ("moonbus.delay.07"). */
void mb_amqp_delay_level_name(int level, char *out, size_t len);
/* The topic pattern that matches level L's bit set to one (1) or zero (0). */
void mb_amqp_delay_level_pattern(int level, int bit, char *out, size_t len);
/* The pattern that binds dest to the final delivery exchange (exactly 28 words, then dest). */
int mb_amqp_delay_deliver_pattern(const char *dest, char *out, size_t len);

#endif
