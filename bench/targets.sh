#!/usr/bin/env bash
# Issue 14's performance targets, all measured in one go on this machine by
# the scripts that measure each (every figure side by side with the
# minimal handler in the same run), then one table: the target, what was
# measured, the verdict. The working tree is what is measured (the A/B
# scripts run HEAD beside it; the verdicts read the working tree's rows).
#   1. reserve-heavy >= 0.6 of the minimal handler: bench/compare.sh at
#      wrk -t2 -c128 and at wrk -t1 -c64 (both)
#   2. its open loop at half the maximum: p99 <= 10 ms (compare.sh -c128)
#   3. JWT buyers on the sold-out path >= 0.85 (bench/jwt.sh)
#   4. <= 300 B of RSS per order with 1M orders, <= 2 s to ready, GC < 5 %
#      of the server's CPU reserve-heavy (bench/ledger.sh)
#   5. cluster sold-out with keys >= 0.9 of embedded, no Redis call per
#      request (bench/keyed.sh)
#   6. one cluster node reserve-heavy >= 0.45 of the minimal handler and
#      >= 4x the baseline, open loop p99 <= 10 ms (bench/cluster.sh)
# (Item 7, a real Redis Cluster, is a test: TestRedisClusterContract.)
# About 10 minutes (more when scripts/services.sh installs something).
# Each script's own report is kept in the log directory printed at the
# end, for docs/benchmarks.md. Run nothing else meanwhile: the scripts
# share the machine's two cores with what they measure.
# REPORT_ONLY=1 prints the table again from the reports already in the
# log directory, running nothing.
# Usage: bench/targets.sh [log directory=a new temporary one]
set -uo pipefail
cd "$(dirname "$0")/.."
logs=${1:-$(mktemp -d /tmp/surge-targets.XXXXXX)}
mkdir -p "$logs"

# run NAME COMMAND...: one script, its report in $logs/NAME.log.
run() {
  local name=$1
  shift
  echo "$(date -u +%H:%M:%S) $*" >&2
  "$@" >"$logs/$name.log" 2>&1 || echo "  $name exited with status $? (see $logs/$name.log)" >&2
}
if [ -z "${REPORT_ONLY:-}" ]; then
  run compare128 bench/compare.sh 10s 128 2
  run compare64 bench/compare.sh 10s 64 1
  run jwt bench/jwt.sh HEAD . 5s 64 5
  run ledger bench/ledger.sh HEAD . 1000000 10s 64
  run keyed bench/keyed.sh HEAD . 5s 64 3
  run cluster env ROUNDS=1 bench/cluster.sh 10s 128 2
fi

# cell FILE ROW_PREFIX N: the Nth |-separated cell of the table row that
# starts with ROW_PREFIX, trimmed ("?" when the report lacks it).
cell() {
  [ -f "$logs/$1" ] || { echo "?"; return; }
  awk -F'|' -v p="$2" -v n="$3" 'index($0, p) == 1 {gsub(/^ +| +$/, "", $(n + 1)); print $(n + 1); found = 1; exit}
    END {if (!found) print "?"}' "$logs/$1"
}
# p99 FILE PATTERN: the "p99 X ms" figure of the first line matching PATTERN.
p99() { grep -m1 -- "$2" "$logs/$1" 2>/dev/null | sed -nE 's/.* p99 ([0-9.]+) ms.*/\1/p' | grep . || echo "?"; }
# verdict FIGURE OP BOUND...: MET when every FIGURE OP BOUND holds (a
# figure the report lacks holds none).
verdict() {
  while [ $# -ge 3 ]; do
    if ! [[ $1 =~ ^[0-9.]+$ ]] || [ "$(echo "$1 $2 $3" | bc -l)" != 1 ]; then
      echo "NOT MET"
      return
    fi
    shift 3
  done
  echo MET
}

r128=$(cell compare128.log '| surge serve, reserve-heavy' 5)
r64=$(cell compare64.log '| surge serve, reserve-heavy' 5)
f128=$(cell compare128.log '| durable floor' 5)
f64=$(cell compare64.log '| durable floor' 5)
open=$(p99 compare128.log 'open loop at .*reserve-heavy')
fopen=$(p99 compare128.log 'the durable floor (ceiling -durable): p50')
jwt=$(cell jwt.log '| B: surge serve, JWT buyers' 4)
hdr=$(cell jwt.log '| B: surge serve, X-User-ID' 4)
rss=$(cell ledger.log '| B |' 5)
ready=$(cell ledger.log '| B |' 2)
crashed=$(cell ledger.log '| B |' 3)
gc=$(cell ledger.log '| B |' 8)
gc=${gc%\%}
keyed=$(sed -nE 's/^cluster ÷ embedded.*, B ([0-9.]+) .*/\1/p' "$logs/keyed.log" 2>/dev/null | grep . || echo "?")
calls=$(cell keyed.log '| B: surge serve, cluster' 4)
calls=$(tr ' ' '\n' <<<"$calls" | sort -g | tail -1)
node=$(cell cluster.log '| median |' 9)
base=$(cell cluster.log '| median |' 7)
floor=$(cell cluster.log '| median |' 11)
copen=$(p99 cluster.log '1 node at')

printf '\nissue 14, %s, working tree of %s, %s cores; reports in %s\n\n' "$(date -u '+%F %H:%M UTC')" \
  "$(git rev-parse --short HEAD)" "$(nproc)" "$logs"
printf '| item | target | measured | verdict |\n|---|---|---|---|\n'
printf '| 1 | reserve-heavy >= 0.6 of the minimal handler, -t2 -c128 and -t1 -c64 | %s and %s (the durable floor: %s and %s) | %s |\n' \
  "$r128" "$r64" "$f128" "$f64" "$(verdict "$r128" '>=' 0.6 "$r64" '>=' 0.6)"
printf '| 2 | open loop at half the maximum, p99 <= 10 ms | %s ms (the durable floor at the same rate: %s ms) | %s |\n' \
  "$open" "$fopen" "$(verdict "$open" '<=' 10)"
printf '| 3 | JWT buyers, sold-out path, >= 0.85 of the minimal handler | %s (X-User-ID buyers: %s) | %s |\n' \
  "$jwt" "$hdr" "$(verdict "$jwt" '>=' 0.85)"
printf '| 4 | 1M orders: <= 300 B RSS/order, <= 2 s to ready, GC < 5 %% | %s B, %s s (%s s after kill -9), GC %s %% | %s |\n' \
  "$rss" "$ready" "$crashed" "$gc" "$(verdict "$rss" '<=' 300 "$ready" '<=' 2 "$gc" '<' 5)"
printf '| 5 | cluster sold-out with keys >= 0.9 of embedded, 0 Redis calls | %s, at most %s Redis calls per request | %s |\n' \
  "$keyed" "$calls" "$(verdict "$keyed" '>=' 0.9 "$calls" '<=' 0)"
printf '| 6 | one cluster node >= 0.45 of the minimal handler and >= 4x the baseline; open loop p99 <= 10 ms | %s and %sx (the cluster floor: %s); p99 %s ms | %s |\n' \
  "$node" "$base" "$floor" "$copen" "$(verdict "$node" '>=' 0.45 "$base" '>=' 4 "$copen" '<=' 10)"
