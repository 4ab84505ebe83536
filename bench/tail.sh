#!/usr/bin/env bash
# The open loop's tail, two builds side by side (issue 14's "p99 <= 10 ms at
# half the maximum"): each round runs `surge bench` open loop at RATE for
# DURATION against a fresh `surge serve` of A, then of B (a fresh data
# directory each time), and reports the client's p50 and p99 (measured from
# each send's scheduled time, so late sends count), the share of sends that
# left late, the server's share of purchases answered within 10 ms
# (surge_purchase_duration_seconds), and the garbage collector's longest
# mark phase (GODEBUG=gctrace=1), and the bench's verdict: a run that failed
# it (a server failing its purchases, an oversell) measured no tail worth
# comparing, and the script exits 1 after the table. Rounds alternate A and
# B so drift of the shared machine hits both alike.
# Usage: bench/tail.sh REV_A [REV_B=working tree] [rate=11000] [duration=10s] [rounds=3]
#   A revision is anything git understands; "." is the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
REV_A=${1:?usage: bench/tail.sh REV_A [REV_B] [rate] [duration] [rounds]}
REV_B=${2:-.}
RATE=${3:-11000}
DUR=${4:-10s}
ROUNDS=${5:-3}
. bench/lib.sh
need jq bc
two_builds "$REV_A" "$REV_B"
token=tail-admin-token-0123456789
secs=${DUR%s}

# one BIN -> "p50 p99 late% within10ms% gc_mark_max_ms verdict" of one run
one() {
  rm -rf "$work/data"
  GODEBUG=gctrace=1 "$1" serve --http-addr 127.0.0.1:8093 --data-dir "$work/data" --admin-token "$token" \
    --insecure-user-header --log-level warn >"$work/surge.log" 2>&1 &
  pid=$!
  wait_ready http://127.0.0.1:8093/readyz
  "$1" bench --target http://127.0.0.1:8093 --admin-token "$token" --sale reserve --stock 1000000000 \
    --users $((RATE * secs)) --rate "$RATE" --duration "$DUR" --connections 128 --retry-share 0.05 \
    --json "$work/open.json" >/dev/null 2>&1 || true # exit 1 on a failed verdict: read from the JSON below
  local within all
  curl -fs -H "Authorization: Bearer $token" http://127.0.0.1:8093/metrics >"$work/metrics"
  within=$(awk '/^surge_purchase_duration_seconds_bucket\{sale="reserve",le="0.01"\}/ {print $2}' "$work/metrics")
  all=$(awk '/^surge_purchase_duration_seconds_count\{sale="reserve"\}/ {print $2}' "$work/metrics")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  local mark
  mark=$(awk '/^gc / {split($5, c, "+"); if (c[2] + 0 > m) m = c[2] + 0} END {print m + 0}' "$work/surge.log")
  jq -r --arg w "$within" --arg a "$all" --arg m "$mark" \
    '"\(.latency.p50_ms) \(.latency.p99_ms) \(100 * .client.late_share) \(100 * ($w | tonumber) / ($a | tonumber)) \($m) " +
    (if .verdict.ok then "PASS" elif .verdict == null then "NOT VERIFIED" else "FAIL" end)' "$work/open.json"
}

printf 'surge bench open loop at %s/s for %s, 128 connections, %s, A=%s B=%s, %s cores\n\n' "$RATE" "$DUR" "$(date -u '+%F %H:%M UTC')" \
  "$(revname "$REV_A")" "$(revname "$REV_B")" "$(nproc)"
printf '| round | build | client p50 ms | client p99 ms | sends late | server within 10 ms | longest GC mark ms | load | verdict |\n|---|---|---:|---:|---:|---:|---:|---|---|\n'
failed=0
for r in $(seq "$ROUNDS"); do
  for v in a b; do
    one "$work/$v" >"$work/row"
    read -r p50 p99 late within mark verdict <"$work/row"
    printf '| %s | %s | %.2f | %.2f | %.1f %% | %.2f %% | %s | %s | %s |\n' "$r" "${v^^}" "$p50" "$p99" "$late" "$within" "$mark" "$(cut -d' ' -f1 /proc/loadavg)" "$verdict"
    [ "$verdict" = PASS ] || failed=$((failed + 1))
  done
done
if [ "$failed" -gt 0 ]; then
  printf '\n%s of %s runs did not pass the bench verdict: their figures are not a tail of a working server\n' "$failed" $((2 * ROUNDS)) >&2
  exit 1
fi
