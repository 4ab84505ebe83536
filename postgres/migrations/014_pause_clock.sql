-- A pause stops a waiting room's clock (surge.Sale.Stopped): the buyers it
-- admitted keep the time they had left, the waiting keep their places. Every
-- node stops the same clock, so the sale keeps when its pause in force began
-- (NULL when not paused) and how long the pauses that ended stopped it
-- (nanoseconds, counted from its start). A sale paused before this migration
-- counts its pause from the operator's last change, at or after the pause: a
-- window is never given back more than the pause took.
ALTER TABLE sales ADD COLUMN paused_at timestamptz;
ALTER TABLE sales ADD COLUMN paused_for_ns bigint NOT NULL DEFAULT 0 CHECK (paused_for_ns >= 0);
UPDATE sales SET paused_at = coalesce(updated_at, now()) WHERE paused;
