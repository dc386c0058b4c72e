-- handoff: hand a BOT conversation to people, the whole of it in one step.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>   KEYS[3] tickets
-- ARGV[1] conversation id, ARGV[2] notice entry JSON without its closing brace
-- ARGV[3] skill ("" = meta default_skill, else by channel, else ARGV[6]), ARGV[4] priority
-- ARGV[5] channel -> skill JSON object, ARGV[6] default skill, ARGV[7] meta patch JSON ("")
-- ARGV[8] seq of the pending turn it finishes ("0" = none), ARGV[9] SLA timer key (""), ARGV[10] its due
-- ARGV[11] an entry logged before the notice, JSON without its closing brace ("" = none)
-- ARGV[12] overflow timer key (""), ARGV[13] its due: set when it waits in a queue
-- Returns {"ok", placement} | {"none"} (not BOT, or the turn is no longer pending: nothing changed)
--       | {"not_found"}
-- Guarantees: the guard, the note and the notice, the meta patch, every pending turn
-- finished, the arrival ticket, the routing decision (assignment or queue),
-- the SLA timer and the queue's new order on q:<skill> happen together. The
-- conversation's prefer_agent (a reopen's previous agent) takes it first when
-- online with room, whatever its skills.
local conv, ck = ARGV[1], KEYS[2]
local c = redis.call('HMGET', ck, 'state', 'channel', 'm:default_skill', 'prefer_agent')
if not c[1] then return {'not_found'} end
if c[1] ~= 'bot' then return {'none'} end
if ARGV[8] ~= '0' and redis.call('HEXISTS', ck, 'pt:' .. ARGV[8]) == 0 then return {'none'} end
clear_turns(conv, ck)
local skill = ARGV[3]
if skill == '' and c[3] then
  local d = cjson.decode(c[3])
  if type(d) == 'string' then skill = d end
end
if skill == '' then
  local s = cjson.decode(ARGV[5])[c[2] or 'web']
  if type(s) == 'string' then skill = s end
end
if skill == '' then skill = ARGV[6] end
if ARGV[11] ~= '' then append_entry(conv, ARGV[11]) end
append_entry(conv, ARGV[2])
patch_meta(ck, ARGV[7])
local ticket = redis.call('INCR', KEYS[3])
redis.call('HSET', ck, 'skill', skill, 'priority', ARGV[4], 'ticket', ticket)
local placement
if c[4] and c[4] ~= '' and has_room(c[4]) then
  hold(c[4], conv)
  placement = {conv, skill, c[4], 0, 0}
else
  placement = route(conv, '')
end
if ARGV[9] ~= '' then redis.call('ZADD', P .. K_TIMERS, ARGV[10], ARGV[9]) end
if ARGV[12] ~= '' and placement[3] == '' then redis.call('ZADD', P .. K_TIMERS, ARGV[13], ARGV[12]) end
publish_moved()
return {'ok', placement}
