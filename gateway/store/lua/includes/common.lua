-- common: the namespace prefix, the clock, log append and bus publish.
-- Every script gets the namespace prefix "gw:{ns}:" as KEYS[1]; all keys it
-- touches are that prefix plus a suffix (gateway/store/keys.py), so they share
-- one hash tag and one cluster slot.
local P = KEYS[1]

local _now = nil
-- Redis server time as a JSON number string with microseconds (one reading per script).
local function now_str()
  if not _now then
    local t = redis.call('TIME')
    _now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  end
  return _now
end

-- Byte-wise a < b (Lua's own < uses the locale's collation; Python compares code points).
local function bytes_lt(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Ring the namespace's doorbell: one channel, message = JSON [topic, payload].
local function publish(topic, json)
  redis.call('PUBLISH', P .. 'bus', '[' .. cjson.encode(topic) .. ',' .. json .. ']')
end

-- Append one entry to a conversation's log with the next seq (XLEN + 1: the
-- stream is never trimmed) and publish it. ``body`` is the entry's JSON object
-- without its closing brace ("{" when empty). Returns the stored JSON.
local function append_entry(conv, body)
  local lk = P .. 'log:' .. conv
  local seq = redis.call('XLEN', lk) + 1
  local sep = ','
  if body == '{' then sep = '' end
  local e = body .. sep .. '"seq":' .. seq .. ',"ts":' .. now_str() .. '}'
  redis.call('XADD', lk, '0-' .. seq, 'e', e)
  publish('c:' .. conv, e)
  return e
end

local function agent_event(agent, conv, kind, reason)
  local e = '{"type":"' .. kind .. '","conversation":' .. cjson.encode(conv)
  if reason then e = e .. ',"reason":' .. cjson.encode(reason) end
  publish('a:' .. agent, e .. '}')
end
