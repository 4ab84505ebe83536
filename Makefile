# Surge — common tasks. `make test` is the README's test command and what CI runs.
GO ?= go
PKGS := ./...

.PHONY: proto proto-check build services test test-short vet fmt bench bench-http bench-cluster bench-ab bench-jwt bench-keyed bench-ledger bench-onecpu bench-pgcost bench-targets bench-overload bench-tail capacity fuzz observability-check clean

# Stamped into the binary (package version): `surge version`, surge_build_info.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/surgehq/surge/version.version=$(VERSION) -X github.com/surgehq/surge/version.commit=$(COMMIT)

build: ## build bin/surge, stamped with VERSION and COMMIT
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/surge ./cmd/surge

services: ## start Redis and PostgreSQL for cluster mode and its tests (installs them if missing)
	scripts/services.sh

test: services vet ## full test suite under the race detector (what CI runs)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short: ## quick run without the crash tests
	$(GO) test -short -count=1 $(PKGS)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)

fmt:
	gofmt -w .

bench: ## in-process Go benchmarks (engine and HTTP handler)
	$(GO) test -run '^$$' -bench . -benchtime 3s ./engine/ ./http/

bench-http: ## side-by-side run: minimal net/http handler vs surge serve, wrk and surge bench
	bench/compare.sh

bench-cluster: services ## side-by-side run: minimal handler, tutorial baseline, cluster mode with 1 and 2 nodes
	bench/cluster.sh

REV ?= HEAD
bench-ab: ## A/B: the working tree against REV (default HEAD) beside the minimal handler, wrk, interleaved rounds
	bench/ab.sh $(REV) .

bench-jwt: ## A/B: the sold-out path with per-buyer HS256 tokens, the working tree against REV, beside the minimal handler
	bench/jwt.sh $(REV) .

bench-keyed: ## A/B: keyed purchases of a sold-out sale in cluster mode, the working tree against REV, beside embedded mode and the minimal handler
	bench/keyed.sh $(REV) .

bench-ledger: ## A/B: start time, RSS per order and GC share with a million orders of a live sale, the working tree against REV
	bench/ledger.sh $(REV) .

bench-onecpu: ## A/B: the server pinned to one CPU (no GOMAXPROCS set), reserve-heavy and sold-out, the working tree against REV
	bench/onecpu.sh $(REV) .

bench-tail: ## A/B: the open loop's tail (client p99, sends late, server share within 10 ms, GC mark), the working tree against REV
	bench/tail.sh $(REV) .

bench-pgcost: services ## PostgreSQL's CPU per order of cluster mode's commit, by part (guard, indexes), with pgbench
	bench/pgcost.sh $(or $(REV),.)

bench-targets: services ## every performance target of issue 14, each by its own script, then one table of verdicts (~10 min)
	bench/targets.sh

bench-overload: ## the maximum purchase rate, then 5x it open loop; the cost of protection
	bench/overload.sh

capacity: ## simulate a spike on one sale in cluster mode with the measured costs (ARGS='-rate 60000 -stock 100000000 ...')
	$(GO) run ./bench/capacity $(ARGS)

FUZZTIME ?= 30s
fuzz: ## run every fuzz target (request decoders, auth, tickets, payment webhooks, the ledger image, times) for FUZZTIME each
	@for file in $$(grep -l '^func Fuzz' $$(find . -name '*_test.go' -not -path './.git/*' | sort)); do \
		pkg=$$(dirname $$file); \
		for f in $$(grep -o '^func Fuzz[A-Za-z]*' $$file | cut -d' ' -f2); do \
			echo "== $$pkg $$f"; \
			seen=$$(ls $$pkg/testdata/fuzz/$$f 2>/dev/null | wc -l); out=$$(mktemp); \
			if ! $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >$$out 2>&1; then \
				cat $$out; \
				if [ "$$(ls $$pkg/testdata/fuzz/$$f 2>/dev/null | wc -l)" = "$$seen" ] && grep -q 'context deadline exceeded' $$out; then \
					echo "(no failing input written: Go's fuzz coordinator timing out at -fuzztime's end, golang/go#75804; not a finding)"; \
				else rm -f $$out; exit 1; fi; \
			else cat $$out; fi; rm -f $$out; \
		done; \
	done

observability-check: ## promtool on deploy/observability (rules, their unit tests, config), the dashboard's queries, and real Prometheus scraping surge serve
	CI=true $(GO) test -count=1 ./deploy/observability/ # CI=true: fail, not skip, without prometheus

clean:
	rm -rf bin surge-data

proto: ## regenerate gen/ from proto/ with buf (buf.gen.yaml) and the plugins' pinned versions
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1
	buf lint
	buf generate

proto-check: ## when buf is installed: proto/ passes buf lint and gen/ is what it generates (skipped without buf)
	@if ! command -v buf >/dev/null; then echo "buf not installed: proto-check skipped"; exit 0; fi; \
	buf lint && tmp=$$(mktemp -d) && buf generate -o $$tmp && \
	diff -r -I '^//[[:space:]]*protoc ' gen $$tmp/gen && rm -rf $$tmp && echo "gen/ is up to date"
