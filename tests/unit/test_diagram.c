/* test_diagram.c — the server-drawn sequence diagram (ops/diagram.c): arrows in causal
 * order whatever the order of the list and the clocks; a related_to cycle or a missing
 * parent hides nothing; classes and colours by kind and status; every message byte
 * escaped; lifelines in order of first appearance; the empty list; paging. */
#include <stdlib.h>
#include <string.h>

#include "ops/diagram.h"
#include "unit.h"

/* The SVG of a JSON item list (malloc'd), or NULL. */
static char *svg_page(const char *items_json, size_t first, size_t max_arrows) {
  mb_json *doc = NULL;
  mb_err err;
  if (mb_json_parse(items_json, strlen(items_json), &doc, &err) != MB_OK) {
    printf("#   bad test JSON: %s\n", err.msg);
    return NULL;
  }
  mb_jbuf b = MB_JBUF_INIT;
  mb_diagram_svg(mb_json_root(doc), first, max_arrows, &b);
  mb_json_free(doc);
  return mb_jbuf_take(&b, NULL);
}

static char *svg_of(const char *items_json, size_t max_arrows) {
  return svg_page(items_json, 0, max_arrows);
}

static size_t count(const char *s, const char *what) {
  size_t n = 0;
  for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
  return n;
}

/* 1 when the data-id attributes appear in this order (and no others). */
static int arrows_are(const char *svg, const char *const *ids, size_t n) {
  const char *p = svg;
  size_t seen = 0;
  char want[64];
  while ((p = strstr(p, "data-id=\"")) != NULL) {
    p += 9;
    snprintf(want, sizeof want, "%s\"", seen < n ? ids[seen] : "");
    if (seen >= n || strncmp(p, want, strlen(want)) != 0) {
      printf("#   arrow %zu is %.20s, wanted %s\n", seen, p, seen < n ? ids[seen] : "none");
      return 0;
    }
    seen++;
  }
  return seen == n;
}

/* The text of the <g> whose data-id is id (malloc'd), or NULL. */
static char *group_of(const char *svg, const char *id) {
  char attr[64];
  snprintf(attr, sizeof attr, "data-id=\"%s\"", id);
  const char *at = strstr(svg, attr), *end = at ? strstr(at, "</g>") : NULL;
  if (at == NULL || end == NULL) return NULL;
  while (at > svg && strncmp(at, "<g ", 3) != 0) at--;
  size_t n = (size_t)(end - at);
  char *g = malloc(n + 1);
  memcpy(g, at, n);
  g[n] = '\0';
  return g;
}

#define ITEM(id, type, kind, rel, from, to, at, status)                                          \
  "{\"id\":\"" id "\",\"type\":\"" type "\",\"kind\":\"" kind "\",\"related_to\":" rel           \
  ",\"from\":" from ",\"to\":\"" to "\",\"at\":\"" at "\",\"status\":\"" status "\"}"

