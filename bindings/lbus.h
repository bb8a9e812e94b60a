/* lbus.h — what the files of bindings/ share with each other and with the host:
 * the way to a state's generation (mb_vm: its runtime, scheduler, timers), registry keys,
 * and the entry points vm.c hands the scheduler (the dispatcher, error descriptions, the
 * budget's raise) and luaopen_*. Bindings never create or free a generation's parts.
 * Never: exposed to scripts; scripts see only the moonbus table. */
#ifndef MOONBUS_LBUS_H
#define MOONBUS_LBUS_H

#include <lauxlib.h>
#include <lua.h>

#include "envelope.h"
#include "runtime.h"
#include "sched.h"
#include "vm.h"

/* Registry keys. */
#define MB_REG_STATE "moonbus.state"       /* module mode: the guard that closes the vm */
#define MB_REG_TYPES "moonbus.types"       /* name -> { kind = ..., schema = ... } */
#define MB_REG_HANDLERS "moonbus.handlers" /* name -> { fn, fn, ... } */
#define MB_REG_ORDER "moonbus.order"       /* name -> { order_by =, key = } (bus.handle) */
#define MB_REG_JSON "moonbus.json"         /* a private lua-cjson instance */
#define MB_UNRECOVERABLE_MT "moonbus.Unrecoverable"
#define MB_CTX_MT "moonbus.Context"
#define MB_TIMER_MT "moonbus.Timer"
#define MB_ERROR_MT "moonbus.Error" /* error values with a kind: lerror.c */

/* Names the broker derives from a script's names must fit AMQP's 255-byte short strings,
 * on every transport (an endpoint tested on SQLite must start on RabbitMQ):
 * - an event type T: exchanges moonbus.event.T and moonbus.owner.T (14-byte prefixes);
 * - an endpoint E: exchange moonbus.publisher.E (18) and the delay routing key
 *   "b27.b26.....b0.E" (28 two-byte words) of its delayed retries. */
#define MB_TYPE_NAME_MAX 255
#define MB_EVENT_NAME_MAX (MB_TYPE_NAME_MAX - (int)sizeof "moonbus.owner." + 1)
#define MB_ENDPOINT_NAME_MAX (MB_TYPE_NAME_MAX - 2 * 28)

/* The generation of this Lua state, raising if moonbus is not open in it. [-0, +0, e] */
mb_vm *mb_lbus_vm(lua_State *L);
/* Its runtime and its scheduler. [-0, +0, e] */
mb_runtime *mb_lbus_runtime(lua_State *L);
mb_sched *mb_lbus_sched(lua_State *L);
/* 1 if the value at idx is a table whose metatable is the one registered under name
 * (luaL_newmetatable). [-0, +0] */
int mb_lbus_has_metatable(lua_State *L, int idx, const char *name);
/* A zeroed userdata of size bytes whose __gc is gc: C memory that an error unwinding the
 * stack cannot leak. [-0, +1, m] */
void *mb_lbus_new_guarded(lua_State *L, size_t size, lua_CFunction gc);

/* --- lbus.c ---------------------------------------------------------------------- */
/* The first n (< 64) bytes of s, for an error message (lua_pushfstring has no %.Ns); a
 * static buffer: use it before the next call. */
const char *mb_lbus_head(const char *s, size_t n);
int luaopen_moonbus(lua_State *L);
/* Module mode: the generation's parts are made anew (mb_vm_reset): contracts, handlers
 * and the endpoint are forgotten. [-0, +0, e] */
void mb_lbus_reset(lua_State *L);
/* Pushes the message an error value carries; *unrecoverable = 1 for
 * bus.unrecoverable(...). [-0, +1, m] */
const char *mb_lbus_error_text(lua_State *L, int idx, int *unrecoverable);
/* From a count hook, once what has run past its time budget of seconds: sets that hook to
 * run at every instruction (so that pcall cannot catch its way past: each catch raises
 * again) and raises "<where>: WHAT ran past its time budget of S s (time_budget)".
 * [-0, +0, v] */
