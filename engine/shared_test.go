package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// sharedStore makes a store look shared with other nodes: the test plays
// the other nodes by calling the inner store directly, and announces
// changes on Changed. Remaining fails while down is set.
type sharedStore struct {
	surge.Store
	changed chan string
	down    atomic.Bool
}

func (s *sharedStore) Changed() <-chan string { return s.changed }

func (s *sharedStore) Remaining(ctx context.Context, id string) (int64, error) {
	if s.down.Load() {
		return 0, errors.New("redis and postgres unreachable")
	}
	return s.Store.Remaining(ctx, id)
}

func newShared(t *testing.T) (*Engine, *sharedStore) {
	inner := openStore(t, t.TempDir())
	st := &sharedStore{Store: inner, changed: make(chan string, 16)}
	cfg := testConfig(fixedClock())
	cfg.Now = time.Now
	cfg.SyncInterval = 20 * time.Millisecond
	return openEngine(t, st, cfg), st
}

func TestSharedStoreFollowsOtherNodes(t *testing.T) {
	e, st := newShared(t)
	ctx := context.Background()
	// Another node creates a sale and announces it.
	sl, err := surge.NewSale(input("elsewhere", 3, 1), time.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store.CreateSale(ctx, sl); err != nil {
		t.Fatal(err)
	}
	st.changed <- sl.ID
	waitFor(t, "the announced sale is served", func() bool { _, err := e.Sale(sl.ID); return err == nil })

	// Another node sells two units, one with a key; then this node sells
	// the last one, so its hint says sold out.
	out, _, err := st.Store.Reserve(ctx, sl.ID, []surge.Purchase{{UserID: "a", IdempotencyKey: "ka", Quantity: 1}, {UserID: "b", Quantity: 1}}, surge.At(time.Now()))
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("other node's purchases: %v %v", out, err)
	}
	mustReserve(t, e, sl.ID, surge.Purchase{UserID: "c", Quantity: 1})
	if got := remaining(t, e, sl.ID); got != 0 {
		t.Fatalf("remaining %d, want 0", got)
	}
	// a retries on this node: the hint says sold out, but the key may be
	// known to the shared store, so it must be asked: a replay, not 409.
	got := mustPurchase(t, e, sl.ID, surge.Purchase{UserID: "a", IdempotencyKey: "ka", Quantity: 1})
	if got.Code != surge.CodeReserved || !got.Replay || got.Order.ID != out[0].Order.ID {
		t.Errorf("retry of a key sold on another node: %+v, want a replay of %s", got, out[0].Order.ID)
	}

	// Another node cancels: the units show here after the poll even
	// without an announcement.
	if _, err := st.Store.Cancel(ctx, out[1].Order.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the returned unit is seen", func() bool { s, _ := e.Sale(sl.ID); return s.Remaining == 1 })
}

func TestSharedStoreStaleReads(t *testing.T) {
	e, st := newShared(t)
	s := mustCreate(t, e, input("s", 5, 1))
	if s.Stale {
		t.Fatalf("fresh sale reported stale")
	}
	st.down.Store(true)
	waitFor(t, "the sale is marked stale", func() bool { s, _ := e.Sale("s"); return s.Stale })
	if s, _ := e.Sale("s"); s.Remaining != 5 || s.Status != surge.SaleLive {
		t.Errorf("stale read: %+v, want the last known figures", s)
	}
	st.down.Store(false)
	waitFor(t, "the sale is fresh again", func() bool { s, _ := e.Sale("s"); return !s.Stale })
}

// With InFlight > 1 several batches of one sale are at the store at once,
// every purchase is answered, and Close waits for the batches in flight.
func TestInFlightOverlapsBatches(t *testing.T) {
	inner := openStore(t, t.TempDir())
	var now, peak atomic.Int64
	gate := make(chan struct{})
	h := &hookStore{Store: inner}
	h.before = func(int64) {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-gate
	}
	h.after = func(int64) { now.Add(-1) }
	cfg := testConfig(fixedClock())
	cfg.InFlight, cfg.MaxBatch = 3, 2
	e := openEngine(t, h, cfg)
	mustCreate(t, e, input("s", 100, 1))
	var answers []<-chan answer
	for i := range 12 {
		answers = append(answers, goPurchase(context.Background(), e, "s", surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1}))
	}
	waitFor(t, "three batches at the store at once", func() bool { return peak.Load() == 3 })
	close(gate)
	for _, a := range answers {
		if got := <-a; got.err != nil || got.out.Code != surge.CodeReserved {
			t.Errorf("purchase: %+v %v", got.out, got.err)
		}
	}
	if peak.Load() > 3 {
		t.Errorf("%d batches at once, want at most 3", peak.Load())
	}
	if got := remaining(t, e, "s"); got != 88 {
		t.Errorf("remaining %d, want 88", got)
	}
}
