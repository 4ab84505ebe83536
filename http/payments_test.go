package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/api"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testtoken"
	"github.com/surgehq/surge/payments"
)

const (
	hookSecret    = "whsec_current_0123456789abcdef"
	oldHookSecret = "whsec_previous_0123456789abcdef"
	hookPath      = "/v1/payments/webhook"
)

// sign is body's v1 signature at t (testtoken.WebhookV1).
func sign(secret string, t time.Time, body string) string {
	return testtoken.WebhookV1(secret, t.Unix(), []byte(body))
}

func signed(secret, body string) opt {
	now := time.Now()
	return header("Surge-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(secret, now, body)))
}

// paymentEnv is a server taking generic webhooks signed with either of the
// two secrets of a rotation, with a sale at 129.99 EUR a unit.
func paymentEnv(t *testing.T, provider string) *env {
	e := newEnv(t, envOptions{insecureUserHeader: true,
		payments: surgehttp.Payments{Provider: provider, Secrets: []string{hookSecret, oldHookSecret}}})
	e.createSale(t, `{"id":"s","name":"Sneakers","stock":10,"per_user_limit":2,"price_cents":12999,"currency":"EUR","hold_seconds":60}`)
	return e
}

func hookBody(id, typ, orderID string, cents int64, currency string) string {
	return fmt.Sprintf(`{"id":%q,"type":%q,"order_id":%q,"amount_cents":%d,"currency":%q,"created":1767225600}`,
		id, typ, orderID, cents, currency)
}

// buyTwo reserves two units of sale s for user.
func (e *env) buyTwo(t *testing.T, user string) api.Order {
	t.Helper()
	r := e.do(t, "POST", "/v1/sales/s/purchases", `{"quantity":2}`, header(userHeader, user))
	wantStatus(t, r, http.StatusCreated)
	return mustOrder(t, r)
}

func (e *env) orderStatus(t *testing.T, id string) string {
	t.Helper()
	r := e.do(t, "GET", "/v1/orders/"+id, "", asAdmin())
	wantStatus(t, r, http.StatusOK)
	return mustOrder(t, r).Status
}

func paymentOf(t *testing.T, r response) api.Payment {
	t.Helper()
	var b api.PaymentBody
	if err := decodeStrict(r.body, &b); err != nil {
		t.Fatalf("%v: %v", r, err)
	}
	return b.Payment
}

func TestWebhookPays(t *testing.T) {
	e := paymentEnv(t, payments.Generic)
	o2 := e.buy(t, "s", header(userHeader, "bob"))
	body := hookBody("evt_1", "payment.succeeded", o2.ID, 12999, "EUR")
	first := e.do(t, "POST", hookPath, body, signed(hookSecret, body))
	wantStatus(t, first, http.StatusOK)
	if p := paymentOf(t, first); p.Status != "paid" || p.OrderID != o2.ID || p.SaleID != "s" || p.Provider != "surge" {
		t.Errorf("payment = %+v, want paid of %s", p, o2.ID)
	}
	if st := e.orderStatus(t, o2.ID); st != "paid" {
		t.Errorf("order is %s after the payment, want paid", st)
	}
	// Redelivered (signed anew, with the previous secret): the same answer.
	again := e.do(t, "POST", hookPath, body, signed(oldHookSecret, body))
	if again.status != first.status || !bytes.Equal(again.body, first.body) {
		t.Errorf("replay answered %v, want the first answer %v", again, first)
	}
}

func TestWebhookOutcomes(t *testing.T) {
	e := paymentEnv(t, payments.Generic)
	cancelled := e.buy(t, "s", header(userHeader, "u2"))
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+cancelled.ID+"/cancel", "", asAdmin()), http.StatusOK)
	expired := e.buy(t, "s", header(userHeader, "u3"))
	pending := e.buy(t, "s", header(userHeader, "u4"))
	e.clock.Advance(61 * time.Second)
	e.expire(t)
	pending = e.buy(t, "s", header(userHeader, "u5")) // live ones again
	short := e.buy(t, "s", header(userHeader, "u1"))

	now := time.Now()
	good := hookBody("evt_ok", "payment.succeeded", pending.ID, 12999, "EUR")
	for _, c := range []struct {
		name   string
		body   string
		opts   []opt
		status int
		code   string // error code, or the payment's status
	}{
		{"amount mismatch", hookBody("evt_short", "payment.succeeded", short.ID, 12998, "EUR"), nil, 422, "amount_mismatch"},
		{"currency mismatch", hookBody("evt_usd", "payment.succeeded", short.ID, 12999, "USD"), nil, 422, "amount_mismatch"},
		{"cancelled order", hookBody("evt_c", "payment.succeeded", cancelled.ID, 12999, "EUR"), nil, 200, "refund_due"},
		{"expired order", hookBody("evt_x", "payment.succeeded", expired.ID, 12999, "EUR"), nil, 200, "refund_due"},
		{"refund", hookBody("evt_r", "refund.succeeded", expired.ID, 12999, "EUR"), nil, 200, "refund"},
		{"failed", hookBody("evt_f", "payment.failed", pending.ID, 12999, "EUR"), nil, 200, "failed"},
		{"unknown order", hookBody("evt_u", "payment.succeeded", "o_missing", 12999, "EUR"), nil, 404, "order_not_found"},
		{"manual type", hookBody("evt_m", "manual", pending.ID, 12999, "EUR"), nil, 400, "invalid_request"},
		{"unknown type", hookBody("evt_t", "payment.maybe", pending.ID, 12999, "EUR"), nil, 400, "invalid_request"},
		{"currency of three bytes, not letters", hookBody("evt_euro", "payment.succeeded", short.ID, 12999, "€"), nil, 400, "invalid_request"},
		{"currency with a digit", hookBody("evt_e1r", "payment.succeeded", short.ID, 12999, "E1R"), nil, 400, "invalid_request"},
		// JSON's escape, not Go's: the body must decode for the check to be reached.
		{"id with a terminal escape", strings.Replace(hookBody("evt_ESC", "payment.succeeded", short.ID, 12999, "EUR"), "ESC", `\u001b[2J`, 1), nil, 400, "invalid_request"},
		{"id with a bidirectional override", strings.Replace(hookBody("evt_RLO", "payment.succeeded", short.ID, 12999, "EUR"), "RLO", `\u202e`, 1), nil, 400, "invalid_request"},
		// Milliseconds sent as seconds: stored as the year 57971, such a
		// time could not be read back, so its replay and every listing of
		// payments failed.
		{"created in milliseconds", strings.Replace(hookBody("evt_ms", "payment.succeeded", short.ID, 12999, "EUR"), "1767225600", "1767225600000", 1), nil, 400, "invalid_request"},
		{"created before the year 0000", strings.Replace(hookBody("evt_bc", "payment.succeeded", short.ID, 12999, "EUR"), "1767225600", "-62167219201", 1), nil, 400, "invalid_request"},
		// The operator's settlement of an order is the payment
		// manual_<order id>: an event of that id would make it a replay.
		{"id of the operator's settlement", hookBody("manual_"+pending.ID, "payment.failed", pending.ID, 12999, "EUR"), nil, 400, "invalid_request"},
		{"malformed", `{"id":"evt_j",`, nil, 400, "invalid_request"},
		{"missing field", `{"id":"evt_k","type":"payment.succeeded","order_id":"` + pending.ID + `","amount_cents":1,"currency":"EUR"}`, nil, 400, "invalid_request"},
		{"unknown field", strings.TrimSuffix(good, "}") + `,"extra":1}`, nil, 400, "invalid_request"},
		{"no signature", good, []opt{}, 401, "invalid_signature"},
		{"wrong secret", good, []opt{signed("whsec_someone_else", good)}, 401, "invalid_signature"},
		{"tampered body", good, []opt{signed(hookSecret, strings.Replace(good, "12999", "1", 1))}, 401, "invalid_signature"},
		{"old timestamp", good, []opt{header("Surge-Signature", fmt.Sprintf("t=%d,v1=%s",
			now.Add(-6*time.Minute).Unix(), sign(hookSecret, now.Add(-6*time.Minute), good)))}, 401, "invalid_signature"},
		{"no timestamp", good, []opt{header("Surge-Signature", "v1="+sign(hookSecret, time.Unix(0, 0), good))}, 401, "invalid_signature"},
		{"rotation: any v1 may match", good, []opt{header("Surge-Signature", fmt.Sprintf("t=%d,v1=%s,v1=%s",
			now.Unix(), sign("whsec_retired", now, good), sign(oldHookSecret, now, good)))}, 200, "paid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			if opts == nil {
				opts = []opt{signed(hookSecret, c.body)}
			}
			for i := range 2 { // a replay answers as the first delivery did
				r := e.do(t, "POST", hookPath, c.body, opts...)
				if r.status < 300 {
					wantStatus(t, r, c.status)
					if p := paymentOf(t, r); p.Status != c.code {
						t.Errorf("delivery %d: payment status %q, want %q", i, p.Status, c.code)
					}
				} else {
					wantError(t, r, c.status, c.code)
				}
			}
		})
	}
	for id, want := range map[string]string{short.ID: "reserved", cancelled.ID: "cancelled", expired.ID: "expired", pending.ID: "paid"} {
		if got := e.orderStatus(t, id); got != want {
			t.Errorf("order %s is %s, want %s", id, got, want)
		}
	}
	got := map[string]surge.PaymentStatus{}
	if err := e.store.Payments(context.Background(), func(p surge.Payment) error { got[p.ID] = p.Status; return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[string]surge.PaymentStatus{"evt_short": "amount_mismatch", "evt_usd": "amount_mismatch",
		"evt_c": "refund_due", "evt_x": "refunded", "evt_r": "refund", "evt_f": "failed", "evt_ok": "paid"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recorded payments %v, want %v", got, want)
	}
}

func TestWebhookOffWithoutSecret(t *testing.T) {
	e := newEnv(t, envOptions{})
	wantError(t, e.do(t, "POST", hookPath, "{}"), http.StatusNotFound, "not_found")
}

func TestAdminPayRecordsManualPayment(t *testing.T) {
	e := paymentEnv(t, payments.Generic)
	o := e.buyTwo(t, "alice")
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/pay", "", asAdmin()), http.StatusOK)
	var got []surge.Payment
	if err := e.store.Payments(context.Background(), func(p surge.Payment) error { got = append(got, p); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Type != surge.PaymentManual || got[0].Status != surge.PaymentPaid ||
		got[0].AmountCents != o.Quantity*12999 || got[0].Currency != "EUR" || got[0].OrderID != o.ID {
		t.Errorf("payments after the admin pay = %+v, want one manual payment of the order's amount", got)
	}
}

// stripeEvent reads a fixture of Stripe's event shape for order, signed
// by Stripe's scheme with the test secret.
func stripeEvent(t *testing.T, name, orderID string) (string, opt) {
	t.Helper()
	b, err := os.ReadFile("testdata/stripe/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(string(b), "ORDER_ID", orderID)
	now := time.Now()
	return body, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, body)))
}

func TestWebhookStripe(t *testing.T) {
	e := paymentEnv(t, payments.Stripe)
	o := e.buyTwo(t, "alice") // 2 × 129.99 EUR, as the fixtures
	body, sig := stripeEvent(t, "payment_intent.succeeded", o.ID)
	r := e.do(t, "POST", hookPath, body, sig)
	wantStatus(t, r, http.StatusOK)
	if p := paymentOf(t, r); p.ID != "pi_3QxSurgeTestPI01" || p.Status != "paid" || p.Currency != "EUR" || p.Provider != "stripe" {
		t.Errorf("payment = %+v, want the intent's, paid", p)
	}
	if st := e.orderStatus(t, o.ID); st != "paid" {
		t.Errorf("order is %s, want paid", st)
	}
	// The checkout session of the same payment: a replay, not a second
	// payment (which would be refund_due).
	body, sig = stripeEvent(t, "checkout.session.completed", o.ID)
	r2 := e.do(t, "POST", hookPath, body, sig)
	if r2.status != 200 || !bytes.Equal(r2.body, r.body) {
		t.Errorf("checkout.session.completed of the same payment = %v, want the first answer %v", r2, r)
	}
	// Other types are none of Surge's business, answered 200.
	body, sig = stripeEvent(t, "charge.succeeded", o.ID)
	wantStatus(t, e.do(t, "POST", hookPath, body, sig), http.StatusOK)
	// Surge's header is not Stripe's.
	body, _ = stripeEvent(t, "payment_intent.succeeded", o.ID)
	wantError(t, e.do(t, "POST", hookPath, body, signed(hookSecret, body)), http.StatusUnauthorized, "invalid_signature")
	n := 0
	if err := e.store.Payments(context.Background(), func(surge.Payment) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d payments recorded, want 1", n)
	}
}

func TestWebhookStripeCheckout(t *testing.T) {
	e := paymentEnv(t, payments.Stripe)
	o := e.buyTwo(t, "alice")
	body, sig := stripeEvent(t, "checkout.session.completed", o.ID)
	r := e.do(t, "POST", hookPath, body, sig)
	wantStatus(t, r, http.StatusOK)
	if p := paymentOf(t, r); p.ID != "pi_3QxSurgeTestPI01" || p.Status != "paid" || p.AmountCents != 25998 {
		t.Errorf("payment = %+v, want the session's intent, paid 25998", p)
	}
	// Not paid yet (an asynchronous method): ignored.
	o2 := e.buyTwo(t, "bob")
	body, _ = stripeEvent(t, "checkout.session.completed", o2.ID)
	body = strings.Replace(strings.Replace(body, `"payment_status": "paid"`, `"payment_status": "unpaid"`, 1), "cs_test_a1SurgeTestSession01", "cs_test_other", 1)
	now := time.Now()
	r = e.do(t, "POST", hookPath, body, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, body))))
	wantStatus(t, r, http.StatusOK)
	if st := e.orderStatus(t, o2.ID); st != "reserved" {
		t.Errorf("order with an unpaid checkout is %s, want reserved", st)
	}
}

