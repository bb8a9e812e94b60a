-- sales: takes orders, asks billing whether the customer's credit covers them (bus.request:
-- the handler waits for the answer while other orders go on), has the card charged by
-- billing (a send whose reply arrives later, at any instance of sales), and announces
-- placed orders.
local bus = require "moonbus"
require "contracts"

bus.endpoint {
  name = "sales",
  routes = {
    ["sales.PlaceOrder"] = "sales",     -- the shop front is simulated by a timer below
    ["billing.ChargeCard"] = "billing",
    ["billing.CheckCredit"] = "billing",
  },
  publishes = { "sales.OrderPlaced" },
  concurrency = 8,
}

local pending = {} -- order_id -> order, until billing replies (lost on restart: a demo)

bus.handle("sales.PlaceOrder", function(order, ctx)
  local credit = bus.request("billing.CheckCredit",
    { customer = order.customer, amount = order.total }, { timeout = 5 })
  if not credit.approved then
    bus.log.warn("order %s from %s refused: %.2f is over the credit limit of %.2f",
      order.order_id, order.customer, order.total, credit.limit)
    return
  end
  pending[order.order_id] = order
  bus.log.info("order %s from %s for %.2f %s (a v%d order): charging the card", order.order_id,
    order.customer, order.total, order.currency, ctx.version)
  bus.send("billing.ChargeCard",
    { order_id = order.order_id, amount = order.total, customer = order.customer })
end)

bus.handle("billing.CardCharged", function(charged, ctx)
  local order = pending[charged.order_id] or { customer = "?", total = 0 }
  pending[charged.order_id] = nil
  bus.log.info("order %s paid (receipt %s, conversation %s)", charged.order_id, charged.receipt,
    ctx.conversation_id)
  bus.publish("sales.OrderPlaced", {
    order_id = charged.order_id, customer = order.customer, total = order.total,
  })
end)

local customers = { "ada", "grace", "linus", "barbara", "mallory" }
local n = 0
bus.every(2, function()
  n = n + 1
  bus.send("sales.PlaceOrder", {
    order_id = string.format("o-%d-%d", os.time(), n),
    customer = customers[n % #customers + 1],
    total = 10 + n,
    currency = n % 3 == 0 and "CHF" or "EUR",
  })
end)
