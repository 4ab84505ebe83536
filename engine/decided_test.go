package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// TestEndNowRefusesWaitingBatch: a batch that reaches the store after an
// operator ended the sale ("ends_at":"now", answered 200 with the sale
// ended) is refused ended. The engine read the batch's time before the
// store took the sale's lock, and the store decided at that instant, so
// the batch reserved against the changed sale as if the end had not come
// yet: the buyer's 201 came after the operator's "ended", and the units
// left went down after the end. The hook stands where the batch waits
// for the sale's lock (a cancel's, an expiry's or the change's own commit
// ahead of it), after its time was read.
func TestEndNowRefusesWaitingBatch(t *testing.T) {
	clk := fixedClock()
	hs := &hookStore{Store: openStore(t, t.TempDir())}
	reached, let := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(let) }) }
	t.Cleanup(release)
	hs.before = func(n int64) {
		if n == 1 {
			close(reached)
			<-let
		}
	}
	e := openEngine(t, hs, testConfig(clk))
	mustCreate(t, e, input("s", 10, 1))
	ctx := context.Background()

	ch := goPurchase(ctx, e, "s", surge.Purchase{UserID: "late", IdempotencyKey: "k-late", Quantity: 1})
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the purchase's batch never reached the store")
	}
	clk.Advance(time.Second)
	st, err := e.UpdateSale(ctx, "s", surge.SalePatch{EndNow: true})
	if err != nil || st.Status != surge.SaleEnded {
		t.Fatalf("end now: %+v, %v; want the sale ended", st, err)
	}
	release()
	r := <-ch
	if r.err != nil || r.out.Code != surge.CodeEnded {
		t.Errorf("a purchase decided after the sale was ended at %s (answered 200 ended): (%+v, %v), want 409 ended",
			surge.FormatTime(st.EndsAt), r.out, r.err)
	}
	if got := remaining(t, e, "s"); got != 10 {
		t.Errorf("remaining %d after the sale ended with 10 left, want 10", got)
	}
	for _, o := range ordersOf(t, hs, "s") {
		t.Errorf("order %s made at %s in a sale ended at %s", o.ID, surge.FormatTime(o.CreatedAt), surge.FormatTime(st.EndsAt))
	}
}

// TestHoldRunsFromDecision: a reservation's hold runs the sale's
// hold_seconds from when it is made, also when its batch waited for the
// sale's lock behind a commit that the disk stalled (here a cancel's).
// Its time was read before the wait, so the order was made at that
// instant: created_at before the reservation, and expires_at earlier
// than promised by the whole wait.
func TestHoldRunsFromDecision(t *testing.T) {
	commithook.Install() // before the store opens its connections
	clk := fixedClock()
	hs := &hookStore{Store: openStore(t, t.TempDir())}
	e := openEngine(t, hs, testConfig(clk))
	sale := mustCreate(t, e, input("s", 10, 1))
	ctx := context.Background()
	first := mustReserve(t, e, "s", surge.Purchase{UserID: "a", Quantity: 1})

	// The cancel's commit stalls, as a disk that stops answering, and
	// holds the sale's lock meanwhile.
	stalled, let := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(let) }) }
	t.Cleanup(release)
	commithook.OnNext(func() {
		close(stalled)
		<-let
	})
	cancelled := make(chan error, 1)
	go func() {
		_, err := e.Cancel(ctx, first.ID)
		cancelled <- err
	}()
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		commithook.OnNext(nil)
		t.Fatal("the cancel's commit never began")
	}

	calls := hs.reserves.Load()
	ch := goPurchase(ctx, e, "s", surge.Purchase{UserID: "b", Quantity: 1})
	waitFor(t, "the batch to reach the store", func() bool { return hs.reserves.Load() > calls })
	const wait = 30 * time.Second
	clk.Advance(wait) // the batch waits this long for the sale's lock
	made := clk.Now()
	release()
	if err := <-cancelled; err != nil {
		t.Fatalf("cancel: %v", err)
	}
	r := <-ch
	if r.err != nil || r.out.Code != surge.CodeReserved {
		t.Fatalf("purchase: (%+v, %v), want reserved", r.out, r.err)
	}
	o := r.out.Order
	if want := made.Add(sale.Hold()); !o.ExpiresAt.Equal(want) || !o.CreatedAt.Equal(made) {
		t.Errorf("a reservation made at %s after waiting %v for the sale's lock: created_at %s, expires_at %s; want %s and %s (a hold of %v, not %v)",
			surge.FormatTime(made), wait, surge.FormatTime(o.CreatedAt), surge.FormatTime(o.ExpiresAt),
			surge.FormatTime(made), surge.FormatTime(want), sale.Hold(), o.ExpiresAt.Sub(made))
	}
}
