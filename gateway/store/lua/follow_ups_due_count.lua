-- follow_ups_due_count: how many pending cases are due (their follow-up time has come), over every agent.
-- @include "common"
--
-- KEYS[1] prefix
-- ARGV[1] now (Unix seconds)
-- Returns the count (read only: for the gateway_follow_ups_due gauge, read at scrape time).
local n = 0
for _, agent in ipairs(redis.call('SMEMBERS', P .. K_AGENTS)) do
  n = n + redis.call('ZCOUNT', P .. K_FOLLOWUPS .. agent, '-inf', ARGV[1])
end
return n
