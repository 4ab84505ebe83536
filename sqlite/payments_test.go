package sqlite_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// pricedSale is a sale at price cents a unit.
func pricedSale(t *testing.T, id string, stock, limit, price int64) surge.Sale {
	t.Helper()
	name, cur := "Sale "+id, "USD"
	s, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, PriceCents: &price, Currency: &cur}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRefundDueEventRacingCancel: a payment that arrives while a cancel of
// its order commits is recorded refund_due (the payment found the order
// cancelled); its refund_due event must carry the order as the payment
// found it (docs/events.md), never "reserved" with its hold still running,
// which says the order was payable.
func TestRefundDueEventRacingCancel(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	ctx := t.Context()
	const n = 200
	sale := pricedSale(t, "s", n, 1, 100)
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Second)
	var bad, raced int
	for i := range n {
		out, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: fmt.Sprintf("u%d", i), Quantity: 1}}, t0)
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Fatalf("Reserve: %v %+v", err, out)
		}
		o := out[0].Order
		var wg sync.WaitGroup
		var r surge.PaymentResult
		var perr error
		wg.Go(func() { _, _ = s.Cancel(ctx, o.ID, now) })
		wg.Go(func() {
			r, perr = s.RecordPayment(ctx, surge.PaymentEvent{ID: "p" + o.ID, Type: surge.PaymentSucceeded, OrderID: o.ID,
				AmountCents: 100, Currency: "USD", Created: now, Provider: "surge"}, now)
		})
		wg.Wait()
		if perr != nil {
			t.Fatal(perr)
		}
		if r.Payment.Status != surge.PaymentRefundDue {
			continue // the payment won: paid, the cancel refused
		}
		raced++
		if r.Order.Status != surge.OrderCancelled && raced <= 3 {
			t.Errorf("payment %s recorded refund_due, answering its order %s", r.Payment.ID, r.Order.Status)
		}
	}
	evs, err := s.PendingEvents(ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Kind == surge.EventRefundDue && e.Order.Status != surge.OrderCancelled {
			bad++
			if bad <= 3 {
				t.Errorf("event %s (seq %d): the order %s with its hold running until %s, but the payment found it cancelled",
					e.ID(), e.Seq, e.Order.Status, e.Order.ExpiresAt.Format(time.RFC3339))
			}
		}
	}
	t.Logf("%d of %d payments lost the race to the cancel; %d of their refund_due events carry a wrong status", raced, n, bad)
	if raced == 0 {
		t.Fatalf("no payment of %d lost the race to its cancel: the test proved nothing", n)
	}
}
