-- agent_connected: bind an agent to a session (replacing any other) and set its status.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] agent:<agent>
-- ARGV[1] agent id, ARGV[2] session id, ARGV[3] status ("online" | "away"), ARGV[4] instance,
-- ARGV[5] "1": only rebind (an instance restoring its own sessions after it was reaped)
-- Returns {"ok", replaced session ("" if none), pulled placements} | {"not_found"}
--       | {"skipped"} (rebind only, and another session owns the agent now)
-- Guarantees: one session per agent; the session records its instance (so a
-- survivor can tell when that instance died); online pulls waiting
-- conversations up to capacity and its grace timer is dropped in the same step.
local agent, session, status, instance = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local a = redis.call('HMGET', KEYS[2], 'session', 'instance', 'capacity')
if not a[3] then return {'not_found'} end
local previous = a[1] or ''
if ARGV[5] == '1' and previous ~= '' and previous ~= session then return {'skipped'} end
if a[2] and a[2] ~= instance then redis.call('SREM', P .. K_INST_AGENTS .. a[2], agent) end
redis.call('HSET', KEYS[2], 'session', session, 'instance', instance, 'status', status)
redis.call('SADD', P .. K_INST_AGENTS .. instance, agent)
refresh_agent(agent)
redis.call('ZREM', P .. K_TIMERS, TM_GRACE .. agent)
-- older sessions of this agent, on any instance, learn they were replaced
publish(T_AGENT .. agent, '{"type":"_replaced","session":' .. cjson.encode(session) .. '}')
local pulled = {}
if status == 'online' then pulled = pull(agent) end
publish_moved()
return {'ok', previous, pulled}
