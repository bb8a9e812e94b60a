#!/usr/bin/env bash
# ops_alerts.sh — the alerts of `moonbus ops` (DESIGN §10, contract E), on the test's
# transport: a message that fails for good raises exactly one moonbus.ops.MessageFailed,
# POSTed to --alert-webhook (a small node receiver: tests/tools/webhook_sink.js) with its
# headers and the message's id, and published as an event that an endpoint handling it
# receives (it records what it got; checked after the run). https:// is refused at start
# with its reason, the URL's password never shows, /metrics counts the alert, and ops
# stops cleanly (no sanitizer report).
source "$(dirname "$0")/lib.sh"

# https:// is refused at start, saying why, without showing the password.
"$MOONBUS" ops --listen 127.0.0.1:0 --store "$WORK/refused.db" \
  --alert-webhook "https://alice:pa55word@example.com/hook" >"$WORK/refused.out" 2>"$WORK/refused.log"
check "ops refuses an https:// webhook at start (exit status 1)" test $? -eq 1
check "... saying that only http:// is supported" grep -q "https:// is not supported" "$WORK/refused.log"
check "... without showing the password" bash -c "! grep -q pa55word '$WORK/refused.log'"

# The receiver.
node "$ROOT/tests/tools/webhook_sink.js" "$WORK/sink.port" "$WORK/posts.jsonl" >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
wait_until 10 '[ -s "$WORK/sink.port" ]' || not_ok "the webhook receiver starts"
SINK_PORT=$(cat "$WORK/sink.port")

# An endpoint that fails every message (one retry in place, no delayed round), and one that
# handles ops's MessageFailed event and records it.
mkdir -p "$WORK/shop" "$WORK/watcher"
cat >"$WORK/shop/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("shop.Pay", { order = "number" })
bus.endpoint { name = "shop", retries = { immediate = 1, delayed = 0 },
  routes = { ["shop.Pay"] = "shop" } }
bus.handle("shop.Pay", function(m) error(("card declined for order %d"):format(m.order)) end)
LUA
cat >"$WORK/watcher/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "moonbus.ops" -- the contracts of the events ops publishes
bus.endpoint { name = "watcher" }
bus.handle("moonbus.ops.MessageFailed", function(alert, ctx)
  local out = assert(io.open(os.getenv("ALERTS_OUT"), "a"))
  out:write(alert.id, "\t", alert.event, "\t", alert.queue or "-", "\t", ctx.type, "\n")
  out:close()
end)
LUA
export ALERTS_OUT="$WORK/watched.tsv"
start_host shop "$WORK/shop"
SHOP=$LAST_PID
start_host watcher "$WORK/watcher"
WATCHER=$LAST_PID
wait_for 20 host_ready shop || not_ok "the shop endpoint starts"
wait_for 20 host_ready watcher || not_ok "the watcher endpoint starts"

start_ops ops --store "$WORK/ops.db" \
  --alert-webhook "http://hook:s3cretpw@127.0.0.1:$SINK_PORT/alerts?from=ops"
OPS=$OPS_PID
check "ops logs where alerts go, the password redacted" \
  grep -q "alerts are POSTed to http://hook:\*\*\*@127.0.0.1:$SINK_PORT/alerts" "$WORK/ops.log"

ID=$("$MOONBUS" send shop shop.Pay '{"order":42}' 2>/dev/null)
check "the message is sent" test -n "$ID"

check "the webhook gets a POST within 20 s" wait_until 20 '[ "$(lines "$WORK/posts.jsonl")" -ge 1 ]'
check "an endpoint handling moonbus.ops.MessageFailed receives it within 20 s" \
  wait_until 20 '[ "$(lines "$ALERTS_OUT")" -ge 1 ]'
sleep 2 # anything raised twice would have come by now
check "exactly one POST" test "$(lines "$WORK/posts.jsonl")" = 1
post=$(head -1 "$WORK/posts.jsonl")
holds() { jq -e "$@" >/dev/null; } # holds [jq options] FILTER <<<JSON: the filter is true
check "it is a POST to the URL's path and query" \
  holds '.method == "POST" and .url == "/alerts?from=ops"' <<<"$post"
check "with X-Moonbus-Event, Content-Type and User-Agent" \
  holds '.event == "moonbus.ops.MessageFailed" and .type == "application/json" and
         .agent == "moonbus-ops"' <<<"$post"
check "its body is the alert, with the failed message's id" \
  holds --arg id "$ID" '.body | fromjson | .event == "moonbus.ops.MessageFailed" and
         .id == $id and .queue == "shop" and (.at | type) == "string"' <<<"$post"
check "the subscriber got exactly one event, with the message's id" \
  test "$(cat "$ALERTS_OUT")" = "$ID	moonbus.ops.MessageFailed	shop	moonbus.ops.MessageFailed"

metrics=$(curl -s "$OPS_URL/metrics")
check "/metrics counts the alert" \
  grep -qx 'moonbus_ops_alerts_total{type="moonbus.ops.MessageFailed"} 1' <<<"$metrics"
check "/metrics: no webhook failure" grep -qx 'moonbus_ops_webhook_failures_total 0' <<<"$metrics"
check "/metrics: the store's size" grep -qE '^moonbus_ops_store_bytes [1-9][0-9]*$' <<<"$metrics"
check "/metrics: the oldest unresolved failure's age" \
  grep -qE '^moonbus_ops_oldest_unresolved_seconds [0-9.e+-]+$' <<<"$metrics"
check "/metrics: the backlog of the error queue" \
  grep -qE '^moonbus_ops_backlog\{queue="error"\} [0-9]+$' <<<"$metrics"
check "the webhook's password never shows in ops's log" bash -c "! grep -q s3cretpw '$WORK/ops.log'"

kill -TERM "$OPS" "$SHOP" "$WATCHER"
check "ops stops cleanly on SIGTERM" wait_for 15 bash -c "! kill -0 $OPS 2>/dev/null"
wait "$OPS"
check "... with exit status 0 and no sanitizer report" test $? -eq 0
exit $TAP_FAILED
