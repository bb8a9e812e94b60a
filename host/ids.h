/* ids.h — message ids (DESIGN §4) and the process's pool of random bytes.
 *
 * Provides: UUIDv7 ids, a check that a string is a UUID, and random bytes for ids, span
 * ids and hash keys.
 * Uses: libc, the kernel's random source, clock.h (the time in an id).
 * Never: touches Lua, a socket or a database; never hands out the same random bytes twice. */
#ifndef MOONBUS_IDS_H
#define MOONBUS_IDS_H

#include <stddef.h>
#include <stdint.h>

#define MB_ID_LEN 36 /* 8-4-4-4-12 hex digits with dashes */

/* A new UUIDv7 (RFC 9562): 48-bit Unix ms time, then a 12-bit counter that keeps ids of
 * one process strictly increasing within a millisecond, then 62 random bits. Writes
 * MB_ID_LEN lowercase characters and a NUL. */
void mb_uuidv7(char out[MB_ID_LEN + 1]);
/* len bytes from the kernel's random source. */
void mb_random_bytes(uint8_t *buf, size_t len);
/* 1 if s is a UUID in 8-4-4-4-12 hex form (any version), else 0. */
int mb_id_valid(const char *s);

#endif
