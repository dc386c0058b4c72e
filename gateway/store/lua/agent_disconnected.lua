-- agent_disconnected: mark the agent offline if ``session`` is still its session.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] agent:<agent>
-- ARGV[1] agent id, ARGV[2] session id
-- ARGV[3] grace timer key ("" = none), ARGV[4] its due, ARGV[5] "1": requeue its conversations now
-- Returns 1 when it was the agent's session (now offline), else 0 (a newer session owns it).
-- Guarantees: a replaced session can never take a newer session offline; the
-- agent leaves the free sets at once, and in the same step either its grace
-- timer is set (it keeps its conversations meanwhile) or they are routed again.
local agent, session = ARGV[1], ARGV[2]
local a = redis.call('HMGET', KEYS[2], 'session', 'instance')
if not a[1] or a[1] ~= session then return 0 end
if a[2] then redis.call('SREM', P .. K_INST_AGENTS .. a[2], agent) end
redis.call('HDEL', KEYS[2], 'session', 'instance')
redis.call('HSET', KEYS[2], 'status', 'offline')
refresh_agent(agent)
if ARGV[5] == '1' then
  requeue(agent)
  publish_moved()
elseif ARGV[3] ~= '' then
  redis.call('ZADD', P .. K_TIMERS, ARGV[4], ARGV[3])
end
return 1
