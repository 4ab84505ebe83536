#!/usr/bin/env bash
# PostgreSQL's CPU per order of cluster mode's commit, by part: pgbench
# calls surge_insert_orders with one batch of BATCH orders per transaction
# (time-ordered ids, a new buyer and key per order, the text columns joined
# as the node sends them), on one connection, against variants of the
# schema a `surge serve` migrated:
#   shipped    the schema and function as they are
#   noguard    without the per-buyer guard (the SU002 SELECT)
#   nodue      without the orders_due index (the expiry job's)
#   nobysale   without the orders_by_sale index
#   control    the shipped schema, the arguments built but not inserted
# Each run gets a fresh schema; the variants run in turn, ROUNDS times.
# PostgreSQL's CPU is read from /proc: every postgres process alive, plus
# the children the postmaster reaped (pgbench's backend exits with it).
# The variants take out what the guarantees need: this says what each
# part costs, not what could ship.
# Usage: [ROUNDS=2] [BATCH=60] bench/pgcost.sh [REV=.] [seconds=8]
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-.}
SECS=${2:-8}
ROUNDS=${ROUNDS:-2}
BATCH=${BATCH:-60}
. bench/lib.sh
need pgbench psql redis-cli curl pgrep
scripts/services.sh >/dev/null
work=$(mktemp -d)
pid=
run=pc$(date +%s)$$
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  drop_run "$run"
  rm -rf "$work"
}
trap cleanup EXIT
build "$REV" "$work/surge"

# schema NAME: a schema migrated by surge serve, holding sale s (epoch 1)
schema() {
  psqlc "CREATE SCHEMA $1" >/dev/null
  "$work/surge" serve --http-addr 127.0.0.1:8510 --admin-token pgcost-admin-token-0123456789 --log-level warn \
    --redis-url redis://127.0.0.1:6379/0 --redis-prefix "$1" --node-id n0 \
    --postgres-url "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$1" >"$work/node.log" 2>&1 &
  pid=$!
  wait_ready http://127.0.0.1:8510/readyz
  curl -fs -H "Authorization: Bearer pgcost-admin-token-0123456789" -X POST http://127.0.0.1:8510/v1/sales \
    -d '{"id":"s","name":"s","stock":1000000000}' >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

args="FROM (SELECT string_agg('o_' || lpad((extract(epoch FROM clock_timestamp()) * 1000000)::bigint::text, 20, '0') || :b || '_' || g, E'\n') ids,
  string_agg('u' || :b || '_' || g, E'\n') us, string_agg('k' || :b || '_' || g, E'\n') ks FROM generate_series(1, $BATCH) g) x"
arrays="string_to_array(x.ids, E'\n'), string_to_array(x.us, E'\n'), array_fill(1::bigint, ARRAY[$BATCH]),
  string_to_array(x.ks, E'\n', E'\t'), array_fill(now(), ARRAY[$BATCH]), array_fill(now() + interval '10 minutes', ARRAY[$BATCH])"
printf '\\set b random(1, 900000000000000)\nSELECT surge_insert_orders('"'s'"', 1, %s) %s;\n' "$arrays" "$args" >"$work/insert.sql"
printf '\\set b random(1, 900000000000000)\nSELECT cardinality(string_to_array(x.ids, E'"'\\n'"')) + cardinality(string_to_array(x.us, E'"'\\n'"')) + cardinality(string_to_array(x.ks, E'"'\\n'"')) %s;\n' \
  "$args" >"$work/control.sql"

pg_ticks() {
  local t p
  t=$(awk '{print $16 + $17}' "/proc/$(pgrep -xo postgres)/stat")
  for p in $(pgrep -x postgres); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
# measure SCHEMA SCRIPT -> µs of PostgreSQL CPU per order
measure() {
  local c0 c1 out tx
  psqlc CHECKPOINT >/dev/null
  c0=$(pg_ticks)
  out=$(PGOPTIONS="-c search_path=$1" pgbench -h 127.0.0.1 -U postgres -n -c 1 -T "$SECS" -f "$2" test 2>&1)
  c1=$(pg_ticks)
  tx=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}' <<<"$out")
  [ -n "$tx" ] && [ "$tx" -gt 0 ] || { echo "pgbench failed:" >&2; echo "$out" >&2; exit 1; }
  printf '%.1f\n' "$(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / ($tx * $BATCH)" | bc -l)"
}

variants=(shipped noguard nodue nobysale control)
declare -A res
for ((r = 1; r <= ROUNDS; r++)); do
  for v in "${variants[@]}"; do
    s=${run}_${v}_$r
    schema "$s"
    script=$work/insert.sql
    case $v in
      noguard) # the function without the statement from the guard's SELECT up to the INSERT
        psqlc "SELECT pg_get_functiondef('$s.surge_insert_orders'::regproc)" |
          awk '/SELECT b.u INTO v_user/ {skip = 1} /INSERT INTO orders/ {skip = 0} !skip' >"$work/f.sql"
        echo ';' >>"$work/f.sql"
        grep -q v_user "$work/f.sql" && ! grep -q "SELECT b.u" "$work/f.sql" || { echo "noguard: the guard was not found" >&2; exit 1; }
        psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d test -f "$work/f.sql" >/dev/null ;;
      nodue) psqlc "DROP INDEX $s.orders_due" ;;
      nobysale) psqlc "DROP INDEX $s.orders_by_sale" ;;
      control) script=$work/control.sql ;;
    esac
    res[$v]+="$(measure "$s" "$script") "
    psqlc "DROP SCHEMA $s CASCADE" >/dev/null 2>&1
  done
done

printf '\npgbench -c 1 -T %s, %d orders per transaction, %d rounds, %s UTC, %s\n\n' "$SECS" "$BATCH" "$ROUNDS" "$(date -u '+%F %H:%M')" "$(revname "$REV")"
echo "| variant | µs of PostgreSQL CPU per order (rounds) |"
echo "|---|---|"
for v in "${variants[@]}"; do echo "| $v | ${res[$v]}|"; done
