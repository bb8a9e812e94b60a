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

return testing
