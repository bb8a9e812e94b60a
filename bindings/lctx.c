/* lctx.c — the ctx userdata (DESIGN §3): read-only fields of a message and ctx:reply. A
 * handler's ctx is bound to its job; once the job ends the ctx is cut loose and any use
 * of it is an error that says so. The ctx of a reply to bus.request owns its delivery
 * (freed with the ctx) and cannot be replied to.
 * Never: keeps a handled message alive or sends anything itself (lsend.c does). */
#include <string.h>

#include "lbus.h"
#include "pipeline.h"

typedef struct lctx {
  mb_job *job;        /* NULL once its attempt ended (the job-end hook, cut_loose) */
  mb_delivery *reply; /* the ctx of a reply owns it */
  const char *endpoint;
} lctx;

/* The message ctx describes, raising once its handler ended. */
static const mb_delivery *check_message(lua_State *L, lctx **out) {
  lctx *c = luaL_checkudata(L, 1, MB_CTX_MT);
  if (out) *out = c;
  if (c->reply) return c->reply;
  if (c->job == NULL)
    luaL_error(L, "ctx is used after its handler ended: keep the values you need, not ctx");
  return mb_job_delivery(c->job);
}

static int l_reply(lua_State *L) {
  lctx *c;
  check_message(L, &c);
  if (c->reply)
    return luaL_error(L, "ctx:reply: this is the ctx of a reply to bus.request; reply to the "
                         "message your handler handles, with the ctx the handler received");
  return mb_lsend_reply(L, c->job);
}

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

/* The version the message arrived with (before any upcast): 1 without a header. */
static void push_version(lua_State *L, const mb_headers *h) {
  lua_Integer v;
  if (mb_lversion_parse(mb_headers_get(h, MB_H_VERSION), &v)) lua_pushinteger(L, v);
  else lua_pushnil(L);
}

/* Pushes field key of the message; returns 0 for an unknown key. */
static int push_field(lua_State *L, const lctx *c, const mb_delivery *d, const char *key) {
  const mb_envelope *e = &d->env;
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
  else if (strcmp(key, "attempt") == 0) lua_pushinteger(L, c->job ? mb_job_attempt(c->job) : 1);
  else if (strcmp(key, "delayed_attempt") == 0) push_delayed_attempt(L, &e->headers);
  else if (strcmp(key, "endpoint") == 0)
    lua_pushstring(L, c->job ? mb_job_endpoint(c->job) : c->endpoint);
  else if (strcmp(key, "queue") == 0) lua_pushstring(L, d->queue);
  else if (strcmp(key, "version") == 0) push_version(L, &e->headers);
  else return 0;
  return 1;
}

static int ctx_index(lua_State *L) {
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "reply") == 0) {
    lua_pushcfunction(L, l_reply);
    return 1;
  }
  lctx *c;
  const mb_delivery *d = check_message(L, &c);
  if (!push_field(L, c, d, key))
    return luaL_error(L,
                      "ctx has no field '%s' (fields: id, type, kind, correlation_id, "
                      "conversation_id, related_to, reply_to, headers, attempt, "
                      "delayed_attempt, time_sent, endpoint, queue, version; method: reply)",
                      key);
  return 1;
}

static int ctx_newindex(lua_State *L) {
  return luaL_error(L, "ctx is read-only (tried to set '%s')", luaL_tolstring(L, 2, NULL));
}

static int ctx_tostring(lua_State *L) {
  lctx *c = luaL_checkudata(L, 1, MB_CTX_MT);
  const mb_delivery *d = c->reply ? c->reply : c->job ? mb_job_delivery(c->job) : NULL;
  if (d) lua_pushfstring(L, "ctx(%s %s)", d->env.type, d->env.id);
  else lua_pushliteral(L, "ctx(ended)");
  return 1;
}

static int ctx_gc(lua_State *L) {
  lctx *c = luaL_checkudata(L, 1, MB_CTX_MT);
  if (c->job) mb_job_on_end(c->job, NULL, NULL);
  c->job = NULL;
  mb_delivery_free(c->reply);
  c->reply = NULL;
  return 0;
}

/* The job's attempt ended: the ctx outlives it, cut loose. */
static void cut_loose(void *ud) { ((lctx *)ud)->job = NULL; }

void mb_lctx_push(lua_State *L, mb_job *job) {
  lctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, MB_CTX_MT);
  c->job = job;
  mb_job_on_end(job, cut_loose, c);
}

void mb_lctx_push_reply(lua_State *L, mb_delivery *reply) {
  lctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->reply = reply;
  luaL_setmetatable(L, MB_CTX_MT);
  c->endpoint = mb_runtime_cfg(mb_lbus_runtime(L))->name;
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
