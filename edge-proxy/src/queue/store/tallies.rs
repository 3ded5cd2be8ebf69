//! Counts shared by every edge (rate limits, risk): one script call adds
//! this edge's share to many counts and reads their sums back, by Redis's
//! clock. A call's keys are of one shard and carry its hash tag
//! (`{tally:<scope>:<shard>}`), so in a Redis Cluster they sit in one slot
//! and the script runs there; the shards spread the counts over the
//! cluster.

use super::{QueueStore, StoreResult};
use crate::limits::tally::{Addition, Measure, Sum, split_key};

/// KEYS: the counts; ARGV: per key its kind (`r` rate, `m` minute, `f`
/// fading), the amount added and the kind's parameter (interval or
/// half-life, ms). Returns Redis's clock, then two values per key: the
/// arrival time and 0; this and the last minute's events; points and when.
/// Numbers go back as text: Redis would cut a Lua number to an integer.
pub(super) const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {tostring(now)}
for i, key in ipairs(KEYS) do
  local kind, amount, param = ARGV[3*i-2], tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  if kind == 'r' then
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    if amount > 0 then
      tat = tat + amount * param
      redis.call('SET', key, tostring(tat), 'PX', math.ceil(tat - now) + 1000)
    end
    out[#out+1] = tostring(tat)
    out[#out+1] = '0'
  elseif kind == 'm' then
    local minute = math.floor(now / 60000)
    local this = key .. ':' .. minute
    local c
    if amount > 0 then
      c = redis.call('INCRBY', this, amount)
      redis.call('PEXPIRE', this, 180000)
    else
      c = tonumber(redis.call('GET', this)) or 0
    end
    out[#out+1] = tostring(c)
    out[#out+1] = tostring(tonumber(redis.call('GET', key .. ':' .. (minute - 1))) or 0)
  else
    local v = redis.call('HMGET', key, 'p', 'at')
    local p = tonumber(v[1]) or 0
    local at = tonumber(v[2]) or now
    p = p * math.pow(0.5, math.max(0, now - at) / param) + amount
    if amount > 0 then
      redis.call('HSET', key, 'p', tostring(p), 'at', now)
      redis.call('PEXPIRE', key, math.ceil(param * 10))
    end
    out[#out+1] = tostring(p)
    out[#out+1] = tostring(now)
  end
end
return out
";

impl QueueStore {
    /// Adds this edge's share to each count and reads the sums back:
    /// (Redis's clock in ms, a sum per addition, in order). The additions
    /// are of one shard.
    pub async fn add_tallies(&self, scope: &str, additions: &[Addition]) -> StoreResult<(i64, Vec<Sum>)> {
        let mut call = self.tally.prepare_invoke();
        for a in additions {
            let (shard, rest) = split_key(&a.key);
            call.key(format!("usher:{{tally:{scope}:{shard}}}:{rest}"));
            let (kind, param) = match a.measure {
                Measure::Rate { interval_ms } => ("r", interval_ms),
                Measure::Minute => ("m", 0),
                Measure::Fading { half_life_ms } => ("f", half_life_ms.max(1)),
            };
            // Events are whole; points need not be.
            let amount = match a.measure {
                Measure::Fading { .. } => a.amount.to_string(),
                _ => (a.amount.round() as u64).to_string(),
            };
            call.arg(kind).arg(amount).arg(param);
        }
        let mut conn = self.tallies.clone();
        let raw: Vec<String> = call.invoke_async(&mut conn).await?;
        let number = |i: usize| raw.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let now = number(0) as i64;
        let sums = additions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let (x, y) = (number(1 + 2 * i), number(2 + 2 * i));
                match a.measure {
                    Measure::Rate { .. } => Sum::Arrival(x),
                    Measure::Minute => Sum::Minutes {
                        minute: now.div_euclid(60_000),
                        current: x,
                        previous: y,
                    },
                    Measure::Fading { .. } => Sum::Points { value: x, at: y as i64 },
                }
            })
            .collect();
        Ok((now, sums))
    }
}
