package outbox_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/servicetest"
)

// TestRefundDueOrderAsOfTheChange: docs/events.md, the event's `order`
// is "the order as after the change" (refund_due leaves the order as it
// is). Money taken for an order still reserved but past its hold is
// refund_due with the order reserved; the expiry that follows is an event
// of its own. The refund_due message must carry the order as the payment
// left it, not as a later change made it by the time the relay read it
// (a repeat after a crash would otherwise carry another body than the
// first copy under the same id).
func TestRefundDueOrderAsOfTheChange(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	createSale(t, s, "a", 10) // holds of 60 s
	o := reserve(t, s, "a", "u", 1, 1)[0]
	late := t0.Add(2 * time.Minute) // past the hold; the expiry has not run
	res, err := s.RecordPayment(t.Context(), surge.PaymentEvent{ID: "pay_late", Type: surge.PaymentSucceeded, OrderID: o.ID,
		AmountCents: 500, Currency: "EUR", Created: late, Provider: "surge"}, late)
	if err != nil {
		t.Fatal(err)
	}
	if res.Payment.Status != surge.PaymentRefundDue || res.Order.Status != surge.OrderReserved {
		t.Fatalf("payment %s, order %s; want refund_due and the order still reserved", res.Payment.Status, res.Order.Status)
	}
	if _, err := s.Expire(t.Context(), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	run(t, s, servicetest.NATSURL(), stream, subject, nil)
	drained(t, s)
	seen := 0
	for _, m := range servicetest.ReadStream(t, nc, stream, subject+".>") {
		var e api.OrderEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		if e.Event == "refund_due" {
			seen++
		}
		if e.Event == "refund_due" && e.Order.Status != string(surge.OrderReserved) {
			t.Errorf("refund_due %s carries the order %s; the payment left it reserved (the expiry came after, seq %d)",
				e.ID, e.Order.Status, e.Seq)
		}
	}
	if seen != 1 {
		t.Errorf("the stream holds %d refund_due events, want 1", seen)
	}
}
