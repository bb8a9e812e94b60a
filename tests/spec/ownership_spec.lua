-- The single-publisher rule holds across processes through the transport: a second
-- endpoint claiming an event another owns is refused, naming both.
local testing = require "moonbus.testing"
local support = require "support"

describe("event ownership", function()
  it("refuses a second publisher on the same bus", function()
    local bus, url = testing.fresh()
    bus.event("o.Happened")
    bus.endpoint { name = "owner", publishes = { "o.Happened" } }
    testing.host.start()

    bus = testing.fresh(url) -- another process, as far as the database can tell
    bus.event("o.Happened")
    bus.endpoint { name = "rogue", publishes = { "o.Happened" } }
    local err = support.err_of(testing.host.start)
    assert.matches("o.Happened is published by endpoint owner; an event has one publisher", err, 1, true)
    assert.matches("rogue", err, 1, true)
    assert.equal("owner", testing.host.owner("o.Happened"))
  end)

  it("lets the owner restart", function()
    local bus, url = testing.fresh()
    bus.event("o.Happened")
    bus.endpoint { name = "owner", publishes = { "o.Happened" } }
    testing.host.start()
    bus = testing.fresh(url)
    bus.event("o.Happened")
    bus.endpoint { name = "owner", publishes = { "o.Happened" } }
    assert.has_no.errors(testing.host.start)
  end)
end)
