#!/usr/bin/env bash
# Cluster-mode benchmark, all in one run on this machine, side by side:
#   a. ceiling:  a minimal net/http handler answering a fixed JSON body
#   f. cluster floor: the same handler answering only after, per group of
#                waiting requests, one Redis DECRBY and one PostgreSQL INSERT
#                of their keys (bench/ceiling -redis -postgres): the least a
#                node that waits on Redis and PostgreSQL does
#   b. baseline: the usual tutorial design (bench/baseline: one Redis Lua call
#                and one autocommit PostgreSQL INSERT per purchase)
#   c. surge serve in cluster mode, one node
#   d. surge serve in cluster mode, two nodes sharing Redis and PostgreSQL
#      (one wrk per node, connections and threads split; the rates are summed)
#   e. with REDIS_CLUSTER=1: one node on a 3-master Redis Cluster of the
#      script's own (ports 7301-7303), the sale split into 3 buckets
#      (--cluster-buckets 3) so its keys spread over the masters
# First wrk with bench/purchase.lua (every request a new buyer with its own
# Idempotency-Key): a reserve-heavy spike (stock 10^9, so every request
# reserves) for b, c, d, and a sell-out for b and c (stock 1,000 sold in the
# first milliseconds, then the sold-out path). Then `surge bench` open loop
# at half of each cluster configuration's wrk maximum (latency without
# coordinated omission), verified from the export. After every run the
# orders in PostgreSQL are checked against the stock (no oversell, one order
# per buyer, Redis's remaining = stock - units in PostgreSQL).
#
# Each scenario gets its own PostgreSQL schema (search_path in the URL) and
# Redis key prefix; all are dropped at exit. Needs Redis on 127.0.0.1:6379
# and PostgreSQL on 127.0.0.1:5432, database test (scripts/services.sh).
#
# The machine is shared, so the wrk part runs ROUNDS times (default 3), each
# round every scenario in turn on fresh state, and the report gives every
# round and the median; the ratios are taken within each round. The
# table's CPU columns show where the machine's time went, "other" included
# (work of other processes on the machine: when it is large, the round was
# disturbed).
#
# Usage: [ROUNDS=3] [REDIS_CLUSTER=1] bench/cluster.sh [duration=10s] [connections=128] [threads=2]
# OUT_DIR=DIR keeps the raw outputs (wrk, surge bench JSON, server logs).
# PROFILE_DIR=DIR also saves CPU profiles of the (first) cluster node during
# round 1's wrk reserve-heavy runs (profiling costs a few % of throughput).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
CONNS=${2:-128}
THREADS=${3:-2}
ROUNDS=${ROUNDS:-3}
secs=${DUR%s}
. bench/lib.sh
need wrk jq bc curl psql redis-cli pgrep
scripts/services.sh >/dev/null

