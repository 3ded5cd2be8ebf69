-- The hold's expiry before a waiting payment extended it to the payment
-- deadline (0015): when the wait ends in a decline (the fan failed 3-D
-- Secure), the hold goes back to it (or to a couple of minutes from then,
-- whichever is later), so a failed authentication does not keep seats
-- from other fans until the deadline.
ALTER TABLE orders ADD COLUMN hold_expires_before timestamptz;
