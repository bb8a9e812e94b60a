#!/usr/bin/env bash
# run.sh — `make bench`: moonbus against the raw limit, side by side in one run (DESIGN §9).
# Alternates raw and moonbus for BENCH_ROUNDS rounds (default 3) of BENCH_N messages
# (default 20 000) on RabbitMQ (throughput.sh, raw_rpc) and SQLite (sqlite_throughput.sh),
# measures resident memory idle and with 5 × BENCH_N messages in delayed retry (the
# delayed_memory system test, release host) and hot-reload swap times (reload_swap.sh),
# measures the cost of audit and the ops service's ingestion rate against the rate audit
# copies are made (ops_ingest.sh, RabbitMQ and SQLite) and what metrics and reports cost
# (metrics_cost.sh), and prints one table of medians
# with the ratio moonbus/raw (for the audit rows: audit on/off, ops ingestion/audit
# production) and the target of each row.
# Starts a private RabbitMQ if none runs (scripts/rabbitmq.sh) and stops it again.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${BENCH_N:-20000}
ROUNDS=${BENCH_ROUNDS:-3}
RPC_N=$((N / 10 > 200 ? N / 10 : 200))
DELAYED=$((N * 5))
STARTED=0
if ! bash scripts/rabbitmq.sh status >/dev/null 2>&1; then
  bash scripts/rabbitmq.sh start >/dev/null
  STARTED=1
fi
OUT=$(mktemp)
trap 'rm -f "$OUT"; [ "$STARTED" -eq 1 ] && bash scripts/rabbitmq.sh stop >/dev/null 2>&1' EXIT
AMQP=$(bash scripts/rabbitmq.sh url)
log() { tee -a "$OUT" | sed "s/^/# $1: /"; }
echo "# $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
  "$(. /etc/os-release && echo "$PRETTY_NAME"), $(date -u +%Y-%m-%d); $N messages x $ROUNDS rounds" \
  "(BENCH_N, BENCH_ROUNDS)"

for r in $(seq 1 "$ROUNDS"); do
  bash tests/bench/throughput.sh "$N" | sed 's/^/amqp_/' | log "round $r"
  bash tests/bench/metrics_cost.sh "$N" | log "round $r"
  bash tests/bench/sqlite_throughput.sh "$N" | sed 's/^/sqlite_/' | log "round $r"
  bash tests/bench/ops_ingest.sh "$N" | log "round $r"
done
bash scripts/rabbitmq.sh vhosts "rpc$$-" "$ROUNDS" >/dev/null
for r in $(seq 1 "$ROUNDS"); do # request/reply, one in flight: raw_rpc against bus.request
  ./build/bench/raw_rpc "$AMQP/rpc$$-$r" bench.rpc "$RPC_N" | awk '{ print "rpc_raw", $3, $5 }' |
    log "round $r"
  MOONBUS_TRANSPORT="$AMQP/rpc$$-$r" bash tests/bench/request_latency.sh "$RPC_N" |
    awk '{ print "rpc_moonbus", $5, $11 }' | log "round $r"
  bash tests/bench/request_latency.sh "$RPC_N" | awk '{ print "rpc_sqlite", $5, $11 }' | log "round $r"
done
bash scripts/rabbitmq.sh drop-vhosts "rpc$$-" "$ROUNDS" >/dev/null 2>&1 || true
for t in sqlite rabbitmq; do # resident memory, idle and with DELAYED messages in delayed retry
  MOONBUS_TEST_TRANSPORT=$([ $t = rabbitmq ] && echo "$AMQP") DELAYED_N=$DELAYED \
    bash tests/system/delayed_memory.sh 2>&1 | grep '^# resident memory' |
    awk -v t=$t '{ print "mem_" t, $5, $11 }' | log memory
done
bash tests/bench/reload_swap.sh 50 | awk '{ print "swap_sqlite_" $2, $4, $6 }' | log reload
bash scripts/rabbitmq.sh vhosts "swap$$-" 1 >/dev/null
MOONBUS_TRANSPORT="$AMQP/swap$$-1" bash tests/bench/reload_swap.sh 50 |
  awk '{ print "swap_rabbitmq_" $2, $4, $6 }' | log reload
