-- oncall: reacts to the alerts of `moonbus ops` (it publishes them as endpoint moonbus.ops,
-- once it runs: `make run` starts it). Here it only logs them; a real one would page
-- someone or open a ticket. `require "moonbus.ops"` declares the four events, so this
-- endpoint can handle them (handling an event subscribes to it). mallory's refused card
-- (billing) ends in the error queue, and ops raises MessageFailed for it.
local bus = require "moonbus"
require "moonbus.ops"

bus.endpoint { name = "oncall" }

-- a JSON number as a Lua one prints (1.0 -> 1); "?" for null or absent
local function n(x) return type(x) == "number" and tostring(math.tointeger(x) or x) or "?" end

bus.handle("moonbus.ops.MessageFailed", function(alert)
  bus.log.warn("message %s (%s) failed in queue %s (failure %s of it): %s", alert.id,
    alert.type or "?", alert.queue or "?", n(alert.attempts), alert.exception or "?")
end)

bus.handle("moonbus.ops.HeartbeatStopped", function(alert)
  bus.log.warn("endpoint %s: instance %s on %s stopped reporting (last seen %s)", alert.endpoint,
    alert.instance or "?", alert.host or "?", alert.last_seen or "?")
end)

bus.handle("moonbus.ops.HeartbeatRestored", function(alert)
  bus.log.info("endpoint %s: instance %s on %s reports again (down %s s)", alert.endpoint,
    alert.instance or "?", alert.host or "?", n(alert.down_seconds))
end)

bus.handle("moonbus.ops.SlaBreached", function(alert)
  bus.log.warn("endpoint %s breached its SLA of %s s (critical time p95 %s s)", alert.endpoint,
    n(alert.sla), n(alert.critical_p95))
end)
