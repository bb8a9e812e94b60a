#!/usr/bin/env bash
# ops_cli.sh — `moonbus errors … --ops URL` against a real `moonbus ops` (DESIGN §10): the
# same lines as on the queue (list, show), retry ID that is handled again, delete, retry
# --all with progress on stderr, 404 as "no message ID", $MOONBUS_OPS, and off loopback the
# token: without one the hint, with --token-file or $MOONBUS_OPS_TOKEN the change, never the
# token in any output.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/shop"
cat >"$WORK/shop/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("shop.Pay", { order = "number" })
bus.endpoint { name = "shop", retries = { immediate = 0, delayed = 0 },
  routes = { ["shop.Pay"] = "shop" } }
bus.handle("shop.Pay", function(m)
  local f = io.open(os.getenv("PAID_FILE"), "a")
  f:write(("try %d\n"):format(m.order))
  f:close()
  if m.order ~= 2 or not io.open(os.getenv("FIXED_FILE")) then
    error(("card declined for order %d"):format(m.order))
  end
end)
LUA
export PAID_FILE="$WORK/paid.log" FIXED_FILE="$WORK/fixed"
start_host shop "$WORK/shop"
SHOP=$LAST_PID
wait_for 20 host_ready shop || not_ok "the shop endpoint starts"

start_ops ops --store "$WORK/ops.db"
OPS=$OPS_PID
BASE=$OPS_URL
check "ops serves on loopback" test -n "$BASE"

for n in 1 2 3 4; do "$MOONBUS" send shop shop.Pay "{\"order\":$n}" >/dev/null 2>&1; done
check "four failed messages reach the ops store" \
  wait_until 20 "[ \"\$('$MOONBUS' errors list --ops '$BASE' 2>/dev/null | wc -l)\" = 5 ]" # and the header

"$MOONBUS" errors list --ops "$BASE" >"$WORK/list.out" 2>"$WORK/list.err"; rc=$?
check "errors list --ops exits 0 (exit $rc)" test $rc -eq 0
check "its first line is the header row of errors list" \
  test "$(head -1 "$WORK/list.out")" = "$(printf 'ID\tTYPE\tQUEUE\tFAILED_AT\tREASON')"
check "one line per message: id, type, queue, when, why" \
  grep -qP '^[0-9a-f-]{36}\tshop\.Pay\tshop\t20[0-9-]+T[0-9:.]+Z\t.*card declined for order 3 ' \
  "$WORK/list.out"
ID2=$(grep 'order 2 ' "$WORK/list.out" | cut -f1)
ID3=$(grep 'order 3 ' "$WORK/list.out" | cut -f1)

"$MOONBUS" errors show "$ID3" --ops "$BASE" >"$WORK/show.out" 2>"$WORK/show.err"; rc=$?
check "errors show --ops exits 0 (exit $rc)" test $rc -eq 0
check "and prints id, type, status, headers and body" \
  bash -c "grep -q '^id: $ID3$' '$WORK/show.out' && grep -q '^type: shop.Pay$' '$WORK/show.out' &&
    grep -q '^status: unresolved$' '$WORK/show.out' &&
    grep -q '^moonbus.failed.queue: shop$' '$WORK/show.out' && grep -q '\"order\":3' '$WORK/show.out'"
check "and how often it was tried, in words" grep -q '^tried: 1 attempt in 1 round' "$WORK/show.out"
"$MOONBUS" errors show no-such-id --ops "$BASE" >/dev/null 2>"$WORK/show404.err"; rc=$?
check "an unknown id exits 1 (exit $rc)" test $rc -eq 1
check "saying 'no message no-such-id'" grep -q 'no message no-such-id' "$WORK/show404.err"

touch "$FIXED_FILE"
"$MOONBUS" errors retry "$ID2" --ops "$BASE" >"$WORK/retry.out" 2>"$WORK/retry.err"; rc=$?
check "errors retry ID --ops exits 0 (exit $rc)" test $rc -eq 0
check "and says where the message went" grep -qx "$ID2	-> shop" "$WORK/retry.out"
check "the retried message is handled" \
  wait_until 15 "[ \"\$(grep -c 'try 2' '$PAID_FILE')\" = 2 ]"

