#!/usr/bin/env bash
# Out-of-order protection (issue 19): a shuffled stream of 1 000 status updates for 50 jobs
# (each job's versions 1..20 in random order) reaches an endpoint whose handler, declared
# with { order_by = "version", key = "job" }, records each version it applies. Afterwards:
# each job's last recorded version is 20, no stale version was ever applied after a newer
# one, and every update was either handled or discarded (counted through the audit copies,
# those of the discarded ones carrying moonbus.discarded, and the host's log).
# On SQLite, a second round has two competing hosts whose handlers take a moment, so that
# both hold updates of one job at once: the highest value moves in the transaction of the
# ack, so the audit copies of handled updates (committed with their ack, in commit order)
# still increase per job, and an update overtaken while its handler ran is discarded.
. "$(dirname "$0")/lib.sh"
JOBS=${JOBS:-50}
VERSIONS=${VERSIONS:-20}
N=$((JOBS * VERSIONS)) # at most 1 000: the audit queue is read in one browse
mkdir -p "$WORK/tracker"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("track.Status", { job = "string", version = "number" })
LUA
# tracker_endpoint NAME: an endpoint NAME (audit queue NAME-audit) that records each version
# it applies to \$OUT, after spinning \$SPIN_MS ms (0 by default).
tracker_endpoint() {
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1/endpoint.lua" <<LUA
package.path = "$WORK/?.lua;" .. package.path
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "$1", audit = "$1-audit", state = "sqlite://$WORK/state.db" }
local out = assert(io.open(os.getenv("OUT"), "a"))
local spin = (tonumber(os.getenv("SPIN_MS")) or 0) / 1000
bus.handle("track.Status", function(s)
  local t = os.clock()
  while os.clock() - t < spin do end
  out:write(s.job, " ", math.tointeger(s.version), "\n")
  out:flush()
end, { order_by = "version", key = "job" })
LUA
}
tracker_endpoint tracker
cat >"$WORK/send_shuffled.lua" <<'LUA'
-- Sends every (job, version) once, in an order shuffled with a fixed seed.
local testing = require "moonbus.testing"
local jobs, versions, dest = tonumber(arg[1]), tonumber(arg[2]), arg[3]
local bus = testing.fresh(os.getenv("MOONBUS_TRANSPORT"))
require "contracts"
bus.endpoint { name = "status_feed", routes = { ["track.Status"] = dest }, audit = false }
local stream = {}
for j = 1, jobs do
  for v = 1, versions do stream[#stream + 1] = { job = "job-" .. j, version = v } end
end
math.randomseed(19)
for i = #stream, 2, -1 do
  local k = math.random(i)
  stream[i], stream[k] = stream[k], stream[i]
end
local sent, done, failure = 0, false, nil
bus.after(0, function()
  local ok, err = pcall(function()
    for _, s in ipairs(stream) do
      bus.send("track.Status", s)
      sent = sent + 1
    end
  end)
  failure, done = not ok and tostring(err) or nil, true
end)
assert(testing.run_until(function() return done end, 600), "sent only " .. sent)
assert(not failure, failure)
print(sent)
LUA
export MOONBUS_LOG=info
OUT=$WORK/applied.txt start_host tracker "$WORK/tracker"
HOST=$LAST_PID
wait_for 10 host_ready tracker
# send_shuffled DEST: the stream to queue DEST; prints how many were sent.
send_shuffled() {
  LUA_PATH="$WORK/?.lua;$ROOT/modules/?.lua;;" LUA_CPATH="$ROOT/build/?.so;;" MOONBUS_LOG=error \
    lua5.4 "$WORK/send_shuffled.lua" "$JOBS" "$VERSIONS" "$1"
}
sent=$(send_shuffled tracker)
check "the shuffled stream of $N updates is sent ($sent)" test "$sent" = "$N"
# audit ENDPOINT: one line per audit copy, oldest (first committed) first: "H job version"
# for a handled update, "D<tab>reason" for a discarded one (it carries moonbus.discarded).
audit() {
  mb_lua "for _, m in ipairs(host.browse('$1-audit', 1000)) do
    local why = m.headers['moonbus.discarded']
    print(why and ('D\t' .. why) or ('H ' .. m.body:match('\"job\":\"([^\"]+)\"') .. ' '
      .. math.tointeger(tonumber(m.body:match('\"version\":([%d.]+)')))))
  end" >"$WORK/audit.txt" 2>"$WORK/audit.err"
}
settled() { audit "$1" && [ "$(lines "$WORK/audit.txt")" -ge "$N" ]; }
# increasing: 0 if the handled updates of each job, in commit order, increase and end at
# $VERSIONS for every job; prints the first offence otherwise.
increasing() {
  awk -v v="$VERSIONS" -v jobs="$JOBS" '$1 == "H" {
      if ($3 <= seen[$2]) { print "job " $2 ": " $3 " after " seen[$2]; bad = 1 }
      seen[$2] = $3
    }
    END { n = 0; for (k in seen) if (seen[k] == v) n++
      if (n != jobs) { print n " of " jobs " jobs end at " v; bad = 1 }
      exit bad }' "$WORK/audit.txt"
}
wait_for 120 settled tracker
handled=$(grep -c '^H' "$WORK/audit.txt")
discarded=$(grep -c '^D' "$WORK/audit.txt")
applied=$(lines "$WORK/applied.txt")
check "handled + discarded = $N ($handled + $discarded)" test $((handled + discarded)) -eq "$N"
check "the handler ran once per handled update ($applied runs, $handled handled)" \
  test "$applied" -eq "$handled"
