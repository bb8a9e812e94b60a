#!/usr/bin/env bash
# reload_swap.sh [RELOADS] — hot-reload swap time of the release host (DESIGN §7): from the
# reload's start (a fresh Lua state, the endpoint script and a required module loaded, the
# declaration adopted, the topology declared) to new messages going to it, as the host
# logs it. At rest: RELOADS SIGHUPs to an idle host. Under load: SIGHUP every 20 ms while
# the host handles BENCH_N commands (at least 20 000) that wait in its queue. Prints two
# lines: "swap at_rest|under_load p50 MS p90 MS max MS n N [rate MSG/S]".
# The transport is $MOONBUS_TRANSPORT, or a new SQLite file.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RELOADS=${1:-50}
N=${BENCH_N:-20000}
[ "$N" -ge 20000 ] || N=20000 # under load needs a backlog that lasts (RabbitMQ drains ~25 000/s)
WORK=$(mktemp -d /tmp/moonbus-bench.XXXXXX)
HOST=
trap '[ -n "$HOST" ] && kill -KILL $HOST 2>/dev/null; rm -rf "$WORK"' EXIT
export MOONBUS_TRANSPORT=${MOONBUS_TRANSPORT:-sqlite://$WORK/bus.db}
mkdir -p "$WORK/worker"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("b.Do", { n = "number", note = "string" })
bus.event("b.Done", { n = "number" })
LUA
cat >"$WORK/worker/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "bench_worker", publishes = { "b.Done" }, audit = false }
require "handlers"
LUA
cat >"$WORK/worker/handlers.lua" <<'LUA'
local bus = require "moonbus"
local handled = 0
bus.handle("b.Do", function(cmd) handled = handled + 1 end)
bus.every(60, function() bus.log.info("handled %d", handled) end)
LUA

swaps() { { grep -o 'swapped in [0-9.]* ms' "$WORK/host.log" || true; } | awk '{ print $3 }'; }
summary() { # summary NAME: percentiles of the swap times on stdin
  sort -g | awk -v name="$1" '{ v[NR] = $1 } END {
    p90 = int(NR * 0.9 + 0.5); if (p90 < 1) p90 = 1
    printf "swap %s p50 %.2f p90 %.2f max %.2f n %d", name, v[int((NR + 1) / 2)], v[p90], v[NR], NR }'
}
reloads_done() { grep -c 'swapped in' "$WORK/host.log" || true; }
start() {
  MOONBUS_LOG=info "$ROOT/build/moonbus" run "$WORK/worker" --no-reload 2>"$WORK/host.log" &
  HOST=$!
  for _ in $(seq 1 100); do grep -q ' running ' "$WORK/host.log" && return; sleep 0.1; done
  echo "the host did not start" >&2
  exit 1
}

start
for i in $(seq 1 "$RELOADS"); do
  kill -HUP $HOST
  for _ in $(seq 1 200); do [ "$(reloads_done)" -ge "$i" ] && break; sleep 0.01; done
done
swaps | summary at_rest
echo
kill -TERM $HOST && wait $HOST || true

# under load: the commands wait in the queue, then the host drains them while reloading
LUA_PATH="$WORK/?.lua;$ROOT/modules/?.lua;;" LUA_CPATH="$ROOT/build/?.so;;" MOONBUS_LOG=error \
  lua5.4 "$ROOT/tests/tools/send_many.lua" bench_worker b.Do 1 "$N" 150 >/dev/null
: >"$WORK/host.log"
t0=$(date +%s.%N)
start
handled() { grep -c 'handled in' "$WORK/host.log" || true; }
while [ "$(handled)" -lt "$N" ]; do
  kill -HUP $HOST
  sleep 0.02
done
t1=$(date +%s.%N)
swaps | summary under_load
awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf " rate %.0f\n", n / (b - a) }'
kill -TERM $HOST && wait $HOST || true
HOST=
