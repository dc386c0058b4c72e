-- set_agent_status: change the status of the agent's current session.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] agent:<agent>
-- ARGV[1] agent id, ARGV[2] session id, ARGV[3] status ("online" | "away")
-- Returns {"ok", pulled placements} | {"not_found"} (unknown agent)
-- Guarantees: only the agent's current session changes it (else nothing
-- changes, no placements); online pulls waiting conversations up to capacity.
local agent, session, status = ARGV[1], ARGV[2], ARGV[3]
local a = redis.call('HMGET', KEYS[2], 'session', 'capacity')
if not a[2] then return {'not_found'} end
if a[1] ~= session then return {'ok', {}} end
redis.call('HSET', KEYS[2], 'status', status)
refresh_agent(agent)
local pulled = {}
if status == 'online' then pulled = pull(agent) end
publish_moved()
return {'ok', pulled}
