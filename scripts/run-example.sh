#!/usr/bin/env bash
# run-example.sh — `make run`: starts every endpoint of an example system as its own host
# process on the embedded SQLite default, and `moonbus ops` (the web UI for failed and
# processed messages, on $MOONBUS_OPS_LISTEN, default 127.0.0.1:7070; its alerts also go to
# $MOONBUS_OPS_WEBHOOK when set, and the oncall endpoint logs them), shows their logs
# interleaved, and stops them all on Ctrl-C (SIGINT/SIGTERM), letting in-flight handlers
# finish.
set -uo pipefail
cd "$(dirname "$0")/.."
EXAMPLE=${1:-examples/orders}
MOONBUS=${MOONBUS:-build/moonbus}
pids=()

stop() {
  trap - INT TERM
  echo "stopping ${#pids[@]} endpoints..." >&2
  kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  exit 0
}
trap stop INT TERM

# endpoints that only receive first, so their queues exist before anyone sends to them
for dir in $(ls -d "$EXAMPLE"/*/ | sort); do
  [ -f "$dir/endpoint.lua" ] || continue
  "$MOONBUS" run "$dir" &
  pids+=($!)
done
n=${#pids[@]}
OPS_LISTEN=${MOONBUS_OPS_LISTEN:-127.0.0.1:7070}
# $MOONBUS_OPS_WEBHOOK (an http:// URL): ops also POSTs its alerts there
"$MOONBUS" ops --listen "$OPS_LISTEN" ${MOONBUS_OPS_WEBHOOK:+--alert-webhook "$MOONBUS_OPS_WEBHOOK"} &
pids+=($!)
echo "running $n endpoints of $EXAMPLE; Ctrl-C stops them" >&2
echo "moonbus ops (failed and processed messages): http://$OPS_LISTEN/" >&2
wait "${pids[@]}"
