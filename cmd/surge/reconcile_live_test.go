package main

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/reconcile"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

// midway is the PostgreSQL source surge reconcile opens, with the cluster
// taking a webhook and a purchase while the reconciliation reads (after
// the payments, before the sales and orders): what a serving cluster does.
type midway struct {
	reconcile.Source
	between, afterSales func()
}

func (m midway) Sales(ctx context.Context) ([]reconcile.Sale, error) {
	s, err := m.Source.Sales(ctx)
	m.afterSales()
	return s, err
}

func (m midway) Payments(ctx context.Context, fn func(surge.Payment) error) error {
	err := m.Source.Payments(ctx, fn)
	m.between()
	return err
}

// TestReconcileClusterWhileServing: surge reconcile --postgres-url runs
// against a cluster that serves. A payment and a purchase that commit
// while it reads leave the store consistent at every instant, so the
// report of a settlement holding every payment must be clean; reading
// payments, sold counts and orders at different instants reports an
// order "paid but Surge recorded no payment that paid it" and a
// stock_mismatch that never existed.
func TestReconcileClusterWhileServing(t *testing.T) {
	ns := servicetest.Namespace(t)
	st, err := cluster.Open(context.Background(), servicetest.RedisURL(), servicetest.PostgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	if err != nil {
		t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
	}
	defer st.Close()
	reconcileWhileServing(t, st, "", servicetest.PostgresURL()+"&search_path="+ns)
}

// TestReconcileEmbeddedWhileServing: the same against a serving data
// directory, which docs/payments.md says surge reconcile reads while it serves.
func TestReconcileEmbeddedWhileServing(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), dir, sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reconcileWhileServing(t, st, dir, "")
}

func reconcileWhileServing(t *testing.T, st payStore, dir, url string) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	sale, price, cur := pricedSale(t, st, now)
	out, _, err := st.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u1", Quantity: 1}, {UserID: "u2", Quantity: 1}}, surge.At(now))
	if err != nil || out[0].Err != nil || out[1].Err != nil {
		t.Fatalf("reserve: %v %+v", err, out)
	}
	pay := func(id string, o surge.Order) {
		t.Helper()
		r, err := st.RecordPayment(ctx, surge.PaymentEvent{ID: id, Type: surge.PaymentSucceeded, OrderID: o.ID,
			AmountCents: price, Currency: cur, Created: now, Provider: "surge"}, now.Add(time.Second))
		if err != nil || r.Payment.Status != surge.PaymentPaid {
			t.Fatalf("pay %s: %v %s", o.ID, err, r.Payment.Status)
		}
	}
	pay("evt_1", out[0].Order)
	rows := []reconcile.Row{
		{PaymentID: "evt_1", OrderID: out[0].Order.ID, AmountCents: price, Currency: cur, Status: reconcile.Settled},
	}
	src, closeSrc, err := openSource(ctx, dir, url)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSrc()
	rep, err := reconcile.Run(ctx, midway{src, func() {
		// The provider's webhook for evt_2 reaches a node, and a buyer
		// reserves, while surge reconcile is reading.
		pay("evt_2", out[1].Order)
	}, func() {
		if _, _, err := st.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u3", Quantity: 2}}, surge.At(now)); err != nil {
			t.Fatal(err)
		}
	}}, rows)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Mismatches {
		t.Errorf("false mismatch of a consistent store: %s %s %s: %s", m.Kind, m.PaymentID, m.OrderID, m.Detail)
	}
	// Run again, the cluster at rest: evt_2 is in Surge now, all clean.
	rows = append(rows, reconcile.Row{PaymentID: "evt_2", OrderID: out[1].Order.ID, AmountCents: price, Currency: cur, Status: reconcile.Settled})
	src, closeSrc2, err := openSource(ctx, dir, url)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSrc2()
	rep, err = reconcile.Run(ctx, src, rows)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Mismatches {
		t.Errorf("at rest: %s %s %s: %s", m.Kind, m.PaymentID, m.OrderID, m.Detail)
	}
}

// TestReconcileRefundOfPaidOrder: a paid order refunded at the provider.
// Surge records the refund (refund_unexpected, docs/payments.md) and the
// settlement lists that refund as refunded. refund_not_in_surge ("the
// settlement says refunded, Surge has no refund for it") is false for the
// refund itself: Surge has it, and refund_unexpected already reports it.
func TestReconcileRefundOfPaidOrder(t *testing.T) {
	ns := servicetest.Namespace(t)
	ctx := context.Background()
	st, err := cluster.Open(ctx, servicetest.RedisURL(), servicetest.PostgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	if err != nil {
		t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	o, price, cur := reservedOrder(t, st, now)
	recordPayments(t, st, now.Add(time.Second),
		surge.PaymentEvent{ID: "pi_1", Type: surge.PaymentSucceeded, OrderID: o.ID, AmountCents: price, Currency: cur, Created: now, Provider: "surge"},
		surge.PaymentEvent{ID: "re_1", Type: surge.RefundSucceeded, OrderID: o.ID, AmountCents: price, Currency: cur, Created: now, Provider: "surge"})
	src, closeSrc, err := openSource(ctx, "", servicetest.PostgresURL()+"&search_path="+ns)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSrc()
	rep, err := reconcile.Run(ctx, src, []reconcile.Row{
		{PaymentID: "pi_1", OrderID: o.ID, AmountCents: price, Currency: cur, Status: reconcile.Settled},
		{PaymentID: "re_1", OrderID: o.ID, AmountCents: price, Currency: cur, Status: reconcile.Refunded},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Mismatches {
		t.Logf("%s %s: %s", m.Kind, m.PaymentID, m.Detail)
		if m.Kind == reconcile.RefundNotInSurge && m.PaymentID == "re_1" {
			t.Errorf("refund_not_in_surge for a refund Surge recorded: %s", m.Detail)
		}
	}
}

// reservedOrder creates pricedSale in st and reserves one unit of it for
// buyer u1.
func reservedOrder(t *testing.T, st surge.Store, now time.Time) (o surge.Order, price int64, currency string) {
	t.Helper()
	sale, price, currency := pricedSale(t, st, now)
	out, _, err := st.Reserve(context.Background(), sale.ID, []surge.Purchase{{UserID: "u1", Quantity: 1}}, surge.At(now))
	if err != nil || out[0].Err != nil {
		t.Fatalf("reserve: %v %+v", err, out)
	}
	return out[0].Order, price, currency
}

// pricedSale creates sale "s" in st: 10 units, 2 per buyer, at 10.00 EUR.
func pricedSale(t *testing.T, st surge.Store, now time.Time) (sale surge.Sale, price int64, currency string) {
	t.Helper()
	name, cur, stock, limit, cents := "s", "EUR", int64(10), int64(2), int64(1000)
	sale, err := surge.NewSale(surge.SaleInput{ID: &name, Name: &name, Stock: &stock, PerUserLimit: &limit,
		PriceCents: &cents, Currency: &cur}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSale(context.Background(), sale); err != nil {
		t.Fatal(err)
	}
	return sale, cents, cur
}
