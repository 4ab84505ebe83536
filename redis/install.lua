-- Swap a rebuilt live state in (see stock.go), unless the state there is
-- of the same or a newer epoch (or replace is "1": a new sale's creator
-- replaces whatever an earlier, failed creation of its id left).
-- KEYS: meta, users, keys, orders, pending, staged users, staged keys, staged orders,
--       outgoing transfers, received transfers
-- ARGV: epoch, remaining, per-user limit, starts_ms, ends_ms (0: no end; any other
--       value an end, negative before 1970),
--       units reserved so far (PostgreSQL's ever, on one bucket), replace,
--       paused ("1": every purchase is refused), hold_ms (the sale's hold, which
--       reserve.lua holds every batch's to), then the fields written to
--       the staged users, keys and orders (their sentinels included)
-- The state replaced, and a refused install's staging keys, hold an entry
-- per buyer, key and held order: UNLINK frees them in the background (a
-- DEL, or a RENAME over them, froze Redis for a large sale's, and the
-- install's call outlived the client's read timeout).
local cur = redis.call('HGET', KEYS[1], 'epoch')
if ARGV[7] ~= '1' and cur and tonumber(cur) >= tonumber(ARGV[1]) then
  redis.call('UNLINK', KEYS[6], KEYS[7], KEYS[8])
  return 0
end
-- Each staging key was begun with the sentinel field: one that does not
-- hold every field written to it was lost since, whole (Redis restarted
-- empty, the key evicted) or in part (a replica behind promoted), and
-- perhaps begun again by a later write; swapped in, the state would lack
-- buyers, keys and held orders that its sentinels vouch for. Refused
-- (-1), and nothing is changed but the staging keys freed: the install is
-- made again.
for i = 0, 2 do
  if redis.call('HLEN', KEYS[6 + i]) ~= tonumber(ARGV[10 + i]) then
    redis.call('UNLINK', KEYS[6], KEYS[7], KEYS[8])
    return -1
  end
end
for i = 0, 2 do
  local dst, src = KEYS[2 + i], KEYS[6 + i]
  redis.call('UNLINK', dst)
  redis.call('RENAME', src, dst)
  -- A sentinel field: a hash missing it was lost (evicted, deleted) and
  -- rebuilt empty by a later write, which reserve.lua refuses to trust.
  redis.call('HSET', dst, '!', '1')
end
-- Every order the rebuild read is durable; later ones are of this epoch.
-- Transfers between buckets are settled: the stock was split anew.
redis.call('UNLINK', KEYS[5], KEYS[9], KEYS[10])
for _, z in ipairs({KEYS[5], KEYS[9], KEYS[10]}) do
  redis.call('ZADD', z, '+inf', '!')
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'rem', ARGV[2], 'limit', ARGV[3], 'starts', ARGV[4], 'ends', ARGV[5],
  'tot', ARGV[6], 'paused', ARGV[8], 'hold', ARGV[9])
return 1
