#!/usr/bin/env bash
# layers.sh — checks that the include graph and struct ownership say what STYLE.md says
# (run by make test; prints TAP lines):
#   lua.h / lauxlib.h / lualib.h only in host/vm.c, host/sched.c, host/reload.c, bindings/
#   rabbitmq-c only in host/transport/rabbitmq*; sqlite3.h only in host/transport/sqlite* and
#   host/ops/store_sqlite*; microhttpd.h only in host/http.c; libpq-fe.h only in host/pg.c
#   every struct a header declares opaque (typedef struct mb_x mb_x;) has its fields in
#   exactly one .c file, and no header spells them out (mb_transport, mb_ops_store and
#   mb_claim_store excepted: the vtable's base, which each implementation extends).
set -uo pipefail
cd "$(dirname "$0")/.."
n=0
report() { # report OK|FAIL description [details]
  n=$((n + 1))
  if [ "$1" = OK ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; echo "$3" | sed 's/^/#   /'; fi
}
sources() { ls host/*.[ch] host/transport/*.[ch] host/ops/*.[ch] bindings/*.[ch]; }
only_in() { # only_in REGEX-OF-INCLUDE ALLOWED-PATH-REGEX what
  local bad
  bad=$(sources | xargs grep -lE "#include <($1)" | grep -vE "$2" || true)
  if [ -z "$bad" ]; then report OK "$3"; else report FAIL "$3" "also in: $bad"; fi
}
only_in 'lua\.h|lauxlib\.h|lualib\.h' '^(host/(vm|sched|reload)\.c|bindings/)' \
  "lua.h only in vm.c, sched.c, reload.c and bindings/"
only_in 'rabbitmq-c/|amqp\.h' '^host/transport/rabbitmq' "rabbitmq-c only in transport/rabbitmq*"
only_in 'sqlite3\.h' '^host/(transport/sqlite|ops/store_sqlite)' \
  "sqlite3.h only in transport/sqlite* and ops/store_sqlite*"
only_in 'microhttpd\.h' '^host/http\.c' "microhttpd.h only in http.c"
only_in 'libpq-fe\.h|libpq/|postgresql/' '^host/pg\.c' "libpq-fe.h only in pg.c"
opaque=$(grep -hoE '^typedef struct (mb_[a-z_]+) \1;' host/*.h host/transport/*.h host/ops/*.h bindings/*.h |
  awk '{ print $3 }' | grep -vxE 'mb_transport|mb_ops_store|mb_claim_store' | sort -u)
problems=""
for s in $opaque; do
  defs=$(sources | xargs grep -lE "^(typedef )?struct $s \{" || true)
  count=$(echo "$defs" | grep -c . || true)
  if [ "$count" -ne 1 ] || echo "$defs" | grep -q '\.h$'; then
    problems="$problems$s: fields in ${defs:-nowhere}"$'\n'
  fi
done
if [ -z "$problems" ]; then
  report OK "$(echo "$opaque" | wc -w) opaque structs, each with its fields in one .c file"
else
  report FAIL "opaque structs have their fields in one .c file" "$problems"
fi
