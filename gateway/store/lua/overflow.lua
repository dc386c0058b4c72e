-- overflow: a conversation waiting too long in another skill's queue goes to ``skill``.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] conversation id, ARGV[2] skill, ARGV[3] notice entry JSON without its closing brace
-- Returns {"ok", placement} | {"none"} (not queued, or already in ``skill``: nothing changed)
-- Guarantees: it leaves its old queue, the notice is logged, and it is routed
-- to ``skill`` keeping its ticket and priority (an agent with room takes it, else
-- it waits ahead of newer arrivals); both queues' new orders are published.
local conv, skill, ck = ARGV[1], ARGV[2], KEYS[2]
local c = redis.call('HMGET', ck, 'state', 'queue')
if c[1] ~= 'queued' or not c[2] or c[2] == skill then return {'none'} end
if redis.call('ZREM', P .. K_QUEUE .. c[2], conv) == 1 then MOVED[c[2]] = true end
append_entry(conv, ARGV[3])
redis.call('HSET', ck, 'skill', skill)
local placement = route(conv, '')
publish_moved()
return {'ok', placement}
