package payments_test

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/testtoken"
	"github.com/surgehq/surge/payments"
)

// FuzzFromStripe: whatever body reaches the Stripe translation (the
// provider's events change shape across API versions), it never panics,
// refuses only with invalid_request (a 400, which the provider does not
// retry forever as it would a 500), and an event it accepts is one the
// stores can record as is: an id of plain text, an order id, a known
// type, an amount not below zero and a currency of three upper-case
// letters. A refund may name, instead of the order, the payment it gives
// back (a Checkout payment's charge names only its PaymentIntent).
func FuzzFromStripe(f *testing.F) {
	for _, name := range []string{"payment_intent.succeeded", "checkout.session.completed", "checkout.session.async_payment_succeeded", "charge.refunded", "charge.succeeded"} {
		b, err := os.ReadFile(filepath.Join("..", "http", "testdata", "stripe", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.ReplaceAll(b, []byte("ORDER_ID"), []byte("o_06dqdpn8010a53bzmnwjmh3c18")))
	}
	f.Add([]byte(`{"id":"evt_1","type":"payment_intent.payment_failed","data":{"object":{"id":"pi_1","amount_received":0,"currency":"eur","metadata":{"surge_order_id":"o_1"}}}}`))
	f.Add([]byte(`{"id":"evt_\u001b[2J","type":"payment_intent.payment_failed","data":{"object":{"id":"pi_1","currency":"eur","metadata":{"surge_order_id":"o_1"}}}}`))
	for _, cur := range []string{"eur", "€", "e1r", "eu"} { // three bytes is not three letters
		f.Add([]byte(`{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","amount_received":100,"currency":"` +
			cur + `","metadata":{"surge_order_id":"o_1"}}}}`))
	}
	f.Add([]byte(`{"id":"evt_2","type":"charge.refunded","data":{"object":{"id":"ch_1","amount_refunded":100,"currency":"usd",` +
		`"metadata":{"surge_order_id":"o_1"}},"previous_attributes":{"amount_refunded":1e300}}}`))
	f.Add([]byte(`{"type":"checkout.session.completed","data":null}`))
	// The charge of a Checkout payment carries no metadata: a refund of
	// the payment recorded under its PaymentIntent (RefundOf).
	f.Add([]byte(`{"id":"evt_3","type":"charge.refunded","data":{"object":{"id":"ch_1","amount_refunded":100,"currency":"usd",` +
		`"payment_intent":"pi_1"}}}`))
	f.Add([]byte(`{"id":"evt_4","type":"charge.refunded","data":{"object":{"id":"ch_1","amount_refunded":100,"currency":"usd",` +
		`"payment_intent":"pi_` + "\xff\u202e" + `"}}}`)) // stripe-go takes an expandable id's bytes as they are
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, ignored, err := payments.FromStripe(body)
		if err != nil {
			if se, ok := errors.AsType[*surge.Error](err); !ok || se.Code != surge.CodeInvalid {
				t.Fatalf("refused with %v, want invalid_request", err)
			}
			return
		}
		if ignored != "" {
			return
		}
		switch {
		case ev.ID == "" || !surge.ValidID(ev.OrderID) && (ev.OrderID != "" || ev.Type != surge.RefundSucceeded || ev.RefundOf == ""):
			// A refund may name its payment (RefundOf) instead of an order.
			t.Fatalf("accepted an event without an id or an order id: %+v", ev)
		case !utf8.ValidString(ev.ID) || strings.ContainsFunc(ev.ID, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }):
			t.Fatalf("accepted id %q: control or bidirectional characters would reach the operator's terminal", ev.ID)
		case !utf8.ValidString(ev.RefundOf) || strings.ContainsFunc(ev.RefundOf, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }):
			// No payment is recorded under such an id, and PostgreSQL
			// refuses one not UTF-8 in the lookup (a 503 the provider retries).
			t.Fatalf("accepted a refund of payment %q", ev.RefundOf)
		case ev.Type != surge.PaymentSucceeded && ev.Type != surge.PaymentFailed && ev.Type != surge.RefundSucceeded:
			t.Fatalf("accepted an event of type %q", ev.Type)
		case ev.AmountCents < 0:
			t.Fatalf("accepted a negative amount: %+v", ev)
		case !upperLetters(ev.Currency):
			t.Fatalf("accepted currency %q, want three upper-case letters", ev.Currency)
		case ev.Provider != payments.Stripe:
			t.Fatalf("provider %q, want %q", ev.Provider, payments.Stripe)
		}
	})
}

func upperLetters(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := range len(s) {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// FuzzVerify: a signature header passes only if it carries a v1 that is
// this body's HMAC under one of the secrets, for a timestamp within the
// tolerance (an oracle computed here, apart from stripe-go's check); every
// refusal wraps ErrSignature, and nothing panics.
func FuzzVerify(f *testing.F) {
	secrets := []string{"whsec_old", "whsec_current"}
	body := []byte(`{"id":"evt_1","type":"payment.succeeded"}`)
	now := time.Now().Unix()
	f.Add("t="+strconv.FormatInt(now, 10)+",v1="+testtoken.WebhookV1(secrets[1], now, body), body)
	f.Add("t="+strconv.FormatInt(now, 10)+",v1=00,v1="+testtoken.WebhookV1(secrets[0], now, body), body)
	f.Add("t=1,v1="+testtoken.WebhookV1(secrets[1], 1, body), body)
	f.Add("t=,v1=,v0=,", []byte{})
	f.Add("", body)
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := payments.Verify(header, body, secrets)
		if err != nil {
			if !errors.Is(err, payments.ErrSignature) {
				t.Fatalf("refusal %v does not wrap ErrSignature", err)
			}
			return
		}
		if !signed(header, body, secrets, time.Now()) {
			t.Fatalf("accepted header %q for body %q", header, body)
		}
	})
}

// signed is the oracle: some t= of the header within payments.Tolerance of
// now (and not ahead of it by more), and some v1= the body's HMAC with it
// (its bytes: hex in either case).
func signed(header string, body []byte, secrets []string, now time.Time) bool {
	var ts, sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = append(ts, v)
		case "v1":
			sigs = append(sigs, v)
		}
	}
	for _, t := range ts {
		sec, err := strconv.ParseInt(t, 10, 64)
		if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > payments.Tolerance+time.Second {
			continue
		}
		for _, secret := range secrets {
			// Signed over the number, so "t=0123" is the signature of 123.
			want, _ := hex.DecodeString(testtoken.WebhookV1(secret, sec, body))
			for _, s := range sigs {
				// The bytes, not the text: hex in either case is the same
				// signature.
				if got, err := hex.DecodeString(s); err == nil && hmac.Equal(got, want) {
					return true
				}
			}
		}
	}
	return false
}
