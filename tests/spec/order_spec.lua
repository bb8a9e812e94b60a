-- Out-of-order protection: bus.handle(type, fn, { order_by =, key = }) keeps the highest
-- order_by value handled per key and discards (acknowledges without running the handler)
-- a message whose value is not higher: counted, logged and audited with the reason. On
-- both transports (on RabbitMQ the marks live in a local SQLite file: state = ...).
local testing = require "moonbus.testing"
local support = require "support"

describe("order_by", function()
  local bus
  before_each(function()
    bus = testing.fresh()
    bus.event("o.Status", { job = "string?", version = "number?", at = "string?" })
    bus.command("o.Do")
  end)

  -- One handler at a time, so the queue's order is the order of handling; the local store
  -- (RabbitMQ) in a fresh folder, as each test has a fresh broker.
  local function endpoint(extra)
    local cfg = { name = "o", publishes = { "o.Status" }, concurrency = 1,
      state = "sqlite://" .. testing.tmpdir() .. "/state.db" }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    bus.endpoint(cfg)
  end

  local function audited()
    local discarded, handled = {}, 0
    for _, m in ipairs(testing.browse("audit", 1000)) do
      local why = m.headers["moonbus.discarded"]
      if why then discarded[#discarded + 1] = why else handled = handled + 1 end
    end
    return discarded, handled
  end

  it("runs the handler only for values higher than the highest handled for the key", function()
    endpoint()
    local applied = {}
    bus.handle("o.Status", function(s)
      applied[s.job] = applied[s.job] or {}
      table.insert(applied[s.job], s.version)
    end, { order_by = "version", key = "job" })
    for _, m in ipairs { { "a", 1 }, { "a", 3 }, { "a", 2 }, { "b", 2 }, { "a", 3 }, { "a", 5 },
      { "b", 1 }, { "a", 4 } } do
      bus.publish("o.Status", { job = m[1], version = m[2] })
    end
    assert.is_true(testing.run_until(function()
      local c = testing.counters()
      return c.handled + c.discarded == 8
    end, 10))
    testing.run_until_idle(2)
    assert.same({ a = { 1, 3, 5 }, b = { 2 } }, applied)
    local c = testing.counters()
    assert.equal(4, c.handled)
    assert.equal(4, c.discarded)
    assert.equal(0, c.failed)
    local discarded, handled = audited()
    assert.equal(4, handled)
    assert.equal(4, #discarded)
    table.sort(discarded)
    assert.equal("stale: version 1 <= 2 already handled for job b", discarded[1])
    assert.equal("stale: version 2 <= 3 already handled for job a", discarded[2])
    assert.equal("stale: version 3 <= 3 already handled for job a", discarded[3])
    assert.equal("stale: version 4 <= 5 already handled for job a", discarded[4])
    assert.equal(0, (testing.depth("o")))
  end)

  it("compares strings byte-wise (ISO 8601 timestamps) and numbers numerically", function()
    bus.event("o.Seen", { id = "number", at = "string" })
    bus.event("o.Level", { id = "number", level = "number" })
    endpoint { publishes = { "o.Seen", "o.Level" } }
    local seen, levels = {}, {}
    bus.handle("o.Seen", function(s) seen[#seen + 1] = s.at end, { order_by = "at", key = "id" })
    bus.handle("o.Level", function(s) levels[#levels + 1] = s.level end,
      { order_by = "level", key = "id" })
    bus.publish("o.Seen", { id = 7, at = "2026-01-02T10:00:00.000000Z" })
    bus.publish("o.Seen", { id = 7, at = "2026-01-01T23:59:59.999999Z" })
    bus.publish("o.Seen", { id = 7, at = "2026-01-02T10:00:00.000001Z" })
    bus.publish("o.Level", { id = 7, level = 9 })
    bus.publish("o.Level", { id = 7, level = 10 }) -- numerically higher, "10" < "9" as text
    bus.publish("o.Level", { id = 7, level = 10.0 }) -- equal: stale
    bus.publish("o.Level", { id = 7, level = 10.5 })
    assert.is_true(testing.run_until(function()
      local c = testing.counters()
      return c.handled + c.discarded == 7
    end, 10))
    assert.same({ "2026-01-02T10:00:00.000000Z", "2026-01-02T10:00:00.000001Z" }, seen)
    assert.same({ 9, 10, 10.5 }, levels)
    assert.equal(2, testing.counters().discarded)
  end)

  it("keeps the order per endpoint and type: another type's key does not interfere", function()
    bus.event("o.Other", { job = "string", version = "number" })
    endpoint { publishes = { "o.Status", "o.Other" } }
    local got = {}
    local function record(s, ctx) got[#got + 1] = ctx.type .. math.tointeger(s.version) end
    bus.handle("o.Status", record, { order_by = "version", key = "job" })
    bus.handle("o.Other", record, { order_by = "version", key = "job" })
    bus.publish("o.Status", { job = "a", version = 5 })
    bus.publish("o.Other", { job = "a", version = 1 })
    assert.is_true(testing.run_until(function() return #got == 2 end, 10))
    assert.same({ "o.Status5", "o.Other1" }, got)
  end)

  it("reads dotted paths", function()
    bus.event("o.Nested", { meta = "table" })
    endpoint { publishes = { "o.Nested" } }
    local got = {}
    bus.handle("o.Nested", function(s) got[#got + 1] = s.meta.v end,
      { order_by = "meta.v", key = "meta.id" })
    bus.publish("o.Nested", { meta = { id = "x", v = 2 } })
    bus.publish("o.Nested", { meta = { id = "x", v = 1 } })
    bus.publish("o.Nested", { meta = { id = "y", v = 1 } })
    assert.is_true(testing.run_until(function()
      local c = testing.counters()
      return c.handled + c.discarded == 3
    end, 10))
    assert.same({ 2, 1 }, got)
    assert.equal(1, testing.counters().discarded)
  end)

  it("a failed attempt does not move the mark: an older value is still handled after it", function()
    endpoint { retries = { immediate = 0, delayed = 0 } }
    local applied = {}
    bus.handle("o.Status", function(s)
      if s.version == 9 then error("cannot apply version 9") end
      applied[#applied + 1] = s.version
    end, { order_by = "version", key = "job" })
    bus.publish("o.Status", { job = "a", version = 9 })
    bus.publish("o.Status", { job = "a", version = 4 })
    assert.is_true(testing.run_until(function()
      local c = testing.counters()
      return c.parked == 1 and c.handled == 1
    end, 10))
    assert.same({ 4 }, applied)
    assert.equal(0, testing.counters().discarded)
  end)

  it("parks a message whose order_by or key field is missing or of the wrong type, naming it", function()
    endpoint()
    local ran = 0
    bus.handle("o.Status", function() ran = ran + 1 end, { order_by = "version", key = "job" })
    bus.publish("o.Status", { job = "a" })
    bus.publish("o.Status", { version = 1 })
    bus.publish("o.Status", { job = "a", version = 1, at = "x" })
    assert.is_true(testing.run_until(function()
      local c = testing.counters()
      return c.parked == 2 and c.handled == 1
    end, 10))
    assert.equal(1, ran)
    local why = {}
    for _, m in ipairs(support.parked()) do why[#why + 1] = m.headers["moonbus.exception.message"] end
    table.sort(why)
    assert.matches("the key field 'job' of o.Status must be a string or a number, got nothing (it is missing)",
      why[1], 1, true)
    assert.matches("the order_by field 'version' of o.Status must be a number or a string, got nothing",
      why[2], 1, true)
  end)

  it("parks a boolean order_by value as unrecoverable", function()
    bus.event("o.Flag", { job = "string", version = "boolean" })
    endpoint { publishes = { "o.Flag" } }
    bus.handle("o.Flag", function() end, { order_by = "version", key = "job" })
    bus.publish("o.Flag", { job = "a", version = true })
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end, 10))
    assert.matches("order_by field 'version' of o.Flag must be a number or a string, got boolean",
      support.parked()[1].headers["moonbus.exception.message"], 1, true)
  end)

  it("raises on misuse of the options, naming the culprit", function()
    endpoint()
    local fn = function() end
    assert.matches("unknown option 'order'",
      support.err_of(bus.handle, "o.Status", fn, { order = "version", key = "job" }), 1, true)
    assert.matches("order_by and key go together",
      support.err_of(bus.handle, "o.Status", fn, { order_by = "version" }), 1, true)
    assert.matches("order_by must be the name of a body field, got number",
      support.err_of(bus.handle, "o.Status", fn, { order_by = 1, key = "job" }), 1, true)
    assert.matches("key 'a..b' is not a field name",
      support.err_of(bus.handle, "o.Status", fn, { order_by = "version", key = "a..b" }), 1, true)
    assert.matches("bad argument #3 to 'moonbus.handle' (table expected, got string)",
      support.err_of(bus.handle, "o.Status", fn, "version"), 1, true)
    bus.handle("o.Status", fn, { order_by = "version", key = "job" })
    bus.handle("o.Status", fn, { order_by = "version", key = "job" }) -- agreeing: fine
    assert.matches('an earlier one has order_by = "version", key = "job", this one order_by = "at"',
      support.err_of(bus.handle, "o.Status", fn, { order_by = "at", key = "job" }), 1, true)
    assert.matches('this one no order_by', support.err_of(bus.handle, "o.Status", fn), 1, true)
    assert.matches("state must be a sqlite://PATH URL",
      support.err_of(bus.endpoint, { name = "o", state = "/tmp/x.db" }), 1, true)
  end)
end)
