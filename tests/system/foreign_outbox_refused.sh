#!/usr/bin/env bash
# A request whose outgoing messages are refused every time (its foreign requester named a
# reply queue that does not exist): the handler's success does not count, the retry policy
# runs, and the request is parked with that reason and the transport's last error — not as
# a message that "seems to end the host process". The message after it is handled.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/ob"
cat >"$WORK/ob/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("ob.Ask", { n = "number" })
bus.message("ob.Answer", { n = "number" })
bus.endpoint { name = "ob", retries = { immediate = 2, delayed = 1, delay = 0.5 },
               max_deliveries = 3 }
bus.handle("ob.Ask", function(p, ctx)
  bus.log.info("ask %d", p.n)
  if ctx.reply_to then ctx:reply("ob.Answer", { n = p.n }) end
end)
LUA
export MOONBUS_LOG=info
ask() { # ask ID N [REPLY_TO]
  if [ "$TRANSPORT" = sqlite ]; then
    local to=NULL
    [ -n "${3:-}" ] && to="'$3'"
    sql "insert into messages(queue,id,type,reply_to,headers,body,visible_at) values('ob','$1','ob.Ask',$to,'{\"moonbus.kind\":\"command\"}','{\"n\":$2}',0)"
  else
    "$ROOT/build/tools/amqp_inject" "$MOONBUS_TRANSPORT" ob "$1" ob.Ask "{\"n\":$2}" moonbus.kind=command ${3:+--reply-to "$3"}
  fi
}
first_start "$WORK/ob"
ask 01900000-0000-7000-8000-0000000e0001 1 no.such.requester
ask 01900000-0000-7000-8000-0000000e0002 2
start_host ob "$WORK/ob"
H=$LAST_PID
wait_until 40 '[ "$(parked | wc -l)" -ge 1 ] && grep -q "ask 2" "$WORK/ob.log"'
parked >"$WORK/parked.txt"
sed 's/^/# /' "$WORK/parked.txt" | cut -c1-400
check "the host lives on" kill -0 $H
check "the message after it is handled" grep -q "ask 2" "$WORK/ob.log"
check "the request is parked" grep -q "^01900000-0000-7000-8000-0000000e0001" "$WORK/parked.txt"
check "with the reason: its messages could not be sent, and the transport's error" \
  grep -q "^01900000-0000-7000-8000-0000000e0001.*could not be sent:.*no.such.requester" "$WORK/parked.txt"
check "not as a crash loop" test "$(grep -c "seems to end the host process" "$WORK/parked.txt")" -eq 0
check "after the retry policy ran (3 attempts of the first round)" \
  test "$(grep -c "ask 1" "$WORK/ob.log")" -ge 3
check "nothing is left in the queue" test "$(depth ob)" = 0
kill -TERM $H
wait $H
exit $TAP_FAILED
