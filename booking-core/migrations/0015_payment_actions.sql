-- Payments that wait (issue 23, 3-D Secure): while an order is
-- pending_payment its charge may wait for the fan (`requires_action`: the
-- provider's challenge page, `next_action_url`, is where the fan's browser
-- goes) or for the processor (`processing`). The order waits at most until
-- `payment_deadline` (its creation plus checkout.max_payment_wait_secs); its
-- hold is extended to then, and past it the charge is cancelled at the
-- provider, the order fails and the seats go back on sale. A success that
-- still arrives later is taken by checkout/late.rs (tickets if the seats are
-- free, otherwise all of it back).
ALTER TABLE orders
    ADD COLUMN payment_status   text,
    ADD COLUMN next_action_url  text,
    ADD COLUMN payment_deadline timestamptz;
