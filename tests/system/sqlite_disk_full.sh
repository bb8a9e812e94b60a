#!/usr/bin/env bash
# The disk under a SQLite bus fills up while an endpoint works (a small tmpfs; needs root,
# as CI has). The host pauses with one log line instead of retrying in a tight loop (it
# used to spin at 96 % CPU writing ~200 000 log lines in 4 s), stays idle while paused,
# resumes by itself with one line once space is freed, and every message is handled: none
# lost, none parked. SQLite only (scripts/test.sh runs sqlite_*.sh on SQLite alone).
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then
  echo "ok - # SKIP mounting a tmpfs needs root"
  exit 0
fi
N=2000
DISK=$WORK/disk
mkdir -p "$DISK"
mount -t tmpfs -o size=12m,mode=0700 tmpfs "$DISK" || { not_ok "mount a 12 MiB tmpfs on $DISK"; exit 1; }
on_exit() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  umount "$DISK" 2>/dev/null || umount -l "$DISK"
  cleanup
}
trap on_exit EXIT
export MOONBUS_TRANSPORT="sqlite://$DISK/bus.db"
feeder_and_worker
export MOONBUS_LOG=warn
start_host feeder "$WORK/feeder"
wait_for 10 host_ready feeder
OUT=$WORK/handled.txt start_host worker "$WORK/worker"
W=$LAST_PID
wait_for 10 host_ready worker
"$MOONBUS" send feeder work.Kick "{\"n\": $N}" >/dev/null
wait_until 60 '[ "$(lines "$WORK/handled.txt")" -ge 200 ]'
dd if=/dev/zero of="$DISK/filler" bs=1M 2>/dev/null
dd if=/dev/zero of="$DISK/filler2" bs=4k 2>/dev/null
echo "# disk filled after $(lines "$WORK/handled.txt") of $N handled: $(df -k "$DISK" | awk 'NR==2 {print $4}') KiB free"
paused() { grep -c "disk full: paused" "$WORK/worker.log" || true; }
wait_until 30 '[ "$(paused)" -ge 1 ]'
check "the worker logged that it paused, naming the database" \
  grep -q "disk full: paused receiving from queue 'worker' (sqlite $DISK/bus.db" "$WORK/worker.log"
# CPU of the worker over 3 s of the pause (utime + stime from /proc, in clock ticks)
ticks() { awk '{print $14 + $15}' "/proc/$W/stat"; }
sleep 0.5
before=$(ticks)
sleep 3
used=$(( $(ticks) - before ))
hz=$(getconf CLK_TCK)
echo "# worker CPU while paused: $used ticks of 1/$hz s in 3 s ($(awk -v u="$used" -v h="$hz" 'BEGIN {printf "%.1f", 100 * u / h / 3}') %)"
check "the paused worker is idle (<= 5 % CPU: $used ticks in 3 s)" test "$used" -le $((hz * 3 / 20))
check "the worker is alive while the disk is full" kill -0 "$W"
lines_paused=$(lines "$WORK/worker.log")
echo "# $lines_paused lines in the worker's log while paused"
check "no flood of log lines while paused ($lines_paused <= 80)" test "$lines_paused" -le 80
rm -f "$DISK/filler" "$DISK/filler2"
wait_until 20 'grep -q "disk full: resumed" "$WORK/worker.log"'
check "the worker resumed by itself once space was freed" grep -q "disk full: resumed receiving from queue 'worker'" "$WORK/worker.log"
distinct() { sort -u "$WORK/handled.txt" | wc -l; }
wait_until 90 '[ "$(distinct)" -ge "$N" ]'
check "every message handled ($(distinct) distinct of $N)" test "$(distinct)" -eq "$N"
wait_until 10 '[ "$(sql "select count(*) from messages where queue = '"'worker'"'")" -eq 0 ]'
check "the worker's queue is empty" test "$(sql "select count(*) from messages where queue = 'worker'")" -eq 0
check "nothing parked" test "$(sql "select count(*) from messages where queue = 'error'")" -eq 0
audited=$(sql "select count(distinct json_extract(body, '\$.n')) from messages where queue = 'audit' and type = 'work.Item'")
check "every message audited once handled ($audited of $N)" test "$audited" -eq "$N"
check "one 'paused' line and one 'resumed' line" \
  test "$(paused)" -eq 1 -a "$(grep -c "disk full: resumed" "$WORK/worker.log")" -eq 1
echo "# $(lines "$WORK/worker.log") lines in the worker's log in all"
kill -TERM "$W"
wait "$W"
check "the worker exits 0" test $? -eq 0
check "no message left leased" test "$(sql "select count(*) from messages where lease_owner is not null and queue != 'feeder'")" -eq 0
exit $TAP_FAILED
