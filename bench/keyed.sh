#!/usr/bin/env bash
# Keyed purchases on a sold-out sale, cluster mode against embedded mode,
# side by side with the minimal handler in one run on this machine (issue
# 14: the cluster's ratio >= 0.9 of the embedded one, with no Redis call per
# request). Each round runs, with the same wrk settings (bench/purchase.lua:
# every request a new buyer with its own Idempotency-Key): the ceiling
# handler, then a fresh `surge serve` of build B in embedded mode, then
# builds A and B (interleaved, so drift of the shared machine hits both
# alike) in cluster mode on a schema and Redis prefix of their own, each on a
# sale of stock 1 sold to a keyed buyer before the run. Each run also reads
# the server's CPU time from /proc (steadier than requests/s on a shared
# machine) and, for the cluster runs, the node's Redis calls from /metrics
# (surge_dependency_duration_seconds_count{dependency="redis"}). The table
# gives each target's runs and the median of the per-round ratios to the
# ceiling, for requests/s and for CPU per request (ceiling's CPU /
# target's CPU), and the cluster's median ratio to the embedded one.
# Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432, database
# test (scripts/services.sh).
# Usage: bench/keyed.sh REV_A [REV_B=working tree] [duration=5s] [connections=64] [rounds=3]
#   A revision is anything git understands; "." is the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
REV_A=${1:?usage: bench/keyed.sh REV_A [REV_B] [duration] [connections] [rounds]}
REV_B=${2:-.}
DUR=${3:-5s}
CONNS=${4:-64}
ROUNDS=${5:-3}
PORT=${PORT:-18491}
. bench/lib.sh
need wrk bc curl psql redis-cli
scripts/services.sh >/dev/null
work=$(mktemp -d)
run=kb$(date +%s)$$
pid=
cpid=
PGBASE='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
cleanup() {
  for p in $pid $cpid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  drop_run "$run"
  rm -rf "$work"
}
trap cleanup EXIT

