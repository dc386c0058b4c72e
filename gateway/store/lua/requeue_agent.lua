-- requeue_agent: grace expired, route every conversation an offline agent holds again.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] agent:<agent>   KEYS[3] held:<agent>
-- ARGV[1] agent id
-- Returns {"ok", placements} | {"not_found"}
-- Guarantees: a no-op unless the agent is offline (it may have reconnected on
-- any instance); each conversation keeps its ticket, so it goes ahead of newer
-- arrivals of its priority; the agent gets a:<agent> unassigned "timeout" for each.
local agent = ARGV[1]
local status = redis.call('HGET', KEYS[2], 'status')
if not status then return {'not_found'} end
if status ~= 'offline' then return {'ok', {}} end
local out = {}
for _, conv in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  unhold(agent, conv)
  redis.call('HSET', P .. 'conv:' .. conv, 'state', 'queued', 'agent', '')
  agent_event(agent, conv, 'unassigned', 'timeout')
  out[#out + 1] = route(conv, agent)
end
return {'ok', out}
