-- rate: store the customer's rating of a conversation an agent held, or of a closed one (bot-only too).
-- @include "outbox"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] score, ARGV[2] comment
-- Returns the agent who last held it ("" for a bot-only one), or nil (no such conversation, or open and
-- never with an agent: nothing stored).
local c = redis.call('HMGET', KEYS[2], 'had_agent', 'state')
if not c[2] then return false end
local had = c[1] or ''
if had == '' and c[2] ~= 'closed' then return false end
redis.call('HSET', KEYS[2], 'rating', ARGV[1], 'rating_comment', ARGV[2])
-- a closed one is queued for the archive again (a new version), in this step
if redis.call('HGET', KEYS[2], 'state') == 'closed' then archive_again(string.sub(KEYS[2], #(P .. K_CONV) + 1), KEYS[2]) end
return had
