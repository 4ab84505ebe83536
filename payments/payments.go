// Package payments checks the payment provider's webhooks: the signature
// (Surge's generic scheme, the one Stripe uses, under its own header) and,
// with --payments stripe, the translation of Stripe's real events into
// surge.PaymentEvent. What an event does to an order is the store's rule
// (surge.Payments); this package only says who sent what.
package payments

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/surgehq/surge"
)

// Providers: the scheme the webhook expects (--payments).
const (
	Generic = "surge"  // Surge-Signature and Surge's event body
	Stripe  = "stripe" // Stripe-Signature and Stripe's event objects
)

// Tolerance is how old a signature's timestamp may be: older is a replay
// an eavesdropper could be making, refused. It is also how far ahead of
// the clock it may be.
const Tolerance = 5 * time.Minute

// Header is the signature header of a provider.
func Header(provider string) string {
	if provider == Stripe {
		return "Stripe-Signature"
	}
	return "Surge-Signature"
}

// ErrSignature answers a missing, malformed or wrong signature, or one
// whose timestamp is older than Tolerance or further ahead (the message
// says which).
var ErrSignature = errors.New("payments: bad webhook signature")

// Verify checks header (t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>,
// any number of v1) against each of secrets, the current ones of a
// rotation. Stripe's scheme is Surge's, so stripe-go's webhook package
// checks both: it compares in constant time and refuses an old timestamp
// (notAhead refuses one ahead of the clock).
func Verify(header string, body []byte, secrets []string) error {
	err := webhook.ErrNoValidSignature
	for _, secret := range secrets {
		if err = webhook.ValidatePayloadWithTolerance(body, header, secret, Tolerance); err == nil {
			return notAhead(header)
		}
		if !errors.Is(err, webhook.ErrNoValidSignature) {
			break // the header itself is bad or old, whatever the secret
		}
	}
	// stripe-go's own words name Stripe-Signature, whichever header the
	// value came from: these say what is wrong without naming one.
	switch {
	case errors.Is(err, webhook.ErrTooOld):
		return fmt.Errorf("%w: the timestamp is more than %v old", ErrSignature, Tolerance)
	case errors.Is(err, webhook.ErrNotSigned):
		return fmt.Errorf("%w: %w", ErrSignature, errNoHeader)
	case errors.Is(err, webhook.ErrInvalidHeader):
		return fmt.Errorf("%w: %w", ErrSignature, errMalformed)
	}
	return fmt.Errorf("%w: %w", ErrSignature, err)
}

// notAhead refuses a verified header whose timestamp is more than
// Tolerance ahead of the clock: stripe-go refuses only an old one, and one
// ahead (milliseconds sent as seconds) would stay good for ever, a
// captured delivery replayable for as long. The timestamp is the last t=,
// as stripe-go reads it.
func notAhead(header string) error {
	var t int64
	for pair := range strings.SplitSeq(header, ",") {
		if v, ok := strings.CutPrefix(pair, "t="); ok {
			t, _ = strconv.ParseInt(v, 10, 64) // stripe-go parsed it already
		}
	}
	if time.Until(time.Unix(t, 0)) > Tolerance {
		return fmt.Errorf("%w: the timestamp is more than %v ahead of this server's clock (it must be Unix seconds, not milliseconds)",
			ErrSignature, Tolerance)
	}
	return nil
}

var (
	errNoHeader  = errors.New("no signature header")
	errMalformed = errors.New("the signature header is not t=<unix time>,v1=<hex HMAC-SHA256>")
)

// VerifyRequest is Verify of the provider's signature header (Header) in
// h; its refusals of a missing or malformed header name that header, so
// that the sender learns which one to fix.
func VerifyRequest(h http.Header, provider string, body []byte, secrets []string) error {
	name := Header(provider)
	err := Verify(h.Get(name), body, secrets)
	switch {
	case errors.Is(err, errNoHeader):
		return fmt.Errorf("%w: no %s header", ErrSignature, name)
	case errors.Is(err, errMalformed):
		return fmt.Errorf("%w: %s is not t=<unix time>,v1=<hex HMAC-SHA256>", ErrSignature, name)
	}
	return err
}

// OrderKey is the metadata key of a Stripe PaymentIntent or Checkout
// Session that names the Surge order it pays.
const OrderKey = "surge_order_id"

