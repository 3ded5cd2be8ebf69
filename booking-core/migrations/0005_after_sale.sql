-- After the sale: refunds of whole orders or single tickets, transfers of
-- tickets between fans, and each event's after-sale policy.

-- An event's after-sale rules. An event without a row gets the defaults
-- (see tickets/policy.rs), so existing events need no migration of data.
CREATE TABLE event_policies (
    event_id              bigint PRIMARY KEY REFERENCES events (id),
    -- A refunded seat goes back on sale (false: it stays off sale, e.g.
    -- when the refund is a goodwill gesture after the event filled).
    return_refunded_seats boolean NOT NULL DEFAULT true,
    -- Resale: the most a ticket may be listed for, as a percentage of face
    -- value (100 = face-value-only markets, e.g. UK and Ireland).
    resale_cap_percent    integer NOT NULL DEFAULT 120 CHECK (resale_cap_percent BETWEEN 0 AND 1000),
    -- The platform's fee on a resale, taken from the seller's payout.
    resale_fee_percent    integer NOT NULL DEFAULT 10 CHECK (resale_fee_percent BETWEEN 0 AND 100),
    transfers_allowed     boolean NOT NULL DEFAULT true
);

-- One refund: some tickets of one order, and the money for them.
CREATE TABLE refunds (
    id              uuid PRIMARY KEY,
    order_id        uuid NOT NULL REFERENCES orders (id),
    fan_id          text NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint     bytea NOT NULL,
    ticket_ids      uuid[] NOT NULL CHECK (cardinality(ticket_ids) > 0),
    amount_cents    bigint NOT NULL CHECK (amount_cents >= 0),
    -- pending: tickets voided and seats handled, money not yet confirmed
    -- back by the provider (the reconciliation job retries it).
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded')),
    provider_refund_id text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    succeeded_at    timestamptz,
    next_check_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'succeeded') = (succeeded_at IS NOT NULL))
);

CREATE UNIQUE INDEX refunds_by_idempotency_key ON refunds (fan_id, idempotency_key);
CREATE INDEX refunds_by_order ON refunds (order_id);
CREATE INDEX refunds_pending ON refunds (next_check_at) WHERE state = 'pending';

-- Every change of a ticket's owner, kept for good.
CREATE TABLE ticket_transfers (
    id              uuid PRIMARY KEY,
    ticket_id       uuid NOT NULL REFERENCES tickets (id),
    from_fan_id     text NOT NULL,
    to_fan_id       text NOT NULL CHECK (to_fan_id <> from_fan_id),
    -- The ticket's version after the transfer: the new owner's QR code.
    version         int NOT NULL,
    kind            text NOT NULL DEFAULT 'transfer' CHECK (kind IN ('transfer', 'resale')),
    idempotency_key text NOT NULL,
    fingerprint     bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX ticket_transfers_by_idempotency_key ON ticket_transfers (from_fan_id, idempotency_key);
CREATE INDEX ticket_transfers_by_ticket ON ticket_transfers (ticket_id, created_at);
