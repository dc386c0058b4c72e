-- requeue_agent: grace expired, route every conversation an offline agent holds again.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] agent:<agent>   KEYS[3] held:<agent>
-- ARGV[1] agent id
-- Returns {"ok", placements} | {"not_found"}
-- Guarantees: a no-op unless the agent is offline (it may have reconnected on
-- any instance); each conversation keeps its ticket, so it goes ahead of newer
-- arrivals of its priority; the agent gets a:<agent> unassigned "timeout" for
-- each; the queues' new order is published.
local agent = ARGV[1]
local status = redis.call('HGET', KEYS[2], 'status')
if not status then return {'not_found'} end
if status ~= 'offline' then return {'ok', {}} end
local out = requeue(agent)
publish_moved()
return {'ok', out}
