-- shipping: ships placed orders (the second subscriber of sales.OrderPlaced), and follows
-- each shipment through the carrier's tracking updates. The carrier's reports arrive in
-- any order (here: each after a random delay), so the handler is declared with order_by:
-- an update older than the last one applied to its order is discarded, never applied over
-- a newer status (the log says "discarded: stale: ...").
local bus = require "moonbus"
require "contracts"

bus.endpoint { name = "shipping", routes = { ["shipping.TrackingUpdate"] = "shipping" } }

local STEPS = { "packed", "shipped", "delivered" }

bus.handle("sales.OrderPlaced", function(order, ctx)
  bus.log.info("packing order %s for %s (caused by %s)", order.order_id, order.customer,
    ctx.related_to)
  local now = os.time()
  for i, status in ipairs(STEPS) do -- the carrier's reports, in a scrambled order
    bus.send("shipping.TrackingUpdate",
      { order_id = order.order_id, status = status, at = os.date("!%Y-%m-%dT%H:%M:%SZ", now + i) },
      { delay = math.random() * 3 })
  end
end)

bus.handle("shipping.TrackingUpdate", function(update)
  bus.log.info("order %s is %s (as of %s)", update.order_id, update.status, update.at)
end, { order_by = "at", key = "order_id" }) -- ISO 8601 timestamps compare as strings
