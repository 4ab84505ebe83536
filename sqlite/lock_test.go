package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/surgehq/surge/sqlite"
)

// TestLockDataDir checks that one data directory serves one store at a
// time: a second Open fails naming the directory and the holder's pid, a
// read-only reader (the sqlite3 shell, a backup) still reads, and Close
// hands the directory over.
func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s := open(t, dir)
	if err := s.CreateSale(ctx, newSale(t, "s1", 10, 1)); err != nil {
		t.Fatal(err)
	}

	second, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		second.Close()
		s.Close()
		t.Fatal("a second Open of a data directory in use succeeded")
	}
	for _, want := range []string{dir, "pid " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second Open: %v; want it to name %q", err, want)
		}
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sales`).Scan(&n); err != nil || n != 1 {
		t.Errorf("read-only reader beside the store: %d sales, %v; want 1", n, err)
	}
	db.Close()

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir) // the lock went with Close
	defer s.Close()
	if ss, err := s.Sales(ctx); err != nil || len(ss) != 1 {
		t.Errorf("Sales after reopen = %v, %v", ss, err)
	}
}
