-- create_conversation: store a new conversation and make it its customer's current one.
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>   KEYS[3] log:<conv>   KEYS[4] dedupe:<conv>   KEYS[5] cust:<customer>
-- ARGV[1] conversation id, ARGV[2..] field, value, field, value … (Conversation.to_dict, meta as JSON)
-- Returns 1.
-- Guarantees: the conversation starts with an empty log and no seen client ids.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
redis.call('SET', KEYS[5], ARGV[1])
return 1
