/* envelope.h — the moonbus message envelope (DESIGN §4): its id, type, correlation,
 * reply address, headers and body, and the kind of message it is.
 *
 * Provides: the envelope struct, its kinds (command, event, message), string setters, deep
 * copy, giving a delivered message its id, and what a log line about it names.
 * Uses: ids.h (the id), headers.h (the header list), log.h (mb_log_ids), status.h.
 * Never: touches Lua, a socket or a database; never reads a clock (files that need one
 * include clock.h themselves). */
#ifndef MOONBUS_ENVELOPE_H
#define MOONBUS_ENVELOPE_H

#include <stddef.h>

#include "headers.h"
#include "ids.h"
#include "log.h"
#include "status.h"

typedef enum mb_kind { MB_KIND_COMMAND, MB_KIND_EVENT, MB_KIND_MESSAGE } mb_kind;

/* "command", "event" or "message". */
const char *mb_kind_name(mb_kind kind);
/* MB_OK and *out set, or MB_EINVAL for any other string (NULL included). */
int mb_kind_parse(const char *name, mb_kind *out);

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
/* What a log line about e names: its id, type and conversation id (NULL when it has none);
 * the strings are e's. */
mb_log_ids mb_envelope_log_ids(const mb_envelope *e);

#endif
