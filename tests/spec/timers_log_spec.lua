-- bus.after, bus.every (timers run as coroutines; sends from them dispatch at once) and
-- bus.log.
local testing = require "moonbus.testing"
local support = require "support"

describe("timers", function()
  local bus
  before_each(function()
    bus = testing.fresh()
    bus.command("t.Tick")
    bus.endpoint { name = "t", routes = { ["t.Tick"] = "t" } }
  end)

  it("bus.after runs once and can send", function()
    local fired, got = 0, 0
    bus.after(0.05, function() fired = fired + 1; bus.send("t.Tick", {}) end)
    bus.handle("t.Tick", function() got = got + 1 end)
    testing.run_for(0.5)
    assert.equal(1, fired)
    assert.equal(1, got)
    assert.equal(0, testing.counters().timers)
  end)

  it("bus.log lines are captured for tests whatever MOONBUS_LOG filters out", function()
    local host = testing.host
    host.capture_log("debug")
    bus.log.debug("captured at debug %d", 42)
    bus.log.info("captured at info")
    local got = host.captured_log()
    host.capture_log(false)
    assert.matches("debug [t] captured at debug 42", got, 1, true)
    assert.matches("info  [t] captured at info", got, 1, true)
  end)

  it("run_until polls a predicate on state outside the bus while the bus is idle", function()
    local start = testing.host.clock()
    local function between() -- true from 0.2 s to 1.5 s: only a poll sees it
      local t = testing.host.clock() - start
      return t > 0.2 and t < 1.5
    end
    assert.is_true(testing.run_until(between, 3)) -- not the 3 s deadline
  end)

  it("bus.log with one argument logs it as written; a bad format names bus.log", function()
    local host = testing.host
    host.capture_log("debug")
    bus.log.info("discount 100% sure")
    local ok, err = pcall(function() bus.log.warn("%d items", "many") end)
    local got = host.captured_log()
    host.capture_log(false)
    assert.matches("info  [t] discount 100% sure", got, 1, true)
    assert.is_false(ok)
    assert.matches("timers_log_spec.lua:%d+: bus.log.warn: .*number expected", tostring(err))
  end)

  it("bus.log turns a trailing table into fields, keys sorted, after the text", function()
    local host = testing.host
    host.capture_log("debug")
    bus.log.info("paid", { order = "o-42", n = 3, ok = true, note = "two words", lines = { 1, 2 } })
    bus.log.info("x %d of %s", 5, "y", { k = "v" })   -- more arguments than the format takes
    bus.log.info("100% off", { sku = "s-1" })          -- one message and a table: verbatim
    bus.log.info("user %s", setmetatable({}, { __tostring = function() return "ann" end }))
    bus.log.info("t %s", { a = 1 }, { k = 2 })         -- the table the format takes stays an argument
    local got = host.captured_log()
    host.capture_log(false)
    assert.matches('info  [t] paid lines=[1,2] n=3 note="two words" ok=true order=o-42\n', got, 1, true)
    assert.matches("info  [t] x 5 of y k=v\n", got, 1, true)
    assert.matches("info  [t] 100% off sku=s-1\n", got, 1, true)
    assert.matches("info  [t] user ann\n", got, 1, true)
    assert.matches("info  %[t%] t table: 0x%x+ k=2\n", got)
  end)

  it("bus.log refuses a field whose key is not a string, naming bus.log.LEVEL", function()
    local function err_of(f)
      local ok, err = pcall(f)
      assert.is_false(ok)
      return tostring(err)
    end
    assert.matches("timers_log_spec.lua:%d+: bus.log.info: a field's key must be a string %(got number%)",
      err_of(function() bus.log.info("paid", { "o-42" }) end))
    assert.matches("timers_log_spec.lua:%d+: bus.log.warn: a field's key may not be .*id.*%(got 'id'%)",
      err_of(function() bus.log.warn("paid", { id = "o-42" }) end))
    assert.matches("bus.log.error: a field's key is letters, digits, '_', '.' and '-' (got 'a b')",
      err_of(function() bus.log.error("paid", { ["a b"] = 1 }) end), 1, true)
  end)

  it("bus.every repeats until cancelled", function()
    local n = 0
    local timer
    timer = bus.every(0.02, function()
      n = n + 1
      if n == 3 then timer:cancel() end
    end)
    testing.run_for(0.3)
    assert.equal(3, n)
    assert.equal(0, testing.counters().timers)
  end)

  it("a failing tick is logged and the timer goes on", function()
    testing.host.capture_log("error")
    local n = 0
    local t = bus.every(0.02, function() n = n + 1; error("tick failed " .. n) end)
    testing.run_for(0.2)
    t:cancel()
    local log = testing.host.captured_log()
    testing.host.capture_log(false)
    assert.is_true(n >= 3)
    assert.equal(0, testing.counters().coroutines)
    -- one error line per failed tick, naming the timer, where it was made, and the error
    local lines = 0
    for line in log:gmatch("[^\n]+") do
      if line:find("bus.every(0.02) at ", 1, true) and line:find("timers_log_spec.lua:", 1, true) then
        lines = lines + 1
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z error %[t%] bus%.every%(0%.02%) at .* failed: .*tick failed " .. lines .. "$", line)
      end
    end
    assert.equal(n, lines)
  end)

  it("refuses bad arguments", function()
    assert.matches("bus.every: seconds must be a number > 0", support.err_of(bus.every, 0, function() end), 1, true)
    assert.matches("bus.after: seconds must be a number >= 0", support.err_of(bus.after, -1, function() end), 1, true)
    assert.matches("bad argument #2 to 'moonbus.after' (function expected, got string)",
      support.err_of(bus.after, 1, "not a function"), 1, true)
  end)
end)