check "stale updates were discarded ($discarded)" test "$discarded" -gt 0
last_ok=$(awk -v v="$VERSIONS" '{ last[$1] = $2 } END { n = 0; for (k in last) if (last[k] == v) n++; print n }' \
  "$WORK/applied.txt")
check "each job's last recorded version is $VERSIONS ($last_ok of $JOBS jobs)" test "$last_ok" -eq "$JOBS"
regress=$(awk '{ if ($2 <= seen[$1]) bad++; seen[$1] = $2 } END { print bad + 0 }' "$WORK/applied.txt")
check "no version was applied after a newer one of its job ($regress)" test "$regress" -eq 0
bad_reason=$(awk -F'\t' '$1 == "D" && $2 !~ /^stale: version [0-9]+ <= [0-9]+ already handled for job job-[0-9]+$/' \
  "$WORK/audit.txt" | wc -l)
check "every discarded copy says why in moonbus.discarded ($bad_reason without)" test "$bad_reason" -eq 0
check "in commit order, each job's handled versions increase up to $VERSIONS" increasing
check "no stale version was newer than the highest it met" \
  bash -c "! awk -F'\t' '\$1 == \"D\" { split(\$2, w, \" \"); if (w[3] + 0 > w[5] + 0) bad = 1 } END { exit !bad }' '$WORK/audit.txt'"
logged=$(grep -c 'discarded: stale: ' "$WORK/tracker.log")
check "each discard is logged ($logged)" test "$logged" -eq "$discarded"
check "nothing is parked or left in the queue" test "$(depth tracker)" -eq 0 -a "$(depth error)" -eq 0
if [ "$TRANSPORT" = sqlite ]; then
  marks=$(sql "select count(*), min(value), max(value) from marks where endpoint = 'tracker'")
  check "the bus database keeps one mark per job, each at $VERSIONS ($marks)" \
    test "$marks" = "$JOBS|$VERSIONS|$VERSIONS"
else
  marks=$(sqlite3 "$WORK/state.db" "select count(*), min(value), max(value) from marks where endpoint = 'tracker'")
  check "the local state store keeps one mark per job, each at $VERSIONS ($marks)" \
    test "$marks" = "$JOBS|$VERSIONS|$VERSIONS"
fi
kill -TERM $HOST
wait $HOST
rc=$?
check "the host exits 0 on SIGTERM ($rc)" test $rc -eq 0
check "its last line counts them ($(grep -o 'stopped: .*' "$WORK/tracker.log" | head -1))" \
  grep -q "stopped: $handled handled, 0 failed, 0 parked, $discarded discarded" "$WORK/tracker.log"
check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$WORK/tracker.log'"

[ "$TRANSPORT" = sqlite ] || exit $TAP_FAILED
# --- two competing hosts (SQLite) --------------------------------------------------------
tracker_endpoint tracker2
export SPIN_MS=2
OUT=$WORK/applied2a.txt start_host t2a "$WORK/tracker2"
A=$LAST_PID
OUT=$WORK/applied2b.txt start_host t2b "$WORK/tracker2"
B=$LAST_PID
wait_for 10 host_ready t2a
wait_for 10 host_ready t2b
sent=$(send_shuffled tracker2)
check "two hosts: the stream of $N updates is sent ($sent)" test "$sent" = "$N"
wait_for 120 settled tracker2
handled=$(grep -c '^H' "$WORK/audit.txt")
discarded=$(grep -c '^D' "$WORK/audit.txt")
check "two hosts: handled + discarded = $N ($handled + $discarded)" \
  test $((handled + discarded)) -eq "$N"
check "two hosts: in commit order, each job's handled versions increase up to $VERSIONS" increasing
overtaken=$(grep -c 'was overtaken while it was handled' "$WORK/audit.txt")
echo "# $overtaken updates were overtaken while their handler ran (discarded, nothing sent)"
check "two hosts: both took part ($(lines "$WORK/applied2a.txt"), $(lines "$WORK/applied2b.txt"))" \
  test "$(lines "$WORK/applied2a.txt")" -gt 0 -a "$(lines "$WORK/applied2b.txt")" -gt 0
marks=$(sql "select count(*), min(value), max(value) from marks where endpoint = 'tracker2'")
check "two hosts: one mark per job, each at $VERSIONS ($marks)" test "$marks" = "$JOBS|$VERSIONS|$VERSIONS"
kill -TERM $A $B
wait $A; ra=$?
wait $B; rb=$?
check "two hosts: both exit 0 on SIGTERM ($ra, $rb)" test $ra -eq 0 -a $rb -eq 0
check "two hosts: no sanitizer report" bash -c "! grep -q 'Sanitizer' '$WORK/t2a.log' '$WORK/t2b.log'"
exit $TAP_FAILED
