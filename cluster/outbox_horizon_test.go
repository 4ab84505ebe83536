package cluster_test

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestOutboxReadDuringLongTransaction: docs/events.md says a transaction
// writing the outbox left open for more than 2 s "makes each read stop at
// the horizon it had until that transaction ends". The
// outbox read must then answer (the events up to that horizon, or none),
// not fail: its failures count against the PostgreSQL breaker that the
// purchase path shares, and five of them in a quiet moment open it, so an
// idle psql session (BEGIN; UPDATE …) on the same server would make the
// relay turn purchases away with 503.
func TestOutboxReadDuringLongTransaction(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{NoExpiry: true, Events: true, Interval: time.Hour})
	t.Cleanup(func() { s.Close() })
	mustSale(t, s, "s", 100, 10)
	if out, _, err := reserve(s, "s", surge.Purchase{UserID: "u0", Quantity: 1}); err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %v %v", out, err)
	}
	ctx := t.Context()
	readEvents(t, s, 1, 20*time.Second)
	// Someone's transaction with a transaction id and the outbox's write
	// lock (as a writer of it has), left open.
	other := servicetest.Conn(t, ns)
	if _, err := other.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "LOCK TABLE outbox IN ROW EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = other.Exec(t.Context(), "ROLLBACK") })

	for i := range 6 { // the relay's pace while its reads fail: every Retry
		if evs, err := s.PendingEvents(ctx, 0, 10); err != nil {
			t.Errorf("read %d during a long transaction: %v (want the events up to the horizon it had: %d)", i, err, len(evs))
		}
	}
	if out, _, err := reserve(s, "s", surge.Purchase{UserID: "u1", Quantity: 1}); err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("a purchase after the relay's reads during a long transaction: %v %v", out, err)
	}
}

// readEvents reads s's outbox until it hands out want events, failing
// the test after within: a read hands out nothing while a writer of the
// outbox stays open for more than 2 s (docs/events.md).
func readEvents(t *testing.T, s *cluster.Store, want int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		evs, err := s.PendingEvents(t.Context(), 0, 10)
		if err == nil && len(evs) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("read of the outbox for %v: %d events, %v; want %d", within, len(evs), err, want)
		}
	}
}
