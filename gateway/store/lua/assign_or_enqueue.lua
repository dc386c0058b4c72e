-- assign_or_enqueue: hand a BOT conversation to the least-loaded skilled agent, else queue it.
-- @include "routing"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>   KEYS[3] tickets
-- ARGV[1] conversation id, ARGV[2] skill, ARGV[3] priority
-- Returns {"ok", placement} | {"none"} (not in the BOT state: nothing changed) | {"not_found"}
-- placement = {conversation, skill, agent ("" when queued), position, from_queue}
-- Guarantees: the arrival ticket, the routing decision, the assignment (held
-- list, free sets, "assigned" entry, a:<agent> event) or the queue insertion
-- happen together; no agent goes over capacity.
local conv = ARGV[1]
local state = redis.call('HGET', KEYS[2], 'state')
if not state then return {'not_found'} end
if state ~= 'bot' then return {'none'} end
local ticket = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], 'skill', ARGV[2], 'priority', ARGV[3], 'ticket', ticket)
local placement = route(conv, '')
publish_moved()
return {'ok', placement}
