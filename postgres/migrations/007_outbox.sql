-- The transactional outbox of order events (docs/events.md): every
-- statement that changes an order writes its event here in the same
-- transaction, and the relay (package outbox), on the node holding the
-- "outbox" lease, publishes the rows to NATS JetStream and deletes them.
-- seq is the publishing order; within a sale, reservations take it under
-- the sale row's lock, so it is their commit order, and an order's events
-- are always in the order of its changes. ref is the payment of a
-- refund_due event.
CREATE TABLE outbox (
    seq      bigserial PRIMARY KEY,
    sale_id  text NOT NULL,
    order_id text NOT NULL,
    event    text NOT NULL CHECK (event IN ('reserved', 'paid', 'cancelled', 'expired', 'refund_due')),
    at       timestamptz NOT NULL,
    ref      text
);
