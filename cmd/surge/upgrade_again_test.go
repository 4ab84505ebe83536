//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGUSR2ToNewProcessWhileOldDrains: a SIGUSR2 to the new process of
// an upgrade while the old one still drains (a deploy script that installs
// the next binary and signals the pid file's process at once) logged
// "upgrade failed; this process serves on" at ERROR with tableflip's
// "parent hasn't exited", and the upgrade asked for never came. It waits
// for the old process to exit, then upgrades.
func TestSIGUSR2ToNewProcessWhileOldDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-again-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	// Cluster mode: the new process serves while the old one drains (an
	// embedded one waits for the data directory until the old one is
	// all but gone).
	p := startProc(t, dataDir, token, append(clusterArgs(t), "--pid-file", pidFile)...) // --shutdown-timeout 10s
	saleID := createSale(t, p.base, token, 10, 1)
	// A slow client's request holds the old process's drain.
	conn := startPurchase(t, p.base, saleID)
	time.Sleep(100 * time.Millisecond)
	next := upgradeUntilHandover(t, p, pidFile)
	if err := syscall.Kill(next, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	select {
	case <-p.exited:
		t.Fatal("the old process exited before the slow request was answered: the test proves nothing")
	default:
	}
	if _, err := conn.Write([]byte("Idempotency-Key: k1\r\nContent-Length: 0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	third := 0
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if third = readPID(pidFile); third != 0 && third != next && third != p.cmd.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a SIGUSR2 to the new process %d while the old one drained: the pid file still names %d 30s later; want the upgrade done once the old one exited\n%s",
				next, third, grepLines(p.logTail(), "upgrade"))
		}
	}
	adopt(t, third)
	for deadline := time.Now().Add(30 * time.Second); alive(next); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the second process %d did not exit after handing over to %d", next, third)
		}
	}
	if log, _ := os.ReadFile(p.logPath); strings.Contains(string(log), "upgrade failed") {
		t.Errorf("the log says an upgrade failed, though both succeeded:\n%s", grepLines(string(log), "upgrade"))
	}
}
