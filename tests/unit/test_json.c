/* test_json.c — the ops service's JSON (json.c): the strict reader (what RFC 8259 allows
 * and nothing else, with the byte offset of each error; nesting, UTF-8, surrogates,
 * numbers; member order, the last of a repeated key, large objects) and the writers
 * (escaping, the shortest round-trip numbers, XML text, writing a tree back, and a buffer
 * whose allocation failed). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "unit.h"

static mb_json *parse(const char *text) {
  mb_json *doc = NULL;
  mb_err err;
  if (mb_json_parse(text, strlen(text), &doc, &err) != MB_OK) return NULL;
  return doc;
}

/* 1 when text fails with MB_EINVAL and an error that ends in "at byte <at>". */
static int fails_at(const char *text, size_t len, size_t at) {
  mb_json *doc = (mb_json *)1;
  mb_err err = {0, ""};
  int rc = mb_json_parse(text, len, &doc, &err);
  char tail[40];
  snprintf(tail, sizeof tail, "at byte %zu", at);
  size_t n = strlen(err.msg), t = strlen(tail);
  int ok = rc == MB_EINVAL && doc == NULL && n >= t && strcmp(err.msg + n - t, tail) == 0;
  if (!ok) printf("#   %s -> rc %d, '%s' (wanted '%s')\n", text, rc, err.msg, tail);
  return ok;
}

static int fails(const char *text) {
  mb_json *doc = NULL;
  mb_err err;
  int rc = mb_json_parse(text, strlen(text), &doc, &err);
  if (rc == MB_OK) printf("#   accepted: %s\n", text);
  mb_json_free(doc);
  return rc == MB_EINVAL;
}

/* The compact text of a document, written back (malloc'd). */
static char *written(const char *text) {
  mb_json *doc = parse(text);
  if (doc == NULL) return NULL;
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_value(&b, mb_json_root(doc));
  mb_json_free(doc);
  return mb_jbuf_take(&b, NULL);
}

static int writes_back(const char *text, const char *want) {
  char *got = written(text);
  int ok = got && strcmp(got, want) == 0;
  if (!ok) printf("#   %s -> %s (wanted %s)\n", text, got ? got : "(null)", want);
  free(got);
  return ok;
}

static void test_reads_every_kind_of_value(void) {
  mb_json *doc = parse(" {\"s\":\"x\",\"n\":-1.5e2,\"t\":true,\"f\":false,\"z\":null,"
                       "\"a\":[1,[],{}],\"o\":{\"k\":\"v\"}}\n");
  CHECK(doc != NULL);
  const mb_jv *root = mb_json_root(doc);
  CHECK(mb_jv_type(root) == MB_JSON_OBJECT && mb_jv_len(root) == 7);
  CHECK(strcmp(mb_jv_get_string(root, "s"), "x") == 0);
  CHECK(mb_jv_number(mb_jv_get(root, "n")) == -150.0);
  CHECK(mb_jv_is_true(mb_jv_get(root, "t")) && !mb_jv_is_true(mb_jv_get(root, "f")));
  CHECK(mb_jv_type(mb_jv_get(root, "f")) == MB_JSON_FALSE);
  CHECK(mb_jv_type(mb_jv_get(root, "z")) == MB_JSON_NULL && mb_jv_get(root, "z") != NULL);
  const mb_jv *a = mb_jv_get(root, "a");
  CHECK(mb_jv_len(a) == 3 && mb_jv_number(mb_jv_at(a, 0)) == 1.0);
  CHECK(mb_jv_type(mb_jv_at(a, 1)) == MB_JSON_ARRAY && mb_jv_len(mb_jv_at(a, 1)) == 0);
  CHECK(mb_jv_type(mb_jv_at(a, 2)) == MB_JSON_OBJECT && mb_jv_at(a, 3) == NULL);
  CHECK(strcmp(mb_jv_get_string(mb_jv_get(root, "o"), "k"), "v") == 0);
  CHECK(strcmp(mb_jv_key_at(root, 0), "s") == 0 && strcmp(mb_jv_key_at(root, 6), "o") == 0);
  CHECK(mb_jv_get(root, "missing") == NULL && mb_jv_get_string(root, "n") == NULL);
  /* accessors take NULL and values of another type */
  CHECK(mb_jv_type(NULL) == MB_JSON_NULL && mb_jv_len(NULL) == 0 && mb_jv_at(NULL, 0) == NULL);
  CHECK(mb_jv_get(a, "x") == NULL && mb_jv_key_at(a, 0) == NULL && mb_jv_string(a, NULL) == NULL);
  CHECK(mb_jv_number(NULL) == 0 && mb_jv_number(mb_jv_get(root, "s")) == 0);
  mb_json_free(doc);
  mb_json_free(NULL);
  const char *scalars[] = {"0", "\"\"", "true", "null", " -0.0e-0 "};
  for (size_t i = 0; i < 5; i++) {
    doc = parse(scalars[i]);
    CHECK(doc != NULL);
    mb_json_free(doc);
  }
}

