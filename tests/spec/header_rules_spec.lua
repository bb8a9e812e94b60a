-- The header rules a script's sends keep (README "Limits": at most 256 headers, 64 KiB of
-- keys and values, the bus's own headers included): a send that breaks them raises at once
-- with a clear error, instead of a message a receiver would park or a transport refuse.
local testing = require "moonbus.testing"

local err_of = require("support").err_of

describe("header rules on send", function()
  local bus
  before_each(function()
    bus = testing.fresh()
    bus.command("h.Job")
    bus.endpoint { name = "h", routes = { ["h.Job"] = "h" } }
  end)

  it("more than 256 headers are refused", function()
    local headers = {}
    for i = 1, 257 do headers["k" .. i] = "v" end
    assert.matches("257 headers", err_of(bus.send, "h.Job", {}, { headers = headers }), 1, true)
  end)

  it("headers over 64 KiB in all are refused with the limit", function()
    local err = err_of(bus.send, "h.Job", {}, { headers = { big = string.rep("x", 70000) } })
    assert.matches("headers of h.Job", err, 1, true)
    assert.matches("65536", err, 1, true)
  end)

  it("headers that fit alone but not with the bus's own are refused", function()
    local err = err_of(bus.send, "h.Job", {}, { headers = { big = string.rep("x", 65530) } })
    assert.matches("with the bus's own", err, 1, true)
  end)

  it("headers under the rules are sent", function()
    local got
    bus.handle("h.Job", function(_, ctx) got = ctx.headers.big end)
    bus.send("h.Job", {}, { headers = { big = string.rep("x", 60000) } })
    assert.is_true(testing.run_until(function() return got ~= nil end))
    assert.equals(60000, #got)
  end)
end)
