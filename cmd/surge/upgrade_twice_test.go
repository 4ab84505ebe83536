//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondSIGUSR2DuringUpgradeNoFalseFailure: an operator who sends
// SIGUSR2 again (an impatient second `systemctl kill -s USR2`, a deploy
// script retrying) while the first upgrade runs must not read
// "upgrade failed; this process serves on" at ERROR level when the upgrade
// succeeded and the process is in fact handing over and exiting: that line
// is what the operator alerts and acts on (docs/operations.md). The second
// signal waited in the channel and, once the first upgrade had succeeded,
// started another, which tableflip refused ("already upgraded"). Each round
// had an even chance of it (a select between two ready channels); eight rounds
// in a row make a miss rare.
func TestSecondSIGUSR2DuringUpgradeNoFalseFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-twice-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile)
	saleID := createSale(t, p.base, token, 100, 1)
	cur := p.cmd.Process.Pid
	const rounds = 8
	for round := 1; round <= rounds; round++ {
		// A slow client's purchase keeps the old process draining, as
		// traffic does, so that its exit does not cut the race short.
		conn, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := fmt.Fprintf(conn, "POST /v1/sales/%s/purchases HTTP/1.1\r\nHost: surge\r\nX-User-ID: u%d\r\n", saleID, round); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // read by the old process
		// Repeated for 30 ms: the embedded upgrade's new process tells
		// the old one to go some 20 ms after the first.
		for range 10 {
			if err := syscall.Kill(cur, syscall.SIGUSR2); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Millisecond)
		}
		next := 0
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if next = readPID(pidFile); next != 0 && next != cur {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the pid file still names %d a minute after SIGUSR2", round, cur)
			}
		}
		adopt(t, next)
		time.Sleep(300 * time.Millisecond) // the old process drains; its SIGUSR2 handling runs meanwhile
		if _, err := fmt.Fprintf(conn, "Idempotency-Key: k%d\r\nContent-Length: 0\r\n\r\n", round); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); alive(cur); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the old process %d did not exit after the upgrade", round, cur)
			}
		}
		cur = next
	}
	log, _ := os.ReadFile(p.logPath) // every generation writes to it
	if n := strings.Count(string(log), "upgrade failed"); n > 0 {
		t.Errorf("%d upgrades of %d succeeded, yet the log says %q %d times:\n%s", rounds, rounds,
			"upgrade failed; this process serves on", n, grepLines(string(log), "upgrade"))
	}
}
