/* lwait.c — the bus calls that park their coroutine (DESIGN §2, §3): bus.request waits
 * for its reply or its timeout (correlate.c holds it), and a send from a timer waits for
 * the transport's answer (publisher confirms). A wait lives on the heap: the coroutine
 * parks in sched.c, the answer arrives on the loop, mb_sched_wake resumes the coroutine,
 * and the continuation turns what arrived into results or an error, then frees the wait.
 * If the bus shuts down first, the cancel hook frees it instead.
 * Failures are raised as error values with a kind (lerror.c): the send's status, "timeout",
 * "bad_reply". Never: resumes a coroutine itself. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "correlate.h"
#include "errorq.h"
#include "ids.h"
#include "lbus.h"

typedef struct lwait {
  mb_sched *sched;
  mb_runtime *rt;
  mb_thread *th;
  mb_send *ticket; /* the transport has not answered the send yet */
  int expecting;   /* a reply is expected under id */
  int parked, done;
  int status; /* of the send; MB_OK once a reply came */
  char error[MB_ERRLEN];
  mb_delivery *reply;     /* the reply, or NULL (timed out, or a failed send) */
  char id[MB_ID_LEN + 1]; /* the request's id, which its reply carries as correlation id */
  char what[300];         /* "billing.Authorize to billing", for errors */
  double timeout;
} lwait;

static void wait_free(lwait *w) {
  mb_send_forget(w->ticket);
  if (w->expecting) mb_correlate_cancel(mb_runtime_correlate(w->rt), w->id);
  mb_delivery_free(w->reply);
  free(w);
}

static void cancelled(void *ud) { wait_free(ud); }

/* The answer is complete: wake the coroutine if it parked already. */
static void settle(lwait *w) {
  w->done = 1;
  mb_send_forget(w->ticket);
  w->ticket = NULL;
  if (w->expecting) mb_correlate_cancel(mb_runtime_correlate(w->rt), w->id);
  w->expecting = 0;
  if (w->parked) mb_sched_wake(w->sched, w->th);
}

static void sent(void *ud, int status, const char *error) {
  lwait *w = ud;
  w->ticket = NULL;
  if (w->done) return;
  w->status = status;
  if (status != MB_OK)
    snprintf(w->error, sizeof w->error, "%s", error ? error : mb_strerror(status));
  if (status != MB_OK || !w->expecting) settle(w);
}

static void replied(void *ud, mb_delivery *reply) {
  lwait *w = ud;
  w->expecting = 0; /* correlate.c has forgotten it already */
  w->reply = reply;
  w->status = MB_OK;
  settle(w);
}

static lwait *wait_new(lua_State *L, mb_thread *th, const char *what) {
  mb_vm *vm = mb_lbus_vm(L);
  lwait *w = calloc(1, sizeof *w);
  if (w == NULL) luaL_error(L, "out of memory");
  w->sched = mb_vm_sched(vm);
  w->rt = mb_vm_runtime(vm);
  w->th = th;
  snprintf(w->what, sizeof w->what, "%s", what);
  return w;
}

/* Sends m at once; the time the transport takes to accept it (SQLite commits to disk
 * before it returns) is waiting, not running Lua: it does not count against the budget. */
static int send_now(lwait *w, mb_outgoing *m, mb_err *err) {
  double started = mb_monotonic();
  int rc = mb_runtime_send(w->rt, &m, 1, sent, w, &w->ticket, err);
  mb_sched_credit(w->sched, w->th, mb_monotonic() - started);
  return rc;
}

/* Parks unless the answer came already; then k runs (now, or when woken). */
static int park_or_continue(lua_State *L, lwait *w, lua_KFunction k) {
  if (w->done) return k(L, LUA_OK, (lua_KContext)w);
  w->parked = 1;
  mb_sched_park(w->sched, w->th, cancelled, w);
  return lua_yieldk(L, 0, (lua_KContext)w, k);
}

/* --- sends from timers ------------------------------------------------------------- */

static int send_k(lua_State *L, int status, lua_KContext k) {
  (void)status;
  lwait *w = (lwait *)k;
  char error[MB_ERRLEN + 360];
  int failed = w->status;
  if (failed) snprintf(error, sizeof error, "%s: %s", w->what, w->error);
  wait_free(w);
  if (failed) return mb_lerror_raise_status(L, failed, "%s", error);
  return 0;
}

int mb_lwait_send(lua_State *L, mb_thread *th, mb_outgoing *m, const char *fn) {
  lwait *w = wait_new(L, th, fn);
  mb_err err;
  int rc = send_now(w, m, &err);
  if (rc != MB_OK) {
    wait_free(w);
    return mb_lerror_raise_status(L, rc, "%s: %s", fn, err.msg);
  }
  return park_or_continue(L, w, send_k);
}

