-- outbox: the archive outbox (README "The outbox and hot data"; keys in gateway/store/keys.py).
-- @include "common"
--
-- outbox (zset) holds every conversation whose newest change the archive does not have yet, scored
-- by when it was queued; the version to write is the conversation's "arch_v" field (absent: 1).
-- A claim hides an entry until its outbox_retry score; only ``archived`` takes it out.

-- Queue a conversation for the archive (the close step). One already waiting keeps its place:
-- its oldest unarchived change sets the outbox's lag.
local function outbox_add(conv)
  redis.call('ZADD', P .. K_OUTBOX, 'NX', now_str(), conv)
end

-- A closed conversation changed (rated, its follow-up ended, ...): the archive needs a new version.
-- The version grows, the entry is due at once (a claim of the older version no longer hides it),
-- and the hot copy no longer expires: the live log stays the truth until the archive has it.
local function archive_again(conv, ck)
  local v = tonumber(redis.call('HGET', ck, 'arch_v') or '1')
  redis.call('HSET', ck, 'arch_v', v + 1)
  redis.call('ZREM', P .. K_OUTBOX_RETRY, conv)
  redis.call('HDEL', P .. K_OUTBOX_TRIES, conv)
  outbox_add(conv)
  redis.call('PERSIST', ck)
  redis.call('PERSIST', P .. K_LOG .. conv)
  redis.call('PERSIST', P .. K_DEDUPE .. conv)
  local cust = redis.call('HGET', ck, 'customer_id')
  if cust and redis.call('GET', P .. K_CUST .. cust) == conv then redis.call('PERSIST', P .. K_CUST .. cust) end
end
