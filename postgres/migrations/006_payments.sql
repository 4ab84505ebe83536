-- Payments (issue 13): every payment event a provider (or the operator's
-- manual settlement) sent, and what Surge made of it. id is the event's
-- own id, unique, so a redelivered event is recognised as a replay, also
-- when two nodes receive it at once. An order's move to paid commits in
-- the same transaction as the payment that caused it (postgres.RecordPayment).
CREATE TABLE payments (
    seq          bigserial NOT NULL,
    id           text PRIMARY KEY,
    type         text NOT NULL,
    order_id     text NOT NULL,
    sale_id      text NOT NULL,
    amount_cents bigint NOT NULL,
    currency     text NOT NULL,
    status       text NOT NULL,
    provider     text NOT NULL,
    created_at   timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL,
    settles      text -- a refund: the refund_due payment it settled
);

CREATE INDEX payments_by_order ON payments (order_id, seq);
CREATE INDEX payments_by_seq ON payments (seq);
