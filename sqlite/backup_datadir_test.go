package sqlite_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge/sqlite"
)

// TestBackupRefusesTheDataDirectorysOwnNames: `surge backup --to` naming a
// file of the data directory it copies, one the store or SQLite writes
// under that name but that is absent at the moment (surge.ledger below
// the image's size, surge.db-journal, surge.clean while serving, their
// temporary names, surge.db-wal and -shm of a stopped directory), wrote
// the copy there and exited 0; the store then took the name back: a clean
// stop removed or replaced surge.ledger and surge.clean, the next start's
// SQLite deleted surge.db-journal as a stale journal and reset a WAL it
// could not read. The backup reported written was gone. Such a --to is
// refused now, before anything is copied, however the directory is
// spelled.
func TestBackupRefusesTheDataDirectorysOwnNames(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	if err := s.CreateSale(ctx, newSale(t, "s1", 10, 2)); err != nil {
		t.Fatal(err)
	}
	sell(t, s, "s1", 2)
	// refused reports whether a backup to to was refused, leaving nothing.
	refused := func(to string) bool {
		t.Helper()
		info, err := sqlite.Backup(ctx, dir, to)
		if err == nil {
			t.Errorf("Backup --to %s, a name the data directory %s uses, succeeded (%+v); want it refused", to, dir, info)
			return false
		}
		if !strings.Contains(err.Error(), "data directory") {
			t.Errorf("Backup --to %s: %v; want the refusal to say it is in the data directory", to, err)
		}
		if _, serr := os.Lstat(to); serr == nil {
			t.Errorf("a refused backup left %s", to)
		}
		return true
	}
	for _, name := range []string{
		sqlite.ImageName, sqlite.ImageName + ".tmp", sqlite.SealName, sqlite.SealName + ".tmp",
		sqlite.FileName + "-journal", sqlite.MarkName + ".tmp",
	} {
		for _, to := range []string{filepath.Join(link, name), filepath.Join(dir, ".", name)} {
			if !refused(to) {
				os.Remove(to)
			}
		}
	}
	// What the operator loses: the store's clean stop takes the name back.
	image := filepath.Join(dir, sqlite.ImageName)
	kept := refused(image)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(image); !kept && err != nil {
		t.Errorf("the backup reported written to %s is gone after the store's clean stop: %v", image, err)
	}
	// A stopped directory has no WAL or -shm.
	for _, name := range []string{sqlite.FileName + "-wal", sqlite.FileName + "-shm"} {
		if to := filepath.Join(dir, name); !refused(to) {
			os.Remove(to)
		}
	}
	// A backup beside the directory's files under a name of its own, or
	// into another directory as the restore's surge.db, is a backup.
	for _, to := range []string{filepath.Join(dir, "before-upgrade.db"), filepath.Join(t.TempDir(), sqlite.FileName)} {
		if _, err := sqlite.Backup(ctx, dir, to); err != nil {
			t.Errorf("Backup --to %s: %v", to, err)
		}
	}
}
