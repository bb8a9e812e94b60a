/* lctx.c — the ctx userdata a handler receives (DESIGN §3): read-only fields of the
 * message being handled and ctx:reply. A ctx is bound to its job; once the job ends the
 * ctx is cut loose and any use of it is an error that says so.
 * Never: keeps a message alive or sends anything itself (lsend.c does). */
#include <string.h>

#include "lbus.h"
#include "pipeline.h"

typedef struct lctx {
  mb_job *job; /* first member: pipeline.c clears it through job->ctx when the job ends */
} lctx;

static mb_job *check_job(lua_State *L) {
  lctx *c = luaL_checkudata(L, 1, MB_CTX_MT);
  if (c->job == NULL)
    luaL_error(L, "ctx is used after its handler ended: keep the values you need, not ctx");
  return c->job;
}

static int l_reply(lua_State *L) { return mb_lsend_reply(L, check_job(L)); }

static void push_opt_string(lua_State *L, const char *s) {
  if (s) lua_pushstring(L, s);
  else lua_pushnil(L);
}

static void push_headers(lua_State *L, const mb_headers *h) {
  lua_createtable(L, 0, (int)h->len);
  for (size_t i = 0; i < h->len; i++) {
    lua_pushstring(L, h->items[i].value);
    lua_setfield(L, -2, h->items[i].key);
  }
}

static void push_delayed_attempt(lua_State *L, const mb_headers *h) {
  const char *round = mb_headers_get(h, MB_H_RETRIES_DELAYED);
  lua_Integer n = 0;
  if (round && lua_stringtonumber(L, round)) {
    n = lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  lua_pushinteger(L, n);
}

/* Pushes field key of the message; returns 0 for an unknown key. */
static int push_field(lua_State *L, const mb_job *job, const char *key) {
  const mb_envelope *e = &job->d->env;
  if (strcmp(key, "id") == 0) lua_pushstring(L, e->id);
  else if (strcmp(key, "type") == 0) lua_pushstring(L, e->type);
  else if (strcmp(key, "kind") == 0) push_opt_string(L, mb_headers_get(&e->headers, MB_H_KIND));
  else if (strcmp(key, "correlation_id") == 0) push_opt_string(L, e->correlation_id);
  else if (strcmp(key, "reply_to") == 0) push_opt_string(L, e->reply_to);
  else if (strcmp(key, "conversation_id") == 0)
    push_opt_string(L, mb_headers_get(&e->headers, MB_H_CONVERSATION));
  else if (strcmp(key, "related_to") == 0)
    push_opt_string(L, mb_headers_get(&e->headers, MB_H_RELATED_TO));
  else if (strcmp(key, "time_sent") == 0)
    push_opt_string(L, mb_headers_get(&e->headers, MB_H_TIME_SENT));
  else if (strcmp(key, "headers") == 0) push_headers(L, &e->headers);
  else if (strcmp(key, "attempt") == 0) lua_pushinteger(L, job->d->delivery_count);
  else if (strcmp(key, "delayed_attempt") == 0) push_delayed_attempt(L, &e->headers);
  else if (strcmp(key, "endpoint") == 0) lua_pushstring(L, job->rt->cfg.name);
  else if (strcmp(key, "queue") == 0) lua_pushstring(L, job->d->queue);
  else return 0;
  return 1;
}

static int ctx_index(lua_State *L) {
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "reply") == 0) {
    lua_pushcfunction(L, l_reply);
    return 1;
  }
  if (!push_field(L, check_job(L), key))
    return luaL_error(L, "ctx has no field '%s' (fields: id, type, kind, correlation_id, "
                      "conversation_id, related_to, reply_to, headers, attempt, "
                      "delayed_attempt, time_sent, endpoint, queue; method: reply)", key);
  return 1;
}

static int ctx_newindex(lua_State *L) {
  return luaL_error(L, "ctx is read-only (tried to set '%s')", luaL_tolstring(L, 2, NULL));
}

static int ctx_tostring(lua_State *L) {
  lctx *c = luaL_checkudata(L, 1, MB_CTX_MT);
  if (c->job) lua_pushfstring(L, "ctx(%s %s)", c->job->d->env.type, c->job->d->env.id);
  else lua_pushliteral(L, "ctx(ended)");
  return 1;
}

static int ctx_gc(lua_State *L) {
  lctx *c = luaL_checkudata(L, 1, MB_CTX_MT);
  if (c->job) c->job->ctx = NULL;
  c->job = NULL;
  return 0;
}

void mb_lctx_push(lua_State *L, mb_job *job) {
  lctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->job = job;
  job->ctx = c;
  luaL_setmetatable(L, MB_CTX_MT);
}

static const luaL_Reg ctx_meta[] = {
    {"__index", ctx_index},
    {"__newindex", ctx_newindex},
    {"__tostring", ctx_tostring},
    {"__gc", ctx_gc},
    {NULL, NULL},
};

void mb_lctx_open(lua_State *L) {
  luaL_newmetatable(L, MB_CTX_MT);
  luaL_setfuncs(L, ctx_meta, 0);
  lua_pop(L, 1);
}
