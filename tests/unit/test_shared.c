/* test_shared.c — the store behind bus.shared (host/shared.h), without Lua: typed values
 * round-trip, replace and delete keep the byte count honest, the bound refuses a growing set
 * and never a shrinking one, incr follows Lua's arithmetic, many keys and dictionaries; the
 * runtime owns one store across reloads, bounded by the running declaration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "shared.h"
#include "unit.h"

static mb_shared_value str(const char *s) {
  return (mb_shared_value){.type = MB_SHARED_STRING, .bytes = s, .len = strlen(s)};
}
static mb_shared_value integer(int64_t i) {
  return (mb_shared_value){.type = MB_SHARED_INTEGER, .integer = i};
}
static mb_shared_value number(double d) {
  return (mb_shared_value){.type = MB_SHARED_NUMBER, .number = d};
}

static int set(mb_shared *s, const char *dict, const char *key, mb_shared_value v) {
  mb_err err;
  return mb_shared_set(s, dict, key, strlen(key), &v, &err);
}

static int get(mb_shared *s, const char *dict, const char *key, mb_shared_value *v) {
  return mb_shared_get(s, dict, key, strlen(key), v);
}

static void types_round_trip(void) {
  mb_shared *s = mb_shared_new(1 << 20);
  mb_shared_value v, yes = {.type = MB_SHARED_BOOLEAN, .boolean = 1};
  mb_shared_value json = {.type = MB_SHARED_JSON, .bytes = "{\"a\":1}", .len = 7};
  mb_shared_value bin = {.type = MB_SHARED_STRING, .bytes = "a\0b", .len = 3};
  CHECK(set(s, "d", "bool", yes) == MB_OK);
  CHECK(set(s, "d", "int", integer(INT64_MAX)) == MB_OK);
  CHECK(set(s, "d", "num", number(0.5)) == MB_OK);
  CHECK(set(s, "d", "str", bin) == MB_OK);
  CHECK(set(s, "d", "empty", str("")) == MB_OK);
  CHECK(set(s, "d", "json", json) == MB_OK);
  CHECK(get(s, "d", "bool", &v) == MB_OK && v.type == MB_SHARED_BOOLEAN && v.boolean == 1);
  CHECK(get(s, "d", "int", &v) == MB_OK && v.type == MB_SHARED_INTEGER && v.integer == INT64_MAX);
  CHECK(get(s, "d", "num", &v) == MB_OK && v.type == MB_SHARED_NUMBER && v.number == 0.5);
  CHECK(get(s, "d", "str", &v) == MB_OK && v.len == 3 && memcmp(v.bytes, "a\0b", 3) == 0);
  CHECK(get(s, "d", "empty", &v) == MB_OK && v.type == MB_SHARED_STRING && v.len == 0 &&
        v.bytes && v.bytes[0] == '\0');
  CHECK(get(s, "d", "json", &v) == MB_OK && v.type == MB_SHARED_JSON &&
        strcmp(v.bytes, "{\"a\":1}") == 0);
  CHECK(get(s, "d", "none", &v) == MB_ENOTFOUND);
  CHECK(get(s, "other", "int", &v) == MB_ENOTFOUND); /* dictionaries are apart */
  CHECK(mb_shared_count(s, "d") == 6 && mb_shared_count(s, "other") == 0);
  mb_shared_free(s);
}

static void replace_and_delete_keep_the_count(void) {
  mb_shared *s = mb_shared_new(1 << 20);
  CHECK(mb_shared_bytes(s) == 0);
  CHECK(set(s, "d", "k", str("short")) == MB_OK);
  size_t one = mb_shared_bytes(s);
  CHECK(set(s, "d", "k", str("a much longer value than before")) == MB_OK);
  CHECK(mb_shared_bytes(s) == one + strlen("a much longer value than before") - 5);
  CHECK(set(s, "d", "k", str("short")) == MB_OK);
  CHECK(mb_shared_bytes(s) == one);
  CHECK(mb_shared_count(s, "d") == 1);
  mb_shared_value v;
  CHECK(get(s, "d", "k", &v) == MB_OK && strcmp(v.bytes, "short") == 0);
  CHECK(mb_shared_delete(s, "d", "k", 1) == MB_OK);
  CHECK(mb_shared_delete(s, "d", "k", 1) == MB_ENOTFOUND);
  CHECK(get(s, "d", "k", &v) == MB_ENOTFOUND && mb_shared_count(s, "d") == 0);
  CHECK(set(s, "d", "k", integer(1)) == MB_OK);
  mb_shared_value nil = {.type = MB_SHARED_NIL};
  CHECK(set(s, "d", "k", nil) == MB_OK); /* nil deletes */
  CHECK(get(s, "d", "k", &v) == MB_ENOTFOUND);
  mb_shared_free(s);
}

