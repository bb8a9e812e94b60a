-- The LuaLS definitions in types/ (editor completion and checks) cover what the C module and
-- the test drivers really export: a function or ctx field added without its definition
-- fails here.
local testing = require "moonbus.testing"

local root = assert(os.getenv("MOONBUS_ROOT"), "MOONBUS_ROOT is the repository")

local function read(path)
  local f = assert(io.open(root .. "/" .. path))
  local text = f:read("a")
  f:close()
  return text
end

local function plain(s) return (s:gsub("%p", "%%%0")) end

-- The names of t's values of type kind that text lacks as `prefix.NAME(` (or `prefix:NAME(`).
local function missing(t, kind, text, prefix)
  local lacking = {}
  for name, v in pairs(t) do
    if type(v) == kind and not text:find("function " .. plain(prefix) .. "[.:]" .. plain(name) .. "%(") then
      lacking[#lacking + 1] = name
    end
  end
  table.sort(lacking)
  return lacking
end

describe("the LuaLS definitions", function()
  local meta = read("types/moonbus.lua")
  local meta_testing = read("types/moonbus_testing.lua")

  it("define every function of the moonbus module and of bus.log", function()
    local bus = testing.fresh()
    assert.same({}, missing(bus, "function", meta, "bus"))
    assert.same({}, missing(bus.log, "function", meta, "Log"))
    assert.truthy(meta:find("---@field version string", 1, true))
  end)

  it("define every method of a bus.shared dictionary", function()
    local bus = testing.fresh()
    local methods = getmetatable(bus.shared("d")).__index
    assert.same({}, missing(methods, "function", meta, "Shared"))
  end)

  it("define every function of moonbus.testing and moonbus.host", function()
    assert.same({}, missing(testing, "function", meta_testing, "testing"))
    assert.same({}, missing(testing.host, "function", meta_testing, "host"))
  end)

  it("define every field of ctx", function()
    local bus = testing.fresh()
    bus.command("d.Do")
    bus.endpoint { name = "d", routes = { ["d.Do"] = "d" } }
    local listed
    bus.handle("d.Do", function(_, ctx)
      local _, err = pcall(function() return ctx.no_such_field end)
      listed = tostring(err):match("fields: ([^;]+);")
    end)
    bus.send("d.Do", {})
    assert.is_true(testing.run_until(function() return listed ~= nil end))
    local context = meta:match("---@class moonbus%.Context\n(.-)\nlocal Context")
    for field in listed:gmatch("[%w_]+") do
      assert.truthy(context:find("---@field " .. field .. "%??%s"), "ctx." .. field .. " is not defined")
    end
    assert.truthy(meta:find("function Context:reply(", 1, true))
  end)
end)
