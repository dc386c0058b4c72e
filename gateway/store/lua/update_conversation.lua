-- update_conversation: set plain fields of an existing conversation.
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] "1": replace the whole meta (its "m:"/"o:" fields are removed first)
-- ARGV[2..] field, value, field, value …
-- Returns 1, or 0 when the conversation does not exist (nothing created).
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if ARGV[1] == '1' then
  for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
    local p = string.sub(f, 1, 2)
    if p == 'm:' or p == 'o:' then redis.call('HDEL', KEYS[2], f) end
  end
end
if #ARGV > 1 then redis.call('HSET', KEYS[2], unpack(ARGV, 2)) end
return 1
