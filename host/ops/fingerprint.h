/* fingerprint.h — how `moonbus ops` groups failed messages (DESIGN §10): by the failing
 * handler's script file and line plus the exception message with what varies between
 * messages (numbers, ids, quoted values) blanked, so that "card declined for order 42"
 * and "... order 77" fall in one group.
 *
 * Provides: mb_fingerprint.
 * Uses: libc.
 * Never: allocates, or fails: any text (none, binary, huge) has a fingerprint. */
#ifndef MOONBUS_OPS_FINGERPRINT_H
#define MOONBUS_OPS_FINGERPRINT_H

#include <stddef.h>

#define MB_FINGERPRINT_ID_LEN 16     /* hex characters of the group id */
#define MB_FINGERPRINT_TITLE_MAX 300 /* bytes of the title, NUL included */

/* The group of an exception message (moonbus.exception.message; NULL for a message parked
 * with no exception, e.g. a malformed one, whose problem text is then passed instead).
 * The title is the first line, with its leading "FILE:LINE:" location kept as it is and,
 * in the rest, every number, UUID/hex id and quoted ('...' "...") value replaced by "#"
 * (an id, a number) or "'…'" (a quoted value); runs of whitespace become one space; cut
 * at a character boundary to fit. id is the hex of a 64-bit FNV-1a hash of the title:
 * equal titles, equal ids. */
void mb_fingerprint(const char *exception, char id[MB_FINGERPRINT_ID_LEN + 1],
                    char title[MB_FINGERPRINT_TITLE_MAX]);

#endif
