-- common: the namespace prefix, the clock, log append and bus publish.
-- Every script gets the namespace prefix "gw:{ns}:" as KEYS[1]; all keys it
-- touches are that prefix plus a suffix (gateway/store/keys.py), so they share
-- one hash tag and one cluster slot.
local P = KEYS[1]
-- @include "names"

local _time, _now = nil, nil
-- Redis server time {seconds, microseconds}, read once per script.
local function server_time()
  if not _time then _time = redis.call('TIME') end
  return _time
end

-- Redis server time as a JSON number string with microseconds.
local function now_str()
  if not _now then
    local t = server_time()
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
  redis.call(PUBLISH_CMD, P .. K_BUS, '[' .. cjson.encode(topic) .. ',' .. json .. ']')
end

-- Append one entry to a conversation's log with the next seq (XLEN + 1: the
-- stream is never trimmed) and publish it. ``body`` is the entry's JSON object
-- without its closing brace ("{" when empty). Returns the stored JSON.
local function append_entry(conv, body)
  local lk = P .. K_LOG .. conv
  local seq = redis.call('XLEN', lk) + 1
  local sep = ','
  if body == '{' then sep = '' end
  local e = body .. sep .. '"seq":' .. seq .. ',"ts":' .. now_str() .. '}'
  redis.call('XADD', lk, '0-' .. seq, 'e', e)
  publish(T_CONVERSATION .. conv, e)
  return e, seq
end

-- Meta lives in the conversation hash, one field per top-level key: "m:<key>" =
-- its JSON. ``patch_json`` (MetaPatch, encoded by the Redis store) is
-- {"set": {key: "<JSON>"}, "del": [key], "union": {key: [items]},
--  "merge": {key: {"keep": n, "items": {item: [by, "<JSON>"]}}}}. Values stay
-- opaque JSON text (cjson would turn [] into {} and round numbers); a merged
-- object keeps its items with their ``by`` numbers in "o:<key>".
local function patch_meta(ck, patch_json)
  if patch_json == '' then return end
  local p = cjson.decode(patch_json)
  local fields = {}
  for k, v in pairs(p.set or {}) do
    fields[#fields + 1] = 'm:' .. k
    fields[#fields + 1] = v
  end
  if #fields > 0 then redis.call('HSET', ck, unpack(fields)) end
  for _, k in ipairs(p.del or {}) do redis.call('HDEL', ck, 'm:' .. k, 'o:' .. k) end
  for k, items in pairs(p.union or {}) do
    local cur = redis.call('HGET', ck, 'm:' .. k)
    local list = {}
    if cur and string.sub(cur, 1, 1) == '[' then list = cjson.decode(cur) end
    local seen, changed = {}, false
    for _, it in ipairs(list) do seen[it] = true end
    for _, it in ipairs(items) do
      if not seen[it] then
        seen[it] = true
        list[#list + 1] = it
        changed = true
      end
    end
    if changed or not cur then redis.call('HSET', ck, 'm:' .. k, #list > 0 and cjson.encode(list) or '[]') end
  end
  for k, m in pairs(p.merge or {}) do
    local cur = redis.call('HGET', ck, 'o:' .. k)
    local t = {}
    if cur then t = cjson.decode(cur) end
    for ik, pair in pairs(m.items) do t[ik] = pair end
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    while n > m.keep do
      local worst = nil
      for ik, pair in pairs(t) do
        if worst == nil or pair[1] < t[worst][1] or (pair[1] == t[worst][1] and bytes_lt(ik, worst)) then
          worst = ik
        end
      end
      t[worst] = nil
      n = n - 1
    end
    local names = {}
    for ik in pairs(t) do names[#names + 1] = ik end
    table.sort(names, bytes_lt)
    local parts = {}
    for i, ik in ipairs(names) do parts[i] = cjson.encode(ik) .. ':' .. t[ik][2] end
    redis.call('HSET', ck, 'o:' .. k, n > 0 and cjson.encode(t) or '{}', 'm:' .. k, '{' .. table.concat(parts, ',') .. '}')
  end
end

-- Pending bot turns: "pt:<seq>" fields of the conversation hash ("1", or "v"
-- for a VIP), each with its timer turn:<conv>:<seq> (a survivor's signal).
local function clear_turns(conv, ck)
  for _, f in ipairs(redis.call('HKEYS', ck)) do
    if string.sub(f, 1, 3) == 'pt:' then
      redis.call('HDEL', ck, f)
      redis.call('ZREM', P .. K_TIMERS, TM_TURN .. conv .. ':' .. string.sub(f, 4))
    end
  end
end

local function agent_event(agent, conv, kind, reason)
  local e = '{"type":"' .. kind .. '","conversation":' .. cjson.encode(conv)
  if reason then e = e .. ',"reason":' .. cjson.encode(reason) end
  publish(T_AGENT .. agent, e .. '}')
end

-- A conversation nobody wrote in (a hello opened it, then the customer left): while the bot
-- has it and its log holds nothing but system entries (the greeting), it goes with its log,
-- client ids, idle timer and its customer's pointer (if that still points here; back to the
-- conversation it reopened, if any). Anything a
-- customer, the bot or an agent wrote keeps it. (A JSON string value cannot hold
-- '"from":"system"': its quotes are escaped.) Returns true when it was discarded.
local function discard_if_unused(conv, ck)
  if redis.call('HGET', ck, 'state') ~= 'bot' then return false end
  local lk = P .. K_LOG .. conv
  if redis.call('XLEN', lk) > 8 then return false end
  for _, item in ipairs(redis.call('XRANGE', lk, '-', '+')) do
    if not string.find(item[2][2], '"from":"system"', 1, true) then return false end
  end
  local cust = redis.call('HMGET', ck, 'customer_id', 'reopened_from')
  if cust[1] then
    local cu = P .. K_CUST .. cust[1]
    if redis.call('GET', cu) == conv then
      if cust[2] and cust[2] ~= '' then redis.call('SET', cu, cust[2]) else redis.call('DEL', cu) end
    end
  end
  redis.call('DEL', ck, lk, P .. K_DEDUPE .. conv)
  redis.call('ZREM', P .. K_TIMERS, TM_IDLE .. conv)
  return true
end
