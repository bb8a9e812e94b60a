#!/usr/bin/env bash
# run.sh — `make bench`: moonbus against the raw limit, side by side in one run (DESIGN §9).
# Alternates raw and moonbus for BENCH_ROUNDS rounds (default 3) of BENCH_N messages
# (default 20 000) and prints one table of medians with the ratio moonbus/raw, then the
# request/reply latency of moonbus on both transports. Starts a private RabbitMQ if none
# runs (scripts/rabbitmq.sh) and stops it again.
# Still to come (issue 8): a raw request/reply baseline, the SQLite raw loop, idle and
# delayed-retry memory rows, and hot-reload swap time.
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
col() { awk -v who="$1" -v c="$2" '$1 == who { print $c }' "$OUT" | median; }
raw_rate=$(col raw 4); mb_rate=$(col moonbus 4)
raw_cpu=$(col raw 5); mb_cpu=$(col moonbus 5)
printf "\n%-44s %12s %12s %8s\n" "RabbitMQ, quorum queue, confirms, prefetch 32" raw moonbus ratio
printf "%-44s %12.0f %12.0f %8.2f\n" "throughput, messages/s" "$raw_rate" "$mb_rate" \
  "$(awk -v a="$mb_rate" -v b="$raw_rate" 'BEGIN { print a / b }')"
printf "%-44s %12.4f %12.4f %8.2f\n" "CPU seconds per 1 000 messages (all processes)" "$raw_cpu" "$mb_cpu" \
  "$(awk -v a="$mb_cpu" -v b="$raw_cpu" 'BEGIN { print a / b }')"
echo
echo "request/reply, 2 000 sequential requests (moonbus only so far):"
bash tests/bench/request_latency.sh 2000
MOONBUS_TRANSPORT=$(bash scripts/rabbitmq.sh url) bash tests/bench/request_latency.sh 2000
rm -f "$OUT"
