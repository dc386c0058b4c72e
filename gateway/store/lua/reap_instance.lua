-- reap_instance: an instance's heartbeat expired; treat its agents as disconnected.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] hb:<dead>   KEYS[3] instances   KEYS[4] inst_agents:<dead>
-- KEYS[5] inflight:<dead>   KEYS[6] timers
-- ARGV[1] dead instance, ARGV[2] now (Unix seconds), ARGV[3] agent grace (seconds)
-- Returns the agents marked offline, or false when the instance is alive after all
-- or is no longer in the live set (another survivor reaped it, or it left).
-- Guarantees: exactly one survivor reaps an instance (it leaves ``instances``
-- in the same step); each agent whose session still lives there goes offline
-- and gets its grace:<agent> timer, as a socket disconnect would; timers the
-- instance had claimed but maybe not fired go back to ``timers`` (unless one
-- with the same key was scheduled meanwhile).
local dead, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('SISMEMBER', KEYS[3], dead) == 0 then return false end
local out = {}
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local ak = P .. K_AGENT .. agent
  if redis.call('HGET', ak, 'instance') == dead then
    redis.call('HDEL', ak, 'session', 'instance')
    redis.call('HSET', ak, 'status', 'offline')
    refresh_agent(agent)
    redis.call('ZADD', KEYS[6], string.format('%.6f', now + grace), TM_GRACE .. agent)
    out[#out + 1] = agent
  end
end
local inflight = redis.call('ZRANGE', KEYS[5], 0, -1, 'WITHSCORES')
for i = 1, #inflight, 2 do
  if not redis.call('ZSCORE', KEYS[6], inflight[i]) then
    redis.call('ZADD', KEYS[6], inflight[i + 1], inflight[i])
  end
end
redis.call('DEL', KEYS[4], KEYS[5])
redis.call('SREM', KEYS[3], dead)
return out
