#!/usr/bin/env bash
# Two host processes compete on one queue: 10 000 commands, each handled exactly once,
# and both processes take part.
. "$(dirname "$0")/lib.sh"
N=${N:-10000}
mkdir -p "$WORK/worker"
cat >"$WORK/worker/endpoint.lua" <<LUA
local bus = require "moonbus"
bus.command("work.Kick", { n = "number" })
bus.command("work.Item", { n = "number" })
bus.endpoint { name = "worker", routes = { ["work.Kick"] = "worker", ["work.Item"] = "worker" } }
local out = assert(io.open(os.getenv("OUT"), "a"))
bus.handle("work.Kick", function(kick)
  for i = 1, kick.n do bus.send("work.Item", { n = i }) end
end)
bus.handle("work.Item", function(item, ctx)
  out:write(item.n, " ", ctx.id, "\n")
  out:flush()
end)
LUA
export MOONBUS_LOG=warn
OUT=$WORK/a.txt start_host a "$WORK/worker"
A=$LAST_PID
OUT=$WORK/b.txt start_host b "$WORK/worker"
B=$LAST_PID
wait_for 10 host_ready a
"$MOONBUS" send worker work.Kick "{\"n\": $N}" >/dev/null
check "the kick command is accepted" test $? -eq 0
total() { echo $(( $(lines "$WORK/a.txt") + $(lines "$WORK/b.txt") )); }
wait_until 240 '[ "$(total)" -ge "$N" ]'
sleep 1
check "$N commands handled in all ($(total))" test "$(total)" -eq "$N"
dups=$(cat "$WORK/a.txt" "$WORK/b.txt" | awk '{print $1}' | sort | uniq -d | wc -l)
check "no command handled twice ($dups duplicates)" test "$dups" -eq 0
uniq_n=$(cat "$WORK/a.txt" "$WORK/b.txt" | awk '{print $1}' | sort -u | wc -l)
check "every command 1..$N handled ($uniq_n distinct)" test "$uniq_n" -eq "$N"
check "process a took part ($(lines "$WORK/a.txt"))" test "$(lines "$WORK/a.txt")" -gt 0
check "process b took part ($(lines "$WORK/b.txt"))" test "$(lines "$WORK/b.txt")" -gt 0
check "the queue is empty" test "$(depth worker)" -eq 0
kill -TERM $A $B
wait $A; ra=$?
wait $B; rb=$?
check "both hosts exit 0 on SIGTERM ($ra, $rb)" test $ra -eq 0 -a $rb -eq 0
check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$WORK/a.log' '$WORK/b.log'"
exit $TAP_FAILED
