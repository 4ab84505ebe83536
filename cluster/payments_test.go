package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
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
	name, cur, stock, limit, price := "pay", "EUR", int64(2*orders), int64(2), int64(500)
	sale, err := surge.NewSale(surge.SaleInput{ID: &name, Name: &name, Stock: &stock, PerUserLimit: &limit,
		PriceCents: &price, Currency: &cur}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	batch := make([]surge.Purchase, orders)
	for i := range batch {
		batch[i] = surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1}
	}
	out, _, err := a.Reserve(ctx, sale.ID, batch, now)
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
