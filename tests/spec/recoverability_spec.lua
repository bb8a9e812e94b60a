-- Recoverability: immediate retries run the handler again in place, delayed retries send
-- the message back through the transport's delay, and the last failure parks the message
-- in the error queue with the failure and the retry counts, byte for byte; a handled
-- message leaves an audit copy. Nothing is lost: every id sent ends up handled or parked.
local testing = require "moonbus.testing"
local support = require "support"

describe("recoverability", function()
  local bus, url
  before_each(function()
    bus, url = testing.fresh()
    bus.command("x.Do", { n = "number" })
    bus.command("x.Next")
  end)

  it("runs a handler that fails twice three times and emits only the last attempt's messages", function()
    bus.endpoint { name = "x", routes = { ["x.Do"] = "x", ["x.Next"] = "x" } }
    local attempts, rounds, nexts = {}, {}, 0
    bus.handle("x.Do", function(_, ctx)
      attempts[#attempts + 1] = ctx.attempt
      rounds[#rounds + 1] = ctx.delayed_attempt
      bus.send("x.Next", {})
      if ctx.attempt < 3 then error("database is down") end
    end)
    bus.handle("x.Next", function() nexts = nexts + 1 end)
    bus.send("x.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return nexts == 1 end))
    testing.run_until_idle(2)
    assert.same({ 1, 2, 3 }, attempts)
    assert.same({ 0, 0, 0 }, rounds) -- all in place, no delayed round
    assert.equal(1, nexts)
    local c = testing.counters()
    assert.equal(2, c.handled) -- x.Do once, x.Next once
    assert.equal(2, c.failed)
    assert.equal(0, c.parked)
  end)

  it("parks an always-failing message after (immediate + 1) x (delayed + 1) attempts", function()
    bus.endpoint { name = "x", routes = { ["x.Do"] = "x" },
      retries = { immediate = 2, delayed = 2, delay = 0.05 } }
    local seen = {}
    bus.handle("x.Do", function(_, ctx)
      seen[#seen + 1] = ctx.delayed_attempt .. "." .. ctx.attempt
      error("the payment service answers 503")
    end)
    bus.send("x.Do", { n = 7 }, { headers = { tenant = "acme" } })
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end, 15))
    assert.same({ "0.1", "0.2", "0.3", "1.1", "1.2", "1.3", "2.1", "2.2", "2.3" }, seen)
    local parked = support.parked()
    assert.equal(1, #parked)
    local m = parked[1]
    assert.equal('{"n":7}', m.body)
    assert.equal("x.Do", m.type)
    assert.equal("acme", m.headers.tenant)
    assert.equal("x", m.headers["moonbus.failed.queue"])
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", m.headers["moonbus.failed.at"])
    assert.matches("the payment service answers 503", m.headers["moonbus.exception.message"], 1, true)
    assert.matches("recoverability_spec.lua", m.headers["moonbus.exception.trace"], 1, true)
    assert.equal("2", m.headers["moonbus.retries.immediate"])
    assert.equal("2", m.headers["moonbus.retries.delayed"])
    assert.equal(9, testing.counters().failed)
    assert.equal(0, (testing.depth("x")))
  end)

  it("gives a message 24 attempts by default", function()
    bus.endpoint { name = "x", routes = { ["x.Do"] = "x" }, retries = { delay = 0.01 } }
    local calls = 0
    bus.handle("x.Do", function() calls = calls + 1; error("always") end)
    bus.send("x.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end, 20))
    assert.equal(24, calls)
  end)

  it("parks an unrecoverable error at once, without retries", function()
    bus.endpoint { name = "x", routes = { ["x.Do"] = "x" }, retries = { delay = 0.01 } }
    local calls = 0
    bus.handle("x.Do", function() calls = calls + 1; error(bus.unrecoverable("no such customer")) end)
    bus.send("x.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    testing.run_until_idle(1)
    assert.equal(1, calls)
    assert.equal("0", support.parked()[1].headers["moonbus.retries.immediate"])
  end)

  it("loses nothing: every id is handled (and audited) or parked", function()
    bus.endpoint { name = "x", routes = { ["x.Do"] = "x" }, concurrency = 16,
      retries = { immediate = 1, delayed = 1, delay = 0.05 } }
    local handled = {}
    bus.handle("x.Do", function(d, ctx)
      if d.n % 3 == 0 then error("multiple of three") end          -- parked
      if d.n % 3 == 1 and ctx.attempt == 1 then error("flaky") end -- second attempt works
      handled[ctx.id] = true
    end)
    local sent = {}
    bus.after(0, function()
      for i = 1, 30 do bus.send("x.Do", { n = i }) end
    end)
    assert.is_true(testing.run_until(function() return testing.counters().parked == 10 end, 15))
    assert.is_true(testing.run_until_idle(3))
    local n_handled = 0
    for _ in pairs(handled) do n_handled = n_handled + 1 end
    local parked = support.parked()
    local ids = {}
    for id in pairs(handled) do ids[id] = true end
    for _, m in ipairs(parked) do
      assert.is_nil(ids[m.id], "an id both handled and parked")
      ids[m.id] = true
      sent[#sent + 1] = m.id
    end
    assert.equal(20, n_handled)
    assert.equal(10, #parked)
    local audited = testing.browse("audit", 1000)
    assert.equal(20, #audited) -- one audit copy per handled message, none of a failure
    for _, m in ipairs(audited) do assert.is_true(handled[m.id], "audit copy of " .. m.id) end
    local distinct = 0
    for _ in pairs(ids) do distinct = distinct + 1 end
    assert.equal(30, distinct)
  end)

  it("leaves an audit copy of a handled message, with the processing headers", function()
    bus.endpoint { name = "x", routes = { ["x.Do"] = "x" } }
    bus.handle("x.Do", function(_, ctx) if ctx.attempt == 1 then error("flaky") end end)
    bus.send("x.Do", { n = 3 }, { headers = { tenant = "acme" }, ttl = 0.5 })
    assert.is_true(testing.run_until(function() return testing.counters().handled == 1 end))
    testing.run_for(0.8) -- the message's time to live does not apply to its audit copy
    local audit = testing.browse("audit")
    assert.equal(1, #audit)
    local m = audit[1]
    assert.equal('{"n":3}', m.body)
    assert.equal("x.Do", m.type)
    assert.equal("acme", m.headers.tenant)
    assert.equal("x", m.headers["moonbus.processing.endpoint"])
    assert.is_not_nil(m.headers["moonbus.processing.host"])
    local started, ended = m.headers["moonbus.processing.started"], m.headers["moonbus.processing.ended"]
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z$", started)
    assert.is_true(ended >= started)
    assert.equal(m.id, m.headers["moonbus.conversation_id"]) -- the flow can be rebuilt
  end)

  it("makes no audit copy with audit = false, and none of a failed attempt", function()
    bus.endpoint { name = "x", routes = { ["x.Do"] = "x" }, audit = false,
      retries = { immediate = 0, delayed = 0 } }
    bus.handle("x.Do", function(d) if d.n == 2 then error("no") end end)
    bus.send("x.Do", { n = 1 })
    bus.send("x.Do", { n = 2 })
    assert.is_true(testing.run_until(function()
      local c = testing.counters()
      return c.handled == 1 and c.parked == 1
    end))
    assert.equal(0, #testing.browse("audit"))
  end)

  it("brings a parked message back with `moonbus errors retry`, and it succeeds once fixed", function()
    bus.endpoint { name = "x", routes = { ["x.Do"] = "x" }, retries = { immediate = 0, delayed = 0 } }
    local broken, handled = true, nil
    bus.handle("x.Do", function(d, ctx)
      if broken then error("the disk is full") end
      handled = { n = d.n, attempt = ctx.attempt, round = ctx.delayed_attempt, id = ctx.id }
    end)
    bus.send("x.Do", { n = 42 })
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    local id = support.parked()[1].id
    broken = false -- the operator fixed the cause
    local cli = os.getenv("MOONBUS_ROOT") .. "/build/moonbus"
    local ok = os.execute(string.format("%s errors retry %s --transport '%s' >/dev/null", cli, id, url))
    assert.is_true(ok)
    assert.is_true(testing.run_until(function() return handled ~= nil end))
    assert.same({ n = 42, attempt = 1, round = 0, id = id }, handled)
    assert.equal(0, #support.parked())
  end)

  it("fails a handler that loops (even inside pcall) or eats memory, and lives on", function()
    bus.command("x.Bad", { kind = "string" })
    bus.endpoint { name = "x", routes = { ["x.Bad"] = "x" }, time_budget = 0.2,
      memory_budget = 8 * 1024 * 1024, retries = { immediate = 0, delayed = 0 } }
    local fine = false
    bus.handle("x.Bad", function(d)
      if d.kind == "loop" then while true do end end
      if d.kind == "pcall" then
        while true do pcall(function() while true do end end) end
      end
      if d.kind == "string" then local _ = string.rep("x", 64 * 1024 * 1024) end
      if d.kind == "table" then local t = {}; for i = 1, 1e9 do t[i] = i end end
      fine = true
    end)
    for _, kind in ipairs { "loop", "pcall", "string", "table", "fine" } do
      bus.send("x.Bad", { kind = kind })
    end
    assert.is_true(testing.run_until(function()
      return fine and testing.counters().parked == 4
    end, 15))
    local why = {}
    for _, m in ipairs(support.parked()) do
      why[require("cjson").decode(m.body).kind] = m.headers["moonbus.exception.message"]
    end
    assert.matches("ran past its time budget of 0.2 s", why.loop, 1, true)
    assert.matches("ran past its time budget of 0.2 s", why.pcall, 1, true)
    assert.matches("went past the memory budget of 8.0 MiB", why.string, 1, true)
    assert.matches("went past the memory budget of 8.0 MiB", why.table, 1, true)
    assert.is_true(testing.run_until(function() return testing.counters().in_flight == 0 end))
  end)

  it("does not count the time the transport takes to accept a timer's sends against the budget", function()
    -- SQLite commits each send to disk before it returns (no park): 3 000 of them take
    -- longer than the budget of 0.2 s, the Lua that runs in between does not
    bus.command("x.Note", { n = "number" })
    bus.endpoint { name = "x", time_budget = 0.2, audit = false, routes = { ["x.Note"] = "x" } }
    bus.handle("x.Note", function() end)
    local sent, started, took = 0, nil, nil
    bus.after(0, function()
      started = testing.host.clock()
      for i = 1, 3000 do
        bus.send("x.Note", { n = i })
        sent = i
      end
      took = testing.host.clock() - started
    end)
    assert.is_true(testing.run_until(function() return took ~= nil end, 15))
    assert.equal(3000, sent)
    assert.is_true(testing.run_until(function() return testing.counters().in_flight == 0 and testing.depth("x") == 0 end, 60))
  end)

  it("does not count time spent waiting for a reply against the time budget", function()
    bus.command("x.Never")
    bus.endpoint { name = "x", concurrency = 4, time_budget = 0.3,
      retries = { immediate = 0, delayed = 0 }, routes = { ["x.Do"] = "x", ["x.Never"] = "x" } }
    bus.handle("x.Never", function() end)
    local done
    bus.handle("x.Do", function()
      pcall(bus.request, "x.Never", {}, { timeout = 0.5 }) -- parked longer than the budget
      local sum = 0
      for i = 1, 5000 do sum = sum + i end -- then enough work for the budget hook to look
      done = sum
    end)
    bus.send("x.Do", { n = 1 })
    assert.is_true(testing.run_until(function() return done ~= nil end, 5))
    assert.is_true(testing.run_until(function() return testing.counters().in_flight == 0 end))
    assert.equal(0, testing.counters().parked)
  end)
end)
