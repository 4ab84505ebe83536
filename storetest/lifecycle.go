package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

func testCancel(t *testing.T, h Harness) {
	t.Run("ReturnsUnits", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 4, 2)
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 2))
		other := e.reserveOne(s.ID, at(0), buy("u2", 1))
		out, _ := e.reserve(s.ID, at(0), buy("u1", 1))
		if out[0].Code != surge.CodeLimitReached {
			t.Fatalf("over the limit = %q, want limit_reached", out[0].Code)
		}
		got := e.cancel(o.ID, at(time.Second))
		want := withStatus(o, surge.OrderCancelled)
		if d := orderDiff(got, want); d != "" {
			t.Errorf("Cancel:\n%s", d)
		}
		if d := orderDiff(e.order(o.ID), want); d != "" {
			t.Errorf("Order after Cancel:\n%s", d)
		}
		e.wantRemaining(s.ID, 3)
		// The units are the user's to buy again, up to the limit.
		again := e.reserveOne(s.ID, at(2*time.Second), buy("u1", 2))
		if again.ID == o.ID {
			t.Errorf("new order reuses the cancelled id %s", o.ID)
		}
		e.wantRemaining(s.ID, 1)
		if d := orderDiff(e.order(other.ID), other); d != "" {
			t.Errorf("another user's order changed:\n%s", d)
		}
	})

	t.Run("Twice", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 4, 2)
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buy("u1", 2))
		e.cancel(o.ID, at(time.Second))
		_, err := e.s.Cancel(e.ctx, o.ID, at(2*time.Second))
		wantRefusal(t, "second Cancel", err, surge.ErrNotCancellable, "order "+o.ID+" is already cancelled")
		e.wantRemaining(s.ID, 4) // returned once, not twice
	})

	t.Run("Unknown", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 4, 2)
		e.createSale(s)
		e.reserveOne(s.ID, at(0), buy("u1", 1))
		_, err := e.s.Cancel(e.ctx, "o_missing", at(0))
		wantErr(t, "Cancel of an unknown order", err, surge.ErrOrderNotFound)
		_, err = e.s.Pay(e.ctx, "o_missing", at(0))
		wantErr(t, "Pay of an unknown order", err, surge.ErrOrderNotFound)
		_, err = e.s.Order(e.ctx, "o_missing")
		wantErr(t, "Order of an unknown order", err, surge.ErrOrderNotFound)
		e.wantRemaining(s.ID, 3)
	})
}

func testPay(t *testing.T, h Harness) {
	t.Run("KeepsUnits", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 3, 2)
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 2))
		got := e.pay(o.ID, at(time.Second))
		want := withStatus(o, surge.OrderPaid)
		if d := orderDiff(got, want); d != "" {
			t.Errorf("Pay:\n%s", d)
		}
		if d := orderDiff(e.order(o.ID), want); d != "" {
			t.Errorf("Order after Pay:\n%s", d)
		}
		e.wantRemaining(s.ID, 1)
		out, _ := e.reserve(s.ID, at(2*time.Second), buy("u1", 1))
		if out[0].Code != surge.CodeLimitReached {
			t.Errorf("paid units no longer count toward the limit: %q, want limit_reached", out[0].Code)
		}
		// A paid order is final: its hold no longer runs.
		e.wantExpire(at(24 * time.Hour))
		e.wantRemaining(s.ID, 1)
	})

	t.Run("Twice", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 3, 2)
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buy("u1", 1))
		e.pay(o.ID, at(time.Second))
		_, err := e.s.Pay(e.ctx, o.ID, at(2*time.Second))
		wantErr(t, "second Pay", err, surge.ErrNotPayable)
		_, err = e.s.Cancel(e.ctx, o.ID, at(2*time.Second))
		wantErr(t, "Cancel of a paid order", err, surge.ErrNotCancellable)
		if got := e.order(o.ID).Status; got != surge.OrderPaid {
			t.Errorf("status = %q, want paid", got)
		}
		e.wantRemaining(s.ID, 2)
	})
}

// testTransitions checks every action on every status: only a reserved
// order moves, and a refused action changes nothing.
func testTransitions(t *testing.T, h Harness) {
	cases := []struct {
		from surge.OrderStatus
		act  string // Cancel or Pay
		err  error  // nil: allowed
		to   surge.OrderStatus
	}{
		{surge.OrderReserved, "Cancel", nil, surge.OrderCancelled},
		{surge.OrderReserved, "Pay", nil, surge.OrderPaid},
		{surge.OrderPaid, "Cancel", surge.ErrNotCancellable, surge.OrderPaid},
		{surge.OrderPaid, "Pay", surge.ErrNotPayable, surge.OrderPaid},
		{surge.OrderCancelled, "Cancel", surge.ErrNotCancellable, surge.OrderCancelled},
		{surge.OrderCancelled, "Pay", surge.ErrNotPayable, surge.OrderCancelled},
		{surge.OrderExpired, "Cancel", surge.ErrNotCancellable, surge.OrderExpired},
		{surge.OrderExpired, "Pay", surge.ErrNotPayable, surge.OrderExpired},
	}
	for _, tc := range cases {
		name := tc.act
		t.Run(name+"_"+string(tc.from), func(t *testing.T) {
			e := newEnv(t, h)
			s := newSale(t, "s", 5, 2)
			e.createSale(s)
			o := e.reserveOne(s.ID, at(0), buy("u1", 2))
			switch tc.from {
			case surge.OrderPaid:
				e.pay(o.ID, at(time.Second))
			case surge.OrderCancelled:
				e.cancel(o.ID, at(time.Second))
			case surge.OrderExpired:
				e.wantExpire(o.ExpiresAt, o)
			}
			before := e.remaining(s.ID)
			now := o.ExpiresAt.Add(-time.Millisecond) // the last moment of the hold
			var (
				got surge.Order
				err error
			)
			if tc.act == "Cancel" {
				got, err = e.s.Cancel(e.ctx, o.ID, now)
			} else {
				got, err = e.s.Pay(e.ctx, o.ID, now)
			}
			want := withStatus(o, tc.to)
			if tc.err != nil {
				why := "is already " + string(tc.from)
				if tc.from == surge.OrderExpired {
					why = "expired: its hold ended at " + surge.FormatTime(o.ExpiresAt)
				}
				wantRefusal(t, name, err, tc.err, "order "+o.ID+" "+why)
			} else if err != nil {
				t.Fatalf("%s: %v", name, err)
			} else if d := orderDiff(got, want); d != "" {
				t.Errorf("%s returned:\n%s", name, d)
			}
			if d := orderDiff(e.order(o.ID), want); d != "" {
				t.Errorf("Order after %s:\n%s", name, d)
			}
			wantRem := before
			if tc.err == nil && !tc.to.Live() {
				wantRem += o.Quantity
			}
			e.wantRemaining(s.ID, wantRem)
		})
	}
}

