package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

func testOrders(t *testing.T, h Harness) {
	e := newEnv(t, h)
	a := newSale(t, "a", 10, 2)
	b := newSale(t, "b", 10, 2)
	empty := newSale(t, "empty", 10, 2)
	e.createSale(a, b, empty)
	// Interleaved across sales, batches and statuses.
	out, _ := e.reserve(a.ID, at(0), buy("u1", 1), buyKey("u2", "k", 2), buy("u1", 1))
	b1 := e.reserveOne(b.ID, at(0), buy("u1", 1))
	a4 := e.reserveOne(a.ID, at(time.Second), buy("u3", 1))
	b2 := e.reserveOne(b.ID, at(2*time.Second), buy("u2", 2))
	a1, a2, a3 := out[0].Order, out[1].Order, out[2].Order
	e.pay(a2.ID, at(3*time.Second))
	e.cancel(a3.ID, at(3*time.Second))
	e.cancel(b1.ID, at(3*time.Second))
	e.wantExpire(at(hold), a1)

	wantA := []surge.Order{
		withStatus(a1, surge.OrderExpired),
		withStatus(a2, surge.OrderPaid),
		withStatus(a3, surge.OrderCancelled),
		a4,
	}
	wantB := []surge.Order{withStatus(b1, surge.OrderCancelled), b2}

	t.Run("Order", func(t *testing.T) {
		e := e.on(t)
		for _, want := range append(slices.Clone(wantA), wantB...) {
			if d := orderDiff(e.order(want.ID), want); d != "" {
				t.Errorf("Order(%s):\n%s", want.ID, d)
			}
		}
	})
	t.Run("CreationOrderAnyStatus", func(t *testing.T) {
		e := e.on(t)
		if d := ordersDiff(e.orders(a.ID), wantA); d != "" {
			t.Errorf("Orders(a):\n%s", d)
		}
		if d := ordersDiff(e.orders(b.ID), wantB); d != "" {
			t.Errorf("Orders(b):\n%s", d)
		}
		if got := e.orders(empty.ID); len(got) != 0 {
			t.Errorf("Orders of a sale without orders = %v", got)
		}
	})
	t.Run("UnknownSale", func(t *testing.T) {
		calls := 0
		err := e.s.Orders(e.ctx, "nope", func(surge.Order) error { calls++; return nil })
		wantErr(t, "Orders of an unknown sale", err, surge.ErrSaleNotFound)
		if calls != 0 {
			t.Errorf("fn called %d times for an unknown sale", calls)
		}
	})
	t.Run("StopsOnError", func(t *testing.T) {
		stop := errors.New("stop")
		var seen []string
		err := e.s.Orders(e.ctx, a.ID, func(o surge.Order) error {
			seen = append(seen, o.ID)
			if len(seen) == 2 {
				return stop
			}
			return nil
		})
		wantErr(t, "Orders with a failing fn", err, stop)
		if want := []string{a1.ID, a2.ID}; !slices.Equal(seen, want) {
			t.Errorf("fn saw %v, want %v and then nothing", seen, want)
		}
	})
}
