package storetest

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// snapshot is everything observable of a dataset without changing it.
type snapshot struct {
	sales     []surge.Sale
	orders    map[string][]surge.Order
	remaining map[string]int64
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	sn := snapshot{sales: e.sales(), orders: map[string][]surge.Order{}, remaining: map[string]int64{}}
	for _, s := range sn.sales {
		sn.orders[s.ID] = e.orders(s.ID)
		sn.remaining[s.ID] = e.remaining(s.ID)
	}
	return sn
}

func (e *env) wantSnapshot(want snapshot) {
	e.t.Helper()
	got := e.snapshot()
	if d := salesDiff(got.sales, want.sales); d != "" {
		e.t.Errorf("sales after reopen:\n%s", d)
	}
	for _, s := range want.sales {
		if d := ordersDiff(got.orders[s.ID], want.orders[s.ID]); d != "" {
			e.t.Errorf("orders of %s after reopen:\n%s", s.ID, d)
		}
		if got.remaining[s.ID] != want.remaining[s.ID] {
			e.t.Errorf("Remaining(%s) after reopen = %d, want %d", s.ID, got.remaining[s.ID], want.remaining[s.ID])
		}
	}
}

func testRecovery(t *testing.T, h Harness) {
	t.Run("Empty", func(t *testing.T) {
		e := newEnv(t, h)
		e.reopen()
		if ss := e.sales(); len(ss) != 0 {
			t.Errorf("Sales = %v, want none", ss)
		}
		e.wantExpire(at(time.Hour))
	})

	t.Run("Everything", func(t *testing.T) {
		e := newEnv(t, h)
		a := newSale(t, "a", 10, 3, endsAt(at(time.Hour)), priced(500, "GBP"))
		b := newSale(t, "b", 2, 1, createdAt(at(time.Second)))
		e.createSale(a, b)

		a1 := e.reserveOne(a.ID, at(0), buyKey("u1", "k1", 2))
		a4 := e.reserveOne(a.ID, at(0), buyKey("u4", "k4", 1))
		e.pay(a1.ID, at(time.Second))
		e.wantExpire(at(hold), a4)
		a1b := e.reserveOne(a.ID, at(61*time.Second), buyKey("u1", "k1b", 1)) // u1 now at the limit
		a2 := e.reserveOne(a.ID, at(61*time.Second), buyKey("u2", "k2", 2))
		e.cancel(a2.ID, at(62*time.Second))
		a3 := e.reserveOne(a.ID, at(70*time.Second), buy("u3", 1))
		out, _ := e.reserve(b.ID, at(61*time.Second), buyKey("u1", "k1", 1), buy("u2", 1), buy("u3", 1))
		if out[2].Code != surge.CodeSoldOut {
			t.Fatalf("fixture: b should be sold out, got %q", out[2].Code)
		}
		b1, b2 := out[0].Order, out[1].Order
		want := e.snapshot()
		if want.remaining[a.ID] != 6 || want.remaining[b.ID] != 0 {
			t.Fatalf("fixture: remaining %v, want a:6 b:0", want.remaining)
		}

		e.reopen()
		e.wantSnapshot(want)
		// Idempotency keys answer the first reply, whatever became of it.
		for _, k := range []struct {
			sale, user, key string
			first           surge.Order
		}{
			{a.ID, "u1", "k1", a1}, {a.ID, "u4", "k4", a4}, {a.ID, "u1", "k1b", a1b},
			{a.ID, "u2", "k2", a2}, {b.ID, "u1", "k1", b1},
		} {
			e.wantKeyOrDisk(k.sale, k.user, k.key, k.first)
			e.wantReplay(k.sale, at(90*time.Second), buyKey(k.user, k.key, k.first.Quantity), k.first)
		}
		// Held units per user: paid and reserved both count.
		out, _ = e.reserve(a.ID, at(90*time.Second), buy("u1", 1), buy("u2", 3), buy("u2", 1))
		if out[0].Code != surge.CodeLimitReached {
			t.Errorf("u1 holds 3 of 3 but got %q, want limit_reached", out[0].Code)
		}
		if out[1].Code != surge.CodeReserved || out[2].Code != surge.CodeLimitReached {
			t.Errorf("u2's cancelled units were restored as held: got %q, %q", out[1].Code, out[2].Code)
		}
		a5 := out[1].Order
		out, _ = e.reserve(b.ID, at(90*time.Second), buy("u3", 1))
		if out[0].Code != surge.CodeSoldOut || out[0].Remaining != 0 {
			t.Errorf("b after reopen: %+v, want sold_out with 0 left", out[0])
		}
		_, err := e.s.Cancel(e.ctx, a1.ID, at(90*time.Second))
		wantErr(t, "Cancel of a paid order after reopen", err, surge.ErrNotCancellable)
		_, err = e.s.Pay(e.ctx, a4.ID, at(90*time.Second))
		wantErr(t, "Pay of an expired order after reopen", err, surge.ErrNotPayable)
		_, err = e.s.Cancel(e.ctx, a2.ID, at(90*time.Second))
		wantErr(t, "Cancel of a cancelled order after reopen", err, surge.ErrNotCancellable)

		// Pending holds expire on schedule, once.
		e.wantExpire(at(121*time.Second - time.Millisecond))
		e.wantExpire(at(121*time.Second), a1b, b1, b2)
		e.wantExpire(at(130*time.Second), a3)
		e.wantRemaining(a.ID, 10-2-3) // a1 (paid) and a5
		e.wantRemaining(b.ID, 2)

		want = e.snapshot()
		e.reopen()
		e.wantSnapshot(want)
		e.wantExpire(at(24*time.Hour), a5)
		e.wantExpire(at(24 * time.Hour))
		e.wantRemaining(a.ID, 8)
	})
}
