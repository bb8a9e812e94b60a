-- The messages of the orders system, shared by every endpoint (require "contracts").
-- Each type is declared once with its kind; the schema is checked on send and receive.
local bus = require "moonbus"

-- commands: sent to the one endpoint that handles them
-- sales.PlaceOrder is at version 2 (it gained a currency): what is sent carries
-- moonbus.version = 2; a v1 order (from an older shop front, or `moonbus send`, which stamps
-- no version) is upcast by the step below before the schema check and the handler.
bus.command("sales.PlaceOrder",
  { order_id = "string", customer = "string", total = "number", currency = "string" },
  { version = 2 })
bus.upcast("sales.PlaceOrder", 1, function(order)
  order.currency = "EUR" -- v1 orders were all in euros
  return order
end)
bus.command("billing.ChargeCard", { order_id = "string", amount = "number", customer = "string?" })
bus.command("billing.CheckCredit", { customer = "string", amount = "number" })
-- an invoice document (a few hundred KiB): over claim_check (256 KiB), so its body travels
-- through the claim store (the bus database here) and the message itself stays small
bus.command("billing.ArchiveInvoice", { order_id = "string", document = "string" })
-- a carrier's report on a shipment; reports may arrive out of order (see shipping)
bus.command("shipping.TrackingUpdate", { order_id = "string", status = "string", at = "string" })

-- replies: plain messages back to whoever sent the command
bus.message("billing.CardCharged", { order_id = "string", receipt = "string" })
bus.message("billing.CreditChecked", { approved = "boolean", limit = "number" })

-- events: published by their one owner, delivered to every subscriber
bus.event("sales.OrderPlaced", { order_id = "string", customer = "string", total = "number" })

return bus