static void test_objects_keep_member_order_and_the_last_repeated_key(void) {
  mb_json *doc = parse("{\"b\":1,\"a\":2,\"b\":3}");
  const mb_jv *root = mb_json_root(doc);
  CHECK(mb_jv_len(root) == 3);
  CHECK(strcmp(mb_jv_key_at(root, 0), "b") == 0 && strcmp(mb_jv_key_at(root, 1), "a") == 0);
  CHECK(mb_jv_number(mb_jv_get(root, "b")) == 3.0);
  CHECK(mb_jv_number(mb_jv_at(root, 0)) == 1.0);
  mb_json_free(doc);
  /* the same over the hash index of a large object */
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_cstr_raw(&b, "{");
  for (int i = 0; i < 100; i++) mb_jbuf_printf(&b, "\"k%d\":%d,", i % 50, i);
  mb_jbuf_cstr_raw(&b, "\"\":-1}");
  doc = parse(b.data);
  root = mb_json_root(doc);
  CHECK(mb_jv_len(root) == 101);
  CHECK(mb_jv_number(mb_jv_get(root, "k7")) == 57.0);
  CHECK(mb_jv_number(mb_jv_get(root, "k49")) == 99.0);
  CHECK(mb_jv_number(mb_jv_get(root, "")) == -1.0);
  CHECK(mb_jv_get(root, "k50") == NULL && mb_jv_get(root, "k") == NULL);
  CHECK(strcmp(mb_jv_key_at(root, 51), "k1") == 0);
  mb_json_free(doc);
  mb_jbuf_free(&b);
}

static void test_large_objects_are_looked_up_in_constant_time(void) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_cstr_raw(&b, "{");
  const int n = 200000;
  for (int i = 0; i < n; i++) mb_jbuf_printf(&b, "%s\"key%d\":%d", i ? "," : "", i, i);
  mb_jbuf_cstr_raw(&b, "}");
  clock_t t0 = clock();
  mb_json *doc = parse(b.data);
  const mb_jv *root = mb_json_root(doc);
  int found = 0;
  char key[32];
  for (int i = 0; i < n; i++) {
    snprintf(key, sizeof key, "key%d", i);
    found += mb_jv_number(mb_jv_get(root, key)) == (double)i;
  }
  double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
  CHECK(found == n);
  CHECK(secs < 5.0); /* a linear scan per look-up would take minutes */
  printf("# %d members (%zu bytes) parsed and each looked up in %.2f s\n", n, b.len, secs);
  mb_json_free(doc);
  mb_jbuf_free(&b);
}

