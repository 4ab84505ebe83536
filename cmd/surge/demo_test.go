package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/surgehq/surge/bench"
)

// TestDemoEndToEnd runs `surge demo` small: a whole sale must end with a
// passing verdict, every unit sold, and an HTML report on disk.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end demo skipped with -short")
	}
	report := filepath.Join(t.TempDir(), "report.html")
	code, out, errOut := runCLI(context.Background(), "demo",
		"--users", "1500", "--stock", "120", "--spike", "1s", "--report", report)
	if code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "VERDICT: PASS") {
		t.Errorf("no passing verdict in the output:\n%s", out)
	}
	if !strings.Contains(out, "report written: "+report) {
		t.Errorf("the output does not say where the report is:\n%s", out)
	}
	// 120 units, one per buyer: 120 new reservations, whatever the replays
	// of a key (10 % of buyers send twice), which are counted apart; and
	// the moment the sale sold out.
	m := regexp.MustCompile(`reservations 120 new · ([0-9,]+) replays of a key \(same order again\) · sold out at [0-9.]+ s`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" {
		t.Errorf("the output does not show 120 new reservations, the replays apart, and the sell-out time:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^  reserved +120 `).MatchString(out) || !regexp.MustCompile(`(?m)^  replayed +[1-9]`).MatchString(out) {
		t.Errorf("the outcomes do not show reserved 120 and the replays on a row of their own:\n%s", out)
	}
	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "<svg") || !strings.Contains(string(html), "PASS") {
		t.Errorf("the report has no chart or no verdict (%d bytes)", len(html))
	}
}

// TestBenchAgainstServer fires `surge bench` at a running `surge serve`,
// creating the sale, and checks the verdict and the JSON report.
func TestBenchAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end bench skipped with -short")
	}
	srv := startServe(t, "--http-addr", freeAddr(t), "--data-dir", t.TempDir(),
		"--admin-token", "bench-e2e-admin-token", "--insecure-user-header", "--log-level", "error")
	jsonPath := filepath.Join(t.TempDir(), "run.json")
	code, out, errOut := runCLI(context.Background(), "bench",
		"--target", srv.base, "--admin-token", "bench-e2e-admin-token", "--sale", "bench-e2e", "--stock", "200",
		"--per-user-limit", "2", "--quantity", "2", "--users", "800", "--connections", "32",
		"--retry-share", "0.2", "--json", jsonPath)
	if code != 0 {
		t.Fatalf("bench exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "VERDICT: PASS") {
		t.Errorf("no passing verdict:\n%s", out)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.Verdict == nil || !res.Verdict.OK || res.Verdict.Stock != 200 {
		t.Fatalf("verdict in JSON: %+v", res.Verdict)
	}
	// 800 buyers asking 1–2 units each want far more than 200: the sale
	// sells out, and the units the bench saw confirmed are exactly the
	// units sold.
	if res.Verdict.Remaining != 0 || res.Verdict.LiveUnits != 200 {
		t.Errorf("sale not sold out: remaining %d, live units %d", res.Verdict.Remaining, res.Verdict.LiveUnits)
	}
	if res.Sent < 800 || res.Codes["reserved"] == 0 || res.Codes["sold_out"] == 0 {
		t.Errorf("counts: sent %d, codes %v", res.Sent, res.Codes)
	}

	// A second crowd against the same, now sold-out sale: all rejections,
	// and the verdict still holds.
	code, out, errOut = runCLI(context.Background(), "bench",
		"--target", srv.base, "--admin-token", "bench-e2e-admin-token", "--sale", "bench-e2e", "--users", "300", "--connections", "16")
	if code != 0 || !strings.Contains(out, "VERDICT: PASS") {
		t.Fatalf("second crowd exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
