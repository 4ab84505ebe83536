package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestConfigFileOneYAMLDocument: a YAML file of two documents (a line
// "---" between them) loaded the first and silently dropped the second,
// whose keys then had no effect, at start, in --print-config and on
// SIGHUP. It is refused, naming the file; an empty document at the end,
// holding no key, is not.
func TestConfigFileOneYAMLDocument(t *testing.T) {
	p := writeConfig(t, "surge.yaml", "log-level: debug\n---\nrate-limit-ip: 7\n")
	l, err := loadServeConfig([]string{"--config", p, "--data-dir", t.TempDir()}, io.Discard)
	if err == nil {
		t.Fatalf("loaded (rate-limit-ip %v, log-level %q); want refused: the second document's rate-limit-ip: 7 would not apply", l.c.rateIP, l.c.logLevel)
	}
	if !strings.Contains(err.Error(), "surge.yaml") || !strings.Contains(err.Error(), "more than one YAML document") {
		t.Errorf("error %q: want it to name the file and say it holds more than one YAML document", err)
	}
	code, _, stderr := runCLI(context.Background(), "serve", "--config", p, "--data-dir", t.TempDir(), "--print-config")
	if code != 2 || !oneLine(stderr) {
		t.Errorf("surge serve --print-config: exit %d, stderr %q; want 2 and one line", code, stderr)
	}
	for _, body := range []string{"---\nrate-limit-ip: 7\n", "rate-limit-ip: 7\n---\n", "rate-limit-ip: 7\n...\n", ""} {
		l, err := loadServeConfig([]string{"--config", writeConfig(t, "surge.yaml", body), "--data-dir", t.TempDir()}, io.Discard)
		if err != nil {
			t.Errorf("file %q: %v; want loaded", body, err)
		} else if body != "" && l.c.rateIP != 7 {
			t.Errorf("file %q: rate-limit-ip %v, want 7", body, l.c.rateIP)
		}
	}
}