// TestWebhookStripeRefund: charge.refunded takes the refund flow of the
// generic refund.succeeded: the refund of a payment that came for a
// cancelled order settles its refund_due payment; a repeat is a replay; a
// later partial refund of the same charge counts only its own step.
func TestWebhookStripeRefund(t *testing.T) {
	e := paymentEnv(t, payments.Stripe)
	o := e.buyTwo(t, "alice") // 2 × 129.99 EUR, as the fixtures
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", header(userHeader, "alice")), http.StatusOK)
	body, sig := stripeEvent(t, "payment_intent.succeeded", o.ID)
	r := e.do(t, "POST", hookPath, body, sig)
	if p := paymentOf(t, r); p.Status != "refund_due" {
		t.Fatalf("payment of a cancelled order = %+v, want refund_due", p)
	}
	body, sig = stripeEvent(t, "charge.refunded", o.ID)
	r = e.do(t, "POST", hookPath, body, sig)
	wantStatus(t, r, http.StatusOK)
	p := paymentOf(t, r)
	if p.ID != "evt_3QxSurgeTest0004" || p.Type != "refund.succeeded" || p.Status != "refund" || p.Settles != "pi_3QxSurgeTestPI01" ||
		p.AmountCents != 25998 || p.Currency != "EUR" || p.OrderID != o.ID || p.Provider != "stripe" {
		t.Errorf("charge.refunded = %+v, want a refund of 259.98 EUR settling pi_3QxSurgeTestPI01", p)
	}
	// Stripe delivers it again: the first answer, nothing new.
	r2 := e.do(t, "POST", hookPath, body, sig)
	if r2.status != 200 || !bytes.Equal(r2.body, r.body) {
		t.Errorf("charge.refunded again = %v, want the first answer %v", r2, r)
	}
	// A second, partial step of a charge (amount_refunded 15000 after
	// 10000): its own 50.00 EUR, with no refund_due to settle.
	partial := strings.NewReplacer(`"evt_3QxSurgeTest0004"`, `"evt_3QxSurgeTest0005"`, `"amount_refunded": 25998`, `"amount_refunded": 15000`,
		`"amount_refunded": 0,`, `"amount_refunded": 10000,`).Replace(body)
	now := time.Now()
	r = e.do(t, "POST", hookPath, partial, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, partial))))
	if p := paymentOf(t, r); p.AmountCents != 5000 || p.Status != "refund_unexpected" {
		t.Errorf("partial step = %+v, want 5000 cents, refund_unexpected", p)
	}
	got := map[string]surge.PaymentStatus{}
	if err := e.store.Payments(context.Background(), func(p surge.Payment) error { got[p.ID] = p.Status; return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[string]surge.PaymentStatus{"pi_3QxSurgeTestPI01": "refunded", "evt_3QxSurgeTest0004": "refund", "evt_3QxSurgeTest0005": "refund_unexpected"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recorded payments %v, want %v", got, want)
	}
	// Without surge_order_id it is none of Surge's business.
	body, sig = stripeEvent(t, "charge.refunded", "")
	body = strings.Replace(body, `{"surge_order_id": ""}`, `{}`, 1)
	now = time.Now()
	wantStatus(t, e.do(t, "POST", hookPath, body, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, body)))), http.StatusOK)
	n := 0
	if err := e.store.Payments(context.Background(), func(surge.Payment) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("%d payments recorded after an event without the metadata, want still 3", n)
	}
}

