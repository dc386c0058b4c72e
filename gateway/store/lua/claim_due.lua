-- claim_due: take due timers for this instance; each is claimed by exactly one instance.
--
-- KEYS[1] prefix   KEYS[2] timers   KEYS[3] inflight:<instance>
-- ARGV[1] now (Unix seconds), ARGV[2] limit
-- Returns the claimed timer keys, in (due, key) order.
-- Guarantees: a claimed timer leaves ``timers`` atomically. It stays in this
-- instance's inflight set until its next claim (the timer loop fires a batch
-- before it claims again), so if this instance dies with a batch in hand, the
-- survivor that reaps it puts those timers back: none is lost with an instance.
redis.call('DEL', KEYS[3])
local due = redis.call('ZRANGE', KEYS[2], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]), 'WITHSCORES')
local out = {}
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[2], due[i])
  redis.call('ZADD', KEYS[3], due[i + 1], due[i])
  out[#out + 1] = due[i]
end
return out
