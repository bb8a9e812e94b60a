#!/usr/bin/env bash
# Messages waiting in delayed retry live in the broker's delay queues (quorum queues,
# at-least-once dead-lettering): a broker restart while they wait loses none of them. Every
# id fails its first round, waits, and is handled in its delayed round after the restart.
. "$(dirname "$0")/lib.sh"
ctl() { bash "$ROOT/scripts/rabbitmq.sh" ctl "$@" >/dev/null 2>&1; }
N=500
mkdir -p "$WORK/later"
cat >"$WORK/later/endpoint.lua" <<LUA
local bus = require "moonbus"
bus.command("l.Do", { n = "number" })
bus.endpoint { name = "later", retries = { immediate = 0, delayed = 1, delay = 8 }, audit = false }
local out = assert(io.open("$WORK/handled.txt", "a"))
bus.handle("l.Do", function(d, ctx)
  if ctx.delayed_attempt == 0 then error("not yet") end
  out:write(d.n, "\n")
  out:flush()
end)
LUA
MOONBUS_LOG=warn start_host later "$WORK/later"
L=$LAST_PID
wait_for 10 host_ready later
mb_lua "
  local bus = require 'moonbus'
  bus.command('l.Do', { n = 'number' })
  for i = 1, $N do bus.send('l.Do', { n = i }, { to = 'later' }) end"
check "the $N commands were sent" test $? -eq 0
wait_until 30 '[ "$(grep -c "delayed retry 1 of 1" "$WORK/later.log")" -ge $N ]'
check "all $N failed their first round and wait in the broker" \
  test "$(grep -c "delayed retry 1 of 1" "$WORK/later.log")" -ge $N
ctl stop_app
sleep 3
ctl start_app
wait_until 90 '[ "$(sort -u "$WORK/handled.txt" 2>/dev/null | wc -l)" -ge $N ]'
got=$(sort -un "$WORK/handled.txt" 2>/dev/null | wc -l)
check "after the broker restart every id was handled in its delayed round ($got of $N)" test "$got" -eq $N
check "the host reconnected" grep -q "lost RabbitMQ" "$WORK/later.log"
check "nothing was parked" test -z "$(parked)"
kill -TERM $L
wait $L
check "the host stops cleanly (exit $?)" test $? -eq 0
exit $TAP_FAILED