static void the_bound_refuses_growth_only(void) {
  mb_shared *s = mb_shared_new(4096);
  char big[5000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  mb_err err;
  mb_shared_value v = str(big);
  CHECK(mb_shared_set(s, "d", "big", 3, &v, &err) == MB_ETOOBIG);
  CHECK(strstr(err.msg, "4096") != NULL && strstr(err.msg, "shared_memory") != NULL);
  CHECK(mb_shared_bytes(s) == 0 && mb_shared_count(s, "d") == 0); /* nothing changed */
  int stored = 0;
  char key[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    if (set(s, "d", key, str("0123456789")) != MB_OK) break;
    stored++;
  }
  CHECK(stored > 10 && stored < 1000);
  CHECK(mb_shared_bytes(s) <= 4096);
  CHECK(set(s, "d", "k0", str("0123")) == MB_OK); /* shrinking passes */
  CHECK(set(s, "d", "k0", integer(7)) == MB_OK);
  mb_shared_set_limit(s, 1024); /* a reload lowers it: what is held stays */
  CHECK(mb_shared_count(s, "d") == (size_t)stored);
  CHECK(set(s, "d", "new", str("x")) == MB_ETOOBIG);
  CHECK(mb_shared_delete(s, "d", "k1", 2) == MB_OK);
  CHECK(set(s, "d", "k2", str("")) == MB_OK);
  mb_shared_flush(s, "d");
  CHECK(mb_shared_count(s, "d") == 0 && mb_shared_bytes(s) < 1024);
  CHECK(set(s, "d", "new", str("x")) == MB_OK);
  mb_shared_free(s);
}

static void names_and_keys_have_lengths(void) {
  mb_shared *s = mb_shared_new(1 << 20);
  mb_err err;
  mb_shared_value v = integer(1);
  CHECK(mb_shared_set(s, "d", "", 0, &v, &err) == MB_EINVAL);
  char name[300];
  memset(name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  CHECK(mb_shared_set(s, name, "k", 1, &v, &err) == MB_EINVAL);
  CHECK(mb_shared_set(s, "", "k", 1, &v, &err) == MB_EINVAL);
  CHECK(mb_shared_bytes(s) == 0);
  mb_shared_free(s);
}

static void incr_adds_as_lua_does(void) {
  mb_shared *s = mb_shared_new(1 << 20);
  mb_shared_value out, one = integer(1), zero = integer(0), half = number(0.5);
  mb_err err;
  CHECK(mb_shared_incr(s, "d", "n", 1, &one, NULL, &out, &err) == MB_ENOTFOUND);
  CHECK(mb_shared_incr(s, "d", "n", 1, &one, &zero, &out, &err) == MB_OK);
  CHECK(out.type == MB_SHARED_INTEGER && out.integer == 1);
  CHECK(mb_shared_incr(s, "d", "n", 1, &one, &zero, &out, &err) == MB_OK && out.integer == 2);
  CHECK(mb_shared_incr(s, "d", "n", 1, &half, NULL, &out, &err) == MB_OK);
  CHECK(out.type == MB_SHARED_NUMBER && out.number == 2.5);
  CHECK(set(s, "d", "max", integer(INT64_MAX)) == MB_OK);
  CHECK(mb_shared_incr(s, "d", "max", 3, &one, NULL, &out, &err) == MB_OK);
  CHECK(out.type == MB_SHARED_INTEGER && out.integer == INT64_MIN); /* wraps, as in Lua */
  CHECK(set(s, "d", "s", str("text")) == MB_OK);
  CHECK(mb_shared_incr(s, "d", "s", 1, &one, NULL, &out, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "'s' is a string, not a number") != NULL);
  mb_shared_value v;
  CHECK(mb_shared_get(s, "d", "n", 1, &v) == MB_OK && v.number == 2.5);
  mb_shared_free(s);
}

static void count_key(void *ud, const char *key, size_t klen) {
  (void)key;
  (void)klen;
  (*(size_t *)ud)++;
}

static void many_keys_and_dictionaries(void) {
  mb_shared *s = mb_shared_new((size_t)64 << 20);
  char key[32], dict[32];
  int ok = 1;
  for (int i = 0; i < 100000 && ok; i++) {
    snprintf(key, sizeof key, "key-%d", i);
    snprintf(dict, sizeof dict, "dict-%d", i % 50);
    ok = set(s, dict, key, integer(i)) == MB_OK;
  }
  CHECK(ok);
  CHECK(mb_shared_count(s, "dict-7") == 2000);
  mb_shared_value v;
  CHECK(get(s, "dict-7", "key-99957", &v) == MB_OK && v.integer == 99957);
  CHECK(get(s, "dict-8", "key-99957", &v) == MB_ENOTFOUND);
  size_t seen = 0;
  CHECK(mb_shared_keys(s, "dict-7", 0, count_key, &seen) == 2000 && seen == 2000);
  seen = 0;
  CHECK(mb_shared_keys(s, "dict-7", 10, count_key, &seen) == 10 && seen == 10);
  size_t before = mb_shared_bytes(s);
  for (int i = 0; i < 100000; i += 2) {
    snprintf(key, sizeof key, "key-%d", i);
    snprintf(dict, sizeof dict, "dict-%d", i % 50);
    ok &= mb_shared_delete(s, dict, key, strlen(key)) == MB_OK;
  }
  CHECK(ok && mb_shared_bytes(s) < before);
  CHECK(mb_shared_count(s, "dict-7") == 2000 && mb_shared_count(s, "dict-8") == 0);
  mb_shared_free(s); /* ASan: nothing leaks */
}

/* A declaration of endpoint "e" with shared_memory bytes, configured into rt. */
static int configure(mb_runtime *rt, size_t shared_memory) {
  mb_endpoint_cfg cfg;
  mb_err err;
  if (mb_endpoint_cfg_defaults(&cfg) != MB_OK || (cfg.name = strdup("e")) == NULL) return -1;
  cfg.shared_memory = shared_memory;
  return mb_runtime_configure(rt, &cfg, &err);
}

static void the_runtime_keeps_one_store_across_reloads(void) {
  mb_runtime *rt = mb_runtime_new(NULL, NULL, NULL);
  mb_shared *s = mb_runtime_shared(rt);
  CHECK(s != NULL && mb_shared_limit(s) == MB_DEFAULT_SHARED_MEMORY);
  CHECK(configure(rt, 4096) == MB_OK);
  CHECK(mb_shared_limit(s) == 4096);
  CHECK(set(s, "d", "k", integer(1)) == MB_OK);
  CHECK(mb_runtime_stage(rt) == MB_OK); /* a reload: the new script declares 1 MiB */
  CHECK(configure(rt, 1 << 20) == MB_OK);
  CHECK(mb_shared_limit(s) == 4096); /* staged: not yet */
  mb_err err;
  CHECK(mb_runtime_adopt(rt, &err) == MB_OK);
  CHECK(mb_runtime_shared(rt) == s && mb_shared_limit(s) == 1 << 20);
  mb_shared_value v;
  CHECK(get(s, "d", "k", &v) == MB_OK && v.integer == 1);
  mb_runtime_free(rt); /* frees the store: ASan sees no leak */
}

int main(void) {
  RUN(types_round_trip);
  RUN(replace_and_delete_keep_the_count);
  RUN(the_bound_refuses_growth_only);
  RUN(names_and_keys_have_lengths);
  RUN(incr_adds_as_lua_does);
  RUN(many_keys_and_dictionaries);
  RUN(the_runtime_keeps_one_store_across_reloads);
  return unit_done();
}
