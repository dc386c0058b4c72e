-- close_conversation: close, log "closed", release the holder and let it pull.
-- @include "routing"
-- @include "outbox"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] conversation id, ARGV[2] reason, ARGV[3] by agent ("" = anyone may close)
-- ARGV[4] notice entry JSON without its closing brace, appended before "closed" ("" = none)
-- ARGV[5] idle timer key: when set and the conversation waits in a queue, only
--         reschedule it (ARGV[6] due) and close nothing
-- ARGV[7] "1": publish {"type":"survey"} on c:<conv> (with "bot_only":true when no agent ever held it)
-- ARGV[8] "1": a conversation nobody wrote in is discarded instead (discard_if_unused)
-- ARGV[9] the agent's resolution ("" = none: not an agent's close), ARGV[10] its category
-- ARGV[11] pending: the follow-up's due time ("" = none), ARGV[12] the agent's note
-- Returns {"ok", holder, left_queue, pulled, conv fields} | {"unchanged", conv fields}
--       | {"discarded"} | {"not_found"} | {"not_assigned"}
-- Guarantees: with a by-agent, only its holder closes it; a closed conversation
-- stays closed (nothing changes); otherwise it leaves its queue or its agent,
-- its pending turns and idle/SLA timers are dropped, the "closed" entry is
-- logged, the holder gets a:<agent> unassigned "closed" and takes the first
-- waiting conversations among its skills, the survey goes out and the queues'
-- new order is published, in one step. An agent's resolution and category are
-- stored; a pending case goes on followups:<holder> (not held: no capacity used)
-- with its follow_up:<conv> timer and a:<holder> {"type":"follow_up"}.
local conv, reason, by = ARGV[1], ARGV[2], ARGV[3]
local ck = KEYS[2]
local c = redis.call('HMGET', ck, 'state', 'agent', 'queue', 'had_agent')
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
local pending = holder ~= '' and ARGV[11] ~= ''
if holder ~= '' and ARGV[9] ~= '' then
  redis.call('HSET', ck, 'state', 'closed', 'agent', '', 'closed_at', now_str(), 'close_reason', reason,
             'resolution', ARGV[9], 'category', ARGV[10])
  if pending then redis.call('HSET', ck, 'follow_up_at', ARGV[11], 'follow_up_note', ARGV[12]) end
else
  redis.call('HSET', ck, 'state', 'closed', 'agent', '', 'closed_at', now_str(), 'close_reason', reason)
end
append_entry(conv, '{"type":"closed","reason":' .. cjson.encode(reason))
outbox_add(conv)  -- queued for the archive (includes/outbox), in this step
local pulled = {}
if holder ~= '' then
  unhold(holder, conv)
  agent_event(holder, conv, 'unassigned', 'closed')
  if pending then
    redis.call('ZADD', P .. K_FOLLOWUPS .. holder, ARGV[11], conv)
    redis.call('ZADD', P .. K_TIMERS, ARGV[11], TM_FOLLOW_UP .. conv)
    publish(T_AGENT .. holder, '{"type":"follow_up","conversation":' .. cjson.encode(conv) .. ',"follow_up_at":'
            .. ARGV[11] .. '}')
  end
  pulled = pull(holder)
end
if ARGV[7] == '1' then
  local bot_only = ''
  if holder == '' and (not c[4] or c[4] == '') then bot_only = ',"bot_only":true' end
  publish(T_CONVERSATION .. conv, '{"type":"survey","conversation":' .. cjson.encode(conv) .. bot_only .. '}')
end
publish_moved()
return {'ok', holder, left, pulled, redis.call('HGETALL', ck)}
