package sqlite

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	driver "modernc.org/sqlite"
)

// onCommit, when set, runs once inside the next write transaction's
// commit, before it is written, on any connection the driver opened after
// hookCommits. The hooks are the driver's, process-wide: hence a variable.
var (
	onCommit    atomic.Pointer[func()]
	commitHooks sync.Once
)

func hookCommits() {
	commitHooks.Do(func() {
		driver.RegisterConnectionHook(func(c driver.ExecQuerierContext, _ string) error {
			c.(driver.HookRegisterer).RegisterCommitHook(func() int32 {
				if f := onCommit.Swap(nil); f != nil {
					(*f)()
				}
				return 0
			})
			return nil
		})
	})
}

// driverSawCancel waits until no goroutine of the driver still watches a
// statement's context: each one, once the context ended, has marked its
// statement interrupted (modernc.org/sqlite's interruptOnDone).
func driverSawCancel(t *testing.T) {
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); runtime.Gosched() {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if !bytes.Contains(buf[:n], []byte("created by modernc.org/sqlite.interruptOnDone")) {
			return
		}
	}
	t.Error("the driver's goroutine watching the statement's context never ended")
}

// TestArchiveNotCutShortByCancel: the admin's archive request ends (its
// client gave up, a proxy closed the connection) while the archive's
// INSERT commits. The driver then reports the context's error although
// SQLite committed the row: the store answered an error and kept the sale
// in service in memory, the disk said archived, and every archive again
// (the client's retry) failed on the row already there, 503 until a
// restart. The answer and the disk must agree: archived and answered, or
// neither.
func TestArchiveNotCutShortByCancel(t *testing.T) {
	hookCommits()
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := Open(ctx, t.TempDir(), Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, name, stock, limit := "a", "A", int64(5), int64(1)
	end := t0.Add(time.Hour)
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, EndsAt: &end}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}

	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	gone := func() {
		cancel()
		driverSawCancel(t)
	}
	onCommit.Store(&gone)
	_, first := s.ArchiveSale(reqCtx, "a", end.Add(time.Second))
	onCommit.Store(nil)

	onDisk, err := s.ArchivedSales(ctx)
	if err != nil {
		t.Fatal(err)
	}
	archived := slices.ContainsFunc(onDisk, func(a surge.ArchivedSale) bool { return a.Sale.ID == "a" })
	if first != nil && archived {
		_, again := s.ArchiveSale(ctx, "a", end.Add(2*time.Second))
		t.Fatalf("ArchiveSale whose request ended while it committed answered %v, yet the disk holds the archive; "+
			"archiving again (the client's retry) answered %v; want the archive answered as done, or not made", first, again)
	}
	if first == nil && !archived {
		t.Fatalf("ArchiveSale answered done, but the disk holds no archive of sale a")
	}
}
