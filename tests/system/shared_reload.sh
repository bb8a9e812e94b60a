#!/usr/bin/env bash
# bus.shared survives a hot reload, and only a reload (README "State across reloads"): a
# handler counts its messages twice, in bus.shared("counters") and in a module-level Lua
# variable, and keeps the last body (a table) in bus.shared. After a save that only adds a
# comment (a reload), the shared counter goes on from where it was and the table is still
# there, while the module-level count starts again at 1. A restart empties the store.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/counter"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("c.Hit", { n = "number" })
LUA
cat >"$WORK/counter/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "counter", audit = false, concurrency = 1 }
local out = assert(io.open(os.getenv("RECORDS"), "a"))
local seen = 0 -- module-level: starts again at each reload
bus.handle("c.Hit", function(hit)
  local counters = bus.shared("counters")
  seen = seen + 1
  local total = counters:incr("hits", 1, 0)
  local last = counters:get("last")
  counters:set("last", hit)
  out:write(string.format("n=%d shared=%d module=%d last=%s\n", hit.n, total, seen,
    last and string.format("%d", last.n) or "none"))
  out:flush()
end)
LUA
RECORDS=$WORK/records.txt
export RECORDS

start_host counter "$WORK/counter"
wait_for 10 host_ready counter
send_many counter c.Hit 1 3 >/dev/null
check "generation 1 handles 3 hits" wait_until 20 "[ \$(lines $RECORDS) -ge 3 ]"

echo "-- a comment: the save reloads the script" >>"$WORK/counter/endpoint.lua"
check "the save is reloaded as generation 2" wait_until 20 "grep -q 'generation 2 swapped' $WORK/counter.log"
send_many counter c.Hit 4 5 >/dev/null
check "generation 2 handles 2 more" wait_until 20 "[ \$(lines $RECORDS) -ge 5 ]"
sed 's/^/# /' "$RECORDS"
expected="n=1 shared=1 module=1 last=none
n=2 shared=2 module=2 last=1
n=3 shared=3 module=3 last=2
n=4 shared=4 module=1 last=3
n=5 shared=5 module=2 last=4"
check "the shared counter and table go on across the reload; the module-level count starts again" \
  test "$(cat "$RECORDS")" = "$expected"

kill -TERM "$LAST_PID"
wait "$LAST_PID"
check "the host stops cleanly (exit $?)" test $? -eq 0
start_host counter2 "$WORK/counter"
wait_for 10 host_ready counter2
send_many counter c.Hit 6 6 >/dev/null
check "a restarted host handles the next hit" wait_until 20 "[ \$(lines $RECORDS) -ge 6 ]"
check "a restart empties bus.shared: $(tail -1 "$RECORDS")" \
  test "$(tail -1 "$RECORDS")" = "n=6 shared=1 module=1 last=none"
kill -TERM "$LAST_PID"
wait "$LAST_PID"
check "the restarted host stops cleanly (exit $?)" test $? -eq 0
exit $TAP_FAILED
