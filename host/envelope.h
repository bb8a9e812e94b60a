/* envelope.h — the moonbus message envelope (DESIGN §4): ids, kinds, headers and the one
 * text encoding of headers that every transport storing text uses.
 *
 * Provides: UUIDv7 ids, ISO 8601 UTC time stamps with microseconds, the header list
 * (ordered, string -> string, unique keys), header key validation, and the strict JSON
 * object form of a header list.
 * Uses: libc only.
 * Never: touches Lua, a socket or a database; never trusts a decoded header list
 * (duplicates, nesting, non-strings, oversize input are errors, not crashes). */
#ifndef MOONBUS_ENVELOPE_H
#define MOONBUS_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define MB_ID_LEN 36         /* 8-4-4-4-12 hex digits with dashes */
#define MB_TIME_LEN 27       /* 2026-11-24T21:46:15.123456Z */
#define MB_HEADER_KEY_MAX 255
#define MB_HEADERS_JSON_MAX (1u << 20) /* a header block larger than 1 MiB is malformed */
/* The header rules every transport applies to what it receives and scripts to what they
 * send (README "Limits"): at most MB_HEADERS_MAX_COUNT headers whose keys and values add
 * up to at most MB_HEADERS_MAX_BYTES. They leave room under RabbitMQ's frame_max (128 KiB)
 * for the headers the bus adds to error and audit copies and the broker adds on
 * redelivery (x-delivery-count, x-death). */
#define MB_HEADERS_MAX_COUNT 256
#define MB_HEADERS_MAX_BYTES (64u * 1024u)

/* Well-known header names (DESIGN §4). */
#define MB_H_KIND "moonbus.kind"
#define MB_H_CONVERSATION "moonbus.conversation_id"
#define MB_H_RELATED_TO "moonbus.related_to"
#define MB_H_ORIGIN_ENDPOINT "moonbus.origin.endpoint"
#define MB_H_ORIGIN_HOST "moonbus.origin.host"
#define MB_H_TIME_SENT "moonbus.time_sent"
#define MB_H_DELIVER_AT "moonbus.deliver_at"
#define MB_H_RETRIES_DELAYED "moonbus.retries.delayed"
#define MB_H_RETRIES_IMMEDIATE "moonbus.retries.immediate" /* on error-queue copies */
#define MB_H_FAILED_QUEUE "moonbus.failed.queue"
#define MB_H_FAILED_AT "moonbus.failed.at"
#define MB_H_EXCEPTION_MESSAGE "moonbus.exception.message"
#define MB_H_EXCEPTION_TRACE "moonbus.exception.trace"
#define MB_H_PROCESSING_STARTED "moonbus.processing.started"
#define MB_H_PROCESSING_ENDED "moonbus.processing.ended"
#define MB_H_PROCESSING_ENDPOINT "moonbus.processing.endpoint"
#define MB_H_PROCESSING_HOST "moonbus.processing.host"
#define MB_H_TRACEPARENT "traceparent"
#define MB_H_EXPIRES_AT "moonbus.expires_at" /* ttl: discard if not received by then */
/* Set by the receiving host on a message that came without a moonbus id (a foreign
 * sender): the message id it carried ("" when it had none); env.id is then a new UUIDv7. */
#define MB_H_FOREIGN_ID "moonbus.foreign_id"
#define MB_RESERVED_PREFIX "moonbus."

typedef enum mb_kind { MB_KIND_COMMAND, MB_KIND_EVENT, MB_KIND_MESSAGE } mb_kind;

/* "command", "event" or "message". */
const char *mb_kind_name(mb_kind kind);
/* MB_OK and *out set, or MB_EINVAL for any other string (NULL included). */
int mb_kind_parse(const char *name, mb_kind *out);

/* --- ids and time ------------------------------------------------------------------- */

