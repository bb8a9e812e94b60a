-- bus.command / bus.event / bus.message: declaring types, schemas, and the errors that
-- name the culprit.
local testing = require "moonbus.testing"

describe("contracts", function()
  local bus
  before_each(function() bus = testing.fresh() end)

  it("declares each kind and returns the type name", function()
    assert.equal("a.Cmd", bus.command("a.Cmd", { id = "string" }))
    assert.equal("a.Evt", bus.event("a.Evt"))
    assert.equal("a.Msg", bus.message("a.Msg", { n = "number?" }))
  end)

  it("allows the same declaration twice (a shared module required again)", function()
    bus.command("a.Cmd")
    assert.has_no.errors(function() bus.command("a.Cmd") end)
  end)

  it("refuses a second kind for one type, naming the type and its kind", function()
    bus.command("a.Thing")
    assert.has_error(function() bus.event("a.Thing") end,
      "bus.event: a.Thing is already declared as a command; a type has one kind")
  end)

  it("refuses an unknown field type in a schema, naming type and field", function()
    local ok, err = pcall(bus.command, "a.Bad", { total = "int" })
    assert.is_false(ok)
    assert.matches("schema of a.Bad: field 'total' has type 'int'", err, 1, true)
  end)

  it("refuses type names with spaces or nothing in them", function()
    assert.matches("bus.command: type name 'a b' has a space or a byte that is not printable ASCII",
      require("support").err_of(bus.command, "a b"), 1, true)
    local ok, err = pcall(bus.event, "")
    assert.is_false(ok)
    assert.matches("bus.event: a type name has 1 to 255 characters", err, 1, true)
  end)

  it("refuses a schema that is not a table", function()
    local ok, err = pcall(bus.command, "a.X", "string")
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'moonbus.command' (table expected, got string)", err, 1, true)
  end)
end)
