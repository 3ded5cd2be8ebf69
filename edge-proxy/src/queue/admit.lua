-- One admission tick for one event's waiting room. Every edge instance runs
-- it on its own timer; Redis runs scripts one at a time, and the allowance
-- comes from Redis's own clock and the time of the last tick, so however
-- many instances tick, fans are admitted at the configured rate, in order,
-- and never beyond the active cap.
--
-- A fan's place is its score in `waiting`: the ticket number, except for a
-- lottery's pre-queue, whose scores the draw replaced with drawn places.
--
-- KEYS: 1 waiting (zset ticket -> place), 2 active (zset ticket -> session
--       expiry ms), 3 progress (hash), 4 seen (zset ticket -> last heard ms),
--       5 removed (list of tickets that lost their place), 6 seq (counter),
--       7 joined (zset ticket -> join ms), 8 fairness (hash), 9 lottery (hash),
--       10 admission (hash: the shared settings' fields below, by name),
--       11 ended (list of ended sessions, see store.rs's `end_session`)
-- ARGV: 1 admit per minute, 2 max active, 3 session ms, 4 grace ms,
--       5 mode, 6 largest allowance window ms, 7 on-sale ms (0: none),
--       8 adaptive ('1' or '0'), 9 adaptive min, 10 adaptive max
--
-- The shared settings (an operator's change through any instance's admin
-- API, or a reloaded file), when there are any, rule over the caller's
-- copy: read here, in the same script as the admission, a newly started
-- instance or one that has not yet re-read them cannot admit by stale
-- settings, not even for one tick.
local a = ARGV
local shared = redis.call('HGETALL', KEYS[10])
if #shared > 0 then
  local s = {}
  for i = 1, #shared, 2 do s[shared[i]] = shared[i + 1] end
  a = {s.rate, s.max_active, s.session_ms, s.grace_ms, s.mode, ARGV[6], s.on_sale_ms, s.adaptive, s.min, s.max}
end
local rate = tonumber(a[1])
local max_active = tonumber(a[2])
local session_ms = tonumber(a[3])
local grace_ms = tonumber(a[4])
local mode = a[5]
local window_ms = tonumber(a[6])
local on_sale = tonumber(a[7])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- The rate an adaptive room's controller last set, within the bounds.
if a[8] == '1' then
  local set = tonumber(redis.call('HGET', KEYS[3], 'adaptive_rate') or rate)
  rate = math.max(tonumber(a[9]), math.min(tonumber(a[10]), set))
end

-- Admitted fans silent for a whole session stop counting as active.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)

-- Waiting fans not heard from within the grace period lose their place.
local ghosts = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - grace_ms, 'LIMIT', 0, 2000)
if #ghosts > 0 then
  redis.call('ZREM', KEYS[1], unpack(ghosts))
  redis.call('ZREM', KEYS[4], unpack(ghosts))
  redis.call('ZREM', KEYS[7], unpack(ghosts))
  redis.call('RPUSH', KEYS[5], unpack(ghosts))
end

local last = tonumber(redis.call('HGET', KEYS[3], 'last_ms') or now)
local carry = tonumber(redis.call('HGET', KEYS[3], 'carry') or 0)
local through = tonumber(redis.call('HGET', KEYS[3], 'through') or 0)
local total = tonumber(redis.call('HGET', KEYS[3], 'admitted_total') or 0)

-- Queueing modes admit nobody before the on-sale; a lottery also waits for
-- its draw to finish.
local queueing = mode == 'fifo' or mode == 'lottery'
if queueing and on_sale > 0 and now < on_sale then
  queueing = false
elseif mode == 'lottery' and redis.call('HGET', KEYS[9], 'state') ~= 'drawn' then
  queueing = false
end

local elapsed = math.max(0, math.min(now - last, window_ms))
local allowance = carry + elapsed * rate / 60000
if mode == 'passthrough' then
  allowance = 1e12
elseif not queueing then
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
  local inversions = 0
  local wait_sum = 0
  for i = 1, #popped, 2 do
    local ticket = popped[i]
    local place = tonumber(popped[i + 1])
    redis.call('ZADD', KEYS[2], now + session_ms, ticket)
    redis.call('ZREM', KEYS[4], ticket)
    admitted = admitted + 1
    -- Fairness figures: a place below one already admitted is an inversion.
    if place < through then inversions = inversions + 1 end
    if place > through then through = place end
    local joined = redis.call('ZSCORE', KEYS[7], ticket)
    if joined then
      local wait = math.max(0, now - tonumber(joined))
      wait_sum = wait_sum + wait
      local bucket = '+Inf'
      for _, le in ipairs({5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600}) do
        if wait <= le * 1000 then bucket = tostring(le) break end
      end
      redis.call('HINCRBY', KEYS[8], 'wait_le_' .. bucket, 1)
      redis.call('ZREM', KEYS[7], ticket)
    end
  end
  redis.call('HINCRBY', KEYS[8], 'admitted', admitted)
  redis.call('HINCRBY', KEYS[8], 'wait_sum_ms', wait_sum)
  if inversions > 0 then redis.call('HINCRBY', KEYS[8], 'inversions', inversions) end
end
-- Unused allowance does not pile up into a burst: only the fraction of a
-- fan owed by the rate carries over.
if limited_by_rate and admitted == n and queueing then
  carry = allowance - n
else
  carry = 0
end
total = total + admitted
redis.call('HSET', KEYS[3], 'last_ms', now, 'carry', carry, 'through', through, 'admitted_total', total)

-- The room's tick, counted across every instance: answers from two edges
-- can then be ordered by it (which state each one told).
local tick = redis.call('HINCRBY', KEYS[3], 'tick', 1)
local seq = tonumber(redis.call('GET', KEYS[6]) or 0)
local waiting = redis.call('ZCARD', KEYS[1])
local removed = redis.call('LLEN', KEYS[5])
local ended = redis.call('LLEN', KEYS[11])
return {now, admitted, through, seq, waiting, active + admitted, total, removed, rate, ended, tick}
