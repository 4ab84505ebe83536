package payments_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/payments"
)

// TestFromStripeRefundStep: a charge refunded in steps sends one
// charge.refunded per step, and the step is the growth of amount_refunded
// over previous_attributes' figure. That figure must be a whole amount
// from 0 to amount_refunded: anything else would turn into a refund of
// some other size, so the event is refused (400), not guessed at.
func TestFromStripeRefundStep(t *testing.T) {
	for _, c := range []struct {
		name, previous string // previous_attributes' JSON, "" for none
		want           int64  // the refund's amount; -1: refused
	}{
		{"whole refund, no previous figure", ``, 100},
		{"second step", `{"amount_refunded":40}`, 60},
		{"first step", `{"amount_refunded":0}`, 100},
		{"other attributes changed only", `{"refunded":false}`, 100},
		{"negative", `{"amount_refunded":-5}`, -1},
		{"fraction", `{"amount_refunded":0.5}`, -1},
		{"above the total", `{"amount_refunded":150}`, -1},
		{"huge", `{"amount_refunded":1e300}`, -1},
		{"a string", `{"amount_refunded":"40"}`, -1},
		{"null", `{"amount_refunded":null}`, -1},
	} {
		t.Run(c.name, func(t *testing.T) { refundStep(t, 100, c.previous, c.want) })
	}
}

// TestFromStripeRefundStepExact: Stripe's amounts are integers, and a
// step is the difference of two of them, exact whatever their size. The
// previous figure was read as a float64, exact only up to 2^53: past it a
// step of 2 was taken as a refund of 3 (the figure rounded down), a step
// of 10 refused as negative (rounded up past amount_refunded), and a
// figure above amount_refunded taken as a refund of 100.
func TestFromStripeRefundStepExact(t *testing.T) {
	for _, c := range []struct {
		name     string
		total    int64  // amount_refunded
		previous string // previous_attributes' JSON
		want     int64  // the refund's amount; -1: refused
	}{
		{"a step of 2 past 2^53", 1<<53 + 3, `{"amount_refunded":9007199254740993}`, 2},
		{"a step of 10 past 2^60", 1<<60 + 210, `{"amount_refunded":1152921504606847176}`, 10},
		{"a step of 1 past 2^60", 1<<60 + 100, `{"amount_refunded":1152921504606847075}`, 1},
		{"one above the total past 2^60", 1<<60 + 100, `{"amount_refunded":1152921504606847077}`, -1},
		{"beyond int64", 1<<60 + 100, `{"amount_refunded":9223372036854775808}`, -1},
		{"whole, written with a fraction", 1<<53 + 3, `{"amount_refunded":9007199254740993.0}`, 2},
		{"whole, written with an exponent", 100, `{"amount_refunded":4e1}`, 60},
		{"a fraction past 2^53", 1<<53 + 3, `{"amount_refunded":9007199254740992.5}`, -1},
	} {
		t.Run(c.name, func(t *testing.T) { refundStep(t, c.total, c.previous, c.want) })
	}
}

// refundStep translates a charge.refunded of a charge whose
// amount_refunded is total, with previous_attributes previous ("" for
// none), and wants a refund of want or (want < 0) its refusal as
// invalid_request.
func refundStep(t *testing.T, total int64, previous string, want int64) {
	t.Helper()
	prev := ""
	if previous != "" {
		prev = `,"previous_attributes":` + previous
	}
	n := strconv.FormatInt(total, 10)
	body := `{"id":"evt_r","type":"charge.refunded","created":1767225600,"data":{"object":{"id":"ch_1","object":"charge",` +
		`"amount":` + n + `,"amount_refunded":` + n + `,"currency":"eur","metadata":{"surge_order_id":"o_1"}}` + prev + `}}`
	ev, ignored, err := payments.FromStripe([]byte(body))
	if want < 0 {
		if se, ok := errors.AsType[*surge.Error](err); !ok || se.Code != surge.CodeInvalid {
			t.Fatalf("FromStripe = %+v, %q, %v; want invalid_request", ev, ignored, err)
		}
		return
	}
	if err != nil || ignored != "" || ev.AmountCents != want || ev.Type != surge.RefundSucceeded {
		t.Fatalf("FromStripe = %+v, %q, %v; want a refund of %d", ev, ignored, err, want)
	}
}
