-- Message versions (DESIGN §14, README "Message versions"): a type declared with
-- { version = N } stamps moonbus.version = N on every message of it that is sent; a
-- receiver that declares a newer version runs the bus.upcast steps, one version at a time,
-- before the schema check, and its handlers see the upcast body; a version newer than the
-- receiver's, a missing step or a header that is no version is parked with the reason; a
-- step that fails fails the attempt like any handler error (retries apply, a new script can
-- fix it).
-- A sender and a receiver of different versions are two buses on the same transport, one
-- after the other: the sender's messages wait in the queue for the receiver.
local testing = require "moonbus.testing"
local support = require "support"
local err_of = support.err_of

-- The schemas of x.Order, version by version: v2 adds a currency, v3 counts cents, v4
-- adds a channel.
local schemas = {
  { id = "string", amount = "number" },
  { id = "string", amount = "number", currency = "string" },
  { id = "string", cents = "number", currency = "string" },
  { id = "string", cents = "number", currency = "string", channel = "string" },
}

-- Steps from v1 and v2; each records its call in trail.
local function steps(bus, trail)
  bus.upcast("x.Order", 1, function(o)
    trail[#trail + 1] = "1>2 " .. o.id
    o.currency = "EUR"
    return o
  end)
  bus.upcast("x.Order", 2, function(o)
    trail[#trail + 1] = "2>3 " .. o.id
    return { id = o.id, cents = math.floor(o.amount * 100 + 0.5), currency = o.currency }
  end)
end

describe("message versions", function()
  local bus, url

  -- A fresh bus on url (a new one the first time) whose x.Order is version v (nil: declared
  -- without a version) and whose endpoint x sends x.Order to itself.
  local function as_version(v, cfg)
    bus, url = testing.fresh(url)
    bus.command("x.Order", schemas[v or 1], v and { version = v } or nil)
    cfg = cfg or {}
    cfg.name, cfg.routes = "x", { ["x.Order"] = "x" }
    bus.endpoint(cfg)
    return bus
  end

  -- Sends each body as version v (nil: undeclared) and leaves them in the queue.
  local function send_as(v, ...)
    as_version(v)
    for _, body in ipairs({ ... }) do bus.send("x.Order", body) end
  end

  -- Handles x.Order at version v, recording { body, version } per message in seen.
  local function receive_as(v, seen, cfg)
    as_version(v, cfg)
    bus.handle("x.Order", function(o, ctx) seen[#seen + 1] = { body = o, version = ctx.version } end)
  end

  local function parked_reason()
    local parked = support.parked()
    assert.equal(1, #parked)
    return parked[1].headers["moonbus.exception.message"], parked[1]
  end

  before_each(function() url = nil end)

  it("stamps moonbus.version on a type declared with a version, and not otherwise", function()
    send_as(2, { id = "a", amount = 1, currency = "USD" })
    bus.command("x.Plain")
    bus.command("x.One", nil, { version = 1 })
    bus.send("x.Plain", {}, { to = "x" })
    bus.send("x.One", {}, { to = "x" })
    local queued = testing.browse("x")
    assert.equal(3, #queued)
    assert.equal("2", queued[1].headers["moonbus.version"])
    assert.is_nil(queued[2].headers["moonbus.version"])
    assert.equal("1", queued[3].headers["moonbus.version"])
    local versions = {}
    bus.handle("x.Order", function(_, ctx) versions.order = ctx.version end)
    bus.handle("x.Plain", function(_, ctx) versions.plain = ctx.version end)
    bus.handle("x.One", function(_, ctx) versions.one = ctx.version end)
    assert.is_true(testing.run_until(function() return testing.counters().handled == 3 end))
    assert.same({ order = 2, plain = 1, one = 1 }, versions)
  end)

  it("upcasts v1 (no header) and v2 to v3 step by step, before the schema check", function()
    send_as(nil, { id = "a", amount = 1.25 })
    send_as(2, { id = "b", amount = 2, currency = "USD" })
    send_as(3, { id = "c", cents = 300, currency = "CHF" })
    local seen, trail = {}, {}
    receive_as(3, seen)
    steps(bus, trail)
    assert.is_true(testing.run_until(function() return #seen == 3 end))
    table.sort(seen, function(p, q) return p.body.id < q.body.id end)
    assert.same({
      { body = { id = "a", cents = 125, currency = "EUR" }, version = 1 },
      { body = { id = "b", cents = 200, currency = "USD" }, version = 2 },
      { body = { id = "c", cents = 300, currency = "CHF" }, version = 3 },
    }, seen)
    table.sort(trail)
    assert.same({ "1>2 a", "2>3 a", "2>3 b" }, trail)
    assert.equal(0, testing.counters().parked)
  end)

  it("parks a version newer than the receiver's, with the reason, without retries", function()
    send_as(4, { id = "d", cents = 1, currency = "EUR", channel = "web" })
    local seen, trail = {}, {}
    receive_as(3, seen, { retries = { delay = 0.01 } })
    steps(bus, trail)
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    local reason, m = parked_reason()
    assert.matches("v4 of x.Order is newer than this endpoint's v3: deploy the newer contracts",
      reason, 1, true)
    assert.equal("4", m.headers["moonbus.version"])
    assert.same({ id = "d", cents = 1, currency = "EUR", channel = "web" },
      require("cjson").decode(m.body)) -- byte for byte, as it was sent
    assert.same({}, seen)
    assert.same({}, trail)
    assert.equal(0, testing.counters().failed)
  end)

  it("parks a message when a step of its chain is missing", function()
    send_as(nil, { id = "a", amount = 1 })
    local seen = {}
    receive_as(3, seen)
    bus.upcast("x.Order", 2, function(o) return o end)
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    assert.matches('no upcaster from v1 of x.Order to v2: declare bus.upcast("x.Order", 1, fn)',
      parked_reason(), 1, true)
    assert.same({}, seen)
  end)

  it("parks a message whose moonbus.version is not a whole number >= 1", function()
    as_version(1)
    local seen = {}
    bus.handle("x.Order", function(o) seen[#seen + 1] = o end)
    testing.host.start()
    support.inject(url, "x", "00000000-0000-7000-8000-00000000000a", "x.Order",
      '{"moonbus.kind":"command","moonbus.version":"0"}', '{"id":"a","amount":1}')
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    assert.matches("x.Order: moonbus.version '0' is not a version (a whole number >= 1)",
      parked_reason(), 1, true)
    assert.same({}, seen)
  end)

  it("retries a step that fails like any handler error", function()
    send_as(nil, { id = "a", amount = 1 })
    local seen, calls = {}, 0
    receive_as(2, seen)
    bus.upcast("x.Order", 1, function(o)
      calls = calls + 1
      if calls < 3 then error("the rates service is down") end
      o.currency = "EUR"
      return o
    end)
    assert.is_true(testing.run_until(function() return #seen == 1 end))
    assert.same({ id = "a", amount = 1, currency = "EUR" }, seen[1].body)
    assert.equal(3, calls)
    assert.equal(2, testing.counters().failed)
  end)

  it("parks, after the retries, a step that keeps failing or returns no table, naming it", function()
    send_as(nil, { id = "a", amount = 1 })
    receive_as(2, {}, { retries = { immediate = 1, delayed = 0 } })
    bus.upcast("x.Order", 1, function() error("the rates service is down") end)
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    local reason, m = parked_reason()
    assert.matches("the upcaster from v1 of x.Order to v2 failed: ", reason, 1, true)
    assert.matches("the rates service is down", reason, 1, true)
    assert.equal("1", m.headers["moonbus.retries.immediate"])
    assert.equal(2, testing.counters().failed)

    url = nil
    send_as(nil, { id = "b", amount = 1 })
    receive_as(2, {}, { retries = { immediate = 0, delayed = 0 } })
    bus.upcast("x.Order", 1, function(o) o.currency = "EUR" end) -- forgot the return
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    assert.matches("the upcaster from v1 of x.Order to v2 returned nil, not a table: it must "
      .. "return the v2 body", parked_reason(), 1, true)
  end)

  it("parks at once a step that raises bus.unrecoverable", function()
    send_as(nil, { id = "a", amount = -1 })
    receive_as(2, {}, { retries = { delay = 0.01 } })
    bus.upcast("x.Order", 1, function() error(bus.unrecoverable("a negative amount")) end)
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    assert.matches("the upcaster from v1 of x.Order to v2 failed: .*a negative amount",
      parked_reason())
    assert.equal(0, testing.counters().failed)
  end)

  it("runs the steps of the script that handles the attempt: a new script fixes a failing step", function()
    send_as(nil, { id = "a", amount = 1 })
    local calls = 0
    receive_as(2, {}, { retries = { immediate = 0, delayed = 1, delay = 0.5 } })
    bus.upcast("x.Order", 1, function()
      calls = calls + 1
      error("a bug in the step")
    end)
    assert.is_true(testing.run_until(function() return testing.counters().failed == 1 end))
    -- the message waits for its delayed round; the fixed script takes it over
    local seen = {}
    receive_as(2, seen)
    bus.upcast("x.Order", 1, function(o)
      o.currency = "EUR"
      return o
    end)
    assert.is_true(testing.run_until(function() return #seen == 1 end, 10))
    assert.equal(1, calls)
    assert.same({ id = "a", amount = 1, currency = "EUR" }, seen[1].body)
    assert.equal(0, testing.counters().parked)
  end)

  it("fails a step that tries to wait (bus.request): a step cannot yield", function()
    send_as(nil, { id = "a", amount = 1 })
    receive_as(2, {}, { retries = { immediate = 0, delayed = 0 } })
    bus.command("x.Rate")
    bus.upcast("x.Order", 1, function(o)
      o.currency = bus.request("x.Rate", {}, { to = "x", timeout = 1 }).currency
      return o
    end)
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    local reason = parked_reason()
    assert.matches("the upcaster from v1 of x.Order to v2 failed: ", reason, 1, true)
    assert.matches("cannot wait for a reply here", reason, 1, true)
  end)

  it("checks the upcast body against the declared schema", function()
    send_as(nil, { id = "a", amount = 1 })
    receive_as(2, {})
    bus.upcast("x.Order", 1, function(o) return o end) -- no currency
    assert.is_true(testing.run_until(function() return testing.counters().parked == 1 end))
    assert.matches("schema violation: x.Order: field 'currency' is missing", parked_reason(), 1, true)
  end)

  it("refuses misuse, naming the culprit", function()
    bus = testing.fresh()
    bus.command("x.Order", schemas[3], { version = 3 })
    bus.command("x.Plain")
    local fn = function(o) return o end
    assert.matches("bus.upcast: x.Nope is not declared", err_of(bus.upcast, "x.Nope", 1, fn), 1, true)
    for _, bad in ipairs({ 0, -1, 1.5, "1" }) do
      assert.matches('bus.upcast("x.Order"): from_version must be a whole number >= 1, got '
        .. tostring(bad), err_of(bus.upcast, "x.Order", bad, fn), 1, true)
    end
    assert.matches('bus.upcast("x.Order", 1): the step must be a function(body) that returns '
      .. "the v2 body, got nil", err_of(bus.upcast, "x.Order", 1), 1, true)
    assert.matches('bus.upcast("x.Order", 3): x.Order is declared as v3 here, so there is no '
      .. "step from v3: declare it with { version = 4 } to upcast to v4",
      err_of(bus.upcast, "x.Order", 3, fn), 1, true)
    assert.matches("x.Plain is declared as v1 here",
      err_of(bus.upcast, "x.Plain", 1, fn), 1, true)
    bus.upcast("x.Order", 1, fn)
    assert.matches('bus.upcast("x.Order", 1): the step from v1 to v2 is already registered',
      err_of(bus.upcast, "x.Order", 1, fn), 1, true)

    for _, bad in ipairs({ 0, 2.5, "2", true }) do
      assert.matches("bus.event: version of x.Ev must be a whole number >= 1, got " .. tostring(bad),
        err_of(bus.event, "x.Ev", nil, { version = bad }), 1, true)
    end
    assert.matches("bus.message: options of x.M: unknown option 'versoin' (known: version)",
      err_of(bus.message, "x.M", nil, { versoin = 2 }), 1, true)
    assert.matches("bus.message: options of x.M must be a table { version = N }, got number",
      err_of(bus.message, "x.M", nil, 2), 1, true)
    assert.matches("bus.command: x.Order is already declared as v3; a type has one version",
      err_of(bus.command, "x.Order", nil, { version = 2 }), 1, true)
    bus.command("x.Order", schemas[3], { version = 3 }) -- the same again is fine
    bus.command("x.Order", schemas[3])                  -- and so is no version: it stays v3
    assert.matches("x.Order is declared as v3 here", err_of(bus.upcast, "x.Order", 3, fn), 1, true)
  end)

  it("keeps a request's reply of the same version as it is", function()
    bus = testing.fresh()
    bus.command("x.Ask")
    bus.message("x.Answer", { n = "number" }, { version = 2 })
    bus.upcast("x.Answer", 1, function() error("not called") end)
    bus.endpoint { name = "x", concurrency = 4, routes = { ["x.Ask"] = "x" } }
    bus.handle("x.Ask", function(_, ctx) ctx:reply("x.Answer", { n = 7 }) end)
    local got
    bus.after(0, function()
      local body, rctx = bus.request("x.Ask", {}, { timeout = 5 })
      got = { body = body, version = rctx.version }
    end)
    assert.is_true(testing.run_until(function() return got ~= nil end))
    assert.same({ body = { n = 7 }, version = 2 }, got)
  end)
end)
