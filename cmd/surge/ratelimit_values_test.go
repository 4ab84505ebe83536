package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRateLimitRefusalSaysWhich: a bad rate limit in the config file,
// sent during a sale with SIGHUP or checked with --print-config, was
// refused as "--rate-limit-buyer must not be negative and its burst must
// be at least 1" whatever was wrong: a burst of 0 named the rate, which
// was fine, a NaN was called negative, and no message gave the value.
// A negative burst passed while its limit was off, and refused the
// reload that later turned the limit on, naming the rate. Each refusal
// must name the key at fault and its value, in the reload's log and in
// --print-config alike.
func TestRateLimitRefusalSaysWhich(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "surge.yaml")
	base := fmt.Sprintf("data-dir: %s\nadmin-token: rate-limit-values-admin-token\nrate-limit-buyer: 5\n", filepath.Join(dir, "data"))
	replaceConfig(t, path, base)
	p := startConfigured(t, "--config", path)
	for _, tc := range []struct{ body, key, value string }{
		{"rate-limit-buyer-burst: 0\n", "--rate-limit-buyer-burst", "0"},
		{"rate-limit-buyer-burst: -3\n", "--rate-limit-buyer-burst", "-3"},
		{"rate-limit-ip: NaN\n", "--rate-limit-ip", "NaN"},
		{"rate-limit-sale: -2.5\n", "--rate-limit-sale", "-2.5"},
		{"rate-limit-ip-burst: -1\n", "--rate-limit-ip-burst", "-1"}, // its limit off
	} {
		replaceConfig(t, path, base+tc.body)
		code, stderr := serveExit(t, []string{"serve", "--config", path, "--print-config"})
		if code != 2 || !strings.Contains(stderr, tc.key+" ") || !strings.Contains(stderr, tc.value) || strings.Contains(stderr, "negative and its burst") {
			t.Errorf("--print-config of %q: exit %d, %q; want exit 2 naming %s and %s alone", tc.body, code, stderr, tc.key, tc.value)
		}
		refused := p.logCount("config reload refused")
		if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); p.logCount("config reload refused") == refused; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("reload of %q: not refused within 10 s:\n%s", tc.body, p.logTail())
			}
		}
		lines := strings.Split(strings.TrimSpace(p.logTail()), "\n")
		last := ""
		for _, l := range lines {
			if strings.Contains(l, "config reload refused") {
				last = l
			}
		}
		if !strings.Contains(last, tc.key+" ") || !strings.Contains(last, tc.value) || strings.Contains(last, "negative and its burst") {
			t.Errorf("reload of %q: %q; want the refusal to name %s and %s alone", tc.body, last, tc.key, tc.value)
		}
	}
}
