#!/usr/bin/env bash
# A randomised hostile run (issue 15 "What must be shown"): a few thousand messages with
# random properties, header tables and bodies (fixed seed, printed; HOSTILE_SEED and
# HOSTILE_COUNT change them) from a foreign sender (tests/tools/amqp_random.c on RabbitMQ,
# rows from tests/tools/sqlite_random.lua on SQLite) into one endpoint's queue. The
# endpoint survives, the queue drains, every message is handled or parked with a reason,
# the counts add up, every message the generator calls good is handled, none twice, and
# no log line is forged.
. "$(dirname "$0")/lib.sh"
SEED=${HOSTILE_SEED:-20261201}
COUNT=${HOSTILE_COUNT:-3000}
MAX_BODY=4096
echo "# seed $SEED, $COUNT messages (HOSTILE_SEED=$SEED HOSTILE_COUNT=$COUNT to replay)"
hostile_endpoint $MAX_BODY 8

start=$SECONDS
summary=$(hostile_random h "$SEED" "$COUNT" h.Do "$MAX_BODY" "$WORK/good.txt" 2>>"$WORK/sender.log")
read -r _ sent _ good _ <<<"$summary"
echo "# the foreign sender: $summary ($((SECONDS - start)) s)"
check "the foreign sender wrote the messages ($summary)" test "${sent:-0}" -gt $((COUNT * 9 / 10))

handled() { lines "$HANDLED"; }
parked_n() { depth error 2>/dev/null || echo 0; }
settled() { [ $(( $(handled) + $(parked_n) )) -ge "$sent" ] || ! kill -0 "$H" 2>/dev/null; }
wait_until 60 settled
sleep 1
echo "# settled after $((SECONDS - start)) s: $(handled) handled, $(parked_n) parked"

check "the endpoint survived" kill -0 "$H"
check "the input queue drained ($(depth_all h 2>/dev/null) left)" test "$(depth_all h 2>/dev/null)" = 0
h=$(handled)
p=$(parked_n)
check "every message was handled or parked: $h + $p = $sent" test $((h + p)) -eq "$sent"
twice=$(awk '{ print $1 }' "$HANDLED" | sort | uniq -d | wc -l)
check "none was handled twice ($twice)" test "$twice" -eq 0
missing=$(sort "$WORK/good.txt" | comm -23 - <(awk '{ print $1 }' "$HANDLED" | sort) | head -10 | tr '\n' ' ')
check "every message the generator calls good ($good) was handled (missing: ${missing:-none})" \
  test -z "$missing"
"$MOONBUS" errors list 2>>"$WORK/cli.log" | tail -n +2 >"$WORK/errors.txt" # no header row
with_reason=$(awk -F'\t' 'NF == 5 && $1 ~ /^[0-9a-f-]+$/ && length($1) == 36 && $5 != ""' "$WORK/errors.txt" | wc -l)
check "moonbus errors list gives every parked message its id and reason ($with_reason of $p)" \
  test "$with_reason" -eq "$p"
awk -F'\t' '{ print $5 }' "$WORK/errors.txt" | sed 's/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn |
  head -20 | sed 's/^/# reason: /'
forged=$(foreign_log_lines "$WORK/h.log" | head -3)
check "every log line is a moonbus log line (found: ${forged:-none})" test -z "$forged"

stop_host "$H" 20
check "the endpoint stops cleanly within 20 s (exit $?)" test $? -eq 0
check "no sanitizer report" bash -c "! grep -aq 'Sanitizer' '$WORK/h.log'"
exit $TAP_FAILED
