-- A waiting room's queue (see queue.go). One script for Join and Lookup,
-- so the lottery's draw happens atomically at the first call at or after
-- the sale's start, on whichever node makes it.
-- KEYS: users (hash user -> "seq|draw|slot", and field "" -> the queue's
--       epoch), seq, draws (zset), slots (zset), last slot, drawn flag
-- ARGV: op ("join" or "lookup"), user, now_ms, start_ms, lottery ("1"/"0"),
--       first free slot at now, max entries, this join's random draw, a
--       random epoch for a queue that has none
-- The epoch lives in the users hash, so it vanishes with the places it
-- vouches for: tickets of a lost queue then name an epoch that no longer is.
local function draw_if_due()
  if ARGV[5] ~= '1' or redis.call('EXISTS', KEYS[6]) == 1 or tonumber(ARGV[3]) < tonumber(ARGV[4]) then
    return
  end
  redis.call('SET', KEYS[6], '1')
  local pre = redis.call('ZRANGE', KEYS[3], 0, -1)
  local base = tonumber(ARGV[6])
  for i, u in ipairs(pre) do
    local e = redis.call('HGET', KEYS[1], u)
    local seq, dr = string.match(e, '^(%d+)|(%d+)|')
    local slot = base + i - 1
    redis.call('HSET', KEYS[1], u, seq .. '|' .. dr .. '|' .. slot)
    redis.call('ZADD', KEYS[4], slot, u)
  end
  if #pre > 0 then
    redis.call('SET', KEYS[5], base + #pre - 1)
  end
  redis.call('DEL', KEYS[3])
end

if ARGV[1] == 'join' then
  redis.call('HSETNX', KEYS[1], '', ARGV[9])
end
draw_if_due()
local e = redis.call('HGET', KEYS[1], ARGV[2])
if e then
  return {0, e}
end
if ARGV[1] ~= 'join' then
  return {-2}
end
-- The epoch field is not an entry.
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[7]) then
  return {-1}
end
local seq = redis.call('INCR', KEYS[2])
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[2])
  e = seq .. '|' .. ARGV[8] .. '|-1'
else
  local last = tonumber(redis.call('GET', KEYS[5]) or '-1')
  local slot = math.max(last + 1, tonumber(ARGV[6]))
  redis.call('SET', KEYS[5], slot)
  redis.call('ZADD', KEYS[4], slot, ARGV[2])
  e = seq .. '|0|' .. slot
end
redis.call('HSET', KEYS[1], ARGV[2], e)
return {1, e}