// TestWebhookStripeCheckoutAsyncPaid: a Checkout Session paid with a
// delayed method (SEPA debit, Bacs, ACH...) completes unpaid; Stripe
// sends checkout.session.async_payment_succeeded when the money arrives,
// with the session's metadata (Checkout does not copy it onto the
// PaymentIntent, so payment_intent.succeeded carries no surge_order_id).
// docs/payments.md lets the shop set surge_order_id on the session
// alone. That event is the only one of this payment that names the order:
// ignored, the money taken is recorded nowhere and the order expires with
// no refund_due (docs/payments.md: "an order ends either paid ... or
// expired/cancelled with its money refund_due").
func TestWebhookStripeCheckoutAsyncPaid(t *testing.T) {
	e := paymentEnv(t, payments.Stripe)
	o := e.buyTwo(t, "alice")
	// completed, unpaid yet: ignored (TestWebhookStripeCheckout).
	body, _ := stripeEvent(t, "checkout.session.completed", o.ID)
	body = strings.Replace(body, `"payment_status": "paid"`, `"payment_status": "unpaid"`, 1)
	now := time.Now()
	wantStatus(t, e.do(t, "POST", hookPath, body, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, body)))), http.StatusOK)
	// The money arrives.
	body, sig := stripeEvent(t, "checkout.session.async_payment_succeeded", o.ID)
	r := e.do(t, "POST", hookPath, body, sig)
	wantStatus(t, r, http.StatusOK)
	b := hookAnswer(t, r)
	if b.Payment == nil || b.Payment.ID != "pi_3QxSurgeTestPI01" || b.Payment.Status != "paid" || b.Payment.AmountCents != 25998 {
		t.Errorf("checkout.session.async_payment_succeeded of 259.98 EUR for order %s answered %s: want the payment pi_3QxSurgeTestPI01 recorded paid; the money Stripe took is recorded nowhere",
			o.ID, r.body)
	}
	if st := e.orderStatus(t, o.ID); st != "paid" {
		t.Errorf("order %s is %s after Stripe said its checkout was paid, want paid", o.ID, st)
	}
}

