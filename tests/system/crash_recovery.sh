#!/usr/bin/env bash
# A host is killed with SIGKILL in the middle of a stream: no message is lost. Its
# unfinished messages come back (SQLite: when their lease expires; RabbitMQ: when the broker
# sees the connection drop) and a second host handles them.
. "$(dirname "$0")/lib.sh"
[ "$TRANSPORT" = sqlite ] && export MOONBUS_TRANSPORT="$MOONBUS_TRANSPORT?lease=1"
N=2000
# The feeder, which is never killed, turns one command into N items for the worker.
feeder_and_worker
export MOONBUS_LOG=warn
OUT=$WORK/handled.txt start_host a "$WORK/worker"
A=$LAST_PID
wait_for 10 host_ready a
start_host feeder "$WORK/feeder"
wait_for 10 host_ready feeder
"$MOONBUS" send feeder work.Kick "{\"n\": $N}" >/dev/null
wait_until 60 '[ "$(lines "$WORK/handled.txt")" -ge 300 ]'
kill -KILL $A
wait $A 2>/dev/null
before=$(lines "$WORK/handled.txt")
check "the first host was killed mid-stream ($before of $N handled)" test "$before" -lt "$N"
if [ "$TRANSPORT" = sqlite ]; then
  leased=$(sql "select count(*) from messages where queue='worker' and lease_owner is not null")
  echo "# $leased messages were leased by the killed host"
fi
OUT=$WORK/handled.txt start_host b "$WORK/worker"
B=$LAST_PID
distinct() { sort -u "$WORK/handled.txt" | wc -l; }
wait_until 120 '[ "$(distinct)" -ge "$N" ]'
check "every message handled after the crash ($(distinct) distinct of $N)" test "$(distinct)" -eq "$N"
dups=$(( $(lines "$WORK/handled.txt") - $(distinct) ))
echo "# $dups messages handled twice (in flight when the host was killed; at-least-once)"
check "duplicates only from the killed host's in-flight window ($dups <= 16)" test "$dups" -le 16
redelivered=$(grep -c . "$WORK/b.log" || true)
check "the queue is empty" test "$(depth worker)" -eq 0
kill -TERM $B
wait $B
check "the second host exits 0" test $? -eq 0
exit $TAP_FAILED
