package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// Payment events signed and sent as a provider does: a payment makes the
// order paid, a repeat answers the same, a wrong amount is refused, a
// payment for a cancelled order is owed back, a bad signature is 401.
func TestSendPaymentEvent(t *testing.T) {
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	createSale(t, admin, "s", 10, 5) // 1500 USD a unit
	ctx := t.Context()
	buyer := admin.AsUser("ann")
	order := func() string {
		t.Helper()
		p, err := buyer.Purchase(ctx, "s", client.PurchaseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Order.ID
	}
	paid, mismatched, cancelled := order(), order(), order()
	if _, err := buyer.CancelOrder(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	event := func(id, orderID string, amount int64) api.PaymentEvent {
		return api.PaymentEvent{ID: &id, Type: new("payment.succeeded"), OrderID: &orderID, AmountCents: &amount,
			Currency: new("USD"), Created: new(time.Now().Unix())}
	}
	var first api.Payment

	for _, tt := range []struct {
		name       string
		secret     string
		ev         api.PaymentEvent
		wantStatus string // the payment's
		wantCode   string // instead: the refusal's
		order      string // the order, and its status afterwards
		orderIs    string
	}{
		{"pays the order", hookSecret, event("evt_1", paid, 1500), "paid", "", paid, "paid"},
		{"repeat answers the same", hookSecret, event("evt_1", paid, 1500), "paid", "", paid, "paid"},
		{"wrong amount", hookSecret, event("evt_2", mismatched, 999), "", "amount_mismatch", mismatched, "reserved"},
		{"cancelled order: owed back", hookSecret, event("evt_3", cancelled, 1500), "refund_due", "", cancelled, "cancelled"},
		{"wrong secret", "not-the-secret", event("evt_4", mismatched, 1500), "", "invalid_signature", mismatched, "reserved"},
		{"unknown order", hookSecret, event("evt_5", "o_nope", 1500), "", string(surge.CodeOrderNotFound), mismatched, "reserved"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := admin.SendPaymentEvent(ctx, tt.secret, tt.ev)
			if tt.wantCode != "" {
				var ae *client.APIError
				if !errors.As(err, &ae) || ae.Code != tt.wantCode || ae.Attempts != 1 {
					t.Errorf("err %v, want %s", err, tt.wantCode)
				}
			} else {
				if err != nil || p.Status != tt.wantStatus || p.ID != *tt.ev.ID || p.OrderID != *tt.ev.OrderID || p.SaleID != "s" {
					t.Fatalf("payment %+v, %v; want %s", p, err, tt.wantStatus)
				}
				if *tt.ev.ID == "evt_1" {
					if first.ID != "" && p != first {
						t.Errorf("repeat answered %+v, first %+v", p, first)
					}
					first = p
				}
			}
			if o, err := admin.Order(ctx, tt.order); err != nil || o.Status != tt.orderIs {
				t.Errorf("order %+v, %v; want %s", o, err, tt.orderIs)
			}
		})
	}
}

func TestHealthAndReady(t *testing.T) {
	s := newServer(t, serverOptions{})
	c := client.New(s.url, "")
	if err := c.Healthy(t.Context()); err != nil {
		t.Errorf("Healthy: %v", err)
	}
	if err := c.Ready(t.Context()); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if err := client.New(s.url+"/nowhere", "").Ready(t.Context()); !surge.HasCode(err, "not_found") {
		t.Errorf("Ready of a wrong base URL: %v, want 404 not_found", err)
	}
}
