/* metrics.c — one endpoint's figures (DESIGN §11): the series per message type (received,
 * handled per outcome, the processing and critical histograms), the reload, reconnect and
 * queue-length counts, and their two renderings (Prometheus text, the ops report's JSON).
 *
 * Owns: the series (one block per type, made at its first sighting, with the baseline of
 * the last report beside the running counts), an open-addressing table from a type's bytes
 * to its series, and the last sample of each queue.
 * Never: allocates per message, trusts a type (a foreign sender's bytes: escaped, invalid
 * UTF-8 replaced, past MB_METRICS_MAX_TYPES or MAX_TYPE_LEN counted under "(other)"), or
 * renders two series under one label set. */
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "json.h"
#include "status.h"

#define SLOTS 512                  /* the table: a power of two, over twice the keys it holds */
#define MAX_KEYS 384               /* type names and aliases (invalid UTF-8 read alike) */
#define MAX_TYPE_LEN 256           /* a longer type is nobody's contract: "(other)" */
#define NONE_TYPE "(none)"         /* a message without a type */
#define OTHER MB_METRICS_MAX_TYPES /* the index of "(other)" in series[] */

const double mb_metrics_bounds[MB_METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};

static const char *const outcome_names[MB_METRIC_OUTCOMES] = {"success", "retried", "delayed",
                                                              "error", "discarded"};

typedef struct hist {
  uint64_t buckets[MB_METRICS_BUCKETS + 1]; /* per bucket, not cumulative; the last: +Inf */
  uint64_t count;
  double sum;
} hist;

typedef struct counts {
  uint64_t received;
  uint64_t handled[MB_METRIC_OUTCOMES];
  hist processing, critical;
} counts;

typedef struct series {
  counts now, base; /* base: as of the last report */
  char name[];      /* the label value: the type with invalid UTF-8 replaced */
} series;

typedef struct slot {
  const char *key; /* the type's bytes; NULL: empty */
  uint32_t hash;
  uint16_t series; /* index in series[] */
  uint8_t owned;   /* key is malloc'd (an alias), not a series' name */
} slot;

typedef struct queue_sample {
  char *name;
  long ready;
} queue_sample;

struct mb_metrics {
  char *endpoint;
  series *series[MB_METRICS_MAX_TYPES + 1]; /* in order of first sighting; [OTHER] last */
  unsigned n_series, n_keys;
  slot table[SLOTS];
  queue_sample queues[MB_METRICS_MAX_QUEUES];
  unsigned n_queues;
  uint64_t reloads_ok, reloads_refused, reconnects;
  uint64_t base_reloads_ok, base_reloads_refused, base_reconnects;
  uint64_t seq;
};

const char *mb_metric_outcome_name(mb_metric_outcome o) {
  return (unsigned)o < MB_METRIC_OUTCOMES ? outcome_names[o] : "unknown";
}

mb_metrics *mb_metrics_new(const char *endpoint) {
  mb_metrics *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  if ((m->endpoint = strdup(endpoint ? endpoint : "")) == NULL) {
    free(m);
    return NULL;
  }
  return m;
}

void mb_metrics_free(mb_metrics *m) {
  if (m == NULL) return;
  for (unsigned i = 0; i < SLOTS; i++)
    if (m->table[i].owned) free((char *)m->table[i].key);
  for (unsigned i = 0; i < MB_METRICS_MAX_TYPES; i++) free(m->series[i]);
  free(m->series[OTHER]);
  for (unsigned i = 0; i < m->n_queues; i++) free(m->queues[i].name);
  free(m->endpoint);
  free(m);
}

/* --- finding a type's series ------------------------------------------------------------- */

static uint32_t hash_of(const char *s, size_t *len) {
  uint32_t h = 2166136261u; /* FNV-1a */
  const unsigned char *p = (const unsigned char *)s;
  for (; *p; p++) h = (h ^ *p) * 16777619u;
  *len = (size_t)(p - (const unsigned char *)s);
  return h;
}

/* The slot holding key, or the empty slot where it would go. */
static slot *probe(mb_metrics *m, const char *key, uint32_t h) {
  for (unsigned i = h & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
    slot *s = &m->table[i];
    if (s->key == NULL || (s->hash == h && strcmp(s->key, key) == 0)) return s;
  }
}

