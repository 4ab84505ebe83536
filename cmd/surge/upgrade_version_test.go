package main

import (
	"database/sql"
	"path/filepath"
	"testing"

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
