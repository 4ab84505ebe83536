#!/usr/bin/env bash
# Overload run, in one go (docs/benchmarks.md, "overload"):
#
#   1. the cost of the protection layer at normal load: closed-loop
#      reserve-heavy runs, alternately with the default protection and with
#      none (--shed=false --rate-limit-buyer 0), each on a fresh server;
#   2. Surge's maximum purchase rate: the median goodput of those runs;
#   3. MULTIPLE x that rate offered open-loop for DURATION to a fresh server
#      with the default protection; goodput (201 + 409 per second), latency
#      of the admitted answers (not 429/503), 5xx other than 503 with
#      Retry-After, the server's peak RSS and CPU; then the bench verifies
#      every guarantee from the server's export.
#
# It does this for each REGIME (default "default storebound"):
#   default     surge serve as shipped. On the 2-core project machine the
#               maximum is set by CPU, which the load generator shares.
#   storebound  --max-batch $STOREBATCH (2): each commit takes at most 2
#               purchases, so the store's commit rate (one fsync per batch),
#               not the CPU, sets the maximum: a stand-in for a slower store,
#               the regime the load shedder exists for, and one where the
#               load generator can offer 5x the maximum within this
#               machine's CPU (a rejected purchase costs about 30 µs of
#               server CPU and 25 µs of bench CPU, so 5x a maximum of R/s
#               needs about 4R x 55 µs beyond serving R).
#
# Usage: bench/overload.sh [DURATION=20s] [MULTIPLE=5]
# Environment: REGIMES, PAIRS (closed-loop pairs, 3), CLOSED (their length,
# 8s), CONNS (open-loop connections, 512), OUT (keep the JSON reports
# there), PROFILE=1 (CPU profile of the server during each overload run),
# OVERLOAD=0 (only the closed-loop pairs: the cost of protection),
# QUIET (before each run, wait up to 5 minutes until other processes use
# less than this share of the machine over 2 s; default 0.1, 1 disables).
#
# On a machine shared with other work, the CPU that other processes used
# during the overload run is reported; a run is only comparable with
# another if that figure is small in both.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-20s}
MULT=${2:-5}
REGIMES=${REGIMES:-default storebound}
PAIRS=${PAIRS:-3}
CLOSED=${CLOSED:-8s}
CONNS=${CONNS:-512}
QUIET=${QUIET:-0.1}
STOREBATCH=${STOREBATCH:-2}
for tool in jq bc curl python3; do
  command -v $tool >/dev/null || { echo "overload.sh needs $tool" >&2; exit 2; }
done
work=$(mktemp -d)
out=${OUT:-$work/out}
mkdir -p "$out"
pid=
sampler=
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; } || true
  rm -rf "$work/data"
  [ -z "${OUT:-}" ] && rm -rf "$work" || true
}
trap cleanup EXIT
go build -o bin/surge ./cmd/surge
commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)
hz=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # user nice system irq softirq steal

# start_surge FLAGS... : a fresh server on free ports; sets url, pid, debug.
start_surge() {
  rm -rf "$work/data"
  debug=127.0.0.1:$(free_port)
  bin/surge serve --http-addr 127.0.0.1:0 --data-dir "$work/data" --admin-token bench-admin-token --insecure-user-header \
    --log-level warn --debug-addr "$debug" "$@" >"$work/serve.out" 2>"$work/serve.err" &
  pid=$!
  url=
  for _ in $(seq 100); do
    url=$(sed -n 's/^surge serving on //p' "$work/serve.out")
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  echo "surge serve did not start:" >&2; cat "$work/serve.err" >&2; exit 1
}
stop_surge() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# closed NAME FLAGS... : closed-loop reserve-heavy run on a fresh server;
# sets c_gp (goodput/s) and c_cpu (server CPU µs per answer).
closed() {
  local name=$1; shift
  wait_quiet
  start_surge "$@"
  local c0; c0=$(cpu_ticks "$pid")
  bin/surge bench --target "$url" --admin-token bench-admin-token --sale r --stock 1000000000 --users 5000000 \
    --duration "$CLOSED" --connections "$CCONNS" --retry-share 0 --no-verify --json "$out/$name.json" >/dev/null 2>&1
  local c1; c1=$(cpu_ticks "$pid")
  stop_surge
  local n
  c_gp=$(jq .goodput "$out/$name.json"); n=$(jq .completed "$out/$name.json")
  c_cpu=$(echo "($c1 - $c0) * 1000000 / $hz / $n" | bc -l)
}

