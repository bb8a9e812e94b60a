-- Errors the world raises into scripts are values with a kind (bus.error_kind, err.kind),
-- on the transport under test: a script tests the kind, never the text. tostring gives
-- the same message as before, and a script's own mistakes stay plain string errors.
local testing = require "moonbus.testing"
local support = require "support"

local function settled()
  local c = testing.counters()
  return c.coroutines == 0 and c.waiting == 0 and c.requests == 0 and c.in_flight == 0
end

-- Runs the loop until every handler, timer wait and request has ended.
local function settle()
  assert.is_true(testing.run_until(settled, 5))
end

-- What a caught error looks like to a script.
local function seen(bus, ok, err)
  return { ok = ok, kind = bus.error_kind(err), field = type(err) == "table" and err.kind or nil,
    text = tostring(err), message = type(err) == "table" and err.message or nil,
    timeout = bus.is_timeout(err), type = type(err) }
end

describe("error kinds", function()
  local bus, url

  before_each(function()
    bus, url = testing.fresh()
    bus.command("e.Do")
    bus.command("e.Silent")
    bus.command("e.Blob", { data = "string" })
    bus.event("e.Happened")
  end)

  local function serve(extra)
    local cfg = { name = "e", concurrency = 4, routes = { ["e.Silent"] = "e", ["e.Do"] = "e" } }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    bus.endpoint(cfg)
    bus.handle("e.Silent", function() end)
  end

  it("a send to a queue that does not exist is 'unroutable', with the same text as before", function()
    serve()
    local e = seen(bus, pcall(bus.send, "e.Do", {}, { to = "nobody" }))
    assert.is_false(e.ok)
    assert.equal("table", e.type)
    assert.equal("unroutable", e.kind)
    assert.equal("unroutable", e.field)
    assert.equal(e.text, e.message)
    -- on SQLite the text names the database file: "... 'nobody' in sqlite:///abs/bus.db (message ..."
    assert.matches("^bus%.send: no queue named 'nobody' [^(]*%(message [%x-]+ of type e%.Do%)", e.text)
    assert.is_false(e.timeout)
  end)

  it("a send from a timer and a request to a queue that does not exist are 'unroutable'", function()
    serve()
    local sent, requested
    bus.after(0, function()
      sent = seen(bus, pcall(bus.send, "e.Do", {}, { to = "nobody" }))
      requested = seen(bus, pcall(bus.request, "e.Do", {}, { to = "nobody", timeout = 5 }))
    end)
    assert.is_true(testing.run_until(function() return requested ~= nil end))
    assert.equal("unroutable", sent.kind)
    assert.matches("bus.send: no queue named 'nobody'", sent.text, 1, true)
    assert.equal("unroutable", requested.kind)
    assert.matches("bus.request: no queue named 'nobody'", requested.text, 1, true)
    assert.is_false(requested.timeout)
    settle()
  end)

  it("a request without a reply is 'timeout', and bus.is_timeout still says so", function()
    serve()
    local e, fields
    bus.after(0, function()
      local ok, err = pcall(bus.request, "e.Silent", {}, { timeout = 0.2 })
      e = seen(bus, ok, err)
      fields = { request_id = err.request_id, timeout = err.timeout }
    end)
    assert.is_true(testing.run_until(function() return e ~= nil end))
    assert.equal("timeout", e.kind)
    assert.equal("timeout", e.field)
    assert.is_true(e.timeout)
    assert.matches("^bus%.request: no reply to e%.Silent to e %(request [%x-]+%) within 0%.2", e.text)
    assert.equal(e.text, e.message)
    assert.matches("^%x+%-%x+%-7%x+%-%x+%-%x+$", fields.request_id)
    assert.equal(0.2, fields.timeout)
    settle()
  end)

  it("a body over max_body is 'too_large'", function()
    serve({ max_body = 100 })
    local e = seen(bus, pcall(bus.send, "e.Blob", { data = ("x"):rep(200) }, { to = "e" }))
    assert.equal("too_large", e.kind)
    assert.matches("over the limit of 100 bytes (max_body of endpoint e)", e.text, 1, true)
  end)

  it("an event another endpoint publishes is 'not_owner' when this one publishes it", function()
    bus.endpoint { name = "owner", publishes = { "e.Happened" } }
    testing.host.start()
    bus = testing.fresh(url) -- another process, as far as the transport can tell
    bus.event("e.Happened")
    bus.endpoint { name = "rogue", publishes = { "e.Happened" } }
    local e = seen(bus, pcall(bus.publish, "e.Happened", {}))
    assert.equal("not_owner", e.kind)
    assert.matches("e.Happened is published by endpoint owner", e.text, 1, true)
  end)

  it("a transport that cannot be reached is 'not_connected'", function()
    bus = testing.fresh("amqp://guest:guest@127.0.0.1:1/?connect_timeout=1")
    bus.command("e.Do")
    bus.endpoint { name = "e", routes = { ["e.Do"] = "e" } }
    local e = seen(bus, pcall(bus.send, "e.Do", {}))
    assert.equal("not_connected", e.kind)
    assert.matches("bus.send: cannot connect to RabbitMQ at 127.0.0.1:1", e.text, 1, true)
  end)

  it("an uncaught error value fails the handler with its message", function()
    serve({ retries = { immediate = 0, delayed = 0 } })
    bus.handle("e.Do", function() bus.request("e.Silent", {}, { to = "nobody", timeout = 5 }) end)
    bus.send("e.Do", {})
    assert.is_true(testing.run_until(function() return (testing.depth("error")) == 1 end))
    local why = support.parked()[1].headers["moonbus.exception.message"]
    assert.matches("bus.request: no queue named 'nobody'", why, 1, true)
    assert.is_nil(why:find("table: ", 1, true))
    settle()
  end)

  it("a script's own mistakes stay plain string errors, with no kind", function()
    serve()
    local e = seen(bus, pcall(bus.send, "e.Do", {}, { dealy = 1 }))
    assert.equal("string", e.type)
    assert.is_nil(e.kind)
    e = seen(bus, pcall(bus.publish, "e.Do", {}))
    assert.equal("string", e.type)
    assert.is_nil(e.kind)
  end)

  it("bus.error_kind is nil for anything moonbus did not raise", function()
    assert.is_nil(bus.error_kind("bus.send: no queue named 'nobody'"))
    assert.is_nil(bus.error_kind({ kind = "timeout", message = "no reply" }))
    assert.is_nil(bus.error_kind(nil))
    assert.is_nil(bus.error_kind(42))
    assert.is_nil(bus.error_kind(setmetatable({}, { __tostring = function() return "x" end })))
    assert.equal("unrecoverable", bus.error_kind(bus.unrecoverable("bad input")))
    assert.is_false(bus.is_timeout({ kind = "timeout" }))
  end)

  it("an error value joins text with .. like a string error", function()
    serve()
    local _, err = pcall(bus.send, "e.Do", {}, { to = "nobody" })
    assert.matches("^failed: .*no queue named 'nobody'.*!$", "failed: " .. err .. "!")
  end)
end)
