-- The fan-limit read.
\set fan random(1, 1000000)
SELECT coalesce(sum(cardinality(h.seat_ids)), 0)::int FROM holds h
WHERE h.event_id = 2 AND h.fan_id = 'f' || :fan AND (h.state = 'converted' OR (h.state = 'active' AND h.expires_at > now()));
