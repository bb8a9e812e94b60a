/* audit.c — the audit copy of a handled message (see audit.h): a byte-for-byte copy with
 * the processing headers of DESIGN §4. Never: sends, or changes the original. */
#include "audit.h"

#include "clock.h"
#include "msgcopy.h"

static int set_time(mb_headers *h, const char *key, int64_t usec) {
  char when[MB_TIME_LEN + 1];
  mb_time_iso(usec, when);
  return mb_headers_set(h, key, when);
}

mb_outgoing *mb_audit_copy(const mb_delivery *d, const mb_audit_info *info) {
  mb_outgoing *copy = mb_msgcopy(d, info->queue);
  if (copy == NULL) return NULL;
  copy->archive = 1;
  mb_headers *h = &copy->env.headers;
  int rc = set_time(h, MB_H_PROCESSING_STARTED, info->started_usec);
  if (rc == MB_OK) rc = set_time(h, MB_H_PROCESSING_ENDED, info->ended_usec);
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_PROCESSING_ENDPOINT, info->endpoint);
  if (rc == MB_OK) rc = mb_headers_set(h, MB_H_PROCESSING_HOST, info->host);
  if (rc != MB_OK) {
    mb_outgoing_free(copy);
    return NULL;
  }
  return copy;
}
