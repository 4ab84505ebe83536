-- Steering a live sale (issue 12): an operator pauses a sale or changes its
-- name, stock, per-user limit, end or hold while it runs (postgres.UpdateSale).
-- The change takes the sale row's lock, which every insert of the sale
-- shares (surge_insert_orders), so it is ordered against them; a change of
-- what Redis decides on (pause, stock, limit, end) also bumps the epoch, so
-- no batch decided against the old sale inserts afterwards. The stock guard
-- of migration 003 (sold <= stock, under the same lock) refuses any insert
-- that a lowered stock no longer has room for.
ALTER TABLE sales ADD COLUMN paused boolean NOT NULL DEFAULT false;
-- When an operator last changed the sale (NULL: never).
ALTER TABLE sales ADD COLUMN updated_at timestamptz;
