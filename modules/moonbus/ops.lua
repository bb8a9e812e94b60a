-- moonbus.ops: the contracts of the events `moonbus ops` publishes (it owns them, as
-- endpoint moonbus.ops). An endpoint that wants to react to an alert requires this module
-- (it declares the four events, like a shared contracts module would) and handles the type:
--
--   local bus = require "moonbus"
--   require "moonbus.ops"
--   bus.handle("moonbus.ops.MessageFailed", function(alert)
--     bus.log.warn("%s failed in %s: %s", alert.id, alert.queue, alert.exception)
--   end)
--
-- Handling an event subscribes the endpoint's queue to it; alerts raised while no endpoint
-- handles a type are not kept for later. Every body has "event" (its type) and "at" (when
-- it was raised, ISO 8601 UTC); the other fields are optional here, so that an alert with a
-- field ops could not fill (null) is still delivered rather than parked.
local bus = require "moonbus"

local M = {}

M.MessageFailed = bus.event("moonbus.ops.MessageFailed", {
  event = "string", at = "string", id = "string", type = "string?", endpoint = "string?",
  queue = "string?", exception = "string?", failed_at = "string?", attempts = "number?",
  conversation_id = "string?",
})
M.HeartbeatStopped = bus.event("moonbus.ops.HeartbeatStopped", {
  event = "string", at = "string", endpoint = "string", instance = "string?", host = "string?",
  last_seen = "string?", interval = "number?",
})
M.HeartbeatRestored = bus.event("moonbus.ops.HeartbeatRestored", {
  event = "string", at = "string", endpoint = "string", instance = "string?", host = "string?",
  last_seen = "string?", down_seconds = "number?",
})
M.SlaBreached = bus.event("moonbus.ops.SlaBreached", {
  event = "string", at = "string", endpoint = "string", sla = "number?", critical_p95 = "number?",
  queue_length = "number?", throughput = "number?", time_to_breach = "number?",
})

return M
