#!/usr/bin/env bash
# metrics_cost.sh N — one round of the metrics row of `make bench` (DESIGN §11): the moonbus
# pair of throughput.sh (tests/bench/moonbus_pair.sh) on RabbitMQ, each run on a fresh vhost,
# with counting off in both processes (MOONBUS_METRICS=off; no report) and on (the default:
# every message counted in the histograms, the feeder reporting every second).
# Prints "metrics_off|metrics_on N SECONDS MSG_PER_S CPU_S_PER_1000".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-20000}
AMQP=${MOONBUS_BENCH_AMQP:-$(bash "$ROOT/scripts/rabbitmq.sh" url)}
PREFIX="metrics$$-"
bash "$ROOT/scripts/rabbitmq.sh" vhosts "$PREFIX" 2 >/dev/null
trap 'bash "$ROOT/scripts/rabbitmq.sh" drop-vhosts "$PREFIX" 2 >/dev/null 2>&1' EXIT
MOONBUS_METRICS=off MOONBUS_TRANSPORT="$AMQP/${PREFIX}1" \
  bash "$ROOT/tests/bench/moonbus_pair.sh" "$N" | sed 's/^moonbus/metrics_off/'
BENCH_REPORT=1 MOONBUS_TRANSPORT="$AMQP/${PREFIX}2" \
  bash "$ROOT/tests/bench/moonbus_pair.sh" "$N" | sed 's/^moonbus/metrics_on/'
