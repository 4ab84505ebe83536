package main

import (
	"testing"

	"github.com/surgehq/surge/reconcile"
)

// TestReconcileRefundsPastInt64: the refunds a settlement holds for an
// order under ids Surge does not know count as given back (reported
// paid_not_in_surge). Their sum wrapped past int64 into a negative amount:
// money of the wrong amount that Surge recorded refunded in full, and the
// file refunded many times over, was reported not_applied, "the order is
// not paid by it" (give it back), as if none of it had been refunded.
func TestReconcileRefundsPastInt64(t *testing.T) {
	dir, st := openBooks(t)
	ids := reconcileData(t, st, false) // ORDER3 (1 unit, 10.00 EUR) reserved
	shortPaymentRefunded(t, st, ids["ORDER3"], "re_short", 999)
	text := firstTwoSettled +
		"evt_short,ORDER3,9.99,EUR,succeeded\n" +
		"re_x1,ORDER3,50000000000000000.00,EUR,refunded\nre_x2,ORDER3,50000000000000000.00,EUR,refunded\n"
	_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", writeSettlement(t, withIDs(text, ids)))
	for _, m := range rep.Mismatches {
		if m.Kind != reconcile.PaidNotInSurge {
			t.Errorf("%s %s: %s (stderr %s); want only paid_not_in_surge of re_x1 and re_x2: evt_short is refunded in full", m.Kind, m.PaymentID, m.Detail, stderr)
		}
	}
	if len(rep.Mismatches) != 2 {
		t.Errorf("mismatches %+v; want paid_not_in_surge of re_x1 and re_x2", rep.Mismatches)
	}
}
