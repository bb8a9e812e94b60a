-- The edges of what a script may do: the test drivers (moonbus.host) refuse to drive the
-- bus from inside a handler or timer of that bus, and names the broker could not hold are
-- refused when they are declared.
local testing = require "moonbus.testing"

describe("test drivers inside the bus they drive", function()
  local bus
  before_each(function()
    bus = testing.fresh()
    bus.command("sb.Do")
    bus.endpoint { name = "sb", routes = { ["sb.Do"] = "sb" }, retries = { immediate = 0, delayed = 0 } }
  end)

  for _, fn in ipairs { "reset", "run", "start", "stop" } do
    it("host." .. fn .. " refuses to run from a handler, and the bus lives on", function()
      local host = testing.host
      local ok, err, handled
      bus.handle("sb.Do", function()
        ok, err = pcall(host[fn], fn == "run" and { seconds = 0.1 } or nil)
        handled = true
      end)
      bus.send("sb.Do", {})
      assert.is_true(testing.run_until(function() return handled end))
      assert.is_false(ok)
      assert.matches("moonbus.host." .. fn .. " cannot be called from a handler or timer", tostring(err), 1, true)
      assert.matches("test driver", tostring(err), 1, true)
      -- the bus still works after the refusal
      handled = nil
      bus.send("sb.Do", {})
      assert.is_true(testing.run_until(function() return handled end))
      assert.equal(0, testing.counters().coroutines)
    end)
  end

  it("host.reset refuses to run from a timer, also from a coroutine the timer made", function()
    local errs = {}
    bus.after(0, function()
      errs[1] = select(2, pcall(testing.host.reset))
      local co = coroutine.wrap(function() return select(2, pcall(testing.host.reset)) end)
      errs[2] = co()
    end)
    assert.is_true(testing.run_until(function() return errs[2] ~= nil end))
    for i = 1, 2 do
      assert.matches("moonbus.host.reset cannot be called from a handler or timer", tostring(errs[i]), 1, true)
    end
  end)

  it("read-only helpers still work from a handler", function()
    local depth
    bus.handle("sb.Do", function() depth = testing.host.depth("sb") end)
    bus.send("sb.Do", {})
    assert.is_true(testing.run_until(function() return depth ~= nil end))
    assert.is_number(depth)
  end)
end)

describe("names the broker could not hold", function()
  local bus
  before_each(function() bus = testing.fresh() end)

  it("bus.event refuses a type whose exchange names would pass 255 bytes", function()
    local ok = bus.event(("e"):rep(241)) -- moonbus.owner.<type> is exactly 255 bytes
    assert.truthy(ok)
    local long = ("e"):rep(242)
    local _, err = pcall(bus.event, long)
    assert.matches("bus.event: event type '" .. long:sub(1, 40), err, 1, true)
    assert.matches("242 bytes", err, 1, true)
    assert.matches("at most 241", err, 1, true)
    assert.matches("moonbus.owner.", err, 1, true)
  end)

  it("bus.command and bus.message keep the 255-byte limit of a type name", function()
    assert.truthy(bus.command(("c"):rep(255)))
    assert.truthy(bus.message(("m"):rep(255)))
    local _, err = pcall(bus.command, ("c"):rep(256))
    assert.matches("bus.command: .*255", err)
  end)

  it("only events have the shorter limit: a message of 250 bytes is fine, an event is not", function()
    assert.is_true((pcall(bus.message, ("x"):rep(250))))
    local _, err2 = pcall(bus.event, ("x"):rep(250))
    assert.matches("at most 241", err2, 1, true)
  end)

  it("bus.endpoint refuses a name its publisher exchange and delayed deliveries cannot hold", function()
    local name = ("n"):rep(200)
    local _, err = pcall(bus.endpoint, { name = name })
    assert.matches("bus.endpoint: name '" .. name:sub(1, 40), err, 1, true)
    assert.matches("200 bytes", err, 1, true)
    assert.matches("at most 199", err, 1, true)
    bus = testing.fresh()
    assert.has_no.errors(function() bus.endpoint { name = ("n"):rep(199) } end)
  end)
end)

describe("names at the limits", function()
  it("an event of 241 bytes published by an endpoint of 199 bytes, with a delayed retry, works", function()
    local bus = testing.fresh()
    local event, name = ("e"):rep(241), ("n"):rep(199)
    bus.event(event, { n = "number" })
    bus.endpoint { name = name, publishes = { event }, retries = { immediate = 0, delayed = 1, delay = 1 } }
    local attempts = 0
    bus.handle(event, function()
      attempts = attempts + 1
      if attempts == 1 then error("once more, through the delay") end
    end)
    testing.host.start()
    bus.publish(event, { n = 1 })
    assert.is_true(testing.run_until(function() return attempts == 2 end, 10))
  end)
end)

-- Counting is the same on every transport, and each case needs two endpoints: on SQLite
-- files, not on the RabbitMQ run's pool of virtual hosts.
describe("what one send may encode", function()
  local cjson = require "cjson"
  local function fresh() return testing.fresh("sqlite://" .. testing.tmpdir() .. "/bus.db?synchronous=normal") end
  local s = ("x"):rep(100)
  local bodies = {
    { "plain fields", { a = "b", n = 12, f = 0.1, t = true, no = false } },
    { "escapes", { s = 'q"b\\s/\b\t\n\f\r\1\31\127é' } },
    { "numbers as cjson writes them", { 1e300, -0.0, 2 ^ 53, math.mininteger, -12345, 3.0, 1 / 3 } },
    { "an array with holes", { list = { 1, nil, 3, nil, nil, 6 } } },
    { "numeric keys of an object", { [1] = "a", [2.5] = "b", x = 1 } },
    { "nesting and empty tables", { a = { b = { c = {}, d = { {}, { 1 } } } } } },
    { "json null", { n = cjson.null } },
    { "repeated references", { s, s, { s, s } } },
  }
  for _, case in ipairs(bodies) do
    it("counts " .. case[1] .. " exactly as lua-cjson encodes it", function()
      local n = #cjson.encode(case[2])
      for _, limit in ipairs { n, n - 1 } do
        local bus = fresh()
        bus.command("sb.Body", { })
        bus.endpoint { name = "sb", max_body = limit, routes = { ["sb.Body"] = "sb" } }
        local ok, err = pcall(bus.send, "sb.Body", case[2])
        if limit == n then
          assert.is_true(ok, err)
        else
          assert.is_false(ok)
          assert.matches("the body of sb.Body would encode to more than " .. limit ..
            " bytes of JSON, over the limit of " .. limit .. " bytes (max_body of endpoint sb)", err, 1, true)
        end
      end
    end)
  end

  it("refuses 200 references to a 1 MiB string before encoding them", function()
    local bus = fresh()
    bus.command("sb.Body")
    bus.endpoint { name = "sb", routes = { ["sb.Body"] = "sb" } }
    local big, list = ("x"):rep(2 ^ 20), {}
    for i = 1, 200 do list[i] = big end
    local ok, err = pcall(bus.send, "sb.Body", { list = list })
    assert.is_false(ok)
    assert.matches("would encode to more than 4194304 bytes of JSON", err, 1, true)
  end)
end)
