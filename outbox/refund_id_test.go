package outbox_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/servicetest"
)

// TestRefundDueIDOddPaymentID: a refund_due event's id is
// <order id>:refund_due:<payment id> in the body and as Nats-Msg-Id, for
// any payment id the webhook accepts (docs/events.md, The event).
func TestRefundDueIDOddPaymentID(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	createSale(t, s, "a", 10)
	ids := []string{"pay with  spaces", "pay:colon", "pay_é_ü_日本", "pay\u00a0x"}
	want := map[string]bool{}
	for i, pid := range ids {
		if err := surge.CheckPaymentEvent(surge.PaymentEvent{ID: pid, Type: surge.PaymentSucceeded, OrderID: "o_06dqdpn802cpnqrjrpyvez2n2r", Currency: "EUR", Created: t0}); err != nil {
			t.Logf("payment id %q refused: %v", pid, err)
			continue
		}
		o := reserve(t, s, "a", "u"+string(rune('a'+i)), 1, 1)[0]
		late := t0.Add(2 * time.Minute)
		if _, err := s.RecordPayment(t.Context(), surge.PaymentEvent{ID: pid, Type: surge.PaymentSucceeded, OrderID: o.ID,
			AmountCents: 500, Currency: "EUR", Created: late, Provider: "surge"}, late); err != nil {
			t.Fatal(err)
		}
		want[o.ID+":refund_due:"+pid] = true
	}
	run(t, s, servicetest.NATSURL(), stream, subject, nil)
	drained(t, s)
	for _, m := range servicetest.ReadStream(t, nc, stream, subject+".>") {
		var e api.OrderEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		if m.MsgID != e.ID {
			t.Errorf("Nats-Msg-Id %q, body id %q", m.MsgID, e.ID)
		}
		delete(want, e.ID)
	}
	for id := range want {
		t.Errorf("%q missing", id)
	}
}
