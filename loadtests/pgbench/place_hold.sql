-- A whole one-seat hold, as booking-core makes it (durable or not: -D durable=...).
\set seat random(1, 50000)
\set fan random(1, 1000000)
SELECT * FROM place_hold(gen_random_uuid(), 2, 'f' || :fan, gen_random_uuid()::text, '\x00',
                         ARRAY[:seat]::bigint[], ARRAY[1]::smallint[], 0.5, false, :durable);
