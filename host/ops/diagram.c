/* diagram.c — the sequence diagram of a conversation as SVG (DESIGN §10): lifelines in
 * order of first appearance, arrows in causal order (Kahn's algorithm over related_to,
 * ready messages by `at`, then id; a cycle is broken at its earliest message, so nothing
 * is dropped).
 * Owns: the per-call message table, its id index and the ready heap (freed before return).
 * Never: writes a byte of a message into the SVG except through mb_jbuf_xml, orders by
 * clock what causality orders, or draws more than max_arrows arrows. */
#include "ops/diagram.h"

#include <stdlib.h>
#include <string.h>

#define COL 180       /* between lifelines */
#define LEFT 20       /* margin left of the first box */
#define BOX_W 160     /* a lifeline's box */
#define BOX_H 32      /* ... and its height */
#define TOP 16        /* margin above the boxes */
#define FIRST_Y 88    /* the first arrow */
#define STEP 38       /* between arrows */
#define NAME_CHARS 22 /* of an endpoint name in its box */
#define TYPE_CHARS 40 /* of a type in an arrow's label */
#define NONE ((size_t)-1)

static const char ellipsis[] = "\xe2\x80\xa6";

typedef struct msg {
  const char *id, *type, *kind, *at, *status, *from, *to;
  const char *related;
  size_t parent, first_child, next_sibling;
  int queued;  /* pushed on the ready heap (at most once) */
  size_t walk; /* the last cycle search that passed here (1-based) */
} msg;

typedef struct keyed {
  const char *key, *id;
  size_t i;
} keyed;

typedef struct diagram {
  msg *m;
  size_t n;
  size_t *order; /* causal order: indices into m */
  size_t *heap, heap_len;
  const char **lanes; /* lifeline names, in order of first appearance */
  size_t n_lanes;
} diagram;

/* --- reading the items ----------------------------------------------------------------- */

static const char *text_or(const mb_jv *item, const char *key, const char *fallback) {
  const char *s = mb_jv_get_string(item, key);
  return s && *s ? s : fallback;
}

static int read_items(diagram *d, const mb_jv *items) {
  size_t len = mb_jv_len(items);
  if (mb_jv_type(items) != MB_JSON_ARRAY) len = 0;
  d->m = calloc(len ? len : 1, sizeof *d->m);
  if (d->m == NULL) return -1;
  for (size_t i = 0; i < len; i++) {
    const mb_jv *it = mb_jv_at(items, i);
    if (mb_jv_type(it) != MB_JSON_OBJECT) continue;
    msg *m = &d->m[d->n++];
    m->id = text_or(it, "id", NULL);
    m->type = text_or(it, "type", "(no type)");
    m->kind = text_or(it, "kind", "message");
    m->related = text_or(it, "related_to", NULL);
    m->from = text_or(it, "from", "(outside)");
    m->to = text_or(it, "to", "(unknown)");
    m->at = text_or(it, "at", NULL);
    m->status = text_or(it, "status", NULL);
    m->parent = m->first_child = m->next_sibling = NONE;
  }
  return 0;
}

/* NULL after every string */
static int cmp_str(const char *a, const char *b) {
  if (a == NULL || b == NULL) return (a == NULL) - (b == NULL);
  return strcmp(a, b);
}

static int cmp_keyed(const void *pa, const void *pb) {
  const keyed *a = pa, *b = pb;
  int c = cmp_str(a->key, b->key);
  if (c == 0) c = cmp_str(a->id, b->id);
  return c ? c : (a->i > b->i) - (a->i < b->i);
}

/* The messages sorted by key ("id": for look-ups, "at": to break cycles). */
static keyed *sorted_by(const diagram *d, int by_time) {
  keyed *k = malloc((d->n ? d->n : 1) * sizeof *k);
  if (k == NULL) return NULL;
  for (size_t i = 0; i < d->n; i++)
    k[i] = (keyed){by_time ? d->m[i].at : d->m[i].id, by_time ? d->m[i].id : NULL, i};
  qsort(k, d->n, sizeof *k, cmp_keyed);
  return k;
}

