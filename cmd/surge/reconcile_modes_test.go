package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/reconcile"
	"github.com/surgehq/surge/servicetest"
)

// TestReconcileSameInBothModes: docs/payments.md gives one set of rules
// for both stores, so the same events against the embedded data directory
// and against the cluster's PostgreSQL must reconcile to the same report
// for the same settlement: every kind of payment the webhook records (paid,
// amount_mismatch refunded in part, refund_due refunded in part,
// refund_unexpected, failed, manual, a refund delivered before the payment
// it names, a payment past its order's hold) and a settlement that
// mismatches each in its own way.
func TestReconcileSameInBothModes(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	dir, embedded := openBooks(t)
	defer embedded.Close()
	embeddedIDs := modesData(t, embedded, now)

	ns := servicetest.Namespace(t)
	clustered, err := cluster.Open(context.Background(), servicetest.RedisURL(), servicetest.PostgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	if err != nil {
		t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
	}
	defer clustered.Close()
	clusterIDs := modesData(t, clustered, now)

	const settlement = "payment_id,order_id,amount,currency,status\n" +
		"evt_paid,ORDER1,10.00,EUR,succeeded\n" +
		"evt_fail,ORDER1,10.00,EUR,failed\n" +
		"evt_mismatch,ORDER2,30.00,EUR,succeeded\n" +
		"evt_late,ORDER3,10.00,EUR,succeeded\n" +
		"evt_step,ORDER3,4.00,EUR,refunded\n" +
		"evt_5,ORDER5,9.99,EUR,succeeded\n" +
		"evt_unexpected,ORDER5,10.00,EUR,refunded\n" +
		"evt_past_hold,ORDER6,10.00,EUR,succeeded\n" +
		"pi_7,ORDER7,10.00,EUR,succeeded\n" +
		"evt_ghost,,5.00,EUR,succeeded\n"
	reports := map[string][]string{}
	for _, m := range []struct {
		name string
		ids  map[string]string
		args []string
	}{
		{"embedded", embeddedIDs, []string{"--data-dir", dir}},
		{"cluster", clusterIDs, []string{"--postgres-url", servicetest.PostgresURL() + "&search_path=" + ns}},
	} {
		code, rep, stderr := runReconcile(t, append(m.args, "--settlement", writeSettlement(t, withIDs(settlement, m.ids)))...)
		if code != 1 {
			t.Errorf("%s: exit status %d, want 1 (stderr %s)", m.name, code, stderr)
		}
		// The order ids are each store's own: named back as the
		// settlement names them.
		names := map[string]string{}
		for name, id := range m.ids {
			names[id] = name
		}
		lines := []string{strings.Join([]string{"rows", itoa(int64(rep.SettlementRows)), "payments", itoa(int64(rep.Payments)),
			"orders", itoa(int64(rep.Orders)), "sales", itoa(int64(rep.Sales))}, " ")}
		for _, x := range rep.Mismatches {
			line := strings.Join([]string{x.Kind, x.PaymentID, x.OrderID, x.SaleID, x.Detail}, " | ")
			for id, name := range names {
				line = strings.ReplaceAll(line, id, name)
			}
			lines = append(lines, line)
		}
		reports[m.name] = lines
	}
	t.Logf("report:\n  %s", strings.Join(reports["embedded"], "\n  "))
	if !slices.Equal(reports["embedded"], reports["cluster"]) {
		t.Errorf("the same books reconcile otherwise in the two modes:\nembedded:\n  %s\ncluster:\n  %s",
			strings.Join(reports["embedded"], "\n  "), strings.Join(reports["cluster"], "\n  "))
	}
	// Each way the settlement mismatches is reported, in both.
	var kinds []string
	for _, line := range reports["embedded"][1:] {
		kinds = append(kinds, strings.SplitN(line, " | ", 2)[0])
	}
	for _, want := range []string{reconcile.AmountDiffers, reconcile.NotApplied, reconcile.PaidNotInSurge,
		reconcile.RefundDue, reconcile.RefundUnexpected} {
		if !slices.Contains(kinds, want) {
			t.Errorf("no %s in the report %q", want, kinds)
		}
	}
}

// modesData records in st, at now, sale s (10 units at 10.00 EUR, 2 a
// buyer, a hold of 15 minutes): ORDER1 paid by evt_paid after the failed
// attempt evt_fail; ORDER2 (2 units) paid 30.00 by evt_mismatch
// (amount_mismatch), 5.00 of it refunded; ORDER3 cancelled, then paid by
// evt_late (refund_due), 4.00 of it refunded by evt_step; ORDER4 paid by
// the operator; ORDER5 paid by evt_5 and refunded at the provider
// (evt_unexpected); ORDER6 paid by evt_past_hold after its hold ran out,
// before any expiry (refund_due); ORDER7 cancelled, its Stripe refund
// evt_ahead (naming only pi_7) delivered before its payment pi_7; ORDER8
// still reserved. It returns the placeholders' order ids.
func modesData(t *testing.T, st payStore, now time.Time) map[string]string {
	t.Helper()
	ctx := context.Background()
	sale, price, cur := pricedSale(t, st, now)
	var purchases []surge.Purchase
	for i := range 8 {
		q := int64(1)
		if i == 1 {
			q = 2
		}
		purchases = append(purchases, surge.Purchase{UserID: "u" + itoa(int64(i+1)), Quantity: q})
	}
	out, _, err := st.Reserve(ctx, sale.ID, purchases, surge.At(now))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for i, o := range out {
		if o.Err != nil {
			t.Fatalf("purchase %d: %v", i, o.Err)
		}
		ids["ORDER"+itoa(int64(i+1))] = o.Order.ID
	}
	at := now.Add(time.Second)
	ev := func(id string, typ surge.PaymentType, order string, cents int64) surge.PaymentEvent {
		return surge.PaymentEvent{ID: id, Type: typ, OrderID: ids[order], AmountCents: cents, Currency: cur, Created: now, Provider: "surge"}
	}
	for _, order := range []string{"ORDER3", "ORDER7"} {
		if _, err := st.Cancel(ctx, ids[order], at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Pay(ctx, ids["ORDER4"], at); err != nil {
		t.Fatal(err)
	}
	recordPayments(t, st, at,
		ev("evt_fail", surge.PaymentFailed, "ORDER1", price),
		ev("evt_paid", surge.PaymentSucceeded, "ORDER1", price),
		ev("evt_mismatch", surge.PaymentSucceeded, "ORDER2", 3*price),
		ev("evt_mref", surge.RefundSucceeded, "ORDER2", price/2),
		ev("evt_late", surge.PaymentSucceeded, "ORDER3", price),
		ev("evt_step", surge.RefundSucceeded, "ORDER3", price*4/10),
		ev("evt_5", surge.PaymentSucceeded, "ORDER5", price),
		ev("evt_unexpected", surge.RefundSucceeded, "ORDER5", price))
	recordPayments(t, st, now.Add(16*time.Minute), ev("evt_past_hold", surge.PaymentSucceeded, "ORDER6", price))
	ahead := surge.PaymentEvent{ID: "evt_ahead", Type: surge.RefundSucceeded, RefundOf: "pi_7", AmountCents: price,
		Currency: cur, Created: now, Provider: "stripe"}
	if _, err := st.RecordPayment(ctx, ahead, at); !errors.Is(err, surge.ErrOrderNotFound) {
		t.Fatalf("a refund ahead of its payment: %v, want order_not_found (kept for it)", err)
	}
	pi := surge.PaymentEvent{ID: "pi_7", Type: surge.PaymentSucceeded, OrderID: ids["ORDER7"], AmountCents: price,
		Currency: cur, Created: now, Provider: "stripe"}
	if r, err := st.RecordPayment(ctx, pi, at); err != nil || r.Payment.Status != surge.PaymentRefunded {
		t.Fatalf("the payment of a refund delivered first: %s, %v; want refunded", r.Payment.Status, err)
	}
	return ids
}
