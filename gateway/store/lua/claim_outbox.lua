-- claim_outbox: take the archive outbox entries that are due (any instance may take any).
-- @include "outbox"
--
-- KEYS[1] prefix   KEYS[2] outbox   KEYS[3] outbox_retry   KEYS[4] outbox_tries
-- ARGV[1] now (Unix seconds), ARGV[2] limit, ARGV[3] retry_s, ARGV[4] max_retry_s
-- Returns {conversation, version, queued at, claims} per claimed entry, oldest queued first.
-- Guarantees: an entry stays in the outbox until ``archived`` takes it out; claiming it only hides
-- it until now + min(max_retry_s, retry_s * 2^(claims - 1)), after which any instance claims it
-- again. So an entry whose archiving failed, or whose instance died or stalled, comes back with a
-- growing delay, and none is lost.
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local retry_s, max_retry_s = tonumber(ARGV[3]), tonumber(ARGV[4])
-- the hidden ones are skipped: read past as many of them as there are
local hidden = redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[1], '+inf')
local due = redis.call('ZRANGE', KEYS[2], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, limit + hidden, 'WITHSCORES')
local out = {}
for i = 1, #due, 2 do
  if #out >= limit then break end
  local conv = due[i]
  local until_ = redis.call('ZSCORE', KEYS[3], conv)
  if not until_ or tonumber(until_) <= now then
    local tries = redis.call('HINCRBY', KEYS[4], conv, 1)
    local wait = math.min(max_retry_s, retry_s * 2 ^ (tries - 1))
    redis.call('ZADD', KEYS[3], string.format('%.17g', now + wait), conv)
    local v = redis.call('HGET', P .. K_CONV .. conv, 'arch_v') or '1'
    out[#out + 1] = {conv, v, due[i + 1], tries}
  end
end
return out
