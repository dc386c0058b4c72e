-- scan_conversations: one page of a walk over the namespace's conversations (reads only).
--
-- KEYS[1] prefix
-- ARGV[1] SCAN cursor ("0" starts the walk), ARGV[2] keys to examine (SCAN's COUNT),
-- ARGV[3] since (Unix seconds), ARGV[4] the MATCH pattern of conversation hashes (<prefix>conv:*, escaped)
-- Returns {next cursor ("0": the walk is done), {HGETALL reply of each conversation with activity
-- since ARGV[3]: created or closed at or after it, or not closed}}.
-- Guarantees: SCAN's (every conversation there for the whole walk comes at least once); only the
-- conversations in the window leave Redis, in one round trip per page.
local res = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[4], 'COUNT', ARGV[2])
local since = tonumber(ARGV[3])
local out = {}
for _, key in ipairs(res[2]) do
  local c = redis.call('HMGET', key, 'state', 'created_at', 'closed_at')
  if c[1] and (c[1] ~= 'closed' or (tonumber(c[2]) or 0) >= since or (tonumber(c[3]) or 0) >= since) then
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
return {res[1], out}
