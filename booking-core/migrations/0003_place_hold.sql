-- place_hold: a whole hold, all or nothing, in one call.
--
-- Called from inventory/claims.rs. One round trip does what the hold needs
-- under the fan's lock: answer a retried Idempotency-Key with its first
-- answer, check the event's rules and the fan's limit, price the seats,
-- write the hold and claim every seat, or else record the refusal. Doing it
-- in one call keeps a hold to a single round trip and a single commit, and
-- puts the refusal record in the same transaction as the check that refused
-- (so two retries with one key can never get different answers).
--
-- The claim itself is the INSERT into seat_claims below; see
-- 0002_inventory.sql for the constraint that makes it safe.

CREATE FUNCTION place_hold(
    p_hold        uuid,
    p_event       bigint,
    p_fan         text,
    p_key         text,
    p_fingerprint bytea,
    p_seats       bigint[],          -- ascending and distinct: the lock order
    p_tiers       smallint[],        -- each seat's price tier, same order
    p_jitter      double precision,  -- in [-1, 1]: where in +/- jitter this hold's expiry falls
    p_admitted    boolean,           -- the edge admitted this fan to this event
    p_durable     boolean            -- wait for the WAL flush at commit (see below)
) RETURNS TABLE (
    outcome      text,               -- 'held', 'replay' (of a hold or a refusal) or 'refused'
    hold_id      uuid,
    refusal      jsonb,              -- {"kind": ..., ...}: the HoldError, as Rust serialises it
    created_at   timestamptz,
    expires_at   timestamptz,
    prices_cents bigint[],
    total_cents  bigint,
    server_time  timestamptz
) LANGUAGE plpgsql
-- Every query here is a keyed lookup, so plan each once per connection
-- (re-planning on every call cost a fifth of the call) and never as a scan:
-- a plan made while a table was still empty (a new deployment's first
-- minutes) would otherwise scan it whole for the connection's life.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    n         int := cardinality(p_seats);
    r         record;
    v_taken   bigint[];
    v_claimed bigint[];
    v_expires timestamptz;
    v_refusal jsonb;
