-- raise_priority: raise (never lower) the priority of a conversation still with the bot.
-- @include "common"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] priority
-- Returns 1 when it changed, else 0.
local c = redis.call('HMGET', KEYS[2], 'state', 'priority')
if c[1] ~= 'bot' or RANK[ARGV[1]] >= RANK[c[2] or 'normal'] then return 0 end
redis.call('HSET', KEYS[2], 'priority', ARGV[1])
return 1
