-- Each event's currency, fees and taxes (issue 23, pricing/fees.rs).
-- An event without a currency of its own charges in the deployment's
-- (`payments.currency`); amounts everywhere are integers of the currency's
-- minor unit. The currency cannot change once the event has sales (checked
-- under the event's row lock; an order made in the same instant keeps the
-- currency it was made in, and is charged and refunded in it).
ALTER TABLE events ADD COLUMN currency text CHECK (currency ~ '^[a-z]{3}$');

CREATE TABLE event_fees (
    event_id                      bigint PRIMARY KEY REFERENCES events (id),
    service_fee_per_ticket_cents  bigint NOT NULL DEFAULT 0 CHECK (service_fee_per_ticket_cents BETWEEN 0 AND 10000000),
    facility_fee_per_ticket_cents bigint NOT NULL DEFAULT 0 CHECK (facility_fee_per_ticket_cents BETWEEN 0 AND 10000000),
    order_fee_cents               bigint NOT NULL DEFAULT 0 CHECK (order_fee_cents BETWEEN 0 AND 10000000),
    tax_rate_bp                   integer NOT NULL DEFAULT 0 CHECK (tax_rate_bp BETWEEN 0 AND 10000),
    tax_inclusive                 boolean NOT NULL DEFAULT false,
    fees_taxable                  boolean NOT NULL DEFAULT true,
    fees_refundable               boolean NOT NULL DEFAULT false,
    updated_at                    timestamptz NOT NULL DEFAULT now()
);

-- An order's lines (tickets, fees, taxes) as charged, when the event has
-- fees or taxes: its total_cents is their sum (pricing/fees.rs).
ALTER TABLE orders ADD COLUMN charge_lines jsonb;
