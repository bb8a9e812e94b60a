-- shipping: ships placed orders (the second subscriber of sales.OrderPlaced).
local bus = require "moonbus"
require "contracts"

bus.endpoint { name = "shipping" }

bus.handle("sales.OrderPlaced", function(order, ctx)
  bus.log.info("packing order %s for %s (caused by %s)", order.order_id, order.customer,
    ctx.related_to)
end)
