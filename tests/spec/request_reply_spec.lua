-- bus.request, ctx:reply, bus.is_timeout and the headers that tie a conversation
-- together, through the real core on the transport under test: replies reach the
-- coroutine that asked and no other, timeouts are errors a script can recognise, late
-- replies are logged and dropped, and nothing (coroutine, pending request, in-flight
-- message) is left behind.
local testing = require "moonbus.testing"
local host = testing.host
local err_of = require("support").err_of

local function settled()
  local c = testing.counters()
  return c.coroutines == 0 and c.waiting == 0 and c.requests == 0 and c.in_flight == 0
end

describe("request/reply", function()
  local bus
  before_each(function()
    bus = testing.fresh()
    bus.command("r.Double", { n = "number" })
    bus.message("r.Doubled", { n = "number" })
    bus.command("r.Silent")
    bus.command("r.Work", { n = "number" })
    bus.event("r.Happened")
  end)
  after_each(function() host.capture_log(false) end)

  local function serve(extra)
    local cfg = { name = "r", concurrency = 64,
      routes = { ["r.Double"] = "r", ["r.Silent"] = "r", ["r.Work"] = "r" } }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    bus.endpoint(cfg)
    bus.handle("r.Double", function(q, ctx) ctx:reply("r.Doubled", { n = q.n * 2 }) end)
    bus.handle("r.Silent", function() end)
  end

  it("returns the reply's body and ctx to a request from a timer", function()
    serve()
    local got
    bus.after(0, function()
      local body, rctx = bus.request("r.Double", { n = 21 }, { timeout = 5 })
      got = { n = body.n, type = rctx.type, corr = rctx.correlation_id, kind = rctx.kind,
              related = rctx.related_to, conv = rctx.conversation_id, id = rctx.id }
    end)
    assert.is_true(testing.run_until(function() return got ~= nil end))
    assert.equal(42, got.n)
    assert.equal("r.Doubled", got.type)
    assert.equal("message", got.kind)
    assert.is_not_nil(got.corr)
    assert.equal(got.corr, got.related) -- the reply was caused by the request...
    assert.equal(got.corr, got.conv)    -- ...which started the conversation
    assert.is_true(testing.run_until(settled))
  end)

  it("serves requests from a handler, several in a row", function()
    serve({ routes = { ["r.Double"] = "r", ["r.Work"] = "r" } })
    local results
    bus.handle("r.Work", function(w)
      local a = bus.request("r.Double", { n = w.n }, { timeout = 5 })
      local b = bus.request("r.Double", { n = a.n }, { timeout = 5 })
      local c = bus.request("r.Double", { n = b.n }, { timeout = 5 })
      results = { a.n, b.n, c.n }
    end)
    bus.send("r.Work", { n = 1 })
    assert.is_true(testing.run_until(function() return results ~= nil end))
    assert.same({ 2, 4, 8 }, results)
    assert.is_true(testing.run_until(settled))
    assert.equal(4, testing.counters().handled) -- r.Work and three r.Double
  end)

  it("gives each of 200 concurrent requests its own answer", function()
    serve({ concurrency = 256 })
    local answers, wrong = 0, 0
    for i = 1, 200 do
      bus.after(0, function()
        local body = bus.request("r.Double", { n = i }, { timeout = 20 })
        if body.n == i * 2 then answers = answers + 1 else wrong = wrong + 1 end
      end)
    end
    local peak = 0
    assert.is_true(testing.run_until(function()
      peak = math.max(peak, testing.counters().requests)
      return answers + wrong == 200
    end, 30))
    assert.equal(0, wrong)
    assert.equal(200, answers)
    assert.is_true(peak > 1, "requests were in flight at the same time (peak " .. peak .. ")")
    assert.is_true(testing.run_until(settled))
  end)

  it("raises an error bus.is_timeout recognises when no reply comes", function()
    serve()
    local caught, after
    bus.after(0, function()
      local ok, err = pcall(bus.request, "r.Silent", {}, { timeout = 0.2 })
      caught = { ok = ok, timeout = bus.is_timeout(err), text = tostring(err) }
      after = "the handler went on"
    end)
    assert.is_true(testing.run_until(function() return after ~= nil end))
    assert.is_false(caught.ok)
    assert.is_true(caught.timeout)
    assert.matches("no reply to r.Silent to r", caught.text, 1, true)
    assert.is_false(bus.is_timeout("no reply"))
    assert.is_false(bus.is_timeout(bus.unrecoverable("x")))
    assert.is_true(testing.run_until(settled))
  end)

  it("fails a handler whose request times out uncaught, like any error", function()
    serve({ routes = { ["r.Silent"] = "r", ["r.Work"] = "r" } })
    local tries = 0
    bus.handle("r.Work", function()
      tries = tries + 1
      if tries == 1 then bus.request("r.Silent", {}, { timeout = 0.1 }) end
    end)
    bus.send("r.Work", { n = 1 })
    assert.is_true(testing.run_until(function() return tries == 2 end))
    assert.equal(1, testing.counters().failed)
    assert.is_true(testing.run_until(settled))
  end)

  it("logs and drops a reply that comes after its request timed out", function()
    serve({ routes = { ["r.Work"] = "r", ["r.Silent"] = "r", ["r.Double"] = "r" } })
    host.capture_log("warn")
    local slow_done, timed_out, later
    bus.handle("r.Work", function(w, ctx)
      pcall(bus.request, "r.Silent", {}, { timeout = 0.4 }) -- a slow replier (loop not blocked)
      ctx:reply("r.Doubled", { n = w.n * 2 })
      slow_done = true
    end)
    bus.after(0, function()
      local ok, err = pcall(bus.request, "r.Work", { n = 1 }, { timeout = 0.1 })
      timed_out = not ok and bus.is_timeout(err)
    end)
    assert.is_true(testing.run_until(function()
      return slow_done and host.captured_log():find("after the request timed out", 1, true)
    end))
    assert.is_true(timed_out)
    assert.matches("reply to request %x+%-[%x-]+ came %d+ ms after the request timed out: dropped",
      host.captured_log())
    bus.after(0, function() later = bus.request("r.Double", { n = 5 }, { timeout = 5 }).n end)
    assert.is_true(testing.run_until(function() return later ~= nil end))
    assert.equal(10, later) -- the bus goes on
    assert.is_true(testing.run_until(settled))
  end)

  it("chains conversation_id, related_to and the trace across three hops", function()
    bus.command("r.A")
    bus.command("r.B")
    bus.command("r.C")
    bus.endpoint { name = "r", routes = { ["r.A"] = "r", ["r.B"] = "r", ["r.C"] = "r" } }
    local seen = {}
    local function record(name)
      return function(_, ctx)
        seen[name] = { id = ctx.id, conv = ctx.conversation_id, rel = ctx.related_to,
                       tp = ctx.headers.traceparent }
      end
    end
    bus.handle("r.A", function(b, ctx) record("A")(b, ctx); bus.send("r.B", {}) end)
    bus.handle("r.B", function(b, ctx) record("B")(b, ctx); bus.send("r.C", {}) end)
    bus.handle("r.C", record("C"))
    bus.send("r.A", {})
    assert.is_true(testing.run_until(function() return seen.C ~= nil end))
    local A, B, C = seen.A, seen.B, seen.C
    require("support").assert_chain(A, B, C)
    local pattern = "^00%-(%x+)%-(%x+)%-(%x%x)$"
    local ta, sa, fa = A.tp:match(pattern)
    local tb, sb = B.tp:match(pattern)
    local tc, sc = C.tp:match(pattern)
    assert.equal(32, #ta)
    assert.equal(16, #sa)
    assert.equal("01", fa)
    assert.equal(ta, tb) -- one trace...
    assert.equal(ta, tc)
    assert.are_not.equal(sa, sb) -- ...a span per hop
    assert.are_not.equal(sb, sc)
  end)

  it("keeps a traceparent the sender gives and continues it", function()
    serve({ routes = { ["r.Work"] = "r", ["r.Double"] = "r" } })
    local given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    local first, reply_tp
    bus.handle("r.Work", function(_, ctx)
      first = ctx.headers.traceparent
      local _, rctx = bus.request("r.Double", { n = 1 }, { timeout = 5 })
      reply_tp = rctx.headers.traceparent
    end)
    bus.send("r.Work", { n = 1 }, { headers = { traceparent = given } })
    assert.is_true(testing.run_until(function() return reply_tp ~= nil end))
    assert.equal(given, first)
    assert.equal("00-4bf92f3577b34da6a3ce929d0e0e4736-", reply_tp:sub(1, 36))
    assert.are_not.equal(given, reply_tp)
  end)

  it("delivers ctx:reply to a plain send to the sender's queue and its handler", function()
    serve({ routes = { ["r.Double"] = "r" } })
    local got
    bus.handle("r.Doubled", function(d, ctx) got = { n = d.n, corr = ctx.correlation_id, queue = ctx.queue } end)
    bus.after(0, function() bus.send("r.Double", { n = 4 }) end)
    assert.is_true(testing.run_until(function() return got ~= nil end))
    assert.equal(8, got.n)
    assert.equal("r", got.queue)
    assert.is_not_nil(got.corr)
  end)

  it("refuses bus.request where it cannot wait, and bad requests, saying why", function()
    serve()
    assert.matches("may be used only inside a handler %(bus.handle%) or a timer",
      err_of(bus.request, "r.Double", { n = 1 }))
    local co_err, sort_err, event_err, opt_err, route_err
    bus.after(0, function()
      local co = coroutine.create(function() return bus.request("r.Double", { n = 1 }) end)
      co_err = select(2, coroutine.resume(co))
      sort_err = select(2, pcall(table.sort, { 3, 1, 2 }, function(a, b)
        bus.request("r.Double", { n = 1 })
        return a < b
      end))
      event_err = select(2, pcall(bus.request, "r.Happened", {}))
      opt_err = select(2, pcall(bus.request, "r.Double", { n = 1 }, { timeuot = 1 }))
      route_err = select(2, pcall(bus.request, "r.Doubled", { n = 1 }))
    end)
    assert.is_true(testing.run_until(function() return route_err ~= nil end))
    assert.matches("may be used only inside a handler", tostring(co_err), 1, true)
    assert.matches("cannot wait for a reply here", tostring(sort_err), 1, true)
    assert.matches("r.Happened is an event", tostring(event_err), 1, true)
    assert.matches("unknown option 'timeuot'", tostring(opt_err), 1, true)
    assert.matches("no route for r.Doubled", tostring(route_err), 1, true)
    local timeout_err
    bus.after(0, function()
      timeout_err = select(2, pcall(bus.request, "r.Double", { n = 1 }, { timeout = 0 }))
    end)
    assert.is_true(testing.run_until(function() return timeout_err ~= nil end))
    assert.matches("timeout must be a number of seconds > 0", tostring(timeout_err), 1, true)
    assert.is_true(testing.run_until(settled))
  end)

  it("makes rctx read-only and refuses to reply to a reply", function()
    serve()
    local reply_err, set_err
    bus.after(0, function()
      local _, rctx = bus.request("r.Double", { n = 1 }, { timeout = 5 })
      reply_err = select(2, pcall(rctx.reply, rctx, "r.Doubled", { n = 1 }))
      set_err = select(2, pcall(function() rctx.id = "x" end))
    end)
    assert.is_true(testing.run_until(function() return set_err ~= nil end))
    assert.matches("this is the ctx of a reply to bus.request", tostring(reply_err), 1, true)
    assert.matches("ctx is read-only", tostring(set_err), 1, true)
  end)

  it("parks a timer's send until the transport confirms it (RabbitMQ) or commits (SQLite)", function()
    serve({ routes = { ["r.Work"] = "r" } })
    local order, got, peak = {}, {}, 0
    bus.handle("r.Work", function(w) got[#got + 1] = w.n end)
    bus.after(0, function()
      for i = 1, 20 do bus.send("r.Work", { n = i }); order[#order + 1] = i end
    end)
    assert.is_true(testing.run_until(function()
      peak = math.max(peak, testing.counters().waiting)
      return #got == 20 and #order == 20
    end))
    table.sort(got)
    assert.same(order, got)
    if testing.transport() == "rabbitmq" then
      assert.equal(1, peak) -- the timer waited for confirms, one send at a time
    else
      assert.equal(0, peak) -- a SQLite commit is done when bus.send returns
    end
    assert.is_true(testing.run_until(settled))
  end)
end)
