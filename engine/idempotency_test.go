package engine

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestFastPathKeyMismatch: a known key reused with another quantity is
// refused as idempotency_mismatch wherever it is decided, the lock-free
// fast path included, and reserves nothing.
func TestFastPathKeyMismatch(t *testing.T) {
	clk := fixedClock()
	hs := &hookStore{Store: openStore(t, t.TempDir())}
	e := openEngine(t, hs, testConfig(clk))
	mustCreate(t, e, input("gone", 2, 2)) // sold out below: fast path
	mustCreate(t, e, input("open", 5, 2)) // stock left: answered from memory too
	gone := mustReserve(t, e, "gone", surge.Purchase{UserID: "u1", IdempotencyKey: "k", Quantity: 2})
	open := mustReserve(t, e, "open", surge.Purchase{UserID: "u1", IdempotencyKey: "k", Quantity: 1})
	cases := []struct {
		sale  string
		q     int64
		want  surge.Code
		first surge.Order // for a replay
		store bool        // decided by the store
	}{
		{"gone", 1, surge.CodeIdempotencyMismatch, surge.Order{}, false},
		{"gone", 2, surge.CodeReserved, gone, false},
		{"open", 2, surge.CodeIdempotencyMismatch, surge.Order{}, false},
		{"open", 1, surge.CodeReserved, open, false},
	}
	for _, c := range cases {
		calls := hs.reserves.Load()
		out := mustPurchase(t, e, c.sale, surge.Purchase{UserID: "u1", IdempotencyKey: "k", Quantity: c.q})
		if out.Code != c.want || out.Replay != (c.want == surge.CodeReserved) || out.Order != c.first {
			t.Errorf("%s, quantity %d: %+v, want %q (replay of %+v)", c.sale, c.q, out, c.want, c.first)
		}
		if went := hs.reserves.Load() != calls; went != c.store {
			t.Errorf("%s, quantity %d: reached the store = %v, want %v", c.sale, c.q, went, c.store)
		}
	}
	if got := remaining(t, e, "open"); got != 4 {
		t.Errorf("open: remaining %d, want 4", got)
	}
}

// TestFastPathOldKeyReplays: once the store keeps a key on disk only (past
// its idempotency window), a replay on a sold-out sale must still reach the
// store and get its 201 back, never a fast sold_out.
func TestFastPathOldKeyReplays(t *testing.T) {
	clk := fixedClock()
	e, hs, st := engineWithHourWindow(t, clk)
	first := keyOnDiskOnly(t, e, clk, input("s", 1, 1))
	if _, ks := st.LookupKey("s", "u1", "old"); ks != surge.KeyMaybe {
		t.Fatalf("old key in memory: %v, want KeyMaybe", ks)
	}
	mustReserve(t, e, "s", surge.Purchase{UserID: "u2", Quantity: 1}) // sold out
	calls := hs.reserves.Load()
	out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "old", Quantity: 1})
	if out.Code != surge.CodeReserved || !out.Replay || out.Order != first {
		t.Errorf("replay of an old key on a sold-out sale = %+v, want the first answer %+v", out, first)
	}
	if out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "old", Quantity: 1}); !out.Replay {
		t.Errorf("second replay = %+v", out)
	}
	if out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u3", IdempotencyKey: "new", Quantity: 1}); out.Code != surge.CodeSoldOut {
		t.Errorf("a new key = %q, want sold_out", out.Code)
	}
	if hs.reserves.Load() == calls {
		t.Error("the old key's replay never reached the store")
	}
	// Without a key nothing can be a replay: still answered lock-free.
	calls = hs.reserves.Load()
	if out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u3", Quantity: 1}); out.Code != surge.CodeSoldOut {
		t.Errorf("no key = %q, want sold_out", out.Code)
	}
	if hs.reserves.Load() != calls {
		t.Error("a keyless sold_out reached the store")
	}
	if n := len(ordersOf(t, st, "s")); n != 2 {
		t.Errorf("%d orders, want 2", n)
	}
}

// engineWithHourWindow is an engine over SQLite whose store keeps keys in
// memory for an hour, then on disk only: the clock moves them there.
func engineWithHourWindow(t *testing.T, clk *clock) (*Engine, *hookStore, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{IdempotencyTTL: time.Hour, NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	hs := &hookStore{Store: st}
	return openEngine(t, hs, testConfig(clk)), hs, st
}

// keyOnDiskOnly creates sale in, has u1 buy one unit with key "old" and
// cancel it, and moves the clock past the window: the sale's keys are on
// disk only. It returns u1's order.
func keyOnDiskOnly(t *testing.T, e *Engine, clk *clock, in surge.SaleInput) surge.Order {
	t.Helper()
	mustCreate(t, e, in)
	first := mustReserve(t, e, *in.ID, surge.Purchase{UserID: "u1", IdempotencyKey: "old", Quantity: 1})
	if _, err := e.Cancel(context.Background(), first.ID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	e.ExpireNow() // sweeps the old key out of memory
	return first
}
