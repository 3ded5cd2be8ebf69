-- Resale: a fan lists a ticket at no more than the event's cap; a buyer
-- pays through the same checkout as a primary sale; on success the ticket
-- moves to the buyer and the seller is owed the price minus the fee.

CREATE TABLE resale_listings (
    id             uuid PRIMARY KEY,
    ticket_id      uuid NOT NULL REFERENCES tickets (id),
    event_id       bigint NOT NULL,
    seller_fan_id  text NOT NULL,
    -- The ticket's version when listed: a listing of an older version is dead.
    ticket_version int NOT NULL,
    price_cents    bigint NOT NULL CHECK (price_cents > 0),
    face_cents     bigint NOT NULL CHECK (face_cents >= 0),
    state          text NOT NULL DEFAULT 'listed' CHECK (state IN ('listed', 'sold', 'cancelled')),
    -- A buyer's order holds the listing while it pays, like a hold holds seats.
    reserved_by    uuid,
    reserved_until timestamptz,
    idempotency_key text NOT NULL,
    fingerprint    bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    ended_at       timestamptz,
    CHECK ((state = 'listed') = (ended_at IS NULL))
);

-- A ticket is listed at most once at a time; a listing is sold at most once
-- (its state moves from listed exactly once).
CREATE UNIQUE INDEX one_listing_per_ticket ON resale_listings (ticket_id) WHERE state = 'listed';
CREATE UNIQUE INDEX resale_listings_by_idempotency_key ON resale_listings (seller_fan_id, idempotency_key);
CREATE INDEX resale_listings_by_event ON resale_listings (event_id, price_cents) WHERE state = 'listed';

-- An order buys either a hold's seats or one listing.
ALTER TABLE orders ALTER COLUMN hold_id DROP NOT NULL;
ALTER TABLE orders ADD COLUMN listing_id uuid REFERENCES resale_listings (id);
ALTER TABLE orders ADD CONSTRAINT orders_buy_one_thing CHECK ((hold_id IS NULL) <> (listing_id IS NULL));
CREATE UNIQUE INDEX one_live_order_per_listing ON orders (listing_id) WHERE state NOT IN ('payment_failed', 'refunded');

-- What each seller is owed: the price less the platform's fee.
CREATE TABLE resale_payouts (
    listing_id    uuid PRIMARY KEY REFERENCES resale_listings (id),
    order_id      uuid NOT NULL REFERENCES orders (id),
    seller_fan_id text NOT NULL,
    gross_cents   bigint NOT NULL,
    fee_cents     bigint NOT NULL CHECK (fee_cents >= 0 AND fee_cents <= gross_cents),
    net_cents     bigint NOT NULL CHECK (net_cents = gross_cents - fee_cents),
    state         text NOT NULL DEFAULT 'owed' CHECK (state IN ('owed', 'paid')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
