/* shared.h — the store behind bus.shared(name): named dictionaries of key -> typed value
 * (boolean, integer, number, string, JSON text) that belong to the runtime, not to a Lua
 * generation, so that they survive hot reloads (a process's restart empties them).
 *
 * Provides: get, set (and delete), incr, count, keys, flush of a dictionary by name; a
 * bound on the bytes the whole store holds (a set past it is refused, nothing is evicted);
 * the bytes it holds now, for metrics.
 * Never: knows Lua (bindings/lshared.c is its face), locks (one loop thread), or evicts. */
#ifndef MOONBUS_SHARED_H
#define MOONBUS_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define MB_SHARED_NAME_MAX 255  /* bytes of a dictionary's name */
#define MB_SHARED_KEY_MAX 65535 /* bytes of a key (at least 1) */

typedef struct mb_shared mb_shared;

typedef enum mb_shared_type {
  MB_SHARED_NIL, /* no value: a set of it deletes */
  MB_SHARED_BOOLEAN,
  MB_SHARED_INTEGER,
  MB_SHARED_NUMBER,
  MB_SHARED_STRING,
  MB_SHARED_JSON, /* the JSON text of a Lua table */
} mb_shared_type;

typedef struct mb_shared_value {
  mb_shared_type type;
  int boolean;
  int64_t integer;
  double number;
  const char *bytes; /* STRING, JSON: a value read points into the store, valid until the */
  size_t len;        /* next change of the store */
} mb_shared_value;

/* An empty store that holds at most limit bytes. NULL when out of memory. */
mb_shared *mb_shared_new(size_t limit);
void mb_shared_free(mb_shared *s);
/* A new bound (a reload may change it). Values already held stay, even past it: a set that
 * would grow the store is refused until deletes bring it back under. */
void mb_shared_set_limit(mb_shared *s, size_t limit);
size_t mb_shared_limit(const mb_shared *s);
/* The bytes the store holds now: its entries (struct, key, value), dictionaries and hash
 * buckets. What the bound is measured against. */
size_t mb_shared_bytes(const mb_shared *s);

/* The value of key in dictionary dict: MB_OK with *out filled, or MB_ENOTFOUND. */
int mb_shared_get(mb_shared *s, const char *dict, const char *key, size_t klen,
                  mb_shared_value *out);
/* Stores v under key (the dictionary is made on first use); v->type MB_SHARED_NIL deletes.
 * MB_OK; MB_EINVAL (a name or key of a wrong length); MB_ETOOBIG (the store would hold
 * more than its bound: nothing changed); MB_ENOMEM. err says which. */
int mb_shared_set(mb_shared *s, const char *dict, const char *key, size_t klen,
                  const mb_shared_value *v, mb_err *err);
/* Adds by (an INTEGER or NUMBER: integer + integer stays an integer, wrapping as Lua's
 * does) to key's number and stores the sum in *out. A missing key starts at *init (NULL:
 * MB_ENOTFOUND). MB_EINVAL if the value held is not a number (err names its type);
 * MB_ETOOBIG, MB_ENOMEM as for set. */
int mb_shared_incr(mb_shared *s, const char *dict, const char *key, size_t klen,
                   const mb_shared_value *by, const mb_shared_value *init, mb_shared_value *out,
                   mb_err *err);
/* Removes key: MB_OK, or MB_ENOTFOUND if it was not there. */
int mb_shared_delete(mb_shared *s, const char *dict, const char *key, size_t klen);
/* The number of keys of dict. */
size_t mb_shared_count(const mb_shared *s, const char *dict);
/* Calls fn with each key of dict (in no particular order), at most max of them (0: all);
 * fn must not change the store. Returns how many it was called with. */
typedef void (*mb_shared_key_fn)(void *ud, const char *key, size_t klen);
size_t mb_shared_keys(const mb_shared *s, const char *dict, size_t max, mb_shared_key_fn fn,
                      void *ud);
/* Removes every key of dict. */
void mb_shared_flush(mb_shared *s, const char *dict);
/* "boolean", "integer", "number", "string", "table", "nil": the Lua name of a type. */
const char *mb_shared_type_name(mb_shared_type type);

#endif
