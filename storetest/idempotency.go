package storetest

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

func testIdempotency(t *testing.T, h Harness) {
	t.Run("LaterBatch", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 10, 5)
		e.createSale(s)
		first := e.reserveOne(s.ID, at(0), buyKey("u1", "k1", 2))
		e.wantKey(s.ID, "u1", "k1", first)
		// A replay answers the first order whenever it comes, and
		// reserves nothing; the key with another quantity is refused.
		e.wantReplay(s.ID, at(time.Second), buyKey("u1", "k1", 2), first)
		e.wantMismatch(s.ID, at(time.Minute), buyKey("u1", "k1", 1))
		e.wantReplay(s.ID, at(time.Minute), buyKey("u1", "k1", 2), first)
		e.wantRemaining(s.ID, 8)
		if n := len(e.orders(s.ID)); n != 1 {
			t.Errorf("%d orders, want 1", n)
		}
		if _, st := e.s.LookupKey(s.ID, "u1", "k2"); st != surge.KeyUnknown {
			t.Errorf("LookupKey of an unused key = %v, want KeyUnknown", st)
		}
		if _, st := e.s.LookupKey(s.ID, "u2", "k1"); st != surge.KeyUnknown {
			t.Errorf("LookupKey of another user's key = %v, want KeyUnknown", st)
		}
		if _, st := e.s.LookupKey("nope", "u1", "k1"); st != surge.KeyUnknown {
			t.Errorf("LookupKey in an unknown sale = %v, want KeyUnknown", st)
		}
	})

	t.Run("SameBatch", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 10, 3)
		e.createSale(s)
		out, rem := e.reserve(s.ID, at(0), buyKey("u1", "k", 1), buy("u2", 1), buyKey("u1", "k", 1), buyKey("u1", "k", 1))
		if out[0].Code != surge.CodeReserved || out[0].Replay {
			t.Fatalf("first = %+v, want a new reservation", out[0])
		}
		for _, i := range []int{2, 3} {
			if out[i].Code != surge.CodeReserved || !out[i].Replay {
				t.Errorf("out[%d] = code %q replay %v, want a replay", i, out[i].Code, out[i].Replay)
			}
			if d := orderDiff(out[i].Order, out[0].Order); d != "" {
				t.Errorf("out[%d] differs from the first:\n%s", i, d)
			}
		}
		if rem != 8 {
			t.Errorf("remaining = %d, want 8", rem)
		}
		if d := ordersDiff(e.orders(s.ID), []surge.Order{out[0].Order, out[1].Order}); d != "" {
			t.Errorf("Orders:\n%s", d)
		}
		e.wantKey(s.ID, "u1", "k", out[0].Order)
	})

	t.Run("IndependentUsersAndNoKey", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 10, 2)
		e.createSale(s)
		// The key belongs to the user; without a key nothing is deduplicated.
		out, rem := e.reserve(s.ID, at(0), buyKey("u1", "k", 1), buyKey("u2", "k", 1), buy("u3", 1), buy("u3", 1))
		ids := map[string]bool{}
		for i, o := range out {
			if o.Code != surge.CodeReserved || o.Replay {
				t.Errorf("out[%d] = code %q replay %v, want a new reservation", i, o.Code, o.Replay)
			}
			ids[o.Order.ID] = true
		}
		if len(ids) != 4 || rem != 6 {
			t.Errorf("%d distinct orders, remaining %d; want 4 and 6", len(ids), rem)
		}
		e.wantKey(s.ID, "u1", "k", out[0].Order)
		e.wantKey(s.ID, "u2", "k", out[1].Order)
	})

	t.Run("AfterSoldOutEndedAndCancel", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 1, 1, endsAt(at(time.Hour)))
		e.createSale(s)
		first := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 1))
		out, _ := e.reserve(s.ID, at(time.Second), buyKey("u2", "k", 1))
		if out[0].Code != surge.CodeSoldOut {
			t.Fatalf("another buyer = %q, want sold_out", out[0].Code)
		}
		e.wantReplay(s.ID, at(time.Second), buyKey("u1", "k", 1), first)
		e.wantReplay(s.ID, at(2*time.Hour), buyKey("u1", "k", 1), first)
		// A replay is the first answer, even once the order moved on.
		e.cancel(first.ID, at(30*time.Second))
		e.wantReplay(s.ID, at(time.Minute), buyKey("u1", "k", 1), first)
		e.wantKey(s.ID, "u1", "k", first)
		e.wantRemaining(s.ID, 1)
		if n := len(e.orders(s.ID)); n != 1 {
			t.Errorf("%d orders, want 1", n)
		}
	})

	t.Run("Mismatch", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 3, 3, endsAt(at(time.Hour)))
		e.createSale(s)
		// In one batch: the first request is reserved, the same key with
		// another quantity is refused, the same request replays.
		out, rem := e.reserve(s.ID, at(0), buyKey("u1", "k", 1), buyKey("u1", "k", 2), buyKey("u1", "k", 1))
		if out[0].Code != surge.CodeReserved || out[0].Replay {
			t.Fatalf("first = %+v, want a new reservation", out[0])
		}
		first := out[0].Order
		if out[1].Code != surge.CodeIdempotencyMismatch || out[1].Replay {
			t.Errorf("same batch, other quantity = code %q replay %v, want idempotency_mismatch", out[1].Code, out[1].Replay)
		}
		if out[2].Code != surge.CodeReserved || !out[2].Replay || orderDiff(out[2].Order, first) != "" {
			t.Errorf("same batch, same request = %+v, want a replay of %+v", out[2], first)
		}
		if rem != 2 {
			t.Errorf("remaining = %d, want 2", rem)
		}
		// Later, sold out, cancelled, ended, reopened: always refused,
		// while another user's same key is another purchase.
		e.wantMismatch(s.ID, at(time.Second), buyKey("u1", "k", 2))
		e.reserveOne(s.ID, at(time.Second), buyKey("u2", "k", 2))
		e.wantMismatch(s.ID, at(2*time.Second), buyKey("u1", "k", 2))
		e.cancel(first.ID, at(3*time.Second))
		e.wantMismatch(s.ID, at(4*time.Second), buyKey("u1", "k", 2))
		e.wantMismatch(s.ID, at(2*time.Hour), buyKey("u1", "k", 3))
		e.reopen()
		e.wantMismatch(s.ID, at(2*time.Hour), buyKey("u1", "k", 2))
		e.wantReplay(s.ID, at(2*time.Hour), buyKey("u1", "k", 1), first)
		if n := len(e.orders(s.ID)); n != 2 {
			t.Errorf("%d orders, want 2", n)
		}
	})

	// A key answers its first reservation forever: long after the order
	// ended (a store may keep old keys out of memory, never forget them),
	// sold out, ended, and after a restart.
	t.Run("LongAfter", func(t *testing.T) {
		e := newEnv(t, h)
		open := newSale(t, "open", 2, 2)
		ended := newSale(t, "ended", 2, 2, endsAt(at(48*time.Hour)))
		e.createSale(open, ended)
		cancelled := e.reserveOne(open.ID, at(0), buyKey("u1", "k1", 1))
		expired := e.reserveOne(open.ID, at(0), buyKey("u1", "k2", 1))
		e.cancel(cancelled.ID, at(time.Second))
		e.wantExpire(expired.ExpiresAt, expired)
		inEnded := e.reserveOne(ended.ID, at(0), buyKey("u1", "k1", 2))
		e.cancel(inEnded.ID, at(time.Second))
		late := at(30 * 24 * time.Hour)
		e.wantExpire(at(72 * time.Hour))
		e.wantExpire(late)
		check := func() {
			t.Helper()
			e.wantReplay(open.ID, late, buyKey("u1", "k1", 1), cancelled)
			e.wantReplay(open.ID, late, buyKey("u1", "k2", 1), expired)
			e.wantMismatch(open.ID, late, buyKey("u1", "k1", 2))
			e.wantReplay(ended.ID, late, buyKey("u1", "k1", 2), inEnded)
			e.wantMismatch(ended.ID, late, buyKey("u1", "k1", 1))
		}
		check()
		e.wantRemaining(open.ID, 2)
		// Sold out: the old keys still replay, and their replays (one
		// batch with a new key) take nothing.
		out, _ := e.reserve(open.ID, late, buyKey("u1", "k1", 1), buyKey("u2", "new", 2), buyKey("u1", "k2", 1))
		if !out[0].Replay || !out[2].Replay || out[1].Code != surge.CodeReserved || out[1].Replay {
			t.Errorf("replays around a new order = %+v", out)
		}
		e.wantRemaining(open.ID, 0)
		check()
		e.reopen()
		check()
		e.wantKey(open.ID, "u2", "new", out[1].Order)
		if n := len(e.orders(open.ID)); n != 3 {
			t.Errorf("%d orders, want 3", n)
		}
		if n := len(e.orders(ended.ID)); n != 1 {
			t.Errorf("%d orders in the ended sale, want 1", n)
		}
	})

	t.Run("AfterReopen", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 3, 1)
		e.createSale(s)
		first := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 1))
		e.reopen()
		e.wantKey(s.ID, "u1", "k", first)
		e.wantReplay(s.ID, at(time.Second), buyKey("u1", "k", 1), first)
		e.wantRemaining(s.ID, 2)
	})
}