static void test_refuses_what_the_grammar_does_not_allow(void) {
  const char *bad[] = {"",           " ",
                       "{",          "[1,]",
                       "{\"a\":1,}", "{\"a\"}",
                       "{a:1}",      "[1 2]",
                       "'x'",        "tru",
                       "nul",        "01",
                       "1.",         ".5",
                       "-",          "+1",
                       "1e",         "1e+",
                       "0x10",       "NaN",
                       "Infinity",   "[\"a\"",
                       "\"abc",      "{\"a\":1]",
                       "[1}",        "\xef\xbb\xbf{}",
                       "//c\n1",     "[1,,2]",
                       "{,}",        "\"\t\"",
                       "1e400",      "-1e400"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK(fails(bad[i]));
  CHECK(fails_at("", 0, 0));
  CHECK(fails_at("[1,]", 4, 3));
  CHECK(fails_at("{\"a\":1} x", 9, 8)); /* trailing garbage */
  CHECK(fails_at("[1] [2]", 7, 4));
  CHECK(fails_at("1e400", 5, 0));       /* out of range */
  CHECK(fails_at("[\"a\\x\"]", 7, 3));  /* bad escape */
  CHECK(fails_at("\"\\u12g4\"", 8, 1)); /* bad \u escape */
  CHECK(fails_at("\"ab\x01\"", 5, 3));  /* raw control character */
  CHECK(fails_at("[1] \0", 5, 4));      /* a NUL byte after the value */
  mb_json *doc = NULL;
  CHECK(mb_json_parse("1 x", 3, &doc, NULL) == MB_EINVAL && doc == NULL); /* err NULL: fine */
  CHECK(mb_json_parse(NULL, 0, &doc, NULL) == MB_EINVAL);
}

static void test_nesting_is_capped(void) {
  char deep[2 * (MB_JSON_MAX_DEPTH + 1) + 1];
  for (int levels = MB_JSON_MAX_DEPTH; levels <= MB_JSON_MAX_DEPTH + 1; levels++) {
    memset(deep, '[', (size_t)levels);
    memset(deep + levels, ']', (size_t)levels);
    deep[2 * levels] = '\0';
    mb_json *doc = parse(deep);
    if (levels == MB_JSON_MAX_DEPTH) CHECK(doc != NULL);
    else CHECK(doc == NULL && fails_at(deep, strlen(deep), MB_JSON_MAX_DEPTH));
    mb_json_free(doc);
  }
  /* objects count too, and a huge nesting fails without exhausting the C stack */
  size_t n = 1000000;
  char *huge = malloc(n + 1);
  for (size_t i = 0; i < n; i++) huge[i] = i % 2 ? '[' : ' ';
  huge[n] = '\0';
  CHECK(fails(huge));
  free(huge);
  char mixed[1024] = "";
  for (int i = 0; i < 65; i++) strcat(mixed, "{\"a\":[");
  CHECK(fails(mixed));
}

static void test_strings_are_utf8_after_unescaping(void) {
  mb_json *doc =
      parse("\"a\\u0000b\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\xe2\x82\xac\"");
  size_t len = 0;
  const char *s = mb_jv_string(mb_json_root(doc), &len);
  const char want[] = "a\0b\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac";
  CHECK(s != NULL && len == sizeof want - 1 && memcmp(s, want, len) == 0 && s[len] == '\0');
  mb_json_free(doc);
  CHECK(fails_at("\"\\ud800\"", 8, 1));         /* lone high surrogate */
  CHECK(fails_at("\"ab\\udc00\"", 10, 3));      /* lone low surrogate */
  CHECK(fails_at("\"\\ud800\\u0041\"", 14, 1)); /* high, then not a low one */
  CHECK(fails_at("\"\\ud800x\"", 9, 1));
  CHECK(fails_at("\"a\xff\"", 4, 2));            /* not UTF-8 */
  CHECK(fails_at("\"a\xc0\xaf\"", 5, 2));        /* overlong */
  CHECK(fails_at("\"\xed\xa0\x80\"", 5, 1));     /* an encoded surrogate */
  CHECK(fails_at("\"\xf4\x90\x80\x80\"", 6, 1)); /* over U+10FFFF */
  CHECK(fails_at("\"\xe2\x82\"", 4, 1));         /* cut short */
  CHECK(fails_at("{\"\xe2\x82\":1}", 7, 2));     /* keys too */
}

static void test_numbers(void) {
  mb_json *doc = parse("[12345678901234567890123, 1e308, 1e-400, -0, 9007199254740993, 0.1]");
  const mb_jv *a = mb_json_root(doc);
  CHECK(mb_jv_number(mb_jv_at(a, 0)) == 1.2345678901234568e22);
  CHECK(mb_jv_number(mb_jv_at(a, 1)) == 1e308);
  CHECK(mb_jv_number(mb_jv_at(a, 2)) == 0.0); /* underflow reads as zero */
  CHECK(mb_jv_number(mb_jv_at(a, 3)) == 0.0 && signbit(mb_jv_number(mb_jv_at(a, 3))));
  CHECK(mb_jv_number(mb_jv_at(a, 4)) == 9007199254740992.0);
  CHECK(mb_jv_number(mb_jv_at(a, 5)) == 0.1);
  mb_json_free(doc);
}

static int num_is(double v, const char *want) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_num(&b, v);
  int ok = b.data && strcmp(b.data, want) == 0;
  if (!ok) printf("#   %.17g -> %s (wanted %s)\n", v, b.data ? b.data : "(null)", want);
  mb_jbuf_free(&b);
  return ok;
}

static void test_numbers_are_written_shortest_and_round_trip(void) {
  CHECK(num_is(0.1, "0.1"));
  CHECK(num_is(1e300, "1e+300"));
  CHECK(num_is(-0.0, "-0"));
  CHECK(num_is(9007199254740992.0, "9007199254740992"));
  CHECK(num_is(-42, "-42"));
  CHECK(num_is(0.1 + 0.2, "0.30000000000000004"));
  CHECK(num_is(1.0 / 3, "0.3333333333333333"));
  CHECK(num_is(5e-324, "4.94065645841247e-324")); /* the first form that reads back */
  CHECK(num_is(NAN, "null") && num_is(INFINITY, "null") && num_is(-INFINITY, "null"));
  double samples[] = {0.1, 1e300, 2.5e-8, 123456.789, 1.7976931348623157e308, 1e22, 3.0e17};
  for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
    mb_jbuf b = MB_JBUF_INIT;
    mb_jbuf_num(&b, samples[i]);
    CHECK(strtod(b.data, NULL) == samples[i]);
    mb_jbuf_free(&b);
  }
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_int(&b, -9223372036854775807LL - 1);
  CHECK(strcmp(b.data, "-9223372036854775808") == 0);
  mb_jbuf_free(&b);
}

