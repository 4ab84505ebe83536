# Shared by the bench scripts, sourced from the repository's root; build
# needs the script's $work directory.

# need TOOL...: install the Debian package of each tool missing from PATH
need() {
  local tool pkg
  for tool; do
    command -v "$tool" >/dev/null && continue
    case $tool in
      psql) pkg=postgresql-client ;;
      pgbench) pkg=postgresql ;; # the server package has it (postgresql-NN)
      redis-cli) pkg=redis-tools ;;
      pgrep) pkg=procps ;;
      *) pkg=$tool ;;
    esac
    apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null
  done
}

# two_builds REV_A REV_B: a work directory, removed at exit together with
# the server whose pid is in $pid (if any), holding the two builds as
# $work/a and $work/b
two_builds() {
  work=$(mktemp -d)
  pid=
  trap 'end_work' EXIT
  build "$1" "$work/a"
  build "$2" "$work/b"
}
end_work() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }

# build REV OUT: a binary of the revision (or of the working tree for ".")
build() {
  if [ "$1" = . ]; then go build -o "$2" ./cmd/surge; return; fi
  local src="$work/src-$(basename "$2")"
  mkdir -p "$src" && git archive "$1" | tar -x -C "$src"
  (cd "$src" && go build -o "$2" ./cmd/surge)
}

# wait_up URL: until something answers at URL (15 s), else stop the script
wait_up() { for _ in $(seq 150); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; exit 1; }

# wait_ready URL: until URL answers 2xx (15 s), else stop the script
wait_ready() { for _ in $(seq 150); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; exit 1; }

# psqlc SQL: one statement on the local PostgreSQL's database test, bare output
psqlc() { psql -X -qtA -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d test -c "$1"; }

# drop_run RUN: the PostgreSQL schemas RUN_* and the Redis keys RUN_* a
# cluster bench made
drop_run() {
  local s
  for s in $(psqlc "SELECT nspname FROM pg_namespace WHERE nspname LIKE '${1}\_%'" 2>/dev/null); do
    psqlc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
  done
  redis-cli --scan --pattern "${1}_*" | xargs -r -n 1000 redis-cli unlink >/dev/null || true
}

# cpu_ticks PID: the clock ticks of user and system CPU the process has used
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# revname REV: how a report names a revision: its short hash, or for "."
# the working tree of HEAD
revname() {
  if [ "$1" = . ]; then echo "working tree of $(git rev-parse --short HEAD)"; else git rev-parse --short "$1"; fi
}
