#!/usr/bin/env bash
# lua-cjson builds its output outside the Lua allocator, so the memory budget cannot see
# it: a body of 200 references to one 1 MiB string would encode to 200 MiB of JSON. What
# one send may encode is bounded by max_body before cjson starts: the handler fails with an
# error naming the limit, and the host's peak resident memory stays small.
. "$(dirname "$0")/lib.sh"
echo "# work: $WORK"
mkdir -p "$WORK/eb"
cat >"$WORK/eb/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("eb.Do", { refs = "number" })
bus.command("eb.Big", { list = "table" })
bus.endpoint { name = "eb", memory_budget = 16 * 2^20, routes = { ["eb.Big"] = "eb" },
  retries = { immediate = 0, delayed = 0 } }
bus.handle("eb.Do", function(d)
  local s, list = string.rep("x", 2^20), {}
  for i = 1, d.refs do list[i] = s end
  bus.send("eb.Big", { list = list })
  bus.log.info("sent %d references", d.refs)
end)
bus.handle("eb.Big", function(d) bus.log.info("got %d", #d.list) end)
LUA
export MOONBUS_LOG=info
first_start "$WORK/eb"
start_host eb "$WORK/eb"
pid=$LAST_PID
wait_for 10 host_ready eb
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
before=$(hwm "$pid")
"$MOONBUS" send eb eb.Do '{"refs":200}' >/dev/null
wait_until 30 '[ "$(parked | grep -c .)" -ge 1 ] || ! kill -0 $pid 2>/dev/null'
after=$(hwm "$pid" 2>/dev/null || echo 0)
echo "# peak resident memory of the host: $before kB before, $after kB after the 200-reference send"
check "the send of 200 references to a 1 MiB string fails, naming max_body" \
  grep -q '"refs":200.*would encode to more than [0-9]* bytes of JSON.*max_body' <<<"$(parked)"
check "the host's peak resident memory grew by less than 48 MiB ($before -> $after kB)" \
  test "$after" -gt 0 -a $((after - before)) -lt 49152
"$MOONBUS" send eb eb.Do '{"refs":3}' >/dev/null
wait_until 20 'grep -q "got 3" "$WORK/eb.log"'
check "a body under max_body made of repeated references is still sent" grep -q "got 3" "$WORK/eb.log"
check "the host lives" kill -0 "$pid"
kill -TERM "$pid"
wait "$pid"
check "and stops cleanly (exit $?)" test $? -eq 0
exit $TAP_FAILED
