-- finish_follow_up: the owner ends a pending case (closes it again, resolved or unresolved).
-- @include "outbox"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>   KEYS[3] followups:<agent>
-- ARGV[1] conversation id, ARGV[2] agent id, ARGV[3] resolution, ARGV[4] category ("" = keep)
-- Returns 1 when it ended the case, 0 when the case is not on that agent's follow-ups (nothing changed).
-- Guarantees: resolution, category and follow_up_done_at stored, the case and its follow_up:<conv>
-- timer dropped, the conversation queued for the archive again (a new version) and a:<agent>
-- {"type":"follow_up_done","conversation"} published, in one step.
local conv, agent = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[2], 'state') ~= 'closed' then return 0 end
if redis.call('ZREM', KEYS[3], conv) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'resolution', ARGV[3], 'follow_up_done_at', now_str())
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'category', ARGV[4]) end
redis.call('ZREM', P .. K_TIMERS, TM_FOLLOW_UP .. conv)
archive_again(conv, KEYS[2])
publish(T_AGENT .. agent, '{"type":"follow_up_done","conversation":' .. cjson.encode(conv) .. '}')
return 1
