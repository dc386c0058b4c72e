-- transfer: move an ASSIGNED conversation off its agent to a skill or a named agent.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] conversation id, ARGV[2] from agent, ARGV[3] skill ("" when to an agent), ARGV[4] to agent ("")
-- Returns {"ok", placement, pulled} | {"not_assigned"} | {"not_found", reason}
-- Guarantees (in the memory store's order): the source lets go (a:<from>
-- unassigned "transferred"), the "transferred" entry is logged, the source
-- pulls from its queues before the conversation is routed again (so it cannot
-- take it straight back), then the target agent takes it or it is routed to
-- the skill excluding the source.
local conv, from, skill, to = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local c = redis.call('HMGET', KEYS[2], 'state', 'agent')
if c[1] ~= 'assigned' or c[2] ~= from then return {'not_assigned'} end
local src_ref = redis.call('HGET', P .. K_AGENT .. from, 'ref')
if not src_ref then return {'not_found', 'unknown agent ' .. from} end
local dst_ref = nil
if to ~= '' then
  local d = redis.call('HMGET', P .. K_AGENT .. to, 'status', 'capacity', 'ref')
  if not d[3] or to == from then return {'not_found', 'unknown agent ' .. to} end
  if d[1] ~= 'online' or redis.call('LLEN', P .. K_HELD .. to) >= tonumber(d[2]) then
    return {'not_found', 'agent ' .. to .. ' cannot take it now (offline, away or full)'}
  end
  dst_ref = d[3]
end
unhold(from, conv)
agent_event(from, conv, 'unassigned', 'transferred')
local target
if dst_ref then target = '{"agent":' .. dst_ref .. '}' else target = '{"skill":' .. cjson.encode(skill) .. '}' end
append_entry(conv, '{"type":"transferred","from":' .. src_ref .. ',"to":' .. target)
local pulled = pull(from)
local placement
if dst_ref then
  hold(to, conv)
  placement = {conv, redis.call('HGET', KEYS[2], 'skill'), to, 0, 0}
else
  redis.call('HSET', KEYS[2], 'skill', skill)
  placement = route(conv, from)
end
publish_moved()
return {'ok', placement, pulled}