-- bus.log writes to stderr, where a user reads it: a child lua5.4 with MOONBUS_LOG=debug
-- logs at every level, at the top of its script and inside a handler, and the test reads
-- what it wrote.
describe("bus.log", function()
  local function run_child(code, env)
    local dir = testing.tmpdir()
    local script = dir .. "/child.lua"
    local f = assert(io.open(script, "w"))
    f:write("local testing = require 'moonbus.testing'\n",
      "local bus = testing.fresh('sqlite://", dir, "/bus.db?synchronous=normal')\n", code)
    f:close()
    local ok = os.execute((env or "") .. " MOONBUS_LOG=debug lua5.4 " .. script .. " 2>" .. dir .. "/stderr")
    local err = assert(io.open(dir .. "/stderr")):read("a")
    return ok, err
  end

  it("has the four levels and formats like string.format, on stderr", function()
    local ok, err = run_child([[
      bus.endpoint { name = "lg" }
      for _, level in ipairs { "debug", "info", "warn", "error" } do
        bus.log[level]("value %d of %s at %s", 1, "x", level)
      end
    ]])
    assert.is_true(ok, err)
    for _, level in ipairs { "debug", "info", "warn", "error" } do
      local pattern = "\n?%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z " .. level .. "%s* %[lg%] value 1 of x at " .. level .. "\n"
      assert.matches(pattern, err)
    end
    local _, count = err:gsub("value 1 of x", "")
    assert.equal(4, count)
  end)

  local handler_code = [[
      bus.command("lg.Do", { n = "number" })
      bus.command("lg.Next", {})
      bus.endpoint { name = "lg", routes = { ["lg.Do"] = "lg", ["lg.Next"] = "lg" } }
      local id, conv, next_conv
      bus.handle("lg.Do", function(d, ctx)
        id, conv = ctx.id, ctx.conversation_id
        bus.log.warn("doing %d", d.n, { step = "first" })
        bus.send("lg.Next", {})
      end)
      bus.handle("lg.Next", function(_, ctx) next_conv = ctx.conversation_id; bus.log.info("next") end)
      bus.after(0, function() bus.log.info("a tick", { n = 1 }) end)
      bus.send("lg.Do", { n = 7 })
      assert(testing.run_until(function() return next_conv ~= nil end))
      testing.run_for(0.1)
      io.stderr:write("child saw id ", id, " conv ", conv, " next ", next_conv, "\n")
  ]]

  it("tags a line of a handler with the message id, type and conversation id", function()
    local ok, err = run_child(handler_code)
    assert.is_true(ok, err)
    local id, conv, next_conv = err:match("child saw id (%S+) conv (%S+) next (%S+)")
    assert.is_not_nil(id, err)
    assert.equal(conv, next_conv) -- a message sent by a handler is in its conversation
    assert.matches(" warn  [lg] doing 7 step=first id=" .. id .. " type=lg.Do conv=" .. conv .. "\n", err, 1, true)
    assert.matches(" info  %[lg%] next id=%S+ type=lg%.Next conv=" .. (conv:gsub("%-", "%%-")) .. "\n", err)
    -- the host's own line about the message carries the conversation too
    assert.matches(" id=" .. id .. " type=lg.Do conv=" .. conv .. "\n", err:gsub("[^\n]*doing 7[^\n]*\n", ""), 1, true)
    -- a timer's line is about no message
    assert.matches(" info  [lg] a tick n=1\n", err, 1, true)
  end)

  it("writes one JSON object per line with MOONBUS_LOG_FORMAT=json", function()
    local cjson = require "cjson"
    local ok, err = run_child(handler_code .. [[
      bus.log.info("forged\n{\"level\":\"error\"}\255", { q = 'say "hi"', t = { a = 1 } })
    ]], "MOONBUS_LOG_FORMAT=json")
    assert.is_true(ok, err)
    local id, conv = err:match("child saw id (%S+) conv (%S+)")
    local lines, of_handler, timer = {}, 0, nil
    for line in err:gmatch("[^\n]+") do
      if not line:find("^child saw") then
        local decoded_ok, v = pcall(cjson.decode, line)
        assert.is_true(decoded_ok, line)
        lines[#lines + 1] = v
        if v.id == id then
          of_handler = of_handler + 1
          assert.equal(conv, v.conversation_id)
          assert.equal("lg.Do", v.type)
        end
        if v.msg == "a tick" then timer = v end
        if v.msg == "doing 7" then assert.equal("first", v.step) end
        if v.msg and v.msg:find("^forged") then
          assert.equal('forged\n{"level":"error"}\239\191\189', v.msg)
          assert.equal('say "hi"', v.q)
          assert.equal(1, v.t.a)
        end
      end
    end
    assert.is_true(#lines >= 4)
    assert.is_true(of_handler >= 2) -- bus.log and the host's "handled" line
    assert.is_nil(timer.id)
    assert.is_nil(timer.conversation_id)
    assert.equal(1, timer.n)
  end)

  it("warns about an unknown MOONBUS_LOG_FORMAT and writes text", function()
    local ok, err = run_child([[bus.log.info("still text")]], "MOONBUS_LOG_FORMAT=xml")
    assert.is_true(ok, err)
    assert.matches("warn  [moonbus] MOONBUS_LOG_FORMAT=xml is neither text nor json: logging text", err, 1, true)
    assert.matches(" info  [moonbus] still text\n", err, 1, true)
  end)

  it("refuses a format that does not fit its arguments", function()
    local bus = testing.fresh()
    assert.matches("bad argument #2 to 'string.format' (number expected, got string)", support.err_of(bus.log.info, "%d", "not a number"), 1, true)
  end)
end)
