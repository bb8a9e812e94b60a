-- send_many.lua DEST TYPE FROM TO [NOTE_BYTES] — a producer for system tests and benches:
-- stock lua5.4 with build/moonbus.so sends the commands TYPE { n = FROM..TO } (with a note
-- of NOTE_BYTES bytes if given) to queue DEST from a timer of a fresh bus on
-- $MOONBUS_TRANSPORT, each confirmed before the next, and prints how many it sent. The
-- contracts module that declares TYPE must be on LUA_PATH.
local testing = require "moonbus.testing"
local dest, type, from, to, note_bytes = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
assert(dest and type and from and to, "usage: send_many.lua DEST TYPE FROM TO [NOTE_BYTES]")
local bus = testing.fresh(os.getenv("MOONBUS_TRANSPORT"))
require "contracts"
bus.endpoint { name = "sender_" .. dest, routes = { [type] = dest }, audit = false }
local note = note_bytes and string.rep("x", note_bytes) or nil
local sent, done, failure = 0, false, nil
bus.after(0, function()
  local ok, err = pcall(function()
    for i = from, to do
      bus.send(type, { n = i, note = note })
      sent = sent + 1
    end
  end)
  failure, done = not ok and tostring(err) or nil, true
end)
assert(testing.run_until(function() return done end, 600), "sent only " .. sent .. " in 600 s")
assert(not failure, failure)
print(sent)
