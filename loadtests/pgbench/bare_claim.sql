-- The bare single-row claim, as loadtests' baseline sends it.
\set seat random(1, 50000)
INSERT INTO seat_claims (event_id, seat_id, hold_id, kind, during)
VALUES (3, :seat, '00000000-0000-0000-0000-0000000000b0', 'hold', tstzrange(now(), now() + interval '1 hour'))
ON CONFLICT DO NOTHING;
