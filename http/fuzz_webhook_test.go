package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/payments"
)

// webhookKeys are the members of Surge's own payment event.
var webhookKeys = []string{"id", "type", "order_id", "amount_cents", "currency", "created"}

// FuzzWebhookBody: a correctly signed generic webhook (docs/payments.md)
// either is refused, 400 invalid_request with nothing recorded, or is
// recorded as exactly the event it says (a strict body of the six
// members), and the same body again answers byte for byte as the first
// delivery did. ORDER in the body stands for a reserved order's id.
func FuzzWebhookBody(f *testing.F) {
	for _, seed := range []string{
		`{"id":"evt_1","type":"payment.succeeded","order_id":"ORDER","amount_cents":12999,"currency":"EUR","created":1767225600}`,
		`{"id":"evt_2","type":"payment.failed","order_id":"ORDER","amount_cents":0,"currency":"eur","created":1767225600}`,
		`{"id":"evt_3","type":"refund.succeeded","order_id":"ORDER","amount_cents":12999,"currency":"EUR","created":1}`,
		`{"id":"evt_4","type":"payment.succeeded","order_id":"ORDER","amount_cents":1,"currency":"USD","created":1767225600}`,
		`{"id":"evt_5","type":"manual","order_id":"ORDER","amount_cents":12999,"currency":"EUR","created":1767225600}`,
		`{"id":"evt_6","type":"payment.succeeded","order_id":"o_nope","amount_cents":12999,"currency":"EUR","created":1767225600}`,
		`{"id":"evt_7","type":"payment.succeeded","order_id":"ORDER","amount_cents":12999,"currency":"EUR","created":1.7e9}`,
		`{"id":"evt_8","type":"payment.succeeded","order_id":"ORDER","amount_cents":12999,"currency":"EUR","created":1767225600,"id":"x"}`,
		`{"id":" evt_9 ","type":"payment.succeeded","order_id":"ORDER","amount_cents":12999,"currency":"EUR","created":1767225600000}`,
		`{"ID":"evt_10","type":"payment.succeeded","order_id":"ORDER","amount_cents":12999,"currency":"EUR","created":1767225600}`,
		`{}`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, envOptions{noServer: true, insecureUserHeader: true,
		payments: surgehttp.Payments{Provider: payments.Generic, Secrets: []string{hookSecret}}})
	if r := e.serve("POST", "/v1/sales", []byte(`{"id":"s","name":"Sneakers","stock":10,"per_user_limit":2,"price_cents":12999,"currency":"EUR","hold_seconds":3600}`), asAdmin()); r.status != http.StatusCreated {
		f.Fatalf("create: %v", r)
	}
	r := e.serve("POST", "/v1/sales/s/purchases", nil, header(userHeader, "alice"))
	if r.status != http.StatusCreated {
		f.Fatalf("buy: %v", r)
	}
	var ob api.OrderBody
	if err := json.Unmarshal(r.body, &ob); err != nil {
		f.Fatal(err)
	}
	order := ob.Order.ID
	count := func(t *testing.T) int {
		n := 0
		if err := e.store.Payments(context.Background(), func(surge.Payment) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	post := func(body []byte) response {
		now := time.Now()
		return e.serve("POST", hookPath, body, header("Surge-Signature", fmt.Sprintf("t=%d,v1=%s", now.Unix(), sign(hookSecret, now, string(body)))))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte("ORDER"), []byte(order))
		before := count(t)
		r := post(body)
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q: %v", ct, r)
		}
		switch r.status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if err := checkErrorShape(r.body); err != nil {
				t.Fatalf("%v: %v", r, err)
			}
			if n := count(t); n != before {
				t.Fatalf("refused %q (%v), yet %d payments were recorded", body, r, n-before)
			}
			return
		case http.StatusNotFound:
			if err := checkErrorShape(r.body); err != nil {
				t.Fatalf("%v: %v", r, err)
			}
			return
		case http.StatusOK, http.StatusUnprocessableEntity:
		default:
			t.Fatalf("status %d for %q: %v", r.status, body, r)
		}
		// Accepted: a strict body of the six members, each once.
		names, err := memberNames(body)
		if err != nil {
			t.Fatalf("accepted %q: %v", body, err)
		}
		slices.Sort(names)
		want := slices.Clone(webhookKeys)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Fatalf("accepted %q with members %q", body, names)
		}
		var in struct {
			ID          string
			Type        string
			OrderID     string `json:"order_id"`
			AmountCents int64  `json:"amount_cents"`
			Currency    string
			Created     int64
		}
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted %q: %v", body, err)
		}
		if !surge.Plain(in.ID) || in.ID == "" || strings.HasPrefix(in.ID, "manual_") || in.AmountCents < 0 ||
			!slices.Contains([]string{"payment.succeeded", "payment.failed", "refund.succeeded"}, in.Type) {
			t.Fatalf("accepted %q", body)
		}
		if y := time.Unix(in.Created, 0).UTC().Year(); y < 1 || y > 9999 {
			t.Fatalf("accepted created %d (year %d)", in.Created, y)
		}
		again := post(body)
		if again.status != r.status || !bytes.Equal(again.body, r.body) {
			t.Fatalf("the same event again: %v, first %v", again, r)
		}
		if r.status == http.StatusOK {
			var pb api.PaymentBody
			if err := json.Unmarshal(r.body, &pb); err != nil {
				t.Fatal(err)
			}
			p := pb.Payment
			// A repeated id answers as its first delivery did, which may
			// have been another body (another fuzz input).
			if p.ID != in.ID {
				t.Fatalf("payment %+v for event %q", p, body)
			}
		}
	})
}
