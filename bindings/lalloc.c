/* lalloc.c — the memory budget (DESIGN §6): a Lua allocator that counts the bytes a state
 * holds and refuses to grow past a cap, so that a memory bomb (string.rep("x", 1e10), a
 * table that never stops growing) fails its handler with a memory error instead of taking
 * the host down. Lua runs a full collection before it gives up on a refused allocation, so
 * the cap measures live memory. The host creates its states with it (vm.c); a plain
 * lua5.4 that loads moonbus.so gets it wrapped around its own allocator.
 * Never: frees the counter while its state lives (the allocator outlives lua_close). */
#include <stdlib.h>

#include "lbus.h"

static void *plain(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud, (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

void *mb_alloc_capped(void *ud, void *ptr, size_t osize, size_t nsize) {
  mb_alloc *a = ud;
  size_t old = ptr ? osize : 0; /* without ptr, osize is the kind of object */
  if (nsize > old && a->limit && a->used - old + nsize > a->limit) {
    a->refused = 1;
    return NULL;
  }
  void *p = a->inner(a->inner_ud, ptr, osize, nsize);
  if (nsize == 0) a->used -= old;
  else if (p) a->used = a->used - old + nsize;
  return p;
}

void mb_alloc_init(mb_alloc *a) {
  a->inner = plain;
  a->inner_ud = NULL;
  a->used = a->limit = 0;
  a->refused = a->wrapped = 0;
}

/* The counter of L's allocator, wrapping the one L has if it is not ours yet (module
 * mode: that counter lives as long as the process, like the state). NULL when out of memory. */
static mb_alloc *counter_of(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  if (f == mb_alloc_capped) return ud;
  mb_alloc *a = malloc(sizeof *a);
  if (a == NULL) return NULL;
  a->inner = f;
  a->inner_ud = ud;
  a->used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  a->limit = 0;
  a->refused = 0;
  a->wrapped = 1;
  lua_setallocf(L, mb_alloc_capped, a);
  return a;
}

void mb_alloc_unwrap(lua_State *L) {
  void *ud;
  if (lua_getallocf(L, &ud) != mb_alloc_capped || !((mb_alloc *)ud)->wrapped) return;
  mb_alloc *a = ud;
  lua_setallocf(L, a->inner, a->inner_ud);
  free(a);
}

int mb_alloc_set_limit(lua_State *L, size_t bytes) {
  mb_alloc *a = counter_of(L);
  if (a == NULL) return MB_ENOMEM;
  a->limit = a->used + bytes;
  return MB_OK;
}

int mb_alloc_take_refusal(lua_State *L, size_t *limit) {
  void *ud;
  if (lua_getallocf(L, &ud) != mb_alloc_capped) return 0;
  mb_alloc *a = ud;
  int refused = a->refused;
  a->refused = 0;
  *limit = a->limit;
  return refused;
}
