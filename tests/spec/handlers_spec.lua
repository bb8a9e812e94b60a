-- Handlers: failures lose nothing and emit nothing, poison is parked with the reason,
-- ctx lives as long as its handler, and counters return to zero.
local testing = require "moonbus.testing"
local support = require "support"

describe("handlers", function()
  local bus, url
  before_each(function()
    bus, url = testing.fresh()
    bus.command("h.Do", { n = "number" })
    bus.command("h.Next")
    bus.endpoint { name = "h", routes = { ["h.Do"] = "h", ["h.Next"] = "h" } }
  end)

  it("bus.unrecoverable parks the message at once with the reason", function()
    local calls = 0
    bus.handle("h.Do", function()
      calls = calls + 1
      error(bus.unrecoverable("order has no lines"))
    end)
    bus.send("h.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return (testing.depth("error")) == 1 end))
    assert.equal(1, calls)
    local parked = support.parked()[1]
    assert.matches("order has no lines$", parked.headers["moonbus.exception.message"])
    assert.equal("h", parked.headers["moonbus.failed.queue"])
  end)

  it("bus.is_unrecoverable tells the bus's error values apart", function()
    assert.is_true(bus.is_unrecoverable(bus.unrecoverable("x")))
    assert.is_false(bus.is_unrecoverable("x"))
    assert.is_false(bus.is_unrecoverable({}))
    assert.matches("unrecoverable: .*x$", tostring(bus.unrecoverable("x")))
  end)

  local poison = {
    { "malformed JSON", "h.Do", "{not json", "the body is not valid JSON" },
    { "a body that is not an object", "h.Do", "[1,2]", "schema violation" },
    { "a schema violation on receive", "h.Do", '{"n":"one"}', "field 'n' must be a number" },
    { "an unknown type", "h.Unknown", "{}", "endpoint h does not know type h.Unknown" },
    { "a type with no handler", "h.Next", "{}", "endpoint h has no handler for h.Next" },
  }
  for _, case in ipairs(poison) do
    it("parks " .. case[1] .. " without running a handler", function()
      local ran = false
      bus.handle("h.Do", function() ran = true end)
      local id = "01900000-0000-7000-8000-0000000000aa"
      testing.host.start()
      support.inject(url, "h", id, case[2], '{"moonbus.kind":"command"}', case[3])
      assert.is_true(testing.run_until(function() return (testing.depth("error")) == 1 end))
      assert.is_false(ran)
      local parked = support.parked()[1]
      assert.equal(id, parked.id)
      assert.equal(case[3], parked.body)
      assert.matches(case[4], parked.headers["moonbus.exception.message"], 1, true)
      assert.equal("0", parked.headers["moonbus.retries.immediate"]) -- no retry at all
      assert.equal("0", parked.headers["moonbus.retries.delayed"])
    end)
  end

  it("parks a body over max_body that another sender wrote, without running a handler", function()
    local b2, url2 = testing.fresh()
    b2.command("h.Do", { n = "number" })
    b2.endpoint { name = "h", max_body = 100 }
    local ran = false
    b2.handle("h.Do", function() ran = true end)
    testing.host.start()
    support.inject(url2, "h", "01900000-0000-7000-8000-0000000000ac", "h.Do",
      '{"moonbus.kind":"command"}', '{"n":1,"pad":"' .. string.rep("x", 200) .. '"}')
    assert.is_true(testing.run_until(function() return (testing.depth("error")) == 1 end))
    assert.is_false(ran)
    assert.matches("over the limit of 100 bytes",
      support.parked()[1].headers["moonbus.exception.message"], 1, true)
  end)

  it("parks a message with malformed headers", function()
    testing.host.start()
    support.inject(url, "h", "01900000-0000-7000-8000-0000000000ab", "h.Do", '{"a":{"b":"c"}}', '{"n":1}')
    assert.is_true(testing.run_until(function() return (testing.depth("error")) == 1 end))
    local parked = support.parked()[1]
    assert.equal("01900000-0000-7000-8000-0000000000ab", parked.id)
    assert.matches("malformed envelope", parked.headers["moonbus.exception.message"], 1, true)
  end)

  it("runs every handler of a type, in order", function()
    local order = {}
    bus.handle("h.Do", function() order[#order + 1] = "first" end)
    bus.handle("h.Do", function() order[#order + 1] = "second" end)
    bus.send("h.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return #order == 2 end))
    testing.run_until_idle(1) -- a third run would show below
    assert.same({ "first", "second" }, order)
  end)

  it("ctx used after its handler ended raises a clear error", function()
    local saved
    bus.handle("h.Do", function(_, ctx) saved = ctx end)
    bus.send("h.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return saved ~= nil end))
    assert.is_true(testing.run_until_idle(2))
    assert.matches("ctx is used after its handler ended", support.err_of(function() return saved.id end), 1, true)
  end)

  it("ctx is read-only and names unknown fields", function()
    local tries -- what the handler saw, checked after the run (a failed assert in it would be retried)
    bus.handle("h.Do", function(_, ctx)
      local set_ok, set_err = pcall(function() ctx.id = "x" end)
      local get_ok, get_err = pcall(function() return ctx.nope end)
      tries = { set_ok = set_ok, set_err = tostring(set_err), get_ok = get_ok,
                get_err = tostring(get_err), id_after = ctx.id }
    end)
    bus.send("h.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return tries ~= nil end))
    assert.is_false(tries.set_ok)
    assert.matches("ctx is read-only", tries.set_err, 1, true)
    assert.are_not.equal("x", tries.id_after)
    assert.is_false(tries.get_ok)
    assert.matches("ctx has no field 'nope'", tries.get_err, 1, true)
  end)

  it("a handler that yields outside a bus call fails instead of hanging", function()
    local calls = 0
    bus.handle("h.Do", function(_, ctx)
      calls = calls + 1
      if ctx.attempt == 1 then coroutine.yield() end
    end)
    bus.send("h.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return calls == 2 end, 5))
    assert.is_true(testing.run_until_idle(2))
    assert.equal(2, calls) -- failed once, then handled: not retried again
    assert.equal(1, testing.counters().handled)
  end)

  it("counters return to zero when idle", function()
    bus.handle("h.Do", function() bus.send("h.Next", {}) end)
    bus.handle("h.Next", function() end)
    for i = 1, 50 do bus.send("h.Do", { n = i }) end
    assert.is_true(testing.run_until_idle(10))
    local c = testing.counters()
    assert.equal(0, c.coroutines)
    assert.equal(0, c.in_flight)
    assert.equal(100, c.handled)
  end)

  it("ctx:reply with a command says replies are messages", function()
    local got -- recorded in the handler, checked after the run
    bus.handle("h.Do", function(_, ctx) got = { pcall(ctx.reply, ctx, "h.Next", {}) } end)
    bus.send("h.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return got ~= nil end))
    assert.is_false(got[1])
    assert.matches("ctx:reply: h.Next is a command: a reply is a message", tostring(got[2]), 1, true)
  end)
end)
