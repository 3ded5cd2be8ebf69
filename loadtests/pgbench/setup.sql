-- A hold for the bare claims to belong to, on an event the other scripts
-- leave alone (the festival, not on sale).
INSERT INTO holds (id, event_id, fan_id, idempotency_key, fingerprint, seat_ids, prices_cents, total_cents, created_at, expires_at)
VALUES ('00000000-0000-0000-0000-0000000000b0', 3, 'baseline', 'baseline', '\x00', '{0}', '{0}', 0, now(), now() + interval '1 hour');
