-- Order events are written only in a cluster that publishes them. A node
-- started with --nats-url turns them on for the whole cluster before it
-- serves (postgres.Options.Events), and nothing turns them off. Before,
-- every change wrote its event whether or not any node would ever relay it:
-- a cluster without NATS grew its outbox by a row per change, forever, and
-- each reservation paid about 2 µs of PostgreSQL CPU for it
-- (docs/benchmarks.md, 2026-12-05).
CREATE TABLE order_events (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    enabled boolean NOT NULL
);
-- An existing cluster keeps writing them if a relay ever held the outbox
-- lease (the lease's row outlives its term).
INSERT INTO order_events (enabled) VALUES (EXISTS (SELECT 1 FROM leases WHERE name = 'outbox'));

CREATE FUNCTION surge_events() RETURNS boolean LANGUAGE sql STABLE
    AS $$ SELECT enabled FROM order_events $$;

CREATE OR REPLACE FUNCTION surge_insert_orders(p_sale text, p_epoch bigint, p_ids text[], p_users text[], p_qty bigint[],
    p_keys text[], p_created timestamptz[], p_expires timestamptz[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_units bigint;
    v_sale record;
    v_user text;
BEGIN
    SELECT sum(q) INTO v_units FROM unnest(p_qty) AS q;
    -- The sale row's lock: inserts of a sale run one at a time, so the
    -- statements below (each with a fresh snapshot) see every order the
    -- others committed; a rebuild's epoch bump waits for them and fails
    -- every later insert of the old epoch.
    UPDATE sales SET sold = sold + v_units, ever = ever + v_units
        WHERE id = p_sale AND epoch = p_epoch
        RETURNING sold, stock, per_user_limit, ever INTO v_sale;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_sale.sold > v_sale.stock THEN
        RAISE EXCEPTION 'sale %: % units would be live, stock %', p_sale, v_sale.sold, v_sale.stock
            USING ERRCODE = 'SU001';
    END IF;
    SELECT b.u INTO v_user
        FROM (SELECT u, sum(q) AS q FROM unnest(p_users, p_qty) AS b(u, q) GROUP BY u) b
        WHERE b.q + (SELECT COALESCE(sum(o.quantity), 0) FROM orders o
            WHERE o.sale_id = p_sale AND o.user_id = b.u AND o.status IN ('reserved', 'paid')) > v_sale.per_user_limit
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'sale %: buyer % would hold more than % units', p_sale, v_user, v_sale.per_user_limit
            USING ERRCODE = 'SU002';
    END IF;
    INSERT INTO orders (id, sale_id, user_id, quantity, status, idem_key, created_at, expires_at)
        SELECT o.id, p_sale, o.u, o.q, 'reserved', NULLIF(o.k, ''), o.c, o.e
        FROM unnest(p_ids, p_users, p_qty, p_keys, p_created, p_expires) WITH ORDINALITY AS o(id, u, q, k, c, e, n)
        ORDER BY o.n;
    -- The batch's reserved events (migration 007), from the arrays, still
    -- under the sale row's lock: their seqs follow the sale's commits.
    IF surge_events() THEN
        INSERT INTO outbox (sale_id, order_id, event, at)
            SELECT p_sale, o.id, 'reserved', o.c
            FROM unnest(p_ids, p_created) WITH ORDINALITY AS o(id, c, n)
            ORDER BY o.n;
    END IF;
    RETURN v_sale.ever;
END
$$;
