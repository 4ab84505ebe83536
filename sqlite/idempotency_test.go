package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestIdempotencyWindow runs buy-and-cancel with a fresh key every minute
// for ten hours with a one-hour window: the keys in memory stay bounded by
// the window, yet the first key still replays its order (from disk), also
// after a restart, and never buys twice.
func TestIdempotencyWindow(t *testing.T) {
	const (
		window = time.Hour
		cycles = 600
		bound  = 62 // a key a minute over the window, its boundary, the live one
	)
	dir := t.TempDir()
	ctx := t.Context()
	now := t0
	opts := sqlite.Options{IdempotencyTTL: window, Now: func() time.Time { return now }, NoExpiry: true}
	s, err := sqlite.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	sale := newSale(t, "s", 2, 2)
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	reserve := func(p surge.Purchase) surge.Outcome {
		t.Helper()
		out, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{p}, surge.At(now))
		if err != nil {
			t.Fatalf("Reserve(%+v): %v", p, err)
		}
		return out[0]
	}
	key := func(i int) string { return fmt.Sprintf("k%d", i) }
	var first surge.Order
	for i := range cycles {
		now = t0.Add(time.Duration(i) * time.Minute)
		out := reserve(surge.Purchase{UserID: "loop", IdempotencyKey: key(i), Quantity: 1})
		if out.Code != surge.CodeReserved || out.Replay {
			t.Fatalf("cycle %d: %+v, want a new order", i, out)
		}
		if i == 0 {
			first = out.Order
		}
		if _, err := s.Cancel(ctx, out.Order.ID, now); err != nil {
			t.Fatalf("cycle %d: Cancel: %v", i, err)
		}
		if _, err := s.Expire(ctx, now); err != nil { // the sweep rides on it
			t.Fatal(err)
		}
		if n := s.Keys(sale.ID); n > bound {
			t.Fatalf("cycle %d: %d keys in memory, want at most %d", i, n, bound)
		}
	}
	if _, st := s.LookupKey(sale.ID, "loop", key(0)); st != surge.KeyMaybe {
		t.Errorf("LookupKey of a key past the window = %v, want KeyMaybe", st)
	}
	check := func(when string) {
		t.Helper()
		// Sold out by a live order, so only a replay can answer 201.
		if out := reserve(surge.Purchase{UserID: "loop", IdempotencyKey: key(0), Quantity: 1}); out.Code != surge.CodeReserved || !out.Replay || out.Order != first {
			t.Errorf("%s: replay of the first key = %+v, want the first answer %+v", when, out, first)
		}
		if out := reserve(surge.Purchase{UserID: "loop", IdempotencyKey: key(1), Quantity: 2}); out.Code != surge.CodeIdempotencyMismatch {
			t.Errorf("%s: old key with another quantity = %q, want idempotency_mismatch", when, out.Code)
		}
		if out := reserve(surge.Purchase{UserID: "loop", IdempotencyKey: "fresh-" + when, Quantity: 1}); out.Code != surge.CodeSoldOut {
			t.Errorf("%s: a fresh key = %q, want sold_out", when, out.Code)
		}
		n := 0
		if err := s.Orders(ctx, sale.ID, func(surge.Order) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != cycles+1 {
			t.Errorf("%s: %d orders, want %d: an old key bought again", when, n, cycles+1)
		}
	}
	now = now.Add(time.Minute)
	if out := reserve(surge.Purchase{UserID: "live", IdempotencyKey: "live", Quantity: 2}); out.Code != surge.CodeReserved {
		t.Fatalf("sell-out: %+v", out)
	}
	check("running")

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Only the window's keys and the live order's were loaded.
	if n := s.Keys(sale.ID); n > bound {
		t.Errorf("%d keys loaded, want at most %d", n, bound)
	}
	if _, st := s.LookupKey(sale.ID, "loop", key(cycles-1)); st != surge.KeyDone {
		t.Errorf("a key within the window after reopen = %v, want KeyDone", st)
	}
	check("reopened")
}

// TestKeyLookupUsesIndex: the disk lookup of an old key reads the partial
// index of dead orders' keys, not the sale's whole order list.
func TestKeyLookupUsesIndex(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	plan := sqlite.QueryPlan(t, db, sqlite.KeyQuery, "s", "u", "k")
	if got := strings.Join(plan, "; "); !strings.Contains(got, "USING INDEX orders_settled_keys") {
		t.Errorf("query plan = %q, want it to use orders_settled_keys", got)
	}
}
