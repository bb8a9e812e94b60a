/* trace.c — W3C traceparent (see trace.h). Never keeps state. */
#include "trace.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"

static int lower_hex(const char *s, size_t n) {
  int nonzero = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return -1;
    nonzero |= c != '0';
  }
  return nonzero;
}

int mb_traceparent_valid(const char *s) {
  if (s == NULL) return 0;
  size_t len = strlen(s);
  if (len < MB_TRACEPARENT_LEN || s[2] != '-' || s[35] != '-' || s[52] != '-') return 0;
  if (lower_hex(s, 2) < 0 || strncmp(s, "ff", 2) == 0) return 0;
  if (strncmp(s, "00", 2) == 0 ? len != MB_TRACEPARENT_LEN : len > 55 && s[55] != '-') return 0;
  return lower_hex(s + 3, 32) == 1 && lower_hex(s + 36, 16) == 1 && lower_hex(s + 53, 2) >= 0;
}

static void hex_of(const uint8_t *b, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
}

/* n random bytes, not all zero (an all-zero id is invalid), as 2n hex digits. */
static void random_hex(size_t n, char *out) {
  uint8_t b[16];
  for (;;) {
    mb_random_bytes(b, n);
    hex_of(b, n, out);
    if (lower_hex(out, 2 * n) == 1) return;
  }
}

void mb_traceparent_child(const char *parent, char out[MB_TRACEPARENT_LEN + 1]) {
  char trace[33], span[17], flags[3] = "01";
  if (mb_traceparent_valid(parent)) {
    memcpy(trace, parent + 3, 32);
    memcpy(flags, parent + 53, 2);
  } else {
    random_hex(16, trace);
  }
  random_hex(8, span);
  /* "00-" trace "-" span "-" flags, laid out by hand (snprintf showed in make bench) */
  memcpy(out, "00-", 3);
  memcpy(out + 3, trace, 32);
  out[35] = '-';
  memcpy(out + 36, span, 16);
  out[52] = '-';
  memcpy(out + 53, flags, 2);
  out[MB_TRACEPARENT_LEN] = '\0';
}
