package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// TestPaymentLostCommitAnswer: a payment whose transaction PostgreSQL
// committed (the order paid) but whose COMMIT's answer was lost was
// answered 503 "recording the payment failed; retry shortly", which
// docs/payments.md reads as nothing recorded: the provider's event (or
// the operator's settlement) told it failed while the order was paid, and
// the operator's retry of the settlement got 409 not_payable. The node
// reads whether it landed and answers it as recorded.
func TestPaymentLostCommitAnswer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		marker string // in the payment's statements, not the reservation's (nor "commit", the cut's)
		pay    func(ctx context.Context, t *testing.T, s *cluster.Store, o surge.Order, price int64, cur string, now time.Time) (surge.Order, surge.PaymentStatus, error)
	}{
		{"webhook", "evt_lost_answer", func(ctx context.Context, t *testing.T, s *cluster.Store, o surge.Order, price int64, cur string, now time.Time) (surge.Order, surge.PaymentStatus, error) {
			r, err := s.RecordPayment(ctx, surge.PaymentEvent{ID: "evt_lost_answer", Type: surge.PaymentSucceeded, OrderID: o.ID,
				AmountCents: price, Currency: cur, Created: now, Provider: "surge"}, now)
			if err == nil && r.Replay {
				t.Errorf("the payment whose commit's answer was lost answered as a replay: %+v", r)
			}
			return r.Order, r.Payment.Status, err
		}},
		{"operator", "manual_", func(ctx context.Context, _ *testing.T, s *cluster.Store, o surge.Order, _ int64, _ string, now time.Time) (surge.Order, surge.PaymentStatus, error) {
			o, err := s.Pay(ctx, o.ID, now)
			return o, surge.PaymentPaid, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			px := newCutProxy(t, "127.0.0.1:5432", tc.marker)
			px.then, px.afterReply = []byte("commit"), true
			cfg := cluster.Config{Prefix: ns, Schema: ns, Interval: time.Hour, NoExpiry: true}
			a := openStoreAt(t, redisURL(), "postgres://postgres@"+px.addr+"/test?sslmode=disable", cfg)
			defer a.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			now := time.Now().UTC().Truncate(time.Millisecond)
			sale := paidSale(t, a, 4, now)
			out, _, err := a.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u1", Quantity: 1}}, surge.At(now))
			if err != nil || out[0].Code != surge.CodeReserved {
				t.Fatalf("reserve: %+v %v", out, err)
			}
			px.armed.Store(true)
			o, status, err := tc.pay(ctx, t, a, out[0].Order, sale.PriceCents, sale.Currency, now.Add(time.Second))
			if !px.fired.Load() {
				t.Fatalf("the proxy never cut the payment's COMMIT: %+v %v", o, err)
			}
			truth, terr := a.Order(ctx, out[0].Order.ID)
			if terr != nil || truth.Status != surge.OrderPaid {
				t.Fatalf("PostgreSQL holds the order %+v (%v); want it paid, committed before the answer was lost", truth, terr)
			}
			if err != nil {
				t.Fatalf("payment whose COMMIT's answer was lost after PostgreSQL committed it: %v; want it answered as recorded", err)
			}
			if o.Status != surge.OrderPaid || status != surge.PaymentPaid {
				t.Errorf("answered order %s, payment %s; want the order paid by the payment", o.Status, status)
			}
		})
	}
}
