-- Second half of a transfer (stock.go Rebalance, RepairTransfers): the
-- recipient takes the units once per transfer id.
-- KEYS: recipient meta, recipient received transfers. ARGV: id, n, now_ms.
-- Returns 1 if applied now, 0 if it was already (or the state is missing:
-- a rebuild recomputes every bucket from PostgreSQL anyway).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'rem', tonumber(ARGV[2]))
return 1
