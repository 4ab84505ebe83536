package sqlite_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestSeal checks when a start trusts the seal a clean shutdown leaves
// (skipping the quick check and the progress count) and when it checks
// the database in full: only a file byte for byte as Close left it, with
// no WAL, is trusted; every order is there either way.
func TestSeal(t *testing.T) {
	const orders = 30
	src := t.TempDir()
	s := open(t, src)
	if !s.FullyChecked() {
		t.Error("a new directory's first start was not checked")
	}
	sale := newSale(t, "s1", 1000, 1)
	if err := s.CreateSale(t.Context(), sale); err != nil {
		t.Fatal(err)
	}
	sell(t, s, sale.ID, orders)
	if err := s.FlushMark(); err != nil {
		t.Fatal(err)
	}
	// A copy of the running store's files is what a crash leaves: no seal.
	crashed := copyFiles(t, src, sqlite.FileName, sqlite.FileName+"-wal", sqlite.MarkName)
	if _, err := os.Stat(filepath.Join(src, sqlite.SealName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a running store has a seal: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, sqlite.SealName)); err != nil {
		t.Fatalf("Close left no seal: %v", err)
	}
	files := []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.MarkName, sqlite.SealName}

	for _, tc := range []struct {
		name    string
		dir     func(t *testing.T) string
		checked bool
	}{
		{"clean shutdown", func(t *testing.T) string { return copyFiles(t, src, files...) }, false},
		{"crash", func(*testing.T) string { return crashed }, true},
		{"a byte changed while down", func(t *testing.T) string {
			dir := copyFiles(t, src, files...)
			// A byte of a page's unallocated space, which SQLite's checks
			// ignore, so the database still opens.
			flipUnusedByte(t, filepath.Join(dir, sqlite.FileName))
			return dir
		}, true},
		{"an empty WAL beside it", func(t *testing.T) string {
			// What the sqlite3 shell leaves while it has the file open.
			dir := copyFiles(t, src, files...)
			if err := os.WriteFile(filepath.Join(dir, sqlite.FileName+"-wal"), nil, 0o640); err != nil {
				t.Fatal(err)
			}
			return dir
		}, false},
		{"a seal that does not read", func(t *testing.T) string {
			dir := copyFiles(t, src, files...)
			if err := os.WriteFile(filepath.Join(dir, sqlite.SealName), []byte("SURGECLN and garbage after it...."), 0o640); err != nil {
				t.Fatal(err)
			}
			return dir
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			s := open(t, dir)
			defer s.Close()
			if got := s.FullyChecked(); got != tc.checked {
				t.Errorf("full checks ran: %v, want %v", got, tc.checked)
			}
			if _, err := os.Stat(filepath.Join(dir, sqlite.SealName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the seal is still there while the store runs: %v", err)
			}
			n := 0
			if err := s.Orders(t.Context(), sale.ID, func(surge.Order) error { n++; return nil }); err != nil || n != orders {
				t.Errorf("%d orders (%v), want %d", n, err, orders)
			}
			if rem, _ := s.Remaining(t.Context(), sale.ID); rem != 1000-orders+orders/10 {
				t.Errorf("remaining %d, want %d", rem, 1000-orders+orders/10)
			}
		})
	}
}

// flipUnusedByte changes a byte of the unallocated space (between the cell
// pointers and the cells) of the last b-tree page of the database at path
// that has any: the last byte of the file is not always unused (a leaf of
// the schema may end it, its cells filling the page from the end).
func flipUnusedByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	size := int(binary.BigEndian.Uint16(b[16:18]))
	if size == 1 {
		size = 65536
	}
	for page := len(b)/size - 1; page >= 0; page-- {
		hdr := page * size
		if page == 0 {
			hdr = 100 // the file's header comes first
		}
		headerLen := 0
		switch b[hdr] {
		case 0x0a, 0x0d: // leaf
			headerLen = 8
		case 0x02, 0x05: // interior
			headerLen = 12
		default: // no b-tree page
			continue
		}
		cells := int(binary.BigEndian.Uint16(b[hdr+3:]))
		content := int(binary.BigEndian.Uint16(b[hdr+5:]))
		if content == 0 {
			content = 65536
		}
		free, end := hdr+headerLen+2*cells, page*size+content
		if end-free < 1 {
			continue
		}
		b[end-1] ^= 0x5a
		if err := os.WriteFile(path, b, 0o640); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s has no page with unallocated space", path)
}

