package main

import (
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