/* key with each byte of invalid UTF-8 replaced by U+FFFD (malloc'd), or NULL. */
static char *valid_utf8(const char *key, size_t len) {
  char *out = malloc(len * 3 + 1);
  if (out == NULL) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    size_t n = mb_utf8_sequence((const unsigned char *)key + i, len - i);
    if (n == 0) {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    } else {
      memcpy(out + o, key + i, n);
      o += n;
      i += n;
    }
  }
  out[o] = '\0';
  return out;
}

static series *series_alloc(const char *name) {
  size_t len = strlen(name);
  series *s = calloc(1, sizeof *s + len + 1);
  if (s) memcpy(s->name, name, len + 1);
  return s;
}

static series *other(mb_metrics *m) {
  if (m->series[OTHER] == NULL) m->series[OTHER] = series_alloc(MB_METRICS_OTHER_TYPE);
  return m->series[OTHER];
}

/* The index of the series named name (a label value), or -1. */
static int named(const mb_metrics *m, const char *name) {
  for (unsigned i = 0; i < m->n_series; i++)
    if (strcmp(m->series[i]->name, name) == 0) return (int)i;
  return -1;
}

/* The series index for key, made (or shared with the series its label reads as) when key
 * is new; -1: count it under "(other)". */
static int add_key(mb_metrics *m, slot *s, const char *key, size_t len, uint32_t h) {
  char *name = valid_utf8(key, len);
  if (name == NULL) return -1;
  int idx = named(m, name);
  int alias = idx >= 0 || strcmp(name, key) != 0;
  if (idx < 0 && (m->series[m->n_series] = series_alloc(name)) != NULL) idx = (int)m->n_series++;
  if (idx >= 0 && (!alias || (s->key = strdup(key)) != NULL)) {
    if (!alias) s->key = m->series[idx]->name;
    s->hash = h;
    s->series = (uint16_t)idx;
    s->owned = (uint8_t)alias;
    m->n_keys++;
  }
  free(name);
  return idx;
}

static series *find(mb_metrics *m, const char *type) {
  const char *key = type && type[0] ? type : NONE_TYPE;
  size_t len;
  uint32_t h = hash_of(key, &len);
  slot *s = probe(m, key, h);
  if (s->key) return m->series[s->series];
  if (len > MAX_TYPE_LEN || m->n_keys >= MAX_KEYS || m->n_series >= MB_METRICS_MAX_TYPES ||
      strcmp(key, MB_METRICS_OTHER_TYPE) == 0)
    return other(m); /* no allocation, no search: a flood of new names costs a probe each */
  int idx = add_key(m, s, key, len, h);
  return idx >= 0 ? m->series[idx] : other(m);
}

/* --- counting -------------------------------------------------------------------------- */

static void observe(hist *hg, double seconds) {
  unsigned i = 0;
  while (i < MB_METRICS_BUCKETS && !(seconds <= mb_metrics_bounds[i])) i++;
  hg->buckets[i]++;
  hg->count++;
  hg->sum += seconds;
}

void mb_metrics_received(mb_metrics *m, const char *type) {
  series *s = find(m, type);
  if (s) s->now.received++;
}

void mb_metrics_outcome(mb_metrics *m, const char *type, mb_metric_outcome o, double processing_s,
                        double critical_s) {
  series *s = find(m, type);
  if (s == NULL || (unsigned)o >= MB_METRIC_OUTCOMES) return;
  if (!(processing_s >= 0)) processing_s = 0; /* NaN too */
  s->now.handled[o]++;
  observe(&s->now.processing, processing_s);
  if (critical_s >= 0)
    observe(&s->now.critical, critical_s > processing_s ? critical_s : processing_s);
}

void mb_metrics_reload(mb_metrics *m, int ok) {
  if (ok) m->reloads_ok++;
  else m->reloads_refused++;
}

void mb_metrics_reconnect(mb_metrics *m) { m->reconnects++; }

void mb_metrics_queue_length(mb_metrics *m, const char *queue, long ready) {
  if (queue == NULL) return;
  for (unsigned i = 0; i < m->n_queues; i++)
    if (strcmp(m->queues[i].name, queue) == 0) {
      m->queues[i].ready = ready;
      return;
    }
  if (m->n_queues == MB_METRICS_MAX_QUEUES) return;
  char *name = strdup(queue);
  if (name == NULL) return;
  m->queues[m->n_queues++] = (queue_sample){name, ready};
}

/* --- reads ------------------------------------------------------------------------------ */

/* Loops over every series as s, "(other)" last. */
#define EACH_SERIES(m, s, i)                                                                     \
  for (unsigned i = 0; i <= (m)->n_series; i++)                                                  \
    for (const series *s = i < (m)->n_series ? (m)->series[i] : (m)->series[OTHER]; s; s = NULL)

