#!/usr/bin/env bash
# RabbitMQ only: a plain AMQP RPC client (RabbitMQ's tutorial: a server-named exclusive
# reply queue as reply_to, a correlation id, a type, no message id, no moonbus header)
# gets its reply from a moonbus endpoint, carrying its correlation id — or its message id
# when it set none, as plain AMQP RPC clients expect. Nothing is parked.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/calc"
cat >"$WORK/calc/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("calc.Add", { a = "number", b = "number" })
bus.message("calc.Sum", { sum = "number" })
bus.endpoint { name = "calc" }
bus.handle("calc.Add", function(p, ctx)
  bus.log.info("add %d %d for %s", p.a, p.b, tostring(ctx.reply_to))
  ctx:reply("calc.Sum", { sum = p.a + p.b })
end)
LUA
export MOONBUS_LOG=info
start_host calc "$WORK/calc"
H=$LAST_PID
wait_for 20 host_ready calc
rpc() { timeout 20 "$ROOT/build/tools/foreign_rpc" "$MOONBUS_TRANSPORT" calc calc.Add "$@"; }
rpc '{"a":2,"b":3}' --timeout 10 >"$WORK/rpc1.out" 2>&1
sed 's/^/# /' "$WORK/rpc1.out"
check "the plain client gets its reply on its exclusive queue" \
  grep -q '^reply correlation_id=corr-[0-9]* type=calc.Sum body={"sum":5}' "$WORK/rpc1.out"
rpc '{"a":4,"b":5}' --timeout 10 --no-correlation-id --message-id req-42 >"$WORK/rpc2.out" 2>&1
sed 's/^/# /' "$WORK/rpc2.out"
check "without a correlation id, the reply carries the request's own (foreign) message id" \
  grep -q '^reply correlation_id=req-42 type=calc.Sum body={"sum":9}' "$WORK/rpc2.out"
U=01900000-0000-7000-8000-0000000d0001
rpc '{"a":1,"b":1}' --timeout 10 --no-correlation-id --message-id $U >"$WORK/rpc3.out" 2>&1
check "... and its UUID message id" grep -q "^reply correlation_id=$U " "$WORK/rpc3.out"
check "the host lives on" kill -0 $H
check "nothing is parked" test "$(parked | wc -l)" -eq 0
check "nothing is left in the queue" test "$(depth calc)" = 0
kill -TERM $H
wait $H
exit $TAP_FAILED
