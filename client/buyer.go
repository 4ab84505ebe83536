package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"

	"github.com/surgehq/surge/api"
)

// PurchaseOptions are the optional parts of a purchase.
type PurchaseOptions struct {
	// Quantity of units; 0 sends no body, which the server reads as 1.
	Quantity int64
	// IdempotencyKey identifies this purchase; "" has the client draw
	// one. The same key goes with every retry, so a retry never buys
	// twice; keep Purchase.IdempotencyKey to ask again later.
	IdempotencyKey string
	// Ticket is the waiting room's ticket (api.Queue.Ticket) for a sale
	// that has one; see Admit.
	Ticket string
}

// Purchase is the answer of a purchase.
type Purchase struct {
	Order api.Order
	// Replayed: the key had already reserved, and this is that first
	// reservation again (Idempotent-Replayed: true).
	Replayed bool
	// IdempotencyKey is the key sent, also when the purchase failed.
	IdempotencyKey string
}

// Purchase reserves units of a sale for the client's buyer (201: reserved
// and durable). 429 and 503 are retried with the same Idempotency-Key
// within c.Retry; other refusals are an *APIError: 409 sold_out,
// limit_reached, not_started, ended or paused, 403 not_admitted, 422
// idempotency_mismatch (surge.HasCode tells them apart).
func (c *Client) Purchase(ctx context.Context, saleID string, opt PurchaseOptions) (Purchase, error) {
	out := Purchase{IdempotencyKey: opt.IdempotencyKey}
	if out.IdempotencyKey == "" {
		out.IdempotencyKey = NewIdempotencyKey()
	}
	var body any
	if opt.Quantity != 0 {
		body = struct {
			Quantity int64 `json:"quantity"`
		}{opt.Quantity}
	}
	cl, err := c.idCall(http.MethodPost, "sale", saleID, "/purchases", buyer, body)
	if err != nil {
		return out, err
	}
	cl.header.Set("Idempotency-Key", out.IdempotencyKey)
	if opt.Ticket != "" {
		cl.header.Set(ticketHeader, opt.Ticket)
	}
	var ob api.OrderBody
	h, err := c.do(ctx, cl, &ob)
	if err != nil {
		return out, err
	}
	out.Order, out.Replayed = ob.Order, h.Get("Idempotent-Replayed") == "true"
	return out, nil
}

// NewIdempotencyKey draws a random key: 128 bits, 22 characters of
// base64url, within the API's 1 to 128 printable characters.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Order reads an order: the client's buyer's own, or, with no buyer set,
// any order as the operator.
func (c *Client) Order(ctx context.Context, id string) (api.Order, error) {
	return c.orderCall(ctx, http.MethodGet, id, "", buyerOrAdmin, idempotent)
}

// CancelOrder cancels a reservation (the buyer's own, or any as the
// operator with no buyer set): its units go back to the stock. Retried
// only on refusals that cancelled nothing (429, 503 overloaded):
// cancelling a cancelled order answers 409 not_cancellable, whose
// message says the order "is already cancelled".
func (c *Client) CancelOrder(ctx context.Context, id string) (api.Order, error) {
	return c.orderCall(ctx, http.MethodPost, id, "/cancel", buyerOrAdmin, once)
}

// orderCall sends method to the order id's path, then rest.
func (c *Client) orderCall(ctx context.Context, method, id, rest string, w who, s safety) (api.Order, error) {
	var ob api.OrderBody
	cl, err := c.idCall(method, "order", id, rest, w, nil)
	if err != nil {
		return ob.Order, err
	}
	cl.safety = s
	_, err = c.do(ctx, cl, &ob)
	return ob.Order, err
}
