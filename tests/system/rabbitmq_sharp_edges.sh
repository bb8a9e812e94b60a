#!/usr/bin/env bash
# RabbitMQ only: the sharp edges of rabbitmq-c 0.11 that the host stands in front of.
#  - a delivery whose header table is nested 15 000 levels deep, or holds a key twice, is
#    parked with the reason and logged with its id; the host lives on;
#  - a broker that blocks publishing (memory alarm): handlers still run, their messages
#    wait, nothing is published on the blocked connection, and all of it goes out once the
#    broker unblocks;
#  - a broker that stalls (SIGSTOP): the host notices the missed heartbeats, its loop keeps
#    running (a timer keeps ticking), and it reconnects when the broker comes back.
. "$(dirname "$0")/lib.sh"
ctl() { bash "$ROOT/scripts/rabbitmq.sh" ctl "$@" >/dev/null 2>&1; }
count() { grep -c "$1" "$WORK/$2.log" 2>/dev/null || true; }
mkdir -p "$WORK/edge"
cat >"$WORK/edge/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("edge.Ping", { n = "number" })
bus.command("edge.Pong", { n = "number" })
bus.endpoint { name = "edge", routes = { ["edge.Pong"] = "edge" } }
bus.handle("edge.Ping", function(p)
  bus.log.info("ping %d", p.n)
  bus.send("edge.Pong", { n = p.n })
end)
bus.handle("edge.Pong", function(p) bus.log.info("pong %d", p.n) end)
bus.every(0.2, function() bus.log.info("tick") end)
LUA
export MOONBUS_LOG=info
URL=$MOONBUS_TRANSPORT
ping() { "$ROOT/build/tools/amqp_inject" "$URL" edge "01900000-0000-7000-8000-0000000000$1" edge.Ping "{\"n\":$1}" moonbus.kind=command "${@:2}"; }

# 1. headers rabbitmq-c decodes without limits
start_host edge "$WORK/edge"
H=$LAST_PID
wait_for 20 host_ready edge
ping 01 --deep 15000
ping 02 --dup moonbus.kind=event
ping 03
wait_until 20 '[ "$(parked | wc -l)" -eq 2 ]'
parked >"$WORK/parked.txt"
check "a 15 000-level nested header table is parked with the reason" \
  grep -q "^01900000-0000-7000-8000-000000000001.*nested deeper than 8 levels" "$WORK/parked.txt"
check "a header key sent twice is parked with the reason" \
  grep -q "^01900000-0000-7000-8000-000000000002.*'moonbus.kind' appears twice" "$WORK/parked.txt"
check "both are logged with their ids" \
  test "$(grep -c "cannot be handled: malformed envelope.*id=01900000-0000-7000-8000-00000000000[12]" "$WORK/edge.log")" -eq 2
wait_for 10 grep -q "pong 3" "$WORK/edge.log"
check "the host lives on and handles the next message" grep -q "pong 3" "$WORK/edge.log"
kill -TERM $H
wait $H

# 2. a blocked publishing connection
for n in 11 12 13 14 15; do ping $n; done
ctl set_vm_memory_high_watermark 0
start_host edge2 "$WORK/edge"
H=$LAST_PID
wait_until 20 '[ "$(count "ping 1[1-5]" edge2)" -eq 5 ]'
check "handlers run while the broker blocks publishing ($(count "ping 1[1-5]" edge2) of 5)" \
  test "$(count "ping 1[1-5]" edge2)" -eq 5
wait_for 10 grep -q "RabbitMQ blocks publishing" "$WORK/edge2.log"
check "the host logs that the broker blocks publishing" grep -q "RabbitMQ blocks publishing" "$WORK/edge2.log"
t0=$(count tick edge2); sleep 2; t1=$(count tick edge2)
check "the loop keeps running while blocked ($((t1 - t0)) timer ticks in 2 s, 10 due)" test $((t1 - t0)) -ge 8
check "no reply went out while blocked" test "$(count "pong 1[1-5]" edge2)" -eq 0
ctl set_vm_memory_high_watermark 0.6
wait_until 30 '[ "$(count "pong 1[1-5]" edge2)" -eq 5 ]'
check "everything goes out once the broker unblocks ($(count "pong 1[1-5]" edge2) of 5)" \
  test "$(count "pong 1[1-5]" edge2)" -eq 5
check "the host logs that publishing resumed" grep -q "RabbitMQ accepts publishing again" "$WORK/edge2.log"
kill -TERM $H
wait $H

# 3. a stalled broker: heartbeats stop
BEAM=$(bash "$ROOT/scripts/rabbitmq.sh" beam-pid)
check "the broker's Erlang VM is found ($BEAM)" test -n "$BEAM"
MOONBUS_TRANSPORT="$URL?heartbeat=1&connect_timeout=1" start_host edge3 "$WORK/edge"
H=$LAST_PID
wait_for 20 host_ready edge3
kill -STOP "$BEAM"
wait_for 10 grep -q "lost RabbitMQ.*heartbeat" "$WORK/edge3.log"
found=$(count "lost RabbitMQ.*heartbeat" edge3)
t0=$(count tick edge3); sleep 3; t1=$(count tick edge3)
kill -CONT "$BEAM"
check "the host notices the stalled broker by its missed heartbeats" test "$found" -ge 1
check "its loop keeps running meanwhile ($((t1 - t0)) timer ticks in 3 s, 15 due)" test $((t1 - t0)) -ge 12
wait_for 30 grep -q "reconnected to RabbitMQ" "$WORK/edge3.log"
check "it reconnects when the broker comes back" grep -q "reconnected to RabbitMQ" "$WORK/edge3.log"
ping 21
wait_for 20 grep -q "pong 21" "$WORK/edge3.log"
check "and handles messages again" grep -q "pong 21" "$WORK/edge3.log"
kill -TERM $H
wait $H; rc=$?
check "the host exits 0 ($rc)" test $rc -eq 0
check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$WORK'/edge*.log"
exit $TAP_FAILED
