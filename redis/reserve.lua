-- Decide a batch of purchases of one sale atomically (see stock.go).
-- KEYS: meta, users, keys, orders, pending
-- ARGV: now_ms, expires_ms, then (user, key, quantity, order_id) per
-- purchase
-- The batch's new orders enter the pending set as one member, their ids
-- joined by ',' (see Unconfirmed): the leader confirms a batch at a time,
-- as PostgreSQL commits one.
-- Returns {-1} if the state is missing or lost part of itself (a hash
-- without the sentinel install.lua writes: evicted or deleted), {-2} if the
-- batch's holds (expires_ms - now_ms) are not the sale's hold of this epoch
-- (the node decided with a copy of the sale older than a change of its
-- hold; nothing is written), else
-- {epoch, remaining, units reserved so far, codes}: the codes, one per
-- purchase, joined by '\n' into one string (no code holds one). One reply
-- string instead of one per purchase: the node parses it without an
-- allocation per purchase.
--
-- The batch's reads are one HMGET per hash and its writes one command per
-- structure, not a few per purchase: Redis's cost is mostly per command
-- (dispatch from Lua, propagation to replicas and the AOF), so a batch of
-- 60 runs 7 commands instead of about 300.
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'rem', 'limit', 'starts', 'ends', 'tot', 'paused', 'hold')
if not meta[1] or not meta[6] or redis.call('HEXISTS', KEYS[2], '!') == 0 or redis.call('HEXISTS', KEYS[3], '!') == 0
    or redis.call('HEXISTS', KEYS[4], '!') == 0 or not redis.call('ZSCORE', KEYS[5], '!') then
  return {-1}
end
-- A state installed before holds were recorded has none to compare.
if meta[8] and tonumber(ARGV[2]) - tonumber(ARGV[1]) ~= tonumber(meta[8]) then
  return {-2}
end
local rem = tonumber(meta[2])
local limit = tonumber(meta[3])
local starts, ends = tonumber(meta[4]), tonumber(meta[5])
local tot = tonumber(meta[6])
local now, expires = ARGV[1], ARGV[2]
local nowN = tonumber(now)
-- As surge.Sale.Gate: ended, else paused (an operator's change, which
-- installs a new epoch), else not started. An end is any time but 0,
-- which means none: an end at or before 1970 is negative (install.go).
local window = ''
if ends ~= 0 and nowN >= ends then
  window = 'E'
elseif meta[7] == '1' then
  window = 'P'
elseif nowN < starts then
  window = 'N'
end

-- Runs cmd on key with the flat argument list args, in chunks that stay
-- well below Lua's limit on unpacked values.
local function many(cmd, key, args, step)
  for i = 1, #args, step do
    redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
  end
end

-- Every key record the batch asks about, and every buyer's units held,
-- each in one read. A purchase earlier in the batch changes both for the
-- later ones: recs and held are updated as the loop goes.
local recs, held = {}, {}
local ukOf = {}
do
  local fields, users = {}, {}
  for i = 3, #ARGV, 4 do
    local user, key = ARGV[i], ARGV[i + 1]
    if key ~= '' then
      local uk = user .. '\n' .. key
      ukOf[i] = uk
      if recs[uk] == nil then
        recs[uk] = false
        fields[#fields + 1] = uk
      end
    end
    if window == '' and held[user] == nil then
      held[user] = 0
      users[#users + 1] = user
    end
  end
  for c = 1, #fields, 4000 do
    local part = redis.call('HMGET', KEYS[3], unpack(fields, c, math.min(c + 3999, #fields)))
    for j = 1, #part do
      if part[j] then
        recs[fields[c + j - 1]] = part[j]
      end
    end
  end
  for c = 1, #users, 4000 do
    local part = redis.call('HMGET', KEYS[2], unpack(users, c, math.min(c + 3999, #users)))
    for j = 1, #part do
      held[users[c + j - 1]] = tonumber(part[j] or '0')
    end
  end
end

local out = {tonumber(meta[1]), 0, 0}
local codes = {}
local newUsers, newOrders, newIDs, newKeys = {}, {}, {}, {}
local touched, touchedList = {}, {}
for i = 3, #ARGV, 4 do
  local user, qty, id = ARGV[i], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local uk = ukOf[i]
  local code
  if uk then
    local rec = recs[uk]
    if rec then
      -- rec is "id|quantity|created|expires": a key reused with another
      -- quantity is a different request, not a replay.
      local q = string.match(rec, '^[^|]*|(%d+)|')
      if tonumber(q) == qty then
        code = 'R' .. rec
      else
        code = 'M'
      end
    end
  end
  if not code then
    if window ~= '' then
      code = window
    elseif rem < qty then
      code = 'S' .. rem
    elseif held[user] + qty > limit then
      code = 'L'
    else
      rem = rem - qty
      tot = tot + qty
      held[user] = held[user] + qty
      if not touched[user] then
        touched[user] = true
        touchedList[#touchedList + 1] = user
      end
      newOrders[#newOrders + 1] = id
      newOrders[#newOrders + 1] = user .. '|' .. ARGV[i + 2]
      newIDs[#newIDs + 1] = id
      if uk then
        local rec = id .. '|' .. ARGV[i + 2] .. '|' .. now .. '|' .. expires
        recs[uk] = rec
        newKeys[#newKeys + 1] = uk
        newKeys[#newKeys + 1] = rec
      end
      code = '+'
    end
  end
  codes[#codes + 1] = code
end
for _, user in ipairs(touchedList) do
  newUsers[#newUsers + 1] = user
  newUsers[#newUsers + 1] = held[user]
end
many('HSET', KEYS[2], newUsers, 4000)
many('HSET', KEYS[4], newOrders, 4000)
if #newIDs > 0 then
  -- Scored by Redis's clock, which the leader's sweep reads too
  -- (unconfirmed.lua): with the node's, a node behind the leader by more
  -- than --cluster-confirm-after had every batch in flight taken for one
  -- abandoned, and the sale rebuilt, fencing every node's inserts.
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[5], t[1] * 1000 + math.floor(t[2] / 1000), table.concat(newIDs, ','))
end
many('HSET', KEYS[3], newKeys, 4000)
redis.call('HSET', KEYS[1], 'rem', rem, 'tot', tot)
out[2] = rem
out[3] = tot
out[4] = table.concat(codes, '\n')
return out
