package outbox_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/servicetest"
)

// TestRefundDueClusterAsOfTheChange: cluster mode's refund_due carries the
// order as the payment found it (reserved, past its hold), even when the
// expiry ran before the relay read the row (docs/events.md).
func TestRefundDueClusterAsOfTheChange(t *testing.T) {
	nc, stream, subject := servicetest.NATS(t)
	s := clusterWithHolds(t, 10)
	now := time.Now()
	out, _, err := s.Reserve(t.Context(), "x", []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(now))
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("%+v %v", out, err)
	}
	o := out[0].Order
	// The store judges the hold on PostgreSQL's clock, not the caller's
	// (which the leader does not expire by): paid once that clock is past
	// the hold's end, most likely before the leader's next round.
	db := servicetest.Conn(t, "public")
	servicetest.Eventually(t, 10*time.Second, "PostgreSQL's clock passes the hold's end", func() error {
		var past bool
		if err := db.QueryRow(t.Context(), `SELECT clock_timestamp() > $1`, o.ExpiresAt).Scan(&past); err != nil || past {
			return err
		}
		return errors.New("not yet")
	})
	late := time.Now()
	res, err := s.RecordPayment(t.Context(), surge.PaymentEvent{ID: "pay_late", Type: surge.PaymentSucceeded, OrderID: o.ID,
		AmountCents: 500, Currency: "EUR", Created: late, Provider: "surge"}, late)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("payment %s, order %s", res.Payment.Status, res.Order.Status)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err := s.Order(t.Context(), o.ID)
		if err == nil && got.Status == surge.OrderExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not expired: %+v %v", got, err)
		}
	}
	run(t, s, servicetest.NATSURL(), stream, subject, nil)
	drained(t, s)
	kinds := map[string]string{}
	for _, m := range servicetest.ReadStream(t, nc, stream, subject+".>") {
		var e api.OrderEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		kinds[e.Event] = e.Order.Status
		if m.MsgID != e.ID {
			t.Errorf("msg id %q body %q", m.MsgID, e.ID)
		}
	}
	if len(kinds) != 3 || kinds["refund_due"] != string(res.Order.Status) || kinds["expired"] != "expired" {
		t.Errorf("events %v; refund_due should carry %s", kinds, res.Order.Status)
	}
}
