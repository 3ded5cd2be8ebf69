-- The waitlist: fans who asked for seats of a sold-out event (or tier), in
-- the order they joined, and the offers made to them when seats come back.
--
-- AN OFFER IS A HOLD. When seats come back on sale (a hold expires or is
-- released, a refund returns seats, a payment deadline passes, an operator
-- lets seats go), the offer job (waitlist/offers.rs) claims them for the
-- next fan through place_hold (0003), owned by that fan, exactly as the
-- fan's own hold request would: the one_live_claim_per_seat constraint
-- (0002) is what keeps a seat from being in two offers, or in an offer and
-- a fan's hold, whatever the job thinks it saw. The fan buys it through the
-- ordinary POST /v1/orders. The offer's expiry is `waitlist.offer_secs`
-- (configuration), not the event's hold time: the hold's row and its
-- claims are set to it in the offer's transaction.
--
-- THE JOB looks at the seats rather than being called from every place
-- that frees one, so no path that puts seats back can forget it. Every
-- core runs it. Per event, waitlist_queues holds one row: a pass takes it
-- FOR NO KEY UPDATE SKIP LOCKED, so one core at a time makes an event's
-- offers, in join order (id), and the others move on to other events (a
-- fan joining only share-locks the row's key, and never waits for a pass);
-- next_pass_at spaces the passes (`waitlist.interval_ms`) across all cores.
--
-- THE RULES (chosen here, see docs/ARCHITECTURE.md):
--   * Order: entries are served in join order, first fit: an entry the
--     free seats cannot serve yet (too many seats asked together, price
--     ceiling, per-fan limit) keeps its place and the next one is served.
--   * Quantity: offered only when `quantity` seats side by side in one row
--     are free in the entry's scope (best available's choice, so
--     accessible seats stay with those who ask for them); never part of it.
--   * Tier and ceiling: only seats of `tier` (any tier when NULL) whose
--     price now is at most max_price_cents per seat (no ceiling when NULL);
--     the price is locked into the offer hold as for any hold.
--   * Per-fan limit: a fan whose live holds and purchases plus `quantity`
--     would pass the event's max_seats_per_fan is skipped and stays
--     waiting (seats they hold may still lapse or be refunded).
--   * Unclaimed: when the offer hold ends without a sale (expired or
--     released) the entry is lapsed (the job marks it; reads show it at
--     once by the clock) and its seats go to the next fan by the same
--     job. A lapsed, bought or left entry is closed; the fan may join
--     again, at the back.
--   * One open entry (waiting or offered) per fan per event and tier.

-- The offer notification.
DO $$
DECLARE
    def text;
BEGIN
    -- Rebuilt from whatever topics the table allows now, so a migration
    -- that adds its own topics does not lose them.
    SELECT pg_get_constraintdef(c.oid) INTO def
    FROM pg_constraint c WHERE c.conrelid = 'outbox'::regclass AND c.conname = 'outbox_topic_check';
    IF def IS NOT NULL AND position('waitlist.offer' IN def) = 0 THEN
        ALTER TABLE outbox DROP CONSTRAINT outbox_topic_check;
        EXECUTE 'ALTER TABLE outbox ADD CONSTRAINT outbox_topic_check CHECK (topic = ''waitlist.offer'' OR '
            || substr(def, 7) || ')';
    END IF;
END
$$;

CREATE TABLE waitlist_queues (
    event_id     bigint PRIMARY KEY REFERENCES events (id),
    -- No pass for this event before then (any core).
    next_pass_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE waitlist_entries (
    -- Join order.
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint NOT NULL REFERENCES waitlist_queues (event_id),
    fan_id           text NOT NULL,
    -- NULL: any tier.
    tier             smallint CHECK (tier BETWEEN 1 AND 9),
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    -- Per seat; NULL: no ceiling.
    max_price_cents  bigint CHECK (max_price_cents >= 0),
    accessible       boolean NOT NULL DEFAULT false,
    state            text NOT NULL DEFAULT 'waiting'
                     CHECK (state IN ('waiting', 'offered', 'bought', 'lapsed', 'left')),
    -- The offer (a hold of this fan), once made.
    hold_id          uuid REFERENCES holds (id),
    offered_at       timestamptz,
    joined_at        timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz,
    CHECK (state <> 'waiting' OR (hold_id IS NULL AND offered_at IS NULL)),
    CHECK (state NOT IN ('offered', 'bought', 'lapsed') OR (hold_id IS NOT NULL AND offered_at IS NOT NULL)),
    CHECK ((state IN ('bought', 'lapsed', 'left')) = (ended_at IS NOT NULL))
);

-- One open entry per fan per event and tier: a second join finds it.
CREATE UNIQUE INDEX waitlist_one_open_entry ON waitlist_entries (event_id, fan_id, coalesce(tier, 0))
    WHERE state IN ('waiting', 'offered');
-- The job: an event's waiting entries in join order, and offers to settle.
CREATE INDEX waitlist_waiting ON waitlist_entries (event_id, id) WHERE state = 'waiting';
CREATE INDEX waitlist_offered ON waitlist_entries (hold_id) WHERE state = 'offered';
-- GET /v1/waitlist.
CREATE INDEX waitlist_by_fan ON waitlist_entries (fan_id, id);
