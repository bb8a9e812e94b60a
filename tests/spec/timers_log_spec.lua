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
    local n = 0
    local t = bus.every(0.02, function() n = n + 1; error("tick failed") end)
    testing.run_for(0.2)
    t:cancel()
    assert.is_true(n >= 3)
    assert.equal(0, testing.counters().coroutines)
  end)

  it("refuses bad arguments", function()
    assert.matches("bus.every: seconds must be a number > 0", support.err_of(bus.every, 0, function() end), 1, true)
    assert.has_error(function() bus.after(1, "not a function") end)
  end)
end)

describe("bus.log", function()
  it("has the four levels and formats like string.format", function()
    local bus = testing.fresh()
    for _, level in ipairs { "debug", "info", "warn", "error" } do
      assert.has_no.errors(function() bus.log[level]("value %d of %s", 1, "x") end)
    end
    assert.has_error(function() bus.log.info("%d", "not a number") end)
  end)
end)
