package storetest

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

func testReserve(t *testing.T, h Harness) {
	t.Run("Fields", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s1", 10, 3, holdFor(90))
		e.createSale(s)
		now := at(2*time.Hour + 1500*time.Microsecond + 7).In(time.FixedZone("X", -7200))
		created := at(2*time.Hour + time.Millisecond)
		out, rem := e.reserve(s.ID, now, buyKey("alice", "k-1", 2), buy("bob", 1), buy("carol", 3))
		if rem != 4 {
			t.Errorf("remaining = %d, want 4", rem)
		}
		want := []surge.Order{
			{SaleID: s.ID, UserID: "alice", Quantity: 2, IdempotencyKey: "k-1"},
			{SaleID: s.ID, UserID: "bob", Quantity: 1},
			{SaleID: s.ID, UserID: "carol", Quantity: 3},
		}
		ids := map[string]bool{}
		for i, o := range out {
			if o.Code != surge.CodeReserved || o.Replay {
				t.Fatalf("out[%d] = code %q replay %v, want a new reservation", i, o.Code, o.Replay)
			}
			if !surge.ValidID(o.Order.ID) {
				t.Errorf("out[%d]: order id %q is not a valid id", i, o.Order.ID)
			}
			if ids[o.Order.ID] {
				t.Errorf("out[%d]: order id %q answered twice", i, o.Order.ID)
			}
			ids[o.Order.ID] = true
			w := want[i]
			w.ID = o.Order.ID
			w.Status = surge.OrderReserved
			w.CreatedAt = created
			w.ExpiresAt = created.Add(90 * time.Second)
			if d := orderDiff(o.Order, w); d != "" {
				t.Errorf("out[%d].Order:\n%s", i, d)
			}
			if d := orderDiff(e.order(o.Order.ID), w); d != "" {
				t.Errorf("Order(%s):\n%s", o.Order.ID, d)
			}
		}
		e.wantRemaining(s.ID, 4)
	})

	type step struct {
		p    surge.Purchase
		code surge.Code
		left int64 // Outcome.Remaining, for sold_out
	}
	type batch struct {
		now       time.Time
		steps     []step
		remaining int64
	}
	r := func(p surge.Purchase) step { return step{p: p, code: surge.CodeReserved} }
	rej := func(p surge.Purchase, c surge.Code) step { return step{p: p, code: c} }
	soldOut := func(p surge.Purchase, left int64) step { return step{p: p, code: surge.CodeSoldOut, left: left} }

	cases := []struct {
		name    string
		sale    func(t testing.TB) surge.Sale
		batches []batch
	}{{
		name: "InStock",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 5, 2) },
		batches: []batch{
			{at(0), []step{r(buy("u1", 2)), r(buy("u2", 1))}, 2},
			{at(time.Minute), []step{r(buy("u3", 2))}, 0},
		},
	}, {
		name: "SoldOut",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 3, 3) },
		batches: []batch{
			{at(0), []step{r(buy("u1", 2))}, 1},
			{at(0), []step{soldOut(buy("u2", 2), 1), soldOut(buy("u3", 3), 1), r(buy("u2", 1))}, 0},
			{at(time.Second), []step{soldOut(buy("u3", 1), 0), soldOut(buy("u1", 1), 0)}, 0},
		},
	}, {
		name: "LimitReached",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 10, 3) },
		batches: []batch{
			{at(0), []step{r(buy("u1", 2)), rej(buy("u1", 2), surge.CodeLimitReached)}, 8},
			{at(time.Second), []step{
				rej(buy("u1", 3), surge.CodeLimitReached), r(buy("u1", 1)),
				rej(buy("u1", 1), surge.CodeLimitReached), r(buy("u2", 3)),
			}, 4},
			{at(time.Minute), []step{rej(buy("u2", 1), surge.CodeLimitReached), r(buy("u3", 1))}, 3},
		},
	}, {
		// The same purchases decide differently in another order:
		// decisions apply one after the other within a batch.
		name: "InOrderSmallFirst",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 2, 2) },
		batches: []batch{
			{at(0), []step{r(buy("a", 1)), soldOut(buy("b", 2), 1), r(buy("c", 1)), soldOut(buy("d", 1), 0)}, 0},
		},
	}, {
		name: "InOrderBigFirst",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 2, 2) },
		batches: []batch{
			{at(0), []step{r(buy("b", 2)), soldOut(buy("a", 1), 0), soldOut(buy("c", 1), 0)}, 0},
		},
	}, {
		name: "NotStarted",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 5, 1, startsAt(at(time.Hour))) },
		batches: []batch{
			{at(0), []step{rej(buy("u1", 1), surge.CodeNotStarted)}, 5},
			{at(time.Hour - time.Millisecond), []step{rej(buy("u1", 1), surge.CodeNotStarted), rej(buy("u2", 1), surge.CodeNotStarted)}, 5},
			{at(time.Hour), []step{r(buy("u1", 1))}, 4},
		},
	}, {
		name: "Ended",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 5, 1, endsAt(at(time.Hour))) },
		batches: []batch{
			{at(time.Hour - time.Millisecond), []step{r(buy("u1", 1))}, 4},
			{at(time.Hour), []step{rej(buy("u2", 1), surge.CodeEnded)}, 4},
			{at(48 * time.Hour), []step{rej(buy("u3", 1), surge.CodeEnded)}, 4},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, h)
			s := tc.sale(t)
			e.createSale(s)
			var live int64
			for bi, b := range tc.batches {
				ps := make([]surge.Purchase, len(b.steps))
				for i, st := range b.steps {
					ps[i] = st.p
				}
				out, rem := e.reserve(s.ID, b.now, ps...)
				for i, st := range b.steps {
					o := out[i]
					if o.Code != st.code || o.Replay {
						t.Errorf("batch %d, %+v: code %q replay %v, want %q", bi, st.p, o.Code, o.Replay, st.code)
						continue
					}
					switch st.code {
					case surge.CodeReserved:
						live += st.p.Quantity
						if o.Order.UserID != st.p.UserID || o.Order.Quantity != st.p.Quantity || o.Order.SaleID != s.ID {
							t.Errorf("batch %d, %+v: order %+v does not match the purchase", bi, st.p, o.Order)
						}
					case surge.CodeSoldOut:
						if o.Remaining != st.left {
							t.Errorf("batch %d, %+v: sold_out Remaining = %d, want %d", bi, st.p, o.Remaining, st.left)
						}
					}
				}
				if rem != b.remaining {
					t.Errorf("batch %d: remaining = %d, want %d", bi, rem, b.remaining)
				}
				e.wantRemaining(s.ID, b.remaining)
			}
			// Only reservations made orders, and they hold exactly the
			// units the stock lost.
			var held int64
			for _, o := range e.orders(s.ID) {
				held += o.Quantity
			}
			if held != live || s.Stock-held != e.remaining(s.ID) {
				t.Errorf("orders hold %d units, reservations %d, stock %d, remaining %d", held, live, s.Stock, e.remaining(s.ID))
			}
		})
	}

	t.Run("UnknownSale", func(t *testing.T) {
		e := newEnv(t, h)
		e.createSale(newSale(t, "known", 5, 1))
		_, _, err := e.s.Reserve(e.ctx, "unknown", []surge.Purchase{buy("u1", 1)}, surge.At(at(0)))
		wantErr(t, "Reserve of an unknown sale", err, surge.ErrSaleNotFound)
		_, err = e.s.Remaining(e.ctx, "unknown")
		wantErr(t, "Remaining of an unknown sale", err, surge.ErrSaleNotFound)
		e.wantRemaining("known", 5)
	})
}
