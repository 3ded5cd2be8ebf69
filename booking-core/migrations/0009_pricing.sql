-- Dynamic pricing: per event, an operator's switch and freeze; per tier,
-- the operator's bounds; a record of every recalculation run and of every
-- price it changed, with the inputs and the rule's version (see
-- src/pricing/).
--
-- The price a fan pays is still the one place_hold (0003) read from
-- event_tiers.price_cents and locked into the hold; a recalculation only
-- moves event_tiers.price_cents, so it never changes a price inside a hold.
--
-- EXACTLY ONE RECALCULATION PER INTERVAL PER EVENT, with any number of
-- instances: the run claims its interval by inserting (event_id,
-- interval_start) into pricing_runs with ON CONFLICT DO NOTHING, in the same
-- transaction that writes the prices. A second instance's insert waits for
-- the first transaction and then conflicts (it committed) or goes ahead (it
-- rolled back, so nothing was written): never two, never a lost interval
-- that was half written. The unique index on price_changes says the same
-- thing again for each tier.

-- The interval holding `at`: intervals of `secs` seconds counted from the
-- Unix epoch, so every instance names the same interval alike.
CREATE FUNCTION pricing_interval_start(at timestamptz, secs integer) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT to_timestamp((floor(extract(epoch FROM at) / secs) * secs)::double precision) $$;

CREATE TABLE event_pricing (
    event_id      bigint PRIMARY KEY REFERENCES events (id),
    -- Off by default: an event's prices move only after an operator turns
    -- this on.
    enabled       boolean NOT NULL DEFAULT false,
    -- Frozen: the prices stay where they are until unfrozen.
    frozen        boolean NOT NULL DEFAULT false,
    -- NULL: the configuration's pricing.interval_secs.
    interval_secs integer CHECK (interval_secs BETWEEN 5 AND 3600),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A tier without bounds never moves, even when pricing is on.
CREATE TABLE tier_price_bounds (
    event_id       bigint NOT NULL,
    tier           smallint NOT NULL,
    floor_cents    bigint NOT NULL CHECK (floor_cents >= 0),
    ceiling_cents  bigint NOT NULL CHECK (ceiling_cents <= 100000000),
    -- The largest move in one interval, up or down.
    max_step_cents bigint NOT NULL CHECK (max_step_cents > 0),
    CHECK (floor_cents <= ceiling_cents),
    PRIMARY KEY (event_id, tier),
    FOREIGN KEY (event_id, tier) REFERENCES event_tiers (event_id, tier)
);

-- One row per recalculation: the claim on its interval.
CREATE TABLE pricing_runs (
    event_id       bigint NOT NULL REFERENCES events (id),
    interval_start timestamptz NOT NULL,
    rule_version   text NOT NULL,
    ran_at         timestamptz NOT NULL,
    changes        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, interval_start)
);

-- Every price the recalculation changed: enough to answer a fan's question
-- ("why did it cost that?") from the history alone.
CREATE TABLE price_changes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       bigint NOT NULL,
    tier           smallint NOT NULL,
    old_cents      bigint NOT NULL,
    new_cents      bigint NOT NULL,
    -- The signals, the bounds and the queue length's source, as the rule saw them.
    inputs         jsonb NOT NULL,
    rule_version   text NOT NULL,
    interval_start timestamptz NOT NULL,
    changed_at     timestamptz NOT NULL,
    FOREIGN KEY (event_id, tier) REFERENCES event_tiers (event_id, tier),
    FOREIGN KEY (event_id, interval_start) REFERENCES pricing_runs (event_id, interval_start)
);

CREATE UNIQUE INDEX one_price_change_per_tier_per_interval ON price_changes (event_id, tier, interval_start);
CREATE INDEX price_changes_by_event ON price_changes (event_id, changed_at DESC, id DESC);
