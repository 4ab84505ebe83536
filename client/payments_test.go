package client_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/payments"
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

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A caller's RetryPolicy may let retries run past the server's 5-minute
// signature tolerance: every send must carry a signature the server still
// accepts, not the first one gone stale (a certain 401 after a 429).
func TestSendPaymentEventResignsEachRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const secret = "whsec"
		sends := 0
		tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			sends++
			body, _ := io.ReadAll(r.Body)
			if err := payments.Verify(r.Header.Get("Surge-Signature"), body, []string{secret}); err != nil {
				return &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"application/json"}},
					Body: io.NopCloser(strings.NewReader(`{"error":{"code":"unauthenticated","message":"` + err.Error() + `"}}`)), Request: r}, nil
			}
			if sends == 1 {
				return &http.Response{StatusCode: 429, Header: http.Header{"Content-Type": {"application/json"}, "Retry-After": {"360"}},
					Body: io.NopCloser(strings.NewReader(`{"error":{"code":"rate_limited","message":"slow down"}}`)), Request: r}, nil
			}
			return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(bytes.NewReader([]byte(`{"payment":{"id":"p1"}}`))), Request: r}, nil
		})
		c := client.New("http://surge.test", "")
		c.HTTP = &http.Client{Transport: tr}
		c.Retry = client.RetryPolicy{MaxAttempts: 3, MaxElapsed: 10 * time.Minute}
		id, typ, order, cur := "ev1", "payment.succeeded", "o1", "USD"
		amt, created := int64(1500), time.Now().Unix()
		p, err := c.SendPaymentEvent(t.Context(), secret, api.PaymentEvent{ID: &id, Type: &typ, OrderID: &order, AmountCents: &amt, Currency: &cur, Created: &created})
		if err != nil {
			t.Fatalf("after %d sends: %v", sends, err)
		}
		if p.ID != "p1" || sends != 2 {
			t.Fatalf("payment %q after %d sends", p.ID, sends)
		}
	})
}
