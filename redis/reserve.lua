-- Decide a batch of purchases of one sale atomically (see stock.go).
-- KEYS: meta, users, keys, orders, pending
-- ARGV: now_ms, expires_ms, wall_ms (the node's clock, which scores the
-- pending set the leader checks), then (user, key, quantity, order_id)
-- per purchase
-- Returns {-1} if the state is missing or lost part of itself (a hash
-- without the sentinel install.lua writes: evicted or deleted), else
-- {epoch, remaining, units reserved so far, code per purchase}.
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'rem', 'limit', 'starts', 'ends', 'tot', 'paused')
if not meta[1] or not meta[6] or redis.call('HEXISTS', KEYS[2], '!') == 0 or redis.call('HEXISTS', KEYS[3], '!') == 0
    or redis.call('HEXISTS', KEYS[4], '!') == 0 or not redis.call('ZSCORE', KEYS[5], '!') then
  return {-1}
end
local rem = tonumber(meta[2])
local limit = tonumber(meta[3])
local starts, ends = tonumber(meta[4]), tonumber(meta[5])
local tot = tonumber(meta[6])
local now, expires = ARGV[1], ARGV[2]
local nowN = tonumber(now)
-- As surge.Sale.Gate: ended, else paused (an operator's change, which
-- installs a new epoch), else not started.
local window = ''
if ends > 0 and nowN >= ends then
  window = 'E'
elseif meta[7] == '1' then
  window = 'P'
elseif nowN < starts then
  window = 'N'
end
local out = {tonumber(meta[1]), 0, 0}
for i = 4, #ARGV, 4 do
  local user, key, qty, id = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local code
  local uk
  if key ~= '' then
    uk = user .. '\n' .. key
    local rec = redis.call('HGET', KEYS[3], uk)
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
    else
      local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
      if held + qty > limit then
        code = 'L'
      else
        rem = rem - qty
        tot = tot + qty
        redis.call('HINCRBY', KEYS[2], user, qty)
        redis.call('HSET', KEYS[4], id, user .. '|' .. ARGV[i + 2])
        redis.call('ZADD', KEYS[5], ARGV[3], id)
        if uk then
          redis.call('HSET', KEYS[3], uk, id .. '|' .. ARGV[i + 2] .. '|' .. now .. '|' .. expires)
        end
        code = '+'
      end
    end
  end
  out[#out + 1] = code
end
redis.call('HSET', KEYS[1], 'rem', rem, 'tot', tot)
out[2] = rem
out[3] = tot
return out
