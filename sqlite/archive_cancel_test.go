package sqlite

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// stallWhile runs commit, whose commit is the writer's next one, in the
// background, and returns once that commit stalls: release lets it go on
// (at the latest when the test ends), and done says how it ended.
func stallWhile(t *testing.T, commit func() error) (release func(), done <-chan error) {
	t.Helper()
	stalled, let := make(chan struct{}), make(chan struct{})
	stall := func() {
		close(stalled)
		<-let
	}
	commithook.OnNext(stall)
	ended := make(chan error, 1)
	go func() { ended <- commit() }()
	<-stalled
	var once sync.Once
	release = func() { once.Do(func() { close(let) }) }
	t.Cleanup(release)
	return release, ended
}

// answeredWhileStalled waits up to within for the answer of what, a call
// whose request ended while the writer stalled; should none come, it
// releases the stall and fails the test with the answer that came after.
func answeredWhileStalled(t *testing.T, answered <-chan error, within time.Duration, release func(), what string) error {
	t.Helper()
	select {
	case err := <-answered:
		return err
	case <-time.After(within):
		release()
		t.Fatalf("%s was still waiting %v later (answered %v once the writer went on); want it answered when its request ended",
			what, within, <-answered)
		return nil
	}
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
	commithook.Install()
	ctx := t.Context()
	s, end := endingSales(t, "a")

	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	gone := func() {
		cancel()
		driverSawCancel(t)
	}
	commithook.OnNext(gone)
	_, first := s.ArchiveSale(reqCtx, "a", end.Add(time.Second))
	commithook.OnNext(nil)

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

// TestArchiveGivesUpWhileWriterStalls: the archive's INSERT waits for the
// writer's one connection, which a commit in progress holds (here one
// stalled in its fsync, as on a disk that stops answering). Not passing
// the caller's cancellation into the INSERT (a commit must not be cut
// short) must not make that wait endless: a request that ended before the
// INSERT began has written nothing and must be answered, not hold the
// sale's lock (and the engine's, every sale creation and archive behind
// it) for as long as the disk stalls.
func TestArchiveGivesUpWhileWriterStalls(t *testing.T) {
	commithook.Install()
	ctx := t.Context()
	s, end := endingSales(t, "a", "b")

	// The writer's next commit (a purchase of sale b, which holds only
	// b's lock) stalls until released.
	release, reserved := stallWhile(t, func() error {
		_, _, err := s.Reserve(ctx, "b", []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(end.Add(time.Second)))
		return err
	})

	// The request ends once the archive waits for the writer's connection
	// (the pool counts the wait), before its INSERT began.
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	waits := s.w.Stats().WaitCount
	answered := make(chan error, 1)
	go func() {
		_, err := s.ArchiveSale(reqCtx, "a", end.Add(time.Second))
		answered <- err
	}()
	for s.w.Stats().WaitCount == waits {
		select {
		case first := <-answered:
			t.Fatalf("ArchiveSale answered %v without waiting for the stalled writer", first)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	first := answeredWhileStalled(t, answered, 10*time.Second, release,
		"ArchiveSale whose request ended while it waited for the stalled writer")
	if first == nil {
		t.Fatal("ArchiveSale answered done while the writer was stalled before its INSERT began")
	}
	release()
	if err := <-reserved; err != nil {
		t.Fatal(err)
	}
	// Nothing was written: the sale is in service, and archiving it again
	// (the client's retry) archives it.
	if _, err := s.ArchiveSale(ctx, "a", end.Add(2*time.Second)); err != nil {
		t.Fatalf("archiving again after the answered %v: %v", first, err)
	}
}

// endingSales opens a store (no expiry job) with a sale of each id, five
// units, one a buyer, the first ending at end, an hour from the
// beginning of 2026, each next one an hour after the one before.
func endingSales(t *testing.T, ids ...string) (s *Store, end time.Time) {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := Open(t.Context(), t.TempDir(), Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	end = t0.Add(time.Hour)
	for i, id := range ids {
		name, stock, limit, ends := "S", int64(5), int64(1), end.Add(time.Duration(i)*time.Hour)
		sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, EndsAt: &ends}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSale(t.Context(), sale); err != nil {
			t.Fatal(err)
		}
	}
	return s, end
}

// TestArchiveGivesUpWhileItsSaleCommits: the archive waits for the sale's
// lock, which a change of one of its orders holds across its commit (here
// a cancel, stalled in its fsync). That wait must end with the request too:
// the archive has written nothing yet.
func TestArchiveGivesUpWhileItsSaleCommits(t *testing.T) {
	commithook.Install()
	ctx := t.Context()
	s, end := endingSales(t, "a")
	outs, _, err := s.Reserve(ctx, "a", []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(end.Add(-time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	after := end.Add(time.Second)

	release, cancelled := stallWhile(t, func() error {
		_, err := s.Cancel(ctx, outs[0].Order.ID, after)
		return err
	})

	reqCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	answered := make(chan error, 1)
	go func() {
		_, err := s.ArchiveSale(reqCtx, "a", after)
		answered <- err
	}()
	first := answeredWhileStalled(t, answered, 15*time.Second, release,
		"ArchiveSale whose request ended while its sale's order change was stalled")
	if first == nil {
		t.Fatal("ArchiveSale answered done while its sale's commit was stalled")
	}
	release()
	if err := <-cancelled; err != nil {
		t.Fatal(err)
	}
	if _, err := s.ArchiveSale(ctx, "a", after); err != nil {
		t.Fatalf("archiving again after the answered %v: %v", first, err)
	}
}
