-- First half of a transfer of units between buckets (stock.go Rebalance):
-- the donor gives up to n units and records the transfer.
-- KEYS: donor meta, donor outgoing transfers. ARGV: transfer id, n, now_ms.
-- Returns the units given (0 if the donor has none or its state is missing).
local rem = tonumber(redis.call('HGET', KEYS[1], 'rem') or '-1')
if rem <= 0 then
  return 0
end
local n = math.min(tonumber(ARGV[2]), rem)
redis.call('HINCRBY', KEYS[1], 'rem', -n)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1] .. '|' .. n)
return n
