-- moonbus.testing's helpers for a developer's own specs, on the transport under test:
-- load_endpoint gives each test fresh module state (its folder's modules and the shared
-- contracts of its parent are loaded again), testing.request waits for the reply at the top
-- level of a test and raises an error value of kind "timeout" when none comes, and
-- testing.spawn starts a real `moonbus run` child on the test's bus that is running when it
-- returns and gone (its pid no longer exists) after the test ends.
local testing = require "moonbus.testing"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- app/contracts.lua (shared) and app/counter/{endpoint,state}.lua: counter.Count adds one
-- to a module-level count and replies with it; counter.Ignore never replies.
local function counter_app()
  local app = testing.tmpdir()
  os.execute("mkdir -p '" .. app .. "/counter'")
  write(app .. "/contracts.lua", [[
local bus = require "moonbus"
bus.command("counter.Count")
bus.command("counter.Ignore")
bus.message("counter.Counted", { count = "number" })
]])
  write(app .. "/counter/state.lua", "return { count = 0 }\n")
  write(app .. "/counter/endpoint.lua", [[
local bus = require "moonbus"
require "contracts"
local state = require "state"
bus.endpoint { name = "counter", routes = { ["counter.Count"] = "counter" } }
bus.handle("counter.Count", function(_, ctx)
  state.count = state.count + 1
  ctx:reply("counter.Counted", { count = state.count })
end)
bus.handle("counter.Ignore", function() end)
return state
]])
  return app
end

describe("testing.load_endpoint", function()
  local app = counter_app()

  it("loads a folder's endpoint.lua with its folder and parent on package.path", function()
    testing.fresh()
    local state = testing.load_endpoint(app .. "/counter")
    assert.equal(0, state.count)
    assert.truthy(package.path:find(app .. "/counter/?.lua", 1, true))
    assert.truthy(package.path:find(app .. "/counter/../?.lua", 1, true))
    assert.equal(1, testing.request("counter", "counter.Count", {}).count)
    assert.equal(2, testing.request("counter", "counter.Count", {}).count)
  end)

  it("gives the next test fresh module state and declares the contracts again", function()
    testing.fresh()
    local state = testing.load_endpoint(app .. "/counter/endpoint.lua")
    assert.equal(0, state.count)
    assert.equal(1, testing.request("counter", "counter.Count", {}).count)
    assert.equal(1, state.count)
  end)

  it("says which file is missing", function()
    testing.fresh()
    local ok, err = pcall(testing.load_endpoint, app .. "/nowhere")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("no endpoint script at " .. app .. "/nowhere", 1, true))
  end)
end)

describe("testing.request", function()
  local app = counter_app()

  it("returns the reply's body and ctx", function()
    testing.fresh()
    testing.load_endpoint(app .. "/counter")
    local body, ctx = testing.request("counter", "counter.Count", {})
    assert.same({ count = 1 }, body)
    assert.equal("counter.Counted", ctx.type)
  end)

  it("raises an error value of kind timeout when no reply comes", function()
    local bus = testing.fresh()
    testing.load_endpoint(app .. "/counter")
    local started = testing.host.clock()
    local ok, err = pcall(testing.request, "counter", "counter.Ignore", {}, { timeout = 0.5 })
    assert.is_false(ok)
    assert.equal("timeout", bus.error_kind(err))
    assert.is_true(bus.is_timeout(err))
    assert.is_true(testing.host.clock() - started < 3)
  end)
end)

describe("testing.spawn", function()
  local dir = testing.tmpdir()
  write(dir .. "/endpoint.lua", [[
local bus = require "moonbus"
bus.command("child.Ping")
bus.message("child.Pong", { pid = "number", greeting = "string" })
bus.endpoint { name = "child" }
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("n")
f:close()
bus.handle("child.Ping", function(_, ctx)
  ctx:reply("child.Pong", { pid = pid, greeting = os.getenv("GREETING") or "none" })
end)
]])
  local bus
  local first_pid

  before_each(function()
    bus = testing.fresh()
    bus.command("child.Ping")
    bus.message("child.Pong", { pid = "number", greeting = "string" })
    bus.endpoint { name = "probe" }
  end)

  it("starts a child host on the test's bus that is running when it returns", function()
    local child = testing.spawn(dir, { env = { GREETING = "hi" }, instance = "spec-child" })
    assert.truthy(child:log():find(" running ", 1, true))
    assert.truthy(child:log():find("instance spec-child", 1, true))
    assert.is_true(alive(child.pid))
    local pong = testing.request("child", "child.Ping", {})
    assert.equal(child.pid, pong.pid)
    assert.equal("hi", pong.greeting)
    first_pid = child.pid
  end)

  it("stopped the child of the test before at its end", function()
    assert.is_number(first_pid)
    assert.is_false(alive(first_pid))
  end)

  it("stops a child on :stop() and returns its exit code", function()
    local child = testing.spawn(dir)
    assert.equal(0, child:stop())
    assert.is_false(alive(child.pid))
    assert.equal(0, child:stop()) -- twice is harmless
  end)

  it("raises with the child's log when it cannot start", function()
    local broken = testing.tmpdir()
    write(broken .. "/endpoint.lua", "error('broken on purpose')\n")
    local ok, err = pcall(testing.spawn, broken)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("broken on purpose", 1, true))
  end)
end)
