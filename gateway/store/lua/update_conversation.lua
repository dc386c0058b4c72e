-- update_conversation: set plain fields of an existing conversation.
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1..] field, value, field, value …
-- Returns 1, or 0 when the conversation does not exist (nothing created).
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if #ARGV > 0 then redis.call('HSET', KEYS[2], unpack(ARGV)) end
return 1
