#!/usr/bin/env bash
# Side-by-side HTTP benchmark, all in one run on this machine:
#   1. ceiling: a minimal net/http handler answering a fixed JSON body
#   2. durable floor: the same handler answering only once a record of the
#      purchase is on disk (bench/ceiling -durable: one append and one
#      fdatasync per group of waiting requests), the least any server
#      promising a durable 201 does
#   3. surge serve, reserve-heavy (every request reserves a unit)
#   4. surge serve, sold-out path
# Same load generator (wrk), same request shape, same connections; then
# `surge bench` on the same targets: closed loop (to compare its figures with
# wrk's) and open loop at half of Surge's maximum rate (latency without
# coordinated omission), on Surge and on the durable floor.
# Usage: bench/compare.sh [duration=10s] [connections=128] [threads=2]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
CONNS=${2:-128}
THREADS=${3:-2}
. bench/lib.sh
need wrk jq bc
work=$(mktemp -d)
pids=()
surge_pid=
cleanup() { for p in "${pids[@]}" $surge_pid; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/surge" ./cmd/surge
go build -o "$work/ceiling" ./bench/ceiling
# run_wrk URL SALE PID -> prints "rps p99_ms non2xx server_cpu_us_per_request"
run_wrk() {
  local out before after
  before=$(cpu_ticks "$3")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s bench/purchase.lua "$1" -- "$2")
  after=$(cpu_ticks "$3")
  local rps p99 non2xx reqs cpu
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '/p99_us=/ {split($0,a,"="); printf "%.2f", a[2]/1000}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(echo "($after - $before) * 1000000 / $(getconf CLK_TCK) / $reqs" | bc -l)
  printf '%s %s %s %.1f\n' "$rps" "$p99" "$non2xx" "$cpu"
}

# Each scenario gets a fresh server and data dir, so one run's state (the
# reserve-heavy run leaves ~10^5 orders in memory for the GC to scan) does
# not tax the next.
start_surge() {
  rm -rf "$work/data"
  "$work/surge" serve --http-addr 127.0.0.1:8091 --data-dir "$work/data" --admin-token bench-admin-token \
    --insecure-user-header --log-level warn --debug-addr 127.0.0.1:8092 >"$work/surge.log" 2>&1 &
  surge_pid=$!
  wait_ready http://127.0.0.1:8091/readyz
}
stop_surge() { kill "$surge_pid"; wait "$surge_pid" || true; }
# The durable floor on a fresh log each time.
start_floor() {
  rm -f "$work/floor.log"
  "$work/ceiling" -addr 127.0.0.1:8093 -durable "$work/floor.log" & floor_pid=$!; pids+=($floor_pid)
  wait_up http://127.0.0.1:8093/
}
stop_floor() { kill "$floor_pid"; wait "$floor_pid" 2>/dev/null || true; rm -f "$work/floor.log"; }
admin=(-H 'Authorization: Bearer bench-admin-token')

