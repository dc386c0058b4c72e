-- routing: the rules of gateway/routing/policy.py over Redis data.
-- @include "common"
--
-- free:<skill> holds exactly the agents that can take <skill> (online, with
-- room), scored held/capacity; refresh_agent keeps it true after every change.
-- Its members are "<last assigned, µs, 16 digits>:<agent id>", so within one
-- score the zset's own order is the tie-break (longest idle, then smaller id)
-- and the first member is the policy's choice: picking is O(log n).
-- queue:<skill> scores are priority.rank * 1e13 + ticket (policy.queue_score).

local STAMP_DIGITS = 16

-- Skill queues this step changed: their new order goes out once, at the end.
local MOVED = {}
local function publish_moved()
  local skills = {}
  for s in pairs(MOVED) do skills[#skills + 1] = s end
  table.sort(skills, bytes_lt)
  for _, s in ipairs(skills) do
    local q = redis.call('ZRANGE', P .. K_QUEUE .. s, 0, -1)
    local ids = '[]'
    if #q > 0 then ids = cjson.encode(q) end
    publish(T_QUEUE .. s, '{"queue":' .. ids .. '}')
  end
  MOVED = {}
end

local function free_member(agent, stamp_us)
  local us = stamp_us or '0'
  return string.rep('0', STAMP_DIGITS - #us) .. us .. ':' .. agent
end

local function member_agent(member)
  return string.sub(member, STAMP_DIGITS + 2)
end

-- Put the agent in (or out of) the free set of each of its skills. ``fm`` in
-- the agent hash remembers the member it is filed under.
local function refresh_agent(agent)
  local ak = P .. K_AGENT .. agent
  local a = redis.call('HMGET', ak, 'status', 'capacity', 'skills', 'fm', 'stamp_us')
  if not a[2] then return end
  local skills = cjson.decode(a[3])
  local member = free_member(agent, a[5])
  if a[4] and a[4] ~= member then
    for _, s in ipairs(skills) do redis.call('ZREM', P .. K_FREE .. s, a[4]) end
  end
  local cap = tonumber(a[2])
  local held = redis.call('LLEN', P .. K_HELD .. agent)
  local free = a[1] == 'online' and held < cap
  for _, s in ipairs(skills) do
    if free then
      redis.call('ZADD', P .. K_FREE .. s, string.format('%.17g', held / cap), member)
    else
      redis.call('ZREM', P .. K_FREE .. s, member)
    end
  end
  redis.call('HSET', ak, 'fm', member)
end

-- Take the agent out of the free sets of ``skills`` (a JSON list), before they change.
local function unfile_agent(agent, skills)
  local fm = redis.call('HGET', P .. K_AGENT .. agent, 'fm')
  if not fm then return end
  for _, s in ipairs(cjson.decode(skills)) do redis.call('ZREM', P .. K_FREE .. s, fm) end
end

-- A strictly increasing assignment stamp from the server clock (integer
-- microseconds), so "longest idle" orders assignments exactly as they
-- happened, whichever instance did them. Sets both forms on the agent.
local function stamp_agent(ak)
  local t = server_time()
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', P .. K_STAMP) or '0')
  if us <= last then us = last + 1 end
  local digits = string.format('%.0f', us)
  redis.call('SET', P .. K_STAMP, digits)
  redis.call('HSET', ak, 'stamp_us', digits,
             'last_assigned', string.format('%d.%06d', math.floor(us / 1000000), us % 1000000))
end

-- Least loaded (held/capacity) agent that can take ``skill``, ties to the
-- longest idle, then to the smaller id: the first member of free:<skill>
-- (the second when the first is excluded).
local function pick_agent(skill, exclude)
  for _, m in ipairs(redis.call('ZRANGE', P .. K_FREE .. skill, 0, 1)) do
    local id = member_agent(m)
    if id ~= exclude then return id end
  end
  return nil
end

-- ``agent`` takes ``conv``: held list, stamp, conversation state, the
-- ``assigned`` log entry, and the a:<agent> event.
local function hold(agent, conv)
  local ak = P .. K_AGENT .. agent
  redis.call('RPUSH', P .. K_HELD .. agent, conv)
  stamp_agent(ak)
  redis.call('HSET', P .. K_CONV .. conv, 'state', 'assigned', 'agent', agent, 'had_agent', agent)
  refresh_agent(agent)
  append_entry(conv, '{"type":"assigned","agent":' .. redis.call('HGET', ak, 'ref'))
  agent_event(agent, conv, 'assigned', nil)
end

-- The agent is online with room (whatever its skills).
local function has_room(agent)
  local a = redis.call('HMGET', P .. K_AGENT .. agent, 'status', 'capacity')
  return a[1] == 'online' and a[2] ~= false and redis.call('LLEN', P .. K_HELD .. agent) < tonumber(a[2])
end

-- ``agent`` lets go of ``conv`` (no event: callers publish in the memory store's order).
local function unhold(agent, conv)
  redis.call('LREM', P .. K_HELD .. agent, 1, conv)
  refresh_agent(agent)
end

-- A placement as returned to Python: {conversation, skill, agent, position, from_queue}.
local function route(conv, exclude)
  local ck = P .. K_CONV .. conv
  local c = redis.call('HMGET', ck, 'skill', 'priority', 'ticket')
  local skill = c[1]
  local chosen = pick_agent(skill, exclude)
  if chosen then
    hold(chosen, conv)
    return {conv, skill, chosen, 0, 0}
  end
  -- ``queue`` remembers where it waits, whatever update_conversation does to its skill.
  redis.call('HSET', ck, 'state', 'queued', 'agent', '', 'queue', skill)
  local qk = P .. K_QUEUE .. skill
  local score = RANK[c[2]] * RANK_SPAN + tonumber(c[3])
  redis.call('ZADD', qk, string.format('%.0f', score), conv)
  redis.call('SADD', P .. K_QUEUES, skill)
  MOVED[skill] = true
  return {conv, skill, '', redis.call('ZRANK', qk, conv) + 1, 0}
end

-- Fill ``agent``'s free slots with the first waiting conversations among its skills.
local function pull(agent)
  local out = {}
  local ak = P .. K_AGENT .. agent
  local hk = P .. K_HELD .. agent
  local skills = cjson.decode(redis.call('HGET', ak, 'skills'))
  while true do
    local a = redis.call('HMGET', ak, 'status', 'capacity')
    if a[1] ~= 'online' or redis.call('LLEN', hk) >= tonumber(a[2]) then break end
    local best, best_score, best_skill = nil, nil, nil
    for _, s in ipairs(skills) do
      local h = redis.call('ZRANGE', P .. K_QUEUE .. s, 0, 0, 'WITHSCORES')
      if #h > 0 then
        local sc = tonumber(h[2])
        if not best or sc < best_score or (sc == best_score and bytes_lt(h[1], best)) then
          best, best_score, best_skill = h[1], sc, s
        end
      end
    end
    if not best then break end
    redis.call('ZREM', P .. K_QUEUE .. best_skill, best)
    MOVED[best_skill] = true
    hold(agent, best)
    out[#out + 1] = {best, best_skill, agent, 0, 1}
  end
  return out
end

-- Grace expired (or none): route every conversation an offline agent holds again.
local function requeue(agent)
  local out = {}
  for _, conv in ipairs(redis.call('LRANGE', P .. K_HELD .. agent, 0, -1)) do
    unhold(agent, conv)
    redis.call('HSET', P .. K_CONV .. conv, 'state', 'queued', 'agent', '')
    agent_event(agent, conv, 'unassigned', 'timeout')
    out[#out + 1] = route(conv, agent)
  end
  return out
end
