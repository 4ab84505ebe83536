#!/usr/bin/env bash
# The ledger's memory, start and GC share (issue 14): two builds side by
# side on the same orders, in one run on this machine.
#  start: one live sale of ORDERS orders (every purchase keyed, a quarter
#    reserved, the rest paid, one per buyer), made once through the store
#    by sqlite's BenchmarkOpen (SURGE_BENCH_DIR) and copied for each build.
#    Each build starts `surge serve` on its copy once to upgrade it (a build
#    may add an index), then again, measured: seconds from exec to the
#    first 200 of /readyz, and the resident set then (VmRSS) less that of
#    the same build on an empty data directory, per order. That start
#    follows a clean stop (SIGTERM). The gc run ends in kill -9; the
#    script times the start after it (no clean-shutdown seal: the full
#    checks; the run's orders replayed) and the clean stop after that.
#  gc: with those orders loaded, a reserve-heavy wrk run (purchase.lua: a
#    new buyer and key on every request) while the server's CPU profile is
#    taken (/debug/pprof/profile on --debug-addr): the share of samples
#    under the garbage collector (runtime.gcBgMarkWorker, gcAssistAlloc,
#    bgsweep, bgscavenge), and requests/s.
# START_ROUNDS=N then times N more rounds of starts, A and B alternated,
# each on a copy of its own: after a clean stop, then after kill -9.
# Usage: bench/ledger.sh REV_A [REV_B=working tree] [orders=1000000] [duration=10s] [connections=64]
#   A revision is anything git understands; "." is the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
REV_A=${1:?usage: bench/ledger.sh REV_A [REV_B] [orders] [duration] [connections]}
REV_B=${2:-.}
ORDERS=${3:-1000000}
DUR=${4:-10s}
CONNS=${5:-64}
. bench/lib.sh
need wrk
two_builds "$REV_A" "$REV_B"

base=${SURGE_LEDGER_DATA:-/tmp/surge-ledger-$ORDERS}
if [ ! -f "$base/surge.db" ]; then
  echo "making $ORDERS orders in $base (once)" >&2
  mkdir -p "$base"
  [ "$ORDERS" = 1000000 ] || { echo "only 1000000 orders are made by BenchmarkOpen" >&2; exit 2; }
  SURGE_BENCH_DIR=$base go test -run '^$' -bench '^BenchmarkOpen$' -benchtime 1x ./sqlite/ >&2
fi

token=ledger-admin-token-0123456789
now() { date +%s.%N; }
# serve BIN DIR: start the server (pid), wait for /readyz; sets ready to
# the seconds it took
serve() {
  local t0 t1
  t0=$(now)
  "$1" serve --http-addr 127.0.0.1:18395 --debug-addr 127.0.0.1:18397 --data-dir "$2" --admin-token "$token" \
    --insecure-user-header --log-level warn >"$work/surge.log" 2>&1 &
  pid=$!
  for _ in $(seq 6000); do
    if curl -fs -o /dev/null http://127.0.0.1:18395/readyz; then
      t1=$(now); ready=$(echo "$t1 - $t0" | bc -l); return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$work/surge.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "server did not get ready" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
rss() { awk '/^VmRSS/ {print $2 * 1024}' "/proc/$pid/status"; }

declare -A out
for v in a b; do
  rm -rf "$work/empty" && serve "$work/$v" "$work/empty"
  empty=$(rss); stop
  rm -rf "$work/data" && cp -r "$base" "$work/data" && rm -f "$work/data/surge.lock"
  serve "$work/$v" "$work/data"; stop # upgrade once
  serve "$work/$v" "$work/data"
  started=$ready
  full=$(rss)
  curl -fs -o "$work/$v.prof" -H "Authorization: Bearer $token" "http://127.0.0.1:18397/debug/pprof/profile?seconds=${DUR%s}" &
  prof=$!
  rps=$(wrk -t1 -c"$CONNS" -d"$DUR" -s bench/purchase.lua http://127.0.0.1:18395 -- bench | awk '/^Requests\/sec/ {print $2}')
  wait "$prof"
  after=$(rss)
  # The start after a crash in the middle of that run: no clean-shutdown
  # seal (sqlite/seal.go), so the full checks run, and a build with a
  # ledger image (sqlite/image.go) replays the run's orders after it.
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
  serve "$work/$v" "$work/data"; crashed=$ready
  # The clean stop after it (a build with an image writes it now).
  t0=$(now); stop; stopped=$(echo "$(now) - $t0" | bc -l)
  gc=$(go tool pprof -top -cum -nodefraction=0 "$work/$v" "$work/$v.prof" 2>/dev/null |
    awk '$5 ~ /%$/ && ($NF == "runtime.gcBgMarkWorker" || $NF == "runtime.gcAssistAlloc" || $NF == "runtime.bgsweep" || $NF == "runtime.bgscavenge") {s += $5 + 0} END {printf "%.1f", s}')
  out[$v]="$(printf '%.2f | %.2f | %.2f | %.0f | %.0f | %s | %s%% | %.0f' "$started" "$crashed" "$stopped" "$(echo "($full - $empty) / $ORDERS" | bc -l)" \
    "$(echo "$full / 1048576" | bc -l)" "$rps" "$gc" "$(echo "$after / 1048576" | bc -l)")"
done

printf '\n%s orders, wrk -t1 -c%s -d%s, %s, A=%s B=%s, %s cores, load average %s\n\n' "$ORDERS" "$CONNS" "$DUR" "$(date -u +%F)" \
  "$(revname "$REV_A")" "$(revname "$REV_B")" \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '| build | s to /readyz | s to /readyz after the run and kill -9 | s to stop | RSS B/order | RSS MiB at ready | reserve-heavy requests/s | GC share of server CPU | RSS MiB after |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
printf '| A | %s |\n| B | %s |\n' "${out[a]}" "${out[b]}"

if [ "${START_ROUNDS:-0}" -gt 0 ]; then
  for v in a b; do
    rm -rf "$work/data-$v" && cp -r "$base" "$work/data-$v" && rm -f "$work/data-$v/surge.lock"
    serve "$work/$v" "$work/data-$v"; stop # upgrade once
  done
  printf '\n| round | A, s to /readyz | B, s to /readyz | A after kill -9 | B after kill -9 | load average |\n|---|---:|---:|---:|---:|---|\n'
  for r in $(seq "$START_ROUNDS"); do
    declare -A clean crash
    for v in a b; do
      serve "$work/$v" "$work/data-$v"; clean[$v]=$ready
      kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
      serve "$work/$v" "$work/data-$v"; crash[$v]=$ready; stop
    done
    printf '| %s | %.2f | %.2f | %.2f | %.2f | %s |\n' "$r" "${clean[a]}" "${clean[b]}" "${crash[a]}" "${crash[b]}" "$(cut -d' ' -f1 /proc/loadavg)"
  done
fi
