-- bus.after, bus.every (timers run as coroutines; sends from them dispatch at once) and
-- bus.log.
local testing = require "moonbus.testing"
local support = require "support"

describe("timers", function()
  local bus
  before_each(function()
    bus = testing.fresh()
    bus.command("t.Tick")
    bus.endpoint { name = "t", routes = { ["t.Tick"] = "t" } }
  end)

  it("bus.after runs once and can send", function()
    local fired, got = 0, 0
    bus.after(0.05, function() fired = fired + 1; bus.send("t.Tick", {}) end)
    bus.handle("t.Tick", function() got = got + 1 end)
    testing.run_for(0.5)
    assert.equal(1, fired)
    assert.equal(1, got)
    assert.equal(0, testing.counters().timers)
  end)

  it("bus.log lines are captured for tests whatever MOONBUS_LOG filters out", function()
    local host = testing.host
    host.capture_log("debug")
    bus.log.debug("captured at debug %d", 42)
    bus.log.info("captured at info")
    local got = host.captured_log()
    host.capture_log(false)
    assert.matches("debug [t] captured at debug 42", got, 1, true)
    assert.matches("info  [t] captured at info", got, 1, true)
  end)

  it("run_until polls a predicate on state outside the bus while the bus is idle", function()
    local start = testing.host.clock()
    local function between() -- true from 0.2 s to 1.5 s: only a poll sees it
      local t = testing.host.clock() - start
      return t > 0.2 and t < 1.5
    end
    assert.is_true(testing.run_until(between, 3)) -- not the 3 s deadline
  end)

  it("bus.log with one argument logs it as written; a bad format names bus.log", function()
    local host = testing.host
    host.capture_log("debug")
    bus.log.info("discount 100% sure")
    local ok, err = pcall(function() bus.log.warn("%d items", "many") end)
    local got = host.captured_log()
    host.capture_log(false)
    assert.matches("info  [t] discount 100% sure", got, 1, true)
    assert.is_false(ok)
    assert.matches("timers_log_spec.lua:%d+: bus.log.warn: .*number expected", tostring(err))
  end)

  it("bus.every repeats until cancelled", function()
    local n = 0
    local timer
    timer = bus.every(0.02, function()
      n = n + 1
      if n == 3 then timer:cancel() end
    end)
    testing.run_for(0.3)
    assert.equal(3, n)
    assert.equal(0, testing.counters().timers)
  end)

  it("a failing tick is logged and the timer goes on", function()
    testing.host.capture_log("error")
    local n = 0
    local t = bus.every(0.02, function() n = n + 1; error("tick failed " .. n) end)
    testing.run_for(0.2)
    t:cancel()
    local log = testing.host.captured_log()
    testing.host.capture_log(false)
    assert.is_true(n >= 3)
    assert.equal(0, testing.counters().coroutines)
    -- one error line per failed tick, naming the timer, where it was made, and the error
    local lines = 0
    for line in log:gmatch("[^\n]+") do
      if line:find("bus.every(0.02) at ", 1, true) and line:find("timers_log_spec.lua:", 1, true) then
        lines = lines + 1
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z error %[t%] bus%.every%(0%.02%) at .* failed: .*tick failed " .. lines .. "$", line)
      end
    end
    assert.equal(n, lines)
  end)

  it("refuses bad arguments", function()
    assert.matches("bus.every: seconds must be a number > 0", support.err_of(bus.every, 0, function() end), 1, true)
    assert.matches("bus.after: seconds must be a number >= 0", support.err_of(bus.after, -1, function() end), 1, true)
    assert.matches("bad argument #2 to 'moonbus.after' (function expected, got string)",
      support.err_of(bus.after, 1, "not a function"), 1, true)
  end)
end)

-- bus.log writes to stderr, where a user reads it: a child lua5.4 with MOONBUS_LOG=debug
-- logs at every level, at the top of its script and inside a handler, and the test reads
-- what it wrote.
describe("bus.log", function()
  local function run_child(code)
    local dir = testing.tmpdir()
    local script = dir .. "/child.lua"
    local f = assert(io.open(script, "w"))
    f:write("local testing = require 'moonbus.testing'\n",
      "local bus = testing.fresh('sqlite://", dir, "/bus.db?synchronous=normal')\n", code)
    f:close()
    local ok = os.execute("MOONBUS_LOG=debug lua5.4 " .. script .. " 2>" .. dir .. "/stderr")
    local err = assert(io.open(dir .. "/stderr")):read("a")
    return ok, err
  end

  it("has the four levels and formats like string.format, on stderr", function()
    local ok, err = run_child([[
      bus.endpoint { name = "lg" }
      for _, level in ipairs { "debug", "info", "warn", "error" } do
        bus.log[level]("value %d of %s at %s", 1, "x", level)
      end
    ]])
    assert.is_true(ok, err)
    for _, level in ipairs { "debug", "info", "warn", "error" } do
      local pattern = "\n?%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z " .. level .. "%s* %[lg%] value 1 of x at " .. level .. "\n"
      assert.matches(pattern, err)
    end
    local _, count = err:gsub("value 1 of x", "")
    assert.equal(4, count)
  end)

  it("tags a line written in a handler with the message id and type", function()
    local ok, err = run_child([[
      bus.command("lg.Do", { n = "number" })
      bus.endpoint { name = "lg", routes = { ["lg.Do"] = "lg" } }
      local id
      bus.handle("lg.Do", function(d, ctx) id = ctx.id; bus.log.warn("doing %d", d.n) end)
      bus.send("lg.Do", { n = 7 })
      assert(testing.run_until(function() return id ~= nil end))
      io.stderr:write("child saw id ", id, "\n")
    ]])
    assert.is_true(ok, err)
    local id = err:match("child saw id (%S+)")
    assert.is_not_nil(id, err)
    assert.matches(" warn  [lg] doing 7 id=" .. id .. " type=lg.Do\n", err, 1, true)
  end)

  it("refuses a format that does not fit its arguments", function()
    local bus = testing.fresh()
    assert.matches("bad argument #2 to 'string.format' (number expected, got string)", support.err_of(bus.log.info, "%d", "not a number"), 1, true)
  end)
end)
