/* test_log.c — log lines: whatever a message carries (id, type, queue name, header value,
 * exception text, a script's fields) stays on one line, readable, with control characters
 * and invalid UTF-8 escaped; valid UTF-8 is kept; a long text never pushes the fields, the
 * id, the type or the conversation id out; with the JSON format every line is one valid
 * JSON object whatever its parts hold. */
#include <string.h>

#include "json.h"
#include "log.h"
#include "unit.h"

/* The escape of the NUL-terminated s into a static buffer. */
static const char *esc(const char *s) {
  static char out[512];
  mb_log_escape(s, strlen(s), out, sizeof out);
  return out;
}

/* One mb_log at MB_ERROR, captured; the captured text. */
static const char *logged(const char *id, const char *type, const char *text) {
  static char copy[70000];
  size_t len;
  mb_log_capture(1, MB_DEBUG);
  mb_log(MB_ERROR, "orders", id, type, "handler failed: %s", text);
  const char *got = mb_log_captured(&len);
  memcpy(copy, got, len);
  copy[len] = '\0';
  mb_log_capture(0, MB_DEBUG);
  return copy;
}

static size_t count_char(const char *s, char c) {
  size_t n = 0;
  for (; *s; s++) n += *s == c;
  return n;
}

static void keeps_printable_text_and_utf8(void) {
  CHECK(strcmp(esc("sales.OrderPlaced"), "sales.OrderPlaced") == 0);
  CHECK(strcmp(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
               "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == 0);
  CHECK(strcmp(esc("a\\nb"), "a\\nb") == 0); /* a backslash stays as it is */
}

static void escapes_control_characters(void) {
  CHECK(strcmp(esc("a\nb"), "a\\nb") == 0);
  CHECK(strcmp(esc("a\r\tb"), "a\\r\\tb") == 0);
  CHECK(strcmp(esc("\x1b[31mred"), "\\x1b[31mred") == 0);
  CHECK(strcmp(esc("del\x7f"), "del\\x7f") == 0);
  CHECK(strcmp(esc("\x01\x1f"), "\\x01\\x1f") == 0);
  /* C1 controls and the Unicode line and paragraph separators are valid UTF-8 that still
   * break or hide a line */
  CHECK(strcmp(esc("a\xc2\x85z"), "a\\u0085z") == 0);
  CHECK(strcmp(esc("a\xc2\x9b"
                   "2Jz"),
               "a\\u009b2Jz") == 0);
  CHECK(strcmp(esc("a\xe2\x80\xa8z\xe2\x80\xa9"), "a\\u2028z\\u2029") == 0);
}

static void escapes_invalid_utf8_bytes(void) {
  CHECK(strcmp(esc("\xff\xfe"), "\\xff\\xfe") == 0);
  CHECK(strcmp(esc("\xc3"), "\\xc3") == 0);                            /* cut short */
  CHECK(strcmp(esc("\xc0\xaf"), "\\xc0\\xaf") == 0);                   /* overlong */
  CHECK(strcmp(esc("\xed\xa0\x80"), "\\xed\\xa0\\x80") == 0);          /* a surrogate */
  CHECK(strcmp(esc("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80") == 0); /* past U+10FFFF */
  CHECK(strcmp(esc("\xe2\x82z"), "\\xe2\\x82z") == 0);
}

static void embedded_nul_is_escaped(void) {
  char out[64];
  size_t n = mb_log_escape("a\0b", 3, out, sizeof out);
  CHECK(n == 6 && strcmp(out, "a\\x00b") == 0);
}

static void cuts_before_a_whole_escape(void) {
  char out[8];
  size_t n = mb_log_escape("abcde\n", 6, out, 7);
  CHECK(n == 5 && strcmp(out, "abcde") == 0); /* the 2 bytes of "\n" no longer fit in 6 */
  n = mb_log_escape("abcdef\xe2\x82\xac", 9, out, sizeof out);
  CHECK(n == 6 && strcmp(out, "abcdef") == 0); /* never half a character */
  CHECK(mb_log_escape("abc", 3, out, 1) == 0 && out[0] == '\0');
}

static void a_forged_type_stays_on_one_line(void) {
  const char *line = logged("0190c4b6-8ad4-7c2e-9a3e-7a1f0c2b9d11",
                            "x\n2026-12-01T00:00:00.000000Z info  [orders] forged", "boom");
  CHECK(count_char(line, '\n') == 1);
  CHECK(strstr(line, " type=x\\n2026-12-01T00:00:00.000000Z info  [orders] forged\n") != NULL);
}

static void every_part_is_escaped(void) {
  const char *line = logged("id\r\x1b[2K", "t\x7f", "exception\nstack traceback:\n\t[C]: in ?");
  CHECK(count_char(line, '\n') == 1);
  CHECK(strstr(line, "handler failed: exception\\nstack traceback:\\n\\t[C]: in ?") != NULL);
  CHECK(strstr(line, " id=id\\r\\x1b[2K type=t\\x7f\n") != NULL);
  CHECK(strchr(line, '\r') == NULL && strchr(line, '\x1b') == NULL &&
        strchr(line, '\x7f') == NULL);
}

static void a_long_text_keeps_id_and_type(void) {
  static char text[6000];
  memset(text, '\n', sizeof text - 1);
  const char *line = logged("the-id", "the.Type", text);
  CHECK(count_char(line, '\n') == 1);
  CHECK(strlen(line) <= 4096);
  CHECK(strstr(line, " id=the-id type=the.Type\n") != NULL);
}

/* One mb_log_line at MB_WARN in format, captured; the captured text. */
static const char *line_of(mb_log_format format, mb_log_ids ids, const mb_log_field *fields,
                           size_t n, const char *text, size_t len) {
  static char copy[70000];
  size_t got_len;
  mb_log_set_format(format);
  mb_log_capture(1, MB_DEBUG);
  mb_log_line(MB_WARN, "orders", ids, fields, n, text, len);
  const char *got = mb_log_captured(&got_len);
  memcpy(copy, got, got_len);
  copy[got_len] = '\0';
  mb_log_capture(0, MB_DEBUG);
  mb_log_set_format(MB_LOG_TEXT);
  return copy;
}

#define FIELD(key, value, json)                                                                  \
  { key, value, sizeof value - 1, json }

static const mb_log_ids the_ids = {"the-id", "the.Type", "the-conversation"};

static void a_line_about_a_message_ends_with_its_conversation(void) {
  const char *line = line_of(MB_LOG_TEXT, the_ids, NULL, 0, "paid", 4);
  CHECK(strstr(line, " warn  [orders] paid id=the-id type=the.Type conv=the-conversation\n"));
  mb_log_ids none = {NULL, NULL, NULL};
  line = line_of(MB_LOG_TEXT, none, NULL, 0, "tick", 4);
  CHECK(strstr(line, " warn  [orders] tick\n") != NULL && strstr(line, "conv=") == NULL);
}

static void fields_come_after_the_text_and_before_the_id(void) {
  mb_log_field f[] = {FIELD("amount", "12.5", 1), FIELD("empty", "", 0),
                      FIELD("items", "[1,2]", 1), FIELD("note", "two words", 0),
                      FIELD("order", "o-42", 0),  FIELD("quote", "say \"hi\"\\", 0),
                      FIELD("eq", "a=b", 0),      FIELD("nl", "x\ny", 0)};
  const char *line = line_of(MB_LOG_TEXT, the_ids, f, 8, "paid", 4);
  CHECK(count_char(line, '\n') == 1);
  CHECK(strstr(line, "[orders] paid amount=12.5 empty=\"\" items=[1,2] note=\"two words\" "
                     "order=o-42 quote=\"say \\\"hi\\\"\\\\\" eq=\"a=b\" nl=x\\ny "
                     "id=the-id type=the.Type conv=the-conversation\n") != NULL);
}

/* The JSON object of a captured line: exactly one line, strictly parsed. */
static mb_json *parsed(const char *line) {
  mb_json *doc = NULL;
  mb_err err;
  size_t len = strlen(line);
  if (len == 0 || line[len - 1] != '\n' || count_char(line, '\n') != 1) return NULL;
  if (mb_json_parse(line, len - 1, &doc, &err) != MB_OK) return NULL;
  if (mb_jv_type(mb_json_root(doc)) != MB_JSON_OBJECT) {
    mb_json_free(doc);
    return NULL;
  }
  return doc;
}

static int member_is(const mb_jv *obj, const char *key, const char *want) {
  const char *got = mb_jv_get_string(obj, key);
  return got != NULL && strcmp(got, want) == 0;
}

/* No byte below 0x20 but the final newline, no DEL, no C1 control, no U+2028/9. */
static int only_plain_bytes(const char *line) {
  const unsigned char *s = (const unsigned char *)line;
  for (size_t i = 0; s[i + 1]; i++)
    if (s[i] < 0x20 || s[i] == 0x7f || (s[i] == 0xc2 && s[i + 1] < 0xa0) ||
        (s[i] == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)))
      return 0;
  return 1;
}

static void a_json_line_is_one_valid_object(void) {
  const char text[] = "say \"hi\"\n2026-12-01T00:00:00.000000Z info  [orders] forged \\ \xff\xc3 "
                      "\x1b[2K\x7f\xc2\x85\xe2\x80\xa8 caf\xc3\xa9";
  mb_log_ids ids = {"id\r\n{\"forged\":1}", "t\"}\n{\"level\":\"error\"", "c\xff"};
  mb_log_field f[] = {FIELD("order", "o-\"42\"\n", 0),
                      FIELD("items", "{\"a\":[1,\"\xff\xe2\x80\xa9\x7f\"]}", 1)};
  const char *line = line_of(MB_LOG_JSON, ids, f, 2, text, sizeof text - 1);
  mb_json *doc = parsed(line);
  CHECK(doc != NULL);
  CHECK(only_plain_bytes(line));
  const mb_jv *o = mb_json_root(doc);
  CHECK(member_is(o, "level", "warn") && member_is(o, "endpoint", "orders"));
  CHECK(member_is(o, "msg",
                  "say \"hi\"\n2026-12-01T00:00:00.000000Z info  [orders] forged \\ "
                  "\xef\xbf\xbd\xef\xbf\xbd \x1b[2K\x7f\xc2\x85\xe2\x80\xa8 caf\xc3\xa9"));
  CHECK(member_is(o, "id", "id\r\n{\"forged\":1}"));
  CHECK(member_is(o, "type", "t\"}\n{\"level\":\"error\""));
  CHECK(member_is(o, "conversation_id", "c\xef\xbf\xbd"));
  CHECK(member_is(o, "order", "o-\"42\"\n"));
  const mb_jv *items = mb_jv_get(o, "items");
  CHECK(mb_jv_type(items) == MB_JSON_OBJECT && mb_jv_len(mb_jv_get(items, "a")) == 2);
  CHECK(mb_jv_get_string(o, "time") != NULL && strlen(mb_jv_get_string(o, "time")) == 27);
  mb_json_free(doc);
}

static void a_json_line_has_its_parts_in_order_and_none_absent(void) {
  mb_log_ids none = {NULL, NULL, NULL};
  const char *line = line_of(MB_LOG_JSON, the_ids, NULL, 0, "paid", 4);
  const char *at = strstr(line, ",\"level\":\"warn\",\"endpoint\":\"orders\",\"msg\":\"paid\","
                                "\"id\":\"the-id\",\"type\":\"the.Type\","
                                "\"conversation_id\":\"the-conversation\"}\n");
  CHECK(strncmp(line, "{\"time\":\"", 9) == 0 && at != NULL);
  line = line_of(MB_LOG_JSON, none, NULL, 0, "tick", 4);
  CHECK(strstr(line, "\"msg\":\"tick\"}\n") != NULL && strstr(line, "\"id\"") == NULL);
}

static void a_long_json_line_stays_valid_and_keeps_its_ids(void) {
  static char text[6000], big[3000];
  memset(text, '"', sizeof text);
  memset(big, '1', sizeof big);
  big[0] = '[', big[sizeof big - 1] = ']'; /* valid JSON too long for the line: a string */
  mb_log_field f[] = {{"big", big, sizeof big, 1}, {"after", "x", 1, 0}};
  const char *line = line_of(MB_LOG_JSON, the_ids, f, 2, text, sizeof text);
  CHECK(strlen(line) <= 4096);
  mb_json *doc = parsed(line);
  CHECK(doc != NULL);
  const mb_jv *o = mb_json_root(doc);
  CHECK(member_is(o, "id", "the-id") && member_is(o, "type", "the.Type"));
  CHECK(member_is(o, "conversation_id", "the-conversation"));
  CHECK(mb_jv_type(mb_jv_get(o, "big")) == MB_JSON_STRING);
  CHECK(mb_jv_get_string(o, "msg") != NULL && strlen(mb_jv_get_string(o, "msg")) > 500);
  mb_json_free(doc);
}

static void parses_the_format_names(void) {
  CHECK(mb_log_format_parse("text") == MB_LOG_TEXT && mb_log_format_parse("json") == MB_LOG_JSON);
  CHECK(mb_log_format_parse("JSON") == -1 && mb_log_format_parse(NULL) == -1);
}

int main(void) {
  if (freopen("/dev/null", "w", stderr) == NULL) return 1; /* the lines are read captured */
  RUN(keeps_printable_text_and_utf8);
  RUN(escapes_control_characters);
  RUN(escapes_invalid_utf8_bytes);
  RUN(embedded_nul_is_escaped);
  RUN(cuts_before_a_whole_escape);
  RUN(a_forged_type_stays_on_one_line);
  RUN(every_part_is_escaped);
  RUN(a_long_text_keeps_id_and_type);
  RUN(a_line_about_a_message_ends_with_its_conversation);
  RUN(fields_come_after_the_text_and_before_the_id);
  RUN(a_json_line_is_one_valid_object);
  RUN(a_json_line_has_its_parts_in_order_and_none_absent);
  RUN(a_long_json_line_stays_valid_and_keeps_its_ids);
  RUN(parses_the_format_names);
  return unit_done();
}
