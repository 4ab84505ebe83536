package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/surgehq/surge/api"
)

// SendPaymentEvent delivers a payment event to POST /v1/payments/webhook
// as a payment provider (or its adapter) does, signed with secret in
// Surge's scheme (Surge-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
// "<t>.<body>")>; docs/payments.md). The server applies an event id once
// and answers a repeat as it did the first, so every refusal is retried.
// A wrong amount or currency is a 422 amount_mismatch *APIError.
func (c *Client) SendPaymentEvent(ctx context.Context, secret string, ev api.PaymentEvent) (api.Payment, error) {
	var out api.PaymentBody
	cl, err := c.newCall(http.MethodPost, "/v1/payments/webhook", anyone, ev)
	if err != nil {
		return out.Payment, err
	}
	// Signed at each send: the server refuses a timestamp more than 5
	// minutes old, and a caller's RetryPolicy may retry for longer.
	cl.sign = func(h http.Header) {
		t := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(t + "."))
		mac.Write(cl.body)
		h.Set("Surge-Signature", "t="+t+",v1="+hex.EncodeToString(mac.Sum(nil)))
	}
	_, err = c.do(ctx, cl, &out)
	return out.Payment, err
}

// Healthy reports whether the server's process runs (GET /healthz).
func (c *Client) Healthy(ctx context.Context) error { return c.probe(ctx, "/healthz") }

// Ready reports whether the server takes purchases now (GET /readyz): a
// 503 unavailable *APIError, whose message says why, when it does not.
// It is not retried: the answer is the state at this moment.
func (c *Client) Ready(ctx context.Context) error { return c.probe(ctx, "/readyz") }

func (c *Client) probe(ctx context.Context, path string) error {
	cl, _ := c.newCall(http.MethodGet, path, anyone, nil)
	cl.safety = noRetry
	_, err := c.do(ctx, cl, nil)
	return err
}
