/* envelope.c — the message envelope (DESIGN §4): its kind and its deep copies.
 * Owns: every envelope's strings, body and header list. Never touches Lua, sockets or
 * databases; ids, clocks, header lists and their encoding live in ids.c, clock.c,
 * headers.c and headers_json.c. */
#include "envelope.h"

#include <stdlib.h>
#include <string.h>

/* --- kinds ------------------------------------------------------------------------- */

static const char *const kind_names[] = {"command", "event", "message"};

const char *mb_kind_name(mb_kind kind) {
  return (unsigned)kind < 3 ? kind_names[kind] : "unknown";
}

int mb_kind_parse(const char *name, mb_kind *out) {
  for (int i = 0; name && i < 3; i++) {
    if (strcmp(name, kind_names[i]) == 0) {
      *out = (mb_kind)i;
      return MB_OK;
    }
  }
  return MB_EINVAL;
}

/* --- the envelope ---------------------------------------------------------------------- */

void mb_envelope_init(mb_envelope *e) { memset(e, 0, sizeof *e); }

void mb_envelope_free(mb_envelope *e) {
  free(e->type);
  free(e->correlation_id);
  free(e->reply_to);
  free(e->body);
  mb_headers_free(&e->headers);
  mb_envelope_init(e);
}

static int replace(char **field, const char *value) {
  char *copy = NULL;
  if (value && (copy = strdup(value)) == NULL) return MB_ENOMEM;
  free(*field);
  *field = copy;
  return MB_OK;
}

int mb_envelope_set_type(mb_envelope *e, const char *type) { return replace(&e->type, type); }

int mb_envelope_set_correlation_id(mb_envelope *e, const char *id) {
  return replace(&e->correlation_id, id);
}

int mb_envelope_set_reply_to(mb_envelope *e, const char *queue) {
  return replace(&e->reply_to, queue);
}

int mb_envelope_set_body(mb_envelope *e, const char *body, size_t len) {
  char *copy = malloc(len + 1);
  if (copy == NULL) return MB_ENOMEM;
  if (len) memcpy(copy, body, len);
  copy[len] = '\0';
  free(e->body);
  e->body = copy;
  e->body_len = len;
  return MB_OK;
}

int mb_envelope_copy(mb_envelope *dst, const mb_envelope *src) {
  mb_envelope_free(dst);
  memcpy(dst->id, src->id, sizeof dst->id);
  int rc = mb_envelope_set_type(dst, src->type);
  if (rc == MB_OK) rc = mb_envelope_set_correlation_id(dst, src->correlation_id);
  if (rc == MB_OK) rc = mb_envelope_set_reply_to(dst, src->reply_to);
  if (rc == MB_OK) rc = mb_headers_copy(&dst->headers, &src->headers);
  if (rc == MB_OK && src->body) rc = mb_envelope_set_body(dst, src->body, src->body_len);
  if (rc != MB_OK) mb_envelope_free(dst);
  return rc;
}

int mb_envelope_take_id(mb_envelope *e, const char *id, size_t len) {
  if (id && len == MB_ID_LEN && memchr(id, '\0', len) == NULL) {
    memcpy(e->id, id, MB_ID_LEN);
    e->id[MB_ID_LEN] = '\0';
    if (mb_id_valid(e->id)) return MB_OK;
  }
  mb_uuidv7(e->id);
  char original[MB_HEADER_KEY_MAX + 1];
  size_t n = id ? strnlen(id, len < MB_HEADER_KEY_MAX ? len : MB_HEADER_KEY_MAX) : 0;
  memcpy(original, id ? id : "", n);
  original[n] = '\0';
  return mb_headers_set(&e->headers, MB_H_FOREIGN_ID, original);
}

int mb_envelope_kind(const mb_envelope *e, mb_kind *out) {
  return mb_kind_parse(mb_headers_get(&e->headers, MB_H_KIND), out);
}

mb_log_ids mb_envelope_log_ids(const mb_envelope *e) {
  mb_log_ids ids = {e->id, e->type, mb_headers_get(&e->headers, MB_H_CONVERSATION)};
  return ids;
}