unsigned long mb_metrics_handled(const mb_metrics *m, mb_metric_outcome o) {
  uint64_t n = 0;
  if ((unsigned)o >= MB_METRIC_OUTCOMES) return 0;
  EACH_SERIES(m, s, i) n += s->now.handled[o];
  return (unsigned long)n;
}

unsigned long mb_metrics_received_total(const mb_metrics *m) {
  uint64_t n = 0;
  EACH_SERIES(m, s, i) n += s->now.received;
  return (unsigned long)n;
}

/* --- the Prometheus text format ---------------------------------------------------------- */

/* A label value (already valid UTF-8): backslash, double quote and newline escaped. */
static void label(mb_jbuf *b, const char *v) {
  for (const char *p = v; *p; p++) {
    if (*p == '\\') mb_jbuf_raw(b, "\\\\", 2);
    else if (*p == '"') mb_jbuf_raw(b, "\\\"", 2);
    else if (*p == '\n') mb_jbuf_raw(b, "\\n", 2);
    else mb_jbuf_raw(b, p, 1);
  }
}

static void family(mb_jbuf *b, const char *name, const char *type, const char *help) {
  mb_jbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{endpoint="…",type="…"  (the caller closes the braces) */
static void start(mb_jbuf *b, const mb_metrics *m, const char *name, const char *type) {
  mb_jbuf_printf(b, "%s{endpoint=\"", name);
  label(b, m->endpoint);
  if (type) {
    mb_jbuf_raw(b, "\",type=\"", 8);
    label(b, type);
  }
  mb_jbuf_raw(b, "\"", 1);
}

static void render_counts(mb_jbuf *b, const mb_metrics *m) {
  family(b, "moonbus_messages_received_total", "counter", "Deliveries received.");
  EACH_SERIES(m, s, i) {
    start(b, m, "moonbus_messages_received_total", s->name);
    mb_jbuf_printf(b, "} %" PRIu64 "\n", s->now.received);
  }
  family(b, "moonbus_messages_handled_total", "counter",
         "Outcomes of attempts: success, retried, delayed, error, discarded.");
  EACH_SERIES(m, s, i) {
    for (unsigned o = 0; o < MB_METRIC_OUTCOMES; o++) {
      start(b, m, "moonbus_messages_handled_total", s->name);
      mb_jbuf_printf(b, ",outcome=\"%s\"} %" PRIu64 "\n", outcome_names[o], s->now.handled[o]);
    }
  }
}

static void render_hist(mb_jbuf *b, const mb_metrics *m, const char *name, const char *help,
                        size_t offset) {
  char bucket[64], part[64];
  family(b, name, "histogram", help);
  snprintf(bucket, sizeof bucket, "%s_bucket", name);
  EACH_SERIES(m, s, i) {
    const hist *hg = (const hist *)((const char *)&s->now + offset);
    uint64_t cum = 0;
    for (unsigned k = 0; k <= MB_METRICS_BUCKETS; k++) {
      cum += hg->buckets[k];
      start(b, m, bucket, s->name);
      mb_jbuf_raw(b, ",le=\"", 5);
      if (k < MB_METRICS_BUCKETS) mb_jbuf_num(b, mb_metrics_bounds[k]);
      else mb_jbuf_raw(b, "+Inf", 4);
      mb_jbuf_printf(b, "\"} %" PRIu64 "\n", cum);
    }
    snprintf(part, sizeof part, "%s_sum", name);
    start(b, m, part, s->name);
    mb_jbuf_raw(b, "} ", 2);
    mb_jbuf_num(b, hg->sum);
    mb_jbuf_raw(b, "\n", 1);
    snprintf(part, sizeof part, "%s_count", name);
    start(b, m, part, s->name);
    mb_jbuf_printf(b, "} %" PRIu64 "\n", hg->count);
  }
}

static void gauge(mb_jbuf *b, const mb_metrics *m, const char *name, const char *type,
                  const char *help, uint64_t v) {
  family(b, name, type, help);
  start(b, m, name, NULL);
  mb_jbuf_printf(b, "} %" PRIu64 "\n", v);
}

static void render_host(mb_jbuf *b, const mb_metrics *m, const mb_metrics_gauges *g) {
  gauge(b, m, "moonbus_handlers_in_flight", "gauge", "Handlers in flight.", g->in_flight);
  gauge(b, m, "moonbus_requests_pending", "gauge", "bus.request calls waiting for a reply.",
        g->requests_pending);
  family(b, "moonbus_queue_length", "gauge", "Ready messages in the queue, last sample.");
  for (unsigned i = 0; i < m->n_queues; i++) {
    if (m->queues[i].ready < 0) continue;
    mb_jbuf_raw(b, "moonbus_queue_length{queue=\"", 28);
    label(b, m->queues[i].name);
    mb_jbuf_printf(b, "\"} %ld\n", m->queues[i].ready);
  }
  gauge(b, m, "moonbus_lua_memory_bytes", "gauge", "Bytes the Lua state holds.", g->lua_memory);
  gauge(b, m, "moonbus_shared_memory_bytes", "gauge", "Bytes bus.shared holds.",
        g->shared_memory);
  family(b, "moonbus_reloads_total", "counter", "Reloads adopted (ok) or refused.");
  start(b, m, "moonbus_reloads_total", NULL);
  mb_jbuf_printf(b, ",result=\"ok\"} %" PRIu64 "\n", m->reloads_ok);
  start(b, m, "moonbus_reloads_total", NULL);
  mb_jbuf_printf(b, ",result=\"refused\"} %" PRIu64 "\n", m->reloads_refused);
  gauge(b, m, "moonbus_reconnects_total", "counter", "Connections made again after a loss.",
        m->reconnects);
}

int mb_metrics_render(const mb_metrics *m, const mb_metrics_gauges *g, char **out, size_t *len) {
  static const mb_metrics_gauges zero;
  mb_jbuf b = MB_JBUF_INIT;
  render_counts(&b, m);
  render_hist(&b, m, "moonbus_processing_seconds",
              "Seconds from the start of an attempt to its outcome.",
              offsetof(counts, processing));
  render_hist(&b, m, "moonbus_critical_seconds", "Seconds from time_sent to the outcome.",
              offsetof(counts, critical));
  render_host(&b, m, g ? g : &zero);
  *out = mb_jbuf_take(&b, len);
  return *out ? MB_OK : MB_ENOMEM;
}

/* --- the report --------------------------------------------------------------------------- */

static void delta_hist(hist *d, const hist *now, const hist *base) {
  for (unsigned k = 0; k <= MB_METRICS_BUCKETS; k++)
    d->buckets[k] += now->buckets[k] - base->buckets[k];
  d->count += now->count - base->count;
  d->sum += now->sum - base->sum;
}

/* The deltas of s added to d; 1 if any is nonzero. */
static int delta(counts *d, const series *s) {
  uint64_t any = s->now.received - s->base.received;
  d->received += any;
  for (unsigned o = 0; o < MB_METRIC_OUTCOMES; o++) {
    d->handled[o] += s->now.handled[o] - s->base.handled[o];
    any |= s->now.handled[o] - s->base.handled[o];
  }
  delta_hist(&d->processing, &s->now.processing, &s->base.processing);
  delta_hist(&d->critical, &s->now.critical, &s->base.critical);
  return any != 0;
}

static void key(mb_jbuf *b, const char *k) {
  mb_jbuf_cstr(b, k);
  mb_jbuf_raw(b, ":", 1);
}

static void outcomes_json(mb_jbuf *b, const counts *c) {
  for (unsigned o = 0; o < MB_METRIC_OUTCOMES; o++) {
    mb_jbuf_printf(b, "%s\"%s\":%" PRIu64, o ? "," : "", outcome_names[o], c->handled[o]);
  }
}

static void hist_json(mb_jbuf *b, const char *name, const hist *hg) {
  key(b, name);
  mb_jbuf_printf(b, "{\"count\":%" PRIu64 ",\"sum\":", hg->count);
  mb_jbuf_num(b, hg->sum);
  mb_jbuf_raw(b, ",\"buckets\":[", 12);
  for (unsigned k = 0; k <= MB_METRICS_BUCKETS; k++)
    mb_jbuf_printf(b, "%s%" PRIu64, k ? "," : "", hg->buckets[k]);
  mb_jbuf_raw(b, "]},", 3);
}

/* ISO 8601 UTC with milliseconds. */
static void stamp(mb_jbuf *b, const char *k, int64_t usec) {
  char iso[MB_TIME_LEN + 1];
  mb_time_iso(usec, iso);
  memcpy(iso + 23, "Z", 2); /* 2026-11-24T21:46:15.123|456Z */
  key(b, k);
  mb_jbuf_cstr(b, iso);
  mb_jbuf_raw(b, ",", 1);
}

static void report_head(mb_jbuf *b, const mb_metrics *m, const mb_report_info *info,
                        double window_s) {
  mb_jbuf_raw(b, "{\"version\":1,", 13);
  key(b, "endpoint");
  mb_jbuf_cstr(b, m->endpoint);
  mb_jbuf_raw(b, ",\"instance\":", 12);
  mb_jbuf_cstr(b, info->instance ? info->instance : "");
  mb_jbuf_raw(b, ",\"host\":", 8);
  mb_jbuf_cstr(b, info->host ? info->host : "");
  mb_jbuf_printf(b, ",\"pid\":%ld,\"generation\":%u,\"seq\":%" PRIu64 ",", info->pid,
                 info->generation, m->seq + 1);
  stamp(b, "heartbeat", mb_now_usec());
  stamp(b, "started", info->started_usec);
  key(b, "interval");
  mb_jbuf_num(b, info->interval);
  mb_jbuf_raw(b, ",\"sla\":", 7);
  if (info->sla > 0) mb_jbuf_num(b, info->sla);
  else mb_jbuf_raw(b, "null", 4);
  mb_jbuf_printf(b, ",\"stopping\":%s,\"window\":", info->stopping ? "true" : "false");
  mb_jbuf_num(b, window_s);
  mb_jbuf_raw(b, ",", 1);
}

static void report_figures(mb_jbuf *b, const mb_metrics *m, const counts *t,
                           const mb_metrics_gauges *g) {
  mb_jbuf_printf(b, "\"received\":%" PRIu64 ",\"outcomes\":{", t->received);
  outcomes_json(b, t);
  mb_jbuf_raw(b, "},", 2);
  hist_json(b, "processing", &t->processing);
  hist_json(b, "critical", &t->critical);
  mb_jbuf_printf(b, "\"reloads\":{\"ok\":%" PRIu64 ",\"refused\":%" PRIu64 "},",
                 m->reloads_ok - m->base_reloads_ok,
                 m->reloads_refused - m->base_reloads_refused);
  mb_jbuf_printf(b, "\"reconnects\":%" PRIu64 ",", m->reconnects - m->base_reconnects);
  mb_jbuf_printf(b, "\"in_flight\":%u,\"requests_pending\":%u,", g->in_flight,
                 g->requests_pending);
  mb_jbuf_printf(b, "\"lua_memory_bytes\":%zu,\"shared_memory_bytes\":%zu,", g->lua_memory,
                 g->shared_memory);
  mb_jbuf_raw(b, "\"queues\":{", 10);
  for (unsigned i = 0; i < m->n_queues; i++) {
    if (i) mb_jbuf_raw(b, ",", 1);
    key(b, m->queues[i].name);
    mb_jbuf_printf(b, "%ld", m->queues[i].ready);
  }
  mb_jbuf_raw(b, "},", 2);
}

static void report_types(mb_jbuf *b, const mb_metrics *m) {
  int first = 1;
  mb_jbuf_raw(b, "\"types\":{", 9);
  EACH_SERIES(m, s, i) {
    counts d = {0};
    if (!delta(&d, s)) continue;
    if (!first) mb_jbuf_raw(b, ",", 1);
    first = 0;
    key(b, s->name);
    mb_jbuf_printf(b, "{\"received\":%" PRIu64 ",", d.received);
    outcomes_json(b, &d);
    mb_jbuf_raw(b, "}", 1);
  }
  mb_jbuf_raw(b, "}}", 2);
}

static void rebase(mb_metrics *m) {
  for (unsigned i = 0; i <= MB_METRICS_MAX_TYPES; i++)
    if (m->series[i]) m->series[i]->base = m->series[i]->now;
  m->base_reloads_ok = m->reloads_ok;
  m->base_reloads_refused = m->reloads_refused;
  m->base_reconnects = m->reconnects;
  m->seq++;
}

int mb_metrics_report(mb_metrics *m, const mb_metrics_gauges *g, const mb_report_info *info,
                      double window_s, char **json, size_t *len) {
  static const mb_metrics_gauges zero;
  counts total = {0};
  EACH_SERIES(m, s, i) delta(&total, s);
  mb_jbuf b = MB_JBUF_INIT;
  report_head(&b, m, info, window_s);
  report_figures(&b, m, &total, g ? g : &zero);
  report_types(&b, m);
  *json = mb_jbuf_take(&b, len);
  if (*json == NULL) return MB_ENOMEM;
  rebase(m);
  return MB_OK;
}
