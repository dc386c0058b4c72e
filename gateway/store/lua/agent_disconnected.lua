-- agent_disconnected: mark the agent offline if ``session`` is still its session.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] agent:<agent>
-- ARGV[1] agent id, ARGV[2] session id
-- Returns 1 when it was the agent's session (now offline), else 0 (a newer session owns it).
-- Guarantees: a replaced session can never take a newer session offline; the
-- agent leaves the free sets at once, keeping its conversations (grace).
local agent, session = ARGV[1], ARGV[2]
local a = redis.call('HMGET', KEYS[2], 'session', 'instance')
if not a[1] or a[1] ~= session then return 0 end
if a[2] then redis.call('SREM', P .. 'inst_agents:' .. a[2], agent) end
redis.call('HDEL', KEYS[2], 'session', 'instance')
redis.call('HSET', KEYS[2], 'status', 'offline')
refresh_agent(agent)
return 1
