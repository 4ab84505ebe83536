package sqlite_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
			outs, _, err := s.Reserve(ctx, "s1", []surge.Purchase{{UserID: []string{"u1", "u2"}[i], Quantity: 1}}, t0)
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
