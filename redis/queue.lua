-- A waiting room's queue (see queue.go). One script for Join and Lookup,
-- so the lottery's draw happens atomically at the first call at or after
-- the sale's start, on whichever node makes it.
-- KEYS: users (hash user -> "seq|draw|slot", and field "" -> the queue's
--       epoch), seq, draws (zset), slots (zset), last slot, drawn flag,
--       dropped (set by Drop, for a while: the sale was archived)
-- ARGV: op ("join" or "lookup"), user, now_ms, start_ms, lottery ("1"/"0"),
--       first free slot at now, max entries, this join's random draw, a
--       random epoch for a queue that has none; or op "count", from, to:
--       the number of slots taken in [from, to) (Between)
-- The epoch lives in the users hash, so it vanishes with the places it
-- vouches for: tickets of a lost queue then name an epoch that no longer is.
-- Numbers are written into entries with %d: Lua's own conversion ("%.14g")
-- spells a slot past 10^14 as "1.26144e+14", rounded.

-- A queue is these six keys, and a maxmemory policy other than noeviction
-- evicts keys one at a time: an LRU one takes first those only joins touch
-- (seq, last) while the crowd keeps reading its places. The users hash is
-- the truth (the epoch and every entry): the other keys are checked
-- against it on every call, in O(1), and rebuilt from it when they
-- disagree, so that a slot is never handed out twice nor out of order,
-- and no entrant of a lost users hash haunts the draw. Entries are never
-- removed one by one, so each is in exactly one of draws (a lottery's,
-- before the draw) and slots, and seq is at least their count.
-- The sorted sets hold up to a million buyers: UNLINK frees them in the
-- background, where DEL froze Redis for every sale.
local function repair()
  local n = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '')
  if n == 0 then
    -- What is left of a queue whose users hash went: its places are void
    -- (the epoch went with them).
    redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
    return
  end
  local top = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
  local last = redis.call('GET', KEYS[5])
  if tonumber(redis.call('GET', KEYS[2]) or '0') >= n
      and redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) == n
      and (#top == 0 or (last and tonumber(last) >= tonumber(top[2]))) then
    return
  end
  local maxseq, maxslot = 0, -1
  local all = redis.call('HGETALL', KEYS[1])
  redis.call('UNLINK', KEYS[3], KEYS[4])
  for i = 1, #all, 2 do
    local u = all[i]
    if u ~= '' then
      local seq, dr, slot = string.match(all[i + 1], '^(%d+)|(%d+)|(-?%d+)$')
      maxseq = math.max(maxseq, tonumber(seq))
      if slot == '-1' then
        redis.call('ZADD', KEYS[3], dr, u)
      else
        redis.call('ZADD', KEYS[4], slot, u)
        maxslot = math.max(maxslot, tonumber(slot))
      end
    end
  end
  redis.call('SET', KEYS[2], string.format('%d', math.max(maxseq, tonumber(redis.call('GET', KEYS[2]) or '0'))))
  if maxslot >= 0 then
    redis.call('SET', KEYS[5], string.format('%d', math.max(maxslot, tonumber(last or '-1'))))
  end
end

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
    redis.call('HSET', KEYS[1], u, seq .. '|' .. dr .. '|' .. string.format('%d', slot))
    redis.call('ZADD', KEYS[4], slot, u)
  end
  if #pre > 0 then
    redis.call('SET', KEYS[5], base + #pre - 1)
  end
  redis.call('UNLINK', KEYS[3])
end

-- A dropped queue is made again by no call: a join that read its sale
-- before the archive is refused (-3), and nothing is left in Redis.
if redis.call('EXISTS', KEYS[7]) == 1 then
  if ARGV[1] == 'count' then
    return 0
  end
  if ARGV[1] == 'join' then
    return {-3}
  end
  return {-2}
end
repair()
-- Counted after the repair: a read of one's place and the line's metrics
-- make no join nor lookup, and a slots key that went would count nobody
-- for as long as nobody joined.
if ARGV[1] == 'count' then
  return redis.call('ZCOUNT', KEYS[4], ARGV[2], '(' .. ARGV[3])
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
  e = string.format('%d', seq) .. '|' .. ARGV[8] .. '|-1'
else
  local last = tonumber(redis.call('GET', KEYS[5]) or '-1')
  local slot = math.max(last + 1, tonumber(ARGV[6]))
  redis.call('SET', KEYS[5], slot)
  redis.call('ZADD', KEYS[4], slot, ARGV[2])
  e = string.format('%d|0|%d', seq, slot)
end
redis.call('HSET', KEYS[1], ARGV[2], e)
return {1, e}
