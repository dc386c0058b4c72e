-- routing: the rules of gateway/routing/policy.py over Redis data.
-- @include "common"
--
-- free:<skill> holds exactly the agents that can take <skill> (online, with
-- room), scored held/capacity; refresh_agent keeps it true after every change.
-- queue:<skill> scores are priority.rank * 1e13 + ticket (policy.queue_score).

local RANK = {urgent = 0, high = 1, normal = 2}
local RANK_SPAN = 10000000000000

local function refresh_agent(agent)
  local a = redis.call('HMGET', P .. 'agent:' .. agent, 'status', 'capacity', 'skills')
  if not a[2] then return end
  local cap = tonumber(a[2])
  local held = redis.call('LLEN', P .. 'held:' .. agent)
  local free = a[1] == 'online' and held < cap
  for _, s in ipairs(cjson.decode(a[3])) do
    if free then
      redis.call('ZADD', P .. 'free:' .. s, string.format('%.17g', held / cap), agent)
    else
      redis.call('ZREM', P .. 'free:' .. s, agent)
    end
  end
end

-- A strictly increasing assignment stamp from the server clock (integer
-- microseconds), so "longest idle" orders assignments exactly as they
-- happened, whichever instance did them. Returned as Unix seconds.
local function next_stamp()
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', P .. 'stamp') or '0')
  if us <= last then us = last + 1 end
  redis.call('SET', P .. 'stamp', string.format('%.0f', us))
  return string.format('%d.%06d', math.floor(us / 1000000), us % 1000000)
end

-- Least loaded (held/capacity) agent that can take ``skill``, ties to the
-- longest idle, then to the smaller id (zset order within one score).
local function pick_agent(skill, exclude)
  local fk = P .. 'free:' .. skill
  local best, best_load, best_last = nil, nil, nil
  local offset, page = 0, 64
  while true do
    local batch = redis.call('ZRANGE', fk, '-inf', '+inf', 'BYSCORE', 'LIMIT', offset, page, 'WITHSCORES')
    for i = 1, #batch, 2 do
      local id, load = batch[i], tonumber(batch[i + 1])
      if best and load > best_load then return best end
      if id ~= exclude then
        local last = tonumber(redis.call('HGET', P .. 'agent:' .. id, 'last_assigned')) or 0
        if not best or last < best_last then
          best, best_load, best_last = id, load, last
        end
      end
    end
    if #batch < 2 * page then return best end
    offset = offset + page
  end
end

-- ``agent`` takes ``conv``: held list, stamp, conversation state, the
-- ``assigned`` log entry, and the a:<agent> event.
local function hold(agent, conv)
  local ak = P .. 'agent:' .. agent
  redis.call('RPUSH', P .. 'held:' .. agent, conv)
  redis.call('HSET', ak, 'last_assigned', next_stamp())
  redis.call('HSET', P .. 'conv:' .. conv, 'state', 'assigned', 'agent', agent, 'had_agent', agent)
  refresh_agent(agent)
  append_entry(conv, '{"type":"assigned","agent":' .. redis.call('HGET', ak, 'ref'))
  agent_event(agent, conv, 'assigned', nil)
end

-- ``agent`` lets go of ``conv`` (no event: callers publish in the memory store's order).
local function unhold(agent, conv)
  redis.call('LREM', P .. 'held:' .. agent, 1, conv)
  refresh_agent(agent)
end

-- A placement as returned to Python: {conversation, skill, agent, position, from_queue}.
local function route(conv, exclude)
  local ck = P .. 'conv:' .. conv
  local c = redis.call('HMGET', ck, 'skill', 'priority', 'ticket')
  local skill = c[1]
  local chosen = pick_agent(skill, exclude)
  if chosen then
    hold(chosen, conv)
    return {conv, skill, chosen, 0, 0}
  end
  -- ``queue`` remembers where it waits, whatever update_conversation does to its skill.
  redis.call('HSET', ck, 'state', 'queued', 'agent', '', 'queue', skill)
  local qk = P .. 'queue:' .. skill
  local score = RANK[c[2]] * RANK_SPAN + tonumber(c[3])
  redis.call('ZADD', qk, string.format('%.0f', score), conv)
  redis.call('SADD', P .. 'queues', skill)
  return {conv, skill, '', redis.call('ZRANK', qk, conv) + 1, 0}
end

-- Fill ``agent``'s free slots with the first waiting conversations among its skills.
local function pull(agent)
  local out = {}
  local ak = P .. 'agent:' .. agent
  local hk = P .. 'held:' .. agent
  local skills = cjson.decode(redis.call('HGET', ak, 'skills'))
  while true do
    local a = redis.call('HMGET', ak, 'status', 'capacity')
    if a[1] ~= 'online' or redis.call('LLEN', hk) >= tonumber(a[2]) then break end
    local best, best_score, best_skill = nil, nil, nil
    for _, s in ipairs(skills) do
      local h = redis.call('ZRANGE', P .. 'queue:' .. s, 0, 0, 'WITHSCORES')
      if #h > 0 then
        local sc = tonumber(h[2])
        if not best or sc < best_score or (sc == best_score and bytes_lt(h[1], best)) then
          best, best_score, best_skill = h[1], sc, s
        end
      end
    end
    if not best then break end
    redis.call('ZREM', P .. 'queue:' .. best_skill, best)
    hold(agent, best)
    out[#out + 1] = {best, best_skill, agent, 0, 1}
  end
  return out
end