build "$REV_A" "$work/a"
if [ "$REV_B" = "$REV_A" ] && [ "$REV_A" != . ]; then cp "$work/a" "$work/b"; else build "$REV_B" "$work/b"; fi
go build -o "$work/ceiling" ./bench/ceiling
token=keyed-bench-admin-token-0123456789
base=http://127.0.0.1:$PORT
redis_calls() { # the node's Redis calls so far (0 in embedded mode)
  curl -fs -H "Authorization: Bearer $token" $base/metrics |
    awk '/^surge_dependency_duration_seconds_count\{dependency="redis"/ {s += $2} END {print s + 0}'
}
# rps URL PID -> "requests/s server_CPU_µs_per_request requests" of one wrk run
rps() {
  local url=$1 p=$2 before after out reqs
  before=$(cpu_ticks "$p")
  out=$(wrk -t1 -c"$CONNS" -d"$DUR" -s bench/purchase.lua "$url" -- s)
  after=$(cpu_ticks "$p")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%s %.1f %s\n' "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
    "$(echo "($after - $before) * 1000000 / $(getconf CLK_TCK) / $reqs" | bc -l)" "$reqs"
}
# surge_rps BIN NAME [cluster] -> rps, CPU and Redis calls per request of
# BIN's sold-out path with keyed buyers (NAME: of this run's data)
surge_rps() {
  local n=$2
  local args=(--data-dir "$work/data$n")
  if [ "${3:-}" = cluster ]; then
    local s=${run}_$n
    psqlc "CREATE SCHEMA $s" >/dev/null
    args=(--redis-url redis://127.0.0.1:6379/0 --postgres-url "$PGBASE&search_path=$s" --redis-prefix "$s")
  fi
  "$1" serve --http-addr 127.0.0.1:$PORT "${args[@]}" --admin-token "$token" --insecure-user-header \
    --log-level warn >"$work/surge$n.log" 2>&1 &
  pid=$!
  wait_up $base/readyz
  curl -fs -H "Authorization: Bearer $token" -X POST $base/v1/sales -d '{"id":"s","name":"sold out","stock":1}' >/dev/null
  curl -fs -H 'X-User-ID: first' -H 'Idempotency-Key: first' -X POST $base/v1/sales/s/purchases >/dev/null
  # The first keyed sold-out answers come from Redis and start the node's
  # catch-up of the sale's keys; the run measures the steady state after.
  for i in $(seq 20); do curl -s -o /dev/null -H "X-User-ID: warm$i" -H "Idempotency-Key: warm$i" -X POST $base/v1/sales/s/purchases; sleep 0.05; done
  local r0 r1 rate cpu reqs
  r0=$(redis_calls)
  read -r rate cpu reqs < <(rps $base "$pid")
  r1=$(redis_calls)
  printf '%s %s %.3f\n' "$rate" "$cpu" "$(echo "($r1 - $r0) / $reqs" | bc -l)"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

"$work/ceiling" -addr 127.0.0.1:$((PORT + 1)) & cpid=$!
wait_up http://127.0.0.1:$((PORT + 1))/
declare -A rps cpu ratio calls
add() { # add NAME "rps cpu calls" CEILING_RPS CEILING_CPU
  local r c k
  read -r r c k <<<"$2"
  rps[$1]+="$r " cpu[$1]+="$c " calls[$1]+="${k:-0} "
  ratio[$1]+="$(echo "$r / $3" | bc -l) "
  ratio[$1-cpu]+="$(echo "$4 / $c" | bc -l) "
}
for r in $(seq "$ROUNDS"); do
  read -r c_rps c_cpu _ < <(rps http://127.0.0.1:$((PORT + 1)) "$cpid")
  add ceiling "$c_rps $c_cpu" "$c_rps" "$c_cpu"
  add embedded "$(surge_rps "$work/b" "e$r")" "$c_rps" "$c_cpu"
  add a "$(surge_rps "$work/a" "a$r" cluster)" "$c_rps" "$c_cpu"
  add b "$(surge_rps "$work/b" "b$r" cluster)" "$c_rps" "$c_cpu"
  echo "round $r: ceiling $c_rps/s, embedded $(awk '{print $NF}' <<<"${rps[embedded]}")/s, cluster A $(awk '{print $NF}' <<<"${rps[a]}")/s, cluster B $(awk '{print $NF}' <<<"${rps[b]}")/s" >&2
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
div() { # div "x1 x2 .." "y1 y2 ..": the per-round ratios
  paste <(tr ' ' '\n' <<<"$1" | grep .) <(tr ' ' '\n' <<<"$2" | grep .) | awk '{printf "%s ", $1 / $2}'
}
printf '\nwrk -t1 -c%s -d%s -s bench/purchase.lua (every request a new keyed buyer) on a sold-out sale, %s rounds, %s, A=%s B=%s, %s cores, load average %s\n\n' \
  "$CONNS" "$DUR" "$ROUNDS" "$(date -u '+%F %H:%M UTC')" "$(revname "$REV_A")" \
  "$(revname "$REV_B")" "$(nproc)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '| target | requests/s (runs) | server CPU µs/request (runs) | Redis calls/request | ratio to ceiling, requests/s (median of rounds) | ratio to ceiling, CPU/request (median) |\n|---|---|---|---|---:|---:|\n'
for k in ceiling embedded a b; do
  case $k in
    ceiling) name="ceiling: minimal net/http handler" ;;
    embedded) name="B: surge serve, embedded" ;;
    a) name="A: surge serve, cluster" ;;
    b) name="B: surge serve, cluster" ;;
  esac
  printf '| %s | %s | %s | %s | %.3f | %.3f |\n' "$name" "${rps[$k]}" "${cpu[$k]}" "${calls[$k]:-}" "$(median "${ratio[$k]}")" "$(median "${ratio[$k-cpu]}")"
done
printf '\ncluster ÷ embedded (median of rounds): A %.3f (CPU %.3f), B %.3f (CPU %.3f)\n' \
  "$(median "$(div "${ratio[a]}" "${ratio[embedded]}")")" "$(median "$(div "${ratio[a-cpu]}" "${ratio[embedded-cpu]}")")" \
  "$(median "$(div "${ratio[b]}" "${ratio[embedded]}")")" "$(median "$(div "${ratio[b-cpu]}" "${ratio[embedded-cpu]}")")"
