-- A refund kept for a payment not recorded yet (015) is kept for
-- surge.RefundAheadKept (30 days) at most: keeping one drops those kept
-- longer (postgres.refundOrder), found by this index, so the table holds no
-- more than that window's refunds whose payment never came.
CREATE INDEX refunds_ahead_by_age ON refunds_ahead (recorded_at);
