package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestDataDirWithURICharacters: the database is opened through SQLite URIs
// ("file:<path>?<options>"), in which '?' starts the options, '#' ends the
// path and "%41" stands for 'A'. A --data-dir holding any of them sent
// SQLite to another file (for "/x/a%41#b/data", the file "/x/aA", outside
// the data directory) or failed the start. Every way of opening the
// database must name the file in the directory given, as the OS does.
func TestDataDirWithURICharacters(t *testing.T) {
	for _, name := range []string{"a b%41#x", "q?mode=ro", "pct%25and%", "hash#frag?y=1"} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, name, "data")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			s, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
			if err != nil {
				t.Fatalf("Open of data directory %q: %v; want it opened as any other directory", dir, err)
			}
			sellOneAndClose(t, s)
			var stray []string
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && filepath.Dir(p) != dir {
					stray = append(stray, p)
				}
				return nil
			})
			if len(stray) > 0 {
				t.Errorf("data directory %q: SQLite wrote %q, outside the directory; want every file in it", dir, stray)
			}
			if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
				t.Errorf("data directory %q: %v; want the database there", dir, err)
			}
			if err := sqlite.CheckVersion(ctx, dir); err != nil {
				t.Errorf("CheckVersion of %q: %v", dir, err)
			}
			r, err := sqlite.OpenReader(ctx, dir)
			if err != nil {
				t.Fatalf("OpenReader of %q: %v", dir, err)
			}
			sales, _, err := r.Sales(ctx)
			r.Close()
			if err != nil || len(sales) != 1 {
				t.Errorf("OpenReader of %q: %d sales, %v; want the 1 sale written", dir, len(sales), err)
			}
			info, err := sqlite.Backup(ctx, dir, filepath.Join(t.TempDir(), "backup.db"))
			if err != nil || info.Orders != 1 {
				t.Errorf("Backup of %q: %+v, %v; want 1 order", dir, info, err)
			}
			s, err = sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
			if err != nil {
				t.Fatalf("Open of %q again: %v", dir, err)
			}
			defer s.Close()
			if o, err := s.Sale(ctx, "s1"); err != nil || o.ID != "s1" {
				t.Errorf("the sale after a reopen of %q: %+v, %v", dir, o, err)
			}
		})
	}
}

// TestBackupToDirectoryNamedLikeAURI: VACUUM INTO writes the copy through
// an ATTACH, which reads a name beginning "file:" as an SQLite URI: for a
// --to in a relative directory named "file:bk", SQLite wrote the whole
// copy into "bk" (a file nothing removes afterwards, outside the directory
// given), the check then read the empty file reserved in "file:bk", and
// the backup failed "no such table". The copy must go where --to says.
func TestBackupToDirectoryNamedLikeAURI(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	for _, d := range []string{"data", "bk", "file:bk"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	s, err := sqlite.Open(ctx, "data", sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	sellOneAndClose(t, s)
	// The second, absolute, holds what a URI escapes: given as a URI,
	// the target must still be this very file.
	odd := filepath.Join(root, "q?x#y%25z")
	if err := os.MkdirAll(odd, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{filepath.Join("file:bk", "b.db"), filepath.Join(odd, "b.db")} {
		info, err := sqlite.Backup(ctx, "data", to)
		if err != nil || info.Orders != 1 {
			t.Errorf("Backup of data to %q (in %s): %+v, %v; want the copy written there with its 1 order", to, root, info, err)
		}
		if _, err := os.Stat(to); err != nil {
			t.Errorf("Backup to %q: %v; want the copy there", to, err)
		}
	}
	if entries, _ := os.ReadDir("bk"); len(entries) > 0 {
		t.Errorf("Backup to \"file:bk/b.db\" wrote %s into the directory bk, which it was not given; want nothing there", entries[0].Name())
	}
}

// sellOneAndClose creates sale s1 in s, reserves one unit of it and
// closes s.
func sellOneAndClose(t *testing.T, s *sqlite.Store) {
	t.Helper()
	sale := newSale(t, "s1", 10, 2)
	if err := s.CreateSale(t.Context(), sale); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Reserve(t.Context(), sale.ID, []surge.Purchase{{UserID: "u1", Quantity: 1}}, surge.At(t0.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
