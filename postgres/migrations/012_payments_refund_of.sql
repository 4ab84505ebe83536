-- A refund naming its payment (a Stripe Checkout payment's charge names only
-- its PaymentIntent) is that payment's: it was recorded after it, so it is
-- never the refund delivered first of a later payment of the same amount,
-- which it had called refunded with its money still taken. Rows written
-- before this migration name none.
ALTER TABLE payments ADD COLUMN refund_of text;
