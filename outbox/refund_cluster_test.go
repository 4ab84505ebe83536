package outbox_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestRefundDueClusterAsOfTheChange: cluster mode's refund_due carries the
// order as the payment found it (reserved, past its hold), even when the
// expiry ran before the relay read the row (docs/events.md).
func TestRefundDueClusterAsOfTheChange(t *testing.T) {
	ns := servicetest.Namespace(t)
	nc, stream, subject := servicetest.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cluster.Open(ctx, servicetest.RedisURL(), servicetest.PostgresURL(), cluster.Config{
		Prefix: ns, Schema: ns, NodeID: "a", Logger: slog.New(slog.DiscardHandler), Events: true, LeaseTTL: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	id, name, stock, limit, hold := "x", "X", int64(10), int64(2), int64(1)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, HoldSeconds: &hold}, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(t.Context(), sl); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	out, _, err := s.Reserve(t.Context(), "x", []surge.Purchase{{UserID: "u", Quantity: 1}}, now)
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("%+v %v", out, err)
	}
	o := out[0].Order
	late := o.ExpiresAt.Add(time.Millisecond)
	res, err := s.RecordPayment(t.Context(), surge.PaymentEvent{ID: "pay_late", Type: surge.PaymentSucceeded, OrderID: o.ID,
		AmountCents: 0, Currency: "EUR", Created: late, Provider: "surge"}, late)
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
