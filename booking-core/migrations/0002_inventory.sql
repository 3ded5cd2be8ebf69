-- Inventory: holds, the claims they put on seats, idempotency records and
-- the log of seat changes that feeds the live seat map.
--
-- THE GUARANTEE. A claim is a row in seat_claims covering a time range:
-- a hold claims [now, expires_at), a sale claims [now, infinity). The
-- exclusion constraint one_live_claim_per_seat makes two overlapping claims
-- on one seat of one event impossible, whatever the application does: two
-- live holds, a hold over a sale, or two sales of one seat cannot be stored.
-- An expired hold's range has ended, so it never blocks a new claim, even if
-- no background job has cleaned it up yet.

CREATE TABLE holds (
    id           uuid PRIMARY KEY,
    event_id     bigint NOT NULL REFERENCES events (id),
    fan_id       text NOT NULL,
    seat_ids     bigint[] NOT NULL CHECK (cardinality(seat_ids) > 0),
    -- The price of each seat, in seat_ids order, locked when the hold was made.
    prices_cents bigint[] NOT NULL CHECK (cardinality(prices_cents) = cardinality(seat_ids)),
    total_cents  bigint NOT NULL CHECK (total_cents >= 0),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL CHECK (expires_at > created_at),
    state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'released', 'expired', 'converted')),
    ended_at     timestamptz,
    CHECK ((state = 'active') = (ended_at IS NULL))
);

CREATE INDEX holds_by_fan ON holds (event_id, fan_id) WHERE state IN ('active', 'converted');

CREATE TABLE seat_claims (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id bigint NOT NULL REFERENCES events (id),
    seat_id  bigint NOT NULL REFERENCES seats (id),
    hold_id  uuid NOT NULL REFERENCES holds (id),
    kind     text NOT NULL CHECK (kind IN ('hold', 'sale')),
    during   tstzrange NOT NULL CHECK (NOT isempty(during) AND NOT lower_inf(during)),
    -- A sale never ends by itself; a hold always does.
    CHECK ((kind = 'sale') = upper_inf(during)),
    CONSTRAINT one_live_claim_per_seat
        EXCLUDE USING gist (event_id WITH =, seat_id WITH =, during WITH &&)
);

-- The reaper's queue: holds in order of expiry.
CREATE INDEX seat_claims_by_end ON seat_claims (upper(during)) WHERE kind = 'hold';

-- Idempotency-Key records: the first answer to a mutating call, per fan and
-- key. A hold made or released points at the hold (the answer is rebuilt
-- from the hold's immutable facts); a refusal stores the refusal itself.
CREATE TABLE idempotency_keys (
    fan_id      text NOT NULL,
    key         text NOT NULL,
    fingerprint bytea NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('hold_created', 'hold_released', 'refused')),
    hold_id     uuid,
    refusal     jsonb,
    CHECK ((outcome = 'refused') = (refusal IS NOT NULL)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fan_id, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Which seats changed, in which transaction. Readers take rows only from
-- transactions older than every running one (xid below the snapshot's xmin),
-- so no row is skipped when transactions commit out of order, and they read
-- each seat's state as it is now rather than trusting the row.
CREATE TABLE seat_changes (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid      bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    event_id bigint NOT NULL,
    seat_ids bigint[] NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX seat_changes_by_xid ON seat_changes (xid);
CREATE INDEX seat_changes_by_event ON seat_changes (event_id, xid);
CREATE INDEX seat_changes_by_age ON seat_changes (at);

-- Readers asking for changes older than this were pruned and must re-read
-- availability instead.
CREATE TABLE seat_changes_horizon (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    min_xid bigint NOT NULL
);
INSERT INTO seat_changes_horizon (min_xid) VALUES (0);
