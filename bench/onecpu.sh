#!/usr/bin/env bash
# Two builds on one CPU: `surge serve` pinned to CPU 0 (taskset: the
# affinity mask a one-vCPU machine shows the runtime) with no GOMAXPROCS in
# its environment, wrk pinned to CPU 1, builds A and B interleaved on fresh
# data directories, reserve-heavy (bench/purchase.lua, stock 10^9) and then
# sold-out (stock 1, sold before the run). Each run reports requests/s,
# the server's CPU per request (from /proc), wrk's p99 and the GOMAXPROCS
# the server runs with (go_sched_gomaxprocs_threads). Needs two CPUs.
# Usage: bench/onecpu.sh REV_A [REV_B=working tree] [duration=8s] [connections=64] [rounds=3]
#   A revision is anything git understands; "." is the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
REV_A=${1:?usage: bench/onecpu.sh REV_A [REV_B] [duration] [connections] [rounds]}
REV_B=${2:-.}
DUR=${3:-8s}
CONNS=${4:-64}
ROUNDS=${5:-3}
PORT=${PORT:-18591}
. bench/lib.sh
need wrk bc curl taskset
[ "$(nproc)" -ge 2 ] || { echo "bench/onecpu.sh needs two CPUs" >&2; exit 1; }
two_builds "$REV_A" "$REV_B"
token=bench-admin-token
base=http://127.0.0.1:$PORT
# run BUILD SALE STOCK: one fresh server, one wrk run; prints the figures
run() {
  rm -rf "$work/data"
  env -u GOMAXPROCS taskset -c 0 "$work/$1" serve --http-addr "127.0.0.1:$PORT" --data-dir "$work/data" \
    --admin-token "$token" --insecure-user-header --log-level warn >"$work/serve.log" 2>&1 &
  pid=$!
  wait_ready "$base/readyz"
  curl -fs -H "Authorization: Bearer $token" -X POST "$base/v1/sales" \
    -d "{\"id\":\"$2\",\"name\":\"$2\",\"stock\":$3}" >/dev/null
  [ "$3" = 1 ] && curl -fs -X POST -H 'X-User-ID: first' "$base/v1/sales/$2/purchases" >/dev/null
  local procs before after out rps reqs p99
  procs=$(curl -fs -H "Authorization: Bearer $token" "$base/metrics" | awk '/^go_sched_gomaxprocs_threads / {print $2}')
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DUR" --latency -s bench/purchase.lua "$base" -- "$2")
  after=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out"); reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '/p99_us=/ {split($0,a,"="); printf "%.2f", a[2]/1000}' <<<"$out")
  printf '| %s | %s | %s | %s | %.1f | %s |\n' "$2" "$1" "$procs" "$rps" \
    "$(echo "($after - $before) * 1000000 / $(getconf CLK_TCK) / $reqs" | bc -l)" "$p99"
}

printf 'one CPU for the server (taskset -c 0), wrk -t1 -c%s -d%s on CPU 1, %s rounds, %s UTC, A=%s B=%s\n\n' \
  "$CONNS" "$DUR" "$ROUNDS" "$(date -u '+%Y-%m-%d %H:%M')" "$(revname "$REV_A")" "$(revname "$REV_B")"
echo '| path | build | GOMAXPROCS | requests/s | server CPU µs/request | wrk p99 ms |'
echo '|---|---|---:|---:|---:|---:|'
for _ in $(seq "$ROUNDS"); do
  for b in a b; do run "$b" reserve 1000000000; done
done
for _ in $(seq "$ROUNDS"); do
  for b in a b; do run "$b" soldout 1; done
done
