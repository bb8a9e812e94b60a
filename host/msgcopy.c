/* msgcopy.c — copies of a delivered message to another queue (see msgcopy.h), and the one
 * rule for what such a copy keeps of headers that break the header rules.
 * Never: sends, decides where a message goes, or touches the original. */
#include "msgcopy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP_MAX 64     /* headers a copy keeps when the original's break the rules */
#define KEEP_BYTES 1024 /* the longest header (key and value) such a copy keeps */

int mb_msgcopy_set_number(mb_headers *h, const char *key, long n) {
  char text[24];
  snprintf(text, sizeof text, "%ld", n);
  return mb_headers_set(h, key, text);
}

static int keep_when_oversize(const mb_header *hd, size_t kept) {
  size_t n = strlen(hd->key) + strlen(hd->value);
  return kept < KEEP_MAX && n <= KEEP_BYTES && mb_header_key_problem(hd->key, 1) == NULL &&
         (strncmp(hd->key, MB_RESERVED_PREFIX, strlen(MB_RESERVED_PREFIX)) == 0 ||
          strcmp(hd->key, MB_H_TRACEPARENT) == 0);
}

/* Keeps the bus's own short headers when h breaks the header rules, noting what went. */
static int fit_headers(mb_headers *h) {
  mb_err why;
  if (mb_headers_check(h, 1, &why) == MB_OK) return MB_OK;
  mb_headers kept = MB_HEADERS_INIT;
  size_t dropped = 0, bytes = 0;
  int rc = MB_OK;
  for (size_t i = 0; rc == MB_OK && i < h->len; i++) {
    const mb_header *hd = &h->items[i];
    if (keep_when_oversize(hd, kept.len))
      rc = mb_headers_append_n(&kept, hd->key, strlen(hd->key), hd->value, strlen(hd->value));
    else dropped++, bytes += strlen(hd->key) + strlen(hd->value);
  }
  char note[MB_ERRLEN + 128];
  snprintf(note, sizeof note,
           "%zu headers (%zu bytes of keys and values) were removed from "
           "this copy: %s",
           dropped, bytes, why.msg);
  if (rc == MB_OK) rc = mb_headers_set(&kept, MB_H_HEADERS_REMOVED, note);
  if (rc != MB_OK) {
    mb_headers_free(&kept);
    return rc;
  }
  mb_headers_free(h);
  *h = kept;
  return MB_OK;
}

mb_outgoing *mb_msgcopy(const mb_delivery *d, const char *queue) {
  mb_outgoing *copy = malloc(sizeof *copy);
  if (copy == NULL) return NULL;
  mb_outgoing_init(copy);
  copy->route = MB_ROUTE_QUEUE;
  if (mb_envelope_copy(&copy->env, &d->env) != MB_OK || (copy->dest = strdup(queue)) == NULL ||
      fit_headers(&copy->env.headers) != MB_OK) {
    mb_outgoing_free(copy);
    return NULL;
  }
  return copy;
}
