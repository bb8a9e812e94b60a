-- bus.shared(name): the per-process store a script keeps across hot reloads (host/shared.c,
-- bindings/lshared.c). Values round-trip with their types (tables as JSON), misuse raises
-- naming shared:METHOD, the bound is an error value of kind too_large, incr follows
-- ngx.shared.DICT:incr. In module mode the store belongs to the bus: testing.fresh()
-- empties it.
local testing = require "moonbus.testing"
local cjson = require "cjson"

-- The message of the error fn raises (called as a method from Lua, so with a position).
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "it should have raised")
  return tostring(err)
end

describe("bus.shared", function()
  local bus, shelf

  before_each(function()
    bus = testing.fresh()
    shelf = bus.shared("shelf")
  end)

  it("round-trips strings, integers, floats and booleans with their types", function()
    local bytes = "a\0b\255"
    assert.is_true(shelf:set("s", bytes))
    shelf:set("empty", "")
    shelf:set("i", 42)
    shelf:set("big", math.maxinteger)
    shelf:set("f", 0.1)
    shelf:set("whole", 3.0)
    shelf:set("yes", true)
    shelf:set("no", false)
    assert.equal(bytes, shelf:get("s"))
    assert.equal("", shelf:get("empty"))
    assert.equal("integer", math.type(shelf:get("i")))
    assert.equal(42, shelf:get("i"))
    assert.equal(math.maxinteger, shelf:get("big"))
    assert.equal(0.1, shelf:get("f"))
    assert.equal("float", math.type(shelf:get("whole")))
    assert.is_true(shelf:get("yes"))
    assert.is_false(shelf:get("no"))
    assert.is_nil(shelf:get("nothing"))
  end)

  it("stores tables as JSON: a value read is a copy", function()
    local book = { title = "Dune", tags = { "sf", "classic" }, loaned = { to = "ann", days = 14 } }
    assert.is_true(shelf:set("book", book))
    local got = shelf:get("book")
    assert.same(book, got)
    assert.are_not.equal(book, got)
    got.title = "changed"
    assert.equal("Dune", shelf:get("book").title)
    shelf:set("empty", {})
    assert.same({}, shelf:get("empty"))
    shelf:set("list", { 1, 2, 3 })
    assert.same({ 1, 2, 3 }, shelf:get("list"))
  end)

  it("gives the same data to every handle of a name, and keeps names apart", function()
    shelf:set("k", "one")
    assert.equal("one", bus.shared("shelf"):get("k"))
    assert.is_nil(bus.shared("other"):get("k"))
    assert.equal('moonbus.shared("shelf")', tostring(shelf))
  end)

  it("deletes with nil or delete, counts, lists and flushes keys", function()
    for i = 1, 1500 do shelf:set("k" .. i, i) end
    assert.equal(1500, shelf:count())
    assert.equal(1024, #shelf:keys())
    assert.equal(10, #shelf:keys(10))
    local all = shelf:keys(0)
    assert.equal(1500, #all)
    table.sort(all)
    assert.equal("k1", all[1])
    shelf:set("k1", nil)
    shelf:delete("k2")
    shelf:delete("never there")
    assert.is_nil(shelf:get("k1"))
    assert.is_nil(shelf:get("k2"))
    assert.equal(1498, shelf:count())
    shelf:flush_all()
    assert.equal(0, shelf:count())
    assert.same({}, shelf:keys())
  end)

  it("incr adds numbers, starting a missing key at init, as ngx.shared.DICT:incr", function()
    assert.equal(1, shelf:incr("hits", 1, 0))
    assert.equal(11, shelf:incr("hits", 10))
    assert.equal("integer", math.type(shelf:get("hits")))
    assert.equal(11.5, shelf:incr("hits", 0.5))
    assert.equal(-3, shelf:incr("down", -5, 2))
    local v, err = shelf:incr("missing", 1)
    assert.is_nil(v)
    assert.equal("not_found", bus.error_kind(err))
    assert.matches("shared:incr: no key 'missing'", tostring(err))
    assert.is_nil(shelf:get("missing"))
    shelf:set("name", "ann")
    assert.matches("shared:incr: the value of 'name' is a string, not a number",
      raised(function() shelf:incr("name", 1) end))
    assert.matches("bad argument #2 to 'shared:incr' %(n must be a number, got string%)",
      raised(function() shelf:incr("hits", "1") end))
    assert.matches("bad argument #3 to 'shared:incr' %(init must be a number, got boolean%)",
      raised(function() shelf:incr("hits", 1, true) end))
  end)

  it("raises on misuse, naming shared:METHOD and the key", function()
    assert.matches("shared_spec.lua:%d+: shared:set: call it with a colon",
      raised(function() shelf.set("k", 1) end))
    assert.matches("bad argument #1 to 'shared:get' %(the key must be a string of 1%-65535 bytes, got number%)",
      raised(function() shelf:get(1) end))
    assert.matches("bad argument #1 to 'shared:set' %(the key must be a string",
      raised(function() shelf:set("", 1) end))
    assert.matches("bad argument #2 to 'shared:set' %(the value must be a string, number, boolean, table or nil, got function%)",
      raised(function() shelf:set("k", print) end))
    assert.matches("shared:set: the table for key 'fn' cannot be stored as JSON: Cannot serialise function",
      raised(function() shelf:set("fn", { f = print }) end))
    local cycle = {}
    cycle.self = cycle
    assert.matches("shared:set: the table for key 'cycle' cannot be stored as JSON",
      raised(function() shelf:set("cycle", cycle) end))
    assert.matches("shared:set: the table for key 'ud' cannot be stored as JSON",
      raised(function() shelf:set("ud", { io.stdout }) end))
    assert.matches("bad argument #1 to 'bus.shared' %(a dictionary's name",
      raised(function() bus.shared(42) end))
    assert.matches("bad argument #1 to 'bus.shared'",
      raised(function() bus.shared(string.rep("n", 256)) end))
    assert.matches("shared_memory", raised(function() bus.shared("x", { size = 1024 }) end))
    assert.equal(0, shelf:count())
  end)

  it("refuses a set past shared_memory with a too_large error value, changing nothing", function()
    bus.endpoint { name = "s", shared_memory = 4096 }
    assert.is_true(shelf:set("k", "small"))
    local ok, err = shelf:set("k", string.rep("x", 5000))
    assert.is_nil(ok)
    assert.equal("too_large", bus.error_kind(err))
    assert.matches("^shared:set: .*over its bound of 4096 %(shared_memory%)", tostring(err))
    assert.equal("small", shelf:get("k"))
    local n, stored, why = 0, nil, nil
    repeat
      n = n + 1
      stored, why = bus.shared("many"):set("key" .. n, string.rep("v", 100))
    until not stored
    assert.equal("too_large", bus.error_kind(why))
    assert.is_true(n > 5)
    repeat
      n = n + 1
      stored = bus.shared("many"):set("i" .. n, n)
    until not stored
    local v, e = shelf:incr("a longer key than the last", 1, 0)
    assert.is_nil(v)
    assert.equal("too_large", bus.error_kind(e))
    bus.shared("many"):flush_all()
    assert.is_true(shelf:set("k", string.rep("x", 1000)))
    assert.matches("shared_memory must be a whole number",
      raised(function() testing.fresh().endpoint { name = "t", shared_memory = 10 } end))
  end)

  it("is shared by handlers, and testing.fresh() empties it (a new bus)", function()
    bus.command("s.Hit")
    bus.endpoint { name = "s", routes = { ["s.Hit"] = "s" } }
    bus.handle("s.Hit", function(body)
      local hits = bus.shared("counters")
      hits:incr("hits", 1, 0)
      hits:set("last", body)
    end)
    for i = 1, 5 do bus.send("s.Hit", { n = i }) end
    assert.is_true(testing.run_until(function() return bus.shared("counters"):get("hits") == 5 end, 10))
    assert.equal("integer", math.type(bus.shared("counters"):get("hits")))
    assert.is_table(bus.shared("counters"):get("last"))
    local fresh = testing.fresh()
    assert.is_nil(fresh.shared("counters"):get("hits"))
    assert.is_nil(shelf:get("hits")) -- an old handle reads the new bus's store
    assert.equal(cjson.encode({}), cjson.encode(fresh.shared("counters"):keys()))
  end)
end)
