-- Resale payouts are paid, not only recorded (issue 23, checkout/payouts.rs).
-- A seller names the connected account at the provider that receives their
-- money (checked with the provider when named); each payout is sent to it
-- as a transfer once it is payable (checkout.payout_delay_secs after the
-- sale, so that a buyer's refund or chargeback can still cancel it), by the
-- reconciliation job, with a key
-- derived from the payout and its attempt (`payout-<listing>-<attempt>`),
-- so a retry after a lost answer reaches the same transfer and no payout
-- is ever sent twice:
--
--   owed -> paid        the provider took the transfer
--   owed -> failed      the provider refused it (the account cannot receive
--                       money): operators see it; the seller naming an
--                       account again makes it owed again, with a new attempt
--   owed -> cancelled   the buyer's order was refunded before it was paid
--
-- A payout waits while its seller has named no account.
CREATE TABLE fan_payout_accounts (
    fan_id      text PRIMARY KEY,
    provider    text NOT NULL,
    account_id  text NOT NULL CHECK (length(account_id) BETWEEN 1 AND 255),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE resale_payouts DROP CONSTRAINT resale_payouts_state_check;
ALTER TABLE resale_payouts
    ADD CONSTRAINT resale_payouts_state_check CHECK (state IN ('owed', 'paid', 'failed', 'cancelled')),
    ADD COLUMN attempt        integer NOT NULL DEFAULT 1 CHECK (attempt > 0),
    ADD COLUMN next_check_at  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN destination    text,
    ADD COLUMN transfer_id    text,
    ADD COLUMN failure_code   text,
    ADD COLUMN paid_at        timestamptz,
    ADD COLUMN updated_at     timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT resale_payouts_paid_has_transfer CHECK ((state = 'paid') = (transfer_id IS NOT NULL AND paid_at IS NOT NULL));

CREATE INDEX resale_payouts_due ON resale_payouts (next_check_at) WHERE state = 'owed';
CREATE INDEX resale_payouts_by_seller ON resale_payouts (seller_fan_id, created_at);

-- The whole list, 0019's dispute topics and 0020's waitlist offer included
-- (0019, 0020 and 0021 were written side by side; whichever runs last must
-- keep them all).
ALTER TABLE outbox DROP CONSTRAINT outbox_topic_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_topic_check
    CHECK (topic IN ('order.confirmed', 'payment.failed', 'hold.expired', 'refund.issued',
                     'ticket.transferred', 'books.mismatch', 'payout.failed',
                     'dispute.opened', 'dispute.closed', 'waitlist.offer'));
