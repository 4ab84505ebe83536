package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBackupReadsTheConfigFile: a server run as the shipped systemd unit
// runs it (settings in /etc/surge/surge.yaml, data-dir among them) was
// backed up by `surge backup --to FILE` from ./surge-data: backup had no
// --config, so the data directory of the file serve reads was never
// found. backup takes --config (or SURGE_CONFIG) as serve does, with the
// same order: --data-dir, then SURGE_DATA_DIR, then the file.
func TestBackupReadsTheConfigFile(t *testing.T) {
	dataDir := newDataDir(t)
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "surge.yaml")
	if err := os.WriteFile(cfg, []byte("data-dir: "+strconv.Quote(dataDir)+"\nrate-limit-ip: 20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backup := func(name string, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		return runCLI(t.Context(), append([]string{"backup", "--to", filepath.Join(tmp, name)}, args...)...)
	}
	if code, stdout, stderr := backup("flag.db", "--config", cfg); code != 0 || !strings.Contains(stdout, "backup written") {
		t.Fatalf("backup --config with data-dir %s in it: %d, stdout %q, stderr %q; want 0 and the backup written", dataDir, code, stdout, stderr)
	}
	t.Run("SURGE_CONFIG", func(t *testing.T) {
		t.Setenv("SURGE_CONFIG", cfg)
		if code, _, stderr := backup("env.db"); code != 0 {
			t.Errorf("backup with SURGE_CONFIG naming a file with data-dir %s: %d, stderr %q; want 0", dataDir, code, stderr)
		}
	})
	// The command line and SURGE_DATA_DIR outrank the file, as for serve.
	empty := t.TempDir()
	if code, _, stderr := backup("over.db", "--config", cfg, "--data-dir", empty); code != 1 || !strings.Contains(stderr, "--data-dir "+empty) {
		t.Errorf("backup --config --data-dir %s: %d, stderr %q; want 1 naming --data-dir", empty, code, stderr)
	}
	t.Run("SURGE_DATA_DIR", func(t *testing.T) {
		t.Setenv("SURGE_DATA_DIR", empty)
		if code, _, stderr := backup("over-env.db", "--config", cfg); code != 1 || !strings.Contains(stderr, "SURGE_DATA_DIR="+empty) {
			t.Errorf("backup --config with SURGE_DATA_DIR=%s: %d, stderr %q; want 1 naming SURGE_DATA_DIR", empty, code, stderr)
		}
	})
	// A data directory named by the file that holds no database says so.
	other := filepath.Join(tmp, "other.yaml")
	if err := os.WriteFile(other, []byte("data-dir: "+strconv.Quote(empty)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := backup("none.db", "--config", other); code != 1 || !oneLine(stderr) || !strings.Contains(stderr, other) || !strings.Contains(stderr, empty) {
		t.Errorf("backup --config naming an empty data directory: %d, stderr %q; want 1 and one line naming the file and the directory", code, stderr)
	}
	// A file serve would refuse is refused, naming it.
	bad := filepath.Join(tmp, "bad.yaml")
	if err := os.WriteFile(bad, []byte("no-such-key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := backup("bad.db", "--config", bad); code != 2 || !strings.Contains(stderr, bad) || !strings.Contains(stderr, "no-such-key") {
		t.Errorf("backup --config with an unknown key: %d, stderr %q; want 2 naming the file and the key", code, stderr)
	}
}