int mb_lbus_over_budget(lua_State *L, const char *what, double seconds);
/* Raises an unrecoverable error with a formatted message. [-0, +0, v] */
int mb_lbus_unrecoverable(lua_State *L, const char *fmt, ...);

/* --- lcontract.c ----------------------------------------------------------------- */
void mb_lcontract_open(
    lua_State *L); /* [-0, +0] adds command/event/message to the table on top */
/* Pushes the contract table of type, raising an error naming who asked if undeclared.
 * [-0, +1, e] */
void mb_lcontract_push(lua_State *L, const char *type, const char *who);
/* The kind of a contract table at idx. [-0, +0] */
mb_kind mb_lcontract_kind(lua_State *L, int idx);
/* Checks the table at value_idx against the schema of the contract at contract_idx; on a
 * violation pushes a message naming the field and returns 0. [-0, +(0|1)] */
int mb_lcontract_check(lua_State *L, int contract_idx, int value_idx, const char *type);

/* --- lversion.c ------------------------------------------------------------------ */
void mb_lversion_open(lua_State *L); /* [-0, +0] adds upcast to the table on top */
/* The version the contract at contract_idx declares (1 if it names none). [-0, +0] */
lua_Integer mb_lversion_declared(lua_State *L, int contract_idx);
/* The version a moonbus.version header's text names: 1 with *v set (NULL text: 1), or 0 if
 * it is not a whole number >= 1 (digits, no leading zero). */
int mb_lversion_parse(const char *text, lua_Integer *v);
/* What mb_lversion_upcast says. */
enum {
  MB_UPCAST_OK,
  MB_UPCAST_BAD_VERSION,   /* the header is not a version */
  MB_UPCAST_NEWER,         /* newer than the contract: deploy the newer contracts */
  MB_UPCAST_MISSING,       /* a step of the chain is not registered */
  MB_UPCAST_FAILED,        /* a step raised or returned no table: may succeed another time */
  MB_UPCAST_UNRECOVERABLE, /* a step raised bus.unrecoverable(...) */
};
/* Brings the body at body_idx from the version header names (NULL: 1) to the version the
 * contract at contract_idx declares, step by step (bus.upcast), replacing it with what each
 * step returns. MB_UPCAST_OK, or a failure with a message naming the type, the versions and
 * the step pushed. Steps run under lua_pcall: they cannot yield. [-0, +(0|1), e] */
int mb_lversion_upcast(lua_State *L, int contract_idx, int body_idx, const char *type,
                       const char *header);

/* --- lsend.c --------------------------------------------------------------------- */
void mb_lsend_open(lua_State *L); /* send, publish */
/* ctx:reply's body: replies to job's message. [-?, +0, e] */
int mb_lsend_reply(lua_State *L, struct mb_job *job);
/* JSON text of the value at idx through the private cjson (pushed string). [-0, +1, e] */
const char *mb_ljson_encode(lua_State *L, int idx, size_t *len);

/* --- ljsize.c ------------------------------------------------------------------- */
/* 1 if the JSON of the value at idx takes at most limit bytes, counted with lua-cjson's
 * rules before it is encoded, and stopping once past limit. [-0, +0, m] */
int mb_ljson_fits(lua_State *L, int idx, size_t limit);

/* --- lctx.c ---------------------------------------------------------------------- */
void mb_lctx_open(lua_State *L);
/* A new ctx userdata bound to job (and job->ctx to it). [-0, +1, m] */
void mb_lctx_push(lua_State *L, struct mb_job *job);
/* A new ctx userdata for the reply to a bus.request; it owns reply. [-0, +1, m] */
void mb_lctx_push_reply(lua_State *L, mb_delivery *reply);

/* --- ldispatch.c ----------------------------------------------------------------- */
/* The function every handler coroutine starts with; its argument is the job. */
int mb_ldispatch(lua_State *L);

/* --- lerror.c ------------------------------------------------------------------- */
/* Error values: what the world said no with, as a table { kind =, message =, ... } whose
 * tostring is its message. Kinds: timeout, unroutable, not_connected, refused, too_large,
 * not_owner, not_found, busy, invalid, io_error, out_of_memory, bad_reply. */
