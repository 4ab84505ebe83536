package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoRefusesBadFlagsBeforeStarting: surge demo refused any of four
// bad flags with one message naming all four, and took a --per-user-limit
// above --stock, or a --stock above the server's 1,000,000,000, only to
// start a server and fail (exit 1) with bench's words ("surge: bench:
// per-user limit must be between 1 and the stock 5", "create sale:
// invalid_request"). Each is refused before anything starts (exit 2),
// naming the demo's flag at fault.
func TestDemoRefusesBadFlagsBeforeStarting(t *testing.T) {
	for _, c := range []struct {
		args      []string
		want, not string
	}{
		{[]string{"--stock", "0"}, "--stock", "--users"},
		{[]string{"--stock", "2000000000"}, "--stock 2000000000", "bench"},
		{[]string{"--users", "0"}, "--users", "--stock"},
		{[]string{"--per-user-limit", "0"}, "--per-user-limit", "--users"},
		{[]string{"--spike", "50ms"}, "--spike", "--stock"},
		{[]string{"--stock", "5", "--per-user-limit", "10"}, "--per-user-limit 10", "bench"},
	} {
		code, stdout, stderr := runCLI(cancelled(), append([]string{"demo", "--report", t.TempDir() + "/r.html"}, c.args...)...)
		if code != 2 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, c.want) || strings.Contains(stderr, c.not) {
			t.Errorf("demo %s: exit %d, stdout %q, stderr %q; want 2, nothing started, one line naming %s (not %s)", strings.Join(c.args, " "), code, stdout, stderr, c.want, c.not)
		}
	}
}

// TestDemoReportCheckedBeforeTheSpike: a --report that cannot be written
// (its directory missing, a directory) was learned only after the whole
// spike, when the report was written; it is refused before anything
// starts (exit 2), naming the flag.
func TestDemoReportCheckedBeforeTheSpike(t *testing.T) {
	for _, report := range []string{t.TempDir() + "/missing/r.html", t.TempDir()} {
		code, stdout, stderr := runCLI(context.Background(), "demo", "--users", "20", "--stock", "5", "--spike", "100ms", "--report", report)
		if code != 2 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, "--report") {
			t.Errorf("demo --report %s: exit %d, stdout %q, stderr %q; want 2, nothing started, one line naming --report", report, code, stdout, stderr)
		}
	}
}

// TestDemoKeepsItsDirectoryWhenTheReportFails: a report that could not be
// written (a disk full: /dev/full opens but takes nothing) removed the
// data directory too, the only record left of the run; it stays, and the
// demo says where.
func TestDemoKeepsItsDirectoryWhenTheReportFails(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	code, stdout, stderr := runCLI(context.Background(), "demo", "--users", "20", "--stock", "5", "--spike", "100ms", "--report", "/dev/full")
	dirs, _ := filepath.Glob(filepath.Join(tmp, "surge-demo-*"))
	if code != 1 || len(dirs) != 1 || !strings.Contains(stdout, "the demo's data directory stays: "+dirs[0]) {
		t.Fatalf("demo --report /dev/full: exit %d, directories left %v\nstdout:\n%s\nstderr:\n%s\nwant exit 1 and the data directory kept and named", code, dirs, stdout, stderr)
	}
}
