-- Delivering the outbox: one row per notification and channel, written with
-- the notification, retried with backoff until delivered or declared dead.

CREATE TABLE outbox_deliveries (
    outbox_id       bigint NOT NULL REFERENCES outbox (id),
    channel         text NOT NULL CHECK (channel IN ('operator_webhook', 'email')),
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz,
    PRIMARY KEY (outbox_id, channel),
    CHECK ((state = 'delivered') = (delivered_at IS NOT NULL))
);

CREATE INDEX outbox_deliveries_due ON outbox_deliveries (next_attempt_at) WHERE state = 'pending';
