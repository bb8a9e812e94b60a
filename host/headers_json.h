/* headers_json.h — the one text encoding of a header list, used by every transport that
 * stores text (DESIGN §4): a flat JSON object of strings.
 *
 * Provides: the encoder and its strict decoder.
 * Uses: headers.h, ids.h (random bytes that key the decoder's hash), status.h.
 * Never: touches Lua, a socket or a database; never trusts a decoded header list
 * (duplicates, nesting, non-strings, oversize input are errors, not crashes). */
#ifndef MOONBUS_HEADERS_JSON_H
#define MOONBUS_HEADERS_JSON_H

#include <stddef.h>

#include "headers.h"
#include "status.h"

#define MB_HEADERS_JSON_MAX (1u << 20) /* a header block larger than 1 MiB is malformed */

/* The header list as a compact JSON object of strings, keys in list order, NUL-terminated,
 * malloc'd; *len (if not NULL) gets its length. NULL on out of memory. Non-ASCII bytes are
 * copied as they are; control characters, quote and backslash are escaped. */
char *mb_headers_to_json(const mb_headers *h, size_t *len);
/* Strict decoder for what mb_headers_to_json writes: one JSON object whose values are all
 * strings; \uXXXX escapes (with surrogate pairs) become UTF-8. Duplicate keys, nesting,
 * non-string values, trailing bytes, NUL in a key or value, or more than
 * MB_HEADERS_JSON_MAX bytes are MB_EINVAL with the reason in err. out is replaced. Linear
 * in len whatever the keys. */
int mb_headers_from_json(const char *json, size_t len, mb_headers *out, mb_err *err);

#endif
