-- bus.endpoint: options, defaults, and errors that say what to do instead.
local testing = require "moonbus.testing"

local err_of = require("support").err_of

describe("bus.endpoint", function()
  local bus
  before_each(function() bus = testing.fresh() end)

  it("accepts every documented option", function()
    bus.event("s.Evt")
    assert.has_no.errors(function()
      bus.endpoint {
        name = "s", routes = { ["x.Cmd"] = "x" }, publishes = { "s.Evt" }, concurrency = 4,
        retries = { immediate = 1, delayed = 2, delay = 3 }, errors = "errs", audit = false,
        max_body = 1024, queue_type = "classic",
      }
    end)
  end)

  it("requires a name", function()
    assert.matches("name is required", err_of(bus.endpoint, { concurrency = 2 }), 1, true)
  end)

  it("names an unknown option", function()
    assert.matches("unknown option 'concurency'",
      err_of(bus.endpoint, { name = "s", concurency = 2 }), 1, true)
  end)

  it("takes report = SECONDS | false and sla = SECONDS, refusing what is not (DESIGN §11)", function()
    assert.has_no.errors(function() bus.endpoint { name = "s", report = 0.5, sla = 30 } end)
    assert.has_no.errors(function() testing.fresh().endpoint { name = "s", report = false } end)
    assert.matches("report must be a number of seconds from 0.1 to 3600, or false",
      err_of(testing.fresh().endpoint, { name = "s", report = "often" }), 1, true)
    assert.matches("report must be a number of seconds from 0.1 to 3600",
      err_of(testing.fresh().endpoint, { name = "s", report = 0 }), 1, true)
    assert.matches("sla must be a number of seconds above 0",
      err_of(testing.fresh().endpoint, { name = "s", sla = -1 }), 1, true)
  end)

  it("refuses a bad concurrency", function()
    assert.matches("concurrency must be a whole number from 1 to 10000",
      err_of(bus.endpoint, { name = "s", concurrency = 0 }), 1, true)
  end)

  it("refuses a queue name with a space", function()
    assert.matches("bus.endpoint: name 'my queue'", err_of(bus.endpoint, { name = "my queue" }),
      1, true)
  end)

  it("refuses publishing an undeclared type, naming it", function()
    assert.matches("s.Nope is not declared",
      err_of(bus.endpoint, { name = "s", publishes = { "s.Nope" } }), 1, true)
  end)

  it("refuses publishing a command, saying commands are sent", function()
    bus.command("s.Do")
    assert.matches("publishes lists s.Do, which is a command: only events are published",
      err_of(bus.endpoint, { name = "s", publishes = { "s.Do" } }), 1, true)
  end)

  it("allows one endpoint per script", function()
    bus.endpoint { name = "one" }
    assert.matches("endpoint one is already declared", err_of(bus.endpoint, { name = "two" }),
      1, true)
  end)

  it("refuses routes that are not a table", function()
    assert.matches("routes must be a table",
      err_of(bus.endpoint, { name = "s", routes = "billing" }), 1, true)
  end)

  it("runs on a classic queue with queue_type = \"classic\"", function()
    bus.command("c.Do")
    bus.endpoint { name = "c", routes = { ["c.Do"] = "c" }, queue_type = "classic" }
    local got
    bus.handle("c.Do", function(_, ctx) got = ctx.attempt end)
    bus.send("c.Do", {})
    assert.is_true(testing.run_until(function() return got ~= nil end))
    assert.equal(1, got)
  end)

  if testing.transport() == "rabbitmq" then
    it("says so when the queue exists with another queue type", function()
      local url
      bus, url = testing.fresh()
      bus.endpoint { name = "q" }
      testing.host.start()
      bus = testing.fresh(url)
      bus.endpoint { name = "q", queue_type = "classic" }
      local err = err_of(testing.host.start)
      assert.matches("cannot declare queue 'q' as a durable classic queue", err, 1, true)
      assert.matches("set queue_type in bus.endpoint{} to what the queue is", err, 1, true)
    end)
  end
end)