static size_t find_id(const keyed *by_id, size_t n, const char *id) {
  size_t lo = 0, hi = n;
  while (lo < hi) { /* the first entry not below id */
    size_t mid = lo + (hi - lo) / 2;
    if (cmp_str(by_id[mid].key, id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && by_id[lo].key && strcmp(by_id[lo].key, id) == 0 ? by_id[lo].i : NONE;
}

/* Each message's parent (the message it is related_to, when in the list) and children. */
static int link_parents(diagram *d) {
  keyed *by_id = sorted_by(d, 0);
  if (by_id == NULL) return -1;
  for (size_t i = 0; i < d->n; i++) {
    msg *m = &d->m[i];
    size_t p = m->related ? find_id(by_id, d->n, m->related) : NONE;
    if (p == NONE || p == i) continue;
    m->parent = p;
    m->next_sibling = d->m[p].first_child;
    d->m[p].first_child = i;
  }
  free(by_id);
  return 0;
}

/* --- causal order ---------------------------------------------------------------------- */

static int before(const diagram *d, size_t a, size_t b) {
  int c = cmp_str(d->m[a].at, d->m[b].at);
  if (c == 0) c = cmp_str(d->m[a].id, d->m[b].id);
  return c ? c < 0 : a < b;
}

static void heap_push(diagram *d, size_t i) {
  if (d->m[i].queued) return;
  d->m[i].queued = 1;
  size_t at = d->heap_len++;
  while (at > 0 && before(d, i, d->heap[(at - 1) / 2])) {
    d->heap[at] = d->heap[(at - 1) / 2];
    at = (at - 1) / 2;
  }
  d->heap[at] = i;
}

static size_t heap_pop(diagram *d) {
  size_t top = d->heap[0], last = d->heap[--d->heap_len], at = 0;
  for (;;) {
    size_t c = 2 * at + 1;
    if (c >= d->heap_len) break;
    if (c + 1 < d->heap_len && before(d, d->heap[c + 1], d->heap[c])) c++;
    if (!before(d, d->heap[c], last)) break;
    d->heap[at] = d->heap[c];
    at = c;
  }
  d->heap[at] = last;
  return top;
}

/* The way into the cycle that waiting message w descends from (every waiting message has
 * a waiting parent, so its ancestors loop): the cycle's earliest member. A walk only
 * passes messages that the cycle's release will draw, so all walks take linear time. */
static size_t cycle_entry(diagram *d, size_t w, size_t walk) {
  while (d->m[w].walk != walk) {
    d->m[w].walk = walk;
    w = d->m[w].parent;
  }
  size_t best = w;
  for (size_t c = d->m[w].parent; c != w; c = d->m[c].parent)
    if (before(d, c, best)) best = c;
  return best;
}

/* Kahn's algorithm: roots first; when only cycles are left, the earliest waiting message
 * (by `at`, then id) leads to the cycle it descends from, entered at its earliest. */
static int causal_order(diagram *d) {
  keyed *by_time = sorted_by(d, 1);
  d->order = malloc((d->n ? d->n : 1) * sizeof *d->order);
  d->heap = malloc((d->n ? d->n : 1) * sizeof *d->heap);
  if (by_time == NULL || d->order == NULL || d->heap == NULL) {
    free(by_time);
    return -1;
  }
  for (size_t i = 0; i < d->n; i++)
    if (d->m[i].parent == NONE) heap_push(d, i);
  size_t done = 0, next_waiting = 0, walks = 0;
  while (done < d->n) {
    if (d->heap_len == 0) { /* done < n: someone waits */
      while (d->m[by_time[next_waiting].i].queued) next_waiting++;
      heap_push(d, cycle_entry(d, by_time[next_waiting].i, ++walks));
    }
    size_t i = heap_pop(d);
    d->order[done++] = i;
    for (size_t c = d->m[i].first_child; c != NONE; c = d->m[c].next_sibling) heap_push(d, c);
  }
  free(by_time);
  return 0;
}

/* --- lifelines ------------------------------------------------------------------------- */

static size_t lane_of(const diagram *d, const char *name) {
  for (size_t i = 0; i < d->n_lanes; i++)
    if (strcmp(d->lanes[i], name) == 0) return i;
  return NONE;
}

static void add_lane(diagram *d, const char *name) {
  if (lane_of(d, name) == NONE) d->lanes[d->n_lanes++] = name;
}

/* The lifelines of the messages first .. first + drawn - 1 in causal order. */
static int find_lanes(diagram *d, size_t first, size_t drawn) {
  d->lanes = malloc((drawn ? 2 * drawn : 1) * sizeof *d->lanes);
  if (d->lanes == NULL) return -1;
  for (size_t k = first; k < first + drawn; k++) {
    add_lane(d, d->m[d->order[k]].from);
    add_lane(d, d->m[d->order[k]].to);
  }
  return 0;
}

static int lane_x(size_t lane) { return LEFT + BOX_W / 2 + (int)lane * COL; }

/* --- drawing --------------------------------------------------------------------------- */

/* s as XML text, cut after max_chars characters with an ellipsis. */
static void put_short(mb_jbuf *out, const char *s, size_t max_chars) {
  size_t chars = 0, i = 0, n = strlen(s);
  for (; i < n; i++) {
    if (((unsigned char)s[i] & 0xc0) != 0x80 && chars++ == max_chars - 1) break;
  }
  if (i >= n) {
    mb_jbuf_xml(out, s, n);
    return;
  }
  mb_jbuf_xml(out, s, i);
  mb_jbuf_cstr_raw(out, ellipsis);
}

static void put_xml(mb_jbuf *out, const char *s) { mb_jbuf_xml(out, s, strlen(s)); }

static void draw_lane(mb_jbuf *out, const char *name, size_t lane, int bottom) {
  int x = lane_x(lane);
  mb_jbuf_cstr_raw(out, "<g class=\"lifeline\" data-endpoint=\"");
  put_xml(out, name);
  mb_jbuf_cstr_raw(out, "\"><title>");
  put_xml(out, name);
  mb_jbuf_printf(out,
                 "</title><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\" "
                 "stroke-dasharray=\"4 4\"/><rect x=\"%d\" y=\"%d\" width=\"%d\" "
                 "height=\"%d\" rx=\"4\" fill=\"#f4f4f4\" stroke=\"#333\"/>"
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">",
                 x, TOP + BOX_H, x, bottom, x - BOX_W / 2, TOP, BOX_W, BOX_H, x,
                 TOP + BOX_H / 2 + 4);
  put_short(out, name, NAME_CHARS);
  mb_jbuf_cstr_raw(out, "</text></g>\n");
}

static const char *kind_class(const char *kind) {
  if (strcmp(kind, "event") == 0) return "evt";
  if (strcmp(kind, "reply") == 0) return "reply";
  return "cmd";
}

/* The status as a class name: a short word of [a-z0-9_-], else "unknown". */
static void put_status_class(mb_jbuf *out, const char *status) {
  size_t n = status ? strlen(status) : 0;
  if (n == 0 || n > 32 || strspn(status, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n)
    status = "unknown";
  mb_jbuf_cstr_raw(out, status);
}

static const char *color_of(const char *status) {
  if (status && strcmp(status, "failed") == 0) return "#d0312d";
  if (status && strcmp(status, "retrying") == 0) return "#e8a317";
  return "#333";
}

static void put_title(mb_jbuf *out, const msg *m) {
  mb_jbuf_cstr_raw(out, "<title>");
  put_xml(out, m->type);
  const char *labels[] = {"\nid: ", "\nstatus: ", "\nat: "};
  const char *values[] = {m->id, m->status, m->at};
  for (size_t i = 0; i < 3; i++) {
    mb_jbuf_cstr_raw(out, labels[i]);
    put_xml(out, values[i] ? values[i] : "-");
  }
  mb_jbuf_cstr_raw(out, "</title>");
}

/* The arrow's line (or loop) and head, from x1 to x2 at y. */
static void put_arrow(mb_jbuf *out, int x1, int x2, int y, const char *kind, const char *color) {
  const char *dash = strcmp(kind, "evt") == 0     ? " stroke-dasharray=\"6 4\""
                     : strcmp(kind, "reply") == 0 ? " stroke-dasharray=\"2 3\""
                                                  : "";
  if (x1 == x2) { /* to its own endpoint: a loop back */
    mb_jbuf_printf(out,
                   "<path d=\"M%d %d h40 v14 h-36\" fill=\"none\" stroke=\"%s\" "
                   "stroke-width=\"1.5\"%s/><path d=\"M%d %d l8 -4 v8 z\" fill=\"%s\"/>",
                   x1, y, color, dash, x1, y + 14, color);
    return;
  }
  int dir = x2 > x1 ? 1 : -1;
  mb_jbuf_printf(out,
                 "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                 "stroke-width=\"1.5\"%s/><path d=\"M%d %d l%d -4 v8 z\" fill=\"%s\"/>",
                 x1, y, x2 - 6 * dir, y, color, dash, x2, y, -9 * dir, color);
}

static void draw_msg(mb_jbuf *out, const diagram *d, const msg *m, int y) {
  const char *kind = kind_class(m->kind), *color = color_of(m->status);
  int x1 = lane_x(lane_of(d, m->from)), x2 = lane_x(lane_of(d, m->to));
  mb_jbuf_printf(out, "<g class=\"msg %s ", kind);
  put_status_class(out, m->status);
  mb_jbuf_cstr_raw(out, "\" data-id=\"");
  put_xml(out, m->id ? m->id : "");
  mb_jbuf_cstr_raw(out, "\">");
  put_title(out, m);
  put_arrow(out, x1, x2, y, kind, color);
  int loop = x1 == x2;
  mb_jbuf_printf(out,
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"%s\" fill=\"%s\" stroke=\"#fff\" "
                 "stroke-width=\"3\" paint-order=\"stroke\">",
                 loop ? x1 + 46 : (x1 + x2) / 2, loop ? y + 11 : y - 6, loop ? "start" : "middle",
                 color);
  put_short(out, m->type, TYPE_CHARS);
  mb_jbuf_cstr_raw(out, "</text></g>\n");
}

static void svg_open(mb_jbuf *out, int width, int height) {
  mb_jbuf_printf(out,
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
                 "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
                 width, height, width, height);
}

static void draw_empty(mb_jbuf *out) {
  svg_open(out, 240, 60);
  mb_jbuf_cstr_raw(out, "<text class=\"empty\" x=\"120\" y=\"34\" text-anchor=\"middle\" "
                        "fill=\"#666\">no messages</text>\n</svg>\n");
}

static void draw(mb_jbuf *out, const diagram *d, size_t first, size_t drawn) {
  size_t more = d->n - first - drawn;
  int arrows_end = FIRST_Y + (int)drawn * STEP, bottom = arrows_end - STEP / 2 + 12;
  int width = 2 * LEFT + (int)(d->n_lanes ? d->n_lanes - 1 : 0) * COL + BOX_W + 60;
  int height = bottom + (more ? 40 : 16);
  svg_open(out, width, height);
  for (size_t l = 0; l < d->n_lanes; l++) draw_lane(out, d->lanes[l], l, bottom);
  for (size_t k = 0; k < drawn; k++)
    draw_msg(out, d, &d->m[d->order[first + k]], FIRST_Y + (int)k * STEP);
  if (more)
    mb_jbuf_printf(out,
                   "<text class=\"more\" x=\"%d\" y=\"%d\" fill=\"#666\">%zu more "
                   "message%s</text>\n",
                   LEFT, bottom + 26, more, more == 1 ? "" : "s");
  mb_jbuf_cstr_raw(out, "</svg>\n");
}

void mb_diagram_svg(const mb_jv *items, size_t first, size_t max_arrows, mb_jbuf *out) {
  diagram d = {0};
  int ok = read_items(&d, items) == 0;
  if (first > d.n) first = d.n;
  size_t drawn = d.n - first < max_arrows ? d.n - first : max_arrows;
  if (ok && drawn == 0) draw_empty(out);
  else if (ok && link_parents(&d) == 0 && causal_order(&d) == 0 &&
           find_lanes(&d, first, drawn) == 0)
    draw(out, &d, first, drawn);
  else out->failed = 1; /* as for a failed append: the caller checks failed once */
  free(d.m);
  free(d.order);
  free(d.heap);
  free(d.lanes);
}
