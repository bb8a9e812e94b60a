#!/usr/bin/env bash
# Rows written into the bus database by another program (the sqlite3 shell here), with an
# empty or foreign id, no type, a NUL byte in the type, headers that are not JSON, break the
# header rules, or hold 60 000 keys, between good ones: the host never exits, parks each bad
# row with its reason, handles the good ones (a foreign id is fine), and nothing stays at
# the head of the queue. The 60 000-key row used to stall every process for seconds (its
# headers were decoded in quadratic time under the write lock). SQLite only.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/worker"
cat >"$WORK/worker/endpoint.lua" <<LUA
local bus = require "moonbus"
bus.command("work.Item", { n = "number" })
bus.endpoint { name = "worker" }
local out = assert(io.open(os.getenv("OUT"), "a"))
bus.handle("work.Item", function(item, ctx)
  out:write(item.n, " ", ctx.id, " ", ctx.headers["moonbus.foreign_id"] or "-", "\n")
  out:flush()
end)
LUA
OUT=$WORK/handled.txt first_start "$WORK/worker"
export MOONBUS_LOG=warn
row() { # row ID-SQL TYPE-SQL HEADERS-SQL BODY
  sql "insert into messages(queue, id, type, headers, body, visible_at)
       values('worker', $1, $2, $3, '$4', 0)"
}
kind="'{\"moonbus.kind\":\"command\"}'"
good_id="'0192b7c1-5f3a-7c2e-8a1b-3c4d5e6f7a8b'"
row "$good_id" "'work.Item'" "$kind" '{"n":1}'
row "''" "NULL" "'{}'" '{"n":100}'                                      # no id, no type
row "'order-17'" "'work.Item'" "$kind" '{"n":2}'                        # a foreign id: handled
row "'x'" "'work.Item'" "'not json'" '{"n":101}'
row "'x'" "'work.Item'" "'{\"moonbus.kind\":\"command\",\"has space\":\"v\"}'" '{"n":102}'
row "'x'" "cast(x'776f726b2e004974656d' as text)" "$kind" '{"n":103}' # a NUL in the type
sql "insert into messages(queue, id, type, headers, body, visible_at)
     select 'worker', 'x', 'work.Item', json_insert((with recursive k(i) as (select 1 union all
       select i + 1 from k where i < 59999) select json_group_object('k' || i, 'v') from k),
       '$.\"moonbus.kind\"', 'command'), '{\"n\":104}', 0"
row "'y'" "'work.Item'" "$kind" '{"n":3}'
echo "# 8 rows written, $(sql "select length(headers) from messages where body like '%104%'") bytes of headers in the largest"
start=$(date +%s.%N)
OUT=$WORK/handled.txt start_host worker "$WORK/worker"
W=$LAST_PID
settled() { [ "$(sql "select count(*) from messages where queue = 'worker'")" -eq 0 ]; }
wait_until 60 settled
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')
echo "# the queue settled $took s after the host started"
check "the queue is empty: every row handled or parked" settled
check "the host is alive" kill -0 "$W"
check "settled within 10 s (the 60 000-key row stalled the lease ~26 s under ASan)" \
  awk -v t="$took" 'BEGIN {exit !(t < 10)}'
handled=$(awk '{print $1}' "$WORK/handled.txt" 2>/dev/null | sort -n | tr '\n' ' ')
check "the good rows are handled, the foreign id too (handled: $handled)" test "$handled" = "1 2 3 "
check "the foreign id is kept beside a new UUID" grep -Eq '^2 [0-9a-f-]{36} order-17$' "$WORK/handled.txt"
reason() { sql "select json_extract(headers, '\$.\"moonbus.exception.message\"') from messages
                where queue = 'error' and json_extract(body, '\$.n') = $1"; }
check "no id and no type: parked, 'has no type'" grep -q "has no type" <<<"$(reason 100)"
check "headers not JSON: parked as malformed" grep -q "malformed envelope: malformed headers" <<<"$(reason 101)"
check "a bad header key: parked naming it" grep -q "header 'has space'" <<<"$(reason 102)"
check "a NUL in the type: parked" grep -q "NUL byte" <<<"$(reason 103)"
check "60 000 headers: parked, over the limit of 256" grep -q "60000 headers, over the limit of 256" <<<"$(reason 104)"
ids=$(sql "select count(*) from messages where queue = 'error' and length(id) = 36
           and json_extract(headers, '\$.\"moonbus.foreign_id\"') is not null")
check "every parked row has a UUID and its original id recorded ($ids of 5)" test "$ids" -eq 5
kill -TERM "$W"
wait "$W"
check "the host exits 0" test $? -eq 0
exit $TAP_FAILED
