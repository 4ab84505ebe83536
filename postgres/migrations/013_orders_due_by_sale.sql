-- The expiry job's index by sale, then end of hold. The leader expires
-- sale by sale (postgres.DB.ExpireSale); on orders_due by end of hold
-- alone, an expiry read the due orders of every other sale ending before
-- the ones it moved, in the generic plan a connection switches to after
-- five runs of the prepared statement and in the custom plan alike, so
-- one order's expiry, however small its batch, cost the whole backlog
-- (a million due: seconds, past the call timeout), and no hold expired.
-- Here an expiry reads its sale's due orders only, and the sales with due
-- holds are found one index descent each (postgres.dueSalesSQL). Same name,
-- one entry per reserved order as before: an insert costs what it did
-- (docs/benchmarks.md, 2026-12-06). Built inside the migration's
-- transaction, as 008's indexes: inserts wait for the scan of the table
-- (about 0.5 s per million orders on the development machine).
DROP INDEX orders_due;
CREATE INDEX orders_due ON orders (sale_id, expires_at) WHERE status = 'reserved';
