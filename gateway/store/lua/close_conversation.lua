-- close_conversation: close, log "closed", release the holder and let it pull.
-- @include "routing"
-- @include "outbox"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] conversation id, ARGV[2] reason, ARGV[3] by agent ("" = anyone may close)
-- ARGV[4] notice entry JSON without its closing brace, appended before "closed" ("" = none)
-- ARGV[5] idle timer key: when set and the conversation waits in a queue, only
--         reschedule it (ARGV[6] due) and close nothing
-- ARGV[7] "1": publish {"type":"survey"} on c:<conv> when an agent held it
-- ARGV[8] "1": a conversation nobody wrote in is discarded instead (discard_if_unused)
-- Returns {"ok", holder, left_queue, pulled, conv fields} | {"unchanged", conv fields}
--       | {"discarded"} | {"not_found"} | {"not_assigned"}
-- Guarantees: with a by-agent, only its holder closes it; a closed conversation
-- stays closed (nothing changes); otherwise it leaves its queue or its agent,
-- its pending turns and idle/SLA timers are dropped, the "closed" entry is
-- logged, the holder gets a:<agent> unassigned "closed" and takes the first
-- waiting conversations among its skills, the survey goes out and the queues'
-- new order is published, in one step.
local conv, reason, by = ARGV[1], ARGV[2], ARGV[3]
local ck = KEYS[2]
local c = redis.call('HMGET', ck, 'state', 'agent', 'queue')
if not c[1] then return {'not_found'} end
if by ~= '' and (c[1] ~= 'assigned' or c[2] ~= by) then return {'not_assigned'} end
if c[1] == 'closed' then return {'unchanged', redis.call('HGETALL', ck)} end
if ARGV[8] == '1' and discard_if_unused(conv, ck) then return {'discarded'} end
if ARGV[5] ~= '' and c[1] == 'queued' then
  redis.call('ZADD', P .. K_TIMERS, ARGV[6], ARGV[5])
  return {'unchanged', redis.call('HGETALL', ck)}
end
if ARGV[4] ~= '' then append_entry(conv, ARGV[4]) end
if c[1] == 'bot' then clear_turns(conv, ck) end  -- only the bot has pending turns (a hand-off finishes them)
redis.call('ZREM', P .. K_TIMERS, TM_IDLE .. conv, TM_SLA .. conv, TM_OVERFLOW .. conv)
local left = ''
if c[1] == 'queued' and c[3] and redis.call('ZREM', P .. K_QUEUE .. c[3], conv) == 1 then
  left = c[3]
  MOVED[left] = true
end
local holder = ''
if c[1] == 'assigned' then holder = c[2] end
redis.call('HSET', ck, 'state', 'closed', 'agent', '', 'closed_at', now_str(), 'close_reason', reason)
append_entry(conv, '{"type":"closed","reason":' .. cjson.encode(reason))
outbox_add(conv)  -- queued for the archive (includes/outbox), in this step
local pulled = {}
if holder ~= '' then
  unhold(holder, conv)
  agent_event(holder, conv, 'unassigned', 'closed')
  pulled = pull(holder)
  if ARGV[7] == '1' then
    publish(T_CONVERSATION .. conv, '{"type":"survey","conversation":' .. cjson.encode(conv) .. '}')
  end
end
publish_moved()
return {'ok', holder, left, pulled, redis.call('HGETALL', ck)}
