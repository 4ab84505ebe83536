package main

import (
	"strings"
	"testing"
)

// TestBenchRefusalNamesTheFlag: a value surge bench refuses before it sends
// anything is a command-line mistake (exit 2), and its message must name
// the flag the user typed. It named the field of bench.Config in words
// instead, "max quantity" for --quantity, "target" for --server, so the
// user was left to guess which flag was wrong. Run on the built binary,
// against no server: nothing is sent.
func TestBenchRefusalNamesTheFlag(t *testing.T) {
	base := []string{"bench", "--server", "http://127.0.0.1:1", "--admin-token", "bench-flags-test-token"}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--stock", "5", "--quantity", "3"}, "--quantity"},
		{[]string{"--sale", "drop", "--quantity", "-1"}, "--quantity"},
		{[]string{"--sale", "drop", "--server", "http://127.0.0.1:1/?x=1"}, "--server"},
		{[]string{"--sale", "no such id"}, "--sale"},
		{[]string{"--stock", "5", "--per-user-limit", "9"}, "--per-user-limit"},
		{[]string{"--sale", "drop", "--users", "0"}, "--users"},
		{[]string{"--sale", "drop", "--retry-share", "2"}, "--retry-share"},
		{[]string{"--sale", "drop", "--user-prefix", "a b"}, "--user-prefix"},
		{[]string{"--sale", "drop", "--connections", "0"}, "--connections"},
		{[]string{"--sale", "drop", "--duration", "-1s"}, "--duration"},
		{[]string{"--sale", "drop", "--timeout", "-1s"}, "--timeout"},
	} {
		code, _, stderr := runBinary(t, append(base, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.flag+":") {
			t.Errorf("surge bench %s: exit %d, %q; want exit 2 naming %s, the flag given", strings.Join(tc.args, " "), code, strings.TrimSpace(stderr), tc.flag)
		}
	}
}
