package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// The payment events of the suite: a sale at 1,500 USD a unit and orders
// of two units, so an order costs 3,000 USD.
const price = 1500

func paidSale(t testing.TB, id string, stock int64) surge.Sale {
	return newSale(t, id, stock, 2, priced(price, "USD"))
}

// paidOrder is the payment subtests' start: a store with sale "s" (4
// units at price, 2 a buyer) and u1's order of 2 units, reserved.
func paidOrder(t *testing.T, h Harness) (*env, surge.Sale, surge.Order) {
	t.Helper()
	e := newEnv(t, h)
	s := paidSale(t, "s", 4)
	e.createSale(s)
	return e, s, e.reserveOne(s.ID, at(0), buy("u1", 2))
}

func event(id string, typ surge.PaymentType, orderID string, cents int64, currency string) surge.PaymentEvent {
	return surge.PaymentEvent{ID: id, Type: typ, OrderID: orderID, AmountCents: cents, Currency: currency,
		Created: at(time.Second), Provider: "surge"}
}

func (e *env) payments() surge.Payments {
	e.t.Helper()
	p, ok := e.s.(surge.Payments)
	if !ok {
		e.t.Fatalf("storetest: %T does not implement surge.Payments", e.s)
	}
	return p
}

// record applies ev, which must not fail, and wants status.
func (e *env) record(ev surge.PaymentEvent, now time.Time, want surge.PaymentStatus) surge.PaymentResult {
	e.t.Helper()
	r, err := e.payments().RecordPayment(e.ctx, ev, now)
	if err != nil {
		e.t.Fatalf("RecordPayment(%+v): %v", ev, err)
	}
	if r.Payment.Status != want || r.Replay {
		e.t.Errorf("RecordPayment(%s %s) = %s replay %v, want %s, new", ev.ID, ev.Type, r.Payment.Status, r.Replay, want)
	}
	return r
}

func (e *env) allPayments() map[string]surge.Payment {
	e.t.Helper()
	m := map[string]surge.Payment{}
	if err := e.payments().Payments(e.ctx, func(p surge.Payment) error {
		if _, dup := m[p.ID]; dup {
			e.t.Errorf("payment %s listed twice", p.ID)
		}
		m[p.ID] = p
		return nil
	}); err != nil {
		e.t.Fatalf("Payments: %v", err)
	}
	return m
}

func (e *env) wantPaymentStatus(id string, want surge.PaymentStatus) {
	e.t.Helper()
	p, ok := e.allPayments()[id]
	if !ok || p.Status != want {
		e.t.Errorf("payment %s: recorded %v status %q, want %q", id, ok, p.Status, want)
	}
}

func (e *env) wantStatus(orderID string, want surge.OrderStatus) {
	e.t.Helper()
	if got := e.order(orderID).Status; got != want {
		e.t.Errorf("order %s is %s, want %s", orderID, got, want)
	}
}

