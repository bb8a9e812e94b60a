#!/usr/bin/env bash
# A run/stop cycle of the release host under valgrind: messages handled, a timer fired,
# a failure released, SIGTERM, and no leak or memory error.
. "$(dirname "$0")/lib.sh"
if ! command -v valgrind >/dev/null; then
  not_ok "valgrind is installed (scripts/install-deps.sh installs it)"
  exit 1
fi
mkdir -p "$WORK/v"
cat >"$WORK/v/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("v.Do", { n = "number" })
bus.event("v.Done", { n = "number" })
bus.endpoint { name = "v", routes = { ["v.Do"] = "v" }, publishes = { "v.Done" } }
bus.handle("v.Do", function(d, ctx)
  if d.n == 3 and ctx.attempt == 1 then error("first try fails") end
  bus.publish("v.Done", { n = d.n })
end)
bus.handle("v.Done", function(d) bus.log.info("done %d", d.n) end)
bus.after(0.1, function() for i = 1, 5 do bus.send("v.Do", { n = i }) end end)
bus.every(0.2, function() end)
LUA
valgrind --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
  "$ROOT/build/moonbus" run "$WORK/v" >"$WORK/out" 2>"$WORK/vg.log" &
V=$!
PIDS+=("$V")
wait_until 60 '[ "$(grep -c "done " "$WORK/vg.log")" -ge 5 ]'
check "the host handled every message under valgrind" test "$(grep -c 'done ' "$WORK/vg.log")" -ge 5
kill -TERM $V
wait $V; rc=$?
check "valgrind reports no leak or memory error (exit $rc)" test $rc -eq 0
grep -E "definitely lost|indirectly lost|ERROR SUMMARY" "$WORK/vg.log" | sed 's/^/# /'
exit $TAP_FAILED
