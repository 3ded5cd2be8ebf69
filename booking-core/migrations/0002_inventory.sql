-- Inventory: holds, the claims they put on seats, and idempotency records.
--
-- THE GUARANTEE. A claim is a row in seat_claims covering a time range:
-- a hold claims [now, expires_at), a sale claims [now, infinity). The
-- exclusion constraint one_live_claim_per_seat makes two overlapping claims
-- on one seat of one event impossible, whatever the application does: two
-- live holds, a hold over a sale, or two sales of one seat cannot be stored.
-- An expired hold's range has ended, so it never blocks a new claim, even if
-- no background job has cleaned it up yet.
--
-- No foreign keys point from these hot tables to events or seats: a foreign
-- key check takes a share lock on the parent row, and with thousands of
-- holds a second on one event every one of them would lock the same events
-- row. Events and seats are never deleted, and seat ids are checked against
-- the venue's chart before any claim.

CREATE TABLE holds (
    id              uuid PRIMARY KEY,
    event_id        bigint NOT NULL,
    fan_id          text NOT NULL,
    -- The key the fan's client sent, and a hash of the request: a retry with
    -- the key gets this hold back, a different request with it is refused.
    idempotency_key text NOT NULL,
    fingerprint     bytea NOT NULL,
    seat_ids        bigint[] NOT NULL CHECK (cardinality(seat_ids) > 0),
    -- The price of each seat, in seat_ids order, locked when the hold was made.
    prices_cents    bigint[] NOT NULL CHECK (cardinality(prices_cents) = cardinality(seat_ids)),
    total_cents     bigint NOT NULL CHECK (total_cents >= 0),
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL CHECK (expires_at > created_at),
    state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'released', 'expired', 'converted')),
    ended_at        timestamptz,
    CHECK ((state = 'active') = (ended_at IS NULL))
);

CREATE UNIQUE INDEX holds_by_idempotency_key ON holds (fan_id, idempotency_key);
CREATE INDEX holds_by_fan ON holds (event_id, fan_id) WHERE state IN ('active', 'converted');

CREATE TABLE seat_claims (
    event_id bigint NOT NULL,
    seat_id  bigint NOT NULL,
    hold_id  uuid NOT NULL REFERENCES holds (id),
    kind     text NOT NULL CHECK (kind IN ('hold', 'sale')),
    during   tstzrange NOT NULL CHECK (NOT isempty(during) AND NOT lower_inf(during)),
    -- A sale never ends by itself; a hold always does.
    CHECK ((kind = 'sale') = upper_inf(during)),
    CONSTRAINT one_live_claim_per_seat
        EXCLUDE USING gist (event_id WITH =, seat_id WITH =, during WITH &&)
);

-- The reaper's queue: hold claims by end time. Claims are appended roughly
-- in expiry order, so a block-range index finds the ended ones for almost
-- nothing on the write path; autosummarize keeps the not-yet-summarised tail
-- (which every reaper pass must read whole) short.
CREATE INDEX seat_claims_by_end ON seat_claims USING brin (upper(during))
    WITH (pages_per_range = 32, autosummarize = on) WHERE kind = 'hold';

-- Idempotency-Key records for answers that are not a new hold: refusals,
-- and releases. (A new hold carries its key itself, above.)
CREATE TABLE idempotency_keys (
    fan_id      text NOT NULL,
    key         text NOT NULL,
    fingerprint bytea NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('hold_released', 'refused')),
    hold_id     uuid,
    refusal     jsonb,
    CHECK ((outcome = 'refused') = (refusal IS NOT NULL)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fan_id, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
