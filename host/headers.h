/* headers.h — the header list of a message (DESIGN §4): ordered, string -> string, unique
 * keys; the rules a header list must keep; and the names of the bus's own headers.
 *
 * Provides: the list (append, set, get, remove, copy, free), key validation, the header
 * rules every transport applies to what it receives and scripts to what they send, and
 * the well-known header names (MB_H_*).
 * Uses: libc, status.h.
 * Never: touches Lua, a socket or a database; never encodes a list (headers_json.h does);
 * never spells a moonbus.* header name outside this file. */
#ifndef MOONBUS_HEADERS_H
#define MOONBUS_HEADERS_H

#include <stddef.h>

#include "status.h"

#define MB_HEADER_KEY_MAX 255
/* The header rules every transport applies to what it receives and scripts to what they
 * send (README "Limits"): at most MB_HEADERS_MAX_COUNT headers whose keys and values add
 * up to at most MB_HEADERS_MAX_BYTES. They leave room under RabbitMQ's frame_max (128 KiB)
 * for the headers the bus adds to error and audit copies and the broker adds on
 * redelivery (x-delivery-count, x-death). */
#define MB_HEADERS_MAX_COUNT 256
#define MB_HEADERS_MAX_BYTES (64u * 1024u)

/* Well-known header names (DESIGN §4). */
#define MB_H_KIND "moonbus.kind"
/* The version of its type's contract a message was sent with (a whole number >= 1; absent:
 * 1), stamped when the type is declared with { version = N } (README "Message versions"). */
#define MB_H_VERSION "moonbus.version"
#define MB_H_CONVERSATION "moonbus.conversation_id"
#define MB_H_RELATED_TO "moonbus.related_to"
#define MB_H_ORIGIN_ENDPOINT "moonbus.origin.endpoint"
#define MB_H_ORIGIN_HOST "moonbus.origin.host"
#define MB_H_TIME_SENT "moonbus.time_sent"
#define MB_H_DELIVER_AT "moonbus.deliver_at"
#define MB_H_EXPIRES_AT "moonbus.expires_at" /* ttl: discard if not received by then */
#define MB_H_RETRIES_PREFIX "moonbus.retries."
#define MB_H_RETRIES_DELAYED "moonbus.retries.delayed"
#define MB_H_RETRIES_IMMEDIATE "moonbus.retries.immediate" /* on error-queue copies */
#define MB_H_FAILED_PREFIX "moonbus.failed."
#define MB_H_FAILED_QUEUE "moonbus.failed.queue"
#define MB_H_FAILED_AT "moonbus.failed.at"
#define MB_H_FAILED_DELIVERIES "moonbus.failed.deliveries" /* the transport's delivery count */
#define MB_H_EXCEPTION_PREFIX "moonbus.exception."
#define MB_H_EXCEPTION_MESSAGE "moonbus.exception.message"
#define MB_H_EXCEPTION_TRACE "moonbus.exception.trace"
#define MB_H_PROCESSING_STARTED "moonbus.processing.started"
#define MB_H_PROCESSING_ENDED "moonbus.processing.ended"
#define MB_H_PROCESSING_ENDPOINT "moonbus.processing.endpoint"
#define MB_H_PROCESSING_HOST "moonbus.processing.host"
#define MB_H_DISCARDED "moonbus.discarded" /* on the audit copy of a message not handled: why */
#define MB_H_TRACEPARENT "traceparent"
/* Set by the receiving host on a message that came without a moonbus id (a foreign
 * sender): the message id it carried ("" when it had none); env.id is then a new UUIDv7. */
#define MB_H_FOREIGN_ID "moonbus.foreign_id"
/* On an error or audit copy whose original headers broke the header rules: what was
 * removed from the copy, and why (the body is always kept). */
#define MB_H_HEADERS_REMOVED "moonbus.headers.removed"
/* On a message an operator edited and sent again from `moonbus ops`: the id of the failed
 * message it replaces (the new message has an id of its own). */
#define MB_H_EDITED_FROM "moonbus.edited_from"
#define MB_RESERVED_PREFIX "moonbus."

typedef struct mb_header {
  char *key;   /* one allocation "key\0value\0", owned through key */
  char *value; /* points into key's allocation */
} mb_header;

typedef struct mb_headers {
  mb_header *items;
  size_t len, cap;
} mb_headers;

#define MB_HEADERS_INIT                                                                          \
  { NULL, 0, 0 }

/* Appends key and value (klen and vlen bytes, no NUL inside) without looking for the key:
 * for decoders that have checked it is not there. MB_OK or MB_ENOMEM. */
int mb_headers_append_n(mb_headers *h, const char *key, size_t klen, const char *value,
                        size_t vlen);
/* Sets key to a copy of value, replacing an existing key in place. MB_OK or MB_ENOMEM. */
int mb_headers_set(mb_headers *h, const char *key, const char *value);
/* The value of key, or NULL. */
const char *mb_headers_get(const mb_headers *h, const char *key);
/* Removes key if present; returns 1 if it was there. */
int mb_headers_remove(mb_headers *h, const char *key);
/* dst becomes a deep copy of src (dst is freed first). */
int mb_headers_copy(mb_headers *dst, const mb_headers *src);
void mb_headers_free(mb_headers *h);

/* Why a header key is refused, or NULL if it is fine: 1-255 bytes of printable ASCII
 * (0x21-0x7e). With allow_reserved == 0, keys starting with "moonbus." (the bus's own) or
 * "x-" (the broker's: RabbitMQ's x-delivery-count, x-death, ...) are refused too. */
const char *mb_header_key_problem(const char *key, int allow_reserved);

/* MB_OK if h keeps the header rules above (count, total bytes of keys and values, and
 * mb_header_key_problem(key, allow_reserved) for each key); else MB_EINVAL with the
 * reason, naming the first key at fault, in err. Linear in the size of h. */
int mb_headers_check(const mb_headers *h, int allow_reserved, mb_err *err);

#endif
