package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
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
		out, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: fmt.Sprintf("u%d", i), Quantity: 1}}, surge.At(t0))
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

// TestRefundsAheadBounded: the refunds kept for payments not recorded yet
// (refunds_ahead) were never dropped, so every refund whose payment never
// came (another of the account's charges, a test event) stayed for good.
// A refund kept past surge.RefundAheadKept is dropped when the next one is
// kept: what the table holds is bounded by the refunds of that window.
func TestRefundsAheadBounded(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := t.Context()
	keep := func(i int, now time.Time) {
		ev := surge.PaymentEvent{ID: fmt.Sprintf("re_%d", i), Type: surge.RefundSucceeded, RefundOf: fmt.Sprintf("pi_%d", i),
			AmountCents: 100, Currency: "usd", Created: now, Provider: "stripe"}
		if _, err := s.RecordPayment(ctx, ev, now); !errors.Is(err, surge.ErrOrderNotFound) {
			t.Fatalf("refund %s of payment %s not recorded: err %v, want order_not_found (kept)", ev.ID, ev.RefundOf, err)
		}
	}
	const old = 100
	for i := range old {
		keep(i, t0)
	}
	keep(old, t0.Add(surge.RefundAheadKept+time.Second))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM refunds_ahead`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d refunds kept at t0 for payments that never came, one more kept %v later: refunds_ahead holds %d rows; want 1 (those past %v dropped)",
			old, surge.RefundAheadKept+time.Second, n, surge.RefundAheadKept)
	}
}
