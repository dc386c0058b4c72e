-- claim_due: take due timers for this instance; each is claimed by exactly one instance.
--
-- KEYS[1] prefix   KEYS[2] timers   KEYS[3] inflight:<instance>
-- ARGV[1] now (Unix seconds), ARGV[2] limit
-- ARGV[3] retry-before: "" = every earlier claim of this instance is finished
--         (its inflight set is cleared); else a time: claimed keys not reported
--         done and claimed at or before it are returned again (their fire failed,
--         or the reply of the claim never arrived)
-- ARGV[4..] keys this instance fired since its last claim (done)
-- Returns the claimed timer keys: retried ones first, then the due ones in (due, key) order.
-- Guarantees: a claimed timer leaves ``timers`` atomically and stays in this
-- instance's inflight set (score: when claimed) until it is reported done, so
-- if this instance dies with it in hand, the survivor that reaps it puts it
-- back, and if its fire fails it is fired again: none is lost.
local now, limit = ARGV[1], tonumber(ARGV[2])
local out = {}
if ARGV[3] == '' then
  redis.call('DEL', KEYS[3])
else
  for i = 4, #ARGV do redis.call('ZREM', KEYS[3], ARGV[i]) end
  for _, k in ipairs(redis.call('ZRANGE', KEYS[3], '-inf', ARGV[3], 'BYSCORE', 'LIMIT', 0, limit)) do
    redis.call('ZADD', KEYS[3], now, k)
    out[#out + 1] = k
  end
end
local due = redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit - #out)
for _, k in ipairs(due) do
  redis.call('ZREM', KEYS[2], k)
  redis.call('ZADD', KEYS[3], now, k)
  out[#out + 1] = k
end
return out
