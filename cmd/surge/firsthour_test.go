package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/servicetest"
)

// TestHelpCommand: surge help COMMAND is COMMAND --help.
func TestHelpCommand(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "serve"}, "Usage: surge serve [flags]\n"},
		{[]string{"help", "sale", "create"}, "Usage: surge sale create --name NAME --stock N [flags]\n"},
		{[]string{"help", "bench"}, "Usage: surge bench --server URL"},
		{[]string{"help"}, "surge — a flash-sale engine"},
	} {
		code, stdout, stderr := runCLI(cancelled(), tt.args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, tt.want) {
			t.Errorf("%v: %d, stdout %.80q, stderr %q; want 0 and %q", tt.args, code, stdout, stderr, tt.want)
		}
	}
	if code, _, stderr := runCLI(cancelled(), "help", "nope"); code != 2 || !oneLine(stderr) {
		t.Errorf("help nope: %d, %q", code, stderr)
	}
}

// TestFirstHour is what a newcomer meets against a plain `surge serve`:
// no waiting-room warning until a sale has a waiting room, CLI errors
// that name the flag to fix, `sale list` as a table, and bench's
// --server.
func TestFirstHour(t *testing.T) {
	const token = "first-hour-admin-token"
	srv := startServe(t, "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--admin-token", token,
		"--insecure-user-header")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const roomWarning = "waiting-room tickets are signed with a random per-process key"
	warnings := func() int { return strings.Count(srv.stderr.String(), roomWarning) }
	if n := warnings(); n != 0 {
		t.Errorf("plain serve warns about waiting-room tickets at start:\n%s", srv.stderr)
	}

	// Missing and wrong tokens, an unreachable server: one line that says
	// what to do, exit 1.
	down := "http://" + freeAddr(t)
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"no token", []string{"sale", "create", "--server", srv.base, "--name", "x", "--stock", "1"},
			[]string{"no admin token: pass --admin-token or set SURGE_ADMIN_TOKEN"}},
		{"wrong token", []string{"sale", "create", "--server", srv.base, "--admin-token", "not-the-admin-token", "--name", "x", "--stock", "1"},
			[]string{"the server refused the admin token", "unauthenticated (HTTP 401)", "check --admin-token or SURGE_ADMIN_TOKEN"}},
		{"refused", []string{"sale", "list", "--server", down},
			[]string{"cannot connect to the server " + down + ": connection refused", "check --server", "`surge serve` runs"}},
		{"bench refused", []string{"bench", "--server", down, "--admin-token", token, "--stock", "5", "--users", "10"},
			[]string{"cannot connect to the server " + down, "check --server"}},
	} {
		code, stdout, stderr := runCLI(ctx, tt.args...)
		ok := code == 1 && stdout == "" && oneLine(stderr) && !strings.Contains(stderr, "Authorization")
		for _, w := range tt.want {
			ok = ok && strings.Contains(stderr, w)
		}
		if !ok {
			t.Errorf("%s: %d, stdout %q, stderr %q; want 1 and one line with %q", tt.name, code, stdout, stderr, tt.want)
		}
	}
	if code, _, stderr := runCLI(ctx, "bench", "--server", srv.base, "--stock", "5"); code != 1 || !strings.Contains(stderr, "pass --admin-token or set SURGE_ADMIN_TOKEN") {
		t.Errorf("bench without a token: %d, %q", code, stderr)
	}

	// A sale without a waiting room: still no warning. With one: one
	// warning, once.
	if code, _, stderr := runCLI(ctx, "sale", "create", "--server", srv.base, "--admin-token", token, "--id", "plain", "--name", "Plain drop", "--stock", "10"); code != 0 {
		t.Fatalf("sale create: %d %q", code, stderr)
	}
	if n := warnings(); n != 0 {
		t.Errorf("a sale without a waiting room brought the warning:\n%s", srv.stderr)
	}
	for _, id := range []string{"queued", "queued2"} {
		if code, _, stderr := runCLI(ctx, "sale", "create", "--server", srv.base, "--admin-token", token, "--id", id, "--name", "Queued drop", "--stock", "5",
			"--admit-per-second", "10", "--queue", "fifo", "--ticket-seconds", "60"); code != 0 {
			t.Fatalf("sale create with a waiting room: %d %q", code, stderr)
		}
	}
	if n := warnings(); n != 1 {
		t.Errorf("%d waiting-room warnings after two sales with a waiting room, want 1:\n%s", n, srv.stderr)
	}

	// surge bench --server, and --target, its former name.
	for _, flag := range []string{"--server", "--target"} {
		code, out, errOut := runCLI(ctx, "bench", flag, srv.base, "--admin-token", token, "--sale", "b"+flag[2:], "--stock", "20",
			"--users", "60", "--connections", "4")
		if code != 0 || !strings.Contains(out, "VERDICT: PASS") {
			t.Errorf("bench %s: %d\n%s\n%s", flag, code, out, errOut)
		}
	}

	// sale list: a table for people, --json for programs.
	code, stdout, stderr := runCLI(ctx, "sale", "list", "--server", srv.base)
	if code != 0 || stderr != "" {
		t.Fatalf("sale list: %d %q", code, stderr)
	}
	// Sales made within the same millisecond (queued2 and bserver, often)
	// are listed by id: their rows are found by id past the first three.
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 6 || !regexp.MustCompile(`^ID +NAME +STATUS +REMAINING +STOCK +LIMIT +PRICE +STARTS +ENDS +QUEUE$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^plain +Plain drop +live +10 +10 +1 +0\.00 USD +\S+ +- +-$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^queued +Queued drop +live +5 +5 +1 +0\.00 USD +\S+ +- +fifo 10/s$`).MatchString(lines[2]) ||
		!slices.ContainsFunc(lines[3:], regexp.MustCompile(`^bserver +.+ +sold_out +0 +20 `).MatchString) {
		t.Errorf("sale list table:\n%s", stdout)
	}
	code, stdout, _ = runCLI(ctx, "sale", "list", "--server", srv.base, "--json")
	var sales []api.Sale
	if decodeJSON(t, stdout, &sales); code != 0 || len(sales) != 5 ||
		!slices.ContainsFunc(sales, func(s api.Sale) bool { return s.ID == "queued2" && s.WaitingRoom != nil }) {
		t.Errorf("sale list --json: %d %+v", code, sales)
	}
}