/* A new UUIDv7 (RFC 9562): 48-bit Unix ms time, then a 12-bit counter that keeps ids of
 * one process strictly increasing within a millisecond, then 62 random bits. Writes
 * MB_ID_LEN lowercase characters and a NUL. */
void mb_uuidv7(char out[MB_ID_LEN + 1]);
/* len bytes from the kernel's random source. */
void mb_random_bytes(uint8_t *buf, size_t len);
/* 1 if s is a UUID in 8-4-4-4-12 hex form (any version), else 0. */
int mb_id_valid(const char *s);

/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t mb_now_usec(void);
/* Seconds on CLOCK_MONOTONIC, for deadlines and durations. */
double mb_monotonic(void);
/* Formats usec as ISO 8601 UTC with microseconds: MB_TIME_LEN characters and a NUL. */
void mb_time_iso(int64_t usec, char out[MB_TIME_LEN + 1]);
/* Parses what mb_time_iso writes (the fraction may have 0-6 digits). MB_OK or MB_EINVAL. */
int mb_time_parse(const char *s, int64_t *usec);

/* --- headers ------------------------------------------------------------------------ */

typedef struct mb_header {
  char *key;   /* one allocation "key\0value\0", owned through key */
  char *value; /* points into key's allocation */
} mb_header;

typedef struct mb_headers {
  mb_header *items;
  size_t len, cap;
} mb_headers;

#define MB_HEADERS_INIT {NULL, 0, 0}

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

/* The header list as a compact JSON object of strings, keys in list order, NUL-terminated,
 * malloc'd; *len (if not NULL) gets its length. NULL on out of memory. Non-ASCII bytes are
 * copied as they are; control characters, quote and backslash are escaped. */
char *mb_headers_to_json(const mb_headers *h, size_t *len);
/* Strict decoder for what mb_headers_to_json writes: one JSON object whose values are all
 * strings; \uXXXX escapes (with surrogate pairs) become UTF-8. Duplicate keys, nesting,
 * non-string values, trailing bytes, NUL in a key or value, or more than
 * MB_HEADERS_JSON_MAX bytes are MB_EINVAL with the reason in err. out is replaced. */
int mb_headers_from_json(const char *json, size_t len, mb_headers *out, mb_err *err);

/* --- the envelope -------------------------------------------------------------------- */

typedef struct mb_envelope {
  char id[MB_ID_LEN + 1];
  char *type;           /* message type, e.g. "sales.PlaceOrder"; never NULL once built */
  char *correlation_id; /* NULL when absent */
  char *reply_to;       /* queue replies go to; NULL when absent */
  mb_headers headers;   /* moonbus.* and user headers */
  char *body;           /* JSON text, NUL-terminated; body_len excludes the NUL */
  size_t body_len;
} mb_envelope;

void mb_envelope_init(mb_envelope *e);
void mb_envelope_free(mb_envelope *e);
/* Deep copy; dst must be initialised (it is freed first). */
int mb_envelope_copy(mb_envelope *dst, const mb_envelope *src);
/* Helpers that replace a string field with a copy (NULL clears). MB_OK or MB_ENOMEM. */
int mb_envelope_set_type(mb_envelope *e, const char *type);
int mb_envelope_set_correlation_id(mb_envelope *e, const char *id);
int mb_envelope_set_reply_to(mb_envelope *e, const char *queue);
int mb_envelope_set_body(mb_envelope *e, const char *body, size_t len);
/* Gives e its id from what a transport delivered: a UUID is copied as it is; anything else
 * (NULL, empty, another form) gets a new UUIDv7 and the original (at most 255 bytes of it,
 * "" for none) in header MB_H_FOREIGN_ID. MB_OK or MB_ENOMEM. */
int mb_envelope_take_id(mb_envelope *e, const char *id, size_t len);
/* The envelope's kind from its moonbus.kind header: MB_OK, or MB_EINVAL if absent/unknown. */
int mb_envelope_kind(const mb_envelope *e, mb_kind *out);

#endif
