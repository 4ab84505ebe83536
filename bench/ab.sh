#!/usr/bin/env bash
# A/B run of two builds of surge against the minimal handler, in one run on
# this machine: did a change cost throughput? For each round, the ceiling
# handler, then A and B alternately on the sold-out path and on the
# reserve-heavy path (a fresh server and data dir each time), all with the
# same wrk settings. Rounds interleave A and B so drift of the shared
# machine hits both alike; the table gives each scenario's median over the
# rounds and its ratio to the ceiling's median.
# Usage: bench/ab.sh REV_A [REV_B=working tree] [duration=5s] [connections=64] [rounds=3]
#   THREADS=2 runs wrk with two threads, as bench/compare.sh does (default 1).
#   A revision is anything git understands (a commit, a tag, HEAD~3);
#   "." is the working tree as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
REV_A=${1:?usage: bench/ab.sh REV_A [REV_B] [duration] [connections] [rounds]}
REV_B=${2:-.}
DUR=${3:-5s}
CONNS=${4:-64}
ROUNDS=${5:-3}
THREADS=${THREADS:-1}
. bench/lib.sh
need wrk bc
two_builds "$REV_A" "$REV_B"
go build -o "$work/ceiling" ./bench/ceiling

# rps URL SALE PID -> "requests/s cpu-µs-per-answer" of one wrk run against
# the server PID
rps() {
  local t0 out t1
  t0=$(cpu_ticks "$3")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" -s bench/purchase.lua "$1" -- "$2")
  t1=$(cpu_ticks "$3")
  awk -v dt=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '/requests in/ {n=$1} /^Requests\/sec/ {r=$2} END {printf "%s %.1f\n", r, dt/hz*1e6/n}' <<<"$out"
}
token=ab-admin-token-0123456789
# surge BIN SCENARIO -> requests/s of BIN on the scenario (soldout|reserve)
surge_rps() {
  rm -rf "$work/data"
  "$1" serve --http-addr 127.0.0.1:8095 --data-dir "$work/data" --admin-token "$token" \
    --insecure-user-header --log-level warn >"$work/surge.log" 2>&1 &
  pid=$!
  wait_up http://127.0.0.1:8095/readyz
  local auth=(-H "Authorization: Bearer $token")
  if [ "$2" = soldout ]; then
    curl -fs "${auth[@]}" -X POST http://127.0.0.1:8095/v1/sales -d '{"id":"s","name":"sold out","stock":1}' >/dev/null
    curl -fs -X POST -H 'X-User-ID: first' http://127.0.0.1:8095/v1/sales/s/purchases >/dev/null
  else
    curl -fs "${auth[@]}" -X POST http://127.0.0.1:8095/v1/sales -d '{"id":"s","name":"reserve-heavy","stock":1000000000}' >/dev/null
  fi
  rps http://127.0.0.1:8095 s "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

declare -A runs cpu
# record KEY "rps cpu": one run's figures
record() { runs[$1]+="${2% *} "; cpu[$1]+="${2#* } "; }
"$work/ceiling" -addr 127.0.0.1:8096 & cpid=$!
wait_up http://127.0.0.1:8096/
for r in $(seq "$ROUNDS"); do
  record ceiling "$(rps http://127.0.0.1:8096 s "$cpid")"
  for sc in soldout reserve; do
    record a-$sc "$(surge_rps "$work/a" $sc)"
    record b-$sc "$(surge_rps "$work/b" $sc)"
  done
  echo "round $r done" >&2
done
kill "$cpid"; wait "$cpid" 2>/dev/null || true

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
c=$(median "${runs[ceiling]}")
printf '\nwrk -t%s -c%s -d%s, %s rounds (median), %s, A=%s B=%s, %s cores\n\n' "$THREADS" "$CONNS" "$DUR" "$ROUNDS" "$(date -u +%F)" \
  "$(revname "$REV_A")" "$(revname "$REV_B")" "$(nproc)"
printf '| target | requests/s (runs) | median | ratio to ceiling | server CPU µs/answer (runs) | median |\n|---|---|---:|---:|---|---:|\n'
for k in ceiling a-soldout b-soldout a-reserve b-reserve; do
  m=$(median "${runs[$k]}")
  name=$k; [ "$k" = ceiling ] && name="ceiling: minimal net/http handler"
  printf '| %s | %s | %s | %.3f | %s | %s |\n' "$name" "${runs[$k]}" "$m" "$(echo "$m / $c" | bc -l)" "${cpu[$k]}" "$(median "${cpu[$k]}")"
done
for sc in soldout reserve; do
  printf '%s: B/A = %.3f requests/s, %.3f CPU per answer\n' "$sc" \
    "$(echo "$(median "${runs[b-$sc]}") / $(median "${runs[a-$sc]}")" | bc -l)" \
    "$(echo "$(median "${cpu[b-$sc]}") / $(median "${cpu[a-$sc]}")" | bc -l)"
done