bash scripts/rabbitmq.sh drop-vhosts "swap$$-" 1 >/dev/null 2>&1 || true

median() { # median of column $2 of the lines whose first field is $1
  awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$OUT" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
row() { # row LABEL FORMAT RAW MOONBUS TARGET: ratio = moonbus / raw
  printf "%-46s %10${2} %10${2} %7.2f  %s\n" "$1" "$3" "$4" "$(awk -v a="$4" -v b="$3" 'BEGIN { print a / b }')" "$5"
}
only() { # only LABEL VALUE TARGET: a moonbus figure with no raw counterpart
  printf "%-46s %10s %10s %7s  %s\n" "$1" "-" "$2" "-" "$3"
}
echo
printf "%-46s %10s %10s %7s  %s\n" "median of $ROUNDS rounds" raw moonbus ratio target
row "RabbitMQ throughput, msg/s (quorum, confirms)" .0f "$(median amqp_raw 4)" "$(median amqp_moonbus 4)" ">= 0.80"
row "RabbitMQ CPU s per 1 000 messages" .4f "$(median amqp_raw 5)" "$(median amqp_moonbus 5)" "<= 2.00"
row "RabbitMQ request/reply p50, ms" .3f "$(median rpc_raw 2)" "$(median rpc_moonbus 2)" ""
row "RabbitMQ request/reply p99, ms" .3f "$(median rpc_raw 3)" "$(median rpc_moonbus 3)" "<= 1.50"
row "SQLite throughput, msg/s (WAL, sync=FULL)" .0f "$(median sqlite_raw 4)" "$(median sqlite_moonbus 4)" ">= 0.50"
row "SQLite CPU s per 1 000 messages" .4f "$(median sqlite_raw 5)" "$(median sqlite_moonbus 5)" ""
only "SQLite request/reply p50 / p99, ms" "$(median rpc_sqlite 2) / $(median rpc_sqlite 3)" ""
row "RabbitMQ msg/s, audit off / on" .0f "$(median audit_off 4)" "$(median audit_on 4)" ">= 0.90"
row "RabbitMQ CPU s per 1 000, audit off / on" .4f "$(median audit_off 5)" "$(median audit_on 5)" ""
row "ops ingestion msg/s (vs audit copies made)" .0f "$(median audit_on 4)" "$(median ops_ingest 4)" ">= 1.00"
only "ops CPU s per 1 000 audit copies ingested" "$(median ops_ingest 5)" ""
row "RabbitMQ msg/s, metrics+reports off / on" .0f "$(median metrics_off 4)" "$(median metrics_on 4)" ">= 0.97"
row "RabbitMQ CPU s per 1 000, metrics off / on" .4f "$(median metrics_off 5)" "$(median metrics_on 5)" ""
row "SQLite msg/s, audit off / on (N/4)" .0f "$(median sqlite_audit_off 4)" "$(median sqlite_audit_on 4)" ">= 0.90"
row "SQLite ops ingestion msg/s (vs copies made)" .0f "$(median sqlite_audit_on 4)" "$(median sqlite_ops_ingest 4)" ">= 1.00"
only "SQLite ops CPU s per 1 000 copies ingested" "$(median sqlite_ops_ingest 5)" ""
for t in sqlite rabbitmq; do
  idle=$(median mem_$t 2)
  busy=$(median mem_$t 3)
  only "host RSS idle, $t, kB" "$idle" "< 10240"
  printf "%-46s %10s %10s %7.2f  %s\n" "host RSS, $DELAYED delayed retries, $t, kB" "$idle" "$busy" \
    "$(awk -v a="$busy" -v b="$idle" 'BEGIN { print a / b }')" "<= 1.10 (vs idle)"
done
for t in sqlite rabbitmq; do
  only "reload swap p50 / p90 at rest, $t, ms" "$(median swap_${t}_at_rest 2) / $(median swap_${t}_at_rest 3)" ""
  only "reload swap p50 / p90 under load, $t, ms" "$(median swap_${t}_under_load 2) / $(median swap_${t}_under_load 3)" ""
done
