#!/usr/bin/env bash
# Buyers with JWTs on the sold-out path, side by side with the minimal
# handler in one run on this machine (issue 14: >= 0.85 of it). Each round
# runs, with the same wrk settings: the ceiling handler, then for builds A
# and B (interleaved, so drift of the shared machine hits both alike) a
# fresh `surge serve --jwt-secret` whose sold-out sale is hit by buyers
# each carrying a distinct HS256 token (bench/jwt.lua cycles through
# TOKENS of them, as retrying buyers do), then B again with X-User-ID
# buyers (the same path without a JWT). Each run also reads the server's
# CPU time from /proc: on a machine shared with other work, CPU per
# request is steadier than requests/s. The table gives each target's runs
# and the median of the per-round ratios to the ceiling, for requests/s
# and for CPU per request (ceiling's CPU / target's CPU).
# TOKENS=300000 makes every request of a run carry a token never seen
# before (the cold path).
# PROFILE=FILE also saves a 3 s CPU profile of B under load (last round),
# and one of the ceiling under the same load in FILE.ceiling, to read side
# by side (go tool pprof -top). Profiling slows the round it runs in by a
# few percent: quote ratios from runs without PROFILE.
# Usage: bench/jwt.sh REV_A [REV_B=working tree] [duration=5s] [connections=64] [rounds=3]
#   A revision is anything git understands; "." is the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
REV_A=${1:?usage: bench/jwt.sh REV_A [REV_B] [duration] [connections] [rounds]}
REV_B=${2:-.}
DUR=${3:-5s}
CONNS=${4:-64}
ROUNDS=${5:-3}
TOKENS=${TOKENS:-10000}
PORT=${PORT:-18391}
. bench/lib.sh
need wrk bc curl
work=$(mktemp -d)
pid=
cpid=
cleanup() { for p in $pid $cpid; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

build "$REV_A" "$work/a"
if [ "$REV_B" = "$REV_A" ] && [ "$REV_A" != . ]; then cp "$work/a" "$work/b"; else build "$REV_B" "$work/b"; fi
go build -o "$work/ceiling" ./bench/ceiling
go build -o "$work/tokens" ./bench/tokens
secret=jwt-bench-secret-0123456789abcdef0123456789
"$work/tokens" -n "$TOKENS" -secret "$secret" >"$work/tokens.txt"
# rps URL PID [SCRIPT ARGS...] -> "requests/s server_CPU_µs_per_request" of one wrk run
rps() {
  local url=$1 p=$2 before after out reqs
  shift 2
  before=$(cpu_ticks "$p")
  out=$(wrk -t1 -c"$CONNS" -d"$DUR" -s "${@:-bench/jwt.lua}" "$url" -- s "$work/tokens.txt")
  after=$(cpu_ticks "$p")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%s %.1f\n' "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" "$(echo "($after - $before) * 1000000 / $(getconf CLK_TCK) / $reqs" | bc -l)"
}
token=jwt-bench-admin-token-0123456789
# surge_rps BIN [PROFILE_OUT] [SCRIPT] -> rps and CPU of BIN's sold-out path
# with JWT buyers (or, with SCRIPT bench/purchase.lua, X-User-ID buyers)
surge_rps() {
  rm -rf "$work/data"
  "$1" serve --http-addr 127.0.0.1:$PORT --data-dir "$work/data" --admin-token "$token" \
    --jwt-secret "$secret" --insecure-user-header --log-level warn --debug-addr 127.0.0.1:$((PORT + 2)) >"$work/surge.log" 2>&1 &
  pid=$!
  wait_up http://127.0.0.1:$PORT/readyz
  curl -fs -H "Authorization: Bearer $token" -X POST http://127.0.0.1:$PORT/v1/sales -d '{"id":"s","name":"sold out","stock":1}' >/dev/null
  curl -fs -H "Authorization: Bearer $(head -1 "$work/tokens.txt")" -X POST http://127.0.0.1:$PORT/v1/sales/s/purchases >/dev/null
  local prof=
  if [ -n "${2:-}" ]; then
    (sleep 1; curl -fs -o "$2" -H "Authorization: Bearer $token" "http://127.0.0.1:$((PORT + 2))/debug/pprof/profile?seconds=3") &
    prof=$!
  fi
  rps http://127.0.0.1:$PORT "$pid" ${3:-}
  [ -z "$prof" ] || wait "$prof"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

"$work/ceiling" -addr 127.0.0.1:$((PORT + 1)) -debug-addr 127.0.0.1:$((PORT + 3)) & cpid=$!
wait_up http://127.0.0.1:$((PORT + 1))/
declare -A rps cpu ratio
add() { # add NAME "rps cpu" CEILING_RPS CEILING_CPU
  local r c
  read -r r c <<<"$2"
  rps[$1]+="$r " cpu[$1]+="$c "
  ratio[$1]+="$(echo "$r / $3" | bc -l) "
  ratio[$1-cpu]+="$(echo "$4 / $c" | bc -l) "
}
for r in $(seq "$ROUNDS"); do
  cprof=
  if [ "$r" = "$ROUNDS" ] && [ -n "${PROFILE:-}" ]; then
    (sleep 1; curl -fs -o "$PROFILE.ceiling" "http://127.0.0.1:$((PORT + 3))/debug/pprof/profile?seconds=3") &
    cprof=$!
  fi
  read -r c_rps c_cpu < <(rps http://127.0.0.1:$((PORT + 1)) "$cpid")
  [ -z "$cprof" ] || wait "$cprof"
  add ceiling "$c_rps $c_cpu" "$c_rps" "$c_cpu"
  add a "$(surge_rps "$work/a")" "$c_rps" "$c_cpu"
  prof=
  [ "$r" = "$ROUNDS" ] && [ -n "${PROFILE:-}" ] && prof=$PROFILE
  add b "$(surge_rps "$work/b" "$prof")" "$c_rps" "$c_cpu"
  add hdr "$(surge_rps "$work/b" "" bench/purchase.lua)" "$c_rps" "$c_cpu"
  echo "round $r: ceiling $c_rps/s, A $(awk "{print \$NF}" <<<"${rps[a]}")/s, B $(awk "{print \$NF}" <<<"${rps[b]}")/s" >&2
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '\nwrk -t1 -c%s -d%s -s bench/jwt.lua, %s distinct HS256 buyer tokens, %s rounds, %s, A=%s B=%s, %s cores\n\n' \
  "$CONNS" "$DUR" "$TOKENS" "$ROUNDS" "$(date -u '+%F %H:%M UTC')" "$(revname "$REV_A")" \
  "$(revname "$REV_B")" "$(nproc)"
printf '| target (sold-out path) | requests/s (runs) | server CPU µs/request (runs) | ratio to ceiling, requests/s (median of rounds) | ratio to ceiling, CPU/request (median) |\n|---|---|---|---:|---:|\n'
for k in ceiling a b hdr; do
  case $k in
    ceiling) name="ceiling: minimal net/http handler" ;;
    a) name="A: surge serve, JWT buyers" ;;
    b) name="B: surge serve, JWT buyers" ;;
    hdr) name="B: surge serve, X-User-ID buyers (no JWT)" ;;
  esac
  printf '| %s | %s | %s | %.3f | %.3f |\n' "$name" "${rps[$k]}" "${cpu[$k]}" "$(median "${ratio[$k]}")" "$(median "${ratio[$k-cpu]}")"
done