func testPayments(t *testing.T, h Harness) {
	t.Run("Succeeded", func(t *testing.T) {
		e, s, o := paidOrder(t, h)
		ev := event("evt_1", surge.PaymentSucceeded, o.ID, 2*price, "usd") // currency in any case
		r := e.record(ev, at(time.Second), surge.PaymentPaid)
		if r.Order.Status != surge.OrderPaid || r.Payment.SaleID != s.ID {
			t.Errorf("result order %s sale %q, want paid, %s", r.Order.Status, r.Payment.SaleID, s.ID)
		}
		e.wantStatus(o.ID, surge.OrderPaid)
		e.wantRemaining(s.ID, 2)
		// A replay, even after a restart, answers the first result and
		// changes nothing.
		e.reopen()
		again, err := e.payments().RecordPayment(e.ctx, ev, at(2*time.Second))
		if err != nil || !again.Replay || again.Payment.Status != surge.PaymentPaid || again.Order.Status != surge.OrderPaid {
			t.Errorf("replay = %+v, %v; want the first result, Replay set", again, err)
		}
		got := e.allPayments()
		p := got["evt_1"]
		if len(got) != 1 || p.AmountCents != 2*price || p.OrderID != o.ID || p.Type != surge.PaymentSucceeded ||
			timeDiff("Created", p.Created, ev.Created)+timeDiff("RecordedAt", p.RecordedAt, at(time.Second)) != "" {
			t.Errorf("Payments = %+v, want evt_1 alone, as recorded at 1s", got)
		}
	})

	t.Run("AmountMismatch", func(t *testing.T) {
		e, s, o := paidOrder(t, h)
		e.record(event("short", surge.PaymentSucceeded, o.ID, 2*price-1, "USD"), at(time.Second), surge.PaymentAmountMismatch)
		e.record(event("euro", surge.PaymentSucceeded, o.ID, 2*price, "EUR"), at(time.Second), surge.PaymentAmountMismatch)
		e.wantStatus(o.ID, surge.OrderReserved)
		e.wantRemaining(s.ID, 2)
		// The order may still be paid right.
		e.record(event("right", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentPaid)
		if n := len(e.allPayments()); n != 3 {
			t.Errorf("%d payments recorded, want 3", n)
		}
	})

	t.Run("RefundDue", func(t *testing.T) {
		e := newEnv(t, h)
		s := paidSale(t, "s", 10)
		e.createSale(s)
		cancelled := e.reserveOne(s.ID, at(0), buy("u1", 2))
		expired := e.reserveOne(s.ID, at(0), buy("u2", 2))
		late := e.reserveOne(s.ID, at(0), buy("u3", 2))
		paid := e.reserveOne(s.ID, at(0), buy("u4", 2))
		e.cancel(cancelled.ID, at(time.Second))
		e.pay(paid.ID, at(time.Second))
		e.wantExpire(at(hold), expired, late)
		for _, o := range []surge.Order{cancelled, expired, paid} {
			e.record(event("p_"+o.ID, surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(hold+time.Second), surge.PaymentRefundDue)
		}
		e.wantStatus(cancelled.ID, surge.OrderCancelled)
		e.wantStatus(expired.ID, surge.OrderExpired)
		e.wantStatus(paid.ID, surge.OrderPaid)
		e.wantRemaining(s.ID, 8)
	})

	t.Run("PastHoldBeforeExpiry", func(t *testing.T) {
		e, s, o := paidOrder(t, h)
		// The hold ended at ExpiresAt, whether or not Expire has run.
		e.record(event("late", surge.PaymentSucceeded, o.ID, 2*price, "USD"), o.ExpiresAt, surge.PaymentRefundDue)
		e.wantExpire(o.ExpiresAt, o)
		e.wantRemaining(s.ID, 4)
	})

	t.Run("FailedAndRefunds", func(t *testing.T) {
		e, _, o := paidOrder(t, h)
		e.record(event("fail", surge.PaymentFailed, o.ID, 2*price, "USD"), at(time.Second), surge.PaymentFailedStatus)
		e.wantStatus(o.ID, surge.OrderReserved)
		e.cancel(o.ID, at(2*time.Second))
		e.record(event("pay", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(3*time.Second), surge.PaymentRefundDue)
		// A refund of more than is owed settles nothing. (A smaller one
		// is a step of the refund: RefundInSteps.)
		e.record(event("r_more", surge.RefundSucceeded, o.ID, 2*price+1, "USD"), at(4*time.Second), surge.PaymentRefundUnexpected)
		e.wantPaymentStatus("pay", surge.PaymentRefundDue)
		r := e.record(event("r_full", surge.RefundSucceeded, o.ID, 2*price, "USD"), at(5*time.Second), surge.PaymentRefund)
		if r.Payment.Settles != "pay" {
			t.Errorf("refund settles %q, want pay", r.Payment.Settles)
		}
		e.wantPaymentStatus("pay", surge.PaymentRefunded)
		e.wantPaymentStatus("r_full", surge.PaymentRefund)
		e.wantStatus(o.ID, surge.OrderCancelled)
	})

	t.Run("RefundInSteps", func(t *testing.T) {
		// A provider refunds a charge in steps (Stripe: one
		// charge.refunded per step, each of its own amount). Each step
		// was matched alone against the whole refund_due amount, so none
		// settled it: the payment stayed owed and every step was
		// refund_unexpected, although the money was all given back.
		e, _, o := paidOrder(t, h)
		e.cancel(o.ID, at(time.Second))
		e.record(event("pay", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentRefundDue)
		var got []string
		for i, cents := range []int64{1000, 1500, 2*price - 2500} {
			r, err := e.payments().RecordPayment(e.ctx, event(fmt.Sprintf("r_%d", i), surge.RefundSucceeded, o.ID, cents, "USD"), at(time.Duration(3+i)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d:%s settling %q", cents, r.Payment.Status, r.Payment.Settles))
			if i < 2 {
				e.wantPaymentStatus("pay", surge.PaymentRefundDue) // 500 still owed
			}
		}
		if want := `[1000:refund settling "pay" 1500:refund settling "pay" 500:refund settling "pay"]`; fmt.Sprint(got) != want {
			t.Errorf("payment pay of 3000 USD for cancelled order %s refunded in steps of 1000, 1500 and 500: the steps were %v; want %s", o.ID, got, want)
		}
		e.wantPaymentStatus("pay", surge.PaymentRefunded)
		// Refunded in full: a further step has nothing to settle.
		e.record(event("r_more", surge.RefundSucceeded, o.ID, 100, "USD"), at(9*time.Second), surge.PaymentRefundUnexpected)
		e.wantStatus(o.ID, surge.OrderCancelled)
	})

	t.Run("RefundOfMismatch", func(t *testing.T) {
		// Money taken of the wrong amount (amount_mismatch: the order not
		// paid by it) is the shop's to give back. Its refund settled
		// nothing and stayed refund_unexpected for good, reported by
		// surge reconcile as a refund of a paid order. It settles the
		// mismatched payment, whose status (and webhook answer) stays.
		e, _, o := paidOrder(t, h)
		e.record(event("short", surge.PaymentSucceeded, o.ID, 2*price-1, "USD"), at(time.Second), surge.PaymentAmountMismatch)
		r, err := e.payments().RecordPayment(e.ctx, event("r_short", surge.RefundSucceeded, o.ID, 2*price-1, "USD"), at(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if r.Payment.Status != surge.PaymentRefund || r.Payment.Settles != "short" {
			t.Errorf("refund r_short of 2999 USD after payment short of 2999 USD (amount_mismatch) of order %s: %s settling %q; want refund settling short",
				o.ID, r.Payment.Status, r.Payment.Settles)
		}
		e.wantPaymentStatus("short", surge.PaymentAmountMismatch)
		// Given back once: another refund has nothing to settle.
		e.record(event("r_again", surge.RefundSucceeded, o.ID, 2*price-1, "USD"), at(3*time.Second), surge.PaymentRefundUnexpected)
		e.wantStatus(o.ID, surge.OrderReserved)
	})

	t.Run("RefundOfPaidOrder", func(t *testing.T) {
		e, _, o := paidOrder(t, h)
		e.record(event("pay", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(time.Second), surge.PaymentPaid)
		e.record(event("refund", surge.RefundSucceeded, o.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentRefundUnexpected)
		e.wantStatus(o.ID, surge.OrderPaid)
		e.wantPaymentStatus("pay", surge.PaymentPaid)
	})

	t.Run("RefundBeforePayment", func(t *testing.T) {
		// Providers do not deliver events in order (Stripe says so): the
		// refund of money taken for a cancelled order may come before the
		// payment itself. Money in and money back, for one order: nothing
		// is owed. Recorded refund_unexpected, then refund_due, the refund
		// was never matched and the payment stayed owed: surge reconcile
		// said "refund it", a second refund.
		e, _, o := paidOrder(t, h)
		e.cancel(o.ID, at(time.Second))
		e.record(event("r_early", surge.RefundSucceeded, o.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentRefundUnexpected)
		r, err := e.payments().RecordPayment(e.ctx, event("pay_late", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := e.allPayments()
		if got["pay_late"].Status != surge.PaymentRefunded || got["r_early"].Status != surge.PaymentRefund || got["r_early"].Settles != "pay_late" {
			t.Errorf("refund r_early (3000 USD) delivered before payment pay_late (3000 USD) of cancelled order %s: payment answered %s, recorded %s, refund %s settling %q; "+
				"want the payment refunded and the refund settling it (nothing owed), not a refund_due that asks for a second refund",
				o.ID, r.Payment.Status, got["pay_late"].Status, got["r_early"].Status, got["r_early"].Settles)
		}
		e.wantStatus(o.ID, surge.OrderCancelled)
	})

	t.Run("RefundBeforeMismatch", func(t *testing.T) {
		// RefundOfMismatch, delivered out of order: the refund of money
		// taken of the wrong amount before that payment. Only a refund_due
		// payment looked for a refund delivered first, so the refund stayed
		// refund_unexpected ("the order may be paid") and the payment
		// not_applied, for good, where the other order settles both.
		e, _, o := paidOrder(t, h)
		e.record(event("r_early", surge.RefundSucceeded, o.ID, 2*price-1, "USD"), at(time.Second), surge.PaymentRefundUnexpected)
		e.record(event("short", surge.PaymentSucceeded, o.ID, 2*price-1, "USD"), at(2*time.Second), surge.PaymentAmountMismatch)
		got := e.allPayments()
		if got["short"].Status != surge.PaymentAmountMismatch || got["r_early"].Status != surge.PaymentRefund || got["r_early"].Settles != "short" {
			t.Errorf("refund r_early (2999 USD) delivered before payment short (2999 USD, amount_mismatch) of order %s: payment %s, refund %s settling %q; "+
				"want the payment amount_mismatch and the refund settling it", o.ID, got["short"].Status, got["r_early"].Status, got["r_early"].Settles)
		}
		e.wantStatus(o.ID, surge.OrderReserved)
	})

	t.Run("RefundInStepsBeforePayment", func(t *testing.T) {
		// RefundInSteps, delivered before the payment (providers do not
		// deliver in order): only a refund of the payment's whole amount
		// was taken as its refund delivered first, so the steps stayed
		// refund_unexpected and the payment refund_due for good (surge
		// reconcile: refund it, a second refund). The steps name the
		// order (first) or the payment (second, as Stripe's charge names
		// its PaymentIntent); the last step of the first comes after it.
		e, s, first := paidOrder(t, h)
		second := e.reserveOne(s.ID, at(0), buy("u2", 2))
		e.cancel(first.ID, at(time.Second))
		e.cancel(second.ID, at(time.Second))
		step := func(id string, o surge.Order, of string, cents int64) surge.PaymentResult {
			ev := event(id, surge.RefundSucceeded, o.ID, cents, "USD")
			ev.RefundOf = of
			r, err := e.payments().RecordPayment(e.ctx, ev, at(3*time.Second))
			if err != nil {
				t.Fatalf("RecordPayment(%s): %v", id, err)
			}
			return r
		}
		step("r_0", first, "", 1000)
		step("r_1", first, "", 1500)
		step("n_0", second, "pi_2", 1000)
		step("n_1", second, "pi_2", 2*price-1000)
		one := e.record(event("pi_1", surge.PaymentSucceeded, first.ID, 2*price, "USD"), at(4*time.Second), surge.PaymentRefundDue)
		two, err := e.payments().RecordPayment(e.ctx, event("pi_2", surge.PaymentSucceeded, second.ID, 2*price, "USD"), at(4*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		last := step("r_2", first, "", 2*price-2500)
		got := e.allPayments()
		var steps []string
		for _, id := range []string{"r_0", "r_1", "r_2", "n_0", "n_1"} {
			steps = append(steps, fmt.Sprintf("%s:%s settling %q", id, got[id].Status, got[id].Settles))
		}
		want := `[r_0:refund settling "pi_1" r_1:refund settling "pi_1" r_2:refund settling "pi_1" n_0:refund settling "pi_2" n_1:refund settling "pi_2"]`
		if fmt.Sprint(steps) != want || got["pi_1"].Status != surge.PaymentRefunded || two.Payment.Status != surge.PaymentRefunded {
			t.Errorf("payments of 3000 USD of cancelled orders, refunded in steps delivered before them (r_0 1000, r_1 1500 naming order %s, then r_2 500 after; "+
				"n_0 1000, n_1 2000 naming payment pi_2): pi_1 answered %s, then %s (after r_2 answered %s); pi_2 answered %s; the steps %v; want both refunded, the steps %s",
				first.ID, one.Payment.Status, got["pi_1"].Status, last.Payment.Status, two.Payment.Status, steps, want)
		}
	})

	t.Run("RefundOfPayment", func(t *testing.T) {
		// A refund may name the payment it gives back instead of the
		// order (a Stripe Checkout payment's charge carries only its
		// PaymentIntent): the store takes that payment's order.
		e, _, o := paidOrder(t, h)
		e.cancel(o.ID, at(time.Second))
		e.record(event("pi_1", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentRefundDue)
		byPayment := func(id, of, provider string) surge.PaymentEvent {
			ev := event(id, surge.RefundSucceeded, "", 2*price, "USD")
			ev.RefundOf, ev.Provider = of, provider
			return ev
		}
		// Not recorded yet: kept for it (RefundOfPaymentBeforeIt). Another
		// provider's id: kept nowhere, and said so (the webhook's answer
		// said "kept" of both).
		for _, c := range []struct {
			ev   surge.PaymentEvent
			want error
		}{{byPayment("r_x", "pi_missing", "surge"), surge.ErrOrderNotFound}, {byPayment("r_y", "pi_1", "stripe"), surge.ErrRefundNotKept}} {
			if _, err := e.payments().RecordPayment(e.ctx, c.ev, at(3*time.Second)); !errors.Is(err, c.want) {
				t.Errorf("refund of payment %s of provider %s: err = %v, want %v", c.ev.RefundOf, c.ev.Provider, err, c.want)
			}
		}
		// A payment id no store records (not plain text, as a payment's own
		// id must be) is refused as an event's own id is: PostgreSQL refused
		// the lookup of one not UTF-8 (stripe-go passes a charge's
		// payment_intent on byte for byte), answered 503 and retried by
		// the provider for days.
		for _, of := range []string{"pi_\xff", "pi_\x00", "pi_\u202e", " pi_1", strings.Repeat("p", 256)} {
			_, err := e.payments().RecordPayment(e.ctx, byPayment("r_z", of, "surge"), at(3*time.Second))
			wantErr(t, fmt.Sprintf("refund of payment %.16q", of), err, surge.Errorf(surge.CodeInvalid, ""))
		}
		r := e.record(byPayment("r_1", "pi_1", "surge"), at(3*time.Second), surge.PaymentRefund)
		if r.Payment.OrderID != o.ID || r.Payment.Settles != "pi_1" || r.Order.ID != o.ID {
			t.Errorf("refund of payment pi_1 = %+v, want a refund of order %s settling pi_1", r, o.ID)
		}
		e.wantPaymentStatus("pi_1", surge.PaymentRefunded)
		if got := e.allPayments(); len(got) != 2 || got["r_1"].OrderID != o.ID {
			t.Errorf("Payments = %+v, want pi_1 and its refund r_1 of order %s", got, o.ID)
		}
		again, err := e.payments().RecordPayment(e.ctx, byPayment("r_1", "pi_1", "surge"), at(4*time.Second))
		if err != nil || !again.Replay || again.Payment.Status != surge.PaymentRefund {
			t.Errorf("replay = %+v, %v; want the first result, Replay set", again, err)
		}
	})

	t.Run("RefundOfPaymentBeforeIt", func(t *testing.T) {
		// A refund naming only its payment (a Stripe Checkout payment's
		// charge) delivered before that payment (providers do not deliver
		// in order): the store knows no order of it. It was dropped
		// (order_not_found, recorded nowhere), so the payment, when it
		// came, stayed refund_due for good and surge reconcile asked for
		// a second refund. It is kept aside, answered as before and
		// listed nowhere, and the payment of that id and provider, when
		// it comes, takes it (also in steps) as its refund delivered first.
		e, s, first := paidOrder(t, h)
		second := e.reserveOne(s.ID, at(0), buy("u2", 2))
		e.cancel(first.ID, at(time.Second))
		e.cancel(second.ID, at(time.Second))
		byPayment := func(id, of, provider string, cents int64) surge.PaymentEvent {
			ev := event(id, surge.RefundSucceeded, "", cents, "USD")
			ev.RefundOf, ev.Provider = of, provider
			return ev
		}
		for _, ev := range []surge.PaymentEvent{
			byPayment("r_1", "pi_1", "surge", 2*price),
			byPayment("r_1", "pi_1", "surge", 2*price), // delivered again
			byPayment("s_0", "pi_2", "surge", 1000),
			byPayment("s_1", "pi_2", "surge", 2*price-1000),
			byPayment("r_x", "pi_2", "stripe", 2*price), // another provider's payment pi_2
		} {
			_, err := e.payments().RecordPayment(e.ctx, ev, at(2*time.Second))
			wantErr(t, fmt.Sprintf("refund %s of payment %s not recorded yet", ev.ID, ev.RefundOf), err, surge.ErrOrderNotFound)
		}
		if n := len(e.allPayments()); n != 0 {
			t.Errorf("%d payments listed after refunds of payments not recorded, want 0", n)
		}
		e.reopen() // kept durably
		one, err := e.payments().RecordPayment(e.ctx, event("pi_1", surge.PaymentSucceeded, first.ID, 2*price, "USD"), at(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		two, err := e.payments().RecordPayment(e.ctx, event("pi_2", surge.PaymentSucceeded, second.ID, 2*price, "USD"), at(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := e.allPayments()
		var refunds []string
		for _, id := range []string{"r_1", "s_0", "s_1"} {
			r := got[id]
			refunds = append(refunds, fmt.Sprintf("%s:%s %d of %q settling %q", id, r.Status, r.AmountCents, r.OrderID, r.Settles))
		}
		want := fmt.Sprintf(`[r_1:refund 3000 of %q settling "pi_1" s_0:refund 1000 of %q settling "pi_2" s_1:refund 2000 of %q settling "pi_2"]`,
			first.ID, second.ID, second.ID)
		if one.Payment.Status != surge.PaymentRefunded || two.Payment.Status != surge.PaymentRefunded || fmt.Sprint(refunds) != want || len(got) != 5 {
			t.Errorf("payments pi_1 and pi_2 of cancelled orders, their refunds (naming only them) delivered first: answered %s and %s, refunds %v, %d payments listed; "+
				"want both refunded, refunds %s, 5 payments listed (not r_x, another provider's)",
				one.Payment.Status, two.Payment.Status, refunds, len(got), want)
		}
		// Payments lists oldest first: the refunds, recorded (kept) before
		// their payments, come before them, in the order they came. The
		// embedded store listed each payment before its refunds, the
		// cluster's after them.
		var listed []string
		if err := e.payments().Payments(e.ctx, func(p surge.Payment) error { listed = append(listed, p.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprint(listed), "[r_1 pi_1 s_0 s_1 pi_2]"; got != want {
			t.Errorf("Payments listed %s; want %s, oldest first (each refund kept aside before its payment came)", got, want)
		}
		again, err := e.payments().RecordPayment(e.ctx, byPayment("r_1", "pi_1", "surge", 2*price), at(4*time.Second))
		if err != nil || !again.Replay || again.Payment.Status != surge.PaymentRefund || again.Payment.Settles != "pi_1" {
			t.Errorf("refund r_1 delivered again after its payment: replay %v, %q settling %q, err %v; want the replay of the refund settling pi_1",
				again.Replay, again.Payment.Status, again.Payment.Settles, err)
		}
	})

	t.Run("RefundAheadKeptForItsWindow", func(t *testing.T) {
		// A refund kept for a payment not recorded yet (RefundOfPaymentBeforeIt)
		// was kept for good: one whose payment never comes (another of
		// the account's charges, a test event) stayed forever, and the
		// table grew with every such refund. It is kept for
		// surge.RefundAheadKept, past which no provider delivers its
		// payment: a payment coming later does not take it, and the
		// next refund kept drops it.
		e, s, first := paidOrder(t, h)
		second := e.reserveOne(s.ID, at(0), buy("u2", 2))
		e.cancel(first.ID, at(time.Second))
		e.cancel(second.ID, at(time.Second))
		byPayment := func(id, of string) surge.PaymentEvent {
			ev := event(id, surge.RefundSucceeded, "", 2*price, "USD")
			ev.RefundOf = of
			return ev
		}
		late := at(2*time.Second + surge.RefundAheadKept)
		for _, c := range []struct {
			ev  surge.PaymentEvent
			now time.Time
		}{
			{byPayment("r_old", "pi_old"), at(2 * time.Second)},
			{byPayment("r_new", "pi_new"), late.Add(time.Second)},
		} {
			_, err := e.payments().RecordPayment(e.ctx, c.ev, c.now)
			wantErr(t, fmt.Sprintf("refund %s of payment %s not recorded yet", c.ev.ID, c.ev.RefundOf), err, surge.ErrOrderNotFound)
		}
		e.reopen()
		old := e.record(event("pi_old", surge.PaymentSucceeded, first.ID, 2*price, "USD"), late.Add(2*time.Second), surge.PaymentRefundDue)
		e.record(event("pi_new", surge.PaymentSucceeded, second.ID, 2*price, "USD"), late.Add(2*time.Second), surge.PaymentRefunded)
		got := e.allPayments()
		if _, kept := got["r_old"]; kept || old.Payment.Status != surge.PaymentRefundDue || got["r_new"].Settles != "pi_new" {
			t.Errorf("refund r_old of payment pi_old kept aside, pi_old recorded %v later: pi_old %s, r_old listed %v, r_new settling %q; "+
				"want pi_old refund_due, r_old dropped (kept %v at most), r_new (kept 1s) settling pi_new",
				surge.RefundAheadKept, old.Payment.Status, kept, got["r_new"].Settles, surge.RefundAheadKept)
		}
	})

	t.Run("RefundOfNamedPayment", func(t *testing.T) {
		// A refund naming its payment (RefundOf) gives back that payment,
		// not a sibling of the same amount: it settled the order's oldest
		// owed payment, so surge reconcile asked to refund the one the
		// provider had refunded and called the one still taken refunded.
		// Naming a payment owed nothing (the paid one), it settles none.
		e, _, o := paidOrder(t, h)
		e.record(event("pi_paid", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(time.Second), surge.PaymentPaid)
		e.record(event("pi_1", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentRefundDue)
		e.record(event("pi_2", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(3*time.Second), surge.PaymentRefundDue)
		byPayment := func(id, of string, cents int64) surge.PaymentEvent {
			ev := event(id, surge.RefundSucceeded, "", cents, "USD")
			ev.RefundOf = of
			return ev
		}
		r := e.record(byPayment("r_2", "pi_2", 2*price), at(4*time.Second), surge.PaymentRefund)
		if r.Payment.Settles != "pi_2" {
			t.Errorf("refund r_2 of payment pi_2 settles %q, want pi_2", r.Payment.Settles)
		}
		e.record(byPayment("r_paid", "pi_paid", 2*price), at(5*time.Second), surge.PaymentRefundUnexpected)
		got := e.allPayments()
		if got["pi_1"].Status != surge.PaymentRefundDue || got["pi_2"].Status != surge.PaymentRefunded {
			t.Errorf("after refunds of pi_2 and pi_paid (each naming its payment): pi_1 %s, pi_2 %s; want pi_1 refund_due, pi_2 refunded",
				got["pi_1"].Status, got["pi_2"].Status)
		}
	})

	t.Run("RefundOfNotOfALaterPayment", func(t *testing.T) {
		// A refund naming its payment (RefundOf) that settled nothing,
		// the payment it names being paid, is that payment's: it was
		// taken for the refund, delivered first, of a later payment of
		// the order of the same amount, which was then called refunded
		// (no refund_due event, surge reconcile silent) with its money
		// still taken. A refund by RefundOf never comes before its
		// payment: the store knows of no order without that payment.
		e, _, o := paidOrder(t, h)
		e.record(event("pi_paid", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(time.Second), surge.PaymentPaid)
		r := event("r_paid", surge.RefundSucceeded, "", 2*price, "USD")
		r.RefundOf = "pi_paid"
		e.record(r, at(2*time.Second), surge.PaymentRefundUnexpected)
		e.record(event("pi_late", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(3*time.Second), surge.PaymentRefundDue)
		got := e.allPayments()
		if got["r_paid"].Status != surge.PaymentRefundUnexpected || got["r_paid"].Settles != "" {
			t.Errorf("refund r_paid of payment pi_paid (paid), then payment pi_late of the same amount: r_paid %s settling %q; want refund_unexpected settling nothing",
				got["r_paid"].Status, got["r_paid"].Settles)
		}
	})

	t.Run("RefundByOrderNotOfALaterPayment", func(t *testing.T) {
		// A refund naming only its order is matched to a payment of the
		// order by amount, but a payment the provider took after it gave
		// that money back cannot be what it gave back. The paid order's
		// refund (refund_unexpected) was taken for the refund, delivered
		// first, of a duplicate payment charged later: that one was
		// called refunded, its money still taken, and the paid order's
		// refund hidden. A refund delivered late settled a duplicate
		// charged after it alike.
		e, s, first := paidOrder(t, h)
		second := e.reserveOne(s.ID, at(0), buy("u2", 2))
		pay := func(id string, o surge.Order, created time.Duration, want surge.PaymentStatus) {
			ev := event(id, surge.PaymentSucceeded, o.ID, 2*price, "USD")
			ev.Created = at(created)
			e.record(ev, at(10*time.Second), want)
		}
		refund := func(id string, o surge.Order, created time.Duration) surge.PaymentResult {
			ev := event(id, surge.RefundSucceeded, o.ID, 2*price, "USD")
			ev.Created = at(created)
			r, err := e.payments().RecordPayment(e.ctx, ev, at(10*time.Second))
			if err != nil {
				t.Fatalf("RecordPayment(%s): %v", id, err)
			}
			return r
		}
		// The paid order refunded at 2s, then a duplicate charged at 3s.
		pay("paid_1", first, time.Second, surge.PaymentPaid)
		refund("r_paid_1", first, 2*time.Second)
		pay("dup_1", first, 3*time.Second, surge.PaymentRefundDue)
		// A duplicate charged at 5s, then the paid order's refund of 4s.
		pay("paid_2", second, time.Second, surge.PaymentPaid)
		pay("dup_2", second, 5*time.Second, surge.PaymentRefundDue)
		r := refund("r_paid_2", second, 4*time.Second)
		got := e.allPayments()
		if got["dup_1"].Status != surge.PaymentRefundDue || got["r_paid_1"].Status != surge.PaymentRefundUnexpected {
			t.Errorf("refund r_paid_1 made at 2s, then duplicate payment dup_1 made at 3s, of order %s: dup_1 %s, r_paid_1 %s settling %q; "+
				"want dup_1 refund_due and r_paid_1 refund_unexpected (it gave back money taken before dup_1)",
				first.ID, got["dup_1"].Status, got["r_paid_1"].Status, got["r_paid_1"].Settles)
		}
		if got["dup_2"].Status != surge.PaymentRefundDue || r.Payment.Status != surge.PaymentRefundUnexpected {
			t.Errorf("duplicate payment dup_2 made at 5s, then refund r_paid_2 made at 4s, of order %s: dup_2 %s, r_paid_2 %s settling %q; "+
				"want dup_2 refund_due and r_paid_2 refund_unexpected", second.ID, got["dup_2"].Status, r.Payment.Status, r.Payment.Settles)
		}
	})

	t.Run("RefundOfReplay", func(t *testing.T) {
		// A repeated id is a replay whatever it names now (as a repeat
		// naming another order): a refund's id already recorded answers
		// the first result, also when its RefundOf now names a payment of
		// another provider, or none. PostgreSQL looked the payment up
		// first and answered order_not_found (the webhook: ignored).
		e, _, o := paidOrder(t, h)
		e.cancel(o.ID, at(time.Second))
		e.record(event("pi_1", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentRefundDue)
		other := event("pi_s", surge.PaymentSucceeded, o.ID, 2*price, "USD")
		other.Provider = "stripe"
		e.record(other, at(2*time.Second), surge.PaymentRefundDue)
		byPayment := func(of string) surge.PaymentEvent {
			ev := event("r_1", surge.RefundSucceeded, "", 2*price, "USD")
			ev.RefundOf = of
			return ev
		}
		e.record(byPayment("pi_1"), at(3*time.Second), surge.PaymentRefund)
		for _, of := range []string{"pi_s", "pi_missing"} {
			r, err := e.payments().RecordPayment(e.ctx, byPayment(of), at(4*time.Second))
			if err != nil || !r.Replay || r.Payment.Status != surge.PaymentRefund || r.Payment.Settles != "pi_1" ||
				r.Payment.OrderID != o.ID || r.Order.ID != o.ID {
				t.Errorf("refund r_1 (recorded settling pi_1) again, naming payment %s: replay %v, %q settling %q of order %q, err %v; want the replay of the first (refund settling pi_1 of order %s)",
					of, r.Replay, r.Payment.Status, r.Payment.Settles, r.Payment.OrderID, err, o.ID)
			}
		}
		e.wantPaymentStatus("pi_s", surge.PaymentRefundDue)
		if n := len(e.allPayments()); n != 3 {
			t.Errorf("%d payments recorded, want 3 (pi_1, pi_s, r_1)", n)
		}
	})

	t.Run("Manual", func(t *testing.T) {
		e, s, o := paidOrder(t, h)
		e.pay(o.ID, at(time.Second))
		_, err := e.s.Pay(e.ctx, o.ID, at(2*time.Second))
		wantErr(t, "second Pay", err, surge.ErrNotPayable)
		got := e.allPayments()
		if len(got) != 1 {
			t.Fatalf("Payments = %+v, want the manual one", got)
		}
		for _, p := range got {
			if p.Type != surge.PaymentManual || p.Status != surge.PaymentPaid || p.AmountCents != 2*price || p.Currency != "USD" {
				t.Errorf("manual payment = %+v, want manual, paid, 3000 USD", p)
			}
		}
		// A refused Pay records nothing.
		late := e.reserveOne(s.ID, at(0), buy("u2", 1))
		_, err = e.s.Pay(e.ctx, late.ID, late.ExpiresAt)
		wantErr(t, "Pay past the hold", err, surge.ErrNotPayable)
		if n := len(e.allPayments()); n != 1 {
			t.Errorf("%d payments after a refused Pay, want 1", n)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		e, _, o := paidOrder(t, h)
		for _, c := range []struct {
			ev   surge.PaymentEvent
			want error
		}{
			{event("x", surge.PaymentSucceeded, "o_missing", 1, "USD"), surge.ErrOrderNotFound},
			{event("", surge.PaymentSucceeded, o.ID, 2*price, "USD"), surge.Errorf(surge.CodeInvalid, "")},
			{event("x", "payment.maybe", o.ID, 2*price, "USD"), surge.Errorf(surge.CodeInvalid, "")},
			{event("x", surge.PaymentSucceeded, o.ID, -1, "USD"), surge.Errorf(surge.CodeInvalid, "")},
			{event("x", surge.PaymentSucceeded, o.ID, 1, "dollars"), surge.Errorf(surge.CodeInvalid, "")},
		} {
			_, err := e.payments().RecordPayment(e.ctx, c.ev, at(time.Second))
			wantErr(t, fmt.Sprintf("RecordPayment(%+v)", c.ev), err, c.want)
		}
		if n := len(e.allPayments()); n != 0 {
			t.Errorf("%d payments recorded by refused events", n)
		}
		e.wantStatus(o.ID, surge.OrderReserved)
	})

	t.Run("Races", func(t *testing.T) { testPaymentRaces(t, h) })
	t.Run("RefundRaces", func(t *testing.T) { testRefundRaces(t, h) })
}

// testPaymentRaces runs a payment against each thing that may end its
// order at the same moment (the hold's expiry, a cancel, the same event
// delivered twice) and wants one consistent end: the order paid by exactly
// one paid payment, or ended with its money recorded refund_due, and each
// event applied once.
func testPaymentRaces(t *testing.T, h Harness) {
	const n = 12
	e := newEnv(t, h)
	s := paidSale(t, "s", 3*2*n)
	e.createSale(s)
	var orders [3][]surge.Order
	for kind := range orders {
		for i := range n {
			orders[kind] = append(orders[kind], e.reserveOne(s.ID, at(0), buy(fmt.Sprintf("u%d_%d", kind, i), 2)))
		}
	}
	expiring, cancelling, twice := orders[0], orders[1], orders[2]
	end := expiring[0].ExpiresAt
	pay := func(o surge.Order, id string, now time.Time) surge.PaymentResult {
		r, err := e.payments().RecordPayment(e.ctx, event(id, surge.PaymentSucceeded, o.ID, 2*price, "USD"), now)
		if err != nil {
			t.Errorf("RecordPayment(%s): %v", id, err)
		}
		return r
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied = map[string]int{} // event id → answers that were not replays
	)
	count := func(r surge.PaymentResult) {
		mu.Lock()
		defer mu.Unlock()
		if !r.Replay {
			applied[r.Payment.ID]++
		}
	}
	// Just before the hold ends against the expiry job at its end.
	for _, o := range expiring {
		wg.Go(func() { count(pay(o, "x_"+o.ID, end.Add(-time.Millisecond))) })
	}
	wg.Go(func() {
		x, ok := e.s.(Expirer)
		if !ok {
			t.Errorf("storetest: %T does not implement storetest.Expirer", e.s)
			return
		}
		if _, err := x.Expire(e.ctx, end); err != nil {
			t.Errorf("Expire: %v", err)
		}
	})
	for _, o := range cancelling {
		wg.Go(func() { count(pay(o, "c_"+o.ID, at(time.Second))) })
		wg.Go(func() {
			if _, err := e.s.Cancel(e.ctx, o.ID, at(time.Second)); err != nil && !surge.HasCode(err, surge.CodeNotCancellable) {
				t.Errorf("Cancel(%s): %v", o.ID, err)
			}
		})
	}
	for _, o := range twice {
		for range 2 {
			wg.Go(func() { count(pay(o, "t_"+o.ID, at(time.Second))) })
		}
	}
	wg.Wait()
	e.expire(end) // whatever the race left reserved
	payments := e.allPayments()
	var live int64
	for kind, prefix := range []string{"x_", "c_", "t_"} {
		for _, o := range orders[kind] {
			id := prefix + o.ID
			if applied[id] != 1 {
				t.Errorf("event %s applied %d times, want once", id, applied[id])
			}
			p := payments[id]
			got := e.order(o.ID).Status
			switch {
			case got == surge.OrderPaid && p.Status == surge.PaymentPaid:
				live += o.Quantity
			case (got == surge.OrderExpired || got == surge.OrderCancelled) && p.Status == surge.PaymentRefundDue:
			default:
				t.Errorf("order %s ended %s with its payment %s: want paid/paid or ended/refund_due", o.ID, got, p.Status)
			}
		}
	}
	if len(payments) != 3*n {
		t.Errorf("%d payments recorded, want %d", len(payments), 3*n)
	}
	e.wantRemaining(s.ID, s.Stock-live)
}

// testRefundRaces: refunds of one payment owed back, delivered at once
// (to two nodes, in cluster mode), each more than half of it, and one of
// them twice. Whatever order they are applied in, the refunds settling it
// never add up to more than it (one settles it, the others settle
// nothing: refund_unexpected), and each event is applied once.
func testRefundRaces(t *testing.T, h Harness) {
	e, _, o := paidOrder(t, h)
	e.cancel(o.ID, at(time.Second))
	e.record(event("pay", surge.PaymentSucceeded, o.ID, 2*price, "USD"), at(2*time.Second), surge.PaymentRefundDue)
	const n = 6
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied = map[string]int{}
	)
	for i := range n + 1 {
		id := fmt.Sprintf("r_%d", min(i, n-1)) // r_5 twice
		wg.Go(func() {
			r, err := e.payments().RecordPayment(e.ctx, event(id, surge.RefundSucceeded, o.ID, price+1, "USD"), at(3*time.Second))
			if err != nil {
				t.Errorf("RecordPayment(%s): %v", id, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if !r.Replay {
				applied[id]++
			}
		})
	}
	wg.Wait()
	var settled int64
	var refunds []string
	for id, p := range e.allPayments() {
		if p.Type != surge.RefundSucceeded {
			continue
		}
		if applied[id] != 1 {
			t.Errorf("refund %s applied %d times, want once", id, applied[id])
		}
		switch p.Status {
		case surge.PaymentRefund:
			settled += p.AmountCents
			refunds = append(refunds, id)
		case surge.PaymentRefundUnexpected:
		default:
			t.Errorf("refund %s recorded %s", id, p.Status)
		}
	}
	if len(applied) != n || len(refunds) != 1 || settled > 2*price {
		t.Errorf("%d refunds of %d cents each of a payment of %d applied (%v), %v settling %d cents of it; want %d applied, one settling it",
			len(applied), price+1, 2*price, applied, refunds, settled, n)
	}
	e.wantPaymentStatus("pay", surge.PaymentRefundDue) // price-1 still owed
	e.wantStatus(o.ID, surge.OrderCancelled)
}