/* --- bus.request -------------------------------------------------------------------- */

/* Raises the timeout error value (kind "timeout"). [-0, +0, v] */
static int raise_timeout(lua_State *L, lwait *w) {
  mb_lerror_push(L, "timeout", "bus.request: no reply to %s (request %s) within %f s", w->what,
                 w->id, w->timeout);
  lua_pushstring(L, w->id);
  lua_setfield(L, -2, "request_id");
  lua_pushnumber(L, w->timeout);
  lua_setfield(L, -2, "timeout");
  wait_free(w);
  return lua_error(L);
}

/* Pushes body and ctx of the reply (the ctx owns it from here on). [-0, +2, e] */
static int push_reply(lua_State *L, mb_delivery *reply) {
  mb_lctx_push_reply(L, reply);
  int ctx = lua_gettop(L);
  const char *type = reply->env.type ? reply->env.type : "(no type)";
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_TYPES);
  if (lua_getfield(L, -1, type) != LUA_TTABLE)
    return mb_lerror_raise(L, "bad_reply",
                           "bus.request: the reply is a %s, which this endpoint "
                           "does not declare: declare it with bus.message(\"%s\")",
                           type, type);
  int contract = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_JSON);
  lua_getfield(L, -1, "decode");
  lua_pushlstring(L, reply->env.body ? reply->env.body : "", reply->env.body_len);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1))
    return mb_lerror_raise(L, "bad_reply",
                           "bus.request: the reply %s (%s) is not a JSON "
                           "object: %s",
                           reply->env.id, type, luaL_tolstring(L, -1, NULL));
  int body = lua_gettop(L);
  if (mb_lversion_upcast(L, contract, body, type,
                         mb_headers_get(&reply->env.headers, MB_H_VERSION)) != MB_UPCAST_OK)
    return mb_lerror_raise(L, "bad_reply", "bus.request: the reply %s (%s): %s", reply->env.id,
                           type, lua_tostring(L, -1));
  if (!mb_lcontract_check(L, contract, body, type))
    return mb_lerror_raise(L, "bad_reply",
                           "bus.request: the reply %s (%s) breaks its "
                           "contract: %s",
                           reply->env.id, type, lua_tostring(L, -1));
  lua_pushvalue(L, body);
  lua_pushvalue(L, ctx);
  return 2;
}

/* The request was parked by the endpoint that got it (errorq.h's notice): raises an error
 * of kind request_failed with its reason, at once rather than at the timeout. [-0, +0, v] */
static int raise_parked(lua_State *L, lwait *w, mb_delivery *notice) {
  const mb_headers *h = &notice->env.headers;
  const char *why = mb_headers_get(h, MB_H_EXCEPTION_MESSAGE);
  const char *by = mb_headers_get(h, MB_H_ORIGIN_ENDPOINT);
  mb_lerror_push(L, "request_failed",
                 "bus.request: %s (request %s) was parked by endpoint %s: %s", w->what, w->id,
                 by ? by : "?", why ? why : "(no reason given)");
  mb_delivery_free(notice);
  wait_free(w);
  return lua_error(L);
}

static int request_k(lua_State *L, int status, lua_KContext k) {
  (void)status;
  lwait *w = (lwait *)k;
  if (w->reply) {
    mb_delivery *reply = w->reply;
    w->reply = NULL;
    if (reply->env.type && strcmp(reply->env.type, MB_TYPE_REQUEST_FAILED) == 0)
      return raise_parked(L, w, reply);
    wait_free(w);
    return push_reply(L, reply);
  }
  if (w->status == MB_OK) return raise_timeout(L, w);
  char error[MB_ERRLEN + 360];
  snprintf(error, sizeof error, "bus.request: %s could not be sent: %s", w->what, w->error);
  int failed = w->status;
  wait_free(w);
  return mb_lerror_raise_status(L, failed, "%s", error);
}

int mb_lwait_request(lua_State *L, mb_thread *th, mb_outgoing *m, double timeout) {
  char what[300];
  snprintf(what, sizeof what, "%.120s to %.160s", m->env.type, m->dest);
  lwait *w = wait_new(L, th, what);
  memcpy(w->id, m->env.id, sizeof w->id);
  w->timeout = timeout;
  if (mb_correlate_expect(mb_runtime_correlate(w->rt), w->id, timeout, replied, w) != MB_OK) {
    mb_outgoing_free(m);
    wait_free(w);
    return luaL_error(L, "out of memory");
  }
  w->expecting = 1;
  mb_err err;
  int rc = send_now(w, m, &err);
  if (rc != MB_OK) {
    wait_free(w);
    return mb_lerror_raise_status(L, rc, "bus.request: %s", err.msg);
  }
  return park_or_continue(L, w, request_k);
}
