#!/usr/bin/env bash
# RabbitMQ only: a foreign message whose headers come close to frame_max (~128 KiB, over
# the 64 KiB the header rules allow) between good ones. It is parked with the reason, its
# copy carrying a note where the oversize headers were (body kept: the copy must fit a
# frame with the failure headers added); the good message after it is handled; the
# connection is not torn down over it (a message-level encoding failure never costs the
# connection), and nothing is left at the head of the queue.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/hdr"
cat >"$WORK/hdr/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("hdr.Job", { n = "number" })
bus.endpoint { name = "hdr", audit = "audit" }
bus.handle("hdr.Job", function(p) bus.log.info("job %d", p.n) end)
LUA
export MOONBUS_LOG=info
job() { "$ROOT/build/tools/amqp_inject" "$MOONBUS_TRANSPORT" hdr "01900000-0000-7000-8000-0000000c000$1" hdr.Job "{\"n\":$1}" "${@:2}"; }
first_start "$WORK/hdr"
job 1 moonbus.kind=command
job 2 --big 130800                       # headers that just fit a frame (128 KiB), no kind
job 3 moonbus.kind=command --big 40000   # under the rules: handled and audited
job 4 moonbus.kind=command
start_host hdr "$WORK/hdr"
H=$LAST_PID
wait_until 30 'grep -q "job 4" "$WORK/hdr.log" && [ "$(parked | wc -l)" -ge 1 ]'
check "the host lives on" kill -0 $H
for n in 1 3 4; do check "good message $n is handled" grep -q "job $n" "$WORK/hdr.log"; done
mb_lua "for _, m in ipairs(host.browse('error', 10)) do
  print(m.id .. '\t' .. m.body .. '\t' .. (m.headers['moonbus.headers.removed'] or '-') .. '\t' ..
        (m.headers['moonbus.exception.message'] or '') .. '\t' .. tostring(m.headers.big1 ~= nil))
end" >"$WORK/parked.txt"
sed 's/^/# /' "$WORK/parked.txt" | cut -c1-400
check "the oversize message is parked with the reason" \
  grep -q "^01900000-0000-7000-8000-0000000c0002	{\"n\":2}	.*	malformed envelope:.*" "$WORK/parked.txt"
check "its copy carries a note instead of the oversize headers" \
  grep -q "^01900000-0000-7000-8000-0000000c0002	.*were removed from this copy.*	false$" "$WORK/parked.txt"
check "only it is parked" test "$(wc -l <"$WORK/parked.txt")" -eq 1
check "the message under the rules is audited with its headers" \
  test "$(mb_lua "for _, m in ipairs(host.browse('audit', 10)) do if m.headers.big1 then print(m.id) end end")" = 01900000-0000-7000-8000-0000000c0003
lost=$(grep -c "lost RabbitMQ" "$WORK/hdr.log")
check "the connection was not torn down ($lost reconnects)" test "$lost" -eq 0
check "nothing is left in the queue" test "$(depth hdr)" = 0
kill -TERM $H
wait $H
exit $TAP_FAILED