// TestWebhookSignatureErrorNamesItsHeader: the generic scheme is signed in
// Surge-Signature (docs/payments.md), but a webhook without it, or with a
// malformed one, was told "webhook has no Stripe-Signature header" (the
// verifier's own words, from stripe-go): a provider's engineer following
// the message would add the wrong header. Each scheme's refusal names the
// header that scheme reads, and never the other one.
func TestWebhookSignatureErrorNamesItsHeader(t *testing.T) {
	for _, tc := range []struct{ provider, want, other string }{
		{payments.Generic, "Surge-Signature", "Stripe-Signature"},
		{payments.Stripe, "Stripe-Signature", "Surge-Signature"},
	} {
		e := paymentEnv(t, tc.provider)
		body := hookBody("evt_1", "payment.succeeded", "o_00000000000000000000000000", 12999, "EUR")
		for _, c := range []struct {
			name string
			opts []opt
		}{
			{"no header", nil},
			{"malformed header", []opt{header(tc.want, "not a signature")}},
		} {
			r := e.do(t, "POST", hookPath, body, c.opts...)
			wantError(t, r, http.StatusUnauthorized, "invalid_signature")
			msg := string(r.body)
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, tc.other) {
				t.Errorf("--payments %s, %s: %s; want the message to name %s, the header this scheme reads, and not %s",
					tc.provider, c.name, msg, tc.want, tc.other)
			}
		}
	}
}

// TestWebhookStripeCheckoutNoPaymentRequired: a Checkout Session whose
// amount due is zero (a free order, or a coupon taking all of it) completes
// with payment_status "no_payment_required" (Stripe's third value, beside
// paid and unpaid) and no PaymentIntent; no other event of it follows. It
// was ignored as "not paid": the buyer checked out, yet the order's hold
// expired and its units went back on sale. A zero amount pays an order that
// costs nothing; it never pays one that costs money (amount_mismatch), and
// a session with an amount still due (a payment delayed) pays nothing yet.
func TestWebhookStripeCheckoutNoPaymentRequired(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sale        string // the sale bought: "free" costs 0, "s" 129.99 EUR a unit
		amountTotal int64
		wantStatus  int
		wantPayment string // the payment's status; "" for ignored
		wantOrder   string
	}{
		{"free order", "free", 0, http.StatusOK, "paid", "paid"},
		{"priced order discounted to zero", "s", 0, http.StatusUnprocessableEntity, "amount_mismatch", "reserved"},
		{"amount still due", "s", 25998, http.StatusOK, "", "reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := paymentEnv(t, payments.Stripe)
			e.createSale(t, `{"id":"free","name":"Sticker","stock":10,"per_user_limit":2,"price_cents":0,"currency":"EUR","hold_seconds":60}`)
			r := e.do(t, "POST", "/v1/sales/"+tc.sale+"/purchases", `{"quantity":2}`, header(userHeader, "alice"))
			wantStatus(t, r, http.StatusCreated)
			o := mustOrder(t, r)
			body, _ := stripeEvent(t, "checkout.session.completed", o.ID)
			body = strings.NewReplacer(`"payment_status": "paid"`, `"payment_status": "no_payment_required"`,
				`"amount_total": 25998`, fmt.Sprintf(`"amount_total": %d`, tc.amountTotal),
				`"amount_discount": 0`, fmt.Sprintf(`"amount_discount": %d`, 25998-tc.amountTotal),
				`"payment_intent": "pi_3QxSurgeTestPI01"`, `"payment_intent": null`).Replace(body)
			now := time.Now()
			r = e.do(t, "POST", hookPath, body, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, body))))
			recorded := map[string]surge.PaymentStatus{}
			if err := e.store.Payments(context.Background(), func(p surge.Payment) error { recorded[p.ID] = p.Status; return nil }); err != nil {
				t.Fatal(err)
			}
			wantN := 0 // an ignored session is recorded nowhere
			if tc.wantPayment != "" {
				wantN = 1
			}
			if r.status != tc.wantStatus || string(recorded["cs_test_a1SurgeTestSession01"]) != tc.wantPayment || len(recorded) != wantN {
				t.Errorf("checkout.session.completed, no_payment_required, amount_total %d, of order %s of sale %s answered %d %s and recorded %v; want %d with the session cs_test_a1SurgeTestSession01 recorded %q",
					tc.amountTotal, o.ID, tc.sale, r.status, r.body, recorded, tc.wantStatus, tc.wantPayment)
			}
			if st := e.orderStatus(t, o.ID); st != tc.wantOrder {
				t.Errorf("order %s of sale %s is %s after its checkout completed with no payment required (amount_total %d); want %s (a reserved order's hold expires and its units go back on sale)",
					o.ID, tc.sale, st, tc.amountTotal, tc.wantOrder)
			}
		})
	}
}

