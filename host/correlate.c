/* correlate.c — pending requests (see correlate.h): a chained hash of correlation id to
 * callback, one ev_timer per request for its deadline, and a small ring of the ids that
 * timed out lately so that a late reply can be told from a stray one in the log.
 * Never: resumes anything itself (the callback does), or keeps a reply it handed over. */
#include "correlate.h"

#include <ev.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"

#define BUCKETS 1024 /* chains stay short for thousands of requests in flight */
#define RECENT 256   /* timed-out ids remembered, to call a late reply late */

typedef struct pending {
  ev_timer timeout;
  mb_correlate *c;
  char id[MB_ID_LEN + 1];
  mb_reply_fn fn;
  void *ud;
  struct pending *next;
} pending;

typedef struct timed_out {
  char id[MB_ID_LEN + 1];
  ev_tstamp at;
} timed_out;

struct mb_correlate {
  struct ev_loop *loop;
  pending *buckets[BUCKETS];
  size_t n;
  timed_out recent[RECENT];
  size_t recent_next;
};

static size_t bucket_of(const char *id) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 16777619u;
  return h % BUCKETS;
}

/* The slot that points at the entry for id (or at the NULL that ends its chain). */
static pending **find(mb_correlate *c, const char *id) {
  pending **pp = &c->buckets[bucket_of(id)];
  while (*pp && strcmp((*pp)->id, id) != 0) pp = &(*pp)->next;
  return pp;
}

/* Unlinks *pp, stops its timer and returns it. */
static pending *take(mb_correlate *c, pending **pp) {
  pending *p = *pp;
  *pp = p->next;
  ev_timer_stop(c->loop, &p->timeout);
  c->n--;
  return p;
}

static void remember_timeout(mb_correlate *c, const char *id) {
  timed_out *slot = &c->recent[c->recent_next++ % RECENT];
  memcpy(slot->id, id, sizeof slot->id);
  slot->at = ev_now(c->loop);
}

static void expired(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  pending *p = (pending *)w;
  mb_correlate *c = p->c;
  take(c, find(c, p->id));
  remember_timeout(c, p->id);
  mb_reply_fn fn = p->fn;
  void *ud = p->ud;
  free(p);
  fn(ud, NULL);
}

mb_correlate *mb_correlate_new(struct ev_loop *loop) {
  mb_correlate *c = calloc(1, sizeof *c);
  if (c) c->loop = loop;
  return c;
}

void mb_correlate_free(mb_correlate *c) {
  if (c == NULL) return;
  for (size_t b = 0; b < BUCKETS; b++)
    while (c->buckets[b]) free(take(c, &c->buckets[b]));
  free(c);
}

int mb_correlate_expect(mb_correlate *c, const char *id, double timeout, mb_reply_fn fn,
                        void *ud) {
  if (strlen(id) > MB_ID_LEN || !(timeout > 0)) return MB_EINVAL;
  pending **slot = find(c, id);
  if (*slot) return MB_EINVAL;
  pending *p = calloc(1, sizeof *p);
  if (p == NULL) return MB_ENOMEM;
  p->c = c;
  strcpy(p->id, id);
  p->fn = fn;
  p->ud = ud;
  ev_timer_init(&p->timeout, expired, timeout, 0.);
  ev_timer_start(c->loop, &p->timeout);
  *slot = p;
  c->n++;
  return MB_OK;
}

int mb_correlate_cancel(mb_correlate *c, const char *id) {
  pending **slot = find(c, id);
  if (*slot == NULL) return 0;
  free(take(c, slot));
  return 1;
}

static long late_by(const mb_correlate *c, const char *id) {
  for (size_t i = 0; i < RECENT; i++)
    if (strcmp(c->recent[i].id, id) == 0)
      return (long)((ev_now(c->loop) - c->recent[i].at) * 1000);
  return -1;
}

int mb_correlate_deliver(mb_correlate *c, mb_delivery *reply, long *late_ms) {
  const char *id = reply->env.correlation_id ? reply->env.correlation_id : "";
  pending **slot = find(c, id);
  if (*slot == NULL || id[0] == '\0') {
    if (late_ms) *late_ms = id[0] ? late_by(c, id) : -1;
    return MB_ENOTFOUND;
  }
  pending *p = take(c, slot);
  mb_reply_fn fn = p->fn;
  void *ud = p->ud;
  free(p);
  fn(ud, reply);
  return MB_OK;
}

size_t mb_correlate_pending(const mb_correlate *c) { return c ? c->n : 0; }
