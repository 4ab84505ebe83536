package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestPaymentOnTwoNodes: the provider delivers each event to two nodes at
// once (its retry racing the first delivery behind a load balancer), while
// a third goroutine cancels the order on one of them. Each event is
// applied once: exactly one answer is not a replay, both answers carry
// the same payment, and the order ends paid with that payment paid, or
// cancelled with it refund_due.
func TestPaymentOnTwoNodes(t *testing.T) {
	const orders = 20
	ns := namespace(t)
	a := openStore(t, ns, cluster.Config{NodeID: "a", NoExpiry: true})
	defer a.Close()
	b := openStore(t, ns, cluster.Config{NodeID: "b", NoExpiry: true})
	defer b.Close()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	sale := paidSale(t, a, 2*orders, now)
	price, cur := sale.PriceCents, sale.Currency
	batch := make([]surge.Purchase, orders)
	for i := range batch {
		batch[i] = surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1}
	}
	out, _, err := a.Reserve(ctx, sale.ID, batch, surge.At(now))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([][2]surge.PaymentResult, orders)
	for i, o := range out {
		ev := surge.PaymentEvent{ID: "evt_" + o.Order.ID, Type: surge.PaymentSucceeded, OrderID: o.Order.ID,
			AmountCents: price, Currency: cur, Created: now, Provider: "surge"}
		for n, s := range []*cluster.Store{a, b} {
			wg.Go(func() {
				r, err := s.RecordPayment(ctx, ev, now.Add(time.Second))
				if err != nil {
					t.Errorf("node %d: RecordPayment(%s): %v", n, ev.ID, err)
				}
				results[i][n] = r
			})
		}
		if i%2 == 0 {
			wg.Go(func() {
				if _, err := b.Cancel(ctx, o.Order.ID, now.Add(time.Second)); err != nil && !surge.HasCode(err, surge.CodeNotCancellable) {
					t.Errorf("Cancel(%s): %v", o.Order.ID, err)
				}
			})
		}
	}
	wg.Wait()
	recorded := map[string]surge.Payment{}
	if err := a.Payments(ctx, func(p surge.Payment) error { recorded[p.ID] = p; return nil }); err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		r := results[i]
		if r[0].Replay == r[1].Replay {
			t.Errorf("order %s: replays %v and %v, want exactly one applied", o.Order.ID, r[0].Replay, r[1].Replay)
		}
		if r[0].Payment.Status != r[1].Payment.Status {
			t.Errorf("order %s: the nodes answered %s and %s", o.Order.ID, r[0].Payment.Status, r[1].Payment.Status)
		}
		got, err := a.Order(ctx, o.Order.ID)
		if err != nil {
			t.Fatal(err)
		}
		p := recorded["evt_"+o.Order.ID]
		if !(got.Status == surge.OrderPaid && p.Status == surge.PaymentPaid) &&
			!(got.Status == surge.OrderCancelled && p.Status == surge.PaymentRefundDue) {
			t.Errorf("order %s ended %s with its payment %q", o.Order.ID, got.Status, p.Status)
		}
	}
	if len(recorded) != orders {
		t.Errorf("%d payments recorded, want %d", len(recorded), orders)
	}
}

// TestRepeatedPaymentIDIsAReplay: docs/payments.md, the event's id: "a
// repeated id is a replay", which "changes nothing and gets the answer the
// first delivery got". Embedded mode looks the id up first, so a repeat
// naming another order (a provider's event whose metadata was edited, a
// merchant reusing an id) answers the first payment, 200. Cluster mode
// looked the order up first: a repeat naming an order this shop does not
// have answered 404 order_not_found, and one naming another order answered
// the first payment with that other order.
func TestRepeatedPaymentIDIsAReplay(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{NoExpiry: true})
	defer s.Close()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	sale := paidSale(t, s, 10, now)
	price, cur := sale.PriceCents, sale.Currency
	out, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "alice", Quantity: 1}, {UserID: "bob", Quantity: 1}}, surge.At(now))
	if err != nil {
		t.Fatal(err)
	}
	a, b := out[0].Order, out[1].Order
	ev := surge.PaymentEvent{ID: "evt_1", Type: surge.PaymentSucceeded, OrderID: a.ID, AmountCents: price, Currency: cur,
		Created: now, Provider: "surge"}
	first, err := s.RecordPayment(ctx, ev, now.Add(time.Second))
	if err != nil || first.Payment.Status != surge.PaymentPaid {
		t.Fatalf("first delivery: %+v, %v", first, err)
	}
	for _, other := range []string{"o_06dqdpn802rtk6mhk9yf04d728", b.ID} {
		again := ev
		again.OrderID = other
		r, err := s.RecordPayment(ctx, again, now.Add(2*time.Second))
		if err != nil {
			t.Errorf("evt_1 again, naming order %s: %v; want the replay of the first delivery", other, err)
			continue
		}
		if !r.Replay || r.Payment.OrderID != a.ID || r.Order.ID != a.ID || r.Payment.Status != surge.PaymentPaid {
			t.Errorf("evt_1 again, naming order %s: replay %v, payment of %s %s, order %s; want the replay of the first (order %s, paid)",
				other, r.Replay, r.Payment.OrderID, r.Payment.Status, r.Order.ID, a.ID)
		}
	}
	if o, err := s.Order(ctx, b.ID); err != nil || o.Status != surge.OrderReserved {
		t.Errorf("order %s: %+v, %v; want it reserved, untouched", b.ID, o, err)
	}
}

