package sqlite_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// endingSale creates sale id in s: 10 units, 2 per buyer, holds of
// 10 minutes, from t0 until ends after it.
func endingSale(t *testing.T, s *sqlite.Store, id string, ends time.Duration) surge.Sale {
	t.Helper()
	name, stock, limit, hold := "Sale "+id, int64(10), int64(2), int64(600)
	end := t0.Add(ends)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit,
		StartsAt: &t0, EndsAt: &end, HoldSeconds: &hold}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(t.Context(), sl); err != nil {
		t.Fatal(err)
	}
	return sl
}

// TestDormantSale restarts a store after its sale ended: a sale that ended
// without reserved orders is not loaded (no key in memory), yet its figures,
// its orders, its export and every replay answer exactly as before; one
// still holding a reservation, and a live one, are loaded whole; steering
// the dormant sale open again loads it, and its rules hold.
func TestDormantSale(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	now := t0
	opts := sqlite.Options{NoExpiry: true, Now: func() time.Time { return now }}
	s, err := sqlite.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	done, held, live := endingSale(t, s, "done", time.Hour), endingSale(t, s, "held", time.Hour), endingSale(t, s, "live", 100*time.Hour)
	buys := []surge.Purchase{
		{UserID: "a", IdempotencyKey: "k1", Quantity: 2}, // paid
		{UserID: "b", IdempotencyKey: "k2", Quantity: 1}, // cancelled
		{UserID: "c", IdempotencyKey: "k3", Quantity: 1}, // paid
		{UserID: "d", Quantity: 1},                       // paid, no key
	}
	first := map[string][]surge.Outcome{}
	for _, sl := range []surge.Sale{done, held, live} {
		out, _, err := s.Reserve(ctx, sl.ID, buys, surge.At(t0))
		if err != nil {
			t.Fatal(err)
		}
		first[sl.ID] = out
		for i, o := range out {
			switch {
			case i == 1:
				_, err = s.Cancel(ctx, o.Order.ID, t0)
			case sl.ID == "held" && i == 3:
				continue // stays reserved: its hold outlasts the sale
			default:
				_, err = s.Pay(ctx, o.Order.ID, t0)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	export := func(s *sqlite.Store, id string) []surge.Order {
		var all []surge.Order
		if err := s.Orders(ctx, id, func(o surge.Order) error { all = append(all, o); return nil }); err != nil {
			t.Fatal(err)
		}
		return all
	}
	before := export(s, done.ID)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	now = t0.Add(2 * time.Hour) // done and held have ended
	s, err = sqlite.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for _, c := range []struct {
		id      string
		dormant bool
	}{{done.ID, true}, {held.ID, false}, {live.ID, false}} {
		if got := s.Dormant(c.id); got != c.dormant {
			t.Errorf("sale %s dormant = %v, want %v", c.id, got, c.dormant)
		}
		if rem, err := s.Remaining(ctx, c.id); err != nil || rem != 10-4 {
			t.Errorf("sale %s remaining = %d, %v; want 6", c.id, rem, err)
		}
	}
	if n := s.Keys(done.ID); n != 0 {
		t.Errorf("the dormant sale holds %d keys in memory, want 0", n)
	}
	if n := s.Keys(held.ID); n != 3 {
		t.Errorf("the sale still holding a reservation has %d keys in memory, want 3", n)
	}
	// Its orders answer from disk, as before.
	if after := export(s, done.ID); !slices.Equal(after, before) {
		t.Errorf("export after restart:\n%+v\nwant\n%+v", after, before)
	}
	for _, o := range before {
		if got, err := s.Order(ctx, o.ID); err != nil || got != o {
			t.Errorf("Order(%s) = %+v, %v; want %+v", o.ID, got, err, o)
		}
	}
	// Every key replays its first answer, paid or cancelled; a key reused
	// with another quantity is refused; anything else is told the sale ended.
	if _, ks := s.LookupKey(done.ID, "a", "k1"); ks != surge.KeyMaybe {
		t.Errorf("LookupKey of a dormant sale = %v, want KeyMaybe (the store must look on disk)", ks)
	}
	out, rem, err := s.Reserve(ctx, done.ID, append(slices.Clone(buys[:3]),
		surge.Purchase{UserID: "a", IdempotencyKey: "k1", Quantity: 1},
		surge.Purchase{UserID: "e", IdempotencyKey: "k9", Quantity: 1},
		surge.Purchase{UserID: "d", Quantity: 1}), surge.At(

		now))

	if err != nil || rem != 6 {
		t.Fatalf("Reserve on the dormant sale: remaining %d, %v", rem, err)
	}
	for i := range 3 {
		want := first[done.ID][i]
		want.Replay = true
		if out[i] != want {
			t.Errorf("replay %d = %+v, want %+v", i, out[i], want)
		}
	}
	if out[3].Code != surge.CodeIdempotencyMismatch || out[4].Code != surge.CodeEnded || out[5].Code != surge.CodeEnded {
		t.Errorf("other purchases = %q %q %q, want idempotency_mismatch ended ended", out[3].Code, out[4].Code, out[5].Code)
	}
	if n := s.Keys(done.ID); n != 3 {
		t.Errorf("%d keys in memory after the replays, want the 3 recalled", n)
	}

	// Reopened, the sale is loaded whole first: the limit counts what
	// buyers hold from before, and the stock what was sold.
	ends := now.Add(time.Hour)
	if _, err := s.UpdateSale(ctx, done.ID, surge.SalePatch{EndsAt: &ends}, surge.At(now)); err != nil {
		t.Fatal(err)
	}
	if s.Dormant(done.ID) {
		t.Error("a reopened sale is still dormant")
	}
	out, rem, err = s.Reserve(ctx, done.ID, []surge.Purchase{
		{UserID: "a", Quantity: 1},
		{UserID: "c", Quantity: 1},
		{UserID: "a", IdempotencyKey: "k1", Quantity: 2},
		{UserID: "b", IdempotencyKey: "k2", Quantity: 1},
	}, surge.At(

		now))

	if err != nil {
		t.Fatal(err)
	}
	if out[0].Code != surge.CodeLimitReached || out[1].Code != surge.CodeReserved || !out[2].Replay || !out[3].Replay || rem != 5 {
		t.Errorf("after reopening: %q %q replay %v %v, remaining %d; want limit_reached reserved, two replays, 5",
			out[0].Code, out[1].Code, out[2].Replay, out[3].Replay, rem)
	}
}

// TestDormantSaleAfterClockStepBack: a sale that had ended when the store
// started is left dormant (no buyer's holding in memory). If the wall
// clock then steps back before its end (an NTP step, a VM resumed), the
// sale's gate opens again for a while and purchases reach the store. The
// dormant ledger knows no buyer's units, so a buyer already at the
// per-user limit was sold more; and the next start refuses the database
// ("user holds 3 units ... over the limit of 2"). The store must decide
// such a purchase against the sale's full state, as it does for a
// steered one.
func TestDormantSaleAfterClockStepBack(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	opts := sqlite.Options{NoExpiry: true, Now: now}
	s, err := sqlite.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	id := "drop"
	end := endingSale(t, s, id, time.Hour).EndsAt // limit 2
	out, _, err := s.Reserve(ctx, id, []surge.Purchase{{UserID: "alice", Quantity: 2}}, surge.At(t0))
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("first purchase: %+v, %v", out, err)
	}
	if _, err := s.Pay(ctx, out[0].Order.ID, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The store starts 30 s after the sale's end: dormant.
	clock.Store(end.Add(30 * time.Second).UnixNano())
	s, err = sqlite.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Dormant(id) {
		t.Fatal("the ended sale is not dormant")
	}
	// Then the wall clock steps back a minute: the sale is open again
	// until its end, and alice, who holds the limit, buys once more.
	clock.Store(end.Add(-30 * time.Second).UnixNano())
	out, _, err = s.Reserve(ctx, id, []surge.Purchase{{UserID: "alice", Quantity: 1}}, surge.At(now()))
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Code != surge.CodeLimitReached {
		t.Errorf("alice, holding the limit of 2, buys 1 more: %s, want %s", out[0].Code, surge.CodeLimitReached)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Whatever was decided, the next start must serve.
	s, err = sqlite.Open(ctx, dir, opts)
	if err != nil {
		t.Fatalf("the start after it: %v", err)
	}
	s.Close()
}