// testHoldEnd: a hold ends at ExpiresAt whether or not Expire has run, so
// paying or cancelling from then on is refused, and the units come back
// exactly once.
func testHoldEnd(t *testing.T, h Harness) {
	for _, act := range []string{"Cancel", "Pay"} {
		for _, after := range []time.Duration{0, time.Millisecond, time.Hour} {
			t.Run(fmt.Sprintf("%s_%v", act, after), func(t *testing.T) {
				e := newEnv(t, h)
				s := newSale(t, "s", 5, 2)
				e.createSale(s)
				o := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 2))
				now := o.ExpiresAt.Add(after)
				ended := "order " + o.ID + " expired: its hold ended at " + surge.FormatTime(o.ExpiresAt)
				var err error
				if act == "Cancel" {
					_, err = e.s.Cancel(e.ctx, o.ID, now)
					wantRefusal(t, "Cancel at or after ExpiresAt", err, surge.ErrNotCancellable, ended)
				} else {
					_, err = e.s.Pay(e.ctx, o.ID, now)
					wantRefusal(t, "Pay at or after ExpiresAt", err, surge.ErrNotPayable, ended)
				}
				// The store may expire the order at once or leave it
				// to Expire; either way it ends expired, never paid
				// or cancelled, with its units back once.
				if st := e.order(o.ID).Status; st != surge.OrderReserved && st != surge.OrderExpired {
					t.Errorf("status after a refused %s = %q, want reserved or expired", act, st)
				}
				e.expire(now)
				if d := orderDiff(e.order(o.ID), withStatus(o, surge.OrderExpired)); d != "" {
					t.Errorf("Order after Expire:\n%s", d)
				}
				e.wantRemaining(s.ID, 5)
				e.wantExpire(now.Add(time.Hour))
				e.wantRemaining(s.ID, 5)
				e.wantReplay(s.ID, now, buyKey("u1", "k", 2), o)
			})
		}
	}
}

func testExpire(t *testing.T, h Harness) {
	t.Run("DueOnly", func(t *testing.T) {
		e := newEnv(t, h)
		a := newSale(t, "a", 10, 3)
		b := newSale(t, "b", 10, 3, holdFor(30))
		e.createSale(a, b)
		// a holds 60 s, b 30 s: due times interleave across sales.
		a0 := e.reserveOne(a.ID, at(0), buyKey("u1", "k", 2))
		paid := e.reserveOne(a.ID, at(0), buy("u2", 1))
		cancelled := e.reserveOne(a.ID, at(0), buy("u3", 1))
		a10 := e.reserveOne(a.ID, at(10*time.Second), buy("u4", 3))
		b30 := e.reserveOne(b.ID, at(30*time.Second), buy("u1", 1))
		b45 := e.reserveOne(b.ID, at(45*time.Second), buy("u2", 2))
		e.pay(paid.ID, at(time.Second))
		e.cancel(cancelled.ID, at(time.Second))
		e.wantRemaining(a.ID, 10-2-1-3)
		e.wantRemaining(b.ID, 7)

		e.wantExpire(at(hold - time.Millisecond))
		e.wantExpire(at(hold), a0, b30) // due exactly at ExpiresAt
		e.wantExpire(at(hold))          // exactly once
		e.wantRemaining(a.ID, 6)
		e.wantRemaining(b.ID, 8)
		e.wantExpire(at(80*time.Second), a10, b45)
		e.wantExpire(at(24 * time.Hour))
		e.wantRemaining(a.ID, 9) // only the paid unit is still held
		e.wantRemaining(b.ID, 10)

		for _, o := range []surge.Order{a0, a10, b30, b45} {
			if d := orderDiff(e.order(o.ID), withStatus(o, surge.OrderExpired)); d != "" {
				t.Errorf("Order(%s) after expiry:\n%s", o.ID, d)
			}
		}
		if got := e.order(paid.ID).Status; got != surge.OrderPaid {
			t.Errorf("paid order is %q, want paid", got)
		}
		if got := e.order(cancelled.ID).Status; got != surge.OrderCancelled {
			t.Errorf("cancelled order is %q, want cancelled", got)
		}
		// Expired units are the user's to buy again; the key still replays.
		e.reserveOne(a.ID, at(25*time.Hour), buy("u1", 2))
		e.wantReplay(a.ID, at(25*time.Hour), buyKey("u1", "k", 2), a0)
	})

	t.Run("Empty", func(t *testing.T) {
		e := newEnv(t, h)
		e.wantExpire(at(time.Hour))
		e.createSale(newSale(t, "s", 1, 1))
		e.wantExpire(at(time.Hour))
	})
}
