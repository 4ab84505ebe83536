package main

import (
	"os"
	"strings"
	"testing"
)

// TestFileKeyOverriddenWarns: a key of the config file that a SURGE_*
// variable or a flag overrides with another value is named in the log, at
// start and on each reload, with what overrides it. The container image
// sets SURGE_LOG_FORMAT and the Helm chart SURGE_DRAIN_DELAY and
// SURGE_SHUTDOWN_TIMEOUT: a file's value of those had no effect, and a
// SIGHUP after editing it logged "config reloaded" as if it had. A key the
// file and a variable set alike is not named.
func TestFileKeyOverriddenWarns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	t.Setenv("SURGE_DRAIN_DELAY", "0s")
	t.Setenv("SURGE_LOG_LEVEL", "info")
	const warning = "this key is overridden"
	path := writeConfig(t, "surge.yaml", "drain-delay: 5s\nrate-limit-ip: 7\nlog-level: info\nshed: false\n")
	p := startConfigured(t, "--config", path, "--data-dir", t.TempDir(), "--rate-limit-ip", "3")
	p.waitLog(t, warning, 2)
	warnings := func() string {
		b, _ := os.ReadFile(p.logPath)
		return grepLines(string(b), warning)
	}
	for _, want := range []string{"key=drain-delay overridden_by=SURGE_DRAIN_DELAY", "key=rate-limit-ip overridden_by=--rate-limit-ip"} {
		if lines := warnings(); !strings.Contains(lines, want) {
			t.Errorf("at start, the log's warnings do not name %q:\n%s", want, lines)
		}
	}

	replaceConfig(t, path, "drain-delay: 9s\nrate-limit-ip: 7\nlog-level: info\nshed: true\n")
	p.hup(t)
	p.waitLog(t, "config reloaded", 1)
	if n := p.logCount(warning); n != 4 {
		t.Errorf("after a reload of the edited file, %d warnings, want 4 (drain-delay and rate-limit-ip again):\n%s",
			n, warnings())
	}
	if lines := warnings(); strings.Contains(lines, "log-level") || strings.Contains(lines, "key=shed") {
		t.Errorf("a key set alike, or by the file alone, is named:\n%s", lines)
	}
}
