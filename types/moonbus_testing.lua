---@meta moonbus.testing
-- LuaLS definitions of moonbus.testing and moonbus.host, the test drivers (see moonbus.lua).

---@class moonbus.Counters
---@field coroutines integer
---@field waiting integer
---@field requests integer
---@field in_flight integer
---@field handled integer
---@field failed integer
---@field parked integer
---@field discarded integer  acknowledged unhandled: stale (order_by) or past their ttl
---@field timers integer

---@class moonbus.Message
---@field id string
---@field type? string
---@field correlation_id? string
---@field reply_to? string
---@field body string
---@field headers table<string, string>
---@field delivery_count integer
---@field problem? string

---@class moonbus.host
local host = {}
---@return number seconds of a monotonic clock
function host.clock() end
---@param level "debug"|"info"|"warn"|"error"|false
function host.capture_log(level) end
---@return string
function host.captured_log() end
function host.start() end
function host.stop() end
---@param opts { seconds?: number, until_idle?: boolean, until?: fun(): boolean }
---@return boolean
function host.run(opts) end
---@param opts? { transport?: string }
function host.reset(opts) end
---@return moonbus.Counters
function host.counters() end
---@param queue string
---@return integer ready, integer later
function host.depth(queue) end
---@param queue string
---@param max? integer
---@return moonbus.Message[]
function host.browse(queue, max) end
---@param event_type string
---@return string|nil
function host.owner(event_type) end
---@return string|nil name of the endpoint the bus declared
function host.endpoint() end

--- A child `moonbus run` host started by testing.spawn.
---@class moonbus.Child
---@field pid integer
---@field dir string
---@field log_file string
---@field exit_code? integer set once it exited
local Child = {}
--- SIGTERM, then waits for it to exit (SIGKILL after `seconds`, default 20).
---@param seconds? number
---@return integer|nil exit_code
function Child:stop(seconds) end
---@return boolean
function Child:exited() end
---@return string its stdout and stderr so far
function Child:log() end

---@class moonbus.testing
---@field host moonbus.host
local testing = {}
---@return string
function testing.tmpdir() end
---@return "sqlite"|"rabbitmq"
function testing.transport() end
---@return string
function testing.url() end
--- A fresh bus on a fresh database (or url): returns the moonbus table and the URL.
---@param url? string
---@return moonbus bus, string url
function testing.fresh(url) end
---@param seconds? number
---@return boolean
function testing.run_until_idle(seconds) end
---@param predicate fun(): boolean
---@param seconds? number
---@return boolean
function testing.run_until(predicate, seconds) end
---@param seconds number
function testing.run_for(seconds) end
---@return moonbus.Counters
function testing.counters() end
---@param queue string
---@return integer ready, integer later
function testing.depth(queue) end
---@param queue string
---@param max? integer
---@return moonbus.Message[]
function testing.browse(queue, max) end
--- Loads an endpoint script (a folder with endpoint.lua, or a file) into the test's bus, as
--- `moonbus run` would (package.path: its folder, the parent, moonbus's modules), after
--- forgetting the modules those folders provided to an earlier load.
---@param path string
---@return any ... what the script returns
function testing.load_endpoint(path) end
--- Sends a request to `endpoint` and runs the bus until its reply: returns its body and ctx;
--- raises bus.request's error value (kind "timeout" after opts.timeout, default 10 s).
---@param endpoint string
---@param type string
---@param body table
---@param opts? moonbus.RequestOpts
---@return table body, moonbus.Context ctx
function testing.request(endpoint, type, body, opts) end
--- A child `moonbus run dir` on the test's bus, running when this returns; stopped at the
--- end of the busted test, by child:stop(), the next testing.fresh or the end of the process.
---@param dir string
---@param opts? { env?: table<string, string>, args?: string[], instance?: string, timeout?: number, transport?: string }
---@return moonbus.Child
function testing.spawn(dir, opts) end
--- Stops every child testing.spawn started that is still running.
function testing.stop_children() end

return testing
