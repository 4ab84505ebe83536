package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// TestCreateSaleHoldsNoPurchaseBack: CreateSale held the store's map lock
// (s.mu) across its commit, and every call that finds a sale takes that
// lock: while a commit in progress stalled (a disk that stops answering),
// a sale's creation queued behind it held back the answers memory alone
// gives for every other sale (a sold-out purchase's replay on the
// engine's fast path, the units left, a batch of replays), for as long as
// the stall lasted.
func TestCreateSaleHoldsNoPurchaseBack(t *testing.T) {
	commithook.Install()
	ctx := t.Context()
	s, end := endingSales(t, "a", "b")
	now := end.Add(-time.Minute)
	bought := surge.Purchase{UserID: "alice", Quantity: 1, IdempotencyKey: "k1"}
	if _, _, err := s.Reserve(ctx, "a", []surge.Purchase{bought}, surge.At(now)); err != nil {
		t.Fatal(err)
	}

	// The creation of sale c queues behind the stalled commit.
	release, reserved, sale := saleCBehindStall(t, s, now)
	created := make(chan error, 1)
	go func() { created <- s.CreateSale(ctx, sale) }()
	for deadline := time.Now().Add(20 * time.Second); len(s.commits) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the creation of sale c never reached the writer's queue")
		}
	}

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"LookupKey (the fast path's replay)", func() error {
			if _, st := s.LookupKey("a", "alice", "k1"); st != surge.KeyDone {
				t.Errorf("LookupKey = %v, want done", st)
			}
			return nil
		}},
		{"Remaining", func() error {
			_, err := s.Remaining(ctx, "a")
			return err
		}},
		{"Reserve of a replay", func() error {
			outs, _, err := s.Reserve(ctx, "a", []surge.Purchase{bought}, surge.At(now))
			if err == nil && (len(outs) != 1 || !outs[0].Replay) {
				t.Errorf("replay answered %+v", outs)
			}
			return err
		}},
	} {
		answered := make(chan error, 1)
		go func() { answered <- tc.call() }()
		select {
		case err := <-answered:
			if err != nil {
				t.Errorf("%s of sale a: %v", tc.name, err)
			}
		case <-time.After(10 * time.Second):
			release()
			<-answered
			t.Fatalf("%s of sale a, answered from memory, was still waiting 10s later behind the creation of sale c, queued behind a stalled commit", tc.name)
		}
	}
	release()
	if err := <-reserved; err != nil {
		t.Fatal(err)
	}
	if err := <-created; err != nil {
		t.Fatalf("CreateSale c: %v", err)
	}
	if err := s.CreateSale(ctx, sale); err != surge.ErrSaleExists {
		t.Fatalf("CreateSale c again: %v, want %v", err, surge.ErrSaleExists)
	}
	if _, err := s.Remaining(ctx, "c"); err != nil {
		t.Fatalf("sale c after its creation: %v", err)
	}
}

// TestCreateSaleGivesUpWhileWriterStalls: a sale's creation queued behind
// a commit in progress that stalls (a disk that stops answering) waited
// for as long as the stall lasted, though its request had ended, and then
// created the sale. A creation the writer has not taken yet has written
// nothing: it must be answered when its request ends, and leave no sale.
func TestCreateSaleGivesUpWhileWriterStalls(t *testing.T) {
	commithook.Install()
	ctx := t.Context()
	s, end := endingSales(t, "a", "b")
	now := end.Add(-time.Minute)

	release, reserved, sale := saleCBehindStall(t, s, now)
	reqCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	answered := make(chan error, 1)
	go func() { answered <- s.CreateSale(reqCtx, sale) }()
	first := answeredWhileStalled(t, answered, 15*time.Second, release,
		"CreateSale whose request ended while the writer was stalled")
	if first == nil {
		t.Fatal("CreateSale answered done while the writer was stalled before its commit")
	}
	release()
	if err := <-reserved; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remaining(ctx, "c"); err != surge.ErrSaleNotFound {
		t.Fatalf("after the creation answered %v: sale c in memory: %v, want %v", first, err, surge.ErrSaleNotFound)
	}
	if onDisk, err := s.scanSales(ctx, s.r, `WHERE id = 'c'`); err != nil || len(onDisk) != 0 {
		t.Fatalf("after the creation answered %v: sale c on disk %+v (%v)", first, onDisk, err)
	}
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatalf("the creation again: %v", err)
	}
}

// saleCBehindStall stalls the writer's next commit, a purchase of sale b
// (stallWhile), and returns sale c, five units, one a buyer, to create
// behind it.
func saleCBehindStall(t *testing.T, s *Store, now time.Time) (release func(), reserved <-chan error, c surge.Sale) {
	t.Helper()
	release, reserved = stallWhile(t, func() error {
		_, _, err := s.Reserve(t.Context(), "b", []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(now))
		return err
	})
	id, name, stock, limit := "c", "C", int64(5), int64(1)
	c, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit}, now)
	if err != nil {
		t.Fatal(err)
	}
	return release, reserved, c
}
