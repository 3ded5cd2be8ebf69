-- A fan joins an event's waiting room: the next ticket number (strict
-- arrival order, no timestamp ties), a place scored by it, a first sign of
-- life, and the join time (for the waiting-time figures).
-- KEYS: 1 seq, 2 waiting, 3 seen, 4 joined
local ticket = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], ticket, ticket)
redis.call('ZADD', KEYS[3], now, ticket)
redis.call('ZADD', KEYS[4], now, ticket)
return ticket
