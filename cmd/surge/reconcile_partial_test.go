package main

import (
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/reconcile"
)

// TestReconcilePartialRefundUnderPaymentID: a settlement that lists a
// payment's refund under the payment's own id, marked refunded, with the
// amount given back. Such a line was taken for the payment refunded in
// full whatever its amount: money still taken at the provider (6.00 of
// 10.00 EUR) was never asked for, and the line itself was reported
// amount_differs ("settled 4.00 EUR"), a refund read as a charge. Each
// such line counts for its own amount: the rest is asked for, and steps
// adding up to the payment settle it.
func TestReconcilePartialRefundUnderPaymentID(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup records the payments beyond reconcileData's; refundDue
		// says whether ORDER3 got a refund_due payment (evt_late).
		setup     func(t *testing.T, st payStore, ids map[string]string)
		refundDue bool
		lines     string
		// want: the kinds reported, and what the refund_due or
		// not_applied detail must say ("" for none of either).
		want   []string
		detail string
	}{
		{
			name: "refund_due refunded in part", refundDue: true,
			lines: "evt_late,ORDER3,10.00,EUR,succeeded\nevt_late,ORDER3,4.00,EUR,refunded\n",
			want:  []string{reconcile.RefundDue, reconcile.RefundNotInSurge}, detail: "refund the other 6.00 EUR",
		},
		{
			name: "refund_due refunded in two steps", refundDue: true,
			lines: "evt_late,ORDER3,10.00,EUR,succeeded\nevt_late,ORDER3,4.00,EUR,refunded\nevt_late,ORDER3,6.00,EUR,refunded\n",
			want:  []string{reconcile.RefundNotInSurge, reconcile.RefundNotInSurge},
		},
		{
			name: "refund_due refunded in full", refundDue: true,
			lines: "evt_late,ORDER3,10.00,EUR,succeeded\nevt_late,ORDER3,10.00,EUR,refunded\n",
			want:  []string{reconcile.RefundNotInSurge},
		},
		{
			name: "refund_due refunded more than taken", refundDue: true,
			lines: "evt_late,ORDER3,10.00,EUR,succeeded\nevt_late,ORDER3,12.00,EUR,refunded\n",
			want:  []string{reconcile.AmountDiffers, reconcile.RefundNotInSurge},
		},
		{
			// Surge recorded the whole refunded (re_1, 10.00 EUR); the
			// provider's books hold 4.00 EUR of it given back.
			name: "refunded in Surge, in part at the provider", refundDue: true,
			setup: func(t *testing.T, st payStore, ids map[string]string) {
				now := time.Now().UTC().Truncate(time.Second)
				recordPayments(t, st, now.Add(2*time.Second), surge.PaymentEvent{ID: "re_1", Type: surge.RefundSucceeded,
					OrderID: ids["ORDER3"], AmountCents: 1000, Currency: "EUR", Created: now, Provider: "surge"})
			},
			lines: "evt_late,ORDER3,10.00,EUR,succeeded\nevt_late,ORDER3,4.00,EUR,refunded\n",
			want:  []string{reconcile.RefundDue}, detail: "refund the other 6.00 EUR",
		},
		{
			// 9.99 EUR for an order of 10.00 EUR (amount_mismatch), 5.00
			// EUR of it given back by a refund Surge never heard of.
			name: "amount_mismatch refunded in part",
			setup: func(t *testing.T, st payStore, ids map[string]string) {
				now := time.Now().UTC().Truncate(time.Second)
				recordPayments(t, st, now.Add(2*time.Second), surge.PaymentEvent{ID: "evt_short", Type: surge.PaymentSucceeded,
					OrderID: ids["ORDER3"], AmountCents: 999, Currency: "EUR", Created: now, Provider: "surge"})
			},
			lines: "evt_short,ORDER3,9.99,EUR,succeeded\nevt_short,ORDER3,5.00,EUR,refunded\n",
			want:  []string{reconcile.NotApplied, reconcile.RefundNotInSurge}, detail: "the other 4.99 EUR still taken",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, st := openBooks(t)
			ids := reconcileData(t, st, tc.refundDue)
			if tc.setup != nil {
				tc.setup(t, st, ids)
			}
			_, rep, stderr := runReconcile(t, "--data-dir", dir, "--settlement", writeSettlement(t, withIDs(firstTwoSettled+tc.lines, ids)))
			var got []string
			for _, m := range rep.Mismatches {
				got = append(got, m.Kind)
				if (m.Kind == reconcile.RefundDue || m.Kind == reconcile.NotApplied) && !strings.Contains(m.Detail, tc.detail) {
					t.Errorf("%s of %s says %q; want it to say %q", m.Kind, m.PaymentID, m.Detail, tc.detail)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("mismatches %+v (stderr %s); want kinds %v", rep.Mismatches, stderr, tc.want)
			}
		})
	}
}
