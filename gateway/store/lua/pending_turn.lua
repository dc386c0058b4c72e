-- pending_turn: a stored customer message whose bot turn is not finished.
-- @include "common"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>   KEYS[3] log:<conv>
-- ARGV[1] conversation id, ARGV[2] seq of the customer message
-- Returns {state, channel, entry, "1" | "v", reopened_from} or false when the turn is not pending.
local v = redis.call('HGET', KEYS[2], 'pt:' .. ARGV[2])
if not v then return false end
local c = redis.call('HMGET', KEYS[2], 'state', 'channel', 'reopened_from')
local e = redis.call('XRANGE', KEYS[3], '0-' .. ARGV[2], '0-' .. ARGV[2])
if #e == 0 then return false end
return {c[1], c[2] or 'web', e[1][2][2], v, c[3] or ''}
