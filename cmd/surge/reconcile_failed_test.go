package main

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/reconcile"
	"github.com/surgehq/surge/servicetest"
)

// TestReconcileFailedLineMovesNoMoney: docs/payments.md, the settlement's
// status "failed/declined/canceled (no money moved)". A failed line's
// amount is the attempt's, or nothing at all, never money taken; it was
// compared with the payment Surge recorded all the same, and a consistent
// store was reported amount_differs, "settled 0.00 EUR for order …", exit
// 1: the attempt that failed before the payment succeeded under the same
// id, or the failed attempt Surge recorded at the amount its webhook sent,
// the provider's line at 0. A line that took money of another amount is
// still reported. In both modes.
func TestReconcileFailedLineMovesNoMoney(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	// books records ORDER1 (10.00 EUR) paid by pi_1, after evt_fail, an
	// attempt whose webhook sent the amount tried.
	books := func(st payStore) map[string]string {
		o, price, cur := reservedOrder(t, st, now)
		recordPayments(t, st, now.Add(time.Second),
			surge.PaymentEvent{ID: "evt_fail", Type: surge.PaymentFailed, OrderID: o.ID, AmountCents: price, Currency: cur, Created: now, Provider: "surge"},
			surge.PaymentEvent{ID: "pi_1", Type: surge.PaymentSucceeded, OrderID: o.ID, AmountCents: price, Currency: cur, Created: now, Provider: "surge"})
		return map[string]string{"ORDER1": o.ID}
	}
	dir, embedded := openBooks(t)
	defer embedded.Close()
	embeddedIDs := books(embedded)
	ns := servicetest.Namespace(t)
	clustered, err := cluster.Open(context.Background(), servicetest.RedisURL(), servicetest.PostgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	if err != nil {
		t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
	}
	defer clustered.Close()
	clusterIDs := books(clustered)

	const settled = "payment id,order id,amount,currency,status\npi_1,ORDER1,10.00,EUR,succeeded\n"
	for _, c := range []struct {
		name, line string
		kinds      []string
	}{
		{"an attempt of the payment, nothing moved", "pi_1,ORDER1,0.00,EUR,failed\n", nil},
		{"an attempt of the payment at another amount", "pi_1,ORDER1,12.00,EUR,failed\n", nil},
		{"an attempt of the payment in another currency", "pi_1,ORDER1,10.00,USD,failed\n", nil},
		{"the failed attempt Surge recorded, nothing moved", "evt_fail,ORDER1,0.00,EUR,failed\n", nil},
		{"the failed attempt Surge recorded, declined", "evt_fail,ORDER1,0,EUR,declined\n", nil},
		// Money taken of another amount is still a mismatch: the test
		// tells the two apart.
		{"the payment taken at another amount", "pi_1,ORDER1,12.00,EUR,succeeded\n", []string{reconcile.AmountDiffers}},
	} {
		for _, m := range []struct {
			name string
			ids  map[string]string
			args []string
		}{
			{"embedded", embeddedIDs, []string{"--data-dir", dir}},
			{"cluster", clusterIDs, []string{"--postgres-url", servicetest.PostgresURL() + "&search_path=" + ns}},
		} {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				csv := writeSettlement(t, withIDs(settled+c.line, m.ids))
				code, rep, stderr := runReconcile(t, append(m.args, "--settlement", csv)...)
				wantKinds(t, rep, c.kinds...)
				if want := min(len(c.kinds), 1); code != want {
					t.Errorf("exit status %d, want %d (stderr %s)", code, want, stderr)
				}
			})
		}
	}
}
