/* headers.c — the header list of a message, its key rules and its size rules.
 * Owns: every header list's memory (one "key\0value\0" block per header, owned through
 * key). Never encodes or decodes a list (headers_json.c does), never touches Lua, sockets
 * or databases. */
#include "headers.h"

#include <stdlib.h>
#include <string.h>

static mb_header *find(const mb_headers *h, const char *key) {
  for (size_t i = 0; i < h->len; i++)
    if (strcmp(h->items[i].key, key) == 0) return &h->items[i];
  return NULL;
}

static int grow(mb_headers *h) {
  if (h->len < h->cap) return MB_OK;
  size_t cap = h->cap ? h->cap * 2 : 16;
  mb_header *items = realloc(h->items, cap * sizeof *items);
  if (items == NULL) return MB_ENOMEM;
  h->items = items;
  h->cap = cap;
  return MB_OK;
}

/* One allocation holds a header's key and value ("key\0value\0"): key owns it. */
static int make_pair_n(mb_header *it, const char *key, size_t klen, const char *value,
                       size_t vlen) {
  char *block = malloc(klen + vlen + 2);
  if (block == NULL) return MB_ENOMEM;
  memcpy(block, key, klen);
  block[klen] = '\0';
  memcpy(block + klen + 1, value, vlen);
  block[klen + 1 + vlen] = '\0';
  it->key = block;
  it->value = block + klen + 1;
  return MB_OK;
}

static int make_pair(mb_header *it, const char *key, const char *value) {
  return make_pair_n(it, key, strlen(key), value, strlen(value));
}

int mb_headers_append_n(mb_headers *h, const char *key, size_t klen, const char *value,
                        size_t vlen) {
  if (grow(h) != MB_OK || make_pair_n(&h->items[h->len], key, klen, value, vlen) != MB_OK)
    return MB_ENOMEM;
  h->len++;
  return MB_OK;
}

static int append(mb_headers *h, const char *key, const char *value) {
  return mb_headers_append_n(h, key, strlen(key), value, strlen(value));
}

int mb_headers_set(mb_headers *h, const char *key, const char *value) {
  mb_header *it = find(h, key);
  if (it == NULL) return append(h, key, value);
  mb_header replaced;
  if (make_pair(&replaced, key, value) != MB_OK) return MB_ENOMEM;
  free(it->key);
  *it = replaced;
  return MB_OK;
}

const char *mb_headers_get(const mb_headers *h, const char *key) {
  mb_header *it = find(h, key);
  return it ? it->value : NULL;
}

int mb_headers_remove(mb_headers *h, const char *key) {
  mb_header *it = find(h, key);
  if (it == NULL) return 0;
  free(it->key);
  size_t i = (size_t)(it - h->items);
  memmove(it, it + 1, (h->len - i - 1) * sizeof *it);
  h->len--;
  return 1;
}

int mb_headers_copy(mb_headers *dst, const mb_headers *src) {
  mb_headers_free(dst);
  for (size_t i = 0; i < src->len; i++) {
    int rc = append(dst, src->items[i].key, src->items[i].value);
    if (rc != MB_OK) {
      mb_headers_free(dst);
      return rc;
    }
  }
  return MB_OK;
}

void mb_headers_free(mb_headers *h) {
  for (size_t i = 0; i < h->len; i++) free(h->items[i].key); /* the value lives in its block */
  free(h->items);
  h->items = NULL;
  h->len = h->cap = 0;
}

const char *mb_header_key_problem(const char *key, int allow_reserved) {
  size_t len = key ? strlen(key) : 0;
  if (len == 0) return "a header key may not be empty";
  if (len > MB_HEADER_KEY_MAX) return "a header key may not be longer than 255 bytes";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)key[i];
    if (c < 0x21 || c > 0x7e)
      return "a header key must be printable ASCII without spaces (0x21-0x7e)";
  }
  if (!allow_reserved && strncmp(key, MB_RESERVED_PREFIX, strlen(MB_RESERVED_PREFIX)) == 0)
    return "header keys starting with \"moonbus.\" are reserved for the bus";
  if (!allow_reserved && (key[0] == 'x' || key[0] == 'X') && key[1] == '-')
    return "header keys starting with \"x-\" are the broker's (RabbitMQ sets and strips "
           "them): choose another name";
  return NULL;
}

int mb_headers_check(const mb_headers *h, int allow_reserved, mb_err *err) {
  if (h->len > MB_HEADERS_MAX_COUNT)
    return mb_err_set(err, MB_EINVAL, "%zu headers, over the limit of %d", h->len,
                      MB_HEADERS_MAX_COUNT);
  size_t total = 0;
  for (size_t i = 0; i < h->len; i++) {
    const char *key = h->items[i].key, *why = mb_header_key_problem(key, allow_reserved);
    if (why) return mb_err_set(err, MB_EINVAL, "header '%.64s': %s", key, why);
    total += strlen(key) + strlen(h->items[i].value);
  }
  if (total > MB_HEADERS_MAX_BYTES)
    return mb_err_set(err, MB_EINVAL, "headers add up to %zu bytes, over the limit of %u", total,
                      MB_HEADERS_MAX_BYTES);
  return MB_OK;
}
