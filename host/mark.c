/* mark.c — how marks compare, print and copy (see mark.h). The store lives in
 * transport/sqlite_marks.c. Never: touches a store or a message. */
#include "mark.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_numbers(const mb_mark *a, const mb_mark *b) {
  if (a->kind == MB_MARK_INTEGER && b->kind == MB_MARK_INTEGER)
    return (a->integer > b->integer) - (a->integer < b->integer);
  double x = a->kind == MB_MARK_INTEGER ? (double)a->integer : a->real;
  double y = b->kind == MB_MARK_INTEGER ? (double)b->integer : b->real;
  return (x > y) - (x < y);
}

int mb_mark_cmp(const mb_mark *a, const mb_mark *b) {
  int ta = a->kind == MB_MARK_TEXT, tb = b->kind == MB_MARK_TEXT;
  if (ta != tb) return ta - tb; /* numbers before strings */
  if (!ta) return cmp_numbers(a, b);
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->text, b->text, n) : 0;
  if (c) return c;
  return (a->len > b->len) - (a->len < b->len);
}

void mb_mark_format(const mb_mark *m, char *out, size_t len) {
  if (m->kind == MB_MARK_INTEGER) snprintf(out, len, "%" PRId64, m->integer);
  else if (m->kind == MB_MARK_REAL) snprintf(out, len, "%.17g", m->real);
  else if (m->len > 64) snprintf(out, len, "\"%.64s...\"", m->text);
  else snprintf(out, len, "\"%.*s\"", (int)m->len, m->text);
}

void mb_mark_stale_reason(const mb_mark *m, const char *highest, char *out, size_t len) {
  char mine[96];
  mb_mark_format(m, mine, sizeof mine);
  snprintf(out, len, "stale: %s %s <= %s already handled for %s %.128s", m->order_by, mine,
           highest, m->key_field, m->key);
}

static char *put(char **at, const char *s, size_t n) {
  char *start = *at;
  if (n) memcpy(start, s, n);
  start[n] = '\0';
  *at += n + 1;
  return start;
}

mb_mark *mb_mark_copy(const mb_mark *m) {
  const char *parts[5] = {m->endpoint, m->type, m->key, m->order_by, m->key_field};
  size_t sizes[5], total = sizeof *m + m->len + 1;
  for (int i = 0; i < 5; i++) total += (sizes[i] = parts[i] ? strlen(parts[i]) : 0) + 1;
  mb_mark *c = malloc(total);
  if (c == NULL) return NULL;
  *c = *m;
  char *at = (char *)(c + 1);
  c->endpoint = put(&at, parts[0] ? parts[0] : "", sizes[0]);
  c->type = put(&at, parts[1] ? parts[1] : "", sizes[1]);
  c->key = put(&at, parts[2] ? parts[2] : "", sizes[2]);
  c->order_by = put(&at, parts[3] ? parts[3] : "", sizes[3]);
  c->key_field = put(&at, parts[4] ? parts[4] : "", sizes[4]);
  c->text = put(&at, m->kind == MB_MARK_TEXT && m->text ? m->text : "",
                m->kind == MB_MARK_TEXT ? m->len : 0);
  return c;
}