static void test_strings_are_written_escaped(void) {
  mb_jbuf b = MB_JBUF_INIT;
  static const char s[] = "a\"b\\c\n\x01\x1f\0</script><\xc3\xa9\xff/";
  mb_jbuf_str(&b, s, sizeof s - 1);
  CHECK(strcmp(b.data,
               "\"a\\\"b\\\\c\\n\\u0001\\u001f\\u0000<\\/script><\xc3\xa9\xef\xbf\xbd/\"") == 0);
  mb_jbuf_free(&b);
  mb_jbuf_cstr(&b, NULL);
  mb_jbuf_raw(&b, ",", 1);
  mb_jbuf_cstr(&b, "");
  mb_jbuf_raw(&b, ",", 1);
  mb_jbuf_str(&b, "\xe2\x82", 2); /* a cut sequence: one U+FFFD per byte */
  CHECK(strcmp(b.data, "null,\"\",\"\xef\xbf\xbd\xef\xbf\xbd\"") == 0);
  mb_jbuf_free(&b);
}

static void test_values_are_written_back_compactly(void) {
  CHECK(writes_back(" { \"a\" : [ 1 , 2.5 , -0 , true , false , null ] , \"b\" : { } , "
                    "\"c\":[ ] , \"k\\u0000\":\"\\u00e9\\ud83d\\ude00\" } ",
                    "{\"a\":[1,2.5,-0,true,false,null],\"b\":{},\"c\":[],"
                    "\"k\\u0000\":\"\xc3\xa9\xf0\x9f\x98\x80\"}"));
  CHECK(writes_back("{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}")); /* as it was */
  CHECK(writes_back("1E2", "100"));
  CHECK(writes_back("\"</\"", "\"<\\/\""));
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_value(&b, NULL);
  CHECK(strcmp(b.data, "null") == 0);
  mb_jbuf_free(&b);
}

static void test_xml_text_is_escaped(void) {
  mb_jbuf b = MB_JBUF_INIT;
  const char *s = "<script>alert(\"x&y\")</script>'\t\n\r\x01\x7f\xff\xef\xbf\xbe\xc3\xa9";
  mb_jbuf_xml(&b, s, strlen(s));
  CHECK(strcmp(b.data, "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;\t\n"
                       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9") == 0);
  mb_jbuf_xml(&b, NULL, 0);
  mb_jbuf_free(&b);
}

static void test_buffer_after_a_failed_allocation(void) {
  mb_jbuf b = MB_JBUF_INIT;
  size_t len = 99;
  char *empty = mb_jbuf_take(&b, &len);
  CHECK(empty != NULL && empty[0] == '\0' && len == 0); /* nothing written: "" */
  free(empty);
  mb_jbuf_cstr_raw(&b, "abc");
  b.failed = 1; /* as after realloc returned NULL */
  mb_jbuf_cstr(&b, "more");
  mb_jbuf_printf(&b, "%d", 42);
  mb_jbuf_num(&b, 1.5);
  mb_jbuf_xml(&b, "<", 1);
  CHECK(b.len == 3 && strcmp(b.data, "abc") == 0);
  CHECK(mb_jbuf_take(&b, &len) == NULL);
  CHECK(b.data == NULL && b.len == 0 && b.failed == 0); /* reset */
  mb_jbuf_printf(&b, "%s-%d", "x", 7);
  char *text = mb_jbuf_take(&b, &len);
  CHECK(text && strcmp(text, "x-7") == 0 && len == 3);
  free(text);
  /* a printf longer than the first allocation */
  char big[1000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  mb_jbuf_printf(&b, "<%s>", big);
  CHECK(b.len == 1001 && b.data[1000] == '>' && b.data[1001] == '\0');
  mb_jbuf_free(&b);
}

int main(void) {
  RUN(test_reads_every_kind_of_value);
  RUN(test_objects_keep_member_order_and_the_last_repeated_key);
  RUN(test_large_objects_are_looked_up_in_constant_time);
  RUN(test_refuses_what_the_grammar_does_not_allow);
  RUN(test_nesting_is_capped);
  RUN(test_strings_are_utf8_after_unescaping);
  RUN(test_numbers);
  RUN(test_numbers_are_written_shortest_and_round_trip);
  RUN(test_strings_are_written_escaped);
  RUN(test_values_are_written_back_compactly);
  RUN(test_xml_text_is_escaped);
  RUN(test_buffer_after_a_failed_allocation);
  return unit_done();
}