work=$(mktemp -d)
run=cb$(date +%s)$$
REDIS=redis://127.0.0.1:6379/0
PGBASE='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
new_schema() { # new_schema NAME: creates schema ${run}_NAME; PGURL is its URL
  local s=${run}_$1
  psqlc "CREATE SCHEMA $s" >/dev/null
  PGURL="$PGBASE&search_path=$s"
}
pids=()
rc_pids=()
cleanup() {
  if [ -n "${OUT_DIR:-}" ]; then
    mkdir -p "$OUT_DIR" && cp "$work"/*.out "$work"/*.json "$work"/*.log "$work"/results "$work"/checks "$OUT_DIR"/ 2>/dev/null || true
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${rc_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  drop_run "$run"
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/surge" ./cmd/surge
go build -o "$work/ceiling" ./bench/ceiling
go build -o "$work/baseline" ./bench/baseline
# purchase.lua with a buyer-id tag per wrk process, so two wrk processes
# started in the same second (the two-node runs) draw distinct buyers.
cat >"$work/tagged.lua" <<'EOF'
dofile("bench/purchase.lua")
local base_init = init
function init(args)
  base_init(args)
  prefix = (args[2] or "") .. prefix
end
EOF

for port in 8090 8091 8097 8110 8111 8120 8121 ${REDIS_CLUSTER:+7301 7302 7303}; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is in use; this script needs it" >&2; exit 1; fi
done
wait_any() { for _ in $(seq 150); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; exit 1; }
stop() { for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

# CPU accounting: user+system clock ticks of processes, of every postgres
# process (backends come and go), and of the machine.
ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$s"; }
pg_snap() { local p; for p in $(pgrep -x postgres); do awk -v p="$p" '{print p, $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done; }
# CPU of this shell's children that have exited and been waited for (wrk).
child_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }
redis_pid=$(pgrep -x redis-server | head -1)
tck=$(getconf CLK_TCK)

# run_wrk "SERVER_PIDS" URL SALE [URL SALE ...]: one wrk per URL at the same
# time, CONNS and THREADS split between them. Sets W_RPS (sum), W_P99 (ms,
# the worst), W_OK (2xx), W_BAD (non-2xx), W_REQS, and CPU µs per request of
# the servers (W_SRV), Redis (W_RED), PostgreSQL (W_PG), wrk (W_WRK) and
# everything else on the machine (W_OTH: kernel threads, other tenants),
# plus W_IDLE (% of the machine idle) and the kernel's softirq time (W_IRQ:
# mostly loopback TCP; the processes' own times already include it, as
# the ceiling's run shows, so it is not subtracted again from W_OTH).
run_wrk() {
  local spids=$1; shift
  local n=$(($# / 2)) i=0
  local c=$((CONNS / n)) t=$((THREADS / n)); ((t >= 1)) || t=1
  local s0 r0 m0 k0 s1 r1 m1 k1
  s0=$(ticks $spids); r0=$(ticks $redis_pid); pg_snap >"$work/pg0"; m0=$(head -1 /proc/stat); k0=$(child_ticks)
  local wp=()
  while (($#)); do
    wrk -t"$t" -c"$c" -d"$DUR" --latency -s "$work/tagged.lua" "$1" -- "$2" "n$i-" >"$work/wrk$i.out" 2>&1 &
    wp+=($!); shift 2; i=$((i + 1))
  done
  wait "${wp[@]}"
  s1=$(ticks $spids); r1=$(ticks $redis_pid); pg_snap >"$work/pg1"; m1=$(head -1 /proc/stat); k1=$(child_ticks)
  W_RPS=0; W_P99=0; W_BAD=0; W_REQS=0
  for ((j = 0; j < n; j++)); do
    local o=$work/wrk$j.out rps p99 bad reqs
    rps=$(awk '/^Requests\/sec/ {print $2}' "$o")
    p99=$(awk -F= '/p99_us=/ {printf "%.2f", $2 / 1000}' "$o")
    bad=$(awk '/Non-2xx/ {print $5}' "$o"); bad=${bad:-0}
    reqs=$(awk '/requests in/ {print $1}' "$o")
    [ -n "$rps" ] || { echo "wrk failed:" >&2; cat "$o" >&2; exit 1; }
    W_RPS=$(echo "$W_RPS + $rps" | bc -l); W_BAD=$((W_BAD + bad)); W_REQS=$((W_REQS + reqs))
    if (($(echo "$p99 > $W_P99" | bc -l))); then W_P99=$p99; fi
  done
  W_OK=$((W_REQS - W_BAD))
  local pg
  pg=$(awk 'NR == FNR {b[$1] = $2; next} {s += $2 - (($1 in b) ? b[$1] : 0)} END {print s + 0}' "$work/pg0" "$work/pg1")
  W_SRV=$(echo "($s1 - $s0) * 1000000 / $tck / $W_REQS" | bc -l)
  W_RED=$(echo "($r1 - $r0) * 1000000 / $tck / $W_REQS" | bc -l)
  W_PG=$(echo "$pg * 1000000 / $tck / $W_REQS" | bc -l)
  W_WRK=$(echo "($k1 - $k0) * 1000000 / $tck / $W_REQS" | bc -l)
  local busy idle irq
  read -r busy idle irq < <(awk -v a="$m0" -v b="$m1" 'BEGIN {split(a, x); split(b, y); t = 0; for (k = 2; k <= 9; k++) t += y[k] - x[k];
    i = (y[5] - x[5]) + (y[6] - x[6]); print t - i, int(100 * i / t + 0.5), (y[7] - x[7]) + (y[8] - x[8])}')
  W_IDLE=$idle
  W_IRQ=$(echo "$irq * 1000000 / $tck / $W_REQS" | bc -l)
  # /proc/stat counts in USER_HZ (100 on Linux), like /proc/PID/stat.
  W_OTH=$(echo "($busy - ($s1 - $s0) - ($r1 - $r0) - $pg - ($k1 - $k0)) * 1000000 / $tck / $W_REQS" | bc -l)
}

# Surge cluster nodes: node i listens on 8110+i, debug on 8120+i.
node_pids=()
start_nodes() { # start_nodes COUNT PG_URL PREFIX
  node_pids=()
  local i
  for ((i = 0; i < $1; i++)); do
    "$work/surge" serve --http-addr 127.0.0.1:$((8110 + i)) --debug-addr 127.0.0.1:$((8120 + i)) \
      --admin-token bench-admin-token --insecure-user-header --log-level warn \
      --redis-url "$REDIS" --postgres-url "$2" --redis-prefix "$3" --node-id "n$i" ${NODE_FLAGS:-} >"$work/node$i.log" 2>&1 &
    node_pids+=($!); pids+=($!)
    wait_ready http://127.0.0.1:$((8110 + i))/readyz
  done
}
node_url() { echo "http://127.0.0.1:$((8110 + $1))"; }
create_sale() { # create_sale ID STOCK, on node 0, then wait until every node serves it
  curl -fs -H 'Authorization: Bearer bench-admin-token' -X POST "$(node_url 0)/v1/sales" \
    -d "{\"id\":\"$1\",\"name\":\"$1\",\"stock\":$2}" >/dev/null
  local i
  for ((i = 0; i < ${#node_pids[@]}; i++)); do wait_ready "$(node_url "$i")/v1/sales/$1"; done
}
# stats_sum: summed over the nodes: batches purchases commits rows
stats_sum() {
  local i b=0 p=0 c=0 r=0 s
  for ((i = 0; i < ${#node_pids[@]}; i++)); do
    s=$(curl -fs -H "Authorization: Bearer bench-admin-token" "http://127.0.0.1:$((8120 + i))/debug/stats")
    b=$((b + $(jq .engine.Batches <<<"$s"))); p=$((p + $(jq .engine.Purchases <<<"$s")))
    c=$((c + $(jq .store.Commits <<<"$s"))); r=$((r + $(jq .store.Rows <<<"$s")))
  done
  echo "$b $p $c $r"
}
# batch_delta "BEFORE" "AFTER" -> "purchases per Redis call" "rows per PostgreSQL commit"
batch_delta() {
  read -r b0 p0 c0 r0 <<<"$1"; read -r b1 p1 c1 r1 <<<"$2"
  awk -v b=$((b1 - b0)) -v p=$((p1 - p0)) -v c=$((c1 - c0)) -v r=$((r1 - r0)) \
    'BEGIN {printf "%.1f %.1f %d %d\n", b ? p / b : 0, c ? r / c : 0, b, c}'
}
profile_start() { # profile_start NAME: CPU profile of node 0 for the wrk run
  [ -n "${PROFILE_DIR:-}" ] || return 0
  mkdir -p "$PROFILE_DIR"
  curl -fs -H "Authorization: Bearer bench-admin-token" -o "$PROFILE_DIR/$1.pprof" "http://127.0.0.1:8120/debug/pprof/profile?seconds=$((secs > 3 ? secs - 2 : 1))" &
  prof_pid=$!
}
profile_wait() { [ -z "${PROFILE_DIR:-}" ] || wait "$prof_pid" || true; }

# check_orders SCHEMA SALE STOCK REMAINING OK_ANSWERS -> a verdict line.
# No oversell: units in PostgreSQL <= stock. Redis agrees with PostgreSQL:
# remaining = stock - units. One order per buyer (per-user limit 1). Every
# 201 wrk counted has its order: orders >= 201s (wrk does not count the
# answers still in flight when it stops).
check_orders() {
  local n units users
  IFS='|' read -r n units users < <(psqlc "SELECT count(*), coalesce(sum(quantity), 0), count(DISTINCT user_id)
    FROM $1.orders WHERE sale_id = '$2' AND status IN ('reserved', 'paid')")
  local ok=PASS why=()
  ((units <= $3)) || { ok=FAIL; why+=("OVERSOLD: $units units > stock $3"); }
  (($3 - units == $4)) || { ok=FAIL; why+=("remaining $4 != stock - units $(($3 - units))"); }
  ((users == n)) || { ok=FAIL; why+=("$((n - users)) buyers hold two orders"); }
  ((n >= $5)) || { ok=FAIL; why+=("$n orders < $5 answers 201"); }
  echo "$ok: $n orders, $units units of $3, remaining $4, $5 answers 201 counted by the client${why:+; ${why[*]}}"
}
remaining_of() { curl -fs "$1/v1/sales/$2" | jq .remaining; }

BIG=1000000000
SMALL=1000
started=$(date -u +%FT%TZ)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
res=$work/results # one line per scenario and round
checks=$work/checks
: >"$res"; : >"$checks"
# record NAME ROUND [calls-per-batch fields]: the last run_wrk's figures
record() {
  printf '%s %s %.1f %s %.1f %.1f %.1f %.1f %.1f %.1f %s %s %s %.0f\n' "$1" "$2" "$W_RPS" "$W_P99" "$W_SRV" "$W_RED" "$W_PG" \
    "$W_WRK" "$W_IRQ" "$W_OTH" "$W_IDLE" "$W_BAD" "${3:-- - - -}" "$(echo "$W_OTH * $W_RPS / $(nproc) / 10000" | bc -l)" >>"$res"
}

start_baseline() { # start_baseline NAME STOCK -> base_pid, base_schema
  new_schema "$1"; base_schema=${run}_$1
  "$work/baseline" -addr 127.0.0.1:8097 -redis-url "$REDIS" -postgres-url "$PGURL" -stock "$2" \
    -prefix "${run}_$1" >"$work/baseline.log" 2>&1 &
  base_pid=$!; pids+=($base_pid)
  wait_ready http://127.0.0.1:8097/healthz
}
base_remaining() { local v; v=$(redis-cli get "${run}_$1:{$2}:stock"); echo "${v:-$3}"; }

# ---- the scenarios, each on fresh state ----
ceiling() { # a
  "$work/ceiling" -addr 127.0.0.1:8090 & ceiling_pid=$!; pids+=($ceiling_pid)
  wait_any http://127.0.0.1:8090/
  run_wrk "$ceiling_pid" http://127.0.0.1:8090 bench
  record ceiling "$1"
  stop "$ceiling_pid"
}
cfloor() { # f: NAME ROUND
  new_schema "$1$2"
  "$work/ceiling" -addr 127.0.0.1:8091 -redis "$REDIS" -postgres "$PGURL" -prefix "${run}_$1$2" & floor_pid=$!; pids+=($floor_pid)
  wait_any http://127.0.0.1:8091/
  run_wrk "$floor_pid" http://127.0.0.1:8091 bench
  record "$1" "$2"
  stop "$floor_pid"
}
baseline() { # b: NAME ROUND SALE STOCK
  start_baseline "$1$2" "$4"
  run_wrk "$base_pid" http://127.0.0.1:8097 "$3"
  record "$1" "$2"
  sleep 0.5
  echo "$1 round $2: $(check_orders "$base_schema" "$3" "$4" "$(base_remaining "$1$2" "$3" "$4")" "$W_OK")" >>"$checks"
  stop "$base_pid"
}
cluster() { # c, d: NAME ROUND NODES SALE STOCK
  local st0 st1 url=() i
  new_schema "$1$2"; start_nodes "$3" "$PGURL" "${run}_$1$2"
  create_sale "$4" "$5"
  for ((i = 0; i < $3; i++)); do url+=("$(node_url "$i")" "$4"); done
  st0=$(stats_sum); [ "$2" != 1 ] || [ "$4" != reserve ] || profile_start "$1"
  run_wrk "${node_pids[*]}" "${url[@]}"
  st1=$(stats_sum); [ "$2" != 1 ] || [ "$4" != reserve ] || profile_wait
  record "$1" "$2" "$(batch_delta "$st0" "$st1")"
  sleep 0.5
  echo "$1 round $2: $(check_orders "${run}_$1$2" "$4" "$5" "$(remaining_of "$(node_url $(($3 - 1)))" "$4")" "$W_OK")" >>"$checks"
  stop "${node_pids[@]}"
}

# e: a Redis Cluster of three masters, no replicas, no persistence.
if [ -n "${REDIS_CLUSTER:-}" ]; then
  for port in 7301 7302 7303; do
    mkdir -p "$work/rc$port"
    redis-server --port $port --bind 127.0.0.1 --dir "$work/rc$port" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf >"$work/rc$port.log" 2>&1 &
    rc_pids+=($!)
  done
  for port in 7301 7302 7303; do for _ in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done; done
  redis-cli --cluster create 127.0.0.1:7301 127.0.0.1:7302 127.0.0.1:7303 --cluster-yes >"$work/rc-create.log" 2>&1
  for _ in $(seq 100); do redis-cli -p 7301 cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
fi
cluster_rc() { # e: NAME ROUND SALE STOCK, one node on the Redis Cluster
  REDIS="redis://127.0.0.1:7301?addr=127.0.0.1:7302&addr=127.0.0.1:7303" redis_pid="${rc_pids[*]}" \
    NODE_FLAGS="--cluster-buckets 3" cluster "$1" "$2" 1 "$3" "$4"
}

for ((round = 1; round <= ROUNDS; round++)); do
  ceiling $round
  cfloor floor $round
  baseline base $round reserve $BIG
  cluster node1 $round 1 reserve $BIG
  cluster node2 $round 2 reserve $BIG
  baseline base_sold $round sold $SMALL
  cluster node1_sold $round 1 sold $SMALL
  [ -z "${REDIS_CLUSTER:-}" ] || cluster_rc node1_rc $round reserve $BIG
done

# fig NAME COLUMN -> the median over the rounds (columns: 3 rps, 4 p99,
# 5 server, 6 Redis, 7 PostgreSQL, 8 wrk, 9 softirq, 10 other, 11 idle,
# 12 non-2xx, 13 purchases per Redis call, 14 rows per commit, 15 calls, 16 commits,
# 17 other work in % of the machine)
fig() { awk -v n="$1" -v k="$2" '$1 == n {print $k}' "$res" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# at NAME ROUND COLUMN
at() { awk -v n="$1" -v r="$2" -v k="$3" '$1 == n && $2 == r {print $k}' "$res"; }
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
# mratio A B -> the median over the rounds of A/B, each round's own ratio
mratio() {
  local r
  for ((r = 1; r <= ROUNDS; r++)); do echo "$(at "$1" $r 3) / $(at "$2" $r 3)" | bc -l; done | sort -g |
    awk '{v[NR] = $1} END {printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# ---- open loop: surge bench at half of each cluster maximum (the median) ----
bench_fig() { jq -r "$2" "$work/$1.json"; }
half1=$(printf '%.0f' "$(echo "$(fig node1 3) / 2" | bc -l)")
new_schema o1; start_nodes 1 "$PGURL" "${run}_o1"
st0=$(stats_sum)
"$work/surge" bench --target "$(node_url 0)" --admin-token bench-admin-token --sale reserve --stock $BIG \
  --users $((half1 * secs)) --rate "$half1" --duration "$DUR" --connections "$CONNS" --retry-share 0.05 \
  --json "$work/o1.json" >"$work/o1.out" 2>&1 || true
st1=$(stats_sum)
read -r o1_rb o1_pb _ _ < <(batch_delta "$st0" "$st1")
stop "${node_pids[@]}"

# Two nodes: one bench per node, a quarter of the two-node maximum each, on
# one sale. The bench on node 1 starts first and does not verify; the bench
# on node 0 starts half a second later, so it ends last and verifies the
# whole sale (every order of both crowds) from the export; node 1's 201s
# are then matched against its buyers' orders in PostgreSQL.
quarter=$(printf '%.0f' "$(echo "$(fig node2 3) / 4" | bc -l)")
new_schema o2; start_nodes 2 "$PGURL" "${run}_o2"
create_sale reserve $BIG
st0=$(stats_sum)
"$work/surge" bench --target "$(node_url 1)" --sale reserve --no-verify --user-prefix ob1- \
  --users $((quarter * secs)) --rate "$quarter" --duration "$DUR" --connections $((CONNS / 2)) --retry-share 0 \
  --json "$work/o2b.json" >"$work/o2b.out" 2>&1 &
o2b_pid=$!
sleep 0.5
"$work/surge" bench --target "$(node_url 0)" --admin-token bench-admin-token --sale reserve --user-prefix ob0- \
  --users $((quarter * secs)) --rate "$quarter" --duration "$DUR" --connections $((CONNS / 2)) --retry-share 0.05 \
  --json "$work/o2a.json" >"$work/o2a.out" 2>&1 || true
wait "$o2b_pid" || true
st1=$(stats_sum)
read -r o2_rb o2_pb _ _ < <(batch_delta "$st0" "$st1")
o2b_orders=$(psqlc "SELECT count(*) FROM ${run}_o2.orders WHERE user_id LIKE 'ob1-%'")
o2b_201=$(bench_fig o2b '.status["201"] // 0')
stop "${node_pids[@]}"

# The baseline at half of its own maximum, for reference (surge bench
# cannot verify it: it has no export; its orders are checked in PostgreSQL).
halfb=$(printf '%.0f' "$(echo "$(fig base 3) / 2" | bc -l)")
start_baseline bopen $BIG
"$work/surge" bench --target http://127.0.0.1:8097 --sale reserve --no-verify \
  --users $((halfb * secs)) --rate "$halfb" --duration "$DUR" --connections "$CONNS" --retry-share 0 \
  --json "$work/ob.json" >"$work/ob.out" 2>&1 || true
sleep 0.5
ob_check=$(check_orders "$base_schema" reserve $BIG "$(base_remaining bopen reserve $BIG)" "$(bench_fig ob '.status["201"] // 0')")
stop "$base_pid"

# ---- report ----
printf '\nbench/cluster.sh %s %s (ROUNDS=%s): wrk -t%s -c%s -d%s, started %s, commit %s, %s cores, load before %s\n' \
  "$DUR" "$CONNS" "$ROUNDS" "$THREADS" "$CONNS" "$DUR" "$started" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo none)" "$(nproc)" "$load0"

printf '\nrequests/s per round (reserve-heavy unless said), and the ratios within the round:\n\n'
printf '| round | ceiling | cluster floor | baseline | 1 node | 2 nodes | 1 node ÷ baseline | 2 nodes ÷ baseline | 1 node ÷ ceiling | 2 nodes ÷ ceiling | floor ÷ ceiling | 1 node ÷ floor | sold-out: baseline | sold-out: 1 node | other work, %% of machine |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n'
for ((r = 1; r <= ROUNDS; r++)); do
  printf '| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %s |\n' "$r" "$(at ceiling $r 3)" "$(at floor $r 3)" "$(at base $r 3)" \
    "$(at node1 $r 3)" "$(at node2 $r 3)" "$(ratio "$(at node1 $r 3)" "$(at base $r 3)")" "$(ratio "$(at node2 $r 3)" "$(at base $r 3)")" \
    "$(ratio "$(at node1 $r 3)" "$(at ceiling $r 3)")" "$(ratio "$(at node2 $r 3)" "$(at ceiling $r 3)")" \
    "$(ratio "$(at floor $r 3)" "$(at ceiling $r 3)")" "$(ratio "$(at node1 $r 3)" "$(at floor $r 3)")" \
    "$(at base_sold $r 3)" "$(at node1_sold $r 3)" \
    "$(for n in ceiling floor base node1 node2 base_sold node1_sold; do at $n $r 17; done | paste -sd/)"
done
printf '| median | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %.0f | %.0f | |\n' "$(fig ceiling 3)" "$(fig floor 3)" "$(fig base 3)" "$(fig node1 3)" \
  "$(fig node2 3)" "$(mratio node1 base)" "$(mratio node2 base)" "$(mratio node1 ceiling)" "$(mratio node2 ceiling)" \
  "$(mratio floor ceiling)" "$(mratio node1 floor)" "$(fig base_sold 3)" "$(fig node1_sold 3)"
printf '\n(other work: CPU the machine spent outside the servers, Redis, PostgreSQL and wrk, per scenario in\n'
printf 'column order: other tenants of the machine; a large figure means the round was disturbed)\n'

printf '\nmedians over the rounds, with where the CPU went (µs of CPU per request):\n\n'
printf '| target | requests/s | wrk p99 ms | server | Redis | PostgreSQL | wrk | other | (softirq, within the others) | idle %% | non-2xx |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
row() { printf '| %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f |\n' "$2" "$(fig "$1" 3)" "$(fig "$1" 4)" "$(fig "$1" 5)" \
  "$(fig "$1" 6)" "$(fig "$1" 7)" "$(fig "$1" 8)" "$(fig "$1" 10)" "$(fig "$1" 9)" "$(fig "$1" 11)" "$(fig "$1" 12)"; }
row ceiling "ceiling: minimal net/http handler"
row floor "cluster floor: the same, 201 after one Redis DECRBY and one PostgreSQL INSERT per group (ceiling -redis -postgres)"
row base "baseline: tutorial design, reserve-heavy"
row node1 "surge cluster, 1 node, reserve-heavy"
row node2 "surge cluster, 2 nodes, reserve-heavy"
row base_sold "baseline, sell-out of $SMALL then sold-out"
row node1_sold "surge cluster, 1 node, sell-out of $SMALL then sold-out"
[ -z "${REDIS_CLUSTER:-}" ] || row node1_rc "surge cluster, 1 node on a 3-master Redis Cluster (3 buckets), reserve-heavy"

printf '\nbatching under wrk (medians): 1 node %.1f purchases per Redis call, %.1f rows per PostgreSQL commit; 2 nodes %.1f and %.1f; sell-out, 1 node: %.1f per Redis call\n' \
  "$(fig node1 13)" "$(fig node1 14)" "$(fig node2 13)" "$(fig node2 14)" "$(fig node1_sold 13)"

printf '\norders in PostgreSQL vs stock after each wrk run: %s of %s PASS\n' "$(grep -c ': PASS' "$checks" || true)" "$(wc -l <"$checks")"
grep -v ': PASS' "$checks" || true
grep " round $ROUNDS: " "$checks" | sed 's/^/  /'

printf '\nopen loop (surge bench), reserve-heavy, at half of the median maximum:\n'
printf '  1 node at %s/s: answered %.0f/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, verdict %s, bench CPU %.0f%%, %s sends late, batches %s per Redis call / %s per commit\n' \
  "$half1" "$(bench_fig o1 .throughput)" "$(bench_fig o1 .latency.p50_ms)" "$(bench_fig o1 .latency.p99_ms)" "$(bench_fig o1 .latency.p99_9_ms)" \
  "$(bench_fig o1 'if .verdict.ok then "PASS" else "FAIL" end')" "$(echo "$(bench_fig o1 .client.cpu_share) * 100" | bc -l)" "$(bench_fig o1 .client.late)" "$o1_rb" "$o1_pb"
printf '  2 nodes at 2 x %s/s: answered %.0f + %.0f/s, p50 %.2f / %.2f ms, p99 %.2f / %.2f ms (node 0 / node 1), verdict %s (whole sale, from node 0), node 1: %s orders for %s answers 201, batches %s per Redis call / %s per commit\n' \
  "$quarter" "$(bench_fig o2a .throughput)" "$(bench_fig o2b .throughput)" "$(bench_fig o2a .latency.p50_ms)" "$(bench_fig o2b .latency.p50_ms)" \
  "$(bench_fig o2a .latency.p99_ms)" "$(bench_fig o2b .latency.p99_ms)" "$(bench_fig o2a 'if .verdict.ok then "PASS" else "FAIL" end')" "$o2b_orders" "$o2b_201" "$o2_rb" "$o2_pb"
printf '  baseline at %s/s: answered %.0f/s, p50 %.2f ms, p99 %.2f ms; %s\n' \
  "$halfb" "$(bench_fig ob .throughput)" "$(bench_fig ob .latency.p50_ms)" "$(bench_fig ob .latency.p99_ms)" "$ob_check"
for f in o1 o2a; do
  if [ "$(bench_fig $f '.verdict.ok')" != true ]; then echo "--- $f verification:"; jq -c '.verdict' "$work/$f.json"; fi
done
