package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// TestCreateSaleGivesUpWhileQueueFull: while a commit in progress stalled
// (a disk that stops answering) and the writer's queue was full (a
// purchase of each of more sales than it holds, every one waiting for
// its commit), a sale's creation waited for room in the queue whatever
// its context, for as long as the stall lasted, holding the creation lock
// meanwhile. It has written nothing then: it must be answered when its
// request ends, and leave no sale.
func TestCreateSaleGivesUpWhileQueueFull(t *testing.T) {
	commithook.Install()
	ctx := t.Context()
	ids := make([]string, 0, 1100)
	for i := range cap(ids) {
		ids = append(ids, fmt.Sprintf("s%04d", i))
	}
	s, end := endingSales(t, "b")
	now := end.Add(-time.Minute)
	for _, id := range ids {
		name, stock, limit := "S", int64(5), int64(1)
		sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit}, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSale(ctx, sale); err != nil {
			t.Fatal(err)
		}
	}
	release, reserved, sale := saleCBehindStall(t, s, now)
	bought := make(chan error, len(ids))
	for _, id := range ids {
		go func() {
			_, _, err := s.Reserve(ctx, id, []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(now))
			bought <- err
		}()
	}
	for deadline := time.Now().Add(20 * time.Second); len(s.commits) < cap(s.commits); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("the writer's queue holds %d commits 20s later, want it full (%d)", len(s.commits), cap(s.commits))
		}
	}

	reqCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	answered := make(chan error, 1)
	go func() { answered <- s.CreateSale(reqCtx, sale) }()
	first := answeredWhileStalled(t, answered, 15*time.Second, release,
		"CreateSale whose request ended while the writer was stalled and its queue full")
	if first == nil {
		t.Fatal("CreateSale answered done while the writer was stalled before its commit")
	}
	release()
	if err := <-reserved; err != nil {
		t.Fatal(err)
	}
	for range ids {
		if err := <-bought; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Remaining(ctx, "c"); err != surge.ErrSaleNotFound {
		t.Fatalf("after the creation answered %v: sale c in memory: %v, want %v", first, err, surge.ErrSaleNotFound)
	}
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatalf("the creation again: %v", err)
	}
}
