#!/usr/bin/env bash
# run.sh — `make bench`: moonbus against the raw limit, side by side in one run (DESIGN §9).
# Alternates raw and moonbus for BENCH_ROUNDS rounds (default 3) of BENCH_N messages
# (default 20 000) and prints one table of medians with the ratio moonbus/raw, then the
# request/reply latency of moonbus on both transports. Starts a private RabbitMQ if none
# runs (scripts/rabbitmq.sh) and stops it again.
# Then hot-reload swap times (tests/bench/reload_swap.sh) on both transports.
# Still to come (issue 8): the SQLite raw loop, idle and delayed-retry memory rows.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${BENCH_N:-20000}
ROUNDS=${BENCH_ROUNDS:-3}
STARTED=0
if ! bash scripts/rabbitmq.sh status >/dev/null 2>&1; then
  bash scripts/rabbitmq.sh start >/dev/null
  STARTED=1
fi
trap '[ "$STARTED" -eq 1 ] && bash scripts/rabbitmq.sh stop >/dev/null 2>&1' EXIT
OUT=$(mktemp)
echo "# $(nproc) cores, $(date -u +%Y-%m-%d), $N messages x $ROUNDS rounds (BENCH_N, BENCH_ROUNDS)"
for r in $(seq 1 "$ROUNDS"); do
  bash tests/bench/throughput.sh "$N" | tee -a "$OUT" | sed "s/^/# round $r: /"
done
median() { # median of the numbers on stdin
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
col() { awk -v who="$1" -v c="$2" '$1 == who && NF == 5 || $1 == who && who == "mbrpc" { print $c }' "$OUT" | median; }
raw_rate=$(col raw 4); mb_rate=$(col moonbus 4)
raw_cpu=$(col raw 5); mb_cpu=$(col moonbus 5)
printf "\n%-44s %12s %12s %8s\n" "RabbitMQ, quorum queue, confirms, prefetch 32" raw moonbus ratio
printf "%-44s %12.0f %12.0f %8.2f\n" "throughput, messages/s" "$raw_rate" "$mb_rate" \
  "$(awk -v a="$mb_rate" -v b="$raw_rate" 'BEGIN { print a / b }')"
printf "%-44s %12.4f %12.4f %8.2f\n" "CPU seconds per 1 000 messages (all processes)" "$raw_cpu" "$mb_cpu" \
  "$(awk -v a="$mb_cpu" -v b="$raw_cpu" 'BEGIN { print a / b }')"
# request/reply, one request in flight: raw_rpc against bus.request, alternating
AMQP=$(bash scripts/rabbitmq.sh url)
bash scripts/rabbitmq.sh vhosts "rpc$$-" "$ROUNDS" >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  ./build/bench/raw_rpc "$AMQP/rpc$$-$r" bench.rpc 2000 | tee -a "$OUT" | sed "s/^/# round $r: rpc /"
  MOONBUS_TRANSPORT="$AMQP/rpc$$-$r" bash tests/bench/request_latency.sh 2000 |
    awk '{ print "mbrpc", $2, $5, $8, $11, $14 }' | tee -a "$OUT" | sed "s/^/# round $r: rpc /"
done
bash scripts/rabbitmq.sh drop-vhosts "rpc$$-" "$ROUNDS" >/dev/null 2>&1 || true
raw_p50=$(awk '$1 == "raw" && NF == 6 { print $3 }' "$OUT" | median)
raw_p99=$(awk '$1 == "raw" && NF == 6 { print $5 }' "$OUT" | median)
mb_p50=$(col mbrpc 3); mb_p99=$(col mbrpc 5)
printf "%-44s %12.3f %12.3f %8.2f\n" "request/reply p50, ms (1 in flight)" "$raw_p50" "$mb_p50" \
  "$(awk -v a="$mb_p50" -v b="$raw_p50" 'BEGIN { print a / b }')"
printf "%-44s %12.3f %12.3f %8.2f\n" "request/reply p99, ms (1 in flight)" "$raw_p99" "$mb_p99" \
  "$(awk -v a="$mb_p99" -v b="$raw_p99" 'BEGIN { print a / b }')"
echo
echo "SQLite request/reply (no raw baseline yet):"
bash tests/bench/request_latency.sh 2000
echo
echo "Hot reload, swap time in ms (SIGHUP; under load: every 20 ms while draining $N commands):"
bash tests/bench/reload_swap.sh 50 | sed 's/^/  sqlite   /'
bash scripts/rabbitmq.sh vhosts "swap$$-" 1 >/dev/null
MOONBUS_TRANSPORT="$AMQP/swap$$-1" bash tests/bench/reload_swap.sh 50 | sed 's/^/  rabbitmq /'
bash scripts/rabbitmq.sh drop-vhosts "swap$$-" 1 >/dev/null 2>&1 || true
rm -f "$OUT"