// FromStripe translates a verified Stripe event. ignored, when not empty,
// says why the event is none of Surge's business (another type, no
// surge_order_id, a checkout not paid yet): it is answered 200 and
// recorded nowhere. A payment's id is its PaymentIntent's, so
// payment_intent.succeeded and checkout.session.completed of the same
// payment count once, and the settlement's payment id matches it.
// charge.refunded is a refund (surge.RefundSucceeded) of the payment of
// its PaymentIntent (surge.PaymentEvent.RefundOf), of the charge's
// metadata's order or, without one, of that payment's.
func FromStripe(body []byte) (ev surge.PaymentEvent, ignored string, err error) {
	var e stripe.Event
	if err := json.Unmarshal(body, &e); err != nil || e.Data == nil {
		return ev, "", surge.Errorf(surge.CodeInvalid, "not a Stripe event: %v", err)
	}
	ev = surge.PaymentEvent{Created: time.Unix(e.Created, 0).UTC(), Provider: Stripe}
	var meta map[string]string
	switch e.Type {
	case stripe.EventTypePaymentIntentSucceeded, stripe.EventTypePaymentIntentPaymentFailed:
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(e.Data.Raw, &pi); err != nil {
			return ev, "", surge.Errorf(surge.CodeInvalid, "%s: bad payment intent: %v", e.Type, err)
		}
		ev.ID, ev.Type, ev.AmountCents, ev.Currency, meta = pi.ID, surge.PaymentSucceeded, pi.AmountReceived, string(pi.Currency), pi.Metadata
		if e.Type == stripe.EventTypePaymentIntentPaymentFailed {
			// A failed attempt is its event's: the intent may still
			// succeed later under its own id.
			ev.ID, ev.Type = e.ID, surge.PaymentFailed
		}
	case stripe.EventTypeCheckoutSessionCompleted, stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded,
		stripe.EventTypeCheckoutSessionAsyncPaymentFailed:
		// A delayed payment method (SEPA debit, Bacs, ACH) completes the
		// session unpaid; async_payment_succeeded (or _failed) follows when
		// the money moves. The session's metadata rides on each, and
		// Checkout does not copy it onto the PaymentIntent: ignoring them
		// would leave money taken recorded nowhere.
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(e.Data.Raw, &cs); err != nil {
			return ev, "", surge.Errorf(surge.CodeInvalid, "%s: bad checkout session: %v", e.Type, err)
		}
		if e.Type == stripe.EventTypeCheckoutSessionAsyncPaymentFailed {
			// A failed attempt is its event's, as payment_intent.payment_failed.
			ev.ID, ev.Type, ev.AmountCents, ev.Currency, meta = e.ID, surge.PaymentFailed, 0, string(cs.Currency), cs.Metadata
			break
		}
		switch {
		case cs.PaymentStatus == stripe.CheckoutSessionPaymentStatusPaid:
		case cs.PaymentStatus == stripe.CheckoutSessionPaymentStatusNoPaymentRequired && cs.Mode == stripe.CheckoutSessionModePayment &&
			cs.AmountTotal == 0 && cs.Currency != "":
			// Nothing was due (a free order, or a coupon taking all of
			// it): the checkout is done and no other event of it follows,
			// so it is the order's payment, of zero. The store's rule
			// compares it with the order's amount like any other: it pays
			// an order that costs nothing, never one that costs money.
			// Only in payment mode: a setup session (a card saved, to be
			// charged later) or a subscription's free trial is also
			// no_payment_required with nothing charged, and a currency,
			// but its order's payment is yet to come.
		default:
			// unpaid, or no_payment_required with an amount still due
			// later (a delayed payment), in setup mode or in a
			// subscription's trial: no money yet.
			return ev, fmt.Sprintf("checkout session %s is %s, not paid", cs.ID, cs.PaymentStatus), nil
		}
		ev.ID, ev.Type, ev.AmountCents, ev.Currency, meta = cs.ID, surge.PaymentSucceeded, cs.AmountTotal, string(cs.Currency), cs.Metadata
		if cs.PaymentIntent != nil && cs.PaymentIntent.ID != "" {
			ev.ID = cs.PaymentIntent.ID
		}
	case stripe.EventTypeChargeRefunded:
		// Money given back: the refund flow of the generic
		// refund.succeeded (it settles a refund_due payment of the same
		// amount). A charge is refunded in one or more steps, each its own
		// event; the step's amount is the growth of amount_refunded.
		var ch stripe.Charge
		if err := json.Unmarshal(e.Data.Raw, &ch); err != nil {
			return ev, "", surge.Errorf(surge.CodeInvalid, "%s: bad charge: %v", e.Type, err)
		}
		ev.ID, ev.Type, ev.Currency, meta = e.ID, surge.RefundSucceeded, string(ch.Currency), ch.Metadata
		// The charge names its PaymentIntent, whose id is the payment's:
		// the refund gives back that payment, not another of the order
		// of the same amount. Checkout copies a session's metadata onto
		// neither the PaymentIntent nor its charge: the charge of a
		// Checkout payment names no order, only the PaymentIntent (the
		// session's events record the payment under it).
		if ch.PaymentIntent != nil {
			ev.RefundOf = ch.PaymentIntent.ID
		}
		ev.AmountCents = ch.AmountRefunded
		// The refund's own id when Stripe includes the charge's refunds
		// (newest first; API versions before 2022-11-15), so that it
		// matches the settlement's.
		if ch.Refunds != nil && len(ch.Refunds.Data) > 0 && ch.Refunds.Data[0].ID != "" {
			ev.ID, ev.AmountCents = ch.Refunds.Data[0].ID, ch.Refunds.Data[0].Amount
		} else if prev, ok := previousAmountRefunded(body); ok {
			// stripe-go reads previous_attributes into interface values,
			// float64 numbers: exact only up to 2^53, where a step would
			// be off by the rounding. The figure is read from the JSON
			// text instead, as exactly as amount_refunded.
			before, ok := wholeAmount(prev)
			if !ok || before < 0 || before > ch.AmountRefunded {
				return ev, "", surge.Errorf(surge.CodeInvalid, "%s: previous amount_refunded %s is not a whole amount from 0 to amount_refunded (%d)",
					e.Type, truncated(prev), ch.AmountRefunded)
			}
			ev.AmountCents -= before
		}
	default:
		return ev, "event type " + string(e.Type) + " is not handled", nil
	}
	// A refund naming its payment but no order is the store's to place:
	// it finds the order by the payment, and answers ErrOrderNotFound when
	// it recorded none under that id.
	if ev.OrderID = meta[OrderKey]; ev.OrderID == "" && ev.RefundOf == "" {
		return ev, fmt.Sprintf("%s carries no %s metadata", ev.ID, OrderKey), nil
	}
	// Stripe spells currencies in lower case, sales in upper case.
	ev.Currency = strings.ToUpper(ev.Currency)
	return ev, "", surge.CheckPaymentEvent(ev)
}

