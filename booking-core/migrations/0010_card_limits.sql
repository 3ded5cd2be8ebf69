-- Per-fan limits across accounts that pay with one card: each order made
-- from a hold records the provider's fingerprint of its card (the same card
-- gives the same fingerprint whichever account uses it), and a new order is
-- refused when the seats of the event's orders on that card, by any fan,
-- would pass the event's max_seats_per_fan (checkout/orders.rs).
--
-- NULL: the provider gave no fingerprint (not a card), or the order buys a
-- resale listing (the primary limit does not cover resale).
ALTER TABLE orders ADD COLUMN card_fingerprint text;

-- The count at order creation: one event's orders on one card.
CREATE INDEX orders_by_event_card ON orders (event_id, card_fingerprint) WHERE card_fingerprint IS NOT NULL;
