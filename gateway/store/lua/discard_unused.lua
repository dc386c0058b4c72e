-- discard_unused: forget a conversation nobody wrote in (a hello opened it, then the customer left).
-- @include "common"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>   KEYS[3] log:<conv>   KEYS[4] dedupe:<conv>
-- ARGV[1] conversation id
-- Returns 1 when discarded, else 0.
-- Guarantees: only a conversation the bot has (state "bot") whose log holds nothing but
-- system entries (the greeting) goes; with it its log, client ids, idle timer and its
-- customer's pointer (if it still points here). Anything a customer, the bot or an agent
-- wrote keeps it. (A string value cannot hold '"from":"system"': its quotes are escaped.)
if redis.call('HGET', KEYS[2], 'state') ~= 'bot' then return 0 end
if redis.call('XLEN', KEYS[3]) > 8 then return 0 end
for _, item in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
  if not string.find(item[2][2], '"from":"system"', 1, true) then return 0 end
end
local cust = redis.call('HGET', KEYS[2], 'customer_id')
if cust then
  local ck = P .. K_CUST .. cust
  if redis.call('GET', ck) == ARGV[1] then redis.call('DEL', ck) end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', P .. K_TIMERS, TM_IDLE .. ARGV[1])
return 1
