#!/usr/bin/env bash
# RabbitMQ only: a foreign sender's bodies far over max_body (six 30 MiB messages against
# max_body = 4 MiB) are parked with the reason without the host ever holding them: its
# resident memory stays near an idle host's, and the good message after them is handled.
# RSS_BINARY=path measures another build (the release host) instead of $MOONBUS.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/big"
cat >"$WORK/big/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("big.Job", { n = "number" })
bus.endpoint { name = "big", max_body = 4 * 1024 * 1024, concurrency = 8 }
bus.handle("big.Job", function(p) bus.log.info("job %d", p.n) end)
LUA
export MOONBUS_LOG=info
[ -n "${RSS_BINARY:-}" ] && MOONBUS=$RSS_BINARY
start_host big "$WORK/big"
H=$LAST_PID
wait_for 20 host_ready big
rss() { ps -o rss= -p "$H" | tr -d ' '; }
idle=$(rss)
"$ROOT/build/tools/amqp_inject" "$MOONBUS_TRANSPORT" big 01900000-0000-7000-8000-00000000b001 \
  big.Job x moonbus.kind=command --body-mb 30 --count 6 &
INJ=$!
peak=$idle
for _ in $(seq 1 300); do # 30 s at most
  r=$(rss); [ -n "$r" ] && [ "$r" -gt "$peak" ] && peak=$r
  kill -0 $INJ 2>/dev/null || break
  sleep 0.1
done
wait $INJ
for _ in $(seq 1 50); do r=$(rss); [ -n "$r" ] && [ "$r" -gt "$peak" ] && peak=$r; sleep 0.1; done
echo "# host RSS: idle ${idle} KiB, peak ${peak} KiB while six 30 MiB messages arrived (max_body 4 MiB)"
"$ROOT/build/tools/amqp_inject" "$MOONBUS_TRANSPORT" big 01900000-0000-7000-8000-00000000b002 \
  big.Job '{"n":2}' moonbus.kind=command
wait_for 20 grep -q "job 2" "$WORK/big.log"
check "the host lives on" kill -0 $H
check "the good message after them is handled" grep -q "job 2" "$WORK/big.log"
wait_until 20 '[ "$(parked | wc -l)" -eq 6 ]'
parked >"$WORK/parked.txt"
check "all six are parked ($(wc -l <"$WORK/parked.txt") of 6)" test "$(wc -l <"$WORK/parked.txt")" -eq 6
check "each with the reason naming max_body" \
  test "$(grep -c "31457280 bytes, over the limit of 4194304 bytes (max_body)" "$WORK/parked.txt")" -eq 6
check "the endpoint queue is empty" test "$(depth big)" = 0
check "resident memory grew by less than 60 MiB (${idle} -> ${peak} KiB)" test $((peak - idle)) -lt 61440
kill -TERM $H
wait $H
exit $TAP_FAILED
