/* shared.c — the store behind bus.shared (see shared.h): a chained hash of dictionaries by
 * name, each a chained hash of entries by key. An entry is one allocation: the struct, the
 * key's bytes, then the value's bytes (strings and JSON text, NUL-terminated). Every byte
 * allocated is counted (entries, dictionaries, bucket arrays), and a change that would take
 * the count past the bound is refused before anything is touched.
 * Never: knows Lua, evicts, or holds a pointer into a Lua state. */
#include "shared.h"

#include <stdlib.h>
#include <string.h>

#define FIRST_BUCKETS 8

/* What a dictionary and an entry both start with: their link in a table. */
typedef struct node {
  struct node *next;
  uint64_t hash;
  const char *key; /* points into the struct that starts with this node */
  size_t klen;
} node;

typedef struct table {
  node **buckets;
  size_t n, count; /* buckets (a power of 2, or 0), nodes */
} table;

typedef struct entry {
  node link;
  mb_shared_value v; /* v.bytes points into data, after the key */
  size_t cost;       /* bytes counted for it */
  char data[];       /* the key, then the value's bytes and a NUL */
} entry;

typedef struct dict {
  node link;
  table entries;
  size_t cost; /* bytes counted for the struct and its name (its buckets apart) */
  char name[];
} dict;

struct mb_shared {
  table dicts;
  size_t bytes, limit;
};

/* FNV-1a. */
static uint64_t hash_of(const char *key, size_t len) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
  return h;
}

/* The slot that holds (or would hold, at its end) the node of key. */
static node **find(const table *t, uint64_t h, const char *key, size_t klen) {
  if (t->n == 0) return NULL;
  node **slot = &t->buckets[h & (t->n - 1)];
  while (*slot &&
         !((*slot)->hash == h && (*slot)->klen == klen && memcmp((*slot)->key, key, klen) == 0))
    slot = &(*slot)->next;
  return slot;
}

/* The bytes the bucket array grows by when one node is added to t. */
static size_t growth(const table *t) {
  if (t->n == 0) return FIRST_BUCKETS * sizeof(node *);
  return t->count + 1 > t->n ? t->n * sizeof(node *) : 0;
}

/* Makes room for one more node (growth(t) bytes, counted in s). MB_OK or MB_ENOMEM. */
static int grow(mb_shared *s, table *t) {
  size_t add = growth(t);
  if (add == 0) return MB_OK;
  size_t n = t->n ? 2 * t->n : FIRST_BUCKETS;
  node **b = calloc(n, sizeof *b);
  if (b == NULL) return MB_ENOMEM;
  for (size_t i = 0; i < t->n; i++)
    for (node *x = t->buckets[i], *next; x; x = next) {
      next = x->next;
      x->next = b[x->hash & (n - 1)];
      b[x->hash & (n - 1)] = x;
    }
  free(t->buckets);
  t->buckets = b;
  t->n = n;
  s->bytes += add;
  return MB_OK;
}

/* Adds x to t, which has room (grow). */
static void add(table *t, node *x) {
  node **head = &t->buckets[x->hash & (t->n - 1)];
  x->next = *head;
  *head = x;
  t->count++;
}

static void free_entries(mb_shared *s, table *t) {
  for (size_t i = 0; i < t->n; i++)
    for (node *x = t->buckets[i], *next; x; x = next) {
      next = x->next;
      s->bytes -= ((entry *)x)->cost;
      free(x);
    }
  s->bytes -= t->n * sizeof(node *);
  free(t->buckets);
  memset(t, 0, sizeof *t);
}

mb_shared *mb_shared_new(size_t limit) {
  mb_shared *s = calloc(1, sizeof *s);
  if (s) s->limit = limit;
  return s;
}

void mb_shared_free(mb_shared *s) {
  if (s == NULL) return;
  for (size_t i = 0; i < s->dicts.n; i++)
    for (node *x = s->dicts.buckets[i], *next; x; x = next) {
      next = x->next;
      free_entries(s, &((dict *)x)->entries);
      free(x);
    }
  free(s->dicts.buckets);
  free(s);
}

void mb_shared_set_limit(mb_shared *s, size_t limit) { s->limit = limit; }
size_t mb_shared_limit(const mb_shared *s) { return s->limit; }
size_t mb_shared_bytes(const mb_shared *s) { return s->bytes; }

static dict *dict_of(const mb_shared *s, const char *name) {
  size_t len = strlen(name);
  node **slot = find(&s->dicts, hash_of(name, len), name, len);
  return slot ? (dict *)*slot : NULL;
}

