-- One index fewer to write per order: orders_idem covers every order, not
-- only those with a key, and so also serves the buyer lookups of
-- surge_insert_orders (sale_id, user_id), which orders_by_user served.
-- Unique as before: NULL keys are distinct, so orders without a key never
-- conflict. Measured, 60-row commits: about 27 -> 22 µs of PostgreSQL CPU
-- per order (docs/benchmarks.md).
DROP INDEX orders_by_user;
DROP INDEX orders_idem;
CREATE UNIQUE INDEX orders_idem ON orders (sale_id, user_id, idem_key);
