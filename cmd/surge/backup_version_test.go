package main

import (
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge/sqlite"
)

// TestBackupOfNewerDatabaseSaysSo: `surge backup` of a data directory a
// newer version of Surge upgraded (here its layout renamed a table this
// build counts) must refuse as a start and `surge reconcile` do: exit
// status 1 and one line saying a newer version wrote the database, not a
// copy made and then "no such table", which sends the operator after a
// damaged file. Nothing is left at --to.
func TestBackupOfNewerDatabaseSaysSo(t *testing.T) {
	if testing.Short() {
		t.Skip("backup test builds and runs the binary")
	}
	dataDir := t.TempDir()
	st, err := sqlite.Open(t.Context(), dataDir, sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`ALTER TABLE orders RENAME TO order_log`, `PRAGMA user_version = 1000`} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "backup.db")
	cmd := exec.Command(surgeBinary(t), "backup", "--data-dir", dataDir, "--to", to)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "newer version of Surge") || !oneLine(stderr.String()) {
		t.Errorf("surge backup of a database of schema version 1000 (a newer version's layout): %v, stderr %q; "+
			"want exit status 1 and one line saying a newer version of Surge wrote the database", err, stderr.String())
	}
	if _, err := os.Lstat(to); err == nil {
		t.Errorf("the refused backup left %s", to)
	}
}
