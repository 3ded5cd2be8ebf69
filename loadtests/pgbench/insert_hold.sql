-- Writing a hold row (with its idempotency key), alone.
\set seat random(1, 50000)
\set fan random(1, 1000000)
INSERT INTO holds (id, event_id, fan_id, idempotency_key, fingerprint, seat_ids, prices_cents, total_cents, created_at, expires_at)
VALUES (gen_random_uuid(), 4, 'f' || :fan, gen_random_uuid()::text, '\x00', ARRAY[:seat]::bigint[], ARRAY[1000]::bigint[], 1000, now(), now() + interval '5 min');