# wait_quiet: until the machine's busy share over 2 s is below QUIET (no
# server or bench of ours is running then), for at most 5 minutes.
wait_quiet() {
  [ "$(echo "$QUIET >= 1" | bc)" = 1 ] && return 0
  local deadline=$(( $(date +%s) + 300 )) b0 t0 b1 t1 share
  while :; do
    b0=$(busy_ticks); t0=$(awk '/^cpu / {s=0; for (i=2; i<=NF; i++) s+=$i; print s}' /proc/stat)
    sleep 2
    b1=$(busy_ticks); t1=$(awk '/^cpu / {s=0; for (i=2; i<=NF; i++) s+=$i; print s}' /proc/stat)
    share=$(echo "($b1 - $b0) / ($t1 - $t0)" | bc -l)
    [ "$(echo "$share < $QUIET" | bc)" = 1 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf '   (machine still busy: %.0f%% used by other processes; going ahead)\n' "$(echo "$share * 100" | bc -l)" >&2
      return 0
    fi
  done
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

summary=()
for regime in $REGIMES; do
  case $regime in
    default) flags=(); batch=512 ;;
    storebound) flags=(--max-batch "$STOREBATCH"); batch=$STOREBATCH ;;
    *) echo "unknown regime $regime (want default or storebound)" >&2; exit 2 ;;
  esac
  # Enough concurrency to keep the group commit's pipeline full (two
  # batches: one committing, one gathering), at most the 128 of the other
  # benchmarks; more would only queue.
  CCONNS=$(( 2 * batch < 128 ? 2 * batch : 128 ))
  echo "== $regime: ${flags[*]:-(defaults)}; closed loop, $CCONNS connections, $CLOSED, $PAIRS pairs" >&2

  on=(); off=(); on_cpu=(); off_cpu=()
  for i in $(seq "$PAIRS"); do
    closed "$regime-on-$i" "${flags[@]}"
    on+=("$c_gp"); on_cpu+=("$c_cpu")
    closed "$regime-off-$i" "${flags[@]}" --shed=false --rate-limit-buyer 0
    off+=("$c_gp"); off_cpu+=("$c_cpu")
    printf '   pair %d: protected %.0f/s, unprotected %.0f/s\n' "$i" "${on[-1]}" "${off[-1]}" >&2
  done
  on_med=$(printf '%s\n' "${on[@]}" | median); off_med=$(printf '%s\n' "${off[@]}" | median)
  max=$(printf '%s\n' "${on[@]}" "${off[@]}" | median)
  best=$(printf '%s\n' "${on[@]}" "${off[@]}" | sort -g | tail -1)
  if [ "${OVERLOAD:-1}" = 0 ]; then
    printf '\n%s: protected / unprotected, medians %.0f / %.0f = %.2f; pairs:' "$regime" "$on_med" "$off_med" "$(echo "$on_med / $off_med" | bc -l)"
    for i in "${!on[@]}"; do printf ' %.2f' "$(echo "${on[$i]} / ${off[$i]}" | bc -l)"; done
    printf '; server CPU per purchase %.0f / %.0f µs\n' "$(printf '%s\n' "${on_cpu[@]}" | median)" "$(printf '%s\n' "${off_cpu[@]}" | median)"
    continue
  fi
  rate=$(printf '%.0f' "$(echo "$max * $MULT" | bc -l)")
  secs=$(echo "${DUR%s}" | bc)
  users=$(( rate * secs * 2 + 1000 ))

  # The overload run.
  wait_quiet
  start_surge "${flags[@]}"
  echo "   overload: $rate/s open loop ($MULT x $max) for $DUR, $CONNS connections" >&2
  : >"$work/rss"
  ( while kill -0 "$pid" 2>/dev/null; do awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null; sleep 0.2; done ) >>"$work/rss" &
  sampler=$!
  prof=
  if [ "${PROFILE:-}" = 1 ]; then
    curl -fs -H "Authorization: Bearer bench-admin-token" "http://$debug/debug/pprof/profile?seconds=$(( secs > 5 ? secs - 5 : secs ))" -o "$out/$regime-cpu.pprof" &
    prof=$!
  fi
  s0=$(cpu_ticks "$pid"); m0=$(busy_ticks); t0=$(date +%s.%N)
  bin/surge bench --target "$url" --admin-token bench-admin-token --sale r --stock 1000000000 --users "$users" \
    --rate "$rate" --duration "$DUR" --connections "$CONNS" --retry-share 0.05 \
    --json "$out/$regime-overload.json" >"$out/$regime-overload.txt" 2>/dev/null || true
  s1=$(cpu_ticks "$pid"); m1=$(busy_ticks); t1=$(date +%s.%N)
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  stats=$(curl -fs -H "Authorization: Bearer bench-admin-token" "http://$debug/debug/stats" || echo '{}')
  [ -n "$prof" ] && { wait "$prof" 2>/dev/null || true; }
  kill "$sampler" 2>/dev/null || true; sampler=
  stop_surge
  rss=$(sort -n "$work/rss" | tail -1)
  j=$out/$regime-overload.json
  wall=$(echo "$t1 - $t0" | bc -l)
  server_cores=$(echo "($s1 - $s0) / $hz / $wall" | bc -l)
  bench_cores=$(jq '.client.cpu_seconds' "$j"); bench_cores=$(echo "$bench_cores / $wall" | bc -l)
  other_cores=$(echo "($m1 - $m0) / $hz / $wall - $server_cores - $bench_cores" | bc -l)
  gp=$(jq .goodput "$j")
  summary+=("$(jq -r --arg regime "$regime" --arg max "$max" --arg best "$best" --arg gp "$gp" --arg rate "$rate" \
    --arg on "$on_med" --arg off "$off_med" --arg oncpu "$(printf '%s\n' "${on_cpu[@]}" | median)" \
    --arg offcpu "$(printf '%s\n' "${off_cpu[@]}" | median)" --arg rss "$rss" --arg hwm "$hwm" \
    --arg sc "$server_cores" --arg bc "$bench_cores" --arg oc "$other_cores" --arg batch "$(jq -r '.mean_batch // 0' <<<"$stats")" '
    def r(x): (x * 100 | round) / 100;
    "\n### \($regime)\n\n" +
    "| figure | value | target |\n|---|---:|---:|\n" +
    "| closed loop, protected / unprotected (median goodput/s) | \($on|tonumber|round) / \($off|tonumber|round) = **\(r(($on|tonumber) / ($off|tonumber)))** | ≥ 0.95 |\n" +
    "| server CPU per purchase, protected / unprotected | \($oncpu|tonumber|round) / \($offcpu|tonumber|round) µs | |\n" +
    "| maximum purchase rate (median of all closed-loop runs; best) | \($max|tonumber|round)/s (\($best|tonumber|round)/s) | |\n" +
    "| offered open loop | \($rate)/s for \(.elapsed|round) s = \(r(($rate|tonumber) / ($max|tonumber)))× the maximum; \(.scheduled) scheduled, \(.unsent) never sent, \(.client.late) sent > 1 ms late | 5× |\n" +
    "| goodput (201 + 409 per second) | \($gp|tonumber|round)/s = **\(r(($gp|tonumber) / ($max|tonumber)))** of the maximum (\(r(($gp|tonumber) / ($best|tonumber))) of the best) | ≥ 0.90 |\n" +
    "| answers | " + ([.status | to_entries[] | "\(.key): \(.value)"] | join(" · ")) + "; transport errors \(.errors) | |\n" +
    "| admitted latency (not 429/503) p50 / p99 / max | \(r(.admitted_latency.p50_ms)) / **\(r(.admitted_latency.p99_ms))** / \(r(.admitted_latency.max_ms)) ms | p99 ≤ 50 ms |\n" +
    "| all answers p50 / p99 | \(r(.latency.p50_ms)) / \(r(.latency.p99_ms)) ms | |\n" +
    "| 5xx other than 503 with Retry-After | **\(.bad_5xx)** | 0 |\n" +
    "| server RSS, peak (sampled every 0.2 s; kernel VmHWM) | \(($rss|tonumber) / 1024 | round) MiB (\(($hwm|tonumber) / 1024 | round) MiB) | bounded |\n" +
    "| CPU, cores: server / bench / other processes | \(r($sc|tonumber)) / \(r($bc|tonumber)) / \(r($oc|tonumber)) | |\n" +
    "| mean batch during the overload | \(r($batch|tonumber)) | |\n" +
    "| verdict | " + (if .verdict.ok then "PASS" elif .verdict == null then "NOT VERIFIED" else "FAIL" end) + " (\(.verdict.confirmed // 0) confirmed orders checked) | PASS |"
  ' "$j")")
done

printf '\n## overload.sh %s %s — %s, commit %s, %s cores\n' "$DUR" "$MULT" "$(date -u +%F)" "$commit" "$(nproc)"
printf '%s\n' "${summary[@]}"
[ -n "${OUT:-}" ] && printf '\nreports: %s\n' "$out"
