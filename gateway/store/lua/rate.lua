-- rate: store the customer's rating of a conversation an agent held.
-- @include "outbox"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] score, ARGV[2] comment
-- Returns the agent who last held it, or "" (no such conversation or never with an agent: nothing stored).
local had = redis.call('HGET', KEYS[2], 'had_agent')
if not had or had == '' then return '' end
redis.call('HSET', KEYS[2], 'rating', ARGV[1], 'rating_comment', ARGV[2])
-- a closed one is queued for the archive again (a new version), in this step
if redis.call('HGET', KEYS[2], 'state') == 'closed' then archive_again(string.sub(KEYS[2], #(P .. K_CONV) + 1), KEYS[2]) end
return had
