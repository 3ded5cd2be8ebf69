-- Fans' data on request (GDPR access and erasure, CCPA "know" and
-- "delete"); the code is booking-core/src/fans/.
--
-- Fans have no account row: a fan is the `sub` of their sign-in token, a
-- text id that lands in many tables (holds, orders, tickets, refunds,
-- transfers, resale listings and payouts, the payout account, waitlist
-- entries, the outbox and its payloads). Their e-mail address is that id at
-- `notifications.email_domain`; their name is only ever in the token.
--
-- The erasure rule (one transaction, all or nothing):
--  * the fan's id is replaced everywhere by a pseudonym, `fan_ref(id)`:
--    'erased:' and 32 hex digits of SHA-256 over a per-database random key
--    and the id. The same id always gives the same pseudonym, so erasing
--    twice (or two erasures racing) ends in the same rows, and the audit
--    log can name a fan without naming them. The key never leaves the
--    database; whoever has the database can test a guessed id against a
--    pseudonym, which is why this is pseudonymisation, not anonymisation.
--  * payloads of the outbox: string values equal to the id become the
--    pseudonym; the e-mail address and name inside strings become
--    '[erased]'; mail to the fan not yet sent is cancelled (dead); error
--    texts of deliveries that name the fan are replaced.
--  * removed: the payout account, idempotency records of refusals, the
--    card fingerprint and payment-method token of the fan's orders.
--  * ended: open holds (released, seats freed), open waitlist entries
--    (left), resale listings still listed (cancelled).
--  * kept for the books: orders (amounts, lines, currency, provider and
--    intent ids, states, dates), refunds (amounts, provider refund ids),
--    tickets (a valid ticket stays valid at the gate: its code names no
--    fan; no token reaches it any more), transfers, payouts (amounts,
--    destination account and transfer id), disputes.
--  * refused (409) while something needs the fan: an order being paid or
--    refunded, a refund not yet confirmed, a payout owed or failed (it
--    would go nowhere without the account), a listing a buyer is paying.

CREATE TABLE fan_data_keys (
    id  smallint PRIMARY KEY CHECK (id = 1),
    key bytea    NOT NULL CHECK (length(key) >= 32)
);

-- 244 random bits (gen_random_uuid is v4; no pgcrypto needed).
INSERT INTO fan_data_keys (id, key)
VALUES (1, decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

CREATE FUNCTION fan_ref(p_fan text) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
    SELECT 'erased:' || substr(encode(sha256(k.key || convert_to(p_fan, 'UTF8')), 'hex'), 1, 32)
    FROM fan_data_keys k WHERE k.id = 1
$$;

-- A JSON document with the fan taken out: a string equal to p_id becomes
-- p_ref; each of p_within inside a string becomes '[erased]'. Keys are
-- left alone (payload keys are ours, never a fan's data).
CREATE FUNCTION fan_data_scrub(p_doc jsonb, p_id text, p_ref text, p_within text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    s text;
    w text;
BEGIN
    CASE jsonb_typeof(p_doc)
    WHEN 'object' THEN
        RETURN coalesce((SELECT jsonb_object_agg(e.key, fan_data_scrub(e.value, p_id, p_ref, p_within))
                         FROM jsonb_each(p_doc) e), '{}'::jsonb);
    WHEN 'array' THEN
        RETURN coalesce((SELECT jsonb_agg(fan_data_scrub(e.value, p_id, p_ref, p_within) ORDER BY e.n)
                         FROM jsonb_array_elements(p_doc) WITH ORDINALITY e(value, n)), '[]'::jsonb);
    WHEN 'string' THEN
        s := p_doc #>> '{}';
        IF s = p_id THEN
            RETURN to_jsonb(p_ref);
        END IF;
        FOREACH w IN ARRAY p_within LOOP
            s := replace(s, w, '[erased]');
        END LOOP;
        RETURN to_jsonb(s);
    ELSE
        RETURN p_doc;
    END CASE;
END
$$;

-- One row per fan erased (by pseudonym): the answer a repeated erasure
-- gives again.
CREATE TABLE fan_data_erasures (
    fan_ref         text PRIMARY KEY,
    erased_at       timestamptz NOT NULL DEFAULT now(),
    -- The first request's key (the fan's or the operator's).
    idempotency_key text NOT NULL,
    operator_id     bigint REFERENCES operators (id),
    -- What was changed, per table (counts), for the answer.
    changed         jsonb NOT NULL
);

-- Operators' actions on fans' data, per organisation: who, what, which fan
-- (by pseudonym), when and why.
CREATE TABLE fan_data_audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id bigint NOT NULL REFERENCES organisations (id),
    operator_id     bigint NOT NULL REFERENCES operators (id),
    action          text NOT NULL CHECK (action IN ('export', 'erasure')),
    fan_ref         text NOT NULL,
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    at              timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX fan_data_audit_by_org ON fan_data_audit (organisation_id, id DESC);

-- Export and erasure find the fan's rows by index: the other tables have
-- one led by their fan column already. The outbox gets none: payloads
-- naming the fan in other rows (a transfer's receiver) need a scan of it
-- anyway, and building an index here would stop notifications (and so
-- checkouts) while it builds.
CREATE INDEX ticket_transfers_to_fan ON ticket_transfers (to_fan_id);
