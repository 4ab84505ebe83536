package api

// OrderEvent is the body of an order event published to NATS JetStream
// (docs/events.md): subject surge.orders.<sale_id>.<event>, header
// Nats-Msg-Id = id.
type OrderEvent struct {
	ID     string `json:"id"`            // "<order id>:<event>" (refund_due: ":<payment id>" added); stable across retries
	Seq    int64  `json:"seq"`           // the outbox's sequence: ascending in the order published
	Event  string `json:"event"`         // reserved, paid, cancelled, expired or refund_due
	At     string `json:"at"`            // the time of the change (the store's clock)
	SaleID string `json:"sale_id"`       // also in the subject
	Ref    string `json:"ref,omitempty"` // refund_due: the payment's id
	Order  Order  `json:"order"`         // the order as of the change
}
