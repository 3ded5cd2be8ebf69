-- A fan joins an event's waiting room: the next ticket number (strict
-- arrival order, no timestamp ties), a place scored by it, a first sign of
-- life, and the join time (for the waiting-time figures).
--
-- Two guards ride along in the same round trip:
-- - a proof-of-work challenge is spent once: its key is set here, and a
--   second join with it (another instance, a replaying bot) is refused;
-- - a signed-in fan keeps one place: joining again, from any client, gives
--   back the ticket still waiting or admitted.
--
-- KEYS: 1 seq, 2 waiting, 3 seen, 4 joined, 5 spent challenge (or unused),
--       6 fans (hash fan id -> ticket), 7 active
-- ARGV: 1 challenge nonce ('' if none), 2 its lifetime ms, 3 this request's
--       id (a retried request may spend its own challenge again), 4 fan id
--       ('' if anonymous)
-- Returns {ticket, fresh (1 new place, 0 the fan's place again, -1 the
-- challenge was already spent)}.
if ARGV[1] ~= '' then
  local ok = redis.call('SET', KEYS[5], ARGV[3], 'NX', 'PX', tonumber(ARGV[2]))
  if not ok and redis.call('GET', KEYS[5]) ~= ARGV[3] then
    return {0, -1}
  end
end
if ARGV[4] ~= '' then
  local had = redis.call('HGET', KEYS[6], ARGV[4])
  if had and (redis.call('ZSCORE', KEYS[2], had) or redis.call('ZSCORE', KEYS[7], had)) then
    return {tonumber(had), 0}
  end
end
local ticket = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], ticket, ticket)
redis.call('ZADD', KEYS[3], now, ticket)
redis.call('ZADD', KEYS[4], now, ticket)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[6], ARGV[4], ticket)
end
return {ticket, 1}
