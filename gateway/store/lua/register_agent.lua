-- register_agent: create or update an agent's profile, keeping its routing state.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] agent:<agent>   KEYS[3] agents
-- ARGV[1] agent id, ARGV[2] name, ARGV[3] skills (JSON list), ARGV[4] capacity,
-- ARGV[5] ref (JSON {"id","name"}, copied into log entries)
-- Returns 1 when created, 0 when updated.
-- Guarantees: the free:<skill> sets follow the new skills and capacity at once
-- (no pull: a new profile takes conversations on its next status change or release).
local agent = ARGV[1]
local created = 0
local old = redis.call('HGET', KEYS[2], 'skills')
if old then
  unfile_agent(agent, old)
else
  created = 1
  redis.call('HSET', KEYS[2], 'status', 'offline', 'last_assigned', '0')
  redis.call('SADD', KEYS[3], agent)
end
redis.call('HSET', KEYS[2], 'name', ARGV[2], 'skills', ARGV[3], 'capacity', ARGV[4], 'ref', ARGV[5])
refresh_agent(agent)
return created
