package surge

import (
	"context"
	"time"
)

// OrderEventKind names an order change the outbox publishes: the four
// statuses an order takes, and refund_due (money taken for an order that
// was already expired or cancelled).
type OrderEventKind string

const (
	EventReserved  OrderEventKind = "reserved"
	EventPaid      OrderEventKind = "paid"
	EventCancelled OrderEventKind = "cancelled"
	EventExpired   OrderEventKind = "expired"
	EventRefundDue OrderEventKind = "refund_due"
)

// OrderEvent is one order change as the transactional outbox holds it:
// written in the same transaction as the change, published later by the
// relay (package outbox). Order is the order as of the change (its Status
// is the event's, except for refund_due, which leaves the order as it is).
type OrderEvent struct {
	Seq   int64 // the outbox's sequence: within a sale, the order of the changes
	Kind  OrderEventKind
	At    time.Time
	Ref   string // refund_due: the payment's id; "" otherwise
	Order Order
}

// ID is the event's stable, unique id: "<order id>:<kind>", plus
// ":<ref>" for refund_due (one per payment). An order takes each status
// at most once, so a change keeps its id however often it is published;
// NATS JetStream drops a repeat by it (Nats-Msg-Id).
func (e OrderEvent) ID() string {
	id := e.Order.ID + ":" + string(e.Kind)
	if e.Ref != "" {
		id += ":" + e.Ref
	}
	return id
}

// Outbox is what a store with a transactional outbox offers its relay.
// One relay drains it at a time (cluster mode: the lease holder).
type Outbox interface {
	// PendingEvents returns up to limit unpublished events whose Seq is
	// above after, oldest (lowest Seq) first; none when this node must not
	// publish (cluster mode: it does not hold the relay's lease). The relay
	// reads on from the last event it published while the removal of the
	// earlier ones is under way, and from 0 once they are removed: an
	// event whose transaction committed after a higher Seq was read (which
	// PostgreSQL's sequences allow) is found then.
	PendingEvents(ctx context.Context, after int64, limit int) ([]OrderEvent, error)
	// EventsPublished removes events the relay published: every event of
	// the slice, which PendingEvents returned.
	EventsPublished(ctx context.Context, events []OrderEvent) error
	// OutboxBacklog reports how many events wait and the time of the
	// oldest (zero when none wait).
	OutboxBacklog(ctx context.Context) (n int64, oldest time.Time, err error)
}
