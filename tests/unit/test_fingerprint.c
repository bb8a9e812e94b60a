/* test_fingerprint.c — how failed messages are grouped (ops/fingerprint.c): messages that
 * differ only in numbers, ids and quoted values share a group; another file or line, or
 * other words, make another group; the location is kept; any input (none, empty, binary,
 * huge) has a fingerprint that fits. */
#include <stdlib.h>
#include <string.h>

#include "ops/fingerprint.h"
#include "unit.h"

typedef struct fp {
  char id[MB_FINGERPRINT_ID_LEN + 1];
  char title[MB_FINGERPRINT_TITLE_MAX];
} fp;

static fp of(const char *exception) {
  fp f;
  memset(&f, 'X', sizeof f);
  mb_fingerprint(exception, f.id, f.title);
  return f;
}

static int same_group(const char *a, const char *b) {
  fp x = of(a), y = of(b);
  return strcmp(x.id, y.id) == 0 && strcmp(x.title, y.title) == 0;
}

static int title_is(const char *exception, const char *want) {
  fp f = of(exception);
  int ok = strcmp(f.title, want) == 0;
  if (!ok) printf("#   '%s' -> '%s' (wanted '%s')\n", exception, f.title, want);
  return ok;
}

static void test_numbers_ids_and_quoted_values_are_blanked(void) {
  CHECK(title_is("/srv/examples/orders/billing/endpoint.lua:23: card declined for order 42 "
                 "(id 0192f3a4-7c1e-7a2b-9c3d-4e5f60718293)",
                 "/srv/examples/orders/billing/endpoint.lua:23: card declined for order # "
                 "(id #)"));
  CHECK(title_is("[string \"handler x = 1\"]:3: bad amount -12.50 in 'EUR' for \"Bob\"",
                 "[string \"handler x = 1\"]:3: bad amount # in '\xe2\x80\xa6' for "
                 "\"\xe2\x80\xa6\""));
  CHECK(title_is("no handler for type 'x.Y'", "no handler for type '\xe2\x80\xa6'"));
  CHECK(title_is("body is not valid JSON: invalid JSON: unexpected character 'x' at byte 12",
                 "body is not valid JSON: invalid JSON: unexpected character '\xe2\x80\xa6' at "
                 "byte #"));
  CHECK(title_is("addr 0xDEADbeef, sha a1b2c3d4e5f6a7b8, 1e-5, 3.14., 2024-01-02T10:00:00Z",
                 "addr #, sha #, #, #., #:#:#"));
  CHECK(title_is("can't find user42's cart", "can't find user42's cart")); /* not quotes */
  CHECK(title_is("  lots \t of   space  \nsecond line 7", "lots of space"));
  CHECK(title_is("range 1-5, ORD-2024-0042, v2", "range #, ORD-#, v2"));
  CHECK(title_is("words like deadbeef and accepted stay", "words like deadbeef and accepted "
                                                          "stay"));
}

static void test_messages_that_differ_in_values_share_a_group(void) {
  CHECK(same_group("/a/endpoint.lua:23: card declined for order 42 (id 0192f3a4-...)",
                   "/a/endpoint.lua:23: card declined for order 77 (id 9f00aa11-...)"));
  CHECK(same_group("x.lua:1: no stock for 'blue shirt' (sku 123456789abcdef)",
                   "x.lua:1: no stock for 'red hat'   (sku fedcba9876543210)"));
  CHECK(same_group("timeout after 1.5 s", "timeout after 30 s"));
  CHECK(same_group("balance -3 below zero", "balance 12 below zero"));
  CHECK(same_group("boom\ntraceback line 1", "boom\nother traceback 2"));
  CHECK(!same_group("/a/endpoint.lua:23: card declined", "/a/endpoint.lua:24: card declined"));
  CHECK(!same_group("/a/endpoint.lua:23: card declined", "/b/endpoint.lua:23: card declined"));
  CHECK(!same_group("card declined", "card expired"));
  CHECK(!same_group("x \"a\"", "x 'a'")); /* the quote style is kept */
  fp f = of("x.lua:9: y");
  CHECK(strlen(f.id) == MB_FINGERPRINT_ID_LEN && strspn(f.id, "0123456789abcdef") == 16);
}

static void test_the_note_of_how_often_it_was_tried_is_not_the_failure(void) {
  CHECK(title_is("x/e.lua:21: card refused for ada (failed 3 attempts in each of 2 rounds)",
                 "x/e.lua:21: card refused for ada"));
  CHECK(same_group("x/e.lua:21: refused (failed 1 attempt in 1 round)",
                   "x/e.lua:21: refused (failed 6 attempts in each of 4 rounds)"));
  CHECK(title_is("x/e.lua:2: (failed again) not a note", "x/e.lua:2: (failed again) not a note"));
}

static void test_any_input_has_a_fingerprint(void) {
  fp none = of(NULL), empty = of(""), blank = of(" \t\n");
  CHECK(strcmp(none.title, "(no exception)") == 0 && strlen(none.id) == 16);
  CHECK(strcmp(empty.title, "(empty message)") == 0 && strcmp(blank.id, empty.id) == 0);
  CHECK(strcmp(none.id, empty.id) != 0);
  /* binary: invalid UTF-8 becomes '?', controls are space */
  CHECK(title_is("\xff\xfe bad \x01\x02 byte \xc3\xa9 \xe2\x82", "?? bad byte \xc3\xa9 ??"));
  /* huge: cut at a character boundary to fit, whole placeholders only */
  size_t n = 4 << 20;
  char *huge = malloc(n + 1);
  for (size_t i = 0; i < n; i++) huge[i] = "\xc3\xa9 'q' 9 \""[i % 11];
  huge[n] = '\0';
  fp f = of(huge);
  size_t len = strlen(f.title);
  CHECK(len > 0 && len < MB_FINGERPRINT_TITLE_MAX);
  CHECK(((unsigned char)f.title[len - 1] & 0xc0) != 0xc0); /* not a cut lead byte */
  memset(huge, '\'', n); /* quotes that never close: still linear */
  for (size_t i = 1; i < n; i += 2) huge[i] = ' ';
  f = of(huge);
  CHECK(strlen(f.title) < MB_FINGERPRINT_TITLE_MAX);
  memset(huge, 'a', n); /* a location longer than the title */
  memcpy(huge + n - 10, ".lua:1: x", 10);
  f = of(huge);
  CHECK(strlen(f.title) == MB_FINGERPRINT_TITLE_MAX - 1);
  free(huge);
}

int main(void) {
  RUN(test_numbers_ids_and_quoted_values_are_blanked);
  RUN(test_messages_that_differ_in_values_share_a_group);
  RUN(test_the_note_of_how_often_it_was_tried_is_not_the_failure);
  RUN(test_any_input_has_a_fingerprint);
  return unit_done();
}
