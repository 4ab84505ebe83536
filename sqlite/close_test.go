package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestCloseWhileACommitWaitsForRoom: Close closes the writer's queue. A
// change that takes no sale lock (a failed payment, a refund, the relay's
// removal of published events) may be waiting for room in that queue
// when it does; it must then be committed or refused, never panic with a
// send on a closed channel, which would end the process.
func TestCloseWhileACommitWaitsForRoom(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := Open(ctx, t.TempDir(), Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	id, name, stock, limit := "a", "A", int64(5), int64(1)
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	outs, _, err := s.Reserve(ctx, "a", []surge.Purchase{{UserID: "u1", Quantity: 1}}, surge.At(t0))
	if err != nil || outs[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %+v, %v", outs, err)
	}
	order := outs[0].Order.ID

	// The writer is stuck on its connection, holding one group, and its
	// queue is full behind it.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.commits <- &commit{err: make(chan error, 1)}
	// Waiting for the connection: it took its group (all it found) first.
	for deadline := time.Now().Add(5 * time.Second); s.w.Stats().WaitCount == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the writer never waited for its connection")
		}
	}
	for len(s.commits) < cap(s.commits) {
		s.commits <- &commit{err: make(chan error, 1)}
	}

	paid := make(chan error, 1)
	go func() {
		_, err := s.RecordPayment(context.Background(), surge.PaymentEvent{ID: "evt_failed", Type: surge.PaymentFailed,
			OrderID: order, AmountCents: 100, Currency: "EUR", Created: t0, Provider: "test"}, t0)
		paid <- err
	}()
	time.Sleep(100 * time.Millisecond) // the payment waits for room in the queue
	select {
	case err := <-paid:
		t.Fatalf("the payment did not wait for room in the queue: %v", err)
	default:
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	time.Sleep(100 * time.Millisecond) // Close closes the queue, or waits to
	conn.Close()

	if err := <-paid; err != nil && surge.ErrorCode(err) != surge.CodeUnavailable {
		t.Errorf("a failed payment recorded while the store closed: %v, want it committed or unavailable", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("close: %v", err)
	}
}
