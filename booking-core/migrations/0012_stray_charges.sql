-- Charges an order cannot keep. The provider may report a success for an
-- order in any state: a 3-D Secure or processing charge that completes after
-- the order was recorded as failed and its hold bought by another order of
-- the fan's, or a second charge for an order already paid. Such a charge is
-- never kept without tickets: it is recorded here, once per charge (the
-- key), and refunded in full through the provider with a key derived from
-- this row (`stray-<intent>-refund`), so duplicate webhooks, reconciliation
-- and retries all reach the same single refund (checkout/late.rs).
CREATE TABLE stray_charges (
    provider           text NOT NULL,
    intent_id          text NOT NULL,
    order_id           uuid NOT NULL REFERENCES orders (id),
    amount_cents       bigint NOT NULL CHECK (amount_cents > 0),
    -- Why it could not be kept (`order_payment_failed`, `order_already_paid`, ...).
    reason             text NOT NULL,
    -- pending: the refund is not yet confirmed by the provider (the
    -- reconciliation job retries it).
    state              text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded')),
    provider_refund_id text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    succeeded_at       timestamptz,
    next_check_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, intent_id),
    CHECK ((state = 'succeeded') = (succeeded_at IS NOT NULL))
);

CREATE INDEX stray_charges_by_order ON stray_charges (order_id);
CREATE INDEX stray_charges_pending ON stray_charges (next_check_at) WHERE state = 'pending';
