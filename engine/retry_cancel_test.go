package engine

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/servicetest"
)

// TestCancelRetriedAfterTimeoutSaysItTook: docs/api.md promises that a
// client retrying a cancel whose answer it lost (a timeout, a 503) reads
// that its first cancel took: 409 "order o_… is already cancelled". The
// first cancel answered 503 while the store could not commit (another
// connection holds SQLite's write lock) and is still waiting to commit;
// the retry comes meanwhile and waits behind it. When the store commits
// again, the first cancel lands and the retry must say so, not answer as
// for an order it knows nothing about.
func TestCancelRetriedAfterTimeoutSaysItTook(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(fixedClock())
	cfg.PurchaseTimeout = 500 * time.Millisecond
	e := openEngine(t, openStore(t, dir), cfg)
	mustCreate(t, e, input("s", 10, 1))
	o := mustReserve(t, e, "s", surge.Purchase{UserID: "u", Quantity: 1})

	release := servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, "surge.db"))

	if _, err := e.Cancel(context.Background(), o.ID); !surge.HasCode(err, surge.CodeUnavailable) {
		t.Fatalf("first cancel while the store cannot commit: %v, want 503 unavailable", err)
	}
	// The client retries; its cancel reaches the store, which is still
	// busy with the first.
	retry := make(chan error, 1)
	go func() {
		_, err := e.Cancel(context.Background(), o.ID)
		retry <- err
	}()
	// Its change holds a slot beside the first's: it is on its way to
	// the store (the sleep lets it get there), not yet to be started.
	waitFor(t, "the retried cancel under way", func() bool { return len(e.cancelling) == 2 })
	time.Sleep(50 * time.Millisecond)
	release()
	err := <-retry
	got, gerr := e.Order(context.Background(), o.ID)
	if gerr != nil || got.Status != surge.OrderCancelled {
		t.Fatalf("the first cancel did not land: %+v %v", got, gerr)
	}
	var se *surge.Error
	if !errors.As(err, &se) || se.Code != surge.CodeNotCancellable || !strings.Contains(se.Message, "is already cancelled") {
		t.Errorf("the retried cancel of an order its first cancel ended answered %v; want not_cancellable saying "+
			"\"order %s is already cancelled\", so that the client reads that its first cancel took", err, o.ID)
	}
}
