#!/usr/bin/env bash
# Hot reload under load (DESIGN §7): a producer sends N commands (20 000) while a worker
# handles them; its handler records (message id, script generation) to a file. Midway the
# test rewrites the handler module three times: a new version written to a temporary file
# and renamed over the old one (how editors save), a syntax error written in place, and a
# fixed version written in place. Every id is handled exactly once, the generations follow
# each other in order, the syntax error is reported with file and line and changes nothing.
. "$(dirname "$0")/lib.sh"
N=${RELOAD_N:-20000}
mkdir -p "$WORK/worker"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("r.Do", { n = "number" })
LUA
cat >"$WORK/worker/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "worker", audit = false }
require "handlers"
LUA
# handlers GEN: the handler module of generation GEN
handlers() {
  cat <<LUA
local bus = require "moonbus"
local out = assert(io.open(os.getenv("RECORDS"), "a"))
bus.handle("r.Do", function(cmd, ctx)
  out:write(ctx.id, " ", $1, "\n")
  out:flush()
end)
LUA
}
handlers 1 >"$WORK/worker/handlers.lua"
RECORDS=$WORK/records.txt
export RECORDS

first_start "$WORK/worker" # the worker's queue exists before the producer sends
send_many worker r.Do 1 "$N" >"$WORK/producer.out" 2>"$WORK/producer.err" &
PRODUCER=$!
start_host worker "$WORK/worker"
wait_for 10 host_ready worker

gen_count() { awk -v g="$1" '$2 == g' "$RECORDS" 2>/dev/null | wc -l; }
wait_until 120 "[ \$(lines $RECORDS) -ge $((N / 5)) ]"
handlers 2 >"$WORK/worker/handlers.lua.tmp" && mv "$WORK/worker/handlers.lua.tmp" "$WORK/worker/handlers.lua"
check "a save by rename is reloaded as generation 2" wait_until 20 "grep -q 'generation 2 swapped' $WORK/worker.log"
check "the records switch to generation 2" wait_until 20 "[ \$(gen_count 2) -gt 0 ]"

wait_until 120 "[ \$(lines $RECORDS) -ge $((2 * N / 5)) ]"
handlers 2 | sed 's/^end)$/end/' >"$WORK/worker/handlers.lua" # unbalanced: a syntax error
check "the syntax error is reported with its file and line" wait_until 20 \
  "grep -Eq 'reload failed .*handlers.lua:[0-9]+: .* generation 2 keeps running' $WORK/worker.log"
grep 'reload failed' "$WORK/worker.log" | sed 's/^/# /'
before=$(gen_count 2)
check "generation 2 goes on handling after the broken save" wait_until 20 "[ \$(gen_count 2) -gt $before ]"

wait_until 120 "[ \$(lines $RECORDS) -ge $((3 * N / 5)) ]"
handlers 3 >"$WORK/worker/handlers.lua"
check "the fixed save is reloaded as generation 3" wait_until 20 "grep -q 'generation 3 swapped' $WORK/worker.log"

wait "$PRODUCER"
check "the producer sent $N commands ($(cat "$WORK/producer.out" "$WORK/producer.err" | tail -1))" \
  test "$(cat "$WORK/producer.out")" = "$N"
wait_until 240 "[ \$(lines $RECORDS) -ge $N ] && [ \"\$(depth worker)\" = 0 ]"
sleep 0.5
total=$(lines "$RECORDS")
unique=$(awk '{ print $1 }' "$RECORDS" | sort -u | wc -l)
check "every one of the $N commands was handled exactly once ($total records, $unique ids)" \
  test "$total" -eq "$N" -a "$unique" -eq "$N"
order=$(awk '{ print $2 }' "$RECORDS" | uniq | tr '\n' ' ')
check "the generations follow each other in order: $order" test "$order" = "1 2 3 "
echo "# records per generation: 1: $(gen_count 1), 2: $(gen_count 2), 3: $(gen_count 3)"
check "nothing was parked" test -z "$(parked)"
grep -E 'reloaded|reload failed' "$WORK/worker.log" | sed 's/^.*\] /# /'
check "no generation was swapped in without a reload line" \
  test "$(grep -c 'swapped in' "$WORK/worker.log")" -eq 2
kill -TERM "$LAST_PID"
wait "$LAST_PID"
check "the worker stops cleanly after the reloads (exit $?)" test $? -eq 0
exit $TAP_FAILED
