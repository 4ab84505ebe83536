-- An archived sale whose live state may still be in Redis: the archive
-- sets it, and it is cleared once the state is known removed (by the
-- archiving node, or else by the leader's round). An archive whose node
-- could not reach Redis right then (or whose caller went away) otherwise
-- left every key of the sale in Redis for good.
ALTER TABLE sales ADD COLUMN live_left boolean NOT NULL DEFAULT false;

CREATE INDEX sales_live_left ON sales (id) WHERE live_left;
