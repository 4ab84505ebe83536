-- Surge cluster mode: the durable truth. Redis holds only live, rebuildable
-- state; every order a buyer was answered 201 for is a row here.

CREATE TABLE sales (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    stock          bigint NOT NULL CHECK (stock > 0),
    per_user_limit bigint NOT NULL CHECK (per_user_limit > 0),
    price_cents    bigint NOT NULL,
    currency       text NOT NULL,
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz,
    hold_seconds   bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    waiting_room   jsonb,
    -- epoch fences Redis state: orders decided against an older copy of
    -- the live state can no longer be inserted (see postgres.InsertOrders).
    epoch          bigint NOT NULL DEFAULT 1,
    -- dirty asks the leader to rebuild the sale's live state in Redis
    -- (a release that could not reach Redis).
    dirty          boolean NOT NULL DEFAULT false
);

-- No foreign key to sales: the fence in every insert already reads the
-- sale row, and a per-row FK check would double that work.
CREATE TABLE orders (
    seq        bigserial NOT NULL,
    id         text PRIMARY KEY,
    sale_id    text NOT NULL,
    user_id    text NOT NULL,
    quantity   bigint NOT NULL CHECK (quantity > 0),
    status     text NOT NULL CHECK (status IN ('reserved', 'paid', 'cancelled', 'expired')),
    idem_key   text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    updated_at timestamptz
);

-- The last guard of "one order per idempotency key", behind Redis.
CREATE UNIQUE INDEX orders_idem ON orders (sale_id, user_id, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX orders_by_sale ON orders (sale_id, seq);
CREATE INDEX orders_due ON orders (expires_at) WHERE status = 'reserved';

-- Leases elect the node that runs the once-only jobs (expiry,
-- reconciliation). token grows with every new term and fences writes.
CREATE TABLE leases (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    token      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
