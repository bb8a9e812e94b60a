-- billing: answers credit checks (bus.request from sales), charges cards for sales (a
-- command with a reply) and invoices placed orders (one of two subscribers of
-- sales.OrderPlaced).
local bus = require "moonbus"
require "contracts"

bus.endpoint { name = "billing" }

local receipts = 0

local LIMIT = 25

bus.handle("billing.CheckCredit", function(check, ctx)
  ctx:reply("billing.CreditChecked", { approved = check.amount <= LIMIT, limit = LIMIT })
end)

bus.handle("billing.ChargeCard", function(charge, ctx)
  receipts = receipts + 1
  bus.log.info("charged %.2f for order %s", charge.amount, charge.order_id)
  ctx:reply("billing.CardCharged", {
    order_id = charge.order_id, receipt = string.format("r-%06d", receipts),
  })
end)

bus.handle("sales.OrderPlaced", function(order)
  bus.log.info("invoice sent to %s for order %s", order.customer, order.order_id)
end)
