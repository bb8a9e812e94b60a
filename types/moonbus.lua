---@meta moonbus
-- LuaLS definitions of the moonbus Lua API (README "The Lua API"): point your editor at this
-- folder ("workspace.library": ["<moonbus>/types"] in .luarc.json) for completion, hover
-- documentation and type checks. Not loaded at run time. tests/spec/definitions_spec.lua
-- fails when the C module exports a function these definitions lack.

---@alias moonbus.Schema table<string, "string"|"number"|"boolean"|"table"|"string?"|"number?"|"boolean?"|"table?">

---@class moonbus.ContractOpts
---@field version? integer the version of the type's contract (>= 1; default 1): stamped as
--- moonbus.version on what is sent; older versions received are upcast (bus.upcast)

---@class moonbus.Opts
---@field to? string       the destination queue instead of the route
---@field delay? number    seconds before it may be delivered
---@field ttl? number      seconds: discarded if not received in time
---@field headers? table<string, string> your own headers (not moonbus.*, not x-*)

---@class moonbus.RequestOpts: moonbus.Opts
---@field timeout? number  seconds to wait for the reply (default 30)

---@class moonbus.Retries
---@field immediate? integer retries in place after the first attempt of a round (default 5)
---@field delayed? integer   rounds after the first (default 3)
---@field delay? number      seconds; round n waits delay * n (default 10)