void mb_lerror_open(lua_State *L); /* the metatable; error_kind, is_timeout */
/* The kind of a host status (status.h), for a failure that status reports. */
const char *mb_lerror_kind_of_status(int status);
/* Pushes an error value of kind with a formatted message (no position). [-0, +1, m] */
void mb_lerror_push(lua_State *L, const char *kind, const char *fmt, ...);
/* Raises an error value of kind whose message is the caller's position (luaL_where(L, 1))
 * and the formatted text: luaL_error's text, as a value. [-0, +0, v] */
int mb_lerror_raise(lua_State *L, const char *kind, const char *fmt, ...);
/* mb_lerror_raise with the kind of status. [-0, +0, v] */
int mb_lerror_raise_status(lua_State *L, int status, const char *fmt, ...);
/* The kind of the value at idx: an error value's, "unrecoverable" for bus.unrecoverable
 * values, NULL for anything else. [-0, +0] */
const char *mb_lerror_kind(lua_State *L, int idx);

/* --- lwait.c -------------------------------------------------------------------- */
/* Sends m now from the parkable coroutine th and parks it until the transport answers;
 * raises what failed, prefixed with fn. Use as `return mb_lwait_send(...)`. [-?, +0, e] */
int mb_lwait_send(lua_State *L, mb_thread *th, mb_outgoing *m, const char *fn);
/* Sends the request m and parks th until its reply (results: body, ctx) or its timeout
 * (raises a timeout error value). Use as `return mb_lwait_request(...)`. [-?, +2, e] */
int mb_lwait_request(lua_State *L, mb_thread *th, mb_outgoing *m, double timeout);

/* --- ltimer.c -------------------------------------------------------------------- */
void mb_ltimer_open(lua_State *L); /* after, every: the Lua face of timers.h */

/* --- lshared.c ------------------------------------------------------------------ */
/* bus.shared, added to the table on top, and the metatable of its handles. [-0, +0, m] */
void mb_lshared_open(lua_State *L);

/* --- llog.c ---------------------------------------------------------------------- */
void mb_llog_open(lua_State *L); /* the log table */

/* --- lalloc.c -------------------------------------------------------------------- */
typedef struct mb_alloc {
  lua_Alloc inner; /* the allocator that does the work */
  void *inner_ud;
  size_t used, limit; /* bytes held now; the cap (0: none) */
  int refused;        /* an allocation was refused since the last mb_alloc_take_refusal */
  int wrapped;        /* installed over a state's own allocator (module mode) */
} mb_alloc;
/* The allocator for lua_newstate(mb_alloc_capped, a) after mb_alloc_init(a). */
void *mb_alloc_capped(void *ud, void *ptr, size_t osize, size_t nsize);
void mb_alloc_init(mb_alloc *a);
/* Caps the memory of L's state at what it holds now plus bytes (installing the counting
 * allocator if needed). */
int mb_alloc_set_limit(lua_State *L, size_t bytes);
/* Gives a state whose allocator was wrapped its own back (the bus closes: moonbus.so may
 * be unloaded before the state's last free). */
void mb_alloc_unwrap(lua_State *L);
/* 1 if an allocation was refused since the last call (and clears it); *limit gets the cap. */
int mb_alloc_take_refusal(lua_State *L, size_t *limit);

/* --- lguard.c -------------------------------------------------------------------- */
/* In a host's state (after luaL_openlibs): os.exit and debug.sethook refuse. [-0, +0, m] */
void mb_lguard_open(lua_State *L);

/* --- ltesting.c ------------------------------------------------------------------ */
/* Refuses (raises) in a host's state (a generation vm.c opened, not adopted). */
int luaopen_moonbus_host(lua_State *L);
/* A package.preload loader for a host's states that refuses the test driver named by its
 * first argument (moonbus.host, moonbus.testing), saying it is for tests. [-0, +0, v] */
int mb_ltesting_refuse(lua_State *L);

#endif
