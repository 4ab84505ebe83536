package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/reconcile"
	"github.com/surgehq/surge/servicetest"
)

// TestReconcileAmountDiffersSaysWhatTheLineDid: amount_differs's detail
// said "settled" whatever the settlement's line said, so a refund line of
// another amount read as money taken ("settled 4.50 EUR for order …;
// Surge recorded 4.00 EUR"), the opposite of what the provider did, and a
// line naming no order read "for order ;". The detail now says what the
// line did (settled or refunded), what Surge recorded (a refund when it
// is one), and that the line names no order when it does not.
func TestReconcileAmountDiffersSaysWhatTheLineDid(t *testing.T) {
	dir, st := openBooks(t)
	ids := reconcileData(t, st, true) // evt_late: 10.00 EUR refund_due of ORDER3
	now := time.Now().UTC().Truncate(time.Second)
	recordPayments(t, st, now.Add(2*time.Second), surge.PaymentEvent{ID: "re_1", Type: surge.RefundSucceeded,
		OrderID: ids["ORDER3"], AmountCents: 400, Currency: "EUR", Created: now, Provider: "surge"})
	for _, c := range []struct {
		name, lines, payment, want string
	}{
		{"a payment taken at another amount", "evt_2,ORDER2,19.99,EUR,succeeded\n", "evt_2",
			"settled 19.99 EUR for order ORDER2; Surge recorded 20.00 EUR for order ORDER2"},
		{"a refund of another amount", "evt_2,ORDER2,20.00,EUR,succeeded\nre_1,ORDER3,4.50,EUR,refunded\n", "re_1",
			"refunded 4.50 EUR for order ORDER3; Surge recorded a refund of 4.00 EUR for order ORDER3"},
		{"a payment refunded in another currency", "evt_2,ORDER2,20.00,EUR,succeeded\nevt_2,ORDER2,20.00,USD,refunded\n", "evt_2",
			"refunded 20.00 USD for order ORDER2; Surge recorded 20.00 EUR for order ORDER2"},
		{"a line naming no order", "evt_2,,19.99,EUR,succeeded\n", "evt_2",
			"settled 19.99 EUR (the line names no order); Surge recorded 20.00 EUR for order ORDER2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			settlement := "payment_id,order_id,amount,currency,status\nevt_1,ORDER1,10.00,EUR,succeeded\n" +
				"evt_late,ORDER3,10.00,EUR,succeeded\n" + c.lines
			csv := writeSettlement(t, withIDs(settlement, ids))
			_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", csv)
			want := withIDs(c.want, ids)
			var found bool
			for _, m := range rep.Mismatches {
				if m.Kind != reconcile.AmountDiffers || m.PaymentID != c.payment {
					continue
				}
				found = true
				if m.Detail != want {
					t.Errorf("amount_differs of %s says %q; want %q", c.payment, m.Detail, want)
				}
			}
			if !found {
				t.Errorf("no amount_differs of %s: mismatches %+v (stderr %s)", c.payment, rep.Mismatches, stderr)
			}
		})
	}
}

// TestReconcileStockMismatchInWords: a sale whose one live unit did not
// add up with the store's count was reported "stock 10 - 1 units in
// reserved and paid orders = 9, …". One unit is "1 unit". Cluster mode,
// whose sales keep their own count (PostgreSQL's sold column), here one
// more than the orders hold.
func TestReconcileStockMismatchInWords(t *testing.T) {
	ctx := context.Background()
	ns := servicetest.Namespace(t)
	st, err := cluster.Open(ctx, servicetest.RedisURL(), servicetest.PostgresURL(), cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	if err != nil {
		t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
	}
	defer st.Close()
	id := "one"
	reserveInNewSale(t, st, surge.SaleInput{ID: &id}, 1, time.Now().UTC())
	conn, err := pgx.Connect(ctx, servicetest.PostgresURL()+"&search_path="+ns)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE sales SET sold = sold + 1 WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	csv := writeSettlement(t, "payment_id,order_id,amount,currency,status\n")
	_, rep, stderr := runReconcile(t, "--postgres-url", servicetest.PostgresURL()+"&search_path="+ns, "--settlement", csv)
	const want = "stock 10 - 1 unit in reserved and paid orders = 9, but the store counts 8 remaining"
	if len(rep.Mismatches) != 1 || rep.Mismatches[0].Kind != reconcile.StockMismatch || rep.Mismatches[0].Detail != want {
		t.Errorf("mismatches %+v (stderr %s); want one stock_mismatch saying %q", rep.Mismatches, stderr, want)
	}
}