// TestDemoCleansUp: the demo's temporary directory goes when it ends
// (the report is written outside it, by default in the current
// directory); --keep keeps it.
func TestDemoCleansUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a demo")
	}
	tmp, work := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Chdir(work)
	code, out, errOut := runCLI(context.Background(), "demo", "--users", "300", "--stock", "30", "--spike", "400ms")
	if code != 0 || !strings.Contains(out, "VERDICT: PASS") {
		t.Fatalf("demo: %d\n%s\n%s", code, out, errOut)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the demo left %v in its temporary directory", left)
	}
	if !strings.Contains(out, "report written: surge-demo-report.html") {
		t.Errorf("the demo does not say where its report is:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(work, "surge-demo-report.html")); err != nil {
		t.Errorf("no report in the current directory: %v", err)
	}
	if strings.Contains(out+errOut, "waiting-room") {
		t.Errorf("the demo warns about waiting rooms it does not use:\n%s\n%s", out, errOut)
	}
	// --keep: the server stays until the context ends, and so does the
	// directory.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	outb, errb := new(servicetest.Log), new(servicetest.Log)
	go func() {
		done <- run(ctx, []string{"demo", "--users", "100", "--stock", "10", "--spike", "200ms", "--keep", "--report", filepath.Join(work, "k.html")}, outb, errb)
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(outb.String(), "server still running") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("demo --keep: %d\n%s\n%s", code, outb, errb)
	}
	left, _ := os.ReadDir(tmp)
	if len(left) != 1 || !strings.Contains(outb.String(), "the demo's data directory stays: "+filepath.Join(tmp, left[0].Name())) {
		t.Errorf("demo --keep: left %v; output:\n%s", left, outb)
	}
}
