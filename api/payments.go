package api

// PaymentEvent is the body of POST /v1/payments/webhook (the generic,
// Stripe-like scheme; docs/payments.md). Every field is required.
type PaymentEvent struct {
	ID          *string `json:"id"`
	Type        *string `json:"type"` // payment.succeeded, payment.failed or refund.succeeded
	OrderID     *string `json:"order_id"`
	AmountCents *int64  `json:"amount_cents"`
	Currency    *string `json:"currency"`
	Created     *int64  `json:"created"` // Unix seconds, when the provider says it happened
}

// Payment is a recorded payment event and what Surge made of it: the
// answer of the webhook (also to a replay) as {"payment": …}.
type Payment struct {
	ID          string `json:"id"`
	Type        string `json:"type"` // as sent, or manual
	OrderID     string `json:"order_id"`
	SaleID      string `json:"sale_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	// Status: paid, amount_mismatch, refund_due, refunded, failed, refund
	// or refund_unexpected (docs/payments.md's table).
	Status     string `json:"status"`
	Provider   string `json:"provider"` // surge, stripe or manual
	Created    string `json:"created"`
	RecordedAt string `json:"recorded_at"`
	Settles    string `json:"settles,omitempty"` // a refund: the refund_due payment it settled
}

// PaymentBody is the webhook's answer to an event it applied or recorded.
type PaymentBody struct {
	Payment Payment `json:"payment"`
}

// IgnoredBody answers a Stripe event Surge does not act on (another type,
// no surge_order_id, a checkout not yet paid): 200, so Stripe stops
// sending it.
type IgnoredBody struct {
	Ignored string `json:"ignored"` // why
}
