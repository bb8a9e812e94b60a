#!/usr/bin/env bash
# sqlite_throughput.sh N — one round of end-to-end throughput on the embedded SQLite
# transport, raw against moonbus, each on a new database file (WAL, synchronous=FULL):
#   raw:     build/bench/raw_sqlite (a producer thread inserting one message per
#            transaction, a consumer taking and deleting one per transaction)
#   moonbus: tests/bench/sqlite_pair.sh N DB — tests/tools/send_many.lua (lua5.4 +
#            moonbus.so, one send per transaction) into a sink endpoint (`moonbus run`) with
#            a no-op Lua handler, concurrency 32, audit off, started together; timed until
#            the sink has handled all N.
# Prints two lines "raw|moonbus N SECONDS MSG_PER_S CPU_S_PER_1000" (CPU: every process).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-20000}
WORK=$(mktemp -d /tmp/moonbus-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

"$ROOT/build/bench/raw_sqlite" "$WORK/raw.db" "$N"

bash "$ROOT/tests/bench/sqlite_pair.sh" "$N" "$WORK/bus.db"
