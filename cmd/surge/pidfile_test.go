package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPIDFileDirectoryChecked: a --pid-file in a directory that does not
// exist (or is a file) is refused as a bad setting, naming it, by
// --print-config and by a start before it creates anything. The start
// used to find out only once it served (tableflip writes the file then),
// having created the data directory and its database, and named a
// temporary file of tableflip's rather than the setting; --print-config,
// which "refuses whatever a start would refuse", accepted it.
func TestPIDFileDirectoryChecked(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pidFile, want string
	}{
		{"missing directory", filepath.Join(tmp, "missing", "surge.pid"), "does not exist"},
		{"a file for a directory", filepath.Join(file, "surge.pid"), "is not a directory"},
	} {
		for _, check := range []bool{true, false} {
			dataDir := filepath.Join(t.TempDir(), "data")
			args := []string{"serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--pid-file", tc.pidFile,
				"--admin-token", "pid-file-test-admin-token", "--insecure-user-header"}
			if check {
				args = append(args, "--print-config")
			}
			code, stderr := serveExit(t, args)
			if code != 2 || !strings.Contains(stderr, "--pid-file "+tc.pidFile) || !strings.Contains(stderr, tc.want) {
				t.Errorf("%s, print-config %v: exit %d, %q; want exit status 2 naming --pid-file %s and %q",
					tc.name, check, code, strings.TrimSpace(stderr), tc.pidFile, tc.want)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s, print-config %v: the refused start left the data directory (%v)", tc.name, check, err)
			}
		}
	}
}

// serveExit runs the binary with args (a `surge serve` expected to exit:
// refused, or --print-config) and returns its exit status and stderr; one
// still running after startWithin is killed.
func serveExit(t *testing.T, args []string) (code int, stderr string) {
	t.Helper()
	cmd := exec.Command(surgeBinary(t), args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(startWithin):
		_ = cmd.Process.Kill()
		err = <-done
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, errb.String()
}
