-- append: store one log entry, deduplicated by client id, under a guard.
-- @include "common"
--
-- KEYS[1] prefix "gw:{ns}:"   KEYS[2] conv:<conv>   KEYS[3] log:<conv>   KEYS[4] dedupe:<conv>
-- ARGV[1] conversation id
-- ARGV[2] entry JSON without its closing brace (no seq, no ts)
-- ARGV[3] "1" when a client id is given, ARGV[4] the client id
-- ARGV[5] guard state ("" = any)
-- ARGV[6] "1" when the guard names an agent, ARGV[7] that agent (conversation must be assigned to it)
-- ARGV[8] "1": the conversation must not be closed
-- ARGV[9] a timer key to (re)schedule when the entry is stored ("" = none), ARGV[10] its due time
-- ARGV[11] due time of the pending bot turn this customer message starts ("" = none; only while "bot")
-- ARGV[12] "1": that customer is a VIP
-- ARGV[13] the seq of the pending turn this entry finishes ("0" = none): refused unless pending
-- ARGV[14] meta patch JSON ("" = none), ARGV[15..] timer keys to cancel
-- Returns {"ok", entry, state} | {"dup", first entry} | {"refused"} | {"not_found"}; an agent's message
-- (ARGV[6] "1") that is the first after the hand-off: {"ok", entry, state, queued_at JSON, channel, skill}
-- (field "fr" on the conversation: the seq of that first response)
--
-- Guarantees: a client id already seen returns the first entry and stores
-- nothing, whatever the guard says; otherwise the guard (and the pending turn)
-- is checked and the entry gets the next seq (no gaps), the server's ts, and
-- is published on c:<conv>, with its timers, pending turn and meta patch, all
-- in one step.
local conv = ARGV[1]
local ck = KEYS[2]
local c = redis.call('HMGET', ck, 'state', 'agent', 'fr', 'm:queued_at', 'channel', 'skill')
if not c[1] then return {'not_found'} end
local has_client, client = ARGV[3] == '1', ARGV[4]
if has_client then
  local seq = redis.call('HGET', KEYS[4], client)
  if seq then
    local first = redis.call('XRANGE', KEYS[3], '0-' .. seq, '0-' .. seq)
    return {'dup', first[1][2][2]}
  end
end
if ARGV[5] ~= '' and c[1] ~= ARGV[5] then return {'refused'} end
if ARGV[6] == '1' and (c[1] ~= 'assigned' or c[2] ~= ARGV[7]) then return {'refused'} end
if ARGV[8] == '1' and c[1] == 'closed' then return {'refused'} end
local turn = ARGV[13]
if turn ~= '0' then
  if redis.call('HDEL', ck, 'pt:' .. turn) == 0 then return {'refused'} end
  redis.call('ZREM', P .. K_TIMERS, TM_TURN .. conv .. ':' .. turn)
end
patch_meta(ck, ARGV[14])
local e, seq = append_entry(conv, ARGV[2])
if has_client then
  redis.call('HSET', KEYS[4], client, seq)
end
if ARGV[11] ~= '' and c[1] == 'bot' then
  local v = '1'
  if ARGV[12] == '1' then v = 'v' end
  redis.call('HSET', ck, 'pt:' .. seq, v)
  redis.call('ZADD', P .. K_TIMERS, ARGV[11], TM_TURN .. conv .. ':' .. seq)
end
if ARGV[9] ~= '' then
  redis.call('ZADD', P .. K_TIMERS, ARGV[10], ARGV[9])
end
for i = 15, #ARGV do
  redis.call('ZREM', P .. K_TIMERS, ARGV[i])
end
if ARGV[6] == '1' and not c[3] and c[4] then
  redis.call('HSET', ck, 'fr', seq)
  return {'ok', e, c[1], c[4], c[5] or 'web', c[6] or ''}
end
return {'ok', e, c[1]}
