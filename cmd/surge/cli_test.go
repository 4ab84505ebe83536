package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/servicetest"
)

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func runCLI(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// oneLine reports whether s is exactly one "surge: …" line.
func oneLine(s string) bool {
	return strings.HasPrefix(s, "surge: ") && strings.HasSuffix(s, "\n") && strings.Count(s, "\n") == 1
}

// startRefusal reports whether s is a refusal to start: its log record
// (where a supervisor's operator looks first) and one "surge: …" line.
func startRefusal(s string) bool {
	rec, rest, ok := strings.Cut(s, "\n")
	return ok && strings.Contains(rec, `msg="surge cannot start"`) && oneLine(rest)
}

// cancelled is a context that is already done: a command that wrongly got
// past its argument checks fails fast instead of serving or dialling.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestNoArguments(t *testing.T) {
	code, stdout, stderr := runCLI(cancelled())
	if code != 2 || stdout != "" || stderr != usage {
		t.Errorf("run() = %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, stdout, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // in the one line on stderr
	}{
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate" (run 'surge --help')`},
		{"unknown command flag", nil, []string{"--verbose"}, `unknown command "--verbose"`},
		{"serve unknown flag", nil, []string{"serve", "--bogus"}, "serve: flag provided but not defined: -bogus (run 'surge serve --help')"},
		{"serve bad int", nil, []string{"serve", "--max-batch", "many"}, `invalid value "many" for flag -max-batch`},
		{"serve bad duration", nil, []string{"serve", "--shutdown-timeout=soon"}, `invalid value "soon" for flag -shutdown-timeout`},
		{"serve bad bool", nil, []string{"serve", "--insecure-user-header=maybe"}, `invalid boolean value "maybe"`},
		{"serve missing value", nil, []string{"serve", "--http-addr"}, "flag needs an argument: -http-addr"},
		{"serve zero queue", nil, []string{"serve", "--queue-size", "0"}, "must be positive"},
		{"serve negative batch", nil, []string{"serve", "--max-batch=-1"}, "must be positive"},
		{"serve zero timeout", nil, []string{"serve", "--shutdown-timeout", "0s"}, "must be positive"},
		{"serve negative ledger image min", nil, []string{"serve", "--ledger-image-min", "-1"}, "--ledger-image-min must not be negative"},
		{"serve negative heap floor", nil, []string{"serve", "--heap-floor-mib", "-1"}, "--heap-floor-mib must be between 0 and"},
		{"serve huge heap floor env", map[string]string{"SURGE_HEAP_FLOOR_MIB": "1000000"}, []string{"serve"}, "--heap-floor-mib must be between 0 and"},
		{"serve zero idempotency ttl", nil, []string{"serve", "--idempotency-ttl", "0s"}, "--idempotency-ttl must be positive"},
		{"serve negative idempotency ttl env", map[string]string{"SURGE_IDEMPOTENCY_TTL": "-1h"}, []string{"serve"}, "--idempotency-ttl must be positive"},
		{"serve bad log level", nil, []string{"serve", "--log-level", "loud"}, `invalid --log-level "loud"`},
		{"serve bad log format", nil, []string{"serve", "--log-format", "xml"}, `invalid --log-format "xml"`},
		{"serve argument", nil, []string{"serve", "now"}, `serve: unexpected argument "now"`},
		{"sale without subcommand", nil, []string{"sale"}, "sale: missing subcommand"},
		{"sale unknown subcommand", nil, []string{"sale", "delete"}, `sale: unknown subcommand "delete"`},
		{"create without name", nil, []string{"sale", "create", "--stock", "10"}, "sale create: --name and --stock are required"},
		{"create without stock", nil, []string{"sale", "create", "--name", "x"}, "sale create: --name and --stock are required"},
		{"create bad stock", nil, []string{"sale", "create", "--name", "x", "--stock", "lots"}, `invalid value "lots" for flag -stock`},
		{"create unknown flag", nil, []string{"sale", "create", "--colour", "red"}, "sale create: flag provided but not defined: -colour (run 'surge sale create --help')"},
		{"create bad start", nil, []string{"sale", "create", "--name", "x", "--stock", "1", "--starts-at", "tomorrow"}, "--starts-at must be an RFC 3339 time"},
		{"create bad end", nil, []string{"sale", "create", "--name", "x", "--stock", "1", "--ends-at", "2026-13-01"}, "--ends-at must be an RFC 3339 time"},
		{"list argument", nil, []string{"sale", "list", "all"}, "sale list: takes no arguments"},
		{"list unknown flag", nil, []string{"sale", "list", "--all"}, "sale list: flag provided but not defined: -all"},
		{"get without id", nil, []string{"sale", "get"}, "sale get: needs exactly one sale ID"},
		{"get without id after flags", nil, []string{"sale", "get", "--server", "http://127.0.0.1:1"}, "sale get: needs exactly one sale ID"},
		{"get two ids", nil, []string{"sale", "get", "a", "b"}, "sale get: needs exactly one sale ID"},
		{"get two ids after flags", nil, []string{"sale", "get", "--admin-token", "t", "a", "b"}, "sale get: needs exactly one sale ID"},
		{"get unknown flag", nil, []string{"sale", "get", "a", "--bogus"}, "sale get: flag provided but not defined: -bogus"},

		// Environment variables are read like flags, and checked like them.
		{"env bad int", map[string]string{"SURGE_MAX_BATCH": "lots"}, []string{"serve"}, `serve: invalid value "lots" for SURGE_MAX_BATCH`},
		{"env bad bool", map[string]string{"SURGE_INSECURE_USER_HEADER": "maybe"}, []string{"serve"}, `invalid value "maybe" for SURGE_INSECURE_USER_HEADER`},
		{"env bad duration", map[string]string{"SURGE_SHUTDOWN_TIMEOUT": "soon"}, []string{"serve"}, `invalid value "soon" for SURGE_SHUTDOWN_TIMEOUT`},
		{"env log level honoured", map[string]string{"SURGE_LOG_LEVEL": "loud"}, []string{"serve"}, `invalid --log-level "loud"`},
		{"env queue size honoured", map[string]string{"SURGE_QUEUE_SIZE": "0"}, []string{"serve"}, "must be positive"},
		{"env bad stock", map[string]string{"SURGE_STOCK": "many"}, []string{"sale", "create", "--name", "x"}, `sale create: invalid value "many" for SURGE_STOCK`},
		{"env sale fields honoured", map[string]string{"SURGE_NAME": "x", "SURGE_STOCK": "5", "SURGE_STARTS_AT": "tomorrow"},
			[]string{"sale", "create"}, "--starts-at must be an RFC 3339 time"},
		{"flag beats env", map[string]string{"SURGE_LOG_LEVEL": "debug"}, []string{"serve", "--log-level", "loud"}, `invalid --log-level "loud"`},
		// sale update changes only the fields named on its command line:
		// a SURGE_STOCK left from a sale create must not reset a live
		// sale's stock under a rename.
		{"env field on update", map[string]string{"SURGE_STOCK": "5"}, []string{"sale", "update", "drop", "--name", "x"},
			"sale update: SURGE_STOCK is set in the environment"},
		{"env fields only on update", map[string]string{"SURGE_PER_USER_LIMIT": "9", "SURGE_ENDS_AT": "none"}, []string{"sale", "update", "drop"},
			"SURGE_ENDS_AT, SURGE_PER_USER_LIMIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Should a case get past the checks, it must not touch the
			// package directory or a well-known port.
			t.Setenv("SURGE_DATA_DIR", t.TempDir())
			t.Setenv("SURGE_HTTP_ADDR", "127.0.0.1:0")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runCLI(cancelled(), tt.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !oneLine(stderr) || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr %q, want one line with %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string // in stdout; the first is its start
	}{
		{[]string{"--help"}, []string{usage}},
		{[]string{"-h"}, []string{usage}},
		{[]string{"-help"}, []string{usage}},
		{[]string{"help"}, []string{usage}},
		{[]string{"serve", "--help"}, []string{"Usage: surge serve [flags]\n", "SURGE_<NAME>", "-http-addr", "-data-dir", "-insecure-user-header", "-shutdown-timeout", "-idempotency-ttl"}},
		{[]string{"serve", "-h", "--bogus"}, []string{"Usage: surge serve [flags]\n"}},
		{[]string{"sale", "--help"}, []string{saleUsage}},
		{[]string{"sale", "help"}, []string{saleUsage}},
		{[]string{"sale", "create", "--help"}, []string{"Usage: surge sale create --name NAME --stock N [flags]\n", "-per-user-limit", "-hold-seconds", "-server", "-admin-token"}},
		{[]string{"sale", "list", "-h"}, []string{"Usage: surge sale list [flags]\n", "-server"}},
		{[]string{"sale", "get", "--help"}, []string{"Usage: surge sale get ID [flags]\n", "-server"}},
		{[]string{"sale", "get", "s_1", "--help"}, []string{"Usage: surge sale get ID [flags]\n"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("SURGE_DATA_DIR", t.TempDir())
			t.Setenv("SURGE_HTTP_ADDR", "127.0.0.1:0")
			code, stdout, stderr := runCLI(cancelled(), tt.args...)
			if code != 0 || stderr != "" {
				t.Errorf("exit code %d, stderr %q; want 0 and nothing", code, stderr)
			}
			if !strings.HasPrefix(stdout, tt.want[0]) {
				t.Errorf("stdout %q does not start with %q", stdout, tt.want[0])
			}
			for _, w := range tt.want[1:] {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout %q lacks %q", stdout, w)
				}
			}
		})
	}
}

// TestVersionArguments: `surge version --bogus` printed the version and
// exited 0, and `surge version --help` printed the version too, though the
// README promises that bad flags print one line and exit 2 and that --help
// works everywhere.
func TestVersionArguments(t *testing.T) {
	for _, args := range [][]string{{"version", "--bogus"}, {"version", "now"}, {"--version", "--json"}} {
		code, stdout, stderr := runCLI(cancelled(), args...)
		if code != 2 || stdout != "" || !oneLine(stderr) {
			t.Errorf("surge %s: exit %d, stdout %q, stderr %q; want exit 2, nothing on stdout and one line on stderr",
				strings.Join(args, " "), code, stdout, stderr)
		}
	}
	for _, args := range [][]string{{"version", "--help"}, {"help", "version"}, {"version", "-h"}} {
		code, stdout, stderr := runCLI(cancelled(), args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: surge version") {
			t.Errorf("surge %s: exit %d, stdout %q, stderr %q; want exit 0 and the usage of surge version",
				strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	// The stamped and installed builds are tested in package version.
	for _, arg := range []string{"version", "--version"} {
		code, stdout, stderr := runCLI(cancelled(), arg)
		if code != 0 || stderr != "" || !regexp.MustCompile(`^surge \S+ \(commit \S+, go\S+\)\n$`).MatchString(stdout) {
			t.Errorf("%s: %d, stdout %q, stderr %q", arg, code, stdout, stderr)
		}
	}
}

// inproc is `surge serve` run by run() in a goroutine of the test.
type inproc struct {
	base           string
	stdout, stderr *servicetest.Log
	cancel         context.CancelFunc
	done           chan int

	stopOnce sync.Once
	code     int
}

// startServe runs `surge serve args…` and waits until it serves.
func startServe(t *testing.T, args ...string) *inproc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &inproc{stdout: new(servicetest.Log), stderr: new(servicetest.Log), cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- run(ctx, append([]string{"serve"}, args...), s.stdout, s.stderr) }()
	t.Cleanup(func() { s.stop(t) })
	const prefix = "surge serving on "
	deadline := time.Now().Add(startWithin)
	for time.Now().Before(deadline) {
		for line := range strings.Lines(s.stdout.String()) {
			if addr, ok := strings.CutPrefix(line, prefix); ok {
				s.base = strings.TrimSpace(addr)
				return s
			}
		}
		select {
		case code := <-s.done:
			s.stopOnce.Do(func() { s.code = code })
			t.Fatalf("serve exited with %d before serving:\n%s", code, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not start within %v:\n%s", startWithin, s.stderr)
	return nil
}

// stop cancels the server's context, the graceful shutdown path, and
// returns its exit code.
func (s *inproc) stop(t *testing.T) int {
	t.Helper()
	s.stopOnce.Do(func() {
		s.cancel()
		select {
		case s.code = <-s.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("serve did not return within 20s of its context's end")
		}
	})
	return s.code
}

// decodeJSON decodes all of out into v, refusing unknown fields.
func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after the JSON in %q", out)
	}
}

func TestCLIAgainstServer(t *testing.T) {
	addr, dataDir, token := freeAddr(t), t.TempDir(), "cli-test-admin-token"
	// The server is configured through the environment only.
	t.Setenv("SURGE_HTTP_ADDR", addr)
	t.Setenv("SURGE_DATA_DIR", dataDir)
	t.Setenv("SURGE_ADMIN_TOKEN", token)
	t.Setenv("SURGE_INSECURE_USER_HEADER", "true")
	t.Setenv("SURGE_LOG_FORMAT", "json")
	srv := startServe(t)
	if srv.base != "http://"+addr {
		t.Errorf("serving on %s, want SURGE_HTTP_ADDR %s", srv.base, addr)
	}
	if out := srv.stdout.String(); strings.Contains(out, "admin token") {
		t.Errorf("SURGE_ADMIN_TOKEN ignored, stdout: %q", out)
	}
	if first, _, _ := strings.Cut(srv.stderr.String(), "\n"); !json.Valid([]byte(first)) {
		t.Errorf("SURGE_LOG_FORMAT=json ignored, log: %q", first)
	}

	// The client commands take the server and the token (the same
	// SURGE_ADMIN_TOKEN) from the environment too.
	t.Setenv("SURGE_SERVER", srv.base)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	code, stdout, stderr := runCLI(ctx, "sale", "create", "--id", "launch", "--name", "Launch day", "--stock", "10",
		"--per-user-limit", "2", "--price-cents", "1999", "--currency", "EUR", "--hold-seconds", "60",
		"--starts-at", "2025-01-01T00:00:00Z")
	if code != 0 || stderr != "" {
		t.Fatalf("sale create: %d, stderr %q", code, stderr)
	}
	if !strings.HasPrefix(stdout, "{\n  \"id\": \"launch\",\n") {
		t.Errorf("sale create output is not indented JSON: %q", stdout)
	}
	var launch api.Sale
	decodeJSON(t, stdout, &launch)
	want := api.Sale{
		ID: "launch", Name: "Launch day", Stock: 10, Remaining: 10, PerUserLimit: 2, PriceCents: 1999,
		Currency: "EUR", StartsAt: "2025-01-01T00:00:00.000Z", HoldSeconds: 60, Status: "live",
	}
	if launch.StartsAt != want.StartsAt || launch.EndsAt != nil {
		t.Errorf("created sale window %v–%v, want %v–none", launch.StartsAt, launch.EndsAt, want.StartsAt)
	}
	launch.StartsAt, want.StartsAt = "", ""
	if launch != want {
		t.Errorf("created sale\n %+v, want\n %+v", launch, want)
	}

	starts := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	ends := starts.Add(time.Hour)
	code, stdout, stderr = runCLI(ctx, "sale", "create", "--name", "Later", "--stock", "5",
		"--starts-at", starts.Format(time.RFC3339), "--ends-at", ends.Format(time.RFC3339))
	if code != 0 || stderr != "" {
		t.Fatalf("sale create: %d, stderr %q", code, stderr)
	}
	var later api.Sale
	decodeJSON(t, stdout, &later)
	if !strings.HasPrefix(later.ID, "s_") || later.Status != "upcoming" || later.PerUserLimit != 1 ||
		later.Currency != "USD" || later.HoldSeconds != 900 || later.StartsAt != api.FormatTime(starts) ||
		later.EndsAt == nil || *later.EndsAt != api.FormatTime(ends) {
		t.Errorf("sale created with defaults: %+v", later)
	}

	// Errors of the server: exit 1, one line on stderr, nothing on stdout.
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"duplicate id", []string{"sale", "create", "--id", "launch", "--name", "Again", "--stock", "1"}, "sale_exists (HTTP 409)"},
		{"wrong token flag beats env", []string{"sale", "create", "--admin-token", "wrong", "--name", "x", "--stock", "1"}, "unauthenticated (HTTP 401)"},
		{"limit above stock", []string{"sale", "create", "--name", "x", "--stock", "10", "--per-user-limit", "11"}, "invalid_request (HTTP 400)"},
		{"unknown sale", []string{"sale", "get", "nope"}, "sale_not_found (HTTP 404)"},
		{"server flag beats env", []string{"sale", "list", "--server", "http://" + freeAddr(t)}, "connect"},
	} {
		code, stdout, stderr := runCLI(ctx, tt.args...)
		if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, tt.wantErr) {
			t.Errorf("%s: %d, stdout %q, stderr %q; want 1 and one line with %q", tt.name, code, stdout, stderr, tt.wantErr)
		}
	}

	code, stdout, stderr = runCLI(ctx, "sale", "list", "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("sale list: %d, stderr %q", code, stderr)
	}
	var sales []api.Sale
	decodeJSON(t, stdout, &sales)
	if len(sales) != 2 || sales[0].ID != "launch" || sales[1].ID != later.ID {
		t.Errorf("sale list: %+v, want launch then %s", sales, later.ID)
	}

	// A purchase (as X-User-ID, allowed by SURGE_INSECURE_USER_HEADER)
	// shows in the remaining stock.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.base+"/v1/sales/launch/purchases", strings.NewReader(`{"quantity":2}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-User-ID", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("purchase: %s", resp.Status)
	}

	// The id may come before or after the flags.
	launch.Remaining = 8
	for _, args := range [][]string{
		{"sale", "get", "launch"},
		{"sale", "get", "launch", "--server", srv.base},
		{"sale", "get", "--server", srv.base, "launch"},
	} {
		code, stdout, stderr := runCLI(ctx, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: %d, stderr %q", args, code, stderr)
		}
		var got api.Sale
		decodeJSON(t, stdout, &got)
		got.StartsAt = ""
		if got != launch {
			t.Errorf("%v:\n %+v, want\n %+v", args, got, launch)
		}
	}

	// Cancelling the context is the graceful shutdown: serve returns nil.
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exited with %d after its context ended:\n%s", code, srv.stderr)
	}
	if !strings.Contains(srv.stderr.String(), "stopped cleanly") {
		t.Errorf("no clean stop in the log:\n%s", srv.stderr)
	}

	// A restart on the same data directory (flags beat the environment)
	// finds the sales and the purchase.
	srv = startServe(t, "--http-addr", "127.0.0.1:0", "--log-level", "warn")
	code, stdout, stderr = runCLI(ctx, "sale", "get", "launch", "--server", srv.base)
	if code != 0 || stderr != "" {
		t.Fatalf("sale get after restart: %d, stderr %q", code, stderr)
	}
	var got api.Sale
	decodeJSON(t, stdout, &got)
	got.StartsAt = ""
	if got != launch {
		t.Errorf("after restart:\n %+v, want\n %+v", got, launch)
	}
	if strings.Contains(srv.stderr.String(), `"level":"INFO"`) {
		t.Errorf("--log-level warn ignored:\n%s", srv.stderr)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exited with %d after its context ended:\n%s", code, srv.stderr)
	}
}

func TestServeErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A taken address: exit 1 with one line, after a generated admin
	// token was printed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, stdout, stderr := runCLI(ctx, "serve", "--data-dir", t.TempDir(), "--http-addr", ln.Addr().String(), "--log-level", "error")
	if code != 1 || !startRefusal(stderr) || !strings.Contains(stderr, "listen on "+ln.Addr().String()) {
		t.Errorf("serve on a taken address: %d, stderr %q; want 1 and one line", code, stderr)
	}
	if !regexp.MustCompile(`^admin token \(generated; .*\): [0-9a-f]{48}\n$`).MatchString(stdout) {
		t.Errorf("stdout %q, want the generated admin token", stdout)
	}

	// A data directory that cannot be created: a file is in the way.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(ctx, "serve", "--data-dir", filepath.Join(file, "sub"), "--http-addr", "127.0.0.1:0", "--admin-token", "bad-data-dir-admin-token", "--log-level", "error")
	if code != 1 || !startRefusal(stderr) || !strings.Contains(stderr, "create data dir") {
		t.Errorf("serve with a bad data dir: %d, stderr %q; want 1 and one line", code, stderr)
	}
}

// TestSaleUpdateHelpEnv: `surge sale update --help` said every flag was
// also settable as SURGE_<NAME>, though update refuses a sale field's
// variable (SURGE_STOCK, …) rather than apply it; only --server and
// --admin-token are.
func TestSaleUpdateHelpEnv(t *testing.T) {
	code, stdout, stderr := runCLI(cancelled(), "sale", "update", "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("exit code %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if strings.Contains(stdout, "each also settable") {
		t.Errorf("help says every flag is settable from the environment, which update refuses for the sale's fields:\n%s", stdout)
	}
	for _, w := range []string{"SURGE_SERVER", "SURGE_ADMIN_TOKEN", "-stock"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("help lacks %q:\n%s", w, stdout)
		}
	}
}

// TestTopHelpEnvClaim: `surge --help` said "Every flag can also be set as
// an environment variable SURGE_<NAME>", but sale update refuses its
// fields' variables (TestSaleUpdateHelpEnv): an operator who set
// SURGE_STOCK for an update, as the top help told, got a refusal. The top
// help says which command's help tells the exceptions.
func TestTopHelpEnvClaim(t *testing.T) {
	t.Setenv("SURGE_STOCK", "5")
	code, _, stderr := runCLI(cancelled(), "sale", "update", "s1", "--name", "n", "--server", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(stderr, "SURGE_STOCK") {
		t.Fatalf("sale update with SURGE_STOCK set: %d, %q; want the variable refused (exit 2)", code, stderr)
	}
	_, stdout, _ := runCLI(cancelled(), "--help")
	if strings.Contains(stdout, "Every flag can also") {
		t.Errorf("surge --help says every flag is settable from the environment, which sale update refuses for SURGE_STOCK:\n%s", stdout)
	}
	for _, w := range []string{"SURGE_<NAME>", "SURGE_HTTP_ADDR", "--help"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("surge --help lacks %q:\n%s", w, stdout)
		}
	}
}
