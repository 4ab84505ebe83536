//go:build linux

package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMDuringUpgradeStartIsAStop: a SIGTERM to the old process while
// the new one of an upgrade starts (here it waits for its buyer keys)
// stops the service: tableflip ends the new process, and the old one
// drains and exits 0. It logged "upgrade failed; this process serves on"
// at ERROR as it stopped, which is what an operator alerts and acts on.
func TestSIGTERMDuringUpgradeStartIsAStop(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	_, doc := ecKeySet(t)
	var hang atomic.Bool
	fetching, gone := make(chan struct{}, 1), make(chan struct{}, 1)
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hang.Load() {
			_, _ = w.Write(doc)
			return
		}
		select {
		case fetching <- struct{}{}:
		default:
		}
		<-r.Context().Done()
		select {
		case gone <- struct{}{}:
		default:
		}
	}))
	defer keys.Close()
	dataDir, token := t.TempDir(), "upgrade-stop-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile, "--jwks-url", keys.URL)
	hang.Store(true)
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fetching: // the new process starts
	case <-time.After(30 * time.Second):
		t.Fatalf("the new process never asked for its keys\n%s", p.logTail())
	}
	state := p.stop(t, syscall.SIGTERM, 30*time.Second)
	if !state.Success() {
		t.Errorf("the old process exited with %v after SIGTERM, want status 0", state)
	}
	select {
	case <-gone: // its connection closed: the new process is gone
	case <-time.After(10 * time.Second):
		t.Errorf("the new process still waits for its keys 10s after the old one stopped")
	}
	if log := p.logTail(); strings.Contains(log, "this process serves on") {
		t.Errorf("a stop during an upgrade logged that the process serves on:\n%s", grepLines(log, "upgrade"))
	}
	if _, err := os.Stat(pidFile); err == nil {
		t.Errorf("the pid file outlived the stop")
	}
}
