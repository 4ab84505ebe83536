package sqlite_test

import (
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestNoEvents: a store that no relay publishes writes no outbox rows,
// for reservations nor for changes; events written before stay for a
// start that publishes them.
func TestNoEvents(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	sale := newSale(t, "s1", 10, 5)
	reserve := func(s *sqlite.Store, users ...string) []surge.Outcome {
		t.Helper()
		var batch []surge.Purchase
		for _, u := range users {
			batch = append(batch, surge.Purchase{UserID: u, Quantity: 1, IdempotencyKey: "k-" + u})
		}
		outs, _, err := s.Reserve(ctx, sale.ID, batch, surge.At(t0))
		if err != nil {
			t.Fatal(err)
		}
		return outs
	}
	pending := func(s *sqlite.Store) int {
		t.Helper()
		evs, err := s.PendingEvents(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}

	s := open(t, dir) // publishes: one event per change
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	reserve(s, "a")
	if n := pending(s); n != 1 {
		t.Fatalf("outbox holds %d events, want 1 (a's reservation)", n)
	}
	s.Close()

	s, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true, NoEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	outs := reserve(s, "b", "c", "d")
	if _, err := s.Cancel(ctx, outs[0].Order.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pay(ctx, outs[1].Order.ID, t0); err != nil {
		t.Fatal(err)
	}
	if n := pending(s); n != 1 {
		t.Errorf("outbox holds %d events, want 1: only a's, from before NoEvents", n)
	}
	// The changes themselves are durable as ever.
	for i, want := range []surge.OrderStatus{surge.OrderCancelled, surge.OrderPaid, surge.OrderReserved} {
		o, err := s.Order(ctx, outs[i].Order.ID)
		if err != nil || o.Status != want {
			t.Errorf("order %d: %v %v, want %s", i, o.Status, err, want)
		}
	}
}
