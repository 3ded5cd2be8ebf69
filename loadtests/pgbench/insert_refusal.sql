-- Recording a refusal against an idempotency key, alone.
\set fan random(1, 1000000)
INSERT INTO idempotency_keys (fan_id, key, fingerprint, outcome, refusal)
VALUES ('f' || :fan, gen_random_uuid()::text, '\x00', 'refused', '{"kind": "seats_taken"}') ON CONFLICT DO NOTHING;
