package engine

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
	stalled, release := commithook.StallNext(t)
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

// ticking is a clock that moves on a millisecond at every reading, as a
// real one does between two readings far enough apart: whatever reads it
// later reads a later time. Advance moves it on by hand.
type ticking struct {
	base       time.Time
	reads, off atomic.Int64
}

func (c *ticking) Now() time.Time {
	return c.base.Add(time.Duration(c.off.Load()) + time.Duration(c.reads.Add(1))*time.Millisecond)
}

func (c *ticking) Advance(d time.Duration) { c.off.Add(int64(d)) }

// waitGoroutine waits until some goroutine's stack holds every one of
// frames (matched case-insensitively): the goroutine is parked there.
func waitGoroutine(t *testing.T, what string, frames ...string) {
	t.Helper()
	buf := make([]byte, 1<<22)
	waitFor(t, what, func() bool {
		for _, g := range strings.Split(strings.ToLower(string(buf[:runtime.Stack(buf, true)])), "\n\n") {
			all := true
			for _, f := range frames {
				all = all && strings.Contains(g, strings.ToLower(f))
			}
			if all {
				return true
			}
		}
		return false
	})
}

// TestEndNowComesAfterOrdersAheadOfIt: an end "now" that waited for the
// sale behind another change (its write stalled by the disk) ends the
// sale after the purchases that went ahead of it, never before them. The
// end was read when the request came, before the wait: a purchase decided
// during the wait, ahead of the end in the sale's lock, was reserved, and
// the order it made lay after the sale's ends_at (an order the sale's own
// window says it refused).
func TestEndNowComesAfterOrdersAheadOfIt(t *testing.T) {
	commithook.Install() // before the store opens its connections
	clk := &ticking{base: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	hs := &hookStore{Store: openStore(t, t.TempDir())}
	e := openEngine(t, hs, Config{Now: clk.Now, Logger: testConfig(fixedClock()).Logger})
	mustCreate(t, e, input("s", 10, 1))
	ctx := context.Background()

	// A rename's write stalls, holding the sale's change and its lock.
	stalled, release := commithook.StallNext(t)
	renamed := make(chan error, 1)
	go func() {
		name := "renamed"
		_, err := e.UpdateSale(ctx, "s", surge.SalePatch{Name: &name})
		renamed <- err
	}()
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		commithook.OnNext(nil)
		t.Fatal("the rename's write never began")
	}
	// The operator ends the sale now: the request waits behind the rename.
	type ended struct {
		st  SaleState
		err error
	}
	end := make(chan ended, 1)
	go func() {
		st, err := e.UpdateSale(ctx, "s", surge.SalePatch{EndNow: true})
		end <- ended{st, err}
	}()
	waitGoroutine(t, "the end to wait for the sale's change", "engine.(*Engine).UpdateSale(", "ctxlock.Lock(")
	clk.Advance(5 * time.Second)
	// A buyer's purchase reaches the store meanwhile and waits for the
	// sale's lock, ahead of the end.
	bought := goPurchase(ctx, e, "s", surge.Purchase{UserID: "b", Quantity: 1})
	waitGoroutine(t, "the purchase to wait for the sale's lock", "sqlite.(*Store).reserve", "sync.(*Mutex).lock")
	release()
	if err := <-renamed; err != nil {
		t.Fatalf("rename: %v", err)
	}
	r := <-end
	if r.err != nil || r.st.Status != surge.SaleEnded {
		t.Fatalf("end now: %+v, %v; want the sale ended", r.st, r.err)
	}
	if a := <-bought; a.err != nil {
		t.Fatalf("the purchase ahead of the end: %v", a.err)
	}
	for _, o := range ordersOf(t, hs, "s") {
		if !o.CreatedAt.Before(r.st.EndsAt) {
			t.Errorf("order %s made at %s, in a sale that ended at %s: its window refuses a purchase then",
				o.ID, surge.FormatTime(o.CreatedAt), surge.FormatTime(r.st.EndsAt))
		}
	}
}
