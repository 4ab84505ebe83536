-- PostgreSQL, the durable truth, guards the guarantees itself, so that a
-- Redis that lost or rolled back state (a snapshot or AOF reloaded, an
-- asynchronous replica promoted, keys evicted) can never make it accept an
-- oversell, a buyer over the limit or a second order for a key.

-- sold: units of the sale's live (reserved, paid) orders, kept by every
-- statement that inserts or settles orders under the sale row's lock.
-- ever: units ever inserted; it only grows. Redis carries its own count of
-- units reserved, set to ever by a rebuild, so a Redis count below ever
-- means Redis lost reservations PostgreSQL holds (cluster.Store compares).
ALTER TABLE sales ADD COLUMN sold bigint NOT NULL DEFAULT 0;
ALTER TABLE sales ADD COLUMN ever bigint NOT NULL DEFAULT 0;
UPDATE sales s SET
    sold = COALESCE((SELECT sum(quantity) FROM orders o WHERE o.sale_id = s.id AND o.status IN ('reserved', 'paid')), 0),
    ever = COALESCE((SELECT sum(quantity) FROM orders o WHERE o.sale_id = s.id), 0);

-- A buyer's live units, read by every insert for the buyers in its batch.
CREATE INDEX orders_by_user ON orders (sale_id, user_id);

-- Commits a batch's new orders of one sale, fenced by the epoch the batch
-- was decided under: NULL, and nothing written, if a rebuild replaced that
-- state. Otherwise it refuses (raises, so nothing is written) a batch that
-- would put the sale over its stock (SQLSTATE SU001) or a buyer over the
-- limit (SU002); a key that already has an order fails the unique index
-- orders_idem (23505). Returns the sale's ever after the batch.
CREATE FUNCTION surge_insert_orders(p_sale text, p_epoch bigint, p_ids text[], p_users text[], p_qty bigint[],
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
    RETURN v_sale.ever;
END
$$;
