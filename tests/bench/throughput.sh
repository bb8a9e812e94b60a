#!/usr/bin/env bash
# throughput.sh N — one round of end-to-end throughput on RabbitMQ, raw against moonbus,
# on a fresh vhost each: N persistent ~200-byte messages to a quorum queue with publisher
# confirms (window 512) and a consumer with manual acks and prefetch 32.
#   raw:     build/bench/raw_amqp (one process, a publisher thread and a consumer)
#   moonbus: tests/bench/moonbus_pair.sh N — a feeder endpoint (`moonbus run`) sends N in one
#            handler's outbox on a kick; a sink endpoint (moonbus.so in lua5.4, the same C
#            core) handles them with a no-op Lua handler, concurrency 32, audit off (the raw
#            side keeps no audit either).
# Prints two lines "raw|moonbus N SECONDS MSG_PER_S CPU_S_PER_1000" (CPU: every process).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-20000}
AMQP=${MOONBUS_BENCH_AMQP:-$(bash "$ROOT/scripts/rabbitmq.sh" url)}
PREFIX="bench$$-"
bash "$ROOT/scripts/rabbitmq.sh" vhosts "$PREFIX" 2 >/dev/null
trap 'bash "$ROOT/scripts/rabbitmq.sh" drop-vhosts "$PREFIX" 2 >/dev/null 2>&1' EXIT

"$ROOT/build/bench/raw_amqp" "$AMQP/${PREFIX}1" bench.raw "$N"

MOONBUS_TRANSPORT="$AMQP/${PREFIX}2" bash "$ROOT/tests/bench/moonbus_pair.sh" "$N"
