-- moonbus.testing — helpers for specs and tools that drive a real moonbus from plain Lua
-- (stock lua5.4 or busted loading build/moonbus.so): a fresh bus on a fresh database, and
-- running the loop until idle, until a predicate holds, or for a time. Nothing here is a
-- mock: the messages go through the real C core and transport.
-- A test driver: a host's Lua states (moonbus run) refuse to load it, and its driving
-- functions (host.reset, run, start, stop) refuse to run from a handler or timer.
local host = require "moonbus.host"

local testing = {}

-- A new empty directory.
function testing.tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p '" .. path .. "'"))
  return path
end

-- The next unused virtual host of the pool scripts/test.sh made
-- ($MOONBUS_TEST_VHOSTS = "PREFIX N COUNTER_FILE"), so every bus starts on an empty broker.
local function next_vhost()
  local pool = os.getenv("MOONBUS_TEST_VHOSTS")
  if not pool then return nil end
  local prefix, n, file = pool:match("^(%S+) (%d+) (%S+)$")
  assert(prefix, "MOONBUS_TEST_VHOSTS must be 'PREFIX N COUNTER_FILE'")
  local f = io.open(file)
  local used = f and tonumber(f:read("l")) or 0
  if f then f:close() end
  assert(used < tonumber(n), "the pool of " .. n .. " test vhosts is used up: raise it in scripts/test.sh")
  f = assert(io.open(file, "w"))
  f:write(used + 1, "\n")
  f:close()
  return prefix .. (used + 1)
end

-- Which transport the tests run on: "sqlite" or "rabbitmq".
function testing.transport()
  local url = os.getenv("MOONBUS_TEST_TRANSPORT") or ""
  return url:match("^amqps?://") and "rabbitmq" or "sqlite"
end

-- A fresh transport URL: with $MOONBUS_TEST_TRANSPORT = amqp://host:port, a new virtual
-- host of that broker (from the pool); else a new SQLite file.
function testing.url()
  local url = os.getenv("MOONBUS_TEST_TRANSPORT")
  if testing.transport() == "rabbitmq" then
    local vhost = next_vhost()
    return vhost and (url:gsub("/*$", "") .. "/" .. vhost) or url
  end
  return "sqlite://" .. testing.tmpdir() .. "/bus.db?synchronous=normal"
end

-- Forgets every contract, handler, endpoint and timer and opens a new bus on url (default:
-- testing.url()). Returns the moonbus table and the url.
function testing.fresh(url)
  url = url or testing.url()
  host.reset { transport = url }
  return require "moonbus", url
end

-- Runs the loop until no message is ready or in flight (or `seconds` pass). Returns true
-- if it went idle.
function testing.run_until_idle(seconds)
  return host.run { until_idle = true, seconds = seconds or 5 }
end

-- Runs the loop until predicate() is true (or `seconds` pass). Returns true if it was. The
-- predicate is asked after every event and every 50 ms, so it may watch state outside the
-- bus (a file, a clock) while the bus is idle.
function testing.run_until(predicate, seconds)
  return host.run { ["until"] = predicate, seconds = seconds or 5 }
end

-- Runs the loop for exactly `seconds` (timers, delayed messages).
function testing.run_for(seconds)
  host.run { seconds = seconds }
end

testing.host = host
testing.counters = host.counters
testing.depth = host.depth
testing.browse = host.browse

return testing
