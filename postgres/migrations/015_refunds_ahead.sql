-- Refunds naming only a payment not recorded yet (a Stripe Checkout
-- payment's charge names only its PaymentIntent, and Stripe does not deliver
-- events in order): no order is known, so they are no payments yet. The
-- payment of that id and provider, when it comes, records them as refunds of
-- its order and drops them here (postgres.RecordPayment); until then
-- nothing lists them.
CREATE TABLE refunds_ahead (
    seq          bigserial NOT NULL,
    id           text PRIMARY KEY,
    refund_of    text NOT NULL,
    provider     text NOT NULL,
    amount_cents bigint NOT NULL,
    currency     text NOT NULL,
    created_at   timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL
);

CREATE INDEX refunds_ahead_by_payment ON refunds_ahead (refund_of, provider, seq);
