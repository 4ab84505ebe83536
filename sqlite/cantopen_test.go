package sqlite_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge/sqlite"
)

// TestUnopenableFilesNotCalledDamage: a start that SQLite cannot open the
// database's files for (a WAL or shared-memory file a server run once as
// root left unreadable to the service's user, or no file at all where one
// must be) reports that, not a damaged database: told "damaged; restore
// it from a backup", an operator would replace a sound database with an
// older copy and lose every order confirmed since.
func TestUnopenableFilesNotCalledDamage(t *testing.T) {
	for _, name := range []string{sqlite.FileName + "-wal", sqlite.FileName + "-shm"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir)
			if err := s.CreateSale(t.Context(), newSale(t, "s1", 10, 1)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{sqlite.FileName + "-wal", sqlite.FileName + "-shm"} {
				if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			// A directory where SQLite must open a file: it cannot, as
			// root or not, as it cannot open a file of another user's.
			if err := os.Mkdir(filepath.Join(dir, name), 0o750); err != nil {
				t.Fatal(err)
			}
			s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
			if err == nil {
				s.Close()
				t.Fatal("a store whose " + name + " SQLite cannot open started")
			}
			if errors.Is(err, sqlite.ErrDamaged) || strings.Contains(err.Error(), "restore") || !strings.Contains(err.Error(), name) {
				t.Errorf("start with an unopenable %s: %q; want an error that names %s and calls the database neither damaged nor to be restored", name, err, name)
			}
		})
	}
}
