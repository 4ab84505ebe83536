package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/client"
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

// TestPIDFileOutlivesTheDrain: a script or supervisor that stops surge and
// waits for its --pid-file to go ("a clean stop removes it") before it
// starts surge again must find the data directory free. The stop removed
// the file as it began, before its --drain-delay and drain, while the
// process still served and held the data directory: the next start was
// refused, "data directory in use".
func TestPIDFileOutlivesTheDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dataDir, token := t.TempDir(), "pid-file-drain-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile, "--drain-delay", "2s")
	saleID := createSale(t, p.base, token, 10, 1)
	if got := readPID(pidFile); got != p.cmd.Process.Pid {
		t.Fatalf("the pid file names %d, want %d", got, p.cmd.Process.Pid)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); readPID(pidFile) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pid file is still there a minute after SIGTERM")
		}
	}
	running := true
	select {
	case <-p.exited:
		running = false
	default:
	}
	// The file is gone: start again on the same directory at once.
	next := startProc(t, dataDir, token)
	t.Logf("the pid file went with the process %s; the next start serves", map[bool]string{true: "still running", false: "gone"}[running])
	if _, err := client.New(next.base, token).Sale(context.Background(), saleID); err != nil {
		t.Errorf("the sale after the restart: %v", err)
	}
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			t.Errorf("the stopped process exited with %v", p.cmd.ProcessState)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stopped process still runs")
	}
	if st := next.stop(t, syscall.SIGTERM, 30*time.Second); !st.Success() {
		t.Errorf("the restarted process exited with %v", st)
	}
}

// readPID reads the pid file, 0 when it is missing or being replaced.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