static entry *entry_of(const dict *d, const char *key, size_t klen) {
  node **slot = d ? find(&d->entries, hash_of(key, klen), key, klen) : NULL;
  return slot ? (entry *)*slot : NULL;
}

int mb_shared_get(mb_shared *s, const char *name, const char *key, size_t klen,
                  mb_shared_value *out) {
  entry *e = entry_of(dict_of(s, name), key, klen);
  if (e == NULL) return MB_ENOTFOUND;
  *out = e->v;
  return MB_OK;
}

static size_t dict_cost(size_t nlen) { return sizeof(dict) + nlen + 1; }

static size_t value_len(const mb_shared_value *v) {
  return v->type == MB_SHARED_STRING || v->type == MB_SHARED_JSON ? v->len : 0;
}

static size_t entry_cost(size_t klen, const mb_shared_value *v) {
  return sizeof(entry) + klen + value_len(v) + 1;
}

/* A new dictionary named name (counted in s, added to s->dicts). NULL: out of memory. */
static dict *new_dict(mb_shared *s, const char *name) {
  size_t len = strlen(name);
  if (grow(s, &s->dicts) != MB_OK) return NULL;
  dict *d = calloc(1, sizeof *d + len + 1);
  if (d == NULL) return NULL;
  memcpy(d->name, name, len + 1);
  d->link = (node){NULL, hash_of(name, len), d->name, len};
  d->cost = dict_cost(len);
  s->bytes += d->cost;
  add(&s->dicts, &d->link);
  return d;
}

static entry *new_entry(const char *key, size_t klen, const mb_shared_value *v, uint64_t h) {
  size_t vlen = value_len(v);
  entry *e = malloc(sizeof *e + klen + vlen + 1);
  if (e == NULL) return NULL;
  memcpy(e->data, key, klen);
  if (vlen) memcpy(e->data + klen, v->bytes, vlen);
  e->data[klen + vlen] = '\0';
  e->link = (node){NULL, h, e->data, klen};
  e->v = *v;
  e->v.bytes = e->data + klen; /* "" for an empty string */
  e->v.len = vlen;
  e->cost = entry_cost(klen, v);
  return e;
}

static int check_names(const char *name, size_t klen, mb_err *err) {
  size_t nlen = strlen(name);
  if (nlen == 0 || nlen > MB_SHARED_NAME_MAX)
    return mb_err_set(err, MB_EINVAL, "a shared dictionary's name has 1-%d bytes, not %zu",
                      MB_SHARED_NAME_MAX, nlen);
  if (klen == 0 || klen > MB_SHARED_KEY_MAX)
    return mb_err_set(err, MB_EINVAL, "a key has 1-%d bytes, not %zu", MB_SHARED_KEY_MAX, klen);
  return MB_OK;
}

/* MB_ETOOBIG if taking adding bytes (and giving back freeing) would take s past its bound;
 * a change that does not grow the store always passes. */
static int check_room(const mb_shared *s, size_t adding, size_t freeing, const char *name,
                      mb_err *err) {
  if (adding <= freeing || s->bytes - freeing + adding <= s->limit) return MB_OK;
  return mb_err_set(err, MB_ETOOBIG,
                    "shared dictionary '%.64s': the store would hold %zu bytes, over its bound "
                    "of %zu (shared_memory); it holds %zu",
                    name, s->bytes - freeing + adding, s->limit, s->bytes);
}

static void remove_entry(mb_shared *s, dict *d, node **slot) {
  entry *e = (entry *)*slot;
  *slot = e->link.next;
  d->entries.count--;
  s->bytes -= e->cost;
  free(e);
}

int mb_shared_delete(mb_shared *s, const char *name, const char *key, size_t klen) {
  dict *d = dict_of(s, name);
  node **slot = d ? find(&d->entries, hash_of(key, klen), key, klen) : NULL;
  if (slot == NULL || *slot == NULL) return MB_ENOTFOUND;
  remove_entry(s, d, slot);
  return MB_OK;
}

/* Puts the new entry in place of the old one at slot. */
static void replace(mb_shared *s, node **slot, entry *e) {
  entry *old = (entry *)*slot;
  e->link.next = old->link.next;
  *slot = &e->link;
  s->bytes += e->cost;
  s->bytes -= old->cost;
  free(old);
}

