-- Disputes (chargebacks), issue 23: the fan's bank takes a charge back.
--
-- One row per provider dispute, keyed by the provider's own id, whatever
-- order its webhooks arrive in and however often: its state only moves
-- forward (open -> won | lost; a closed dispute never reopens), and what
-- was done to the order's tickets is recorded on the row, so each effect
-- happens once.
--
-- What happens to the disputed order's tickets, by the event's policy
-- (`event_policies.dispute_void_on`):
--   'created': voided (state 'voided_disputed') as soon as the dispute opens;
--   'lost'   : (the default) valid while the dispute is open, voided if it is lost.
-- A voided ticket's seat keeps its sale claim while the dispute is open,
-- so it is never sold again meanwhile (a hold on it is refused).
--   won : tickets voided on 'created' become valid again (their seat kept
--         its claim, so nobody else can have it).
--   lost: the tickets stay void for good, and the seat is treated as a
--         refunded one: back on sale if the event's `return_refunded_seats`
--         says so, otherwise it stays off sale.
-- A dispute for a charge the core does not know is kept (order_id NULL)
-- and acknowledged; one for an order not yet confirmed is applied when the
-- order is confirmed.
CREATE TABLE disputes (
    provider          text NOT NULL,
    dispute_id        text NOT NULL CHECK (length(dispute_id) BETWEEN 1 AND 255),
    -- The disputed charge, and its order if the core knows it.
    intent_id         text CHECK (intent_id IS NULL OR length(intent_id) BETWEEN 1 AND 255),
    order_id          uuid REFERENCES orders (id),
    event_id          bigint,
    amount_cents      bigint NOT NULL CHECK (amount_cents >= 0),
    currency          text,
    reason            text CHECK (reason IS NULL OR length(reason) <= 100),
    state             text NOT NULL CHECK (state IN ('open', 'won', 'lost')),
    -- The tickets this dispute voided (restored on won), and when.
    voided_ticket_ids uuid[] NOT NULL DEFAULT '{}',
    voided_at         timestamptz,
    restored_at       timestamptz,
    -- When a lost dispute's seats went back on sale (policy permitting).
    seats_returned_at timestamptz,
    -- The last state the operator and fan were told of (outbox), so each
    -- state is told once.
    notified_state    text CHECK (notified_state IS NULL OR notified_state IN ('open', 'won', 'lost')),
    opened_at         timestamptz NOT NULL DEFAULT now(),
    closed_at         timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, dispute_id),
    CHECK ((state = 'open') = (closed_at IS NULL)),
    CHECK ((order_id IS NULL) = (event_id IS NULL))
);

CREATE INDEX disputes_by_order ON disputes (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX disputes_by_intent ON disputes (intent_id) WHERE intent_id IS NOT NULL;
CREATE INDEX disputes_by_event ON disputes (event_id, opened_at DESC) WHERE event_id IS NOT NULL;

ALTER TABLE event_policies
    ADD COLUMN dispute_void_on text NOT NULL DEFAULT 'lost' CHECK (dispute_void_on IN ('created', 'lost'));

-- A ticket voided by a chargeback: refused at the gate, not transferable,
-- listable or refundable; valid again if the dispute is won.
ALTER TABLE tickets DROP CONSTRAINT tickets_state_check;
ALTER TABLE tickets ADD CONSTRAINT tickets_state_check
    CHECK (state IN ('valid', 'refunded', 'void', 'voided_disputed'));

-- The whole list, 0021's payout topic included (0019 and 0021 were written
-- side by side; whichever runs last must keep both).
ALTER TABLE outbox DROP CONSTRAINT outbox_topic_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_topic_check
    CHECK (topic IN ('order.confirmed', 'payment.failed', 'hold.expired', 'refund.issued', 'ticket.transferred',
                     'books.mismatch', 'payout.failed', 'dispute.opened', 'dispute.closed'));