// TestWebhookAmountMismatchNamesAmountInMajorUnits: the 422 of a payment
// whose amount is not the order's wrote its amount as minor units beside
// the currency's code, "payment evt_short of 12998 EUR", which reads as
// 12,998 euros, and a Stripe króna payment of 400 kr (Stripe's 40000
// hundredths) as "40000 ISK", where surge reconcile names the same payment
// "400.00 ISK". It is written as reconcile and surge sale list write
// amounts: major units, in the places the provider counts.
func TestWebhookAmountMismatchNamesAmountInMajorUnits(t *testing.T) {
	for _, tc := range []struct {
		name, provider, sale string
		event                func(orderID string) (string, opt)
		want                 string
	}{
		{"generic EUR", payments.Generic,
			`{"id":"s2","name":"Sneakers","stock":10,"per_user_limit":2,"price_cents":12999,"currency":"EUR","hold_seconds":60}`,
			func(orderID string) (string, opt) {
				body := hookBody("evt_short", "payment.succeeded", orderID, 25997, "EUR")
				return body, signed(hookSecret, body)
			}, "259.97 EUR"},
		{"generic JPY", payments.Generic,
			`{"id":"s2","name":"Sneakers","stock":10,"per_user_limit":2,"price_cents":1000,"currency":"JPY","hold_seconds":60}`,
			func(orderID string) (string, opt) {
				body := hookBody("evt_short", "payment.succeeded", orderID, 1999, "JPY")
				return body, signed(hookSecret, body)
			}, "1999 JPY"},
		{"Stripe ISK, in Stripe's hundredths", payments.Stripe,
			// 500 kr a unit, in Stripe's hundredths (TestReconcileStripeISKDecimal)
			`{"id":"s2","name":"Sneakers","stock":10,"per_user_limit":2,"price_cents":50000,"currency":"ISK","hold_seconds":60}`,
			func(orderID string) (string, opt) {
				body, _ := stripeEvent(t, "payment_intent.succeeded", orderID)
				body = strings.NewReplacer(`"amount": 25998`, `"amount": 40000`, `"amount_received": 25998`, `"amount_received": 40000`,
					`"currency": "eur"`, `"currency": "isk"`).Replace(body)
				now := time.Now()
				return body, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, body)))
			}, "400.00 ISK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := paymentEnv(t, tc.provider)
			e.createSale(t, tc.sale)
			r := e.do(t, "POST", "/v1/sales/s2/purchases", `{"quantity":2}`, header(userHeader, "alice"))
			wantStatus(t, r, http.StatusCreated)
			o := mustOrder(t, r)
			body, sig := tc.event(o.ID)
			r = e.do(t, "POST", hookPath, body, sig)
			wantError(t, r, http.StatusUnprocessableEntity, "amount_mismatch")
			var got apiError
			_ = json.Unmarshal(r.body, &got)
			if !strings.Contains(got.Error.Message, " "+tc.want+" ") {
				t.Errorf("the 422 of a payment of %s for order %s says %q; want it to name the amount as %q, major units in the provider's places, as surge reconcile does",
					tc.want, o.ID, got.Error.Message, tc.want)
			}
		})
	}
}

