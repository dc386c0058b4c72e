-- create_conversation: store a new conversation and make it its customer's current one.
-- @include "common"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>   KEYS[3] log:<conv>   KEYS[4] dedupe:<conv>   KEYS[5] cust:<customer>
-- ARGV[1] conversation id, ARGV[2] greeting entry JSON without its closing brace ("" = none)
-- ARGV[3] timer key ("" = none), ARGV[4] its due
-- ARGV[5..] field, value, field, value … (Conversation.to_dict; meta as "m:<key>" fields)
-- Returns the greeting as stored, or "".
-- Guarantees: the conversation starts with an empty log and no seen client ids;
-- the greeting and the timer are part of the same step.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('SET', KEYS[5], ARGV[1])
if ARGV[3] ~= '' then redis.call('ZADD', P .. K_TIMERS, ARGV[4], ARGV[3]) end
if ARGV[2] ~= '' then return (append_entry(ARGV[1], ARGV[2])) end
return ''
