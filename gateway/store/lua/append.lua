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
-- Returns {"ok", entry, state} | {"dup", first entry} | {"refused"} | {"not_found"}
--
-- Guarantees: a client id already seen returns the first entry and stores
-- nothing, whatever the guard says; otherwise the guard is checked and the
-- entry gets the next seq (no gaps), the server's ts, and is published on
-- c:<conv>, all in one step.
local conv = ARGV[1]
if redis.call('EXISTS', KEYS[2]) == 0 then return {'not_found'} end
local has_client, client = ARGV[3] == '1', ARGV[4]
if has_client then
  local seq = redis.call('HGET', KEYS[4], client)
  if seq then
    local first = redis.call('XRANGE', KEYS[3], '0-' .. seq, '0-' .. seq)
    return {'dup', first[1][2][2]}
  end
end
local c = redis.call('HMGET', KEYS[2], 'state', 'agent')
if ARGV[5] ~= '' and c[1] ~= ARGV[5] then return {'refused'} end
if ARGV[6] == '1' and (c[1] ~= 'assigned' or c[2] ~= ARGV[7]) then return {'refused'} end
if ARGV[8] == '1' and c[1] == 'closed' then return {'refused'} end
local e = append_entry(conv, ARGV[2])
if has_client then
  redis.call('HSET', KEYS[4], client, redis.call('XLEN', KEYS[3]))
end
if ARGV[9] ~= '' then
  redis.call('ZADD', KEYS[1] .. 'timers', ARGV[10], ARGV[9])
end
return {'ok', e, c[1]}