// TestWebhookStripeCheckoutWithoutPayment: a Checkout Session in setup
// mode (it saves a card; the shop charges it later, off-session) or in
// subscription mode with a free trial completes with payment_status
// "no_payment_required" and nothing charged, though it carries a
// currency (Stripe requires one in setup mode with dynamic payment
// methods). No money moved, so it is not the order's payment: it is
// ignored, as before free checkouts were taken as payments, and the
// order's real payment comes later under its own id. Taken as a payment
// of zero, it was recorded amount_mismatch and answered 422, which
// Stripe retries for days.
func TestWebhookStripeCheckoutWithoutPayment(t *testing.T) {
	for _, tc := range []struct {
		name string
		repl []string // replaces in the paid checkout.session.completed fixture
	}{
		{"setup mode", []string{`"mode": "payment"`, `"mode": "setup"`,
			`"amount_subtotal": 25998`, `"amount_subtotal": null`, `"amount_total": 25998`, `"amount_total": null`,
			`"total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}`, `"total_details": null`,
			`"payment_intent": "pi_3QxSurgeTestPI01"`, `"payment_intent": null, "setup_intent": "seti_1QxSurgeTestSetup01"`}},
		{"subscription with a free trial", []string{`"mode": "payment"`, `"mode": "subscription"`,
			`"amount_subtotal": 25998`, `"amount_subtotal": 0`, `"amount_total": 25998`, `"amount_total": 0`,
			`"payment_intent": "pi_3QxSurgeTestPI01"`, `"payment_intent": null, "subscription": "sub_1QxSurgeTestSub01"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := paymentEnv(t, payments.Stripe)
			o := e.buyTwo(t, "alice") // 2 × 129.99 EUR
			body, _ := stripeEvent(t, "checkout.session.completed", o.ID)
			repl := append([]string{`"payment_status": "paid"`, `"payment_status": "no_payment_required"`}, tc.repl...)
			for i := 0; i < len(repl); i += 2 {
				if !strings.Contains(body, repl[i]) {
					t.Fatalf("the fixture has no %s to replace", repl[i])
				}
			}
			body = strings.NewReplacer(repl...).Replace(body)
			now := time.Now()
			r := e.do(t, "POST", hookPath, body, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, body))))
			recorded := map[string]surge.PaymentStatus{}
			if err := e.store.Payments(context.Background(), func(p surge.Payment) error { recorded[p.ID] = p.Status; return nil }); err != nil {
				t.Fatal(err)
			}
			if r.status != http.StatusOK || len(recorded) != 0 {
				t.Errorf("checkout.session.completed in %s, no_payment_required, of priced order %s answered %d %s and recorded %v; want 200, ignored and recorded nowhere (no money moved; the order's payment comes later)",
					tc.name, o.ID, r.status, r.body, recorded)
			}
			if st := e.orderStatus(t, o.ID); st != "reserved" {
				t.Errorf("order %s is %s; want reserved", o.ID, st)
			}
		})
	}
}

// TestWebhookStripeCheckoutRefund: a Checkout Session carries
// surge_order_id in its own metadata, and Stripe copies it neither onto
// the PaymentIntent nor onto the charge, so the charge.refunded of that
// payment names no order: only its payment_intent, the id under which
// Surge recorded the session's payment. It was ignored ("carries no
// surge_order_id metadata"): the refund_due payment stayed owed and surge
// reconcile asked for a second refund. It settles the payment it refunds.
func TestWebhookStripeCheckoutRefund(t *testing.T) {
	e := paymentEnv(t, payments.Stripe)
	o := e.buyTwo(t, "alice") // 2 × 129.99 EUR, as the fixtures
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", header(userHeader, "alice")), http.StatusOK)
	body, sig := stripeEvent(t, "checkout.session.completed", o.ID)
	if p := paymentOf(t, e.do(t, "POST", hookPath, body, sig)); p.ID != "pi_3QxSurgeTestPI01" || p.Status != "refund_due" {
		t.Fatalf("checkout of a cancelled order = %+v, want pi_3QxSurgeTestPI01 refund_due", p)
	}
	// The charge of a Checkout payment: no metadata.
	body, _ = stripeEvent(t, "charge.refunded", o.ID)
	body = strings.Replace(body, `{"surge_order_id": "`+o.ID+`"}`, `{}`, 1)
	now := time.Now()
	r := e.do(t, "POST", hookPath, body, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, body))))
	wantStatus(t, r, http.StatusOK)
	b := hookAnswer(t, r)
	if b.Payment == nil || b.Payment.Status != "refund" || b.Payment.Settles != "pi_3QxSurgeTestPI01" || b.Payment.OrderID != o.ID {
		t.Errorf("charge.refunded of payment_intent pi_3QxSurgeTestPI01 (the refund_due payment of order %s, whose checkout session named it) answered %s; "+
			"want a refund of order %s settling pi_3QxSurgeTestPI01", o.ID, r.body, o.ID)
	}
	got := map[string]surge.PaymentStatus{}
	if err := e.store.Payments(context.Background(), func(p surge.Payment) error { got[p.ID] = p.Status; return nil }); err != nil {
		t.Fatal(err)
	}
	if got["pi_3QxSurgeTestPI01"] != surge.PaymentRefunded {
		t.Errorf("payment pi_3QxSurgeTestPI01 is %q after its refund, want refunded", got["pi_3QxSurgeTestPI01"])
	}
	// A charge of a payment Surge never recorded, without the metadata,
	// is none of Surge's business, as before: 200, ignored, nothing recorded.
	other := strings.NewReplacer("pi_3QxSurgeTestPI01", "pi_3QxSomeoneElse", "evt_3QxSurgeTest0004", "evt_3QxSurgeTest0009").Replace(body)
	now = time.Now()
	r = e.do(t, "POST", hookPath, other, header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, other))))
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"ignored"`) {
		t.Errorf("charge.refunded of an unknown payment without metadata answered %s, want ignored", r.body)
	}
	n := 0
	if err := e.store.Payments(context.Background(), func(surge.Payment) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d payments recorded, want the payment and its refund", n)
	}
}

// webhookAnswer is a payment webhook's 200: the payment recorded, or why
// the event was ignored.
type webhookAnswer struct {
	Payment *api.Payment `json:"payment"`
	Ignored string       `json:"ignored"`
}

// hookAnswer decodes r, a payment webhook's answer.
func hookAnswer(t *testing.T, r response) webhookAnswer {
	t.Helper()
	var b webhookAnswer
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("%v: %v", r, err)
	}
	return b
}

// stripeSigned signs body by Stripe's scheme with the test secret, now.
func stripeSigned(body string) opt {
	now := time.Now()
	return header("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, body)))
}

// TestWebhookStripeRefundOfItsPayment: a charge.refunded whose charge
// carries surge_order_id (a PaymentIntent's metadata, copied onto its
// charge) names its PaymentIntent too, the id of the payment it gives
// back. It was matched by amount to the order's oldest payment owed: the
// refund of the paid payment settled a duplicate payment of the same
// amount, which was called refunded with its money still taken, and the
// paid order's refund was hidden. It settles the payment it names only,
// also when delivered before it.
func TestWebhookStripeRefundOfItsPayment(t *testing.T) {
	e := paymentEnv(t, payments.Stripe)
	o := e.buyTwo(t, "alice") // 2 × 129.99 EUR, as the fixtures
	post := func(name string, r *strings.Replacer) api.Payment {
		t.Helper()
		body, _ := stripeEvent(t, name, o.ID)
		body = r.Replace(body)
		return paymentOf(t, e.do(t, "POST", hookPath, body, stripeSigned(body)))
	}
	paid := post("payment_intent.succeeded", strings.NewReplacer())
	dup := post("payment_intent.succeeded", strings.NewReplacer("pi_3QxSurgeTestPI01", "pi_3QxSurgeTestPI02", "evt_3QxSurgeTest0001", "evt_3QxSurgeTest0011"))
	if paid.Status != "paid" || dup.Status != "refund_due" {
		t.Fatalf("payment and duplicate payment of order %s: %s and %s, want paid and refund_due", o.ID, paid.Status, dup.Status)
	}
	// The paid payment refunded at Stripe (the shop gave the buyer's money back).
	r := post("charge.refunded", strings.NewReplacer())
	if r.Status != "refund_unexpected" || r.Settles != "" {
		t.Errorf("charge.refunded of payment_intent pi_3QxSurgeTestPI01 (paid) of order %s: %s settling %q; "+
			"want refund_unexpected (the paid order refunded), not a refund of duplicate pi_3QxSurgeTestPI02", o.ID, r.Status, r.Settles)
	}
	r = post("charge.refunded", strings.NewReplacer("pi_3QxSurgeTestPI01", "pi_3QxSurgeTestPI02", "evt_3QxSurgeTest0004", "evt_3QxSurgeTest0014"))
	if r.Status != "refund" || r.Settles != "pi_3QxSurgeTestPI02" {
		t.Errorf("charge.refunded of payment_intent pi_3QxSurgeTestPI02 (refund_due): %s settling %q; want refund settling pi_3QxSurgeTestPI02", r.Status, r.Settles)
	}
	// A cancelled order's refund delivered before its payment settles it.
	o = e.buyTwo(t, "bob")
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", header(userHeader, "bob")), http.StatusOK)
	third := strings.NewReplacer("pi_3QxSurgeTestPI01", "pi_3QxSurgeTestPI03", "evt_3QxSurgeTest0004", "evt_3QxSurgeTest0024", "evt_3QxSurgeTest0001", "evt_3QxSurgeTest0021")
	if r := post("charge.refunded", third); r.Status != "refund_unexpected" {
		t.Errorf("charge.refunded before its payment = %s, want refund_unexpected", r.Status)
	}
	if p := post("payment_intent.succeeded", third); p.Status != "refunded" {
		t.Errorf("payment pi_3QxSurgeTestPI03 of cancelled order %s, its refund delivered first: %s, want refunded", o.ID, p.Status)
	}
	got := map[string]surge.PaymentStatus{}
	if err := e.store.Payments(context.Background(), func(p surge.Payment) error { got[p.ID] = p.Status; return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[string]surge.PaymentStatus{"pi_3QxSurgeTestPI01": "paid", "pi_3QxSurgeTestPI02": "refunded", "pi_3QxSurgeTestPI03": "refunded",
		"evt_3QxSurgeTest0004": "refund_unexpected", "evt_3QxSurgeTest0014": "refund", "evt_3QxSurgeTest0024": "refund"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recorded payments %v, want %v", got, want)
	}
}

// TestWebhookStripeCheckoutRefundBeforePayment: Stripe does not deliver
// events in order, so the charge.refunded of a Checkout payment (no
// surge_order_id on the charge, only its payment_intent) may come before
// checkout.session.completed. It was ignored and recorded nowhere (Surge
// knew no payment under that PaymentIntent yet), so the payment, when it
// came for its cancelled order, stayed refund_due for good: surge
// reconcile asked for a second refund. It is answered as before, kept
// aside, and settles the payment when it comes, also in steps.
func TestWebhookStripeCheckoutRefundBeforePayment(t *testing.T) {
	e := paymentEnv(t, payments.Stripe)
	post := func(name string, o api.Order, r *strings.Replacer) response {
		t.Helper()
		body, _ := stripeEvent(t, name, o.ID)
		if name == "charge.refunded" { // a Checkout payment's charge: no metadata
			body = strings.Replace(body, `{"surge_order_id": "`+o.ID+`"}`, `{}`, 1)
		}
		body = r.Replace(body)
		return e.do(t, "POST", hookPath, body, stripeSigned(body))
	}
	alice, bob := e.buyTwo(t, "alice"), e.buyTwo(t, "bob") // each 2 × 129.99 EUR, as the fixtures
	for _, o := range []api.Order{alice, bob} {
		wantStatus(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", header(userHeader, o.UserID)), http.StatusOK)
	}
	whole := strings.NewReplacer()
	// Bob's payment refunded in two steps: 100.00, then 159.98 EUR.
	bobs := strings.NewReplacer("pi_3QxSurgeTestPI01", "pi_3QxSurgeTestPI02", "cs_test_a1SurgeTestSession01", "cs_test_a1SurgeTestSession02")
	step1 := strings.NewReplacer("pi_3QxSurgeTestPI01", "pi_3QxSurgeTestPI02", "evt_3QxSurgeTest0004", "evt_3QxSurgeTest0014",
		`"amount_refunded": 25998`, `"amount_refunded": 10000`)
	step2 := strings.NewReplacer("pi_3QxSurgeTestPI01", "pi_3QxSurgeTestPI02", "evt_3QxSurgeTest0004", "evt_3QxSurgeTest0024",
		`"amount_refunded": 0,`, `"amount_refunded": 10000,`)
	for _, c := range []struct {
		o api.Order
		r *strings.Replacer
	}{{alice, whole}, {alice, whole}, {bob, step1}, {bob, step2}} { // alice's delivered twice
		r := post("charge.refunded", c.o, c.r)
		if r.status != http.StatusOK || hookAnswer(t, r).Ignored == "" {
			t.Errorf("charge.refunded without metadata of a payment Surge has not recorded yet = %v, want 200 ignored", r)
		}
	}
	var answered []string
	for _, c := range []struct {
		o api.Order
		r *strings.Replacer
	}{{alice, whole}, {bob, bobs}} {
		p := paymentOf(t, post("checkout.session.completed", c.o, c.r))
		answered = append(answered, p.ID+":"+p.Status)
	}
	got := map[string]string{}
	if err := e.store.Payments(context.Background(), func(p surge.Payment) error {
		got[p.ID] = fmt.Sprintf("%s %d settling %q", p.Status, p.AmountCents, p.Settles)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"pi_3QxSurgeTestPI01":  `refunded 25998 settling ""`,
		"pi_3QxSurgeTestPI02":  `refunded 25998 settling ""`,
		"evt_3QxSurgeTest0004": `refund 25998 settling "pi_3QxSurgeTestPI01"`,
		"evt_3QxSurgeTest0014": `refund 10000 settling "pi_3QxSurgeTestPI02"`,
		"evt_3QxSurgeTest0024": `refund 15998 settling "pi_3QxSurgeTestPI02"`,
	}
	if fmt.Sprint(answered) != "[pi_3QxSurgeTestPI01:refunded pi_3QxSurgeTestPI02:refunded]" || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("checkout.session.completed of cancelled orders, their charge.refunded (whole; in two steps) delivered first: answered %v, recorded %v; "+
			"want both refunded, recorded %v", answered, got, want)
	}
	// Delivered again now, the refund is a replay of what it became.
	if p := paymentOf(t, post("charge.refunded", alice, whole)); p.ID != "evt_3QxSurgeTest0004" || p.Status != "refund" || p.OrderID != alice.ID {
		t.Errorf("charge.refunded delivered again after its payment = %+v, want the refund of order %s", p, alice.ID)
	}
}

// TestWebhookNotRefusedByAddressLimit: the payment provider delivers a
// spike's payments from a handful of addresses, and the per-address limit
// (--rate-limit-ip) refused them 429 like any client's requests past its
// allowance: the provider retried hours later, by when the holds had
// expired and the buyers who paid had lost their orders (refund_due). A
// delivery whose signature verifies is the provider's, authenticated, and
// takes no token of its address; one that does not still counts against
// it, answered 429 when over.
func TestWebhookNotRefusedByAddressLimit(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true,
		protection: surgehttp.Protection{IP: admission.NewKeyed(rate.Every(time.Hour), 50, 100, time.Hour)},
		payments:   surgehttp.Payments{Provider: payments.Generic, Secrets: []string{hookSecret}}})
	e.createSale(t, `{"id":"s","name":"Sneakers","stock":10,"per_user_limit":2,"price_cents":12999,"currency":"EUR","hold_seconds":60}`)
	var orders []api.Order
	for _, u := range []string{"ann", "bob", "cy"} {
		orders = append(orders, e.buy(t, "s", header(userHeader, u)))
	}
	// Spend what is left of the address's allowance.
	for i := 0; ; i++ {
		if r := e.do(t, "GET", "/v1/sales/s", ""); r.status == http.StatusTooManyRequests {
			break
		}
		if i == 100 {
			t.Fatal("the address's allowance never ran out")
		}
	}
	for i, o := range orders {
		body := hookBody(fmt.Sprintf("evt_%d", i), "payment.succeeded", o.ID, 12999, "EUR")
		r := e.do(t, "POST", hookPath, body, signed(hookSecret, body))
		if r.status != http.StatusOK {
			t.Fatalf("a signed payment delivered from an address past its rate limit answered %v; want 200 (the provider's deliveries are not an address's requests to limit)", r)
		}
		if p := paymentOf(t, r); p.Status != "paid" {
			t.Errorf("payment %+v, want paid", p)
		}
	}
	body := hookBody("evt_forged", "payment.succeeded", orders[0].ID, 12999, "EUR")
	r := e.do(t, "POST", hookPath, body, signed("whsec_wrong_0123456789abcdef", body))
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("a badly signed delivery from an address past its rate limit answered %v; want 429 with Retry-After", r)
	}
}

// TestWebhookStripeRefundOfAnotherProvidersPayment: a Stripe refund naming
// only its PaymentIntent, whose id Surge recorded as another provider's
// payment (the generic webhook's, before the switch to --payments
// stripe), is not kept for that payment: a Stripe payment of the id would
// be a replay of the other. It was answered "kept for 30 days: it refunds
// that payment if it comes by then", which could never happen.
func TestWebhookStripeRefundOfAnotherProvidersPayment(t *testing.T) {
	e := paymentEnv(t, payments.Stripe)
	o := e.buyTwo(t, "alice")
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", header(userHeader, "alice")), http.StatusOK)
	generic := surge.PaymentEvent{ID: "pi_3QxSurgeTestPI01", Type: surge.PaymentSucceeded, OrderID: o.ID, AmountCents: 25998,
		Currency: "EUR", Created: time.Unix(1767225600, 0).UTC(), Provider: payments.Generic}
	if _, err := e.store.RecordPayment(context.Background(), generic, time.Now()); err != nil {
		t.Fatal(err)
	}
	body, _ := stripeEvent(t, "charge.refunded", o.ID)
	body = strings.ReplaceAll(body, `"metadata": {"surge_order_id": "`+o.ID+`"}`, `"metadata": {}`)
	r := e.do(t, "POST", hookPath, body, stripeSigned(body))
	wantStatus(t, r, http.StatusOK)
	if a := hookAnswer(t, r); a.Payment != nil || a.Ignored == "" || strings.Contains(a.Ignored, "kept for") || !strings.Contains(a.Ignored, "not kept") {
		t.Errorf("refund naming payment pi_3QxSurgeTestPI01, the generic webhook's, answered %s; want it ignored, saying it is not kept (no Stripe payment of that id can come)", r.body)
	}
}

// TestWebhookRefusesTimestampAhead: stripe-go refuses a signature's
// timestamp only when it is old. One ahead of the clock by more than the
// tolerance (milliseconds sent as seconds, the mistake of an adapter
// signing with Date.now()) passed, and stayed good for ever: a captured
// delivery could be replayed for as long. It is refused as an old one is,
// saying what is wrong; a clock a little ahead (within the tolerance) is
// still accepted.
func TestWebhookRefusesTimestampAhead(t *testing.T) {
	e := paymentEnv(t, payments.Generic)
	o := e.buy(t, "s", header(userHeader, "u1"))
	body := hookBody("evt_ahead", "payment.succeeded", o.ID, 12999, "EUR")
	now := time.Now()
	signedAt := func(ts int64) opt {
		return header("Surge-Signature", fmt.Sprintf("t=%d,v1=%s", ts, testtoken.WebhookV1(hookSecret, ts, []byte(body))))
	}
	for _, c := range []struct {
		name string
		ts   int64
		want string
	}{
		{"milliseconds sent as seconds", now.UnixMilli(), "ahead"},
		{"six minutes ahead", now.Add(6 * time.Minute).Unix(), "ahead"},
	} {
		r := e.do(t, "POST", hookPath, body, signedAt(c.ts))
		wantError(t, r, http.StatusUnauthorized, "invalid_signature")
		if !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s: %s; want the message to say the timestamp is %s", c.name, r.body, c.want)
		}
	}
	if got := e.orderStatus(t, o.ID); got != "reserved" {
		t.Fatalf("order %s is %s after refused deliveries, want reserved", o.ID, got)
	}
	r := e.do(t, "POST", hookPath, body, signedAt(now.Add(time.Minute).Unix()))
	wantStatus(t, r, http.StatusOK)
	if p := paymentOf(t, r); p.Status != "paid" {
		t.Errorf("a clock a minute ahead: payment %s, want paid", p.Status)
	}
}

// TestWebhookRefusesNegativeRefund: a refund.succeeded of -5 (minor units)
// would, taken as it comes, add money to what a payment owed back is
// still owed, or settle it. It is 400 invalid_request, nothing recorded:
// the payment stays refund_due, and its real refund still settles it.
func TestWebhookRefusesNegativeRefund(t *testing.T) {
	e := paymentEnv(t, payments.Generic)
	o := e.buy(t, "s", header(userHeader, "u1"))
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", asAdmin()), http.StatusOK)
	body := hookBody("evt_p", "payment.succeeded", o.ID, 12999, "EUR")
	if p := paymentOf(t, e.do(t, "POST", hookPath, body, signed(hookSecret, body))); p.Status != "refund_due" {
		t.Fatalf("payment of a cancelled order = %+v, want refund_due", p)
	}
	recorded := func() string {
		t.Helper()
		var b strings.Builder
		if err := e.store.Payments(context.Background(), func(p surge.Payment) error {
			fmt.Fprintf(&b, "%s:%s:%d ", p.ID, p.Status, p.AmountCents)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	before := recorded()
	for _, body := range []string{
		hookBody("evt_neg", "refund.succeeded", o.ID, -5, "EUR"),
		hookBody("evt_neg_all", "refund.succeeded", o.ID, -12999, "EUR"),
		hookBody("evt_neg_pay", "payment.succeeded", o.ID, -5, "EUR"),
	} {
		r := e.do(t, "POST", hookPath, body, signed(hookSecret, body))
		wantError(t, r, http.StatusBadRequest, "invalid_request")
		if !strings.Contains(string(r.body), "amount_cents must not be negative") {
			t.Errorf("%s: answered %s; want the message to name amount_cents", body, r.body)
		}
	}
	if after := recorded(); after != before {
		t.Errorf("payments after negative events: %s; want them as before: %s", after, before)
	}
	if st := e.orderStatus(t, o.ID); st != "cancelled" {
		t.Errorf("order is %s, want cancelled", st)
	}
	body = hookBody("evt_r", "refund.succeeded", o.ID, 12999, "EUR")
	if p := paymentOf(t, e.do(t, "POST", hookPath, body, signed(hookSecret, body))); p.Status != "refund" || p.Settles != "evt_p" {
		t.Errorf("the real refund = %+v, want a refund settling evt_p", p)
	}
}
