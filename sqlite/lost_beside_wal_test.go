package sqlite_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge/sqlite"
)

// TestLostDatabaseBesideItsWAL: a start that found surge.db missing (or
// empty) where the high-water mark recorded orders refused, advising
// "restore the database, or remove surge.hwm to start an empty store",
// and said nothing of the surge.db-wal still beside it, which holds every
// commit since the last checkpoint (all of a spike's). Followed, either
// advice loses them: SQLite deletes the WAL of a missing or empty
// database when it opens it, and would apply it to a backup put in its
// place. The refusal names the WAL, and says to put surge.db back or to
// move the WAL aside first.
func TestLostDatabaseBesideItsWAL(t *testing.T) {
	const orders = 60
	src, _ := servedWithOrders(t, orders)
	db, wal := sqlite.FileName, sqlite.FileName+"-wal"
	for _, tc := range []struct {
		name   string
		damage func(path string) error
	}{
		{"database deleted", os.Remove},
		{"database emptied", func(path string) error { return os.Truncate(path, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFiles(t, src, db, wal, sqlite.MarkName)
			if err := tc.damage(filepath.Join(dir, db)); err != nil {
				t.Fatal(err)
			}
			before, err := os.Stat(filepath.Join(dir, wal))
			if err != nil || before.Size() == 0 {
				t.Fatalf("the copy's WAL: %v, %v; want the commits in it", before, err)
			}
			s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
			if err == nil {
				s.Close()
				t.Fatal("Open of a directory whose database is lost succeeded")
			}
			msg := err.Error()
			if !errors.Is(err, sqlite.ErrBehind) || !strings.Contains(msg, filepath.Join(dir, wal)) || !strings.Contains(msg, "aside") {
				t.Errorf("Open: %v;\nwant ErrBehind naming the WAL left beside the lost database, %s, and to move it aside before starting anew",
					err, filepath.Join(dir, wal))
			}
			if after, err := os.Stat(filepath.Join(dir, wal)); err != nil || after.Size() != before.Size() {
				t.Errorf("the refused start changed the WAL: %v, %v", after, err)
			}
		})
	}
}
