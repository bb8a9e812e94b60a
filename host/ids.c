/* ids.c — UUIDv7 message ids and the per-thread pool of random bytes they draw on.
 * Owns: the pool (bytes are handed out once, then zeroed) and the last (ms, counter) pair
 * handed out, so that ids of this process never go backwards. Never reads a clock other
 * than through clock.h, never touches Lua, sockets or databases. */
#include "ids.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"

/* Fills buf from the kernel's random source. */
static void kernel_random(uint8_t *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(buf + got, len - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
  }
  /* getrandom cannot fail on Linux >= 3.17 for small sizes; fall back to time-seeded
   * bits only so that an id is still produced. */
  for (; got < len; got++) buf[got] = (uint8_t)(rand() ^ (int)mb_now_usec());
}

/* Ids and span ids take a few random bytes per message: one getrandom per 4 KiB rather
 * than two or three system calls per message (make bench showed them). Per thread. */
#define RANDOM_POOL 4096
static _Thread_local uint8_t pool[RANDOM_POOL];
static _Thread_local size_t pool_left;

void mb_random_bytes(uint8_t *buf, size_t len) {
  if (len > RANDOM_POOL / 4) {
    kernel_random(buf, len);
    return;
  }
  if (pool_left < len) {
    kernel_random(pool, RANDOM_POOL);
    pool_left = RANDOM_POOL;
  }
  memcpy(buf, pool + RANDOM_POOL - pool_left, len);
  memset(pool + RANDOM_POOL - pool_left, 0, len); /* handed out once */
  pool_left -= len;
}

/* The last (ms, counter) handed out: ids of this process never go backwards. */
static uint64_t last_ms;
static uint16_t last_counter;

static void next_stamp(uint64_t *ms, uint16_t *counter, uint16_t random_start) {
  uint64_t now = (uint64_t)(mb_now_usec() / 1000);
  if (now > last_ms) {
    last_ms = now;
    last_counter = random_start & 0x3ff; /* room to count up within the millisecond */
  } else if (++last_counter > 0xfff) {
    last_ms++; /* counter exhausted (or clock stepped back): borrow the next ms */
    last_counter = 0;
  }
  *ms = last_ms;
  *counter = last_counter;
}

void mb_uuidv7(char out[MB_ID_LEN + 1]) {
  uint8_t b[16];
  mb_random_bytes(b, sizeof b);
  uint64_t ms;
  uint16_t counter;
  next_stamp(&ms, &counter, (uint16_t)(b[6] << 8 | b[7]));
  for (int i = 0; i < 6; i++) b[i] = (uint8_t)(ms >> (40 - 8 * i));
  b[6] = (uint8_t)(0x70 | (counter >> 8));
  b[7] = (uint8_t)counter;
  b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
  static const char hex[] = "0123456789abcdef";
  char *p = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 15];
  }
  *p = '\0';
}

static int is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int mb_id_valid(const char *s) {
  if (s == NULL || strlen(s) != MB_ID_LEN) return 0;
  for (int i = 0; i < MB_ID_LEN; i++) {
    int dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !is_hex(s[i])) return 0;
  }
  return 1;
}