"$work/ceiling" -addr 127.0.0.1:8090 & ceiling_pid=$!; pids+=($ceiling_pid)
wait_up http://127.0.0.1:8090/
read -r c_rps c_p99 _ c_cpu < <(run_wrk http://127.0.0.1:8090 bench "$ceiling_pid")
kill "$ceiling_pid"; wait "$ceiling_pid" 2>/dev/null || true
start_floor
read -r f_rps f_p99 _ f_cpu < <(run_wrk http://127.0.0.1:8093 bench "$floor_pid")
stop_floor

start_surge
curl -fs "${admin[@]}" -X POST http://127.0.0.1:8091/v1/sales -d '{"id":"reserve","name":"reserve-heavy","stock":1000000000}' >/dev/null
read -r r_rps r_p99 r_bad r_cpu < <(run_wrk http://127.0.0.1:8091 reserve "$surge_pid")
stats=$(curl -fs -H "Authorization: Bearer bench-admin-token" http://127.0.0.1:8092/debug/stats)
reserved=$(curl -fs http://127.0.0.1:8091/v1/sales/reserve | sed -E 's/.*"remaining":([0-9]+).*/\1/')
reserved=$((1000000000 - reserved))
stop_surge

start_surge
curl -fs "${admin[@]}" -X POST http://127.0.0.1:8091/v1/sales -d '{"id":"soldout","name":"sold out","stock":1}' >/dev/null
curl -fs -X POST -H 'X-User-ID: first' http://127.0.0.1:8091/v1/sales/soldout/purchases >/dev/null
read -r s_rps s_p99 _ s_cpu < <(run_wrk http://127.0.0.1:8091 soldout "$surge_pid")
stop_surge

secs=${DUR%s}
# surge bench, closed loop, same connections, fresh reserve-heavy server.
start_surge
"$work/surge" bench --target http://127.0.0.1:8091 --admin-token bench-admin-token --sale reserve --stock 1000000000 \
  --users $((${r_rps%.*} * secs * 2)) --duration "$DUR" --connections "$CONNS" --retry-share 0 \
  --no-verify --json "$work/closed.json" >/dev/null 2>&1
b_rps=$(jq .throughput "$work/closed.json"); b_p99=$(jq .latency.p99_ms "$work/closed.json")
b_cpu=$(jq .client.cpu_share "$work/closed.json")
stop_surge

# surge bench, open loop at half of Surge's maximum (wrk's reserve-heavy
# rate), fresh server, then verified.
half=$(( ${r_rps%.*} / 2 ))
start_surge
"$work/surge" bench --target http://127.0.0.1:8091 --admin-token bench-admin-token --sale reserve --stock 1000000000 \
  --users $((half * secs)) --rate "$half" --duration "$DUR" --connections "$CONNS" --retry-share 0.05 \
  --json "$work/open.json" >/dev/null 2>&1 || true
o_rps=$(jq .throughput "$work/open.json"); o_p99=$(jq .latency.p99_ms "$work/open.json")
o_p50=$(jq .latency.p50_ms "$work/open.json"); o_verdict=$(jq -r 'if .verdict.ok then "PASS" else "FAIL" end' "$work/open.json")
o_cpu=$(jq .client.cpu_share "$work/open.json"); o_late=$(jq .client.late "$work/open.json")
stop_surge

# The same open loop against the durable floor: the latency a server that
# does nothing but make each purchase durable reaches at this rate here.
start_floor
"$work/surge" bench --target http://127.0.0.1:8093 --sale floor \
  --users $((half * secs)) --rate "$half" --duration "$DUR" --connections "$CONNS" --retry-share 0.05 \
  --no-verify --json "$work/open-floor.json" >/dev/null 2>&1 || true
stop_floor
of_p99=$(jq .latency.p99_ms "$work/open-floor.json"); of_p50=$(jq .latency.p50_ms "$work/open-floor.json")
of_late=$(jq .client.late "$work/open-floor.json")

# The same open-loop rate against the sold-out path.
start_surge
curl -fs "${admin[@]}" -X POST http://127.0.0.1:8091/v1/sales -d '{"id":"soldout","name":"sold out","stock":1}' >/dev/null
curl -fs -X POST -H 'X-User-ID: first' http://127.0.0.1:8091/v1/sales/soldout/purchases >/dev/null
"$work/surge" bench --target http://127.0.0.1:8091 --admin-token bench-admin-token --sale soldout \
  --users $((half * secs)) --rate "$half" --duration "$DUR" --connections "$CONNS" --retry-share 0 \
  --json "$work/open-soldout.json" >/dev/null 2>&1 || true
os_p99=$(jq .latency.p99_ms "$work/open-soldout.json"); os_p50=$(jq .latency.p50_ms "$work/open-soldout.json")
stop_surge

printf '\nwrk -t%s -c%s -d%s, %s, commit %s, %s\n\n' "$THREADS" "$CONNS" "$DUR" "$(date -u +%F)" "$(git rev-parse --short HEAD 2>/dev/null || echo none)" "$(nproc) cores"
printf '| target | requests/s | p99 ms | server CPU µs/request | ratio to ceiling (requests/s) |\n|---|---:|---:|---:|---:|\n'
printf '| ceiling: minimal net/http handler | %s | %s | %s | 1.00 |\n' "$c_rps" "$c_p99" "$c_cpu"
printf '| durable floor: the same, 201 after a group-committed fdatasync (ceiling -durable) | %s | %s | %s | %.2f |\n' "$f_rps" "$f_p99" "$f_cpu" "$(echo "$f_rps / $c_rps" | bc -l)"
printf '| surge serve, reserve-heavy (201) | %s | %s | %s | %.2f |\n' "$r_rps" "$r_p99" "$r_cpu" "$(echo "$r_rps / $c_rps" | bc -l)"
printf '| surge serve, sold-out (409) | %s | %s | %s | %.2f |\n' "$s_rps" "$s_p99" "$s_cpu" "$(echo "$s_rps / $c_rps" | bc -l)"
mean_batch=$(sed -E 's/.*"mean_batch":([0-9.]+).*/\1/' <<<"$stats")
printf '\nreserve-heavy: %.2f of the durable floor'"'"'s requests/s\n' "$(echo "$r_rps / $f_rps" | bc -l)"
printf 'reserve-heavy: %s orders committed, %s non-2xx answers, mean batch %.1f purchases per commit (one fsync each)\n' "$reserved" "$r_bad" "$mean_batch"

printf '\nsurge bench, closed loop, %s connections, reserve-heavy: %.0f requests/s (%.2f of wrk'"'"'s %s), p99 %.2f ms, bench CPU %.0f%% of the machine\n' \
  "$CONNS" "$b_rps" "$(echo "$b_rps / $r_rps" | bc -l)" "$r_rps" "$b_p99" "$(echo "$b_cpu * 100" | bc -l)"
printf 'surge bench, open loop at %s/s (half of the reserve-heavy maximum), reserve-heavy: %.0f answered/s, p50 %.2f ms, p99 %.2f ms, verdict %s, bench CPU %.0f%%, %s sends late\n' \
  "$half" "$o_rps" "$o_p50" "$o_p99" "$o_verdict" "$(echo "$o_cpu * 100" | bc -l)" "$o_late"
printf 'surge bench, open loop at %s/s, sold-out: p50 %.2f ms, p99 %.2f ms\n' "$half" "$os_p50" "$os_p99"
printf 'surge bench, open loop at %s/s, the durable floor (ceiling -durable): p50 %.2f ms, p99 %.2f ms, %s sends late\n' "$half" "$of_p50" "$of_p99" "$of_late"