int mb_shared_set(mb_shared *s, const char *name, const char *key, size_t klen,
                  const mb_shared_value *v, mb_err *err) {
  if (check_names(name, klen, err) != MB_OK) return MB_EINVAL;
  if (v->type == MB_SHARED_NIL) {
    mb_shared_delete(s, name, key, klen);
    return MB_OK;
  }
  dict *d = dict_of(s, name);
  uint64_t h = hash_of(key, klen);
  node **slot = d ? find(&d->entries, h, key, klen) : NULL;
  entry *old = slot ? (entry *)*slot : NULL;
  size_t adding = entry_cost(klen, v) + (old ? 0 : d ? growth(&d->entries) : 0);
  if (d == NULL) adding += dict_cost(strlen(name)) + growth(&s->dicts) + growth(&(table){0});
  if (check_room(s, adding, old ? old->cost : 0, name, err) != MB_OK) return MB_ETOOBIG;
  entry *e = new_entry(key, klen, v, h);
  if (e == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  if (old) {
    replace(s, slot, e);
    return MB_OK;
  }
  if ((d == NULL && (d = new_dict(s, name)) == NULL) || grow(s, &d->entries) != MB_OK) {
    free(e);
    return mb_err_set(err, MB_ENOMEM, "out of memory");
  }
  add(&d->entries, &e->link);
  s->bytes += e->cost;
  return MB_OK;
}

/* How much of a key an error message shows. */
static int head(size_t klen) { return klen > 64 ? 64 : (int)klen; }

static int is_number(const mb_shared_value *v) {
  return v->type == MB_SHARED_INTEGER || v->type == MB_SHARED_NUMBER;
}

static double as_double(const mb_shared_value *v) {
  return v->type == MB_SHARED_INTEGER ? (double)v->integer : v->number;
}

/* a + b as Lua adds them: two integers wrap around, anything else is a float. */
static mb_shared_value sum(const mb_shared_value *a, const mb_shared_value *b) {
  mb_shared_value r = {0};
  if (a->type == MB_SHARED_INTEGER && b->type == MB_SHARED_INTEGER) {
    r.type = MB_SHARED_INTEGER;
    r.integer = (int64_t)((uint64_t)a->integer + (uint64_t)b->integer);
  } else {
    r.type = MB_SHARED_NUMBER;
    r.number = as_double(a) + as_double(b);
  }
  return r;
}

int mb_shared_incr(mb_shared *s, const char *name, const char *key, size_t klen,
                   const mb_shared_value *by, const mb_shared_value *init, mb_shared_value *out,
                   mb_err *err) {
  if (check_names(name, klen, err) != MB_OK) return MB_EINVAL;
  if (!is_number(by) || (init && !is_number(init)))
    return mb_err_set(err, MB_EINVAL, "incr adds numbers");
  mb_shared_value held;
  if (mb_shared_get(s, name, key, klen, &held) != MB_OK) {
    if (init == NULL)
      return mb_err_set(err, MB_ENOTFOUND,
                        "no key '%.*s' (an init argument starts a missing key)", head(klen), key);
    held = *init;
  } else if (!is_number(&held)) {
    return mb_err_set(err, MB_EINVAL, "the value of '%.*s' is a %s, not a number", head(klen),
                      key, mb_shared_type_name(held.type));
  }
  mb_shared_value r = sum(&held, by);
  int rc = mb_shared_set(s, name, key, klen, &r, err);
  if (rc == MB_OK) *out = r;
  return rc;
}

size_t mb_shared_count(const mb_shared *s, const char *name) {
  dict *d = dict_of(s, name);
  return d ? d->entries.count : 0;
}

size_t mb_shared_keys(const mb_shared *s, const char *name, size_t max, mb_shared_key_fn fn,
                      void *ud) {
  dict *d = dict_of(s, name);
  size_t n = 0;
  for (size_t i = 0; d && i < d->entries.n; i++)
    for (node *x = d->entries.buckets[i]; x && (max == 0 || n < max); x = x->next, n++)
      fn(ud, x->key, x->klen);
  return n;
}

void mb_shared_flush(mb_shared *s, const char *name) {
  dict *d = dict_of(s, name);
  if (d) free_entries(s, &d->entries);
}

const char *mb_shared_type_name(mb_shared_type type) {
  switch (type) {
  case MB_SHARED_BOOLEAN: return "boolean";
  case MB_SHARED_INTEGER: return "integer";
  case MB_SHARED_NUMBER: return "number";
  case MB_SHARED_STRING: return "string";
  case MB_SHARED_JSON: return "table";
  default: return "nil";
  }
}
