#!/usr/bin/env bash
# A crash after a spike (issue 14): two builds side by side on the same
# million orders (bench/ledger.sh's, SURGE_LEDGER_DATA). Each round, for
# each build, on a fresh copy: a start (the first of a build also upgrades
# the copy), a reserve-heavy wrk run (the spike), then idle until the
# server logs "ledger image refreshed" (a build that refreshes its ledger
# image when idle; at most 20 s), kill -9, and the start after it timed:
# seconds from exec to the first 200 of /readyz.
# Usage: bench/spike-crash.sh REV_A [REV_B=working tree] [duration=10s] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
REV_A=${1:?usage: bench/spike-crash.sh REV_A [REV_B] [duration] [connections]}
REV_B=${2:-.}
DUR=${3:-10s}
CONNS=${4:-64}
ROUNDS=${ROUNDS:-2}
. bench/lib.sh
need wrk bc
two_builds "$REV_A" "$REV_B"
base=${SURGE_LEDGER_DATA:-/tmp/surge-ledger-1000000}
[ -f "$base/surge.db" ] || { echo "no orders in $base: run bench/ledger.sh first (it makes them)" >&2; exit 2; }

token=spike-admin-token-0123456789
now() { date +%s.%N; }
serve() { # BIN DIR LOG: start the server (pid), wait for /readyz; sets ready
  local t0
  t0=$(now)
  "$1" serve --http-addr 127.0.0.1:18395 --data-dir "$2" --admin-token "$token" --insecure-user-header >>"$3" 2>&1 &
  pid=$!
  for _ in $(seq 6000); do
    if curl -fs -o /dev/null http://127.0.0.1:18395/readyz; then
      ready=$(echo "$(now) - $t0" | bc -l); return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$3" >&2; exit 1; }
    sleep 0.02
  done
  echo "server did not get ready" >&2; exit 1
}

printf '\n%s, wrk -t1 -c%s -d%s, A=%s B=%s, %s cores\n\n' "$(date -u +%FT%TZ)" "$CONNS" "$DUR" "$(revname "$REV_A")" \
  "$(revname "$REV_B")" "$(nproc)"
printf '| round | build | s to /readyz (first) | spike requests/s | refreshed after the spike | s to /readyz after kill -9 |\n|---|---|---:|---:|---|---:|\n'
for r in $(seq "$ROUNDS"); do
  for v in a b; do
    data=$work/data-$v log=$work/$v-$r.log
    rm -rf "$data" && cp -r "$base" "$data" && rm -f "$data/surge.lock"
    serve "$work/$v" "$data" "$log"; first=$ready
    rps=$(wrk -t1 -c"$CONNS" -d"$DUR" -s bench/purchase.lua http://127.0.0.1:18395 -- bench | awk '/^Requests\/sec/ {print $2}')
    refreshed=no
    for _ in $(seq 200); do
      if grep -q "ledger image refreshed" "$log"; then refreshed="$(grep -o 'took=[^ ]*' "$log" | tail -1)"; break; fi
      sleep 0.1
    done
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
    serve "$work/$v" "$data" "$log"; crashed=$ready
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    printf '| %s | %s | %.2f | %s | %s | %.2f |\n' "$r" "${v^^}" "$first" "$rps" "$refreshed" "$crashed"
  done
done
