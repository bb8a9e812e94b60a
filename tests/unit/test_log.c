/* test_log.c — log lines: whatever a message carries (id, type, queue name, header value,
 * exception text) stays on one line, readable, with control characters and invalid UTF-8
 * escaped; valid UTF-8 is kept; a long text never pushes the id and type out. */
#include <string.h>

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
  CHECK(strlen(line) <= 2048);
  CHECK(strstr(line, " id=the-id type=the.Type\n") != NULL);
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
  return unit_done();
}