BEGIN
    -- One fan's holds for one event go one at a time: the limit is counted
    -- after the previous hold committed, and a retried key sees its answer.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_fan || '/' || p_event::text, 7));

    -- A hold lasts minutes and carries no money, so by default its commit
    -- does not wait for the disk: a crash can lose the last fraction of a
    -- second of holds (their seats simply come back), never make two claims
    -- on a seat, and commits stay in order, so a later sale's flush covers
    -- the hold it came from. Waiting for the flush is what made a slow disk
    -- stall every hold. Sales always commit durably.
    IF NOT p_durable THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;

    -- Everything the decision needs, read in one statement after the lock:
    -- the key's earlier answer, the event's rules, the fan's seats so far,
    -- and the price of each seat.
    SELECT h.id AS prior_hold, h.fingerprint AS prior_hold_fingerprint,
           k.fingerprint AS prior_fingerprint, k.outcome AS prior_outcome, k.refusal AS prior_refusal,
           e.id AS event_id, e.cancelled, e.starts_at, e.on_sale_at, e.protected,
           e.hold_ttl_secs, e.hold_jitter_secs, e.max_seats_per_fan,
           (SELECT coalesce(sum(cardinality(f.seat_ids)), 0)::int
              FROM holds f
             WHERE f.event_id = p_event AND f.fan_id = p_fan
               AND (f.state = 'converted' OR (f.state = 'active' AND f.expires_at > now()))) AS used,
           p.prices, p.total, p.priced
    INTO r
    FROM (SELECT 1) one
    LEFT JOIN holds h ON h.fan_id = p_fan AND h.idempotency_key = p_key
    LEFT JOIN idempotency_keys k ON k.fan_id = p_fan AND k.key = p_key
    LEFT JOIN events e ON e.id = p_event
    CROSS JOIN LATERAL (
        SELECT array_agg(t.price_cents ORDER BY u.ord) AS prices,
               coalesce(sum(t.price_cents), 0)::bigint AS total,
               count(t.price_cents)::int AS priced
        FROM unnest(p_seats, p_tiers) WITH ORDINALITY AS u(seat_id, tier, ord)
        LEFT JOIN event_tiers t ON t.event_id = p_event AND t.tier = u.tier
    ) p;

    IF r.prior_hold IS NOT NULL THEN
        IF r.prior_hold_fingerprint = p_fingerprint THEN
            RETURN QUERY SELECT 'replay', r.prior_hold, NULL::jsonb, NULL::timestamptz, NULL::timestamptz, NULL::bigint[], NULL::bigint, now();
        ELSE
            RETURN QUERY SELECT 'refused', NULL::uuid, '{"kind": "idempotency_key_reused"}'::jsonb, NULL::timestamptz, NULL::timestamptz, NULL::bigint[], NULL::bigint, now();
        END IF;
        RETURN;
    END IF;
    IF r.prior_fingerprint IS NOT NULL THEN
        IF r.prior_fingerprint = p_fingerprint AND r.prior_outcome = 'refused' THEN
            RETURN QUERY SELECT 'replay', NULL::uuid, r.prior_refusal, NULL::timestamptz, NULL::timestamptz, NULL::bigint[], NULL::bigint, now();
        ELSE
            RETURN QUERY SELECT 'refused', NULL::uuid, '{"kind": "idempotency_key_reused"}'::jsonb, NULL::timestamptz, NULL::timestamptz, NULL::bigint[], NULL::bigint, now();
        END IF;
        RETURN;
    END IF;

    <<checks>>
    BEGIN
        IF r.event_id IS NULL THEN
            v_refusal := '{"kind": "event_not_found"}';
            EXIT checks;
        ELSIF r.cancelled THEN
            v_refusal := '{"kind": "event_cancelled"}';
            EXIT checks;
        ELSIF r.starts_at <= now() THEN
            v_refusal := '{"kind": "event_over"}';
            EXIT checks;
        ELSIF r.on_sale_at > now() THEN
            v_refusal := jsonb_build_object('kind', 'not_on_sale', 'on_sale_at', r.on_sale_at);
            EXIT checks;
        ELSIF r.protected AND NOT p_admitted THEN
            v_refusal := '{"kind": "admission_required"}';
            EXIT checks;
        ELSIF r.used + n > r.max_seats_per_fan THEN
            v_refusal := jsonb_build_object('kind', 'fan_limit_reached', 'limit', r.max_seats_per_fan, 'already', r.used);
            EXIT checks;
        ELSIF r.priced < n THEN
            SELECT jsonb_build_object('kind', 'seats_not_for_sale', 'seat_ids', jsonb_agg(u.seat_id))
            INTO v_refusal
            FROM unnest(p_seats, p_tiers) AS u(seat_id, tier)
            WHERE NOT EXISTS (SELECT 1 FROM event_tiers t WHERE t.event_id = p_event AND t.tier = u.tier);
            EXIT checks;
        END IF;

        -- Seats someone holds or bought (committed): refuse before writing
        -- anything. The INSERT below is still what decides.
        -- (One index probe per seat: LATERAL ... LIMIT 1 keeps the planner
        -- from scanning every claim of the event instead.)
        SELECT array_agg(s.seat_id ORDER BY s.seat_id) INTO v_taken
        FROM unnest(p_seats) AS s(seat_id)
        CROSS JOIN LATERAL (
            SELECT 1 FROM seat_claims c
            WHERE c.event_id = p_event AND c.seat_id = s.seat_id AND c.during @> now()
            LIMIT 1
        ) live;
        IF v_taken IS NOT NULL THEN
            v_refusal := jsonb_build_object('kind', 'seats_taken', 'seat_ids', to_jsonb(v_taken));
            EXIT checks;
        END IF;

        v_expires := now() + make_interval(secs => greatest(1.0, r.hold_ttl_secs + p_jitter * r.hold_jitter_secs));
        INSERT INTO holds (id, event_id, fan_id, idempotency_key, fingerprint, seat_ids, prices_cents, total_cents, created_at, expires_at)
        VALUES (p_hold, p_event, p_fan, p_key, p_fingerprint, p_seats, r.prices, r.total, now(), v_expires);

        -- THE CLAIM. An overlapping claim, committed or in flight, makes a
        -- seat's row conflict (after waiting for the other transaction to
        -- end); DO NOTHING leaves it out of `claimed`.
        WITH claimed AS (
            INSERT INTO seat_claims (event_id, seat_id, hold_id, kind, during)
            SELECT p_event, s.seat_id, p_hold, 'hold', tstzrange(now(), v_expires)
            FROM unnest(p_seats) AS s(seat_id)
            ORDER BY s.seat_id
            ON CONFLICT DO NOTHING
            RETURNING seat_id
        )
        SELECT coalesce(array_agg(c.seat_id), '{}') INTO v_claimed FROM claimed c;

        IF cardinality(v_claimed) < n THEN
            -- Lost a race for some seat: undo our own rows, refuse.
            DELETE FROM seat_claims c USING unnest(v_claimed) AS s(seat_id)
            WHERE c.event_id = p_event AND c.seat_id = s.seat_id AND c.hold_id = p_hold;
            DELETE FROM holds h WHERE h.id = p_hold;
            SELECT jsonb_build_object('kind', 'seats_taken', 'seat_ids', jsonb_agg(s.seat_id ORDER BY s.seat_id))
            INTO v_refusal
            FROM unnest(p_seats) AS s(seat_id)
            WHERE s.seat_id <> ALL (v_claimed);
            EXIT checks;
        END IF;

        RETURN QUERY SELECT 'held', p_hold, NULL::jsonb, now(), v_expires, r.prices, r.total, now();
        RETURN;
    END checks;

    INSERT INTO idempotency_keys (fan_id, key, fingerprint, outcome, refusal)
    VALUES (p_fan, p_key, p_fingerprint, 'refused', v_refusal);
    RETURN QUERY SELECT 'refused', NULL::uuid, v_refusal, NULL::timestamptz, NULL::timestamptz, NULL::bigint[], NULL::bigint, now();
END
$$;
