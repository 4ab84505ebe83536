package engine

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestOldKeyAboveLoweredLimitReplays: a key that bought 3 units, cancelled,
// whose order is past the idempotency window (on disk only), replays its
// first answer after the per-user limit was lowered to 1, as a key still
// in memory does (TestPausedFastPath); it must not be refused 400.
func TestOldKeyAboveLoweredLimitReplays(t *testing.T) {
	clk := fixedClock()
	e, _, st := engineWithHourWindow(t, clk)
	ctx := context.Background()
	mustCreate(t, e, input("s", 10, 3))
	first := mustReserve(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "old", Quantity: 3})
	if _, err := e.Cancel(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{PerUserLimit: new(int64(1))}); err != nil {
		t.Fatal(err)
	}
	// Within the window: replays.
	if out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "old", Quantity: 3}); !out.Replay || out.Order != first {
		t.Fatalf("replay in the window: %+v", out)
	}
	clk.Advance(2 * time.Hour)
	e.ExpireNow() // sweeps the old key out of memory
	if _, ks := st.LookupKey("s", "u1", "old"); ks != surge.KeyMaybe {
		t.Fatalf("old key in memory: %v, want KeyMaybe", ks)
	}
	out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "u1", IdempotencyKey: "old", Quantity: 3}})
	if err != nil || !out.Replay || out.Order != first {
		t.Errorf("replay of a key past the window, above a limit lowered since: %+v, %v; want the replay of %s", out, err, first.ID)
	}
}

// TestDormantSaleReplayAboveLoweredLimit: a key that bought 3 units (paid)
// of a sale whose limit was lowered to 1 before it ended; after a restart
// the ended sale is dormant (every key on disk only), and the key's replay
// must still answer its first order, not 400.
func TestDormantSaleReplayAboveLoweredLimit(t *testing.T) {
	clk := fixedClock()
	dir := t.TempDir()
	opts := sqlite.Options{NoExpiry: true, Now: clk.Now}
	st, err := sqlite.Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(context.Background(), st, testConfig(clk))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in := input("s", 10, 3)
	end := clk.Now().Add(time.Hour)
	in.EndsAt = &end
	mustCreate(t, e, in)
	first := mustReserve(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "k", Quantity: 3})
	if _, err := e.Pay(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{PerUserLimit: new(int64(1))}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour) // the sale ended: dormant at the next start
	st, err = sqlite.Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e = openEngine(t, st, testConfig(clk))
	if _, ks := st.LookupKey("s", "u1", "k"); ks != surge.KeyMaybe {
		t.Fatalf("key of a dormant sale: %v, want KeyMaybe", ks)
	}
	out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "u1", IdempotencyKey: "k", Quantity: 3}})
	if err != nil || !out.Replay || out.Order != first {
		t.Errorf("replay in a dormant sale above a limit lowered since: %+v, %v; want the replay of %s", out, err, first.ID)
	}
	// A new key above the limit is still refused as invalid, and buys nothing.
	if _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "u1", IdempotencyKey: "k2", Quantity: 3}}); !surge.HasCode(err, surge.CodeInvalid) {
		t.Errorf("a new key above the limit: %v, want invalid_request", err)
	}
}

// TestAbsurdQuantityAboveLimitFailsAlone: a keyed purchase above the limit
// whose key the store may hold on disk goes to the store for its replay;
// one of a quantity no sale can hold (over surge.MaxStock) must not, since
// the store refuses such a batch whole and the buyers beside it in the
// batch would get its 400.
func TestAbsurdQuantityAboveLimitFailsAlone(t *testing.T) {
	clk := fixedClock()
	e, hs, st := engineWithHourWindow(t, clk)
	ctx := context.Background()
	keyOnDiskOnly(t, e, clk, input("s", 10, 1))
	if _, ks := st.LookupKey("s", "u9", "huge"); ks != surge.KeyMaybe {
		t.Fatalf("a new key of the sale: %v, want KeyMaybe", ks)
	}
	// The next batch waits until both purchases are in the inbox.
	release := make(chan struct{})
	calls := hs.reserves.Load()
	hs.before = func(n int64) {
		if n == calls+1 {
			<-release
		}
	}
	type answer struct {
		out surge.Outcome
		err error
	}
	blocker, fair, huge := make(chan answer, 1), make(chan answer, 1), make(chan answer, 1)
	buy := func(p surge.Purchase, to chan answer) {
		out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: p})
		to <- answer{out, err}
	}
	go buy(surge.Purchase{UserID: "u2", Quantity: 1}, blocker)
	waitFor(t, "the blocker's batch at the store", func() bool { return hs.reserves.Load() > calls })
	go buy(surge.Purchase{UserID: "u3", Quantity: 1}, fair)
	go buy(surge.Purchase{UserID: "u9", IdempotencyKey: "huge", Quantity: surge.MaxStock + 1}, huge)
	// Both wait in the inbox for the next batch (or the huge one was
	// answered before it, as it should be).
	waitFor(t, "both purchases in the inbox", func() bool { return inboxLen(e, "s")+len(huge) >= 2 })
	close(release)
	if a := <-huge; surge.ErrorCode(a.err) != surge.CodeInvalid {
		t.Errorf("a quantity over MaxStock: %+v, %v; want invalid_request", a.out, a.err)
	}
	if a := <-fair; a.err != nil || a.out.Code != surge.CodeReserved {
		t.Errorf("a fair purchase beside it: %+v, %v; want reserved", a.out, a.err)
	}
	<-blocker
}
