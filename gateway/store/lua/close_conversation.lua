-- close_conversation: close, log "closed", release the holder and let it pull.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] conversation id, ARGV[2] reason, ARGV[3] by agent ("" = anyone may close)
-- Returns {"ok", holder, left_queue, pulled, conv fields} | {"unchanged", conv fields}
--       | {"not_found"} | {"not_assigned"}
-- Guarantees: with a by-agent, only its holder closes it; a closed conversation
-- stays closed (nothing changes); otherwise it leaves its queue or its agent,
-- the "closed" entry is logged, the holder gets a:<agent> unassigned "closed"
-- and takes the first waiting conversations among its skills, in one step.
local conv, reason, by = ARGV[1], ARGV[2], ARGV[3]
local c = redis.call('HMGET', KEYS[2], 'state', 'agent', 'queue')
if not c[1] then return {'not_found'} end
if by ~= '' and (c[1] ~= 'assigned' or c[2] ~= by) then return {'not_assigned'} end
if c[1] == 'closed' then return {'unchanged', redis.call('HGETALL', KEYS[2])} end
local left = ''
if c[1] == 'queued' and c[3] and redis.call('ZREM', P .. 'queue:' .. c[3], conv) == 1 then left = c[3] end
local holder = ''
if c[1] == 'assigned' then holder = c[2] end
redis.call('HSET', KEYS[2], 'state', 'closed', 'agent', '', 'closed_at', now_str(), 'close_reason', reason)
append_entry(conv, '{"type":"closed","reason":' .. cjson.encode(reason))
local pulled = {}
if holder ~= '' then
  unhold(holder, conv)
  agent_event(holder, conv, 'unassigned', 'closed')
  pulled = pull(holder)
end
return {'ok', holder, left, pulled, redis.call('HGETALL', KEYS[2])}
