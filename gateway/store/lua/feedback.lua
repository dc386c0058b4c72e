-- feedback: a customer's verdict on one bot message (helpful or not), kept on the conversation.
-- @include "common"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>   KEYS[3] log:<conv>
-- ARGV[1] conversation id, ARGV[2] the bot message's seq, ARGV[3] "1" helpful, "0" not
-- Returns 1 when stored, 0 when there is no such conversation or entry ARGV[2] is not a bot
-- message (nothing stored).
-- Guarantees: the verdict is the field "fb:<seq>" of the conversation hash (log entries are
-- immutable), a later one on the same entry replaces it, and the holding agent's ring
-- {"type":"feedback","conversation","entry_seq","helpful","to":"agent"} goes out in the same step.
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local rows = redis.call('XRANGE', KEYS[3], '0-' .. ARGV[2], '0-' .. ARGV[2])
if #rows == 0 then return 0 end
local e = cjson.decode(rows[1][2][2])
if e['type'] ~= 'message' or e['from'] ~= 'bot' then return 0 end
redis.call('HSET', KEYS[2], 'fb:' .. ARGV[2], ARGV[3])
local helpful = 'false'
if ARGV[3] == '1' then helpful = 'true' end
publish(T_CONVERSATION .. ARGV[1], '{"type":"feedback","conversation":' .. cjson.encode(ARGV[1]) ..
  ',"entry_seq":' .. ARGV[2] .. ',"helpful":' .. helpful .. ',"to":"agent"}')
return 1
