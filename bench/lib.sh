# Shared by the A/B scripts (ab.sh, jwt.sh, keyed.sh, ledger.sh), sourced
# from the repository's root after the script has made its $work directory.

# build REV OUT: a binary of the revision (or of the working tree for ".")
build() {
  if [ "$1" = . ]; then go build -o "$2" ./cmd/surge; return; fi
  local src="$work/src-$(basename "$2")"
  mkdir -p "$src" && git archive "$1" | tar -x -C "$src"
  (cd "$src" && go build -o "$2" ./cmd/surge)
}

# wait_up URL: until something answers at URL (15 s), else stop the script
wait_up() { for _ in $(seq 150); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; exit 1; }
