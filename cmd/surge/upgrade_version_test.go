package main

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
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

	upgradeFailsServingOn(t, p, saleID, "to a binary older than the database")
}

// TestUpgradeToUnreadableDatabaseKeepsServing: the check a SIGUSR2
// upgrade makes before it tells the old process to go must fail closed.
// When it cannot read the database's version at all (here surge.db was
// replaced, while the old process serves from the file it has open, by
// one that is no database: a copy gone wrong, a damaged header), the
// new process cannot serve it either; the old one must be left serving,
// as for a database a newer version wrote, not told to drain and exit
// before the new one refuses the start.
func TestUpgradeToUnreadableDatabaseKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-unreadable-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile)
	saleID := createSale(t, p.base, token, 10, 1)

	// Once the idle writer has emptied its WAL, surge.db alone is the
	// database: a WAL holding every page would let the new process read
	// it in spite of the file.
	wal := filepath.Join(dataDir, sqlite.FileName+"-wal")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if fi, err := os.Stat(wal); err == nil && fi.Size() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("setup: the idle server did not empty %s within 30s", wal)
		}
	}
	replaceFile(t, filepath.Join(dataDir, sqlite.FileName), bytes.Repeat([]byte("not a database "), 512))
	upgradeFailsServingOn(t, p, saleID, "to a surge.db that is no database")
}
