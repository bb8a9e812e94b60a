-- moonbus.testing — helpers for specs and tools that drive a real moonbus from plain Lua
-- (stock lua5.4 or busted loading build/moonbus.so): a fresh bus on a fresh database, and
-- running the loop until idle, until a predicate holds, or for a time; an endpoint script
-- loaded into the test's bus (load_endpoint), a request that waits for its reply at the top
-- level of a test (request), and a child `moonbus run` host on the test's bus (spawn).
-- Nothing here is a mock: the messages go through the real C core and transport.
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

local current_url -- the transport URL of the bus testing.fresh opened last

-- Forgets every contract, handler, endpoint and timer and opens a new bus on url (default:
-- testing.url()). Returns the moonbus table and the url. Children spawned on the bus before
-- are stopped first.
function testing.fresh(url)
  testing.stop_children()
  url = url or testing.url()
  host.reset { transport = url }
  current_url = url
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

-- --- load_endpoint ------------------------------------------------------------------------

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function is_dir(path)
  local ok = os.execute("test -d " .. shell_quote(path))
  return ok == true
end

local function readable(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- This file's folder's parent: moonbus's modules (the build tree's or the installed ones).
local modules_dir = (debug.getinfo(1, "S").source:match("^@(.*)/moonbus/testing%.lua$") or ".")

local base_path -- package.path before the first load_endpoint

