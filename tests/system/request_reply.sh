#!/usr/bin/env bash
# Request/reply across processes and from the shell: `moonbus request` prints the reply of
# a running endpoint and exits 0, exits 3 with a clear error when no reply comes, 2 on a
# bad body, 1 on a route to nowhere; a handler that itself requests another endpoint gets
# its reply while two competing instances of it run (each reply reaches the instance that
# asked), and the reply queues of the processes are gone when they stop.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/front" "$WORK/pricing"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("front.Quote", { sku = "string" })
bus.message("front.Quoted", { sku = "string", price = "number", by = "string" })
bus.command("pricing.Price", { sku = "string" })
bus.message("pricing.Priced", { price = "number" })
bus.command("pricing.Ignore")
LUA
cat >"$WORK/pricing/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "pricing" }
bus.handle("pricing.Price", function(req, ctx)
  ctx:reply("pricing.Priced", { price = #req.sku * 10 })
end)
bus.handle("pricing.Ignore", function() end) -- never replies
bus.command("pricing.Odd")
bus.message("pricing.OnlyPricingKnows")
bus.handle("pricing.Odd", function(_, ctx) ctx:reply("pricing.OnlyPricingKnows", {}) end)
LUA
cat >"$WORK/front/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "front", routes = { ["pricing.Price"] = "pricing" }, concurrency = 16 }
bus.handle("front.Quote", function(q, ctx)
  local priced = bus.request("pricing.Price", { sku = q.sku }, { timeout = 10 })
  ctx:reply("front.Quoted", { sku = q.sku, price = priced.price, by = os.getenv("FRONT_NAME") })
end)
bus.command("front.Probe")
bus.message("front.Probed", { error = "string" })
bus.command("pricing.Odd")
bus.handle("front.Probe", function(_, ctx)
  local ok, err = pcall(bus.request, "pricing.Odd", {}, { to = "pricing", timeout = 10 })
  ctx:reply("front.Probed", { error = ok and "none" or tostring(err) })
end)
LUA
start_host pricing "$WORK/pricing"
wait_for 10 host_ready pricing
FRONT_NAME=f1 start_host front1 "$WORK/front"
FRONT_NAME=f2 start_host front2 "$WORK/front"
wait_for 10 host_ready front1
wait_for 10 host_ready front2

out=$("$MOONBUS" request pricing pricing.Price '{"sku":"abc"}' 2>"$WORK/cli.log"); rc=$?
check "request prints the reply body and exits 0 (exit $rc)" test $rc -eq 0
check "the reply body is the handler's answer: $out" test "$out" = '{"price":30}'

if [ "$TRANSPORT" = rabbitmq ]; then # the other reply path: an exclusive queue per process
  out=$("$MOONBUS" request pricing pricing.Price '{"sku":"abcd"}' \
    --transport "$MOONBUS_TRANSPORT?replies=queue" 2>>"$WORK/cli.log"); rc=$?
  check "with ?replies=queue the reply comes back too (exit $rc): $out" test "$out" = '{"price":40}'
fi

# 40 requests at once through front, each of which requests pricing from a handler
for i in $(seq 1 40); do
  "$MOONBUS" request front front.Quote "{\"sku\":\"$(printf 'x%.0s' $(seq 1 $((i % 7 + 1))))-$i\"}" \
    >"$WORK/q$i.out" 2>"$WORK/q$i.err" &
done
wait_fail=0
for job in $(jobs -p); do
  case " ${PIDS[*]} " in *" $job "*) continue ;; esac
  wait "$job" || wait_fail=$((wait_fail + 1))
done
check "40 concurrent requests through a handler that requests again all exit 0 ($wait_fail failed)" \
  test $wait_fail -eq 0
wrong=0
for i in $(seq 1 40); do
  sku="$(printf 'x%.0s' $(seq 1 $((i % 7 + 1))))-$i"
  { grep -q "\"sku\":\"$sku\"" "$WORK/q$i.out" &&
    grep -q "\"price\":$((${#sku} * 10))[,}]" "$WORK/q$i.out"; } || wrong=$((wrong + 1))
done
check "each of them got its own answer ($wrong wrong)" test $wrong -eq 0
served=$(cat "$WORK"/q*.out | grep -o '"by":"f[12]"' | sort -u | wc -l)
check "both competing instances of front served requests ($served)" test "$served" -eq 2

out=$("$MOONBUS" request front front.Probe '{}' 2>>"$WORK/cli.log")
check "a reply of a type the requester does not declare is an error naming it: $out" \
  grep -q "the reply is a pricing.OnlyPricingKnows, which this endpoint does not declare" <<<"$out"

start=$SECONDS
"$MOONBUS" request pricing pricing.Ignore '{}' --timeout 1 >"$WORK/t.out" 2>"$WORK/t.err"; rc=$?
check "no reply within --timeout exits 3 (exit $rc)" test $rc -eq 3
check "and says what it waited for" grep -q "no reply to pricing.Ignore from pricing within 1 s" "$WORK/t.err"
check "stdout stays empty" test ! -s "$WORK/t.out"
check "after about the timeout ($((SECONDS - start)) s)" test $((SECONDS - start)) -le 5
"$MOONBUS" request pricing pricing.Price '{"sku":' 2>"$WORK/bad.err"; rc=$?
check "a body that is not JSON exits 2 (exit $rc)" test $rc -eq 2
"$MOONBUS" request nowhere pricing.Price '{"sku":"a"}' 2>"$WORK/route.err"; rc=$?
check "a request to a queue that does not exist exits 1 (exit $rc)" test $rc -eq 1
check "naming the queue" grep -q "no queue named 'nowhere'" "$WORK/route.err"
"$MOONBUS" request pricing pricing.Price '{}' --timeout soon 2>"$WORK/opt.err"; rc=$?
check "a --timeout that is not a number exits 2 (exit $rc)" test $rc -eq 2

for p in "${PIDS[@]}"; do kill -TERM "$p"; done
stopped=0
for p in "${PIDS[@]}"; do wait "$p" && stopped=$((stopped + 1)); done
PIDS=()
check "the three hosts stop cleanly ($stopped of 3)" test $stopped -eq 3
if [ "$TRANSPORT" = sqlite ]; then
  left=$(sql "select count(*) from queues where name like 'moonbus.reply.%'")
else
  left=$(bash "$ROOT/scripts/rabbitmq.sh" ctl list_queues -q -p "${VHOST}1" name | grep -c '^moonbus\.reply\.' || true)
fi
check "no reply queue is left behind ($left)" test "$left" -eq 0
exit $TAP_FAILED
