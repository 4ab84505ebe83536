-- A refund_due event carries its order as the payment found it: the relay
-- joined the order's current status, so an order that expired or was
-- cancelled before the relay read the row changed the event's body (and a
-- repeat of the event under the same id could differ from the first).
-- Rows written before this migration keep the old reading.
ALTER TABLE outbox ADD COLUMN status text;
