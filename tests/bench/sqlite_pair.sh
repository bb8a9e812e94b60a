#!/usr/bin/env bash
# sqlite_pair.sh N DB [audit] — the moonbus side of tests/bench/sqlite_throughput.sh on the
# embedded SQLite transport in the file DB (new; the caller removes it):
# tests/tools/send_many.lua (lua5.4 + moonbus.so, one send per transaction) into a sink
# endpoint (`moonbus run`) with a no-op Lua handler, concurrency 32, audit off, or on with
# `audit` (a copy of each handled message to the queue `audit` of DB, left there for the
# caller), started together; timed until the sink has handled all N.
# Prints "moonbus N SECONDS MSG_PER_S CPU_S_PER_1000" (CPU: producer and sink).
# Never: drains the audit queue.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:?usage: sqlite_pair.sh N DB [audit]}
DB=${2:?usage: sqlite_pair.sh N DB [audit]}
AUDIT=$([ "${3:-}" = audit ] && echo '"audit"' || echo false)
WORK=$(mktemp -d /tmp/moonbus-bench.XXXXXX)
HOST=
trap '[ -n "$HOST" ] && kill -KILL $HOST 2>/dev/null; rm -rf "$WORK"' EXIT

export MOONBUS_TRANSPORT="sqlite://$DB"
mkdir -p "$WORK/sink"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("bench.Order", { n = "number", note = "string" })
LUA
cat >"$WORK/sink/endpoint.lua" <<LUA
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "bench_sink", concurrency = 32, audit = $AUDIT }
local got = 0
bus.handle("bench.Order", function()
  got = got + 1
  if got == $N then bus.log.warn("handled all %d", got) end
end)
LUA
cpu_of() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"; }
"$ROOT/build/moonbus" run "$WORK/sink" --no-reload 2>"$WORK/sink.log" &
HOST=$!
for _ in $(seq 1 100); do grep -q " running " "$WORK/sink.log" 2>/dev/null && break; sleep 0.1; done
t0=$(date +%s.%N)
producer_cpu=$(
  LUA_PATH="$WORK/?.lua;$ROOT/modules/?.lua;;" LUA_CPATH="$ROOT/build/?.so;;" MOONBUS_LOG=error \
    lua5.4 "$ROOT/tests/tools/send_many.lua" bench_sink bench.Order 1 "$N" 120 >/dev/null
  times | awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }'
)
for _ in $(seq 1 6000); do grep -q "handled all" "$WORK/sink.log" && break; sleep 0.01; done
t1=$(date +%s.%N)
host_cpu=$(cpu_of $HOST)
[ "$AUDIT" = false ] || sleep 0.3 # untimed: the last transaction (and audit copy) commits
kill -TERM $HOST && wait $HOST || true
HOST=
awk -v n="$N" -v a="$t0" -v b="$t1" -v c="$producer_cpu" -v h="$host_cpu" \
  'BEGIN { printf "moonbus %d %.3f %.0f %.4f\n", n, b - a, n / (b - a), (c + h) * 1000 / n }'
