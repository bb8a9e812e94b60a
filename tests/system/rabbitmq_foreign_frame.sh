#!/usr/bin/env bash
# RabbitMQ only: a delivery the broker itself pushed past frame_max. A foreign message
# whose headers just fit one frame (128 KiB) was delivered once and given back; on a
# quorum queue its next delivery carries x-delivery-count and no longer fits the frame
# size negotiated with the broker (rabbitmq-c 0.11 calls it "invalid AMQP data"). The host
# reads it anyway, parks it with a note in place of its headers, handles the next one, and
# its consume connection is not torn down over it (before: a reconnect loop).
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/fr"
cat >"$WORK/fr/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("fr.Job", { n = "number" })
bus.endpoint { name = "fr" }
bus.handle("fr.Job", function(p) bus.log.info("job %d", p.n) end)
LUA
export MOONBUS_LOG=info
first_start "$WORK/fr"
# a header frame of 131 059 bytes: 119 bytes of properties and entry overhead, 130 940 of values
"$ROOT/build/tools/amqp_inject" "$MOONBUS_TRANSPORT" fr 01900000-0000-7000-8000-0000000f0001 \
  fr.Job '{"n":1}' --big 130940 --requeue-one
check "the frame-filling message is sent and given back once" test $? -eq 0
"$ROOT/build/tools/amqp_inject" "$MOONBUS_TRANSPORT" fr 01900000-0000-7000-8000-0000000f0002 \
  fr.Job '{"n":2}' moonbus.kind=command
start_host fr "$WORK/fr"
H=$LAST_PID
wait_until 30 'grep -q "job 2" "$WORK/fr.log" && [ "$(parked | wc -l)" -ge 1 ]'
mb_lua "for _, m in ipairs(host.browse('error', 10)) do
  print(m.id .. '\t' .. (m.headers['moonbus.headers.removed'] or '-'))
end" >"$WORK/parked.txt"
sed 's/^/# /' "$WORK/parked.txt" | cut -c1-300
check "the host lives on" kill -0 $H
check "the message after it is handled" grep -q "job 2" "$WORK/fr.log"
check "it is parked with a note in place of its headers" \
  grep -q "^01900000-0000-7000-8000-0000000f0001	3 headers.*removed" "$WORK/parked.txt"
lost=$(grep -c "lost RabbitMQ" "$WORK/fr.log")
check "the connection was not torn down over it ($lost times)" test "$lost" -eq 0
check "nothing is left in the queue" test "$(depth fr)" = 0
kill -TERM $H
wait $H
exit $TAP_FAILED
