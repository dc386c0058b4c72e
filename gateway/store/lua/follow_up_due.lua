-- follow_up_due: a pending case's promised time has come: tell its owner.
-- @include "common"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] conversation id
-- Returns the owner (the agent that closed it pending), or "" when the case has ended (nothing sent).
-- Guarantees: only while the case is still on its owner's followups:<agent>, a:<owner>
-- {"type":"follow_up_due","conversation","follow_up_at"} is published.
local conv = ARGV[1]
local c = redis.call('HMGET', KEYS[2], 'had_agent', 'follow_up_at')
if not c[1] or c[1] == '' then return '' end
if not redis.call('ZSCORE', P .. K_FOLLOWUPS .. c[1], conv) then return '' end
publish(T_AGENT .. c[1], '{"type":"follow_up_due","conversation":' .. cjson.encode(conv) .. ',"follow_up_at":'
        .. c[2] .. '}')
return c[1]
