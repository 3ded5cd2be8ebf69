-- One admission tick for one event's waiting room. Every edge instance runs
-- it on its own timer; Redis runs scripts one at a time, and the allowance
-- comes from Redis's own clock and the time of the last tick, so however
-- many instances tick, fans are admitted at the configured rate, in order,
-- and never beyond the active cap.
--
-- KEYS: 1 waiting (zset ticket -> score), 2 active (zset ticket -> session
--       expiry ms), 3 progress (hash), 4 seen (zset ticket -> last heard ms),
--       5 removed (list of tickets that lost their place), 6 seq (counter)
-- ARGV: 1 admit per minute, 2 max active, 3 session ms, 4 grace ms,
--       5 mode, 6 largest allowance window ms
local rate = tonumber(ARGV[1])
local max_active = tonumber(ARGV[2])
local session_ms = tonumber(ARGV[3])
local grace_ms = tonumber(ARGV[4])
local mode = ARGV[5]
local window_ms = tonumber(ARGV[6])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Admitted fans silent for a whole session stop counting as active.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)

-- Waiting fans not heard from within the grace period lose their place.
local ghosts = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - grace_ms, 'LIMIT', 0, 2000)
if #ghosts > 0 then
  redis.call('ZREM', KEYS[1], unpack(ghosts))
  redis.call('ZREM', KEYS[4], unpack(ghosts))
  redis.call('RPUSH', KEYS[5], unpack(ghosts))
end

local last = tonumber(redis.call('HGET', KEYS[3], 'last_ms') or now)
local carry = tonumber(redis.call('HGET', KEYS[3], 'carry') or 0)
local through = tonumber(redis.call('HGET', KEYS[3], 'through') or 0)
local total = tonumber(redis.call('HGET', KEYS[3], 'admitted_total') or 0)

local elapsed = math.max(0, math.min(now - last, window_ms))
local allowance = carry + elapsed * rate / 60000
if mode == 'passthrough' then
  allowance = 1e12
elseif mode ~= 'fifo' then
  allowance = 0
end
local active = redis.call('ZCARD', KEYS[2])
local free = max_active - active
if mode == 'passthrough' then free = 1e12 end
local n = math.floor(allowance)
local limited_by_rate = true
if n > free then
  n = math.max(0, free)
  limited_by_rate = false
end

local admitted = 0
if n > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], math.min(n, 5000))
  for i = 1, #popped, 2 do
    local ticket = popped[i]
    redis.call('ZADD', KEYS[2], now + session_ms, ticket)
    redis.call('ZREM', KEYS[4], ticket)
    admitted = admitted + 1
    local number = tonumber(ticket)
    if number > through then through = number end
  end
end
-- Unused allowance does not pile up into a burst: only the fraction of a
-- fan owed by the rate carries over.
if limited_by_rate and admitted == n and mode == 'fifo' then
  carry = allowance - n
else
  carry = 0
end
total = total + admitted
redis.call('HSET', KEYS[3], 'last_ms', now, 'carry', carry, 'through', through, 'admitted_total', total)

local seq = tonumber(redis.call('GET', KEYS[6]) or 0)
local waiting = redis.call('ZCARD', KEYS[1])
local removed = redis.call('LLEN', KEYS[5])
return {now, admitted, through, seq, waiting, active + admitted, total, removed}