// TestRefundAheadMeetsItsPayment: a refund naming only its payment (a
// Stripe Checkout payment's charge) and that payment, delivered at once
// to two nodes. Each looks for the other (the refund for the payment, to
// find its order; the payment for the refund kept for it) and would miss
// one not committed yet: the refund kept with no payment to take it, the
// payment refund_due for good. The payment's lock (taken here first, so
// that both are seen waiting on it) orders them, whichever goes first.
func TestRefundAheadMeetsItsPayment(t *testing.T) {
	ns := namespace(t)
	// The two wait on the test's lock as long as it takes both to get
	// there, however loaded the machine: no call gives up meanwhile.
	a := openStore(t, ns, cluster.Config{NodeID: "a", NoExpiry: true, CallTimeout: time.Minute})
	defer a.Close()
	b := openStore(t, ns, cluster.Config{NodeID: "b", NoExpiry: true, CallTimeout: time.Minute})
	defer b.Close()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	sale := paidSale(t, a, 10, now)
	price, cur := sale.PriceCents, sale.Currency
	out, _, err := a.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "alice", Quantity: 1}}, surge.At(now))
	if err != nil {
		t.Fatal(err)
	}
	o := out[0].Order
	if _, err := a.Cancel(ctx, o.ID, now); err != nil {
		t.Fatal(err)
	}
	const pi = "pi_race"
	hold := servicetest.Conn(t, ns)
	var holder int32
	if err := hold.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock(hashtextextended($1, 0))) l`, pi).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	refund := surge.PaymentEvent{ID: "evt_refund", Type: surge.RefundSucceeded, RefundOf: pi, AmountCents: price, Currency: cur,
		Created: now, Provider: "stripe"}
	payment := surge.PaymentEvent{ID: pi, Type: surge.PaymentSucceeded, OrderID: o.ID, AmountCents: price, Currency: cur,
		Created: now, Provider: "stripe"}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []struct {
		s  *cluster.Store
		ev surge.PaymentEvent
	}{{a, refund}, {b, payment}} {
		wg.Go(func() { _, errs[i] = c.s.RecordPayment(ctx, c.ev, now.Add(time.Second)) })
	}
	look := servicetest.Conn(t, ns)
	eventually(t, 30*time.Second, "the refund and the payment wait for the payment's lock", func() error {
		var n int
		if err := look.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'
			AND pg_blocking_pids(pid) && $1::int[]`, []int32{holder}).Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("%d waiting", n)
		}
		return nil
	})
	if _, err := hold.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, pi); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if errs[0] != nil && !errors.Is(errs[0], surge.ErrOrderNotFound) || errs[1] != nil {
		t.Fatalf("refund: %v; payment: %v; want the refund recorded or kept, the payment recorded", errs[0], errs[1])
	}
	got := map[string]surge.Payment{}
	if err := a.Payments(ctx, func(p surge.Payment) error { got[p.ID] = p; return nil }); err != nil {
		t.Fatal(err)
	}
	if got[pi].Status != surge.PaymentRefunded || got[refund.ID].Status != surge.PaymentRefund || got[refund.ID].Settles != pi {
		t.Errorf("payment %s of cancelled order %s and its refund %s, at once on two nodes (the refund %v): payment %q, refund %q settling %q; "+
			"want the payment refunded and the refund settling it", pi, o.ID, refund.ID, errs[0], got[pi].Status, got[refund.ID].Status, got[refund.ID].Settles)
	}
}

// paidSale creates the sale "pay" on s: stock units of 5.00 EUR, two a
// buyer.
func paidSale(t *testing.T, s *cluster.Store, stock int64, now time.Time) surge.Sale {
	t.Helper()
	name, cur, limit, price := "pay", "EUR", int64(2), int64(500)
	sale, err := surge.NewSale(surge.SaleInput{ID: &name, Name: &name, Stock: &stock, PerUserLimit: &limit,
		PriceCents: &price, Currency: &cur}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(context.Background(), sale); err != nil {
		t.Fatal(err)
	}
	return sale
}
