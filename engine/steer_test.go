package engine

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/storetest"
)

// hookStore forwards surge.Steerer to the store it wraps (a *sqlite.Store
// in these tests), so the engine can steer through it.
func (h *hookStore) UpdateSale(ctx context.Context, id string, p surge.SalePatch, now time.Time) (surge.Sale, error) {
	return h.Store.(surge.Steerer).UpdateSale(ctx, id, p, now)
}

func (h *hookStore) Sale(ctx context.Context, id string) (surge.Sale, error) {
	return h.Store.(surge.Steerer).Sale(ctx, id)
}

// TestPausedFastPath: a paused sale answers purchases paused on the fast
// path, with no store call and no allocation (one, the key lookup, with a
// key); its status is paused; resuming restores what the clock and stock
// say; a known key still replays.
func TestPausedFastPath(t *testing.T) {
	clk := fixedClock()
	hs := &hookStore{Store: openStore(t, t.TempDir())}
	e := openEngine(t, hs, testConfig(clk))
	ctx := context.Background()
	mustCreate(t, e, input("s", 10, 2))
	first := mustReserve(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 1})

	st, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(true)})
	if err != nil || st.Status != surge.SalePaused || !st.Paused {
		t.Fatalf("pause: %+v, %v", st, err)
	}
	calls := hs.reserves.Load()
	for _, c := range []struct {
		name string
		p    surge.Purchase
		max  float64
	}{
		{"no key", surge.Purchase{UserID: "u2", Quantity: 1}, 0},
		{"key", surge.Purchase{UserID: "u2", IdempotencyKey: "0123456789abcdef", Quantity: 1}, 0},
	} {
		var bad atomic.Int64
		allocs := testing.AllocsPerRun(1000, func() {
			out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: c.p})
			if err != nil || out.Code != surge.CodePaused {
				bad.Add(1)
			}
		})
		if bad.Load() != 0 {
			t.Fatalf("%s: %d purchases of a paused sale were not answered paused", c.name, bad.Load())
		}
		if allocs > c.max {
			t.Errorf("%s: %.1f allocations per paused purchase, want at most %.0f", c.name, allocs, c.max)
		}
	}
	out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 1})
	if !out.Replay || out.Order.ID != first.ID {
		t.Errorf("a known key of a paused sale: %+v, want the replay of %s", out, first.ID)
	}
	if n := hs.reserves.Load() - calls; n != 0 {
		t.Errorf("purchases of a paused sale made %d Reserve calls, want 0", n)
	}

	if st, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(false)}); err != nil || st.Status != surge.SaleLive {
		t.Fatalf("resume: %+v, %v", st, err)
	}
	mustReserve(t, e, "s", surge.Purchase{UserID: "u2", Quantity: 1})
	// Resuming restores what the stock and the clock say: sold out, ended.
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(true), Stock: new(int64(2))}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(false)}); st.Status != surge.SaleSoldOut {
		t.Errorf("resumed with no stock left: status %s, want sold_out", st.Status)
	}
	end := clk.Now().Add(time.Minute)
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(true), Stock: new(int64(5)), EndsAt: &end}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.Sale("s"); st.Status != surge.SalePaused || st.Remaining != 3 {
		t.Errorf("paused with 3 left: %+v", st)
	}
	clk.Advance(2 * time.Minute)
	if st, _ := e.Sale("s"); st.Status != surge.SaleEnded {
		t.Errorf("paused past its end: status %s, want ended", st.Status)
	}
	// A key that bought more than a limit lowered since still replays.
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(false), EndsAt: new(time.Time{}), Stock: new(int64(10))}); err != nil {
		t.Fatal(err)
	}
	two := mustReserve(t, e, "s", surge.Purchase{UserID: "u3", IdempotencyKey: "k3", Quantity: 2})
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{PerUserLimit: new(int64(1))}); err != nil {
		t.Fatal(err)
	}
	if out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u3", IdempotencyKey: "k3", Quantity: 2}); !out.Replay || out.Order.ID != two.ID {
		t.Errorf("the replay of 2 units under a limit lowered to 1: %+v, want the replay of %s", out, two.ID)
	}
	if _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "u3", IdempotencyKey: "k4", Quantity: 2}}); !surge.HasCode(err, surge.CodeInvalid) {
		t.Errorf("a new key asking 2 units under a limit of 1: %v, want invalid_request", err)
	}
	if _, err := e.UpdateSale(ctx, "nope", surge.SalePatch{Paused: new(true)}); !surge.HasCode(err, surge.CodeSaleNotFound) {
		t.Errorf("steering an unknown sale: %v", err)
	}
}

// TestSteerUnderSpike (embedded): a crowd buys while the stock goes down
// to near what is sold and up again, the sale is paused and resumed and
// its limit lowered; the guarantees hold at every point (storetest's
// SteerSpike.Verify), also on the store reopened from disk afterwards.
func TestSteerUnderSpike(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	cfg := testConfig(&clock{})
	cfg.MaxBatch = 32
	e, err := Open(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := input("spike", 150, 3)
	in.HoldSeconds = ptr(int64(3600))
	mustCreate(t, e, in)
	res := storetest.SteerSpike{
		SaleID: "spike", Stock: 150, Limit: 3, Nodes: 1,
		Buy: func(ctx context.Context, _ int, p surge.Purchase) (surge.Outcome, error) {
			return e.Purchase(ctx, PurchaseRequest{SaleID: "spike", Purchase: p})
		},
		Steer: func(ctx context.Context, _ int, p surge.SalePatch) error {
			_, err := e.UpdateSale(ctx, "spike", p)
			return err
		},
		Remaining: func(ctx context.Context) (int64, error) { return st.Remaining(ctx, "spike") },
	}.Run(t)
	res.Verify(t, st)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	again := openStore(t, dir)
	res.Verify(t, again)
}
