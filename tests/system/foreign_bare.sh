#!/usr/bin/env bash
# A foreign sender's bare messages (DESIGN §14): no message id, no type, no moonbus headers
# at all — what amqp-publish, the management UI or a hand-written SQLite row sends. Between
# good ones: the host never exits, a message whose type the endpoint knows is handled
# (its kind taken from the contract), the others are parked with the reason and a
# generated id (the original's absence kept in moonbus.foreign_id), the good ones are
# handled and nothing is left at the head of the queue.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/bare"
cat >"$WORK/bare/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("bare.Job", { n = "number" })
bus.endpoint { name = "bare" }
bus.handle("bare.Job", function(p, ctx)
  bus.log.info("job %d kind=%s", p.n, tostring(ctx.kind))
end)
LUA
export MOONBUS_LOG=info
# raw ID TYPE BODY [key=value]: "-" leaves the id or the type out.
raw() {
  if [ "$TRANSPORT" = sqlite ]; then
    local id=$1 type="'$2'" headers='{}'
    [ "$id" = - ] && id=""
    [ "$2" = - ] && type=NULL
    [ -n "${4:-}" ] && headers="{\"${4%%=*}\":\"${4#*=}\"}"
    sql "insert into messages(queue,id,type,headers,body,visible_at) values('bare','$id',$type,'$headers','$3',0)"
  else
    "$ROOT/build/tools/amqp_inject" "$MOONBUS_TRANSPORT" bare "$1" "$2" "$3" ${4:+"$4"}
  fi
}
first_start "$WORK/bare"
raw 01900000-0000-7000-8000-00000000a001 bare.Job '{"n":1}' moonbus.kind=command
raw - - '{"n":90}'                                  # nothing at all
raw - bare.Job '{"n":2}'                            # a known type, no id, no kind
raw order-17 - '{"n":91}'                           # a foreign id, no type
raw - foreign.Thing '{"n":92}'                      # a type the endpoint does not know
raw 01900000-0000-7000-8000-00000000a003 bare.Job '{"n":3}' moonbus.kind=command
start_host bare "$WORK/bare"
H=$LAST_PID
wait_until 20 '[ "$(parked | wc -l)" -ge 3 ] && grep -q "job 3" "$WORK/bare.log"'
check "the host lives on" kill -0 $H
for n in 1 2 3; do
  check "good message $n is handled" grep -q "job $n " "$WORK/bare.log"
done
check "a known type without a kind header takes the contract's kind" \
  grep -q "job 2 kind=command" "$WORK/bare.log"
mb_lua "for _, m in ipairs(host.browse('error', 100)) do
  print(m.id .. '\t' .. m.body .. '\t' .. tostring(m.headers['moonbus.foreign_id']) .. '\t' ..
        (m.headers['moonbus.exception.message'] or ''))
end" >"$WORK/parked.txt"
cat "$WORK/parked.txt" | sed 's/^/# /'
check "three are parked ($(wc -l <"$WORK/parked.txt"))" test "$(wc -l <"$WORK/parked.txt")" -eq 3
UUID='[0-9a-f]\{8\}-[0-9a-f]\{4\}-7[0-9a-f]\{3\}-[0-9a-f]\{4\}-[0-9a-f]\{12\}'
check "a bare message is parked under a generated id, its missing id recorded, with the reason" \
  grep -q "^$UUID	{\"n\":90}		.*no type" "$WORK/parked.txt"
check "a foreign id is kept beside the generated one" \
  grep -q "^$UUID	{\"n\":91}	order-17	.*no type" "$WORK/parked.txt"
check "an unknown type is parked with the reason" \
  grep -q "{\"n\":92}.*does not know type foreign.Thing" "$WORK/parked.txt"
check "nothing is left in the queue" test "$(depth bare)" = 0
check "no crash in the log" test "$(grep -c "AddressSanitizer\|SEGV" "$WORK/bare.log")" -eq 0
kill -TERM $H
wait $H
check "the host stops cleanly" test $? -eq 0
exit $TAP_FAILED
