#!/usr/bin/env bash
# ops_ingest.sh N — one round of the audit and ops rows of `make bench` (DESIGN §9, §10):
# what audit costs the host, and whether `moonbus ops` ingests audit copies as fast as a
# busy endpoint makes them. On RabbitMQ, each on a fresh vhost:
#   audit_off:  tests/bench/moonbus_pair.sh N (the moonbus pair of throughput.sh);
#   audit_on:   the same pair with the sink's audit on: it leaves N audit copies in the
#               queue `audit` of its vhost, made at its rate (N / its seconds);
#   ops_ingest: `moonbus ops` (release build, a fresh store in a temp folder) started on that
#               vhost, timed from its start until its /metrics counts N audit copies
#               ingested (polled every 50 ms); its CPU from /proc/PID/stat at that moment.
# The same on SQLite with N/4 messages (at least 1 000; lines sqlite_audit_off,
# sqlite_audit_on, sqlite_ops_ingest): the pair of sqlite_throughput.sh
# (tests/bench/sqlite_pair.sh), each on a new file; ops on the file of the audit-on run.
# (A quarter: the three SQLite runs take ten times as long as the RabbitMQ ones.)
# Prints lines "LABEL N SECONDS MSG_PER_S CPU_S_PER_1000" (the pairs' CPU: both processes;
# ops_ingest's: the ops process alone).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-20000}
SQLITE_N=$((N / 4 > 1000 ? N / 4 : 1000))
AMQP=${MOONBUS_BENCH_AMQP:-$(bash "$ROOT/scripts/rabbitmq.sh" url)}
WORK=$(mktemp -d /tmp/moonbus-bench.XXXXXX)
PREFIX="opsbench$$-"
OPS=
bash "$ROOT/scripts/rabbitmq.sh" vhosts "$PREFIX" 2 >/dev/null
trap '[ -n "$OPS" ] && kill -KILL $OPS 2>/dev/null; rm -rf "$WORK"
  bash "$ROOT/scripts/rabbitmq.sh" drop-vhosts "$PREFIX" 2 >/dev/null 2>&1' EXIT

ingested() { # ingested PORT: the audit copies ops counts, 0 while it cannot answer
  curl -sf "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk '/^moonbus_ops_ingested_total\{queue="audit"\}/ { n = $2 } END { print n + 0 }'
}

# ops_ingest LABEL TRANSPORT STORE COUNT: times `moonbus ops` on TRANSPORT until it ingested
# COUNT audit copies.
ops_ingest() {
  local t0 t1 port='' got=0 last=0 still=0 cpu n=$4
  t0=$(date +%s.%N)
  MOONBUS_LOG=info "$ROOT/build/moonbus" ops --listen 127.0.0.1:0 --store "$3" \
    --transport "$2" 2>"$3.log" &
  OPS=$!
  for _ in $(seq 1 400); do
    port=$(sed -n 's|.*serving http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$3.log" | head -1)
    [ -n "$port" ] && break
    kill -0 $OPS 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "ops did not start:" >&2; cat "$3.log" >&2; exit 1; }
  while [ "$got" -lt "$n" ] && [ "$still" -lt 200 ]; do # gives up after 10 s without progress
    sleep 0.05
    got=$(ingested "$port")
    if [ "$got" -eq "$last" ]; then still=$((still + 1)); else still=0 last=$got; fi
  done
  t1=$(date +%s.%N)
  cpu=$(awk '{ print ($14 + $15) / 100 }' "/proc/$OPS/stat")
  kill -TERM $OPS && wait $OPS || true
  OPS=
  [ "$got" -ge "$n" ] || { echo "ops ingested only $got of $n audit copies" >&2; exit 1; }
  awk -v l="$1" -v n="$n" -v a="$t0" -v b="$t1" -v c="$cpu" \
    'BEGIN { printf "%s %d %.3f %.0f %.4f\n", l, n, b - a, n / (b - a), c * 1000 / n }'
}

MOONBUS_TRANSPORT="$AMQP/${PREFIX}1" bash "$ROOT/tests/bench/moonbus_pair.sh" "$N" |
  sed 's/^moonbus /audit_off /'
MOONBUS_TRANSPORT="$AMQP/${PREFIX}2" bash "$ROOT/tests/bench/moonbus_pair.sh" "$N" audit |
  sed 's/^moonbus /audit_on /'
ops_ingest ops_ingest "$AMQP/${PREFIX}2" "$WORK/ops.db" "$N"

bash "$ROOT/tests/bench/sqlite_pair.sh" "$SQLITE_N" "$WORK/off.db" |
  sed 's/^moonbus /sqlite_audit_off /'
bash "$ROOT/tests/bench/sqlite_pair.sh" "$SQLITE_N" "$WORK/on.db" audit |
  sed 's/^moonbus /sqlite_audit_on /'
ops_ingest sqlite_ops_ingest "sqlite://$WORK/on.db" "$WORK/ops-sqlite.db" "$SQLITE_N"
