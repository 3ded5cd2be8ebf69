-- Checkout: orders (the purchase saga's persisted state), tickets, the
-- payment provider's webhook receipts, and the outbox of notifications.
--
-- An order moves through these states, each move one conditional UPDATE
-- (see checkout/orders.rs), so a step run twice, or by two workers at once,
-- changes nothing the second time:
--
--   pending_payment --(provider: succeeded)--> paid --(seats sold, tickets)--> confirmed
--         |                                     |
--         +--(provider: declined)--> payment_failed
--                                               +--(seats gone)--> refunding --> refunded
--
-- `paid` lasts one transaction in the normal case; it is persisted so that
-- a crash after the money was taken is finished by the reconciliation job.

CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    hold_id         uuid NOT NULL REFERENCES holds (id),
    event_id        bigint NOT NULL,
    fan_id          text NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint     bytea NOT NULL,
    -- Copied from the hold when the order is made: the prices charged are
    -- the prices the hold locked.
    seat_ids        bigint[] NOT NULL CHECK (cardinality(seat_ids) > 0),
    prices_cents    bigint[] NOT NULL CHECK (cardinality(prices_cents) = cardinality(seat_ids)),
    total_cents     bigint NOT NULL CHECK (total_cents >= 0),
    currency        text NOT NULL,
    -- The provider's token for the fan's card (never card data).
    payment_method  text NOT NULL,
    provider        text NOT NULL,
    state           text NOT NULL DEFAULT 'pending_payment'
                    CHECK (state IN ('pending_payment', 'paid', 'confirmed', 'payment_failed', 'refunding', 'refunded')),
    intent_id       text,
    failure_code    text,
    -- Why the money went back, when it did.
    refund_reason   text,
    refund_id       text,
    -- True when a paid order's seats were claimed again after its hold had
    -- lapsed (the payment came late, and the seats were still free).
    reclaimed       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    confirmed_at    timestamptz,
    -- The reconciliation job's schedule: when to next ask the provider about
    -- an order still in an intermediate state, and how often it has asked.
    next_check_at   timestamptz NOT NULL DEFAULT now(),
    checks          int NOT NULL DEFAULT 0,
    CHECK ((state = 'confirmed') = (confirmed_at IS NOT NULL)),
    CHECK (state NOT IN ('paid', 'confirmed', 'refunding', 'refunded') OR intent_id IS NOT NULL OR total_cents = 0)
);

CREATE UNIQUE INDEX orders_by_idempotency_key ON orders (fan_id, idempotency_key);
-- A hold is paid for once: at most one order per hold that has not failed
-- (after a decline the fan may try another card on the same hold).
CREATE UNIQUE INDEX one_live_order_per_hold ON orders (hold_id) WHERE state <> 'payment_failed';
CREATE INDEX orders_by_fan ON orders (fan_id, id DESC);
CREATE INDEX orders_by_intent ON orders (intent_id) WHERE intent_id IS NOT NULL;
CREATE INDEX orders_to_reconcile ON orders (next_check_at) WHERE state IN ('pending_payment', 'paid', 'refunding');

CREATE TABLE tickets (
    id            uuid PRIMARY KEY,
    order_id      uuid NOT NULL REFERENCES orders (id),
    event_id      bigint NOT NULL,
    seat_id       bigint NOT NULL,
    owner_fan_id  text NOT NULL,
    price_cents   bigint NOT NULL CHECK (price_cents >= 0),
    state         text NOT NULL DEFAULT 'valid' CHECK (state IN ('valid', 'refunded', 'void')),
    -- Part of the signed QR payload. A transfer bumps it, so the old QR
    -- stops scanning and the new owner's works.
    version       int NOT NULL DEFAULT 1 CHECK (version > 0),
    -- Rotating codes are derived from it (see tickets/qr.rs).
    secret        bytea NOT NULL CHECK (length(secret) = 32),
    issued_at     timestamptz NOT NULL DEFAULT now(),
    checked_in_at timestamptz,
    checked_in_by text,
    CHECK ((checked_in_at IS NULL) = (checked_in_by IS NULL))
);

-- THE LAST GUARANTEE for a sale: one valid ticket per seat per event, even
-- if every check above it were wrong.
CREATE UNIQUE INDEX one_ticket_per_seat ON tickets (event_id, seat_id) WHERE state = 'valid';
CREATE INDEX tickets_by_order ON tickets (order_id);
CREATE INDEX tickets_by_owner ON tickets (owner_fan_id, issued_at);

-- Each provider webhook event acted on, by the provider's event id: a
-- duplicate delivery finds its row and changes nothing.
CREATE TABLE payment_webhooks (
    provider    text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- Notifications, written in the same transaction as the change they tell
-- of, so none is lost and none is sent for a change that rolled back.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL CHECK (topic IN ('order.confirmed', 'payment.failed', 'hold.expired',
                                             'refund.issued', 'ticket.transferred')),
    order_id   uuid,
    fan_id     text,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