static void test_arrows_follow_causality_not_the_list_or_the_clock(void) {
  /* the payment's clock runs 5 minutes behind: by time alone it would come first */
  const char *items = "[" ITEM("m3", "billing.CardCharged", "event", "\"m2\"", "\"billing\"",
                               "shipping", "2026-01-01T09:55:02Z", "processed") "," //
      ITEM("m1", "orders.PlaceOrder", "command", "null", "null", "orders", "2026-01-01T10:00:00Z",
           "processed") "," //
      ITEM("m2", "billing.ChargeCard", "command", "\"m1\"", "\"orders\"", "billing",
           "2026-01-01T10:00:01Z", "processed") "," //
      ITEM("x9", "audit.Other", "message", "\"gone\"", "\"shipping\"", "orders",
           "2026-01-01T09:59:00Z", "processed") "]";
  char *svg = svg_of(items, 100);
  CHECK(svg != NULL);
  const char *order[] = {"x9", "m1", "m2", "m3"}; /* x9's parent is not in the list: a root */
  CHECK(arrows_are(svg, order, 4));
  CHECK(count(svg, "class=\"lifeline\"") == 4);
  /* lifelines in order of first appearance along the arrows; no sender is "(outside)" */
  const char *a = strstr(svg, "data-endpoint=\"shipping\""),
             *b = strstr(svg, "data-endpoint=\"orders\"");
  const char *c = strstr(svg, "data-endpoint=\"(outside)\""),
             *e = strstr(svg, "data-endpoint=\"billing\"");
  CHECK(a && b && c && e && a < b && b < c && c < e);
  CHECK(strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", 47) == 0);
  int w = 0, h = 0, vw = 0, vh = 0;
  CHECK(sscanf(svg,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\"",
               &w, &h, &vw, &vh) == 4);
  CHECK(w == vw && h == vh && w >= 4 * 160 && h > 4 * 36);
  CHECK(count(svg, "<g ") == count(svg, "</g>") && strstr(svg, "</svg>") != NULL);
  free(svg);
}

static void test_classes_and_colours_by_kind_and_status(void) {
  const char *items = "[" ITEM("c", "a.Do", "command", "null", "\"x\"", "y", "1", "failed") "," //
      ITEM("e", "a.Done", "event", "\"c\"", "\"y\"", "z", "2", "retrying") ","                  //
      ITEM("r", "a.Answer", "reply", "\"c\"", "\"y\"", "x", "3", "processed") ","               //
      ITEM("s", "a.Self", "message", "\"c\"", "\"y\"", "y", "4", "weird <status>") "]";
  char *svg = svg_of(items, 100);
  char *g = group_of(svg, "c");
  CHECK(g && strstr(g, "class=\"msg cmd failed\"") && strstr(g, "#d0312d"));
  CHECK(g && !strstr(g, "stroke-dasharray") && strstr(g, "<path"));
  free(g);
  g = group_of(svg, "e");
  CHECK(g && strstr(g, "class=\"msg evt retrying\"") && strstr(g, "#e8a317"));
  CHECK(g && strstr(g, "stroke-dasharray=\"6 4\"")); /* dashed */
  free(g);
  g = group_of(svg, "r");
  CHECK(g && strstr(g, "class=\"msg reply processed\"") && strstr(g, "stroke-dasharray=\"2 3\""));
  CHECK(g && strstr(g, "#333") && !strstr(g, "#d0312d"));
  CHECK(g && strstr(g, "<title>a.Answer\nid: r\nstatus: processed\nat: 3</title>"));
  free(g);
  g = group_of(svg, "s"); /* to its own endpoint: a loop; an odd status is no class */
  CHECK(g && strstr(g, "class=\"msg cmd unknown\"") && strstr(g, "h40 v14"));
  CHECK(g && strstr(g, "status: weird &lt;status&gt;"));
  free(g);
  free(svg);
}

static void test_every_message_byte_is_escaped(void) {
  const char *items =
      "[{\"id\":\"a\\\"><script>x</script>\",\"type\":\"<script>alert('&')</script>\","
      "\"kind\":\"command\",\"from\":\"<b>\",\"to\":\"q\\\"'&\",\"at\":\"<at>\",\"status\":"
      "\"failed\"},"
      "{\"id\":\"long\",\"type\":\"" //
      "orders.AVeryLongMessageTypeNameThatGoesOnAndOnForeverAndEver\",\"kind\":\"event\","
      "\"from\":\"an-endpoint-with-a-very-long-name-indeed\",\"to\":\"q\\\"'&\"},"
      "17, \"not an object\", null]";
  char *svg = svg_of(items, 100);
  CHECK(svg && strstr(svg, "<script") == NULL && strstr(svg, "<b>") == NULL);
  CHECK(svg && strstr(svg, "&lt;script&gt;alert(&#39;&amp;&#39;)&lt;/script&gt;"));
  CHECK(svg && strstr(svg, "data-id=\"a&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
  CHECK(svg && strstr(svg, "data-endpoint=\"q&quot;&#39;&amp;\""));
  CHECK(svg && count(svg, "class=\"msg ") == 2); /* items that are not objects: skipped */
  /* long names and types are cut in the drawing, whole in the <title> */
  CHECK(svg && strstr(svg, "<title>an-endpoint-with-a-very-long-name-indeed</title>"));
  CHECK(svg && strstr(svg, ">an-endpoint-with-a-ve\xe2\x80\xa6</text>"));
  CHECK(svg &&
        strstr(svg, "<title>orders.AVeryLongMessageTypeNameThatGoesOnAndOnForeverAndEver"));
  CHECK(svg && strstr(svg, ">orders.AVeryLongMessageTypeNameThatGoes\xe2\x80\xa6</text>"));
  free(svg);
}

static void test_an_empty_list_says_so(void) {
  const char *empties[] = {"[]", "[1, \"x\", null]", "{}", "null"};
  for (size_t i = 0; i < 4; i++) {
    char *svg = svg_of(empties[i], 100);
    CHECK(svg && strstr(svg, "no messages") && strstr(svg, "<svg ") && strstr(svg, "</svg>"));
    CHECK(svg && strstr(svg, "class=\"msg") == NULL);
    free(svg);
  }
  mb_jbuf b = MB_JBUF_INIT;
  mb_diagram_svg(NULL, 0, 10, &b);
  CHECK(!b.failed && strstr(b.data, "no messages"));
  mb_jbuf_free(&b);
}

static void test_large_conversations_page(void) {
  mb_jbuf items = MB_JBUF_INIT;
  mb_jbuf_cstr_raw(&items, "[");
  for (int i = 49; i >= 0; i--) { /* a chain, listed backwards */
    mb_jbuf_printf(&items, "%s{\"id\":\"m%02d\",\"type\":\"t\",\"kind\":\"command\",",
                   i < 49 ? "," : "", i);
    if (i) mb_jbuf_printf(&items, "\"related_to\":\"m%02d\",", i - 1);
    mb_jbuf_printf(&items, "\"from\":\"e%d\",\"to\":\"e%d\",\"at\":\"2026\"}", i % 3,
                   (i + 1) % 3);
  }
  mb_jbuf_cstr_raw(&items, "]");
  char *svg = svg_of(items.data, 5);
  CHECK(svg && count(svg, "class=\"msg ") == 5);
  const char *first[] = {"m00", "m01", "m02", "m03", "m04"};
  CHECK(svg && arrows_are(svg, first, 5));
  CHECK(svg && strstr(svg, "<text class=\"more\"") && strstr(svg, ">45 more messages</text>"));
  free(svg);
  svg = svg_of(items.data, 49);
  CHECK(svg && strstr(svg, ">1 more message</text>"));
  free(svg);
  svg = svg_of(items.data, 50);
  CHECK(svg && count(svg, "class=\"msg ") == 50 && strstr(svg, "class=\"more\"") == NULL);
  free(svg);
  svg = svg_page(items.data, 45, 3); /* page 16 of 3: the causal order goes on */
  const char *page[] = {"m45", "m46", "m47"};
  CHECK(svg && arrows_are(svg, page, 3) && strstr(svg, ">2 more messages</text>"));
  free(svg);
  svg = svg_page(items.data, 60, 3); /* past the end */
  CHECK(svg && strstr(svg, "no messages") && count(svg, "class=\"msg ") == 0);
  free(svg);
  mb_jbuf_free(&items);
}

static void test_a_related_to_cycle_keeps_every_message(void) {
  const char *items =
      "[" ITEM("b", "t.B", "command", "\"a\"", "\"x\"", "y", "2", "processed") "," //
      ITEM("a", "t.A", "command", "\"b\"", "\"y\"", "x", "1", "processed") ","     //
      ITEM("c", "t.C", "event", "\"a\"", "\"x\"", "z", "0", "processed") ","       //
      ITEM("d", "t.D", "command", "\"d\"", "\"z\"", "x", "5", "processed") ","     //
      ITEM("e", "t.E", "command", "null", "\"z\"", "x", "9", "processed") "]";
  char *svg = svg_of(items, 100);
  /* d (its own parent) and e are roots; the cycle a<->b is entered at its earliest, a, and
   * c, a's child, follows a although its clock says 0 */
  const char *order[] = {"d", "e", "a", "c", "b"};
  CHECK(svg && arrows_are(svg, order, 5));
  free(svg);
}

/* Random forests (parents listed anywhere) and random graphs with cycles: every message is
 * drawn once, and in a forest every parent comes before its children. */
static void test_random_graphs_draw_every_message_once(void) {
  enum { N = 300 };
  unsigned seed = 12345;
  for (int round = 0; round < 20; round++) {
    int parent[N], slot[N];
    for (int i = 0; i < N; i++) {
      seed = seed * 1103515245u + 12345u;
      int acyclic = round % 2 == 0;
      parent[i] = acyclic ? (i ? (int)(seed >> 8) % i : -1) : (int)(seed >> 8) % (N + 20);
      slot[i] = i;
    }
    for (int i = N - 1; i > 0; i--) { /* list them shuffled */
      seed = seed * 1103515245u + 12345u;
      int j = (int)(seed >> 8) % (i + 1), t = slot[i];
      slot[i] = slot[j];
      slot[j] = t;
    }
    mb_jbuf items = MB_JBUF_INIT;
    mb_jbuf_cstr_raw(&items, "[");
    for (int k = 0; k < N; k++) {
      int i = slot[k];
      mb_jbuf_printf(&items, "%s{\"id\":\"n%d\",\"related_to\":\"n%d\",\"at\":\"%03d\"}",
                     k ? "," : "", i, parent[i], (i * 7919) % 1000);
    }
    mb_jbuf_cstr_raw(&items, "]");
    char *svg = svg_of(items.data, N);
    int pos[N + 20];
    for (int i = 0; i < N + 20; i++) pos[i] = -1;
    int drawn = 0, twice = 0, misordered = 0;
    for (const char *p = svg; p && (p = strstr(p, "data-id=\"n")) != NULL; p += 10) {
      int id = atoi(p + 10);
      if (pos[id] >= 0) twice++;
      pos[id] = drawn++;
    }
    for (int i = 0; i < N && round % 2 == 0; i++)
      if (parent[i] >= 0 && pos[parent[i]] > pos[i]) misordered++;
    CHECK(drawn == N && twice == 0 && misordered == 0);
    free(svg);
    mb_jbuf_free(&items);
  }
}

int main(void) {
  RUN(test_arrows_follow_causality_not_the_list_or_the_clock);
  RUN(test_classes_and_colours_by_kind_and_status);
  RUN(test_every_message_byte_is_escaped);
  RUN(test_an_empty_list_says_so);
  RUN(test_large_conversations_page);
  RUN(test_a_related_to_cycle_keeps_every_message);
  RUN(test_random_graphs_draw_every_message_once);
  return unit_done();
}