// closedWithSale is a data directory holding sale s1 (100 units, one per
// buyer), closed cleanly: sealed.
func closedWithSale(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 100, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSealNoWAL: a seal next to a WAL holding pages is not trusted, even
// if surge.db is as Close left it: the WAL's commits are the database too.
func TestSealNoWAL(t *testing.T) {
	dir := closedWithSale(t)
	seal, err := os.ReadFile(filepath.Join(dir, sqlite.SealName))
	if err != nil {
		t.Fatal(err)
	}
	// A store runs and crashes with commits in the WAL; the old seal is
	// put back (an operator restoring files, say).
	s := open(t, dir)
	sell(t, s, "s1", 5)
	if err := s.FlushMark(); err != nil {
		t.Fatal(err)
	}
	crashed := copyFiles(t, dir, sqlite.FileName, sqlite.FileName+"-wal", sqlite.MarkName)
	s.Close()
	if err := os.WriteFile(filepath.Join(crashed, sqlite.SealName), seal, 0o640); err != nil {
		t.Fatal(err)
	}
	s = open(t, crashed)
	defer s.Close()
	if !s.FullyChecked() {
		t.Error("a seal beside a WAL with commits was trusted")
	}
	if rem, _ := s.Remaining(t.Context(), "s1"); rem != 100-5+1 {
		t.Errorf("remaining %d, want %d", rem, 100-5+1)
	}
}

// TestSealBehind: a sealed database older than the mark (an older sealed
// copy put back with the newer mark) is refused as behind, as an unsealed
// one is.
func TestSealBehind(t *testing.T) {
	dir := closedWithSale(t)
	old := copyFiles(t, dir, sqlite.FileName, sqlite.SealName)
	s := open(t, dir)
	sell(t, s, "s1", 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{sqlite.FileName, sqlite.SealName} {
		b, err := os.ReadFile(filepath.Join(old, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a sealed database older than the mark")
	}
	if !errors.Is(err, sqlite.ErrBehind) || !strings.Contains(err.Error(), "holds 1 changes") {
		t.Errorf("Open: %v; want ErrBehind for a database holding 1 change", err)
	}
}

// TestNoSealAfterAFailure: a store one commit of which failed (a storage
// error) leaves no seal at Close, even when later commits succeeded and it
// reports ready again: the file saw an error, so the next start checks it
// in full. (Only the last commit's failure used to count.)
func TestNoSealAfterAFailure(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 100, 1)); err != nil {
		t.Fatal(err)
	}
	_ = s.RecordCommit(errors.New("injected: an I/O error"))
	_ = s.RecordCommit(nil) // a later commit succeeded
	if err := s.Ready(t.Context()); err != nil {
		t.Fatalf("Ready after a later commit succeeded: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.SealName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a store that saw a failed commit left a seal: %v", err)
	}
	s = open(t, dir)
	defer s.Close()
	if !s.FullyChecked() {
		t.Error("the start after a store that saw a failed commit was not checked in full")
	}
}

// TestRestoreOverADirectoryInUse: an operator restores a backup over
// surge.db while the server still runs, then restarts it to pick the
// restore up: by a copy beside it renamed over it (as rsync and most
// deploy tools do), or by a plain cp over it (the same inode, truncated
// and rewritten). docs/operations.md promises that a backup copied over
// the directory it came from is refused at the next start ("behind what it
// confirmed"): the high-water mark recorded every change the server
// confirmed. The clean stop must not seal the restored copy with the
// store's own progress, or the next start trusts that seal (no count, no
// mark check): the orders confirmed after the backup would be gone and
// their units on sale again.
func TestRestoreOverADirectoryInUse(t *testing.T) {
	for _, tt := range []struct {
		name    string
		restore func(t *testing.T, dir string, backup []byte)
	}{
		{"renamed over it", func(t *testing.T, dir string, backup []byte) {
			tmp := filepath.Join(dir, "restore.tmp")
			if err := os.WriteFile(tmp, backup, 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, sqlite.FileName)); err != nil {
				t.Fatal(err)
			}
		}},
		{"copied in place", func(t *testing.T, dir string, backup []byte) {
			if err := os.WriteFile(filepath.Join(dir, sqlite.FileName), backup, 0o640); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			// The store's own checkpoints, every 10 ms, empty the WAL once idle.
			opts := sqlite.WithTimings(sqlite.Options{NoExpiry: true}, 10*time.Millisecond, 50*time.Millisecond)
			s, err := sqlite.Open(ctx, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreateSale(ctx, newSale(t, "s", 10, 1)); err != nil {
				t.Fatal(err)
			}
			buy := func(user string) {
				t.Helper()
				out, _, err := s.Reserve(ctx, "s", []surge.Purchase{{UserID: user, Quantity: 1, IdempotencyKey: "k"}}, surge.At(t0))
				if err != nil || out[0].Code != surge.CodeReserved {
					t.Fatalf("purchase of %s: %+v, %v", user, out, err)
				}
			}
			buy("early")
			backup := filepath.Join(t.TempDir(), "backup.db")
			if _, err := sqlite.Backup(ctx, dir, backup); err != nil {
				t.Fatal(err)
			}
			for i := range 5 { // confirmed after the backup
				buy(fmt.Sprintf("late%d", i))
			}
			// The server idles a moment: its checkpointer folds the WAL in.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if fi, err := os.Stat(filepath.Join(dir, sqlite.FileName+"-wal")); err == nil && fi.Size() == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the WAL was never emptied")
				}
			}
			b, err := os.ReadFile(backup)
			if err != nil {
				t.Fatal(err)
			}
			tt.restore(t, dir, b) // while the server runs
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = sqlite.Open(ctx, dir, opts)
			if err == nil {
				defer s.Close()
				rem, _ := s.Remaining(ctx, "s")
				t.Fatalf("the start accepted the restored copy, behind the 6 orders the store confirmed: remaining %d of 10 "+
					"(5 confirmed orders lost, their units on sale again); want it refused as %v", rem, sqlite.ErrBehind)
			}
			if !errors.Is(err, sqlite.ErrBehind) {
				t.Errorf("the start: %v; want %v", err, sqlite.ErrBehind)
			}
		})
	}
}
