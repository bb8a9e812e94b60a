-- billing: answers credit checks (bus.request from sales), charges cards for sales (a
-- command with a reply) and invoices placed orders (one of two subscribers of
-- sales.OrderPlaced). The bank is flaky: now and then a charge is declined and succeeds on
-- a retry (a transient failure the retries hide), and mallory's card is always refused (a
-- poison message that ends in the error queue, for `moonbus ops` to show). Invoices are
-- archived as large documents: the claim check carries them.
local bus = require "moonbus"
require "contracts"

bus.endpoint { name = "billing", retries = { immediate = 2, delayed = 1, delay = 5 },
  routes = { ["billing.ArchiveInvoice"] = "billing" } }

local receipts = 0

local LIMIT = 25

bus.handle("billing.CheckCredit", function(check, ctx)
  ctx:reply("billing.CreditChecked", { approved = check.amount <= LIMIT, limit = LIMIT })
end)

bus.handle("billing.ChargeCard", function(charge, ctx)
  if charge.customer == "mallory" then
    error(("card of %s refused for order %s: account blocked"):format(charge.customer,
      charge.order_id))
  end
  if ctx.attempt == 1 and math.random() < 0.3 then
    error(("card declined for order %s: the bank timed out"):format(charge.order_id))
  end
  receipts = receipts + 1
  bus.log.info("charged %.2f for order %s", charge.amount, charge.order_id)
  ctx:reply("billing.CardCharged", {
    order_id = charge.order_id, receipt = string.format("r-%06d", receipts),
  })
end)

-- The invoice document is large (a rendered PDF would be): it goes through the claim check.
local function render_invoice(order)
  local line = ("%-20s %-12s %10.2f\n"):format(order.order_id, order.customer, order.total)
  return "INVOICE\n" .. line:rep(math.ceil(300 * 1024 / #line))
end

bus.handle("sales.OrderPlaced", function(order)
  bus.send("billing.ArchiveInvoice", { order_id = order.order_id, document = render_invoice(order) })
  bus.log.info("invoice sent to %s for order %s", order.customer, order.order_id)
end)

bus.handle("billing.ArchiveInvoice", function(invoice, ctx)
  bus.log.info("archived the invoice of order %s (%d bytes, claim %s)", invoice.order_id,
    #invoice.document, ctx.headers["moonbus.claim"] or "none")
end)
