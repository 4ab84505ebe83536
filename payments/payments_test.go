package payments_test

import (
	"errors"
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
		t.Run(c.name, func(t *testing.T) {
			prev := ""
			if c.previous != "" {
				prev = `,"previous_attributes":` + c.previous
			}
			body := `{"id":"evt_r","type":"charge.refunded","created":1767225600,"data":{"object":{"id":"ch_1","object":"charge",` +
				`"amount":100,"amount_refunded":100,"currency":"eur","metadata":{"surge_order_id":"o_1"}}` + prev + `}}`
			ev, ignored, err := payments.FromStripe([]byte(body))
			if c.want < 0 {
				if se, ok := errors.AsType[*surge.Error](err); !ok || se.Code != surge.CodeInvalid {
					t.Fatalf("FromStripe = %+v, %q, %v; want invalid_request", ev, ignored, err)
				}
				return
			}
			if err != nil || ignored != "" || ev.AmountCents != c.want || ev.Type != surge.RefundSucceeded {
				t.Fatalf("FromStripe = %+v, %q, %v; want a refund of %d", ev, ignored, err, c.want)
			}
		})
	}
}
