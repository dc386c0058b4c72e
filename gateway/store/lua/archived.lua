-- archived: the archive has this version of a conversation; its outbox entry goes, its hot copy expires.
-- @include "outbox"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] conversation id, ARGV[2] the version written, ARGV[3] keep hot (milliseconds)
-- Returns 1 when the entry went out of the outbox, 0 when nothing changed: it is not there (archived
-- already), or the conversation changed since that version was claimed (its newer version stays queued).
-- Guarantees: an entry leaves the outbox only once the archive has the version it was queued for.
-- A closed conversation's keys (conv, log, dedupe, and its customer's pointer while it points here)
-- then expire after keep hot (0: at once); a pending case waiting for its follow-up keeps them
-- (ending the follow-up queues it again); an open one (or one gone already) only leaves the outbox.
local conv, ck = ARGV[1], KEYS[2]
if not redis.call('ZSCORE', P .. K_OUTBOX, conv) then return 0 end
local h = redis.call('HMGET', ck, 'state', 'arch_v', 'customer_id', 'resolution', 'follow_up_done_at')
if h[1] and (h[2] or '1') ~= ARGV[2] then return 0 end
redis.call('ZREM', P .. K_OUTBOX, conv)
redis.call('ZREM', P .. K_OUTBOX_RETRY, conv)
redis.call('HDEL', P .. K_OUTBOX_TRIES, conv)
local waiting = h[4] == 'pending' and (tonumber(h[5] or '0') or 0) == 0
if h[1] == 'closed' and not waiting then
  local ms = ARGV[3]
  redis.call('PEXPIRE', ck, ms)
  redis.call('PEXPIRE', P .. K_LOG .. conv, ms)
  redis.call('PEXPIRE', P .. K_DEDUPE .. conv, ms)
  if h[3] then
    local cu = P .. K_CUST .. h[3]
    if redis.call('GET', cu) == conv then redis.call('PEXPIRE', cu, ms) end
  end
end
return 1