---@class moonbus.EndpointConfig
---@field name string                        the endpoint's input queue
---@field routes? table<string, string>      command or message type -> destination queue
---@field publishes? string[]                events this endpoint owns
---@field concurrency? integer               handlers in flight (default 32)
---@field retries? moonbus.Retries
---@field errors? string                     the error queue (default "error")
---@field audit? string|false                the audit queue (default "audit"); false: none
---@field transport? string                  sqlite://PATH or amqp://user:pass@host/vhost
---@field state? string                      sqlite://PATH: where order_by marks live on a transport
---                                          without a database (default sqlite://./.moonbus/state.db)
---@field max_body? integer                  bytes a body may have (default 4 MiB; 64 MiB with a claim store)
---@field claim_check? integer|false         bodies over it go to the claim store (default 256 KiB); false: off
---@field databus? string                    claim store "file:///dir" (default: the SQLite bus itself; none on RabbitMQ)
---@field claim_retention? number            days a claim is kept after its message became deliverable (default 7)
---@field max_deliveries? integer            deliveries without an outcome before parking (10)
---@field time_budget? number                seconds an attempt may run (default 30)
---@field memory_budget? integer             bytes the Lua state may hold (default 256 MiB)
---@field shared_memory? integer             bytes bus.shared's dictionaries may hold together (default 8 MiB)
---@field report? number|false               seconds between two moonbus.ops.Report to ops (default 10; false: none)
---@field sla? number                        seconds of critical time (sent to handled) the endpoint promises
---@field queue_type? "quorum"|"classic"     RabbitMQ queue type (default quorum)

---@class moonbus.Context
---@field id string               the message id (UUIDv7)
---@field type string             its type
---@field kind "command"|"event"|"message"
---@field correlation_id? string
---@field conversation_id? string shared by every message one first message caused
---@field related_to? string      the message being handled when this one was sent
---@field reply_to? string        where ctx:reply goes
---@field headers table<string, string>
---@field attempt integer         1-based attempt of this round of immediate retries
---@field delayed_attempt integer the delayed round (0 for the first)
---@field time_sent? string       ISO 8601 UTC
---@field endpoint string         the endpoint handling it
---@field queue string            the queue it came from
---@field version integer         the version it arrived with, before any upcast (1 without a moonbus.version header)
local Context = {}

--- Replies to this message's sender (a message type, declared with bus.message).
---@param type string
---@param body? table
---@param opts? moonbus.Opts
function Context:reply(type, body, opts) end

---@class moonbus.Timer
local Timer = {}
--- Stops the timer (from inside its own tick too).
function Timer:cancel() end

---@class moonbus.Error
---@field kind "timeout"|"request_failed"|"unroutable"|"not_connected"|"refused"|"too_large"|"not_owner"|"bad_reply"|"invalid"|"not_found"|"busy"|"io_error"|"out_of_memory"
---@field message string
---@field request_id? string  timeout: the request's id
---@field timeout? number     timeout: the seconds waited

---@class moonbus.Shared
--- A dictionary of bus.shared: kept by the process across hot reloads (a restart empties it).
local Shared = {}
--- The value of key (a copy, for a table), or nil.
---@param key string
---@return string|number|boolean|table|nil
function Shared:get(key) end
--- Stores value under key (a table as JSON; nil deletes). Past shared_memory: nil and a
--- too_large error value, and nothing changed.
---@param key string
---@param value string|number|boolean|table|nil
---@return true|nil ok
---@return moonbus.Error|nil err
function Shared:set(key, value) end
--- Adds n to key's number and returns the sum; a missing key starts at init, or gives nil
--- and a not_found error value. Raises if the value held is not a number.
---@param key string
---@param n number
---@param init? number
---@return number|nil value
---@return moonbus.Error|nil err
function Shared:incr(key, n, init) end
--- Removes key.
---@param key string
function Shared:delete(key) end
--- The keys, in no particular order: at most max (default 1024; 0: all).
---@param max? integer
---@return string[]
function Shared:keys(max) end
--- How many keys the dictionary holds.
---@return integer
function Shared:count() end
--- Removes every key of the dictionary.
function Shared:flush_all() end

---@class moonbus.Log
local Log = {}
--- One argument is logged as it is; several go through string.format. A table as the last
--- argument becomes fields (` key=value`, keys sorted; `"key": value` in JSON lines) when
--- it follows a message alone or more arguments than the format converts, and has no
--- __tostring: `bus.log.info("paid", { order = id })`, `bus.log.info("%d items", n, { order = id })`.
--- Keys are 1-64 letters, digits, `_`, `.`, `-` (not time, level, endpoint, msg, id, type,
--- conv, conversation_id); values are strings, numbers, booleans or tables (compact JSON).
--- Inside a handler the line carries the message id, type and conversation id.
---@param fmt any
---@param ... any  format arguments, then an optional table of fields
function Log.debug(fmt, ...) end
---@param fmt any
---@param ... any  format arguments, then an optional table of fields
function Log.info(fmt, ...) end
---@param fmt any
---@param ... any  format arguments, then an optional table of fields
function Log.warn(fmt, ...) end
---@param fmt any
---@param ... any  format arguments, then an optional table of fields
function Log.error(fmt, ...) end

---@class moonbus
---@field version string
---@field log moonbus.Log
local bus = {}

--- Declares a command: sent to one endpoint with bus.send.
---@param type string
---@param schema? moonbus.Schema
---@param opts? moonbus.ContractOpts
function bus.command(type, schema, opts) end
--- Declares an event: published by its one owning endpoint with bus.publish.
---@param type string
---@param schema? moonbus.Schema
---@param opts? moonbus.ContractOpts
function bus.event(type, schema, opts) end
--- Declares a message: replies and plain messages.
---@param type string
---@param schema? moonbus.Schema
---@param opts? moonbus.ContractOpts
function bus.message(type, schema, opts) end
--- Registers the step from version from_version of a type to from_version + 1: fn gets the
--- body (a table) and returns the body of the next version. Received messages older than the
--- declared version run the steps in order before the schema check. fn cannot wait (no
--- bus.request); an error in it fails the attempt like a handler's.
---@param type string
---@param from_version integer
---@param fn fun(body: table): table
function bus.upcast(type, from_version, fn) end
--- Declares this process's endpoint (once per script).
---@param config moonbus.EndpointConfig
function bus.endpoint(config) end
---@class moonbus.HandleOpts
---@field order_by string  body field (or dotted path) whose value orders the messages of a key:
---                        numbers compare numerically, strings byte-wise (ISO 8601 timestamps)
---@field key string       body field (or dotted path) naming the key (a string or a number)

--- Handles a declared type; events are subscribed to automatically. With opts, a message
--- whose order_by value is not higher than one already handled for its key is discarded
--- without running the handler (logged, counted, audited with moonbus.discarded).
---@param type string
---@param fn fun(body: table, ctx: moonbus.Context)
---@param opts? moonbus.HandleOpts
function bus.handle(type, fn, opts) end
--- Sends a command (inside a handler: after the handler succeeds).
---@param type string
---@param body? table
---@param opts? moonbus.Opts
function bus.send(type, body, opts) end
--- Publishes an event this endpoint owns.
---@param type string
---@param body? table
---@param opts? moonbus.Opts
function bus.publish(type, body, opts) end
--- Sends a request and waits (in a handler or timer) for its reply.
---@param type string
---@param body? table
---@param opts? moonbus.RequestOpts
---@return table body
---@return moonbus.Context ctx
function bus.request(type, body, opts) end
--- Runs fn once after seconds, as a coroutine.
---@param seconds number
---@param fn fun()
---@return moonbus.Timer
function bus.after(seconds, fn) end
--- Runs fn every seconds, as a coroutine.
---@param seconds number
---@param fn fun()
---@return moonbus.Timer
function bus.every(seconds, fn) end
--- An error value that skips retries: error(bus.unrecoverable("why")).
---@param message string
---@return table
function bus.unrecoverable(message) end
--- True for a value made by bus.unrecoverable.
---@param err any
---@return boolean
function bus.is_unrecoverable(err) end
--- True for the error bus.request raises when no reply came in time.
---@param err any
---@return boolean
function bus.is_timeout(err) end
--- The dictionary named name, made on first use: state that survives hot reloads (not a
--- restart). Its values: strings, numbers (integers stay integers), booleans, tables (as JSON).
---@param name string 1-255 bytes
---@return moonbus.Shared
function bus.shared(name) end
--- The kind of an error the world raised (see moonbus.Error), or nil.
---@param err any
---@return string|nil
function bus.error_kind(err) end

return bus