MOONBUS_OPS="$BASE" "$MOONBUS" errors delete "$ID3" 2>"$WORK/delete.err"; rc=$?
check "errors delete ID through \$MOONBUS_OPS exits 0 (exit $rc)" test $rc -eq 0
check "the deleted one is gone" \
  bash -c "! '$MOONBUS' errors show '$ID3' --ops '$BASE' >/dev/null 2>&1"

"$MOONBUS" errors retry --all --ops "$BASE" >"$WORK/all.out" 2>"$WORK/all.err"; rc=$?
check "errors retry --all --ops exits 0 (exit $rc)" test $rc -eq 0
check "and reports on stderr" grep -q 'failed messages sent back' "$WORK/all.err"
check "the two left are tried again" \
  wait_until 15 "[ \"\$(grep -c 'try [14]' '$PAID_FILE')\" = 4 ]"
check "the deleted one never is" test "$(grep -c 'try 3' "$PAID_FILE")" -eq 1

"$MOONBUS" errors list --ops "http://127.0.0.1:1" 2>"$WORK/down.err"; rc=$?
check "no service there exits 1 (exit $rc)" test $rc -eq 1
check "saying nothing answers" grep -q 'nothing answers at http://127.0.0.1:1' "$WORK/down.err"

kill -TERM "$OPS"
wait "$OPS"
check "ops stops cleanly (exit $?)" test $? -eq 0

# Off loopback (a second service on the same store: the first one is gone, or it would
# take the new failure), changes need the token.
echo "s3cret-token-for-the-cli-test" >"$WORK/token"
start_ops ops2 --listen 0.0.0.0:0 --store "$WORK/ops.db" --token-file "$WORK/token"
OPS2=$OPS_PID
BASE2=$OPS_URL
"$MOONBUS" send shop shop.Pay '{"order":5}' >/dev/null 2>&1
wait_until 20 "[ \"\$(MOONBUS_OPS_TOKEN=s3cret-token-for-the-cli-test '$MOONBUS' errors list --ops '$BASE2' 2>/dev/null | grep -c 'order 5')\" = 1 ]"
ID5=$(MOONBUS_OPS_TOKEN=s3cret-token-for-the-cli-test "$MOONBUS" errors list --ops "$BASE2" 2>/dev/null |
  grep 'order 5 ' | cut -f1)
check "the new failure is listed with the token" test -n "$ID5"
"$MOONBUS" errors delete "$ID5" --ops "$BASE2" 2>"$WORK/notoken.err"; rc=$?
check "without a token a change exits 1 (exit $rc)" test $rc -eq 1
check "saying how to pass one" \
  grep -q 'the ops service needs a token: pass --token-file or set MOONBUS_OPS_TOKEN' "$WORK/notoken.err"
echo "wrong-token-of-16-chars" >"$WORK/bad-token"
"$MOONBUS" errors delete "$ID5" --ops "$BASE2" --token-file "$WORK/bad-token" 2>"$WORK/badtoken.err"
check "a wrong token is refused, and not shown" \
  bash -c "grep -q 'refused the token' '$WORK/badtoken.err' && ! grep -q wrong-token '$WORK/badtoken.err'"
"$MOONBUS" errors delete "$ID5" --ops "$BASE2" --token-file "$WORK/token" >"$WORK/token.out" \
  2>"$WORK/token.err"; rc=$?
check "with --token-file the change is made (exit $rc)" test $rc -eq 0
check "the token shows nowhere" \
  bash -c "! cat '$WORK'/*.out '$WORK'/*.err '$WORK/ops2.log' | grep -q s3cret-token"

kill -TERM "$OPS2" "$SHOP"
wait "$OPS2"
check "the second one too (exit $?)" test $? -eq 0
exit $TAP_FAILED
