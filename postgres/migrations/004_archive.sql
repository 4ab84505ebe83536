-- Archived sales (issue 9, item 12): an ended sale without reserved orders
-- taken out of service. Its row and orders stay (reads and exports still
-- work), but nodes no longer load it, the leader no longer watches or
-- rebuilds its live state, and archived_remaining keeps its final figure.
ALTER TABLE sales ADD COLUMN archived_at timestamptz;
ALTER TABLE sales ADD COLUMN archived_remaining bigint CHECK (archived_remaining >= 0);
ALTER TABLE sales ADD CONSTRAINT sales_archived_whole CHECK ((archived_at IS NULL) = (archived_remaining IS NULL));

-- Nodes list the live sales at start and on every poll: with thousands of
-- archived ones, this keeps that listing to the live rows.
CREATE INDEX sales_live ON sales (created_at, id) WHERE archived_at IS NULL;