-- The names in package.loaded whose file is in one of dirs (moonbus's own excepted).
local function provided_by(dirs)
  local search = {}
  for _, d in ipairs(dirs) do search[#search + 1] = d .. "/?.lua;" .. d .. "/?/init.lua" end
  local names = {}
  for name in pairs(package.loaded) do
    if type(name) == "string" and name ~= "moonbus" and not name:match("^moonbus%.")
        and package.searchpath(name, table.concat(search, ";")) then
      names[#names + 1] = name
    end
  end
  return names
end

-- Loads an endpoint script (a folder with endpoint.lua, or a file) into the test's bus, as
-- `moonbus run` would: package.path covers its folder, the folder's parent (a shared
-- contracts.lua) and moonbus's modules, and the modules those two folders provided to an
-- earlier load are forgotten first, so each test gets fresh module state (and contracts
-- are declared again into a fresh bus). Returns what the script returns.
function testing.load_endpoint(path)
  assert(type(path) == "string", "testing.load_endpoint needs a path (a folder or a file)")
  path = path:gsub("(.)/+$", "%1")
  local script, dir = path, path:match("^(.*)/[^/]*$") or "."
  if is_dir(path) then script, dir = path .. "/endpoint.lua", path end
  if not readable(script) then error("testing.load_endpoint: no endpoint script at " .. script ..
    " (give a folder with endpoint.lua, or a file)", 2) end
  local parent = dir .. "/.."
  for _, name in ipairs(provided_by { dir, parent }) do package.loaded[name] = nil end
  base_path = base_path or package.path
  package.path = table.concat({ dir .. "/?.lua", dir .. "/?/init.lua", parent .. "/?.lua",
    parent .. "/?/init.lua", modules_dir .. "/?.lua", modules_dir .. "/?/init.lua", base_path }, ";")
  local chunk = assert(loadfile(script))
  return chunk()
end

-- --- request ------------------------------------------------------------------------------

-- Sends a request of type to the queue `endpoint` and runs the bus until its reply comes
-- (at the top level of a test, not in a handler). Returns the reply's body and its ctx;
-- raises bus.request's error value when no reply came within opts.timeout (default 10 s),
-- of kind "timeout" (bus.is_timeout), or another kind ("request_failed", "unroutable"...).
-- opts are bus.request's (headers, ttl, timeout); `to` is the endpoint. The test's bus
-- needs an endpoint of its own (load_endpoint's, or a bus.endpoint the test declares).
function testing.request(endpoint, mtype, body, opts)
  local bus = require "moonbus"
  local o = { to = endpoint, timeout = 10 }
  for k, v in pairs(opts or {}) do o[k] = v end
  o.to = endpoint
  local outcome
  bus.after(0, function()
    outcome = table.pack(pcall(bus.request, mtype, body, o))
  end)
  local done = testing.run_until(function() return outcome ~= nil end, o.timeout + 5)
  if not done then error("testing.request: the bus did not run the request within " .. (o.timeout + 5) .. " s", 2) end
  if not outcome[1] then error(outcome[2], 0) end
  return outcome[2], outcome[3]
end

-- --- spawn --------------------------------------------------------------------------------

local children = {} -- pid -> child, alive until stopped

-- The moonbus binary a child runs: $MOONBUS, else next to the C module (build/moonbus.so ->
-- build/moonbus; PREFIX/lib/lua/5.4/moonbus.so -> PREFIX/bin/moonbus), else `moonbus`.
local function binary()
  local env = os.getenv("MOONBUS")
  if env and env ~= "" then return env end
  local so = package.searchpath("moonbus", package.cpath)
  local dir = so and so:match("^(.*)/[^/]*$")
  if dir then
    for _, candidate in ipairs { dir .. "/moonbus", dir .. "/../../../bin/moonbus" } do
      if os.execute("test -x " .. shell_quote(candidate) .. " -a -f " .. shell_quote(candidate)) then
        return candidate
      end
    end
  end
  return "moonbus"
end

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

local function read_all(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- Waits until pred() holds or seconds pass: running the test's bus meanwhile when it has an
-- endpoint (a child may be talking to it) and may be run (not while the state closes), else
-- sleeping 50 ms at a time.
local closing = false
local function wait(pred, seconds)
  if not closing and host.endpoint() then return testing.run_until(pred, seconds) end
  local deadline = os.time() + seconds + 1
  while not pred() do
    if os.time() > deadline then return false end
    os.execute("sleep 0.05")
  end
  return true
end

local Child = {}
Child.__index = Child

-- The child's log (stdout and stderr) so far.
function Child:log() return read_all(self.log_file) or "" end

-- Whether the child has exited (its exit code is then in self.exit_code).
function Child:exited()
  local code = read_all(self.exit_file)
  if code and code:match("%d") then self.exit_code = tonumber(code:match("%d+")) end
  return self.exit_code ~= nil
end

-- SIGTERM, then waits (the bus running) for the child to exit; SIGKILL after
-- `seconds` (default 20). Returns its exit code. Stopping twice is harmless.
function Child:stop(seconds)
  children[self.pid] = nil
  if self:exited() then return self.exit_code end
  os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  local ok, stopped = pcall(wait, function() return self:exited() end, seconds or 20)
  if not (ok and stopped) then
    os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    wait(function() return self:exited() end, 5)
  end
  return self.exit_code
end

-- Stops every child still running (testing.fresh, the end of each busted test and the end
-- of the process call it).
function testing.stop_children()
  for _, child in pairs(children) do child:stop() end
end

-- At the end of each busted test (after its `finally`, before `after_each`), its children
-- are stopped, whether it passed or not.
local subscribed = false
local function subscribe_to_busted()
  local busted = package.loaded.busted
  if subscribed or type(busted) ~= "table" then return end
  local ok, subscribe = pcall(function() return busted.subscribe end)
  if not ok or type(subscribe) ~= "function" then return end
  subscribe({ "test", "end" }, function()
    testing.stop_children()
    return nil, true
  end)
  subscribed = true
end

-- And at the end of the process (lua_close collects this sentinel).
-- (without running the bus, whose parts may be collected already)
testing._sentinel = setmetatable({}, { __gc = function()
  closing = true
  testing.stop_children()
end })

-- Starts a child `moonbus run dir` on the test's bus (testing.fresh's URL, or
-- opts.transport) and returns once it is running (its "running" log line), with the bus
-- running meanwhile if it has an endpoint. opts: env (a table of variables), args (a list
-- of extra arguments), instance, timeout (seconds to be ready, default 20). The child is
-- stopped by child:stop(), at the end of the busted test, by the next testing.fresh, or when
-- the test process ends (even killed: a watcher sends it SIGTERM). Raises with its log if
-- it exits or is not ready in time.
function testing.spawn(dir, opts)
  opts = opts or {}
  local url = opts.transport or current_url
  assert(url, "testing.spawn: no bus yet: call testing.fresh() first (or give opts.transport)")
  local work = testing.tmpdir()
  local child = setmetatable({ dir = dir, log_file = work .. "/host.log",
    exit_file = work .. "/exit", pid_file = work .. "/pid" }, Child)
  local env = { "MOONBUS_LOG=" .. ((opts.env or {}).MOONBUS_LOG == "debug" and "debug" or "info") }
  for k, v in pairs(opts.env or {}) do
    if k ~= "MOONBUS_LOG" then env[#env + 1] = k .. "=" .. shell_quote(v) end
  end
  local argv = { shell_quote(binary()), "run", shell_quote(dir), "--transport", shell_quote(url) }
  if opts.instance then argv[#argv + 1] = "--instance " .. shell_quote(opts.instance) end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = shell_quote(a) end
  -- A subshell starts the host, writes its pid, and waits for it (so its exit code is
  -- known and no zombie is left); a watcher stops it if this process dies first.
  local script = string.format([[
(env %s %s </dev/null >%s 2>&1 & child=$!
 echo $child >%s
 (while kill -0 %d && kill -0 $child; do sleep 0.2; done; kill -TERM $child) >/dev/null 2>&1 &
 wait $child; echo $? >%s) >/dev/null 2>&1 </dev/null &]],
    table.concat(env, " "), table.concat(argv, " "), shell_quote(child.log_file),
    shell_quote(child.pid_file), my_pid(), shell_quote(child.exit_file))
  assert(os.execute(script), "testing.spawn: could not start a shell")
  wait(function() return (read_all(child.pid_file) or ""):match("%d+\n") ~= nil end, 10)
  child.pid = tonumber((read_all(child.pid_file) or ""):match("%d+"))
  assert(child.pid, "testing.spawn: the child did not start")
  children[child.pid] = child
  subscribe_to_busted()
  local ready = wait(function()
    return child:log():find(" running ", 1, true) ~= nil or child:exited()
  end, opts.timeout or 20)
  if not ready or child:exited() then
    local code = child:stop()
    error(string.format("testing.spawn: moonbus run %s %s (exit %s); its log:\n%s", dir,
      ready and "exited" or "was not running in time", tostring(code), child:log()), 2)
  end
  return child
end

testing.host = host
testing.counters = host.counters
testing.depth = host.depth
testing.browse = host.browse

return testing