// previousAmountRefunded is the JSON text of a Stripe event's
// data.previous_attributes.amount_refunded, if it has one.
func previousAmountRefunded(body []byte) (json.RawMessage, bool) {
	var e struct {
		Data struct {
			PreviousAttributes map[string]json.RawMessage `json:"previous_attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, false // stripe-go read it: not reached
	}
	v, ok := e.Data.PreviousAttributes["amount_refunded"]
	return v, ok
}

// wholeAmount reads a JSON number that is a whole amount within int64,
// exactly, in whatever form it is written (40, 40.0, 4e1); anything else
// (a fraction, a string, null, an amount past int64) is not one. Digits
// are counted, not converted through a float or a big number: an exponent
// of a billion costs nothing.
func wholeAmount(raw json.RawMessage) (int64, bool) {
	mant, exp, hasExp := strings.Cut(strings.ToLower(string(raw)), "e")
	shift := 0
	if hasExp {
		var err error
		// Out of range, Atoi gives the nearest int: the outcome is that
		// of any exponent past ±2^30, as a body is 256 KiB at most (a
		// fraction, or past int64, unless zero), and clamped there the
		// arithmetic below cannot wrap.
		if shift, err = strconv.Atoi(exp); err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, false
		}
		shift = max(-1<<30, min(shift, 1<<30))
	}
	neg := strings.HasPrefix(mant, "-")
	whole, frac, point := strings.Cut(strings.TrimPrefix(mant, "-"), ".")
	if !decimalDigits(whole) || point && !decimalDigits(frac) {
		return 0, false // not a JSON number
	}
	digits := strings.TrimLeft(whole+frac, "0")
	shift -= len(frac)
	if digits == "" {
		return 0, true // zero, however written
	}
	if shift < 0 {
		// The fraction's digits, as far as they go, must be zeros.
		if -shift > len(digits) || strings.TrimLeft(digits[len(digits)+shift:], "0") != "" {
			return 0, false
		}
		digits = digits[:len(digits)+shift]
	} else if shift > 19 {
		return 0, false // past int64 (digits is not zero)
	} else {
		digits += strings.Repeat("0", shift)
	}
	if neg {
		digits = "-" + digits
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

// decimalDigits reports whether s is one or more ASCII digits.
func decimalDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// truncated is raw for a message: a figure is short, anything else is
// cut (an object of any size could stand there).
func truncated(raw json.RawMessage) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}
