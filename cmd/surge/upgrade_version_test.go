package main

import (
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/sqlite"
)

// TestUpgradeToOlderVersionKeepsServing: a SIGUSR2 upgrade to a binary
// older than the database (a rollback through the zero-downtime upgrade)
// cannot serve it: the start refuses a database a newer version wrote.
// It must find that out before it tells the old process to go, as it
// does of a key server that is down, so that the old process serves on
// (docs/operations.md: "a failed upgrade ... leaves this process
// serving"); not after, when the old one has drained and exited and
// nothing serves the sale until an operator steps in (a supervisor's
// restarts refuse the same database each time). The older binary is
// this one, and the database's version is raised past it while it
// serves, as a newer version's would be.
func TestUpgradeToOlderVersionKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-older-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile)
	saleID := createSale(t, p.base, token, 10, 1)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 1000`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	// Whatever happens to the upgrade, some process must serve the sale.
	time.Sleep(3 * time.Second)
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(p.base + "/v1/sales/" + saleID)
	if err != nil {
		exited := "the old process still runs"
		select {
		case <-p.exited:
			exited = "the old process exited (" + p.cmd.ProcessState.String() + ") after it was told to go"
		default:
		}
		t.Fatalf("after an upgrade to a binary older than the database, nothing serves the sale: %v; %s; want the upgrade refused "+
			"before the old process is told to go, and the old process serving on\n%s", err, exited, p.logTail())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("sale read after the refused upgrade: %d, want 200", resp.StatusCode)
	}
	select {
	case <-p.exited:
		t.Errorf("the old process exited (%v) although the new one could not serve the database", p.cmd.ProcessState)
	default:
	}
	if !strings.Contains(p.logTail(), "upgrade failed; this process serves on") {
		t.Errorf("no failed upgrade in the old process's log:\n%s", p.logTail())
	}
}
