#!/usr/bin/env bash
# Side-by-side HTTP benchmark, all in one run on this machine:
#   1. ceiling: a minimal net/http handler answering a fixed JSON body
#   2. surge serve, reserve-heavy (every request reserves a unit)
#   3. surge serve, sold-out path
# Same load generator (wrk), same request shape, same connections.
# Usage: bench/http.sh [duration=10s] [connections=128] [threads=2]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
CONNS=${2:-128}
THREADS=${3:-2}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/surge" ./cmd/surge
go build -o "$work/ceiling" ./bench/ceiling

wait_up() { for _ in $(seq 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; exit 1; }
# run_wrk URL SALE -> prints "rps p99_ms non2xx"
run_wrk() {
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s bench/purchase.lua "$1" -- "$2")
  local rps p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '/p99_us=/ {split($0,a,"="); printf "%.2f", a[2]/1000}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  echo "$rps $p99 $non2xx"
}

"$work/ceiling" -addr 127.0.0.1:8090 & pids+=($!)
"$work/surge" serve --http-addr 127.0.0.1:8091 --data-dir "$work/data" --admin-token bench \
  --insecure-user-header --log-level warn >"$work/surge.log" 2>&1 & pids+=($!)
wait_up http://127.0.0.1:8091/readyz
sleep 0.3
admin=(-H 'Authorization: Bearer bench')
curl -fs "${admin[@]}" -X POST http://127.0.0.1:8091/v1/sales -d '{"id":"reserve","name":"reserve-heavy","stock":1000000000}' >/dev/null
curl -fs "${admin[@]}" -X POST http://127.0.0.1:8091/v1/sales -d '{"id":"soldout","name":"sold out","stock":1}' >/dev/null
curl -fs -X POST -H 'X-User-ID: first' http://127.0.0.1:8091/v1/sales/soldout/purchases >/dev/null

read -r c_rps c_p99 _ < <(run_wrk http://127.0.0.1:8090 bench)
read -r r_rps r_p99 r_bad < <(run_wrk http://127.0.0.1:8091 reserve)
read -r s_rps s_p99 _ < <(run_wrk http://127.0.0.1:8091 soldout)
reserved=$(curl -fs http://127.0.0.1:8091/v1/sales/reserve | sed -E 's/.*"remaining":([0-9]+).*/\1/')
reserved=$((1000000000 - reserved))

printf '\nwrk -t%s -c%s -d%s, %s, commit %s, %s\n\n' "$THREADS" "$CONNS" "$DUR" "$(date -u +%F)" "$(git rev-parse --short HEAD 2>/dev/null || echo none)" "$(nproc) cores"
printf '| target | requests/s | p99 ms | ratio to ceiling |\n|---|---:|---:|---:|\n'
printf '| ceiling: minimal net/http handler | %s | %s | 1.00 |\n' "$c_rps" "$c_p99"
printf '| surge serve, reserve-heavy (201) | %s | %s | %.2f |\n' "$r_rps" "$r_p99" "$(echo "$r_rps / $c_rps" | bc -l)"
printf '| surge serve, sold-out (409) | %s | %s | %.2f |\n' "$s_rps" "$s_p99" "$(echo "$s_rps / $c_rps" | bc -l)"
printf '\nreserve-heavy: %s orders committed, %s non-2xx answers\n' "$reserved" "$r_bad"
