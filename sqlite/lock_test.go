//go:build unix

package sqlite_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge"
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

// TestLockWait: an Open given LockWait waits for the holder to close the
// store (an upgrade's new process, while the old one drains), and gives up
// with ErrLocked, naming the wait, if it never does.
func TestLockWait(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name    string
		release bool // the holder closes while the second Open waits
	}{
		{"released", true},
		{"held", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir)
			if err := s.CreateSale(ctx, newSale(t, "s1", 10, 1)); err != nil {
				t.Fatal(err)
			}
			wait := 300 * time.Millisecond
			if tc.release {
				wait = time.Minute // only a failure waits this long
			}
			type result struct {
				s   *sqlite.Store
				err error
			}
			got := make(chan result, 1)
			go func() {
				st, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true, LockWait: wait})
				got <- result{st, err}
			}()
			if tc.release {
				// The waiter is polling by now, or will find the lock free.
				time.Sleep(50 * time.Millisecond)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				defer s.Close()
			}
			r := <-got
			switch {
			case tc.release && r.err != nil:
				t.Fatalf("Open waiting for the lock: %v", r.err)
			case tc.release:
				defer r.s.Close()
				if ss, err := r.s.Sales(ctx); err != nil || len(ss) != 1 {
					t.Errorf("Sales after the handover = %v, %v", ss, err)
				}
			case r.err == nil:
				r.s.Close()
				t.Fatal("Open took a directory whose holder never released it")
			case !errors.Is(r.err, sqlite.ErrLocked) || !strings.Contains(r.err.Error(), "did not release it within"):
				t.Errorf("Open after the wait: %v; want ErrLocked naming the wait", r.err)
			}
		})
	}
}

// TestLockSurvivesRemovedLockFile: the data directory's
// lock is an flock on surge.lock, which the operator may take for a stale
// pid file and remove (it stays after every crash, naming a dead pid).
// Removed while a store serves, the next Open creates a new surge.lock,
// locks that, and serves beside the first: two ledgers selling one stock.
func TestLockSurvivesRemovedLockFile(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	a := open(t, dir)
	defer a.Close()
	if err := a.CreateSale(ctx, newSale(t, "s1", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, sqlite.LockName)); err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		defer b.Close()
		sold := 0
		for i, s := range []*sqlite.Store{a, b} {
			outs, _, err := s.Reserve(ctx, "s1", []surge.Purchase{{UserID: []string{"u1", "u2"}[i], Quantity: 1}}, surge.At(t0))
			if err == nil && outs[0].Code == surge.CodeReserved {
				sold++
			}
		}
		t.Fatalf("a second Open succeeded while the first store serves (its surge.lock removed); the two sold %d units of a stock of 1", sold)
	}
	if !errors.Is(err, sqlite.ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
}

// TestLockHardLinkedDatabase: the lock belongs to the database, not only
// to the directory that names it. An operator who hard-links surge.db alone
// into a second directory (a link made to move the data to a new path; a
// "cp -al" of the whole directory links surge.lock too and is refused) and
// starts a second store there while the first serves must be refused: the
// two would each trust their own in-memory stock, each write through a WAL
// of its own beside one database file, and break each other's commits.
func TestLockHardLinkedDatabase(t *testing.T) {
	ctx := t.Context()
	dirA, dirB := t.TempDir(), t.TempDir()
	a := open(t, dirA)
	if err := a.CreateSale(ctx, newSale(t, "s1", 1, 1)); err != nil {
		t.Fatal(err)
	}
	// A restart: the sale is in surge.db itself, not only in its WAL.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = open(t, dirA)
	defer a.Close()
	if err := os.Link(filepath.Join(dirA, sqlite.FileName), filepath.Join(dirB, sqlite.FileName)); err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.Open(ctx, dirB, sqlite.Options{NoExpiry: true})
	if err == nil {
		// The second store sells, then the first, the one that served all
		// along, tries to.
		var got []string
		for i, s := range []*sqlite.Store{b, a} {
			outs, _, err := s.Reserve(ctx, "s1", []surge.Purchase{{UserID: []string{"u1", "u2"}[i], Quantity: 1}}, surge.At(t0))
			switch {
			case err != nil:
				got = append(got, "error: "+err.Error())
			case len(outs) == 1:
				got = append(got, string(outs[0].Code))
			}
		}
		// Both stop; what does the database hold of the reservation?
		b.Close()
		a.Close()
		a = open(t, dirA)
		defer a.Close()
		held := 0
		if err := a.Orders(ctx, "s1", func(surge.Order) error { held++; return nil }); err != nil {
			t.Fatal(err)
		}
		t.Fatalf("a second store opened %s, whose surge.db is a hard link of the database a store serves from %s; "+
			"a purchase there answered %q, then one at the store serving all along answered %q; after both stopped the database holds %d orders; "+
			"want the second Open refused with ErrLocked",
			dirB, dirA, got[0], got[1], held)
	}
	if !errors.Is(err, sqlite.ErrLocked) {
		t.Errorf("second Open through a hard link: %v, want ErrLocked", err)
	}
}

// TestDatabaseNotWorldReadable: the database holds every buyer's id,
// idempotency keys and payments. Surge makes its data directory 0750 and
// its own files (lock, mark, image, seal) 0640, but SQLite created
// surge.db, its WAL and its shared memory 0644: in a data directory the
// operator made beforehand (mkdir's 0755, a container volume), every
// local user could read every order.
func TestDatabaseNotWorldReadable(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o022)) // the usual umask, whatever the test's
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	defer s.Close()
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 10, 1)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.FileName + "-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s has mode %v: any local user can read the orders; want no access for others (as surge.lock's 0640)", name, fi.Mode().Perm())
		}
	}
}

// TestSymlinkedDatabaseRefusedClearly: an operator moves surge.db to a
// bigger disk and leaves a symbolic link in the data directory. SQLite
// follows the link and keeps the WAL beside the file it points to, where
// the store's own checks (the WAL in place, the seal) do not look; the
// start was refused with "stat surge.db-wal: no such file or directory",
// naming neither the link nor what to do, after it had taken the directory
// and opened the database. The refusal must say what is wrong and how to
// put it right, before anything is opened.
func TestSymlinkedDatabaseRefusedClearly(t *testing.T) {
	real, dir := t.TempDir(), t.TempDir()
	s := open(t, real)
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(real, sqlite.FileName)
	if err := os.Symlink(target, filepath.Join(dir, sqlite.FileName)); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		s.Close()
		return // served through the link: as good as a clear refusal
	}
	if !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), real) {
		t.Errorf("Open of %s, whose surge.db is a symbolic link to %s: %v; want a refusal that names the link and the directory to serve from instead", dir, target, err)
	}
}
